"""Train SIFN (sentiment-aware interactive fusion network).

    ray job submit --working-dir . -- python jobs/train_sifn.py --data s3://BUCKET/prepared/electronics --storage s3://BUCKET/runs

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/train_sifn.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train", "sifn"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
