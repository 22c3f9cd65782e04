"""Hyperparameter sweep with Ray Tune (default model: sifn).

    ray job submit --working-dir . -- python jobs/tune.py sifn --data s3://BUCKET/prepared/electronics --num-samples 2 --set 'sifn.lambda=grid(0.1,1,10)'

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/tune.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["tune"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:], default_model="sifn"))
