"""The Ray cluster launcher config validates against Ray's own schema (ray-schema.json)."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml
from deploy_manifests import REPO, read_env_file

# `ray up` prepares and validates its config with these two functions, and Ray has no public
# API for that (ray.autoscaler.sdk starts and stops clusters; it validates nothing offline).
# They are private: the test below pins the Ray release they were read from, so an upgrade
# fails there first and has this import checked again.
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = REPO / "cluster" / "aws-gpu.yaml"
PRIVATE_API_CHECKED_ON = "2.60."  # the Ray release whose private validation is used here


def test_private_validation_api_is_the_pinned_rays() -> None:
    import ray

    assert ray.__version__.startswith(PRIVATE_API_CHECKED_ON), (
        f"Ray {ray.__version__}: check that ray.autoscaler._private.util still prepares and "
        "validates `ray up` configs as in 2.60, then update PRIVATE_API_CHECKED_ON"
    )


@pytest.fixture
def config() -> dict:
    """The launcher config, as `ray up` reads it."""
    return yaml.safe_load(CONFIG.read_text())


def test_config_validates_as_ray_up_prepares_it(config: dict) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))


def test_schema_rejects_an_unknown_field(config: dict) -> None:
    config["max_worker"] = 8
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_cpu_head_gpu_workers_token_auth(config: dict) -> None:
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"]["CPU"] == 0
    assert any(node["resources"].get("GPU", 0) > 0 for node in nodes.values())
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token" in c and "ray start" in c for c in commands)
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}


IAM = REPO / "cluster" / "iam"
PREFIXES = ("raw/", "prepared/", "runs/", "logs/")


def policy(name: str) -> list[dict]:
    """The statements of a policy document of cluster/iam/."""
    return json.loads((IAM / name).read_text())["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_ssh_is_not_open_to_the_world(config: dict) -> None:
    group = config["provider"]["security_group"]
    assert group["GroupName"]
    for rule in group["IpPermissions"]:
        cidrs = [r["CidrIp"] for r in rule.get("IpRanges", [])]
        cidrs += [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        assert cidrs and not {"0.0.0.0/0", "::/0"} & set(cidrs), rule


def test_every_node_has_its_profile_imdsv2_encrypted_volumes_and_the_pinned_ami(
    config: dict,
) -> None:
    amis = set()
    for name, node in config["available_node_types"].items():
        node_config = node["node_config"]
        profile = "rayrec-head" if name == config["head_node_type"] else "rayrec-worker"
        arn = node_config["IamInstanceProfile"]["Arn"]
        assert re.fullmatch(rf"arn:aws:iam::\w+:instance-profile/{profile}", arn), name
        assert node_config["MetadataOptions"]["HttpTokens"] == "required", name
        assert node_config["MetadataOptions"].get("HttpEndpoint", "enabled") == "enabled"
        volumes = node_config["BlockDeviceMappings"]
        assert volumes and all(v["Ebs"]["Encrypted"] is True for v in volumes), name
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}", node_config["ImageId"]), name
        amis.add(node_config["ImageId"])
    assert len(amis) == 1


def test_the_head_policy_is_least_privilege(config: dict) -> None:
    statements = policy("rayrec-head-policy.json")
    cluster = config["cluster_name"]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), action
    by_action: dict[str, list[dict]] = {}
    for statement in statements:
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, []).append(statement)
    # instances are launched and terminated only with this cluster's tag
    for statement in by_action["ec2:TerminateInstances"]:
        tag = statement["Condition"]["StringEquals"]
        assert tag == {"ec2:ResourceTag/ray-cluster-name": cluster}
    for statement in by_action["ec2:RunInstances"]:
        resources = as_list(statement["Resource"])
        if any(":instance/" in r for r in resources):
            assert statement["Condition"]["StringEquals"] == {
                "aws:RequestTag/ray-cluster-name": cluster
            }
    images = [
        r for s in by_action["ec2:RunInstances"] for r in as_list(s["Resource"]) if ":image/" in r
    ]
    ami = config["available_node_types"][config["head_node_type"]]["node_config"]["ImageId"]
    assert images == [f"arn:aws:ec2:*::image/{ami}"]
    for statement in by_action["ec2:CreateTags"]:
        assert statement["Condition"], statement
    # PassRole: the worker role only
    (passrole,) = by_action["iam:PassRole"]
    assert as_list(passrole["Resource"]) == [passrole["Resource"]] and re.fullmatch(
        r"arn:aws:iam::\w+:role/rayrec-worker", passrole["Resource"]
    )
    assert not any("s3" in a for a in by_action), "S3 comes from rayrec-s3-policy.json"


def test_the_s3_policy_covers_the_rayrec_prefixes_only() -> None:
    bucket = read_env_file(REPO / "k8s" / "overlays" / "prod" / "settings.env")["BUCKET"]
    for statement in policy("rayrec-s3-policy.json"):
        for action in as_list(statement["Action"]):
            assert action.startswith("s3:") and not action.endswith("*"), action
        for resource in as_list(statement["Resource"]):
            if resource == f"arn:aws:s3:::{bucket}":
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert all(p.startswith(PREFIXES) for p in prefixes), prefixes
                continue
            key = resource.removeprefix(f"arn:aws:s3:::{bucket}/")
            assert key != resource and key.startswith(PREFIXES), resource
    writes = [
        r
        for s in policy("rayrec-s3-policy.json")
        if {"s3:PutObject", "s3:DeleteObject"} & set(as_list(s["Action"]))
        for r in as_list(s["Resource"])
    ]
    assert not any("/raw/" in r for r in writes), "the raw reviews are read-only"
