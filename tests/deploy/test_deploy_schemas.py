"""Every rendered manifest validates, strictly, against the KubeRay v1.7.0 CRD schemas."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from convert_crds import DEFAULT_CRD_DIR, convert
from deploy_manifests import SCHEMAS, TARGETS

RAY_KINDS = {"RayCluster", "RayJob"}


def schema_errors(validators, doc) -> list[str]:
    """The schema violations of one document, as readable lines."""
    validator = validators[doc["kind"]]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_vendored_schemas_match_the_crds(tmp_path: Path) -> None:
    """The schemas are the current conversion of the CRDs vendored in ``crds/``."""
    written = convert(DEFAULT_CRD_DIR, tmp_path)
    assert [p.name for p in written] == ["RayCluster.json", "RayJob.json"]
    for fresh in written:
        assert fresh.read_text() == (SCHEMAS / fresh.name).read_text(), (
            f"{fresh.name} is stale: run python tests/deploy/convert_crds.py"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_renders_only_ray_objects(rendered, target: str) -> None:
    docs = rendered[target]
    assert {doc["kind"] for doc in docs} == RAY_KINDS
    assert {doc["apiVersion"] for doc in docs} == {"ray.io/v1"}


@pytest.mark.parametrize("target", TARGETS)
def test_every_document_validates_strictly(rendered, validators, target: str) -> None:
    for doc in rendered[target]:
        assert schema_errors(validators, doc) == [], doc["metadata"]["name"]


def test_an_unknown_field_fails(rendered, validators) -> None:
    cluster = next(d for d in rendered["base"] if d["kind"] == "RayCluster")
    typo = copy.deepcopy(cluster)
    typo["spec"]["enableInTreeAutoscalling"] = True
    container = copy.deepcopy(cluster)
    container["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "x"
    job = copy.deepcopy(next(d for d in rendered["base"] if d["kind"] == "RayJob"))
    job["spec"]["shutdownAfterJobFinish"] = True
    for bad, field in (
        (typo, "enableInTreeAutoscalling"),
        (container, "imagePolicy"),
        (job, "shutdownAfterJobFinish"),
    ):
        assert any(field in line for line in schema_errors(validators, bad))


def test_a_wrong_type_fails(rendered, validators) -> None:
    cluster = copy.deepcopy(next(d for d in rendered["base"] if d["kind"] == "RayCluster"))
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert schema_errors(validators, cluster)
