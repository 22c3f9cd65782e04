"""The ``rayrec`` console script: ``prepare``, ``encode``, ``train``, ``tune``, ``demo``,
``predict`` and ``recommend``.

Every job in ``jobs/`` is this command line with its sub-command fixed (``jobs/train_sifn.py``
is ``rayrec train sifn``), so ``ray job submit -- python jobs/train_sifn.py --epochs 3`` and
``rayrec train sifn --epochs 3`` accept the same flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rayrec.errors import CliError

TRAINABLE_MODELS = (
    "ubert_pretrain",
    "ubert_finetune",
    "sifn",
    "safmr",
    "bertrs",
    "global_mean",
    "biased_mf",
    "deepconn",
    "ncf",
    "neumf",
)


def _add_prepare_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="FORMAT:URI[:DOMAIN]",
        help="raw input; FORMAT is amazon2014, amazon2018, yelp or synthetic (repeatable). "
        "synthetic:URI generates the embedded corpus into URI first.",
    )
    p.add_argument("--target", help="target domain (the one rated); default: first source")
    p.add_argument("--out", required=False, help="output URI (local dir or s3://)")
    p.add_argument("--kcore", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions")
    p.add_argument("--tokenizer", default="minilm", help="minilm, a local dir or s3:// dir")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--reviews-per-user", type=int, default=10)
    p.add_argument("--reviews-per-item", type=int, default=10)
    p.add_argument("--negatives", type=int, default=99, help="ranking negatives per test user")
    p.add_argument("--max-malformed", type=float, default=0.001, help="fraction of lines")
    p.add_argument(
        "--drop-near-duplicates",
        action="store_true",
        help="keep one review per (domain, user, normalised text): the latest",
    )
    p.add_argument("--yelp-state", default=None, help="keep Yelp businesses in this state")
    p.add_argument("--yelp-category", default=None, help="keep Yelp businesses of this category")
    p.add_argument(
        "--synthetic-reviews", type=int, default=None, help="reviews per synthetic domain"
    )
    p.add_argument(
        "--tokenize-actors", type=int, default=None, help="default: one per free CPU of the cluster"
    )
    p.add_argument("--overwrite", action="store_true")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="prepared dataset URI; default: the embedded synthetic corpus")
    p.add_argument("--config", help="YAML config; flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    p.add_argument(
        "--storage",
        help="checkpoint/results storage (local dir or s3://; default: $RAYREC_STORAGE, "
        "else ~/rayrec/runs)",
    )
    p.add_argument("--name", help="run name (resume a stopped run by passing its name)")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--use-gpu", action="store_true", default=None)
    p.add_argument("--epochs", type=int)


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run: <storage>/<name>")
    p.add_argument(
        "--data",
        help="prepared dataset (default: the run's); its manifest must be the run's",
    )
    p.add_argument("--out", required=True, help="output directory (local or s3://), new")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per scoring actor")
    p.add_argument(
        "--batch-size", type=int, help="pairs per model call (default: train.eval_batch_size)"
    )
    p.add_argument(
        "--actors", type=int, help="scoring actors (default: one per GPU, or per CPU but one)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayrec", description="Distributed training of review-based recommenders on Ray."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    prepare = sub.add_parser("prepare", help="read, filter, split and tokenize raw reviews")
    _add_prepare_flags(prepare)

    train = sub.add_parser("train", help="train one model with Ray Train + DeepSpeed")
    train.add_argument("model", choices=TRAINABLE_MODELS)
    _add_run_flags(train)
    train.add_argument("--pretrained", help="U-BERT pretraining checkpoint (ubert_finetune)")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        choices=("auto",),
        help="resume the run named --name; `--resume auto`: resume it if it exists, else start "
        "it (what a re-applied or retried job passes)",
    )

    tune = sub.add_parser("tune", help="hyperparameter sweep with Ray Tune")
    tune.add_argument("model", choices=TRAINABLE_MODELS)
    _add_run_flags(tune)
    tune.add_argument("--num-samples", type=int, default=4)
    tune.add_argument("--metric", default=None, help="default: the model's validation metric")
    tune.add_argument("--mode", choices=("min", "max"), default=None)
    tune.add_argument("--space", help="search space YAML; default: the model's shipped space")
    tune.add_argument("--scheduler", choices=("asha", "fifo"), default="asha")
    tune.add_argument("--search", choices=("random", "optuna"), default="random")
    tune.add_argument("--max-concurrent", type=int, default=None)
    tune.add_argument(
        "--resume",
        metavar="NAME",
        help="resume the sweep with this name; `--resume auto`: resume the sweep named --name "
        "if it exists, else start it",
    )

    encode = sub.add_parser(
        "encode", help="build the review-state store (encoder states of every review, once)"
    )
    encode.add_argument("model", choices=TRAINABLE_MODELS)
    encode.add_argument("--data", required=True, help="prepared dataset (local dir or s3://)")
    encode.add_argument("--config", help="YAML config (default: the model's preset)")
    encode.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    encode.add_argument("--pretrained", help="U-BERT pretraining weights (ubert_finetune)")
    encode.add_argument("--use-gpu", action="store_true", help="one GPU per encoder actor")
    encode.add_argument("--threads", type=int, help="torch threads per CPU actor (default: all)")

    report = sub.add_parser(
        "report", help="rebuild the report (report.md, plots) of a run or a sweep directory"
    )
    report.add_argument("directory", metavar="DIR", help="a run or sweep directory (or s3://)")
    report.add_argument(
        "--max-rows", type=int, default=2000, help="test pairs a run's model predicts for plots"
    )

    demo = sub.add_parser(
        "demo", help="SIFN and U-BERT vs the baselines on the shipped Musical Instruments reviews"
    )
    _add_run_flags(demo)

    predict = sub.add_parser("predict", help="score a split's pairs with a run's best weights")
    _add_serve_flags(predict)
    predict.add_argument("--split", choices=("train", "val", "test"), default="test")

    recommend = sub.add_parser(
        "recommend", help="each user's top-K items without a training pair, by a run's model"
    )
    _add_serve_flags(recommend)
    recommend.add_argument("--k", type=int, default=10, help="items per user")
    recommend.add_argument("--users", type=int, help="only the first N users (dense ids)")
    for command in sub.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", help="Ray's own console output (rayrec.logs)"
        )
    return parser


def check_no_credentials(args: argparse.Namespace) -> None:
    """Refuse any flag value (and ``$RAYREC_STORAGE``) that holds a URI with credentials or a
    presigned query string: rayrec would store it verbatim in results.json and manifest.json."""
    from rayrec.data.storage import credential_problem

    values: list[tuple[str, str]] = [("$RAYREC_STORAGE", os.environ.get("RAYREC_STORAGE", ""))]
    for key, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                flag = "--set" if key == "overrides" else f"--{key.replace('_', '-')}"
                values.append((flag, item))
    for flag, value in values:
        problem = credential_problem(value)
        if problem:
            raise CliError(
                f"{flag}: {problem}; pass credentials through the environment (AWS variables, "
                "instance profile, IRSA), never in a URI"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rayrec.logs import configure

    configure(args.command, verbose=args.verbose)
    try:
        check_no_credentials(args)
        if args.command == "prepare":
            from rayrec.data.prepare_cli import run_prepare

            return run_prepare(args)
        if args.command == "train":
            from rayrec.train.cli import run_train

            return run_train(args)
        if args.command == "tune":
            from rayrec.tune.cli import run_tune

            return run_tune(args)
        if args.command == "report":
            from rayrec.report.cli import run_report

            return run_report(args)
        if args.command == "encode":
            from rayrec.encode.cli import run_encode

            return run_encode(args)
        if args.command == "predict":
            from rayrec.serve.cli import run_predict

            return run_predict(args)
        if args.command == "recommend":
            from rayrec.serve.cli import run_recommend

            return run_recommend(args)
        from rayrec.train.demo import run_demo

        return run_demo(args)
    except CliError as err:
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"rayrec {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def run_job(command: Sequence[str], argv: Sequence[str], default_model: str | None = None) -> int:
    """Entry point of a ``jobs/*.py`` file: ``command`` plus the job's own flags.

    Jobs that take a model (``train_baseline.py``, ``tune.py``) accept it as their first
    argument and fall back to ``default_model``, so they also run with no arguments.
    """
    argv = list(argv)
    if default_model is not None and (not argv or argv[0] not in TRAINABLE_MODELS):
        argv.insert(0, default_model)
    return main([*command, *argv])
