"""Render the kustomizations of k8s/ and walk the Ray objects they hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
TARGETS = ("base", "overlays/dev", "overlays/prod")
# The namespace-level objects (ServiceAccounts, NetworkPolicies, ResourceQuota) of each
# environment, applied once per namespace before any Ray object.
PLATFORM_TARGETS = {"overlays/dev": "platform/dev", "overlays/prod": "platform/prod"}
GPU = "nvidia.com/gpu"

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def kubectl() -> str | None:
    """The kubectl executable, if there is one."""
    return shutil.which("kubectl")


def render(target: str) -> list[dict[str, Any]]:
    """``kubectl kustomize k8s/<target>``, as a list of documents (offline: no cluster needed)."""
    out = subprocess.run(
        [kubectl() or "kubectl", "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("512Mi", "500m", "2") as a number."""
    match = _QUANTITY.match(str(value))
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def cluster_specs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Ray cluster specs of a document: a RayCluster's spec, a RayJob's rayClusterSpec."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayCluster":
        return [(name, spec)]
    if doc.get("kind") == "RayJob" and "rayClusterSpec" in spec:
        return [(f"{name} rayClusterSpec", spec["rayClusterSpec"])]
    return []


def ray_groups(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The head group and the worker groups of a cluster spec, named "head" or their groupName."""
    yield "head", spec.get("headGroupSpec") or {}
    for group in spec.get("workerGroupSpecs") or []:
        yield group.get("groupName", "?"), group


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec of a document: Ray head and workers, and a RayJob's submitter."""
    for where, spec in cluster_specs(doc):
        for group, group_spec in ray_groups(spec):
            yield f"{where} {group}", (group_spec.get("template") or {}).get("spec") or {}
    submitter = (doc.get("spec") or {}).get("submitterPodTemplate")
    if doc.get("kind") == "RayJob" and submitter:
        yield f"RayJob/{doc['metadata']['name']} submitter", submitter.get("spec") or {}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers and init containers of a pod spec."""
    return [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]


def images(docs: list[dict[str, Any]]) -> set[str]:
    """Every container image named in ``docs``, the autoscaler's included."""
    found = {c["image"] for doc in docs for _, pod in pod_specs(doc) for c in containers(pod)}
    for doc in docs:
        for _, spec in cluster_specs(doc):
            image = (spec.get("autoscalerOptions") or {}).get("image")
            if image:
                found.add(image)
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize env file (KEY=VALUE lines, # comments) as a dict."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs
