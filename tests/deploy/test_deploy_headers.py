"""Every deployment config opens with a comment giving the command that uses it."""

from __future__ import annotations

import re

import pytest
from deploy_manifests import K8S, REPO

CONFIGS = sorted(
    [
        *K8S.rglob("*.yaml"),
        *K8S.rglob("*.env"),
        *(REPO / "cluster").glob("*.yaml"),
        REPO / "Dockerfile",
    ]
)
COMMAND = re.compile(
    r"\b(kubectl( -n \S+)? (apply|kustomize|create)|ray (up|start|job)|docker build)\b"
)


def opening_comment(text: str) -> str:
    """The comment lines a file opens with."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_opens_with_its_command(path) -> None:
    assert COMMAND.search(opening_comment(path.read_text())), path
