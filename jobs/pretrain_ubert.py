"""U-BERT cross-domain pretraining (masked opinion tokens + opinion rating).

    ray job submit --working-dir . -- python jobs/pretrain_ubert.py --data s3://BUCKET/prepared/electronics --storage s3://BUCKET/runs

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/pretrain_ubert.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train", "ubert_pretrain"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
