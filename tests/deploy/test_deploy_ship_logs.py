"""rayrec.ship_logs, the preStop hook of every Ray container: the session's logs land under
``$RAYREC_LOG_URI/<cluster>/<pod>/<session>/``, and a failure never fails the hook."""

from __future__ import annotations

from pathlib import Path

from rayrec.ship_logs import main


def session_logs(root: Path) -> Path:
    """A Ray temp dir: session_latest -> session_X, with logs and a nested file."""
    session = root / "session_2026-12-01_10-00-00_1"
    (session / "logs" / "events").mkdir(parents=True)
    (session / "logs" / "raylet.out").write_text("raylet started\n")
    (session / "logs" / "events" / "event_GCS.log").write_text("{}\n")
    (root / "session_latest").symlink_to(session)
    return root / "session_latest" / "logs"


def test_logs_are_copied_under_cluster_pod_and_session(tmp_path: Path) -> None:
    logs = session_logs(tmp_path / "ray")
    env = {
        "RAYREC_LOG_URI": str(tmp_path / "bucket" / "logs"),
        "RAY_CLUSTER_NAME": "rayrec-train-sifn-abcde",
        "HOSTNAME": "rayrec-train-sifn-abcde-head-xyz",
    }
    assert main([str(logs)], env) == 0
    shipped = (
        tmp_path
        / "bucket/logs/rayrec-train-sifn-abcde/rayrec-train-sifn-abcde-head-xyz"
        / "session_2026-12-01_10-00-00_1"
    )
    assert (shipped / "raylet.out").read_text() == "raylet started\n"
    assert (shipped / "events" / "event_GCS.log").exists()


def test_without_a_destination_or_on_failure_the_hook_still_exits_0(tmp_path: Path, capsys) -> None:
    logs = session_logs(tmp_path / "ray")
    assert main([str(logs)], {}) == 0
    assert "RAYREC_LOG_URI is not set" in capsys.readouterr().out
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert main([str(logs)], {"RAYREC_LOG_URI": str(blocker / "logs")}) == 0
    assert "not shipped" in capsys.readouterr().err
