"""Benchmark: raw ``.json.gz`` reviews -> tokenized parquet blocks with Ray Data, against the
same tokenizer called directly in one process on the same texts.

    python bench/prepare_throughput.py --reviews 1000000

Prints wall time per stage, reviews/s, the peak memory (RSS) of the driver and of the Ray
worker processes, and the ratio of the two tokenization throughputs measured in this run
(the ratio shows what Ray Data costs and how it uses the cores, independent of how fast this
machine happens to be today). Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ray

from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.sources import Source, read_source
from rayrec.data.synthetic import SyntheticConfig, write_corpus
from rayrec.data.tokenize import ReviewTokenizer


class WorkerMemory(threading.Thread):
    """Samples the summed RSS of Ray's worker processes (``ray::`` titles) every 0.5 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_total = 0
        self.peak_single = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            sizes = []
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = " ".join(process.info["cmdline"] or [])
                if cmdline.startswith("ray::") and process.info["memory_info"]:
                    sizes.append(process.info["memory_info"].rss)
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_single = max([self.peak_single, *sizes])
            time.sleep(0.5)


def direct_tokenization(uri: str, max_len: int, batch: int = 1024) -> tuple[int, float]:
    """Tokenize every text of ``uri`` in this process; returns (reviews, seconds of
    tokenization only, reading excluded)."""
    texts = []
    for table in read_source(Source("amazon2014", uri, "Electronics"), 0):
        texts += [t for t, s in zip(table["text"].to_pylist(), table["status"].to_pylist(),
                                    strict=True) if s == "ok"]  # fmt: skip
    tokenizer = ReviewTokenizer("minilm", max_len)
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        tokenizer.encode(texts[start : start + batch])
    return len(texts), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--actors", type=int, default=None, help="tokenizer actors")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rayrec-bench-"))

    started = time.perf_counter()
    (source,) = write_corpus(
        str(work / "raw"), SyntheticConfig.scaled(args.reviews, domains=("Electronics",))
    )
    generate_s = time.perf_counter() - started
    size_mb = Path(source.uri).stat().st_size / 2**20
    print(
        f"generated {source.n_reviews:,} reviews ({size_mb:.0f} MB .json.gz) in {generate_s:.1f} s"
    )

    ray.init(log_to_driver=False)
    monitor = WorkerMemory()
    monitor.start()
    config = PrepareConfig(
        sources=[f"amazon2014:{source.uri}"],
        out=str(work / "prepared"),
        max_len=args.max_len,
        tokenize_actors=args.actors,
        overwrite=True,
    )
    started = time.perf_counter()
    manifest = prepare(config, report=lambda line: print(f"  {line}", flush=True))
    wall = time.perf_counter() - started
    monitor.running = False
    ray.shutdown()
    seconds = manifest["seconds"]
    records = manifest["counts"]["records"]
    tokenized = manifest["counts"]["reviews"]

    direct_n, direct_s = direct_tokenization(source.uri, args.max_len)
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB
    ray_rate = tokenized / seconds["tokenize"]
    direct_rate = direct_n / direct_s
    print()
    rows = [
        ("read .json.gz -> staged parquet", seconds["read"], records),
        ("index (k-core, split, documents)", seconds["index"], records),
        ("tokenize (Ray Data actors)", seconds["tokenize"], tokenized),
        ("prepare, end to end", wall, records),
        ("tokenize directly, one process", direct_s, direct_n),
    ]
    print(f"{'stage':<34}{'seconds':>9}{'reviews/s':>12}")
    for name, stage_s, count in rows:
        print(f"{name:<34}{stage_s:>9.1f}{count / stage_s:>12,.0f}")
    print()
    print(f"Ray Data tokenize / direct tokenize throughput: {ray_rate / direct_rate:.2f}")
    print(f"peak RSS: driver {driver_peak:,.0f} MiB (includes the direct run), "
          f"Ray workers {monitor.peak_total / 2**20:,.0f} MiB summed, "
          f"{monitor.peak_single / 2**20:,.0f} MiB largest single worker")  # fmt: skip
    print(f"cores: {os.cpu_count()}; token store {manifest['storage']}")


if __name__ == "__main__":
    main()
