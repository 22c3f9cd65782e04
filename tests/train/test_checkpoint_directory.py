"""``checkpoint_directory``: a local checkpoint is read in place; an S3 one (moto on loopback)
is downloaded into a directory of the caller's own, so that two readers at once never share
(or remove) each other's copy, and the copy is gone afterwards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pyarrow.fs
import ray.train

from rayrec.train.checkpoint import checkpoint_directory


def test_a_local_checkpoint_is_read_in_place(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{}")
    with checkpoint_directory(ray.train.Checkpoint.from_directory(str(tmp_path))) as directory:
        assert directory == tmp_path


def test_readers_of_an_s3_checkpoint_each_get_their_own_copy(s3_endpoint: str) -> None:
    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    s3.mkdir("rayrec-checkpoints")
    s3.pipe("rayrec-checkpoints/run/epoch_0001/state.json", b'{"epoch": 1}')
    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=s3_endpoint, access_key="testing", secret_key="testing"
    )
    checkpoint = ray.train.Checkpoint("rayrec-checkpoints/run/epoch_0001", filesystem)

    def read() -> tuple[Path, str]:
        with checkpoint_directory(checkpoint) as directory:
            return directory, (directory / "state.json").read_text()

    with ThreadPoolExecutor(2) as pool:
        copies = list(pool.map(lambda _: read(), range(2)))
    assert [text for _, text in copies] == ['{"epoch": 1}'] * 2
    assert copies[0][0] != copies[1][0]
    assert not any(directory.exists() for directory, _ in copies)
