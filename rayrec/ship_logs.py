"""Copy this Ray node's logs to the bucket before its pod goes away: ``python -m
rayrec.ship_logs``, the preStop hook of every Ray container of k8s/ (KubeRay deletes a job's
cluster ``ttlSecondsAfterFinished`` after the job, and its pods' logs with it).

The logs of the node's current session (``ray/session_latest/logs`` of the system temp
directory, Ray's default ``/tmp/ray``; or the directory given as the argument) go to
``$RAYREC_LOG_URI/<cluster>/<pod>/<session>/`` (cluster: ``$RAY_CLUSTER_NAME``, which KubeRay
sets; pod: ``$HOSTNAME``). Without ``RAYREC_LOG_URI`` nothing is copied. A hook must never
block the pod's deletion: every failure is printed and the exit status is 0; the pod's
``terminationGracePeriodSeconds`` bounds the copy.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from rayrec.data import storage

LOGS = Path(tempfile.gettempdir(), "ray", "session_latest", "logs")  # Ray's default temp dir


def destination(base: str, logs: Path, env: Mapping[str, str]) -> str:
    """Where the logs of ``logs`` go under ``base``: ``<cluster>/<pod>/<session>``."""
    session = logs.resolve().parent.name  # session_latest is a link to session_<time>_<pid>
    cluster = env.get("RAY_CLUSTER_NAME") or "cluster"
    pod = env.get("HOSTNAME") or "pod"
    return storage.join(base, cluster, pod, session)


def ship(logs: Path, target: str) -> int:
    """Copy every file under ``logs`` to ``target``; the number of files copied."""
    files = [path for path in logs.rglob("*") if path.is_file()]
    fs, root = storage.filesystem(target)
    for path in files:
        remote = f"{root.rstrip('/')}/{path.relative_to(logs).as_posix()}"
        fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), remote)
    return len(files)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Ship the logs (``argv``: an optional logs directory instead of the session's)."""
    env = os.environ if env is None else env
    logs = Path(argv[0]) if argv else LOGS
    base = env.get("RAYREC_LOG_URI")
    if not base:
        print("rayrec.ship_logs: RAYREC_LOG_URI is not set; nothing shipped")
        return 0
    try:
        target = destination(base, logs, env)
        count = ship(logs, target)
    except Exception as err:  # a preStop hook must not fail the pod's deletion
        print(f"rayrec.ship_logs: logs of {logs} not shipped: {err}", file=sys.stderr)
        return 0
    print(f"rayrec.ship_logs: {count} files of {logs} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
