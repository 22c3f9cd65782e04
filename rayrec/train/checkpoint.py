"""Checkpoint directories, safe loading and weight export.

A checkpoint is one directory per epoch, reported to Ray Train by every rank: each rank saves
its own files (DeepSpeed: model states and its ZeRO optimizer shard; DDP: rank 0 saves
everything) into a local directory and Ray merges the ranks' directories in the run's storage
(local or s3://). Rank 0 adds ``state.json`` (epoch, step, metrics history) so that a resumed
run continues its epoch and step counters.

Safe loading: nothing is unpickled with arbitrary globals.

* DeepSpeed 0.19's ``TorchCheckpointEngine.load`` calls ``torch.load(path,
  weights_only=False)``, which executes any pickled callable in the file. Every engine built
  by :mod:`rayrec.train.engine` gets a :class:`SafeTorchCheckpointEngine` instead, which
  loads with ``weights_only=True`` and allows only the few non-tensor types DeepSpeed writes
  (listed in ``DEEPSPEED_SAFE_GLOBALS``; a checkpoint holding anything else fails to load).
* The DDP engine stores weights as safetensors and optimizer states through
  ``torch.load(weights_only=True)``.
* Exported weights (``model.safetensors``) are safetensors.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
import torch
from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address
from safetensors.torch import save_file

from rayrec.data import storage
from rayrec.errors import CliError

if TYPE_CHECKING:
    import ray.train

STATE_FILE = "state.json"
WEIGHTS_FILE = "model.safetensors"
RESULTS_FILE = "results.json"  # a finished run's results (rayrec.train.trainer.fit)

# Non-tensor types found in DeepSpeed 0.19 checkpoints of the engines rayrec builds
# (ZeRO 0-3, fp32 / bf16, a torch AdamW and LambdaLR): the ZeRO stage enum, the loss scaler
# object and the fragment address of bf16 / ZeRO optimizer states.
DEEPSPEED_SAFE_GLOBALS = [ZeroStageEnum, LossScaler, fragment_address]


class SafeTorchCheckpointEngine(TorchCheckpointEngine):
    """DeepSpeed's torch checkpoint engine, loading with ``torch.load(weights_only=True)``."""

    def load(self, path: str, map_location: Any = None) -> Any:
        with torch.serialization.safe_globals(DEEPSPEED_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)


def write_state(directory: Path, state: Mapping[str, Any]) -> None:
    """Write the loop's counters and history as ``state.json``."""
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def read_state(directory: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint directory."""
    return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))


def export_weights(state_dict: Mapping[str, torch.Tensor], uri: str) -> None:
    """Write a ``state_dict`` as safetensors (fp32, contiguous) to a local path or s3://."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in state_dict.items()}
    if not storage.is_remote(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, uri)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS_FILE
        save_file(tensors, str(path))
        storage.put_file(path, uri)


def read_results(run_dir: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """``RUN_DIR/results.json``, or a :class:`CliError` (one line) saying why there is none or
    why it is not a run's results: not readable, not JSON (damaged, or cut short by a failed
    copy), not an object, or without an entry of ``required`` (dotted: ``data.uri``), the
    entries the caller reads."""
    uri = storage.join(run_dir, RESULTS_FILE)
    try:
        if not storage.exists(uri):
            raise CliError(f"{run_dir}: not a finished run (no {RESULTS_FILE})")
        results = storage.read_json(uri)
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise CliError(f"{uri}: not a run's results (not JSON: {err})") from None
    except OSError as err:
        raise CliError(f"{uri}: not readable ({type(err).__name__}: {err})") from None
    if not isinstance(results, dict):
        raise CliError(f"{uri}: not a run's results (a JSON {type(results).__name__})")
    missing = [key for key in required if not _has_entry(results, key.split("."))]
    if missing:
        raise CliError(f"{uri}: not a run's results (incomplete: no {', '.join(missing)})")
    return results


def _has_entry(tree: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


@contextlib.contextmanager
def checkpoint_directory(checkpoint: ray.train.Checkpoint) -> Iterator[Path]:
    """The files of ``checkpoint`` in a local directory of this process's own.

    A local checkpoint is read where it is. A remote one (s3://) is downloaded into a temporary
    directory of this process, removed afterwards: one copy per worker of a node, where Ray's
    ``Checkpoint.as_directory`` shares one download between them behind a file lock, and two
    workers resuming at once could find that shared directory already removed by the other
    (RuntimeError "Checkpoint directory ... does not exist, even though it should have been
    created by another process", Ray 2.60, seen once in CI on 2026-12-07).
    """
    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        yield Path(checkpoint.path)
        return
    with tempfile.TemporaryDirectory(prefix="rayrec-checkpoint-") as private:
        yield Path(checkpoint.to_directory(private))
