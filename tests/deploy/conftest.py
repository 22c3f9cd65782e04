"""Fixtures of the deployment tests: the rendered kustomizations and the CRD schemas."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from deploy_manifests import PLATFORM_TARGETS, SCHEMAS, TARGETS, kubectl, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """``kubectl kustomize`` of k8s/base and of every overlay, by target name."""
    if kubectl() is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    return {target: render(target) for target in TARGETS}


@pytest.fixture(scope="session")
def validators() -> dict[str, jsonschema.Draft7Validator]:
    """A strict validator of the vendored KubeRay v1.7.0 schema, by kind."""
    return {
        path.stem: jsonschema.Draft7Validator(json.loads(path.read_text()))
        for path in SCHEMAS.glob("*.json")
    }


@pytest.fixture(scope="session")
def platform() -> dict[str, list[dict[str, Any]]]:
    """``kubectl kustomize k8s/platform/<env>``, by the overlay it serves."""
    if kubectl() is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    return {overlay: render(target) for overlay, target in PLATFORM_TARGETS.items()}
