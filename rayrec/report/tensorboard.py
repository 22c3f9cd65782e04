"""TensorBoard event files of a training run, written by rank 0 into ``<run dir>/tensorboard/``.

Scalars (``torch.utils.tensorboard.SummaryWriter``):

* ``step/train_loss``: the running mean training loss of the epoch (of the model's last
  update phase, as the progress line prints it) every ``train.log_every`` micro steps, at
  the rank's global step counter;
* ``epoch/<name>`` at step ``epoch + 1`` (1-based epochs): ``train_loss`` (and
  ``train_loss_<phase>`` of multi-phase models), every validation metric ``val_*`` and
  ``samples_per_s``.

``tensorboard --logdir RUN_DIR`` shows a run; ``tensorboard --logdir SWEEP_DIR`` shows every
trial of a sweep (their runs live under ``<sweep>/runs/<trial>/``, so each trial is one
TensorBoard run named ``runs/<trial>/tensorboard``; Tune's own per-trial event files in
``<sweep>/<trial>/`` show up beside them). A resumed run adds an event file beside the first
one and TensorBoard reads both: the steps of an epoch that was interrupted and trained again
appear twice, once per attempt.

For an s3:// run directory the events are written to a local temporary directory and the
directory's files are uploaded at the end of every epoch (after its metrics), so S3 holds every
finished epoch; step scalars of an epoch that did not finish are not uploaded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from rayrec.data import storage

TENSORBOARD_DIR = "tensorboard"
EPOCH_SCALARS = ("train_loss", "val_", "samples_per_s")  # prefixes of the epoch metrics logged


class EventLog:
    """Rank 0's TensorBoard writer of one run; on the other ranks every call does nothing."""

    def __init__(self, run_dir: str, enabled: bool) -> None:
        self.writer: SummaryWriter | None = None
        self.remote: str | None = None
        if not enabled:
            return
        if storage.is_remote(run_dir):
            self.remote = storage.join(run_dir, TENSORBOARD_DIR)
            self.local = Path(tempfile.mkdtemp(prefix="rayrec-tensorboard-"))
        else:
            self.local = Path(run_dir, TENSORBOARD_DIR)
        self.writer = SummaryWriter(log_dir=str(self.local))

    def step_loss(self, step: int, loss: float) -> None:
        """The running training loss at global step ``step``."""
        if self.writer is not None:
            self.writer.add_scalar("step/train_loss", loss, step)

    def epoch(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """The epoch's training loss, validation metrics and throughput; flushed (uploaded
        for an s3:// run)."""
        if self.writer is None:
            return
        for name, value in metrics.items():
            if name.startswith(EPOCH_SCALARS) and isinstance(value, int | float):
                self.writer.add_scalar(f"epoch/{name}", value, epoch + 1)
        self.writer.flush()
        self._upload()

    def _upload(self) -> None:
        """Copy the local event files to the s3:// run directory (whole files: each upload
        replaces the previous copy of a growing file)."""
        if self.remote is None:
            return
        fs, remote = storage.filesystem(self.remote)
        for file in sorted(self.local.iterdir()):
            fs.put_file(str(file), f"{remote}/{file.name}")

    def close(self) -> None:
        """Flush, upload and close; the local copy of an s3:// run's events is deleted."""
        if self.writer is None:
            return
        self.writer.close()
        self._upload()
        if self.remote is not None:
            shutil.rmtree(self.local, ignore_errors=True)
        self.writer = None
