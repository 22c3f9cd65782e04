"""Find plain-text credentials in deployment files: they may only be referenced, never written.

Two kinds of check:
- structural, on parsed YAML: an env var named like a credential (``*KEY*``, ``*SECRET*``,
  ``*TOKEN*``, ``*PASSWORD*``, ``*CREDENTIAL*``) must come ``valueFrom.secretKeyRef``, never from a
  literal ``value`` or a ConfigMap; any other field so named must not hold a literal either
  (Secret ``data``/``stringData`` included) unless it is a placeholder (``REPLACE_ME``) or a
  path. Fields that name a credential without holding it (``key``, ``secretName``,
  ``HttpTokens``) are fine;
- textual, on any file: AWS access key ids (``AKIA...``/``ASIA...``), private key blocks, and
  ``ENV``/``ARG`` of a credential in a Dockerfile.
"""

from __future__ import annotations

import re
from typing import Any

SENSITIVE_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL", re.IGNORECASE)
# Fields so named that never hold a credential: references (``key``, ``secretName``) and the
# EC2 setting that requires IMDSv2 session tokens (``MetadataOptions.HttpTokens: required``).
REFERENCE_FIELDS = {"key", "secretName", "HttpTokens"}
PLACEHOLDER = "REPLACE_ME"
TEXT_PATTERNS = {
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a credential baked into an image": re.compile(
        r"^\s*(?:ENV|ARG)\s+\w*(?:KEY|SECRET|TOKEN|PASSW)\w*", re.IGNORECASE | re.MULTILINE
    ),
}


def harmless(value: Any) -> bool:
    """An empty value, a placeholder, a path or a variable reference is not a credential."""
    text = str(value)
    return text == "" or PLACEHOLDER in text or text.startswith(("/", "~/", "$"))


def env_var_findings(entry: dict[str, Any], where: str) -> list[str]:
    """A credential-named env var must be read from a Secret."""
    name = str(entry.get("name", ""))
    if not SENSITIVE_NAME.search(name):
        return []
    if "value" in entry and not harmless(entry["value"]):
        return [f"{where}: env {name} has a literal value"]
    source = entry.get("valueFrom") or {}
    if "valueFrom" in entry and "secretKeyRef" not in source:
        return [f"{where}: env {name} is not read from a Secret (secretKeyRef)"]
    return []


def document_findings(node: Any, where: str) -> list[str]:
    """The plain-text credentials in a parsed YAML document."""
    findings = []
    if isinstance(node, dict):
        if "name" in node and ("value" in node or "valueFrom" in node):
            findings += env_var_findings(node, where)
        for field, value in node.items():
            field_name = str(field)
            if (
                isinstance(value, str | int)
                and not isinstance(value, bool)
                and SENSITIVE_NAME.search(field_name)
                and field_name not in REFERENCE_FIELDS
                and not harmless(value)
            ):
                findings.append(f"{where}: {field_name} holds a literal credential")
            findings += document_findings(value, f"{where}.{field_name}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            findings += document_findings(item, f"{where}[{index}]")
    return findings


def text_findings(text: str, where: str) -> list[str]:
    """Credential-looking strings anywhere in a file's text."""
    return [
        f"{where}: contains {what}"
        for what, pattern in TEXT_PATTERNS.items()
        if pattern.search(text)
    ]
