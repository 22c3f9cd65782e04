"""Train SAFMR (self-attentive FM with review-based transfer).

    ray job submit --working-dir . -- python jobs/train_safmr.py --data s3://BUCKET/prepared/electronics --storage s3://BUCKET/runs

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/train_safmr.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train", "safmr"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
