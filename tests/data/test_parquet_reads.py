"""``rayrec.data.parquet_reads.read_parquet``: the actor-free v1 reader, whatever the
context's default, and the default left as it was, also with several threads reading."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from rayrec.data.parquet_reads import read_parquet

pytestmark = pytest.mark.usefixtures("ray_session")


def source_operator(dataset: ray.data.Dataset) -> object:
    op = dataset._logical_plan.dag
    while op.input_dependencies:
        op = op.input_dependencies[0]
    return op


def test_v1_reader_is_used_and_the_default_restored(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"x": list(range(10))}), path)
    context = ray.data.DataContext.get_current()
    saved = context.use_datasource_v2
    context.use_datasource_v2 = True
    try:
        # v2 (switched on above) starts its plan by listing files, in an actor-backed task
        assert type(source_operator(ray.data.read_parquet(str(path)))).__name__ == "ListFiles"
        with ThreadPoolExecutor(4) as pool:
            datasets = list(pool.map(read_parquet, [str(path)] * 8))
        assert context.use_datasource_v2 is True
    finally:
        context.use_datasource_v2 = saved
    for dataset in datasets:
        source = source_operator(dataset)
        assert type(source).__name__ == "Read"
        assert type(source.datasource).__name__ == "ParquetDatasource"
    assert datasets[0].count() == 10
