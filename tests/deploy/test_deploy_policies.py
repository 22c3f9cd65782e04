"""rayrec's deployment policies: versions and image, cluster shape, resources, security."""

from __future__ import annotations

import re
import sys
import tomllib

import pytest
import ray
import yaml
from deploy_manifests import (
    GPU,
    REPO,
    TARGETS,
    cluster_specs,
    containers,
    images,
    parse_quantity,
    pod_specs,
    ray_groups,
)
from packaging.specifiers import SpecifierSet

RAY_PIN = re.compile(r"^ray(\[[^\]]*\])?(?P<spec>[<>=!~].*)$")


def ray_specifier() -> SpecifierSet:
    """The Ray version range that pyproject.toml pins."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [m["spec"] for dep in project["dependencies"] if (m := RAY_PIN.match(dep))]
    assert len(pins) == 1, pins
    return SpecifierSet(pins[0])


def all_specs(rendered, target: str):
    """Every (where, cluster spec) pair of a target."""
    return [pair for doc in rendered[target] for pair in cluster_specs(doc)]


def workers(spec: dict) -> list[dict]:
    """The worker groups of a cluster spec."""
    return spec.get("workerGroupSpecs") or []


def ray_container(group: dict) -> dict:
    """The Ray container (the first) of a head or worker group."""
    return group["template"]["spec"]["containers"][0]


def test_ray_version_is_the_pinned_one(rendered) -> None:
    assert ray.__version__ in ray_specifier()
    for target in TARGETS:
        for where, spec in all_specs(rendered, target):
            assert spec["rayVersion"] == ray.__version__, where


def test_one_image_across_all_manifests(rendered) -> None:
    found = set().union(*(images(rendered[target]) for target in TARGETS))
    launcher = yaml.safe_load((REPO / "cluster" / "aws-gpu.yaml").read_text())
    found.add(launcher["docker"]["image"])
    assert len(found) == 1, found
    assert re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", found.pop()), "pin the image by digest"


def test_dockerfile_builds_on_the_pinned_ray_and_python() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert bases == [f"rayproject/ray:{ray.__version__}-{python}-gpu"]
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and not any(re.search(r"\s(-c|--constraint)\b", i) for i in installs)


@pytest.mark.parametrize("target", TARGETS)
def test_head_schedules_no_training_work(rendered, target: str) -> None:
    for where, spec in all_specs(rendered, target):
        head = spec["headGroupSpec"]
        assert head["rayStartParams"].get("num-cpus") == "0", where
        assert GPU not in ray_container(head)["resources"]["limits"], where


def gpu_groups(spec: dict) -> list[dict]:
    """The worker groups whose Ray container asks for GPUs."""
    return [g for g in workers(spec) if GPU in ray_container(g)["resources"]["limits"]]


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
def test_gpu_workers_autoscale_from_zero(rendered, target: str) -> None:
    for where, spec in all_specs(rendered, target):
        assert spec["enableInTreeAutoscaling"] is True, where
        if "prepare-data" not in where:  # preparation runs on its CPU group only
            assert [g["groupName"] for g in gpu_groups(spec)] == ["gpu"], where
        for group in workers(spec):
            assert group["replicas"] == group["minReplicas"] == 0, where
            assert group["minReplicas"] < group["maxReplicas"], where
        for group in gpu_groups(spec):
            limits = ray_container(group)["resources"]["limits"]
            assert parse_quantity(limits[GPU]) >= 1, where
            tolerations = group["template"]["spec"].get("tolerations") or []
            assert any(t["key"] == GPU for t in tolerations), where


def test_prod_is_multi_gpu_and_fits_its_training_workers(rendered) -> None:
    for where, spec in all_specs(rendered, "overlays/prod"):
        if "prepare-data" in where:
            continue
        (group,) = gpu_groups(spec)
        per_node = parse_quantity(ray_container(group)["resources"]["limits"][GPU])
        assert per_node > 1, where
        for doc in rendered["overlays/prod"]:
            match = re.search(r"--num-workers (\d+) --use-gpu", doc["spec"].get("entrypoint", ""))
            if match:
                assert int(match.group(1)) <= per_node * group["maxReplicas"], where


def test_dev_is_cpu_only_with_at_most_one_worker(rendered) -> None:
    assert GPU not in yaml.safe_dump(rendered["overlays/dev"])
    for where, spec in all_specs(rendered, "overlays/dev"):
        (group,) = workers(spec)
        assert group["minReplicas"] == group["replicas"] == 0, where
        assert group["maxReplicas"] == 1, where
        assert not group["template"]["spec"].get("tolerations"), where


@pytest.mark.parametrize("target", TARGETS)
def test_shm_is_memory_backed_and_holds_the_object_store(rendered, target: str) -> None:
    for where, spec in all_specs(rendered, target):
        for name, group in ray_groups(spec):
            pod = group["template"]["spec"]
            mounts = {m["mountPath"]: m["name"] for m in ray_container(group)["volumeMounts"]}
            volume = next(v for v in pod["volumes"] if v["name"] == mounts["/dev/shm"])
            size = parse_quantity(volume["emptyDir"]["sizeLimit"])
            assert volume["emptyDir"]["medium"] == "Memory", (where, name)
            assert size >= int(group["rayStartParams"]["object-store-memory"]), (where, name)
            memory = parse_quantity(ray_container(group)["resources"]["limits"]["memory"])
            assert size < memory, (where, name)


@pytest.mark.parametrize("target", TARGETS)
def test_requests_and_limits_everywhere(rendered, target: str) -> None:
    resources = [
        (f"{where} {c['name']}", c.get("resources") or {})
        for doc in rendered[target]
        for where, pod in pod_specs(doc)
        for c in containers(pod)
    ]
    resources += [
        (f"{w} autoscaler", s["autoscalerOptions"]["resources"])
        for w, s in all_specs(rendered, target)
    ]
    for where, res in resources:
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind) or {}), (where, kind)
        if GPU in res["limits"]:
            assert res["requests"].get(GPU) == res["limits"][GPU], where


@pytest.mark.parametrize("target", TARGETS)
def test_nothing_runs_as_root(rendered, target: str) -> None:
    for doc in rendered[target]:
        for where, pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["runAsUser"] == 1000, where
            assert not pod.get("hostNetwork"), where
            for c in containers(pod):
                context = c.get("securityContext") or {}
                assert context.get("allowPrivilegeEscalation") is False, (where, c["name"])
                assert not context.get("privileged"), (where, c["name"])
                assert not any(p.get("hostPort") for p in c.get("ports") or []), where
    for where, spec in all_specs(rendered, target):
        assert spec["autoscalerOptions"]["securityContext"]["runAsNonRoot"] is True, where


@pytest.mark.parametrize("target", TARGETS)
def test_dashboard_and_job_api_stay_inside_the_cluster(rendered, target: str) -> None:
    for where, spec in all_specs(rendered, target):
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", where
        assert not head.get("enableIngress"), where
        service = (head.get("headService") or {}).get("spec") or {}
        assert service.get("type", "ClusterIP") == "ClusterIP", where


@pytest.mark.parametrize("target", TARGETS)
def test_token_authentication_is_on(rendered, target: str) -> None:
    """Token auth everywhere: the interactive RayCluster with the shared Secret, every RayJob's
    cluster with a token KubeRay generates for it (no secretName: owned by that cluster), which
    KubeRay also gives the job's submitter (no shared token is referenced there)."""
    for doc in rendered[target]:
        for where, spec in cluster_specs(doc):
            assert spec["authOptions"]["mode"] == "token", where
            if doc["kind"] == "RayCluster":
                assert spec["authOptions"]["secretName"] == "rayrec-ray-token", where
            else:
                assert "secretName" not in spec["authOptions"], where
        for where, pod in pod_specs(doc):
            for c in containers(pod):
                env = {e["name"]: e for e in c.get("env") or []}
                assert env.get("RAY_AUTH_MODE", {}).get("value", "token") == "token", where
                assert "RAY_AUTH_TOKEN" not in env, where
        if doc["kind"] == "RayJob":
            submitter = doc["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
            env = {e["name"]: e for e in submitter["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"


@pytest.mark.parametrize("target", TARGETS)
def test_rayjobs_clean_up_after_themselves(rendered, target: str) -> None:
    for doc in rendered[target]:
        if doc["kind"] != "RayJob":
            continue
        spec, name = doc["spec"], doc["metadata"]["name"]
        assert spec["shutdownAfterJobFinishes"] is True, name
        assert spec["ttlSecondsAfterFinished"] > 0, name
        assert spec["activeDeadlineSeconds"] > 0, name
        assert "rayClusterSpec" in spec and "clusterSelector" not in spec, name
        assert doc["metadata"]["labels"]["rayrec.io/job"] == name.removeprefix("rayrec-"), name
