"""The Ray cluster launcher config validates against Ray's own schema (ray-schema.json)."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from deploy_manifests import REPO
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = REPO / "cluster" / "aws-gpu.yaml"


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
