"""What importing the training code prints: nothing from DeepSpeed on a machine without CUDA."""

from __future__ import annotations

import logging
import subprocess
import sys

from rayrec.logs import drop_deepspeed_cpu_notice


def test_importing_the_trainer_prints_no_accelerator_notice() -> None:
    """``import deepspeed`` warns "Setting accelerator to CPU ..." in every process without
    CUDA (this machine); importing it through rayrec.train drops that one line."""
    code = "import rayrec.train.trainer"
    through_rayrec = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "Setting accelerator" not in through_rayrec.stdout + through_rayrec.stderr
    alone = subprocess.run(
        [sys.executable, "-c", "import deepspeed"], capture_output=True, text=True, check=True
    )
    assert "Setting accelerator to CPU" in alone.stdout + alone.stderr  # the line it drops


def test_only_the_cpu_notice_is_dropped() -> None:
    drop_deepspeed_cpu_notice()
    drop_deepspeed_cpu_notice()  # idempotent
    logger = logging.getLogger("DeepSpeed")
    assert len(logger.filters) == 1
    (notice_filter,) = logger.filters

    def record(message: str) -> logging.LogRecord:
        return logger.makeRecord("DeepSpeed", logging.WARNING, __file__, 1, message, (), None)

    assert not notice_filter.filter(record("Setting accelerator to CPU. If you have GPU ..."))
    assert notice_filter.filter(record("NCCL backend in DeepSpeed not yet implemented"))
