"""The KubeRay operator's own checks hold for every rendered manifest, and catch bad ones."""

from __future__ import annotations

import copy

import pytest
from deploy_manifests import TARGETS
from deploy_rules import operator_errors


def base_object(rendered, kind: str) -> dict:
    """A deep copy of the first ``kind`` object of the rendered base."""
    return copy.deepcopy(next(d for d in rendered["base"] if d["kind"] == kind))


@pytest.mark.parametrize("target", TARGETS)
def test_manifests_pass_the_operator_checks(rendered, target: str) -> None:
    for doc in rendered[target]:
        assert operator_errors(doc) == [], doc["metadata"]["name"]


def test_replicas_outside_their_bounds_are_caught(rendered) -> None:
    cluster = base_object(rendered, "RayCluster")
    group = cluster["spec"]["workerGroupSpecs"][0]
    group.update(minReplicas=2, replicas=1, maxReplicas=4)
    assert any("minReplicas (2) <= replicas (1)" in e for e in operator_errors(cluster))
    group.update(minReplicas=0, replicas=5, maxReplicas=4)
    assert any("replicas (5) <= maxReplicas (4)" in e for e in operator_errors(cluster))


def test_a_group_without_containers_is_caught(rendered) -> None:
    job = base_object(rendered, "RayJob")
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"] = []
    assert any("head: needs at least one container" in e for e in operator_errors(job))


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("RayCluster", "Rayrec"),
        ("RayCluster", "1rayrec"),
        ("RayJob", "rayrec_job"),
        ("RayJob", "j" * 48),
    ],
)
def test_bad_names_are_caught(rendered, kind: str, name: str) -> None:
    doc = base_object(rendered, kind)
    doc["metadata"]["name"] = name
    assert operator_errors(doc)


def test_a_rayjob_without_its_own_cluster_or_ttl_rules_is_caught(rendered) -> None:
    job = base_object(rendered, "RayJob")
    job["spec"]["clusterSelector"] = {"ray.io/cluster": "rayrec"}
    job["spec"]["shutdownAfterJobFinishes"] = False
    errors = operator_errors(job)
    assert any("exactly one of rayClusterSpec and clusterSelector" in e for e in errors)
    assert any("needs shutdownAfterJobFinishes" in e for e in errors)
