"""The local Ray instance ``ensure_ray`` starts: Ray Train's preemption watcher is off in it."""

from __future__ import annotations

import os
import subprocess
import sys

from rayrec.train.trainer import PREEMPTION_WATCHER_ENV

SEEN_BY_A_TASK = """
import os, ray
from rayrec.train.trainer import PREEMPTION_WATCHER_ENV, ensure_ray
ensure_ray()
print(ray.get(ray.remote(lambda: os.environ.get(PREEMPTION_WATCHER_ENV)).remote()))
"""


def test_a_local_instance_runs_without_the_preemption_watcher() -> None:
    """The controller of every run reads the variable in its own process: a task of the
    instance that ``ensure_ray`` started must see it (it does not when it is set after
    ``ray.init``)."""
    env = {k: v for k, v in os.environ.items() if k != PREEMPTION_WATCHER_ENV}
    env["RAY_ADDRESS"] = "local"
    done = subprocess.run(
        [sys.executable, "-c", SEEN_BY_A_TASK],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "0", done.stdout + done.stderr
