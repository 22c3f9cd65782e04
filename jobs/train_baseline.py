"""Train a baseline: global_mean, biased_mf (default), deepconn, ncf or neumf (ranking).

    ray job submit --working-dir . -- python jobs/train_baseline.py deepconn --data s3://BUCKET/prepared/electronics

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/train_baseline.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:], default_model="biased_mf"))
