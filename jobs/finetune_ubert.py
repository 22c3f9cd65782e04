"""U-BERT fine-tuning for rating prediction on the target domain.

    ray job submit --working-dir . -- python jobs/finetune_ubert.py --data s3://BUCKET/prepared/electronics --pretrained s3://BUCKET/runs/NAME/model.safetensors --storage s3://BUCKET/runs

Runs with no arguments on the embedded synthetic corpus. Flags: ``python jobs/finetune_ubert.py --help``.
"""

import sys

from rayrec.cli import run_job

COMMAND = ["train", "ubert_finetune"]

if __name__ == "__main__":
    sys.exit(run_job(COMMAND, sys.argv[1:]))
