"""The paired comparison on real data: every model on the same splits, per seed, against MF.

    for s in 0 1 2; do rayrec prepare --seed $s --out /tmp/mi/seed$s \\
        --source amazon2014:data/amazon-2014/Musical_Instruments_5.csv.zip; done
    python bench/compare.py --data /tmp/mi/seed0 /tmp/mi/seed1 /tmp/mi/seed2 \\
        --storage /tmp/compare --variants global_mean biased_mf ncf sifn ubert_top1

Each variant (:data:`VARIANTS`: a model, its shipped preset and a few switches) is trained with
``rayrec train``'s code path on every prepared split (one split per seed), its hyper-parameters
as the preset fixes them (chosen on validation only); a run whose ``results.json`` is already
under ``--storage`` is read, not repeated, so an interrupted grid continues, provided it was
trained on the same split with the settings its variant gives today (else one line names the
settings that differ: a preset that changed since is a new run). Then:

* a table of test MSE per seed, mean ± std (sample std over seeds), and the paired difference
  to biased MF per seed (negative: better than MF) with the number of seeds it wins;
* the rankers (``bertrs``, ``neumf``): HR@10 / NDCG@10 on their 99 sampled negatives beside a
  popularity ranker (items ranked by their number of training ratings, ties against the
  positive) on the same candidates;
* ``compare.md``, ``compare.json`` and ``compare.png`` under ``--storage``.

The last line printed is one JSON object with the per-seed figures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.logs import configure
from rayrec.models.registry import get_model_spec
from rayrec.train.config import load_config
from rayrec.train.trainer import RESULTS_FILE, ensure_ray, fit

UBERT_FROZEN = [  # U-BERT P- reading SIFN's store: no BERT layer trains
    "model.params.trainable_layers=0",
    "data.max_len=64",  # SIFN's store
    "train.lr=1e-3",
    "train.epochs=1",
    "train.max_steps_per_epoch=200",
]
UBERT_FROZEN_LONG = [
    *(o for o in UBERT_FROZEN if not o.startswith(("train.epochs", "train.max_steps"))),
    "train.epochs=8",
    "train.patience=2",
]
WORD_VECTORS = ["model.params.word_vectors=minilm", "model.params.embed_dim=384"]
SAFMR_JOINT = [
    "model.params.target_epochs=0",
    "model.params.word_vectors=null",
    "model.params.embed_dim=300",
    "train.lr=8e-3",
    "train.epochs=15",
]
# user/item biases named as biased MF's (pair_biases), penalised at MF's tuned strength and
# warm-started from the same split's MF run: the text model learns what MF's biases leave
MF_BIASES = [
    "model.params.pair_biases=true",
    "model.params.bias_reg=1.5",
    "train.init_from={biased_mf}",
]
# name -> (model, overrides on top of its preset)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "global_mean": ("global_mean", []),
    "biased_mf": ("biased_mf", []),
    "ncf": ("ncf", []),
    # the preset: the CNNs' word embeddings are MiniLM's 384-d word-piece table, kept fixed
    # (pre-trained word vectors, as DeepCoNN's and SAFMR's papers use)
    "deepconn": ("deepconn", []),
    # the preset of 2026-12-07 (second session): the same vectors, trained further
    "deepconn_tuned_vectors": ("deepconn", ["model.params.freeze_word_vectors=false"]),
    # with biased MF's user and item biases, warm-started from the same split's tuned MF run
    # and penalised as there (a residual text model, as sifn_mf)
    "deepconn_mf": ("deepconn", MF_BIASES),
    # the same with the vectors trained further: best val MSE on seed 0 0.7115 against 0.7125
    # fixed (lr 1e-3 in place of 2e-3: 0.7125)
    "deepconn_mf_tuned_vectors": (
        "deepconn",
        ["model.params.freeze_word_vectors=false", *MF_BIASES],
    ),
    # the preset until 2026-12-07: 300-d embeddings learned from N(0, 1)
    "deepconn_random": (
        "deepconn",
        [
            "model.params.word_vectors=null",
            "model.params.freeze_word_vectors=false",
            "model.params.embed_dim=300",
        ],
    ),
    # the preset since 2026-12-08: two stages (model.params.target_epochs), MiniLM's vectors
    "safmr": ("safmr", []),
    # the preset until 2026-12-08: the paper's joint schedule (three steps every batch) at its
    # lr 8e-3, 300-d embeddings learned from N(0, 1); predicts the global mean
    "safmr_joint": ("safmr", SAFMR_JOINT),
    "safmr_wv": ("safmr", [*SAFMR_JOINT, *WORD_VECTORS]),
    "sifn": ("sifn", []),
    # SIFN's biases warm-started from the same split's tuned biased MF (a residual text model,
    # rayrec.train.warm_start); {biased_mf} is that run's directory. lr 1e-3 chosen on seed 0's
    # validation split (best val MSE 0.7165; the preset's 1e-2: 0.7175; the MF it starts from:
    # 0.7151)
    "sifn_mf": ("sifn", ["train.init_from={biased_mf}", "train.lr=1e-3"]),
    "sifn_sa": ("sifn", ["model.params.review_attention=false"]),
    "sifn_fn": ("sifn", ["model.params.fusion=false"]),
    "sifn_in": ("sifn", ["model.params.interaction=fm"]),
    "sifn_sp": ("sifn", ["model.params.sentiment_weight=0"]),
    "sifn_owner_id": ("sifn", ["model.params.review_id=owner"]),
    "ubert_frozen": ("ubert_finetune", UBERT_FROZEN),
    # U-BERT with user/item biases (pair_biases) warm-started from the split's tuned MF
    "ubert_frozen_mf": (
        "ubert_finetune",
        [
            *UBERT_FROZEN,
            *MF_BIASES,
        ],
    ),
    # the same trained to convergence: up to 8 whole epochs (513 steps of 16), the best
    # validation epoch tested, ending after 2 epochs without a better one; lr chosen on seed
    # 0's validation split (best val MSE at 3e-4: 0.7277, at 1e-3: 0.7448; with MF's biases
    # 1e-3: 0.7156, 3e-4: 0.7201)
    "ubert_frozen_e8": ("ubert_finetune", [*UBERT_FROZEN_LONG, "train.lr=3e-4"]),
    # the same with AdamW's decoupled weight decay 1.0 on its matrices (not biases, not
    # LayerNorm): best val MSE on seed 0 0.73 against 0.754 without it and 0.748 with dropout
    # 0.3 in place of 0.1 (2026-12-06, one machine; U-BERT's runs differ across machines)
    "ubert_frozen_e8_wd": (
        "ubert_finetune",
        [*UBERT_FROZEN_LONG, "train.lr=3e-4", "train.weight_decay=1.0"],
    ),
    # with MF's biases, started at MF's predictions exactly (W_f starts at zero since
    # 2026-12-07); lr chosen on the mean of the three validation splits' best val MSE:
    # 1e-4 0.7100, 3e-4 0.7111, 1e-3 0.7208 (MF: 0.7092); a smaller lr tends to MF itself
    "ubert_frozen_mf_e8": (
        "ubert_finetune",
        [*UBERT_FROZEN_LONG, *MF_BIASES, "train.lr=1e-4"],
    ),
    "ubert_frozen_mf_e8_lr3e-4": (
        "ubert_finetune",
        [*UBERT_FROZEN_LONG, *MF_BIASES, "train.lr=3e-4"],
    ),
    "ubert_frozen_mf_e8_lr1e-3": ("ubert_finetune", [*UBERT_FROZEN_LONG, *MF_BIASES]),
    # U-BERT's pre-training (eq. 9: masked opinion tokens + opinion rating) on the split's own
    # training reviews (data.pretrain_reviews=target_train: no public corpus shares MI's
    # users), every MiniLM layer trained, the preset's 2 epochs at lr 5e-5
    "ubert_pretrain_in": ("ubert_pretrain", ["data.pretrain_reviews=target_train"]),
    # ubert_frozen_e8 started from that pre-training: its encoder frozen (a store of its own
    # states), its user embeddings, user encoder and domain table carried over
    "ubert_in_e8": (
        "ubert_finetune",
        [
            *UBERT_FROZEN_LONG,
            "train.lr=3e-4",
            "model.params.pretrained={ubert_pretrain_in}/model.safetensors",
        ],
    ),
    "ubert_top1": ("ubert_finetune", ["model.params.trainable_layers=1"]),
    "neumf": ("neumf", []),
    "bertrs": ("bertrs", []),
    # BERT-RS with MiniLM frozen but its pooler (eq. 7), pair text of 64 word pieces, one
    # epoch: what 2 cores afford (an evaluation is 100 candidates per held-out positive, ~70k
    # pair texts). The preset's lr 1e-4 left the training loss at 0.6906 (ln 2 = 0.6931) after
    # a whole epoch (seed 0): the heads and id tables barely move, hence lr 1e-3 and 1e-2
    "bertrs_frozen": (
        "bertrs",
        [
            "model.params.freeze_backbone=true",
            "data.pair_max_len=64",
            "train.epochs=1",
            "train.lr=1e-3",
            "train.embedding_lr=1e-2",
        ],
    ),
    # the same for three epochs, validated on 10 batches per epoch (the best of the three
    # epochs on validation is the one tested): one epoch left the training loss at 0.663,
    # above what item popularity alone reaches (0.622)
    "bertrs_frozen_e3": (
        "bertrs",
        [
            "model.params.freeze_backbone=true",
            "data.pair_max_len=64",
            "train.epochs=3",
            "train.lr=1e-3",
            "train.embedding_lr=1e-2",
            "train.max_val_batches=10",
        ],
    ),
    # started from the same split's tuned NeuMF ranker (BERT-RS's id branches and id head, its
    # text head at zero: it starts at NeuMF's logits), with NeuMF's L2 on the id rows; the
    # text (pooler, W_s, u_s, i_s) and the MLP tower at lr 1e-3, the id tables at 1e-4 so that
    # they stay near NeuMF's best validation epoch (at 1e-2, NeuMF alone memorises the training
    # positives within 2 epochs); one epoch, what 2 cores afford
    "bertrs_frozen_neumf": (
        "bertrs",
        [
            "model.params.freeze_backbone=true",
            "model.params.reg=1e-3",
            "data.pair_max_len=64",
            "train.init_from={neumf}",
            "train.epochs=1",
            "train.lr=1e-3",
            "train.embedding_lr=1e-4",
            "train.max_val_batches=10",
        ],
    ),
}
REFERENCE = "biased_mf"
RUN_OF = re.compile(r"\{(\w+)\}")


# not settings a variant chooses: the encode-once store ``fit`` attached, and where the split
# was read (``rayrec train --data`` records it; the split itself is checked by its manifest)
NOT_SETTINGS = frozenset({"model.params.review_states", "data.uri"})
COMPARED_SECTIONS = ("model", "data", "train", "engine")


def variant_task(variant: str) -> str:
    """The task of the variant's model (rating rows have a test MSE; ranking rows HR@K)."""
    return get_model_spec(VARIANTS[variant][0]).task


def model_params(model: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``model.params`` with the model's defaults filled in (a preset may leave them out)."""
    return get_model_spec(model).config_cls.model_validate(params or {}).model_dump(mode="json")


def config_changes(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Dotted keys (down to ``model.params.*``) whose value differs between a stored run's
    config and the one its variant would train now."""
    changes = []
    for section in COMPARED_SECTIONS:
        old, new = stored.get(section, {}), wanted[section]
        for key in sorted(set(old) | set(new)):
            if section == "model" and key == "params":
                params_old, params_new = (
                    model_params(new["name"], old.get(key)),
                    model_params(new["name"], new.get(key)),
                )
                changes += [
                    f"model.params.{name}"
                    for name in sorted(set(params_old) | set(params_new))
                    if f"model.params.{name}" not in NOT_SETTINGS
                    and params_old.get(name) != params_new.get(name)
                ]
            elif f"{section}.{key}" not in NOT_SETTINGS and old.get(key) != new.get(key):
                changes.append(f"{section}.{key}")
    return changes


def run_variant(variant: str, data: str, seed: int, root: str, extra: list[str]) -> dict:
    """The results of ``variant`` on split ``seed`` (trained now unless already there, trained
    on this split with the config the variant gives today)."""
    name = f"{variant}-seed{seed}"
    model, overrides = VARIANTS[variant]
    # {VARIANT}: the directory of that variant's run on the same split (a warm start from the
    # split's MF run, U-BERT's pre-training), trained first if it is not there yet
    for needed in sorted({m for o in overrides for m in RUN_OF.findall(o)}):
        output = run_variant(needed, data, seed, root, [])["output"]
        overrides = [o.replace(f"{{{needed}}}", output) for o in overrides]
    cfg = load_config(
        model,
        overrides=[*overrides, *extra, f"run.storage={root}", f"run.name={name}"],
    )
    done = storage.join(root, name, RESULTS_FILE)
    if storage.exists(done):
        results = storage.read_json(done)
        digest = storage.sha256(PreparedDataset(data).path(MANIFEST))
        if results["data"]["manifest_sha256"] != digest:
            raise SystemExit(
                f"{done}: trained on {results['data']['uri']}, not on {data} (seed {seed}): "
                "give each prepared split its own seed (--seeds) or another --storage"
            )
        changed = config_changes(results["config"], cfg.model_dump(mode="json"))
        if changed:
            raise SystemExit(
                f"{done}: trained with other settings than variant {variant} has now "
                f"({', '.join(changed)}): move that run away or use another --storage"
            )
        return results
    print(f"\n=== {variant}, seed {seed} ===", flush=True)
    return fit(cfg, data)


def split_seeds(data: list[str], seeds: list[int] | None) -> list[int]:
    """The seed of each prepared split: ``seeds`` if given, else each manifest's own (a run is
    stored as ``VARIANT-seedN``, so a split must never take another split's number)."""
    return seeds or [int(PreparedDataset(d).manifest["seed"]) for d in data]


def popularity_ranking(data: str, k: int = 10) -> dict[str, float]:
    """HR@k and NDCG@k of ranking the test candidates by training popularity."""
    train = pq.read_table(Path(data) / "pairs" / "train.parquet").column("item_idx").to_numpy()
    counts = np.bincount(train)
    test = pq.read_table(Path(data) / "ranking" / "test.parquet")
    hits, gains = [], []
    for item, negatives in zip(
        test.column("item_idx").to_numpy(), test.column("negatives").to_pylist(), strict=True
    ):
        score = counts[item] if item < len(counts) else 0
        others = np.array([counts[n] if n < len(counts) else 0 for n in negatives])
        rank = int((others >= score).sum())  # ties count against the positive, as rayrec's
        hits.append(rank < k)
        gains.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return {f"hr@{k}": float(np.mean(hits)), f"ndcg@{k}": float(np.mean(gains))}


def summary(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def rating_table(results: dict[str, list[dict]], seeds: list[int]) -> tuple[list[str], dict]:
    """Markdown rows and figures: test MSE per seed, mean ± std, paired difference to MF."""
    reference = [r["test"]["mse"] for r in results.get(REFERENCE, [])]
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| model | {head} | mean ± std | Δ vs MF per seed | wins |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    figures: dict[str, Any] = {}
    for variant, runs in results.items():
        if variant_task(variant) != "rating":
            continue
        mse = [r["test"]["mse"] for r in runs]
        row = {"test_mse": mse, "val_mse": [r["best_val"]["val_mse"] for r in runs]}
        delta, wins = "-", "-"
        if reference and variant != REFERENCE:
            diffs = [m - ref for m, ref in zip(mse, reference, strict=True)]
            row |= {"paired_diff": diffs, "wins": sum(d < 0 for d in diffs)}
            delta = " / ".join(f"{d:+.4f}" for d in diffs)
            wins = f"{row['wins']}/{len(diffs)}"
        figures[variant] = row
        cells = " | ".join(f"{m:.4f}" for m in mse)
        lines.append(f"| {variant} | {cells} | {summary(mse)} | {delta} | {wins} |")
    return (lines if figures else []), figures


def ranking_table(results: dict[str, list[dict]], data: list[str]) -> tuple[list[str], dict]:
    """Markdown rows and figures: each BERT-RS variant's test HR@10 / NDCG@10 per seed and
    their mean ± std, beside the popularity ranker of the same splits, and the paired HR@10
    difference to it."""
    popular = [popularity_ranking(d) for d in data]
    lines = [
        "| ranker | HR@10 per seed | mean ± std | NDCG@10 per seed | Δ HR@10 vs popular | wins |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    figures: dict[str, Any] = {"popularity": popular}
    rows = {variant: [r["test"] for r in runs] for variant, runs in results.items()}
    for label, tested in (*rows.items(), ("popularity", popular)):
        hr = [r["hr@10"] for r in tested]
        ndcg = " / ".join(f"{r['ndcg@10']:.4f}" for r in tested)
        delta, wins = "-", "-"
        if label != "popularity":
            diffs = [t["hr@10"] - p["hr@10"] for t, p in zip(tested, popular, strict=True)]
            figures[label] = {"test": tested, "hr10_paired_diff": diffs}
            delta = " / ".join(f"{d:+.4f}" for d in diffs)
            wins = f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
        cells = " / ".join(f"{h:.4f}" for h in hr)
        lines.append(f"| {label} | {cells} | {summary(hr)} | {ndcg} | {delta} | {wins} |")
    return lines, figures


def plot(figures: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(figures)
    means = [statistics.mean(figures[n]["test_mse"]) for n in names]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(names), 3.6))
    ax.bar(range(len(names)), means, color="#9ecae1", label="mean over seeds")
    for i, n in enumerate(names):
        values = figures[n]["test_mse"]
        ax.plot([i] * len(values), values, "o", color="#08519c", ms=4)
    if REFERENCE in figures:
        ax.axhline(
            statistics.mean(figures[REFERENCE]["test_mse"]),
            color="#e6550d",
            ls="--",
            label="biased MF (mean)",
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    low = min(min(figures[n]["test_mse"]) for n in names)
    high = max(max(figures[n]["test_mse"]) for n in names)
    ax.set_ylim(low - 0.02, high + 0.02)
    ax.set_ylabel("test MSE (dots: seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", required=True, help="one prepared split per seed")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: each split's manifest seed")
    parser.add_argument("--variants", nargs="+", default=["global_mean", REFERENCE])
    parser.add_argument("--storage", required=True, help="local dir: runs and the table")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        help="VARIANT:KEY=VALUE, for one variant's runs",
    )
    parser.add_argument("--verbose", action="store_true", help="Ray's own console output")
    args = parser.parse_args()
    log = configure("bench-compare", verbose=args.verbose)
    print(f"Ray's log: {log}")
    seeds = split_seeds(args.data, args.seeds)
    unknown = set(args.variants) - VARIANTS.keys()
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    ensure_ray()
    root = storage.absolute(args.storage)
    Path(root).mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for variant in args.variants:
        extra = [o.split(":", 1)[1] for o in args.overrides if o.startswith(f"{variant}:")]
        results[variant] = [
            run_variant(variant, data, seed, root, extra)
            for data, seed in zip(args.data, seeds, strict=True)
        ]
    lines, figures = rating_table(results, seeds)
    ranking = {v: runs for v, runs in results.items() if variant_task(v) == "ranking"}
    if ranking:
        ranking_lines, figures["ranking"] = ranking_table(ranking, args.data)
        lines += ["", *ranking_lines] if lines else ranking_lines
    text = "\n".join(lines)
    print("\n" + text)
    storage.write_json(storage.join(root, "compare.json"), {"seeds": seeds, **figures})
    header = f"Test MSE on {', '.join(args.data)} (seeds {seeds})"
    Path(root, "compare.md").write_text(f"{header}\n\n{text}\n")
    rating = {k: v for k, v in figures.items() if k != "ranking"}
    if rating:
        plot(rating, str(Path(root, "compare.png")))
    print(json.dumps({"seeds": seeds, **figures}))


if __name__ == "__main__":
    main()
