"""No plain-text credential in any deployment file; the scanner catches one when it is there."""

from __future__ import annotations

import pytest
import yaml
from deploy_credentials import document_findings, text_findings
from deploy_manifests import K8S, REPO, TARGETS

FILES = sorted(
    [
        *K8S.rglob("*.yaml"),
        *K8S.rglob("*.env"),
        *(REPO / "cluster").glob("*.yaml"),
        REPO / "Dockerfile",
        REPO / "docs" / "deploy.md",
    ]
)
# Built from parts so that this file does not itself hold a key-shaped string.
FAKE_KEY_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


def file_findings(path) -> list[str]:
    """The findings of one file: its text, and its YAML documents if it has any."""
    text = path.read_text()
    where = str(path.relative_to(REPO))
    findings = text_findings(text, where)
    if path.suffix == ".yaml":
        for index, doc in enumerate(yaml.safe_load_all(text)):
            findings += document_findings(doc, f"{where}#{index}")
    return findings


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_credential_in_files(path) -> None:
    assert file_findings(path) == []


@pytest.mark.parametrize("target", TARGETS)
def test_no_credential_in_rendered_manifests(rendered, target: str) -> None:
    for doc in rendered[target]:
        assert document_findings(doc, doc["metadata"]["name"]) == []


def test_secrets_only_as_named_placeholder_examples(rendered) -> None:
    for target in TARGETS:
        assert all(doc["kind"] != "Secret" for doc in rendered[target])
    secret_files = [p for p in FILES if "kind: Secret" in p.read_text()]
    assert [p.relative_to(REPO).as_posix() for p in secret_files] == [
        "k8s/examples/secret.example.yaml"
    ]
    for doc in yaml.safe_load_all(secret_files[0].read_text()):
        assert doc["apiVersion"] == "v1" and doc["type"] == "Opaque"
        assert all(isinstance(v, str) for v in doc["stringData"].values())


def container_with_env(env: list[dict]) -> dict:
    """A minimal RayCluster whose head container has ``env``."""
    return {
        "kind": "RayCluster",
        "spec": {"headGroupSpec": {"template": {"spec": {"containers": [{"env": env}]}}}},
    }


@pytest.mark.parametrize(
    "env",
    [
        [{"name": "AWS_SECRET_ACCESS_KEY", "value": FAKE_SECRET}],
        [{"name": "RAY_AUTH_TOKEN", "value": "0123456789abcdef"}],
        [{"name": "DB_PASSWORD", "value": "hunter2"}],
        [
            {
                "name": "AWS_ACCESS_KEY_ID",
                "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
            }
        ],
    ],
)
def test_a_literal_credential_env_var_is_caught(env: list[dict]) -> None:
    assert document_findings(container_with_env(env), "bad")


def test_a_secret_with_real_values_is_caught() -> None:
    secret = {"kind": "Secret", "stringData": {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET}}
    assert document_findings(secret, "bad") == [
        "bad.stringData: AWS_SECRET_ACCESS_KEY holds a literal credential"
    ]


def test_key_shaped_strings_are_caught_in_any_text() -> None:
    assert text_findings(f"run_options: [-e, ID={FAKE_KEY_ID}]", "bad")
    assert text_findings("-----BEGIN RSA PRIVATE KEY-----\n", "bad")
    assert text_findings("FROM x\nENV AWS_SECRET_ACCESS_KEY=abc\n", "bad")


def test_references_and_placeholders_are_not_findings() -> None:
    env = [
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "RAY_AUTH_TOKEN_PATH", "value": "/tmp/auth_token"},
        {"name": "RAY_AUTH_MODE", "value": "token"},
    ]
    assert document_findings(container_with_env(env), "good") == []
    assert document_findings({"stringData": {"auth_token": "REPLACE_ME"}}, "good") == []
