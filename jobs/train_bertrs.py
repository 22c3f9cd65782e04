"""Train BERT-RS (BERT semantic layer + GMF + MLP, ranking).

    ray job submit --working-dir . -- python jobs/train_bertrs.py --data s3://BUCKET/prepared/electronics --storage s3://BUCKET/runs

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/train_bertrs.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train", "bertrs"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
