"""The KubeRay operator's own checks, which the CRD schema cannot express.

Mirrors ``ValidateRayClusterMetadata``, ``ValidateRayClusterSpec``, ``ValidateRayJobMetadata`` and
``ValidateRayJobSpec`` of KubeRay v1.7 (ray-operator/controllers/ray/utils/validation.go) for
the fields rayrec uses, plus the worker-group replica bounds that the autoscaler relies on.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from deploy_manifests import cluster_specs, ray_groups

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# 63 minus the longest Service suffix "-serve-svc"; a RayJob's cluster adds "-" and 5 characters.
MAX_NAME = {"RayCluster": 53, "RayJob": 47}
INT32_MAX = 2**31 - 1


def name_errors(doc: dict[str, Any]) -> list[str]:
    """A RayCluster or RayJob name must be a DNS-1035 label short enough for its Services."""
    kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "")
    if kind not in MAX_NAME:
        return []
    errors = []
    if not DNS_1035.match(name):
        errors.append(f"{kind} name {name!r} is not a DNS-1035 label")
    if len(name) > MAX_NAME[kind]:
        errors.append(f"{kind} name {name!r} is longer than {MAX_NAME[kind]} characters")
    return errors


def cluster_errors(where: str, spec: dict[str, Any]) -> list[str]:
    """Containers present, group names valid, minReplicas <= replicas <= maxReplicas."""
    errors = []
    for group, group_spec in ray_groups(spec):
        pod = (group_spec.get("template") or {}).get("spec") or {}
        if not pod.get("containers"):
            errors.append(f"{where} {group}: needs at least one container")
        if group == "head":
            continue
        if not DNS_1123_LABEL.match(group) or len(group) > 63:
            errors.append(f"{where}: groupName {group!r} is not a DNS-1123 label")
        low = group_spec.get("minReplicas", 0)
        high = group_spec.get("maxReplicas", INT32_MAX)
        replicas = group_spec.get("replicas", low)
        if not 0 <= low <= replicas <= high:
            errors.append(
                f"{where} {group}: needs 0 <= minReplicas ({low}) <= replicas ({replicas})"
                f" <= maxReplicas ({high})"
            )
    return errors


def rayjob_errors(doc: dict[str, Any]) -> list[str]:
    """The RayJob spec rules: one cluster source, consistent TTL, positive deadlines."""
    if doc.get("kind") != "RayJob":
        return []
    spec, name = doc.get("spec") or {}, f"RayJob/{doc['metadata']['name']}"
    errors = []
    if ("rayClusterSpec" in spec) == bool(spec.get("clusterSelector")):
        errors.append(f"{name}: needs exactly one of rayClusterSpec and clusterSelector")
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if ttl < 0:
        errors.append(f"{name}: ttlSecondsAfterFinished must not be negative")
    if ttl > 0 and not spec.get("shutdownAfterJobFinishes"):
        errors.append(f"{name}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
    if spec.get("activeDeadlineSeconds", 1) <= 0:
        errors.append(f"{name}: activeDeadlineSeconds must be positive")
    if spec.get("backoffLimit", 0) < 0:
        errors.append(f"{name}: backoffLimit must not be negative")
    try:
        yaml.safe_load(spec.get("runtimeEnvYAML", ""))
    except yaml.YAMLError as err:
        errors.append(f"{name}: runtimeEnvYAML is not YAML: {err}")
    return errors


def operator_errors(doc: dict[str, Any]) -> list[str]:
    """Everything the KubeRay operator would reject in ``doc`` beyond its schema."""
    errors = name_errors(doc) + rayjob_errors(doc)
    for where, spec in cluster_specs(doc):
        errors += cluster_errors(where, spec)
    return errors
