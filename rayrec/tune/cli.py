"""``rayrec tune MODEL``: flags -> a search space and a base config -> a sweep -> its table.

The base config is the model's preset (or ``--config``) with the fixed values of the space
file and of ``--set`` applied, then the run flags (``--data``, ``--epochs``,
``--num-workers``, ``--use-gpu``). The space is the model's shipped space file
(``rayrec/tune/spaces/<model>.yaml``, or ``--space FILE``), with ``--set KEY=DIST`` adding
or replacing dimensions (syntax: :mod:`rayrec.tune.space`). ``--name`` names the sweep
(default ``tune-<model>-<time>``) under ``--storage`` (default: ``$RAYREC_STORAGE``, else
``~/rayrec/runs``); ``--resume NAME`` continues that sweep with what it was started with
(other flags are ignored then). ``--resume auto --name NAME`` resumes the sweep NAME if it
exists and starts it otherwise (so a sweep cannot be named ``auto``).
"""

from __future__ import annotations

import argparse
import time

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.models.registry import get_model_spec
from rayrec.train.cli import check_data, check_storage, config_errors, refuse_credential_uris
from rayrec.train.config import TrainConfig, load_config
from rayrec.train.corpus import default_dataset
from rayrec.train.trainer import STORAGE_ENV, default_storage, ensure_ray
from rayrec.tune import sweep
from rayrec.tune.space import (
    SearchSpace,
    SpaceError,
    apply_values,
    check_space,
    load_space_file,
    parse_expressions,
)


def run_flag_values(args: argparse.Namespace) -> dict[str, object]:
    """The run flags that were given, as dotted config values."""
    flags = {
        "data.uri": args.data,
        "run.num_workers": args.num_workers,
        "run.use_gpu": args.use_gpu,
        "train.epochs": args.epochs,
    }
    return {key: value for key, value in flags.items() if value is not None}


def sweep_space(args: argparse.Namespace) -> SearchSpace:
    """The space file's entries, then ``--set``'s."""
    space = load_space_file(args.model, args.space)
    space.add(parse_expressions(args.model, args.overrides))
    return space


def base_config(args: argparse.Namespace, space: SearchSpace) -> TrainConfig:
    """Preset or ``--config``, the fixed values, the run flags; checked against the space."""
    with config_errors():
        tree = load_config(args.model, args.config).model_dump(mode="json")
        tree = apply_values(tree, {**space.fixed, **run_flag_values(args)})
        cfg = TrainConfig.model_validate(tree)
    refuse_credential_uris(cfg)
    check_space(cfg, space)
    return cfg


def metric_and_mode(args: argparse.Namespace) -> tuple[str, str]:
    """``--metric`` / ``--mode``, defaulting to the model's validation metric; the metric
    must be one every epoch reports."""
    spec = get_model_spec(args.model)
    metric = args.metric or f"val_{spec.default_metric}"
    reported = [f"val_{m}" for m in spec.metrics] + ["train_loss"]
    if metric not in reported:
        raise CliError(f"--metric {metric}: {args.model} reports {', '.join(reported)}")
    default_mode = spec.metric_mode if metric == f"val_{spec.default_metric}" else "min"
    return metric, args.mode or default_mode


def build_spec(args: argparse.Namespace) -> tuple[sweep.SweepSpec, SearchSpace]:
    """The sweep's spec and space from the flags (user errors become CliError)."""
    try:
        space = sweep_space(args)
        cfg = base_config(args, space)
    except SpaceError as err:
        raise CliError(str(err)) from None
    if args.num_samples < 1:
        raise CliError("--num-samples must be at least 1")
    metric, mode = metric_and_mode(args)
    spec = sweep.SweepSpec(
        model=args.model,
        data_uri=cfg.data.uri or "",
        base=cfg.model_dump(mode="json"),
        keys=list(space.dimensions),
        metric=metric,
        mode=mode,
        num_samples=args.num_samples,
        scheduler=args.scheduler,
        search=args.search,
        max_concurrent=args.max_concurrent,
    )
    return spec, space


def print_result(result: sweep.SweepResult, metric: str) -> None:
    print(f"\n{result.table}\n")
    if result.best is not None:
        print(f"best: trial {result.best.trial_id}, {metric} {result.best.best:.4f}")
    for what, uri in result.files.items():
        print(f"  {what}: {uri}")
    unfinished = [r for r in result.rows if r.status in ("incomplete", "error")]
    if unfinished:
        name = result.directory.rstrip("/").rsplit("/", 1)[-1]
        print(f"  {len(unfinished)} trial(s) unfinished: continue with --resume {name}")


def run_tune(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec tune``."""
    root = storage.absolute(args.storage or default_storage())
    check_storage(root, "--storage" if args.storage else f"${STORAGE_ENV}")
    if args.resume == sweep.AUTO:
        if not args.name:
            raise CliError("--resume auto needs --name (the sweep to resume or start)")
        exists = storage.exists(storage.join(root, args.name, sweep.SWEEP_FILE))
        args.resume = args.name if exists else None
    if args.name == sweep.AUTO:
        raise CliError("--name auto is reserved (--resume auto)")
    if args.resume:
        resumed = sweep.load_spec(root, args.resume)
        check_data(resumed.data_uri or None, "the sweep's data")
        metric = resumed.metric
        ensure_ray()
        print_result(sweep.resume(root, args.resume), metric)
        return 0
    spec, space = build_spec(args)  # user errors surface before Ray starts
    check_data(spec.data_uri or None)
    ensure_ray()
    if not spec.data_uri:
        spec.data_uri = default_dataset()
        spec.base["data"]["uri"] = spec.data_uri
    name = args.name or f"tune-{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = sweep.start(spec, space, root, name)
    print_result(result, spec.metric)
    return 0
