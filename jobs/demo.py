"""The main job: U-BERT pretraining, then fine-tuning, beside the baselines.

    ray job submit --working-dir . -- python jobs/demo.py

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/demo.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["demo"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
