"""``rayrec.data.parquet_reads.read_parquet``: the actor-free v1 reader, whatever the
context's default, and the default left as it was, also with several threads reading."""

from __future__ import annotations

import contextlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from rayrec.data.parquet_reads import read_parquet

pytestmark = pytest.mark.usefixtures("ray_session")


def plan(dataset: ray.data.Dataset) -> str:
    """The dataset's logical and physical plans as Ray Data's public ``explain()`` prints
    them (without executing it)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        dataset.explain()
    return printed.getvalue()


def test_v1_reader_is_used_and_the_default_restored(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"x": list(range(10))}), path)
    context = ray.data.DataContext.get_current()
    saved = context.use_datasource_v2
    context.use_datasource_v2 = True
    try:
        # v2 (switched on above) starts its plan by listing files, in an actor-backed task
        v2 = plan(ray.data.read_parquet(str(path)))
        assert "ListFiles" in v2 and "ReadFilesParquetV2" in v2, v2
        with ThreadPoolExecutor(4) as pool:
            datasets = list(pool.map(read_parquet, [str(path)] * 8))
        assert context.use_datasource_v2 is True
    finally:
        context.use_datasource_v2 = saved
    for dataset in datasets:
        v1 = plan(dataset)
        assert "Read[ReadParquet]" in v1 and "ListFiles" not in v1, v1
    assert datasets[0].count() == 10
