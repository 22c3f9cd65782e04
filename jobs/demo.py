"""The main job: SIFN and U-BERT on the real Musical Instruments reviews, beside the baselines.

    ray job submit --working-dir . -- python jobs/demo.py

Runs with no arguments on the Musical Instruments 5-core file shipped in data/. Flags: ``python jobs/demo.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["demo"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
