"""Production hardening of the KubeRay deployment (issue 17), on the rendered manifests of
k8s/overlays and k8s/platform: network isolation, no Kubernetes token in job code, S3 by
IRSA in prod, image digests, GPU budget, retries with resume, the head kept on on-demand nodes,
logs shipped off the pods."""

from __future__ import annotations

import re

import pytest
from deploy_entrypoints import parse_entrypoint
from deploy_manifests import (
    GPU,
    PLATFORM_TARGETS,
    TARGETS,
    cluster_specs,
    containers,
    parse_quantity,
    pod_specs,
    ray_groups,
)
from network_policy import Endpoint, allowed, outside
from test_deploy_entrypoints import settings

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
KEY_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def docs_of(rendered, target: str, kind: str) -> list[dict]:
    return [d for d in rendered[target] if d["kind"] == kind]


def group_pod_labels(group: dict, node_type: str, cluster: str) -> dict[str, str]:
    """The labels of a Ray pod: its template's, plus those KubeRay adds."""
    labels = dict((group["template"].get("metadata") or {}).get("labels") or {})
    labels.update({"ray.io/node-type": node_type, "ray.io/cluster": cluster})
    return labels


# --- item 1: network isolation ----------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(PLATFORM_TARGETS))
def network(request, rendered, platform):
    """The NetworkPolicies of an environment and its pods, as the policies see them."""
    overlay = request.param
    namespace = {"overlays/dev": "rayrec-dev", "overlays/prod": "rayrec"}[overlay]
    job = next(d for d in rendered[overlay] if d["metadata"]["name"] == "rayrec-train-sifn")
    spec = job["spec"]["rayClusterSpec"]
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    cluster = "rayrec-train-sifn-abcde"

    def pod(labels: dict[str, str], ip: str) -> Endpoint:
        return Endpoint(namespace, labels, ns_labels, ip)

    submitter_labels = job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    pods = {
        "head": pod(group_pod_labels(spec["headGroupSpec"], "head", cluster), "10.0.0.10"),
        "worker": pod(
            group_pod_labels(spec["workerGroupSpecs"][0], "worker", cluster), "10.0.0.11"
        ),
        "submitter": pod(dict(submitter_labels), "10.0.0.12"),
        "neighbour": pod({"app": "something-else"}, "10.0.0.13"),
        "operator": Endpoint(
            "kuberay-system",
            {"app.kubernetes.io/name": "kuberay-operator"},
            {"kubernetes.io/metadata.name": "kuberay-system"},
            "10.0.1.5",
        ),
        "foreign": Endpoint(
            "default", {"app": "web"}, {"kubernetes.io/metadata.name": "default"}, "10.0.2.7"
        ),
        "dns": Endpoint(
            "kube-system",
            {"k8s-app": "kube-dns"},
            {"kubernetes.io/metadata.name": "kube-system"},
            "10.0.3.10",
        ),
    }
    return platform[overlay], pods


def test_ray_pods_reach_each_other_and_nobody_else_reaches_them(network) -> None:
    policies, pods = network
    head, worker = pods["head"], pods["worker"]
    assert allowed(policies, worker, head, 6379)  # GCS
    assert allowed(policies, head, worker, 10002)  # a worker's ports
    assert allowed(policies, worker, worker, 8076)  # object manager
    for port in (6379, 8265, 10001):
        assert not allowed(policies, pods["foreign"], head, port), port
        assert not allowed(policies, pods["neighbour"], head, port), port
    assert not allowed(policies, pods["foreign"], worker, 10002)
    assert not allowed(policies, pods["foreign"], pods["neighbour"], 80)  # default deny
    assert not allowed(policies, head, pods["foreign"], 80)


def test_only_the_submitter_and_the_operator_reach_the_job_api(network) -> None:
    policies, pods = network
    head = pods["head"]
    for client in ("submitter", "operator"):
        assert allowed(policies, pods[client], head, 8265), client
        assert not allowed(policies, pods[client], head, 6379), client
    assert not allowed(policies, pods["submitter"], pods["worker"], 8265)
    assert not allowed(policies, pods["submitter"], outside("52.216.1.1"), 443)


def test_egress_is_dns_https_and_not_the_metadata_service(network) -> None:
    policies, pods = network
    for name in ("head", "worker", "submitter"):
        assert allowed(policies, pods[name], pods["dns"], 53, "UDP"), name
    for name in ("head", "worker"):
        assert allowed(policies, pods[name], outside("52.216.1.1"), 443), name  # S3, STS
        assert not allowed(policies, pods[name], outside("169.254.169.254"), 80), name
        assert not allowed(policies, pods[name], outside("169.254.169.254"), 443), name
        assert not allowed(policies, pods[name], outside("198.51.100.7"), 22), name
    assert allowed(policies, pods["head"], outside("10.100.0.1"), 6443)  # API server
    assert not allowed(policies, pods["worker"], outside("10.100.0.1"), 6443)


@pytest.mark.parametrize("target", TARGETS)
def test_the_ray_client_port_is_not_opened(rendered, target: str) -> None:
    for doc in rendered[target]:
        for where, pod in pod_specs(doc):
            for c in containers(pod):
                assert 10001 not in {p["containerPort"] for p in c.get("ports") or []}, where


# --- items 2 and 4: no Kubernetes token in job code, S3 by IRSA -----------------------------


@pytest.mark.parametrize("target", sorted(PLATFORM_TARGETS))
def test_no_pod_mounts_a_token_and_the_service_accounts_exist(
    rendered, platform, target: str
) -> None:
    accounts = {d["metadata"]["name"]: d for d in platform[target] if d["kind"] == "ServiceAccount"}
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    for doc in rendered[target]:
        for where, pod in pod_specs(doc):
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["serviceAccountName"] in accounts, where
            expected = "rayrec-head" if where.endswith(" head") else None
            if where.endswith(" submitter"):
                expected = "rayrec-submitter"
            assert pod["serviceAccountName"] == (expected or "rayrec-worker"), where


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_autoscaler_gets_the_token(rendered, target: str) -> None:
    for doc in rendered[target]:
        for where, spec in cluster_specs(doc):
            mounts = spec["autoscalerOptions"]["volumeMounts"]
            (mount,) = [m for m in mounts if m["mountPath"] == SA_PATH]
            head = spec["headGroupSpec"]["template"]["spec"]
            volume = next(v for v in head["volumes"] if v["name"] == mount["name"])
            sources = volume["projected"]["sources"]
            assert any("serviceAccountToken" in s for s in sources), where
            for _, group in ray_groups(spec):
                for c in containers(group["template"]["spec"]):
                    names = {m["name"] for m in c.get("volumeMounts") or []}
                    assert mount["name"] not in names, (where, c["name"])


def test_prod_pods_hold_no_s3_key_and_use_irsa(rendered, platform) -> None:
    for doc in rendered["overlays/prod"]:
        for where, pod in pod_specs(doc):
            for c in containers(pod):
                assert not KEY_VARS & {e["name"] for e in c.get("env") or []}, where
    roles = {
        d["metadata"]["name"]: (d["metadata"].get("annotations") or {}).get(
            "eks.amazonaws.com/role-arn"
        )
        for d in platform["overlays/prod"]
        if d["kind"] == "ServiceAccount"
    }
    assert re.fullmatch(r"arn:aws:iam::\w+:role/[\w+=,.@-]+", roles["rayrec-head"] or "")
    assert roles["rayrec-worker"] == roles["rayrec-head"]
    assert roles["rayrec-submitter"] is None


def test_dev_falls_back_to_the_key_secret(rendered) -> None:
    for doc in rendered["overlays/dev"]:
        for where, spec in cluster_specs(doc):
            for _, group in ray_groups(spec):
                env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
                for name in KEY_VARS:
                    assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "rayrec-s3", where


# --- item 5: images by digest -------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_image_is_pinned_by_digest(rendered, target: str) -> None:
    for doc in rendered[target]:
        for where, pod in pod_specs(doc):
            for c in containers(pod):
                assert re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", c["image"]), where


# --- item 6: retries resume, head on on-demand nodes, logs shipped ---------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_retries_and_resumes(rendered, target: str) -> None:
    for job in docs_of(rendered, target, "RayJob"):
        name = job["metadata"]["name"]
        assert job["spec"]["backoffLimit"] >= 1, name
        _, args = parse_entrypoint(job["spec"]["entrypoint"])
        if args.command in ("train", "tune"):
            assert args.resume == "auto", name
        if args.command == "train":
            failures = [o for o in args.overrides if o.startswith("run.max_failures=")]
            assert failures and int(failures[-1].split("=", 1)[1]) != 0, name


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
def test_the_head_stays_on_on_demand_nodes(rendered, target: str) -> None:
    for doc in rendered[target]:
        for where, spec in cluster_specs(doc):
            template = spec["headGroupSpec"]["template"]
            assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
            terms = template["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            for term in terms:
                (expr,) = term["matchExpressions"]
                assert expr["operator"] == "In", where
                assert [v.lower().replace("_", "-") for v in expr["values"]] == ["on-demand"]


@pytest.mark.parametrize("target", TARGETS)
def test_ray_logs_are_shipped_to_the_bucket_before_a_pod_goes(rendered, target: str) -> None:
    bucket = settings(target)["BUCKET"]
    for doc in rendered[target]:
        for where, spec in cluster_specs(doc):
            for group_name, group in ray_groups(spec):
                pod = group["template"]["spec"]
                ray = pod["containers"][0]
                env = {e["name"]: e.get("value") for e in ray["env"]}
                assert env["RAYREC_LOG_URI"] == f"s3://{bucket}/logs", (where, group_name)
                hook = ray["lifecycle"]["preStop"]["exec"]["command"]
                assert hook == ["python", "-m", "rayrec.ship_logs"], (where, group_name)
                assert pod["terminationGracePeriodSeconds"] >= 60, (where, group_name)


# --- item 7: GPU budget -------------------------------------------------------------------


def gpus(group: dict) -> float:
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    return parse_quantity(limits.get(GPU, 0))


@pytest.mark.parametrize("target", TARGETS)
def test_applying_everything_holds_no_gpu_until_the_autoscaler_asks(rendered, target: str) -> None:
    held = sum(
        group.get("replicas", 0) * gpus(group)
        for doc in rendered[target]
        for _, spec in cluster_specs(doc)
        for _, group in ray_groups(spec)
        if _ != "head"
    )
    assert held == 0


@pytest.mark.parametrize("target", TARGETS)
def test_preparation_runs_on_cpus_only(rendered, target: str) -> None:
    (job,) = [d for d in rendered[target] if d["metadata"]["name"] == "rayrec-prepare-data"]
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert groups and all(gpus(g) == 0 for g in groups)
    assert all(not g["template"]["spec"].get("tolerations") for g in groups)


@pytest.mark.parametrize("target", sorted(PLATFORM_TARGETS))
def test_the_quota_caps_gpus_and_concurrent_clusters(rendered, platform, target: str) -> None:
    (quota,) = [d for d in platform[target] if d["kind"] == "ResourceQuota"]
    hard = quota["spec"]["hard"]
    jobs = docs_of(rendered, target, "RayJob")
    assert 1 <= int(hard["count/rayjobs.ray.io"]) < len(jobs)
    assert int(hard["count/rayclusters.ray.io"]) == int(hard["count/rayjobs.ray.io"]) + 1
    per_job = settings(target)["TRAIN_WORKERS"].split()
    needed = int(per_job[0]) if "--use-gpu" in per_job else 0
    assert needed <= parse_quantity(hard[f"requests.{GPU}"])
    ceiling = sum(
        group["maxReplicas"] * gpus(group)
        for doc in rendered[target]
        for _, spec in cluster_specs(doc)
        for group in spec["workerGroupSpecs"]
    )
    # the quota, not the clusters' maxReplicas, is what bounds the namespace's GPUs
    assert ceiling == 0 or parse_quantity(hard[f"requests.{GPU}"]) < ceiling
    if target == "overlays/dev":
        assert parse_quantity(hard[f"requests.{GPU}"]) == 0
