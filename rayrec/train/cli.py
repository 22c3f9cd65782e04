"""``rayrec train MODEL``: flags -> :class:`~rayrec.train.config.TrainConfig` -> one run.

Flags override the YAML config (``--config``, default the model's preset), and ``--set``
overrides both. Without ``--data`` and ``--config`` the run uses the embedded corpus and its
quick settings (a few minutes on two CPU cores), which ``--set`` and the flags still override.

``--resume --name NAME`` continues a stopped run from its latest checkpoint; without
``--resume`` an existing run name is refused (Ray Train would silently resume it).
``--resume auto --name NAME`` resumes the run if it exists and starts it otherwise: the same
command line serves the first attempt and every retry (a RayJob re-applied or retried after
its cluster was lost), which is what the deployment's entrypoints pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator

from pydantic import ValidationError

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.errors import CliError
from rayrec.train.config import TrainConfig, load_config
from rayrec.train.corpus import EMBEDDED_SETTINGS, default_dataset
from rayrec.train.trainer import STORAGE_ENV, ensure_ray, fit, run_name, run_storage


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The run flags as dotted overrides (only the flags that were given)."""
    flags = {
        "data.uri": getattr(args, "data", None),
        "run.storage": args.storage,
        "run.name": args.name,
        "run.num_workers": args.num_workers,
        "run.use_gpu": args.use_gpu,
        "train.epochs": args.epochs,
        "model.params.pretrained": getattr(args, "pretrained", None),
    }
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


def uses_embedded_corpus(args: argparse.Namespace) -> bool:
    """A run without ``--data`` and ``--config`` trains on the embedded corpus with its quick
    settings (:data:`~rayrec.train.corpus.EMBEDDED_SETTINGS`)."""
    return getattr(args, "data", None) is None and args.config is None


def config_from_args(args: argparse.Namespace, model: str | None = None) -> TrainConfig:
    """Config of ``model`` (default ``args.model``): the preset or ``--config``, the quick
    settings of the embedded corpus when there is neither ``--data`` nor ``--config``, the
    ``--set`` overrides and the flags; a user error becomes a :class:`CliError`."""
    model = model or args.model
    if getattr(args, "pretrained", None) and model != "ubert_finetune":
        raise CliError("--pretrained is for ubert_finetune only")
    quick = EMBEDDED_SETTINGS.get(model, []) if uses_embedded_corpus(args) else []
    with config_errors():
        cfg = load_config(model, args.config, [*quick, *args.overrides, *flag_overrides(args)])
    refuse_credential_uris(cfg)
    return cfg


def refuse_credential_uris(cfg: TrainConfig) -> None:
    """A config (a ``--config`` file included) must not hold a URI with credentials or a
    presigned query string: results.json records the config verbatim."""
    problem = storage.credential_problem(json.dumps(cfg.model_dump(mode="json")))
    if problem:
        raise CliError(f"invalid configuration: {problem}")


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """Turn a configuration error (validation, bad override, missing file) into one
    :class:`CliError` line naming every offending field."""
    try:
        yield
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise CliError(f"invalid configuration: {problems}") from None
    except (ValueError, FileNotFoundError) as err:
        raise CliError(f"invalid configuration: {err}") from None


def check_run_name(cfg: TrainConfig, resume: bool | str) -> bool:
    """Refuse to reuse a run name by accident, and to resume a run that does not exist;
    ``resume="auto"`` resumes an existing run and starts a missing one. Returns whether the
    run resumes."""
    if resume == "auto" and cfg.run.name is None:
        raise CliError("--resume auto needs --name (the run to resume or start)")
    exists = cfg.run.name is not None and storage.exists(
        storage.join(run_storage(cfg), run_name(cfg))
    )
    if resume == "auto":
        return exists
    if resume and not exists:
        raise CliError("--resume needs --name of an existing run under --storage")
    if exists and not resume:
        raise CliError(f"run {cfg.run.name!r} exists: pass --resume, or another --name")
    return bool(resume)


def check_storage(root: str, flag: str = "--storage") -> None:
    """Refuse run storage on an s3:// bucket that does not exist or that S3 refuses these
    credentials (one line, before Ray starts; Ray Train would fail in its storage setup)."""
    if problem := storage.bucket_problem(root):
        raise CliError(f"{flag} {root}: {problem}")


def check_data(uri: str | None, flag: str = "--data") -> PreparedDataset | None:
    """The prepared dataset at ``uri`` (None when none is given), or one :class:`CliError`
    line saying why it is not one: a missing path, a directory without a manifest (not
    written by ``rayrec prepare``), a manifest that cannot be read. Commands call it before
    they start Ray."""
    if uri is None:
        return None
    try:
        return PreparedDataset(uri)
    except FileNotFoundError:
        what = "no such directory" if not storage.exists(uri) else f"no {MANIFEST}"
        raise CliError(
            f"{flag} {uri}: not a prepared dataset ({what}; `rayrec prepare --out` writes one)"
        ) from None
    except (OSError, ValueError) as err:
        raise CliError(f"{flag} {uri}: not a readable prepared dataset ({err})") from None


def check_pretrained(cfg: TrainConfig) -> None:
    """Refuse a ``--pretrained`` checkpoint that does not exist (before Ray starts)."""
    pretrained = cfg.model.params.get("pretrained")
    if pretrained and not storage.exists(str(pretrained)):
        raise CliError(f"--pretrained {pretrained}: no such file or directory")


def print_results(results: dict) -> None:
    print(f"\n{results['model']} ({results['name']}): best epoch {results['best_epoch']}")
    for key, value in results["test"].items():
        print(f"  test {key:<14} {value:.4f}")
    for key, value in results["best_val"].items():
        print(f"  best {key:<14} {value:.4f}")
    print(f"  {results['samples_per_s']:.1f} samples/s, wall {results['wall_seconds']:.0f} s")
    print(f"  results: {storage.join(results['output'], 'results.json')}")


def run_train(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec train``."""
    cfg = config_from_args(args)
    check_storage(run_storage(cfg), "--storage" if cfg.run.storage else f"${STORAGE_ENV}")
    if check_run_name(cfg, args.resume):
        print(f"resuming run {cfg.run.name!r} from its latest checkpoint", flush=True)
    if uses_embedded_corpus(args):
        print(
            f"no --data: {cfg.model.name} on the embedded synthetic corpus with quick settings "
            + " ".join(EMBEDDED_SETTINGS.get(cfg.model.name, []))
        )
    if cfg.model.name == "ubert_finetune" and not cfg.model.params.get("pretrained"):
        print(
            "no --pretrained: U-BERT P- (fine-tuning from the backbone's weights, without "
            "U-BERT pretraining); `python jobs/demo.py` pretrains, then fine-tunes"
        )
    check_data(cfg.data.uri)  # user errors surface before Ray starts
    check_pretrained(cfg)
    ensure_ray()  # before preparing data, which would otherwise start Ray without worker logs
    results = fit(cfg, cfg.data.uri or default_dataset())
    print_results(results)
    return 0
