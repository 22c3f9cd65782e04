"""``rayrec report DIR``: rebuild the report of a run directory or a sweep directory.

A directory holding ``sweep.json`` is a sweep (``report.md``, ``curves.png``); one holding
``results.json`` is a run (``report.md``, ``loss.png`` and the model's plots). Local paths
and s3:// URIs are read and written in place.
"""

from __future__ import annotations

import argparse

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.report.run_report import RESULTS_FILE, write_run_report
from rayrec.report.sweep_report import write_sweep_report
from rayrec.train.checkpoint import read_results
from rayrec.tune.sweep import SWEEP_FILE

REPORT_READS = ("model", "history", "data.uri")  # the entries of results.json it reads


def run_report(args: argparse.Namespace) -> int:
    """Write the report of ``args.directory`` and print the files written."""
    directory = storage.absolute(args.directory).rstrip("/")
    if storage.exists(storage.join(directory, SWEEP_FILE)):
        files = write_sweep_report(directory)
    elif storage.exists(storage.join(directory, RESULTS_FILE)):
        read_results(directory, REPORT_READS)  # damaged or incomplete: one line
        report = write_run_report(directory, max_rows=args.max_rows)
        files = report.files
        for what, why in report.missing.items():
            print(f"  {what}: not made: {why}")
    else:
        raise CliError(
            f"{directory}: neither a run ({RESULTS_FILE}) nor a sweep ({SWEEP_FILE}) directory"
        )
    for what, uri in files.items():
        print(f"  {what}: {uri}")
    return 0
