"""Every RayJob runs a file of jobs/ with flags that job accepts, on the overlay's bucket."""

from __future__ import annotations

import re

import pytest
from deploy_entrypoints import EntrypointError, parse_entrypoint
from deploy_manifests import K8S, TARGETS, read_env_file

EXPECTED_JOBS = {
    "jobs/prepare_data.py",
    "jobs/pretrain_ubert.py",
    "jobs/finetune_ubert.py",
    "jobs/train_sifn.py",
    "jobs/train_safmr.py",
    "jobs/train_bertrs.py",
    "jobs/tune.py",
}


def entrypoints(docs) -> dict[str, str]:
    """The entrypoint of every RayJob, by RayJob name."""
    return {d["metadata"]["name"]: d["spec"]["entrypoint"] for d in docs if d["kind"] == "RayJob"}


def settings(target: str) -> dict[str, str]:
    """The settings.env of a target, merged over the base's as kustomize does."""
    merged = read_env_file(K8S / "base" / "settings.env")
    if target != "base":
        merged.update(read_env_file(K8S / target / "settings.env"))
    return merged


@pytest.mark.parametrize("target", TARGETS)
def test_every_entrypoint_parses_with_its_job(rendered, target: str) -> None:
    jobs = {}
    for name, entrypoint in entrypoints(rendered[target]).items():
        script, args = parse_entrypoint(entrypoint)
        jobs[script] = args
        if args.command == "prepare":  # --source FORMAT:URI
            uris = [args.out, *(source.split(":", 1)[1] for source in args.source)]
        else:
            uris = [args.data, args.storage]
        assert all(uri.startswith("s3://") for uri in uris), name
    assert set(jobs) == EXPECTED_JOBS
    assert jobs["jobs/finetune_ubert.py"].pretrained.startswith("s3://")


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoints_follow_the_target_settings(rendered, target: str) -> None:
    config = settings(target)
    workers, _, gpu_flag = config["TRAIN_WORKERS"].partition(" ")
    for name, entrypoint in entrypoints(rendered[target]).items():
        uris = re.findall(r"s3://\S+", entrypoint)
        assert uris and all(u.startswith(f"s3://{config['BUCKET']}/") for u in uris), name
        _, args = parse_entrypoint(entrypoint)
        if args.command == "train":
            assert args.num_workers == int(workers), name
            assert args.use_gpu == (True if gpu_flag == "--use-gpu" else None), name


def test_overlays_use_their_own_bucket() -> None:
    buckets = {target: settings(target)["BUCKET"] for target in TARGETS}
    assert len(set(buckets.values())) == len(TARGETS), buckets


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("python jobs/train_sifn.py --bogus-flag 1", "has no flag --bogus-flag"),
        ("python jobs/train_sifn.py --stor s3://b/runs", "has no flag --stor"),
        ("python jobs/prepare_data.py --pretrained s3://b/m", "has no flag --pretrained"),
        ("python jobs/train_sifn.py --num-workers two", "invalid int value"),
        ("python jobs/tune.py sifn --scheduler hyperband", "invalid choice"),
        ("python jobs/train_nothing.py", "does not exist"),
        ("bash -c 'python jobs/train_sifn.py'", "not `python jobs/X.py"),
    ],
)
def test_a_bad_entrypoint_is_caught(entrypoint: str, message: str) -> None:
    with pytest.raises(EntrypointError, match=message):
        parse_entrypoint(entrypoint)
