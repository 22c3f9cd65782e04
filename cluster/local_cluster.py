"""A multi-node Ray cluster on one machine, for development: a head plus N worker nodes.

    python cluster/local_cluster.py start [--workers 1] [--port 26379] [--temp-dir DIR]
    python cluster/local_cluster.py status [--port 26379] [--temp-dir DIR]
    python cluster/local_cluster.py stop [--port 26379] [--temp-dir DIR]

Each node is a separate ``ray start`` with its own ports and temp dir, all on 127.0.0.1, so the
cluster cannot collide with another Ray cluster on the machine (Ray's defaults: port 6379,
dashboard 8265, /tmp/ray). Port layout, from ``--port P``: P is the GCS, P+1 the dashboard and
job API, P+2 the Ray client server; node i (0 is the head) uses P+10+10i .. P+15+10i for its
agents, node and object managers, and P+1000+100i .. P+1099+100i for its workers.

The temp dir is private: ``start`` creates it with mode 0700, or accepts an existing one only
if it is a real directory (not a symbolic link) owned by the current user and closed to group
and others, so that nobody else on the machine can plant files (or a symbolic link where the
token goes) in a predictable ``/tmp/rayrec-local-PORT``. Every file the script writes there is
created afresh with ``O_EXCL | O_NOFOLLOW``.

Token authentication is on: ``start`` writes a fresh random token to DIR/auth_token (mode 0600)
and starts every node with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH pointing at it; it prints
the exports a client needs. ``--no-auth`` starts the nodes with RAY_AUTH_MODE=disabled instead.

``stop`` ends exactly the processes of this cluster, found by a marker variable that every
process inherits from its ``ray start`` (never ``ray stop``, which would stop every Ray cluster
of the machine), and fails if any raylet or GCS server of the cluster is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

DEFAULT_PORT = 26379
HOST = "127.0.0.1"
MARKER = "RAYREC_LOCAL_CLUSTER"
MAX_WORKERS = 8
STATE_FILE = "local_cluster.json"
CONNECT_TIMEOUT_S = 120
# `ray start` gives a node 30 s to register with the GCS, then exits non-zero but leaves the
# node running; on a loaded machine it registers later, so wait_for_nodes has the last word.
SLOW_REGISTRATION = "timed out during startup"
TOKEN_FILE = "auth_token"


def default_temp_dir(port: int) -> Path:
    """The default temp dir of the cluster on ``port``: short, as Ray's socket paths must be."""
    return Path(f"/tmp/rayrec-local-{port}")


def node_ports(port: int, index: int) -> list[str]:
    """The ``ray start`` port flags of node ``index`` (0 is the head) of the cluster on ``port``."""
    base = port + 10 + 10 * index
    workers = port + 1000 + 100 * index
    return [
        f"--metrics-export-port={base}",
        f"--dashboard-agent-listen-port={base + 1}",
        f"--dashboard-agent-grpc-port={base + 2}",
        f"--runtime-env-agent-port={base + 3}",
        f"--node-manager-port={base + 4}",
        f"--object-manager-port={base + 5}",
        f"--min-worker-port={workers}",
        f"--max-worker-port={workers + 99}",
    ]


def node_command(args: argparse.Namespace, index: int, temp_dir: Path) -> list[str]:
    """The ``ray start`` command line of node ``index``."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start"]
    if index == 0:
        cmd += [
            "--head",
            f"--port={args.port}",
            f"--dashboard-host={HOST}",
            f"--dashboard-port={args.port + 1}",
            f"--ray-client-server-port={args.port + 2}",
            f"--include-dashboard={'false' if args.no_dashboard else 'true'}",
        ]
    else:
        cmd.append(f"--address={HOST}:{args.port}")
    return cmd + [
        f"--node-ip-address={HOST}",
        f"--temp-dir={temp_dir / f'node{index}'}",
        f"--num-cpus={args.cpus_per_node}",
        f"--object-store-memory={args.object_store_mb * 1024 * 1024}",
        "--disable-usage-stats",
        *node_ports(args.port, index),
    ]


def cluster_env(temp_dir: Path, auth: bool) -> dict[str, str]:
    """The environment a node or a client of the cluster in ``temp_dir`` runs with.

    The directory of this Python interpreter comes first on PATH, so that a job's
    ``python jobs/...`` entrypoint runs in the environment the cluster was started from."""
    env = dict(os.environ, **{MARKER: str(temp_dir)})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if auth:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(temp_dir / TOKEN_FILE))
    else:
        env["RAY_AUTH_MODE"] = "disabled"
        env.pop("RAY_AUTH_TOKEN_PATH", None)
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    return env


def cluster_processes(temp_dir: Path) -> list[psutil.Process]:
    """The live processes of the cluster in ``temp_dir``.

    Those that carry its marker variable, and all their descendants: processes that rename
    themselves (``ray::DashboardAgent``) no longer show their environment.
    """
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == str(temp_dir):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return list(found.values())


def count_alive_nodes(state: dict) -> int:
    """Connect to the cluster described by ``state`` and count its alive nodes."""
    code = (
        "import json, ray\n"
        f"ray.init(address={state['address']!r}, logging_level='ERROR', log_to_driver=False)\n"
        "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))\n"
    )
    env = cluster_env(Path(state["temp_dir"]), state["auth"])
    env.pop(MARKER)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=CONNECT_TIMEOUT_S,
    )
    return int(out.stdout.strip().splitlines()[-1])


def private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or accept it only if it is a real directory of this user
    that group and others cannot write or read; anything else is refused (``SystemExit``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SystemExit(f"refusing temp dir {path}: not a directory (a symbolic link?)")
    if info.st_uid != os.getuid():
        raise SystemExit(f"refusing temp dir {path}: owned by uid {info.st_uid}, not by you")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise SystemExit(
            f"refusing temp dir {path}: mode {stat.S_IMODE(info.st_mode):o} lets others in "
            "(it must be 0700; remove it or chmod 700 it)"
        )
    return path


def open_private(path: Path, mode: int = 0o600) -> int:
    """A new file at ``path`` for writing (an old one is removed first), never through a
    symbolic link: ``O_CREAT | O_EXCL | O_NOFOLLOW``."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # unlink removes a planted link itself, not what it points to
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to a new file ``path`` (:func:`open_private`)."""
    with os.fdopen(open_private(path, mode), "w") as f:
        f.write(text)


def write_token(path: Path) -> None:
    """Write a fresh random Ray token to ``path``, readable by its owner only."""
    write_private(path, secrets.token_hex(32))


def read_state(temp_dir: Path) -> dict:
    """The state file ``start`` wrote, or an error naming the missing cluster."""
    path = temp_dir / STATE_FILE
    if os.path.lexists(temp_dir):
        private_dir(temp_dir)  # never read a state file someone else could have written
    if not path.exists():
        raise SystemExit(f"no local cluster in {temp_dir} ({path} is missing)")
    return json.loads(path.read_text())


def start(args: argparse.Namespace, temp_dir: Path) -> int:
    """Start the head and ``args.workers`` worker nodes; print how to use the cluster."""
    if cluster_processes(temp_dir):
        raise SystemExit(f"a local cluster is already running in {temp_dir}; stop it first")
    private_dir(temp_dir)
    auth = not args.no_auth
    if auth:
        write_token(temp_dir / TOKEN_FILE)
    state = {
        "address": f"{HOST}:{args.port}",
        "dashboard": None if args.no_dashboard else f"http://{HOST}:{args.port + 1}",
        "temp_dir": str(temp_dir),
        "nodes": args.workers + 1,
        "auth": auth,
    }
    write_private(temp_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    env = cluster_env(temp_dir, auth)
    for index in range(args.workers + 1):
        log = temp_dir / f"ray_start_node{index}.log"
        with os.fdopen(open_private(log), "w") as out:
            done = subprocess.run(
                node_command(args, index, temp_dir), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        if done.returncode != 0 and SLOW_REGISTRATION not in log.read_text():
            stop(temp_dir)
            raise SystemExit(f"ray start of node {index} failed; see {log}")
        if index == 0:  # workers can join only a head that has registered
            wait_or_stop(state, 1, args.timeout)
    alive = wait_or_stop(state, state["nodes"], args.timeout)
    print(f"Ray cluster of {alive} nodes at {state['address']} (temp dir {temp_dir})")
    print("Use it from a shell with:")
    print(f"  export {client_exports(state)}")
    if state["dashboard"]:
        print(f"  ray job submit --address {state['dashboard']} -- python jobs/demo.py")
    print(f"Stop it with: python {sys.argv[0]} stop --port {args.port} --temp-dir {temp_dir}")
    return 0


def client_exports(state: dict) -> str:
    """The environment variables a client of the cluster needs, as ``export`` arguments."""
    exports = [f"RAY_ADDRESS={state['address']}"]
    if state["auth"]:
        token_path = Path(state["temp_dir"]) / TOKEN_FILE
        exports += ["RAY_AUTH_MODE=token", f"RAY_AUTH_TOKEN_PATH={token_path}"]
    else:
        exports.append("RAY_AUTH_MODE=disabled")
    return " ".join(exports)


def wait_for_nodes(state: dict, count: int, timeout: float) -> int:
    """Wait until ``count`` nodes of the cluster are alive; return their number."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            alive = count_alive_nodes(state)
        except subprocess.SubprocessError:  # the head is not answering yet
            alive = 0
        if alive >= count or time.monotonic() > deadline:
            break
        time.sleep(1)
    if alive < count:
        raise SystemExit(f"only {alive} of {count} nodes came up in {timeout:.0f} s")
    return alive


def wait_or_stop(state: dict, count: int, timeout: float) -> int:
    """``wait_for_nodes``, stopping the cluster if the nodes do not come up."""
    try:
        return wait_for_nodes(state, count, timeout)
    except SystemExit:
        stop(Path(state["temp_dir"]))
        raise


def status(temp_dir: Path) -> int:
    """Print the number of alive nodes; exit 1 if some are missing."""
    state = read_state(temp_dir)
    if not cluster_processes(temp_dir):
        print(f"the local cluster in {temp_dir} is not running")
        return 1
    alive = count_alive_nodes(state)
    print(f"{alive} of {state['nodes']} nodes alive at {state['address']}")
    return 0 if alive == state["nodes"] else 1


def stop(temp_dir: Path, grace: float = 15.0) -> int:
    """End every process of the cluster: SIGTERM, then SIGKILL after ``grace`` seconds."""
    procs = cluster_processes(temp_dir)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace)
    left = [p.pid for p in cluster_processes(temp_dir)]
    if left:
        raise SystemExit(f"processes of the cluster in {temp_dir} are still running: {left}")
    print(f"stopped {len(procs)} processes of the local cluster in {temp_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``start``, ``status`` and ``stop``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "status", "stop"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="GCS port of the head")
    parser.add_argument("--temp-dir", type=Path, help="default: /tmp/rayrec-local-PORT")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, MAX_WORKERS + 1))
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--object-store-mb", type=int, default=512)
    parser.add_argument("--no-dashboard", action="store_true", help="no dashboard or job API")
    parser.add_argument("--no-auth", action="store_true", help="RAY_AUTH_MODE=disabled")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for nodes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command of the local cluster."""
    args = build_parser().parse_args(argv)
    # absolute, not resolved: a symbolic link planted at the default path must be refused by
    # private_dir, not followed to wherever it points
    temp_dir = (args.temp_dir or default_temp_dir(args.port)).absolute()
    if args.command == "start":
        return start(args, temp_dir)
    if args.command == "status":
        return status(temp_dir)
    return stop(temp_dir)


if __name__ == "__main__":
    sys.exit(main())
