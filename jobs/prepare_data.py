"""Prepare a review dataset (read, k-core, split, tokenize) with Ray Data.

    ray job submit --working-dir . -- python jobs/prepare_data.py --source amazon2014:s3://BUCKET/raw/Electronics_5.json.gz --target Electronics --out s3://BUCKET/prepared/electronics

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/prepare_data.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["prepare"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
