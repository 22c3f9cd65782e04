"""Benchmark: raw ``.json.gz`` reviews -> tokenized parquet blocks with Ray Data, against the
same tokenizer called directly in one process on the same texts.

    python bench/prepare_throughput.py --reviews 1000000

The corpus is the synthetic Electronics domain with realistic review lengths by default
(``SyntheticConfig.text_length="realistic"``: about 140 word pieces per review, a long tail;
``--text-length short`` for the old 25-piece reviews). Prints wall time per stage,
reviews/s, the peak memory (RSS) of the driver (the corpus is generated in a child process
beforehand) and of the Ray worker processes, and two
references measured in the same run on the same texts (the first ``--reference-reviews``
of them, 1M by default, as they are held in memory): rayrec's tokenizer called in one
process, and the raw ``tokenizers`` backend's ``encode_batch`` using all cores (word pieces
only: no offsets, no opinion mask), on the whole texts and on the word prefixes that the
pipeline tokenizes (a long review only as far as ``--max-len`` keeps it:
:meth:`rayrec.data.tokenize.ReviewTokenizer.truncated_encodings`). Against the whole texts the
ratio is the stage's speed against the plain call; against the prefixes it is what Ray Data
and the opinion mask cost, independent of how fast (or loaded) the machine is today. The last
line is one JSON object with the figures. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import ray

from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.review_reader import read_source
from rayrec.data.sources import Source
from rayrec.data.synthetic import SyntheticConfig, write_corpus
from rayrec.data.tokenize import ReviewTokenizer
from rayrec.logs import configure


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


def generate(out: str, reviews: int, text_length: str) -> Source:
    """The synthetic Electronics corpus of ``reviews`` reviews as one ``.json.gz``."""
    config = SyntheticConfig.scaled(reviews, domains=("Electronics",), text_length=text_length)
    (source,) = write_corpus(out, config)
    return source


def read_texts(uri: str, limit: int) -> list[str]:
    """The first ``limit`` texts of the corpus (all its reviews are kept by prepare)."""
    texts: list[str] = []
    for table in read_source(Source("amazon2014", uri, "Electronics"), 0):
        texts += [t for t, s in zip(table["text"].to_pylist(), table["status"].to_pylist(),
                                    strict=True) if s == "ok"]  # fmt: skip
        if len(texts) >= limit:
            return texts[:limit]
    return texts


def direct_tokenization(texts: list[str], max_len: int, batch: int = 1024) -> float:
    """Seconds to tokenize ``texts`` with rayrec's tokenizer (ids and opinion mask)
    in this process."""
    tokenizer = ReviewTokenizer("minilm", max_len)
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        tokenizer.encode(texts[start : start + batch])
    return time.perf_counter() - started


def raw_all_cores(texts: list[str], max_len: int, batch: int = 8192) -> tuple[float, float, float]:
    """The references: the ``tokenizers`` backend's ``encode_batch`` (Rust, all cores) over
    ``texts``, truncated to ``max_len`` like the pipeline, on the whole texts and on the word
    prefixes the pipeline tokenizes (``ReviewTokenizer.word_prefixes``). Returns
    (seconds whole, seconds prefixes, mean word pieces per text without special tokens and
    without truncation)."""
    tokenizer = ReviewTokenizer("minilm", max_len)
    truncated = tokenizer.backend_copy(truncate=True)
    prefixes = tokenizer.word_prefixes(texts)
    seconds = []
    for inputs in (texts, prefixes):
        started = time.perf_counter()
        for start in range(0, len(inputs), batch):
            truncated.encode_batch(inputs[start : start + batch])
        seconds.append(time.perf_counter() - started)
    full = tokenizer.backend_copy(truncate=False)
    pieces = 0
    for start in range(0, len(texts), batch):
        encoded = full.encode_batch(texts[start : start + batch], add_special_tokens=False)
        pieces += sum(len(e.ids) for e in encoded)
    return seconds[0], seconds[1], pieces / max(1, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--actors", type=int, default=None, help="tokenizer actors")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--text-length", choices=("realistic", "short"), default="realistic")
    parser.add_argument(
        "--reference-reviews", type=int, default=1_000_000,
        help="the references tokenize this many of the corpus's texts (held in memory)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="Ray's own console output")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log = configure("bench-prepare", verbose=args.verbose)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rayrec-bench-"))

    started = time.perf_counter()
    # in a child process, so that the driver's peak RSS is the preparation's alone
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
        source = child.submit(generate, str(work / "raw"), args.reviews, args.text_length).result()
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
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB
    monitor.running = False
    ray.shutdown()
    seconds = manifest["seconds"]
    records = manifest["counts"]["records"]
    tokenized = manifest["counts"]["reviews"]

    texts = read_texts(source.uri, args.reference_reviews)
    direct_n, direct_s = len(texts), direct_tokenization(texts, args.max_len)
    raw_s, raw_prefixes_s, mean_pieces = raw_all_cores(texts, args.max_len)
    ray_rate = tokenized / seconds["tokenize"]
    direct_rate = direct_n / direct_s
    raw_rate = direct_n / raw_s
    raw_prefixes_rate = direct_n / raw_prefixes_s
    print()
    rows = [
        ("read .json.gz -> staged parquet", seconds["read"], records),
        ("index (k-core, split, documents)", seconds["index"], records),
        ("tokenize (Ray Data actors)", seconds["tokenize"], tokenized),
        ("prepare, end to end", wall, records),
        ("tokenize directly, one process", direct_s, direct_n),
        ("raw encode_batch, all cores", raw_s, direct_n),
        ("  the same, on the word prefixes", raw_prefixes_s, direct_n),
    ]
    print(f"{'stage':<34}{'seconds':>9}{'reviews/s':>12}")
    for name, stage_s, count in rows:
        rate = count / stage_s if stage_s else float("nan")  # the manifest rounds to 0.1 s
        print(f"{name:<34}{stage_s:>9.1f}{rate:>12,.0f}")
    print()
    print(f"mean word pieces per review: {mean_pieces:.1f} (untruncated; --max-len {args.max_len})")
    print(f"Ray Data tokenize / direct tokenize throughput: {ray_rate / direct_rate:.2f}")
    print(f"Ray Data tokenize / raw encode_batch on all cores: {ray_rate / raw_rate:.2f}")
    print(f"  the same, against the word prefixes: {ray_rate / raw_prefixes_rate:.2f}")
    print(f"peak RSS: driver {driver_peak:,.0f} MiB (during prepare), "
          f"Ray workers {monitor.peak_total / 2**20:,.0f} MiB summed, "
          f"{monitor.peak_single / 2**20:,.0f} MiB largest single worker")  # fmt: skip
    print(f"cores: {os.cpu_count()}; token store {manifest['storage']}; Ray's log: {log}")
    figures = {
        "reviews": tokenized,
        "records": records,
        "text_length": args.text_length,
        "mean_word_pieces": round(mean_pieces, 1),
        "max_len": args.max_len,
        "generate_s": round(generate_s, 1),
        "read_s": seconds["read"],
        "index_s": seconds["index"],
        "tokenize_s": seconds["tokenize"],
        "end_to_end_s": round(wall, 1),
        "end_to_end_reviews_per_s": round(records / wall),
        "tokenize_reviews_per_s": round(ray_rate),
        "direct_one_process_reviews_per_s": round(direct_rate),
        "raw_all_cores_reviews_per_s": round(raw_rate),
        "tokenize_vs_direct": round(ray_rate / direct_rate, 3),
        "tokenize_vs_raw_all_cores": round(ray_rate / raw_rate, 3),
        "raw_prefixes_all_cores_reviews_per_s": round(raw_prefixes_rate),
        "tokenize_vs_raw_prefixes_all_cores": round(ray_rate / raw_prefixes_rate, 3),
        "peak_rss_driver_mib": round(driver_peak),
        "peak_rss_worker_mib": round(monitor.peak_single / 2**20),
        "peak_rss_workers_total_mib": round(monitor.peak_total / 2**20),
        "reference_reviews": direct_n,
        "cores": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
