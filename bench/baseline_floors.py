"""The floors every review model must beat: global mean and biased MF, in one process.

    rayrec prepare --source amazon2014:Musical_Instruments_5.csv.zip --out prepared/mi
    python bench/baseline_floors.py --data prepared/mi

Trains :class:`~rayrec.models.baselines.GlobalMean` and
:class:`~rayrec.models.baselines.BiasedMF` with a plain PyTorch loop (Adam, mini-batches of
user-item ids, weight decay as MF's regulariser), keeps the epoch with the best validation
MSE and prints its test MSE, RMSE and MAE (scored by :class:`rayrec.eval.metrics.Evaluation`).
``bench/tuned_mf.py`` trains the shipped presets (biased MF with its tuned L2 penalty) through
`rayrec train`'s code path instead.
"""

from __future__ import annotations

import argparse

import torch

from rayrec.data.prepared import PreparedDataset
from rayrec.eval.metrics import Evaluation
from rayrec.models.base import DataInfo
from rayrec.models.registry import build_model


def tensors(prepared: PreparedDataset, split: str) -> dict[str, torch.Tensor]:
    table = prepared.pairs(split)
    return {
        "user_idx": torch.from_numpy(table.column("user_idx").to_numpy().astype("int64")),
        "item_idx": torch.from_numpy(table.column("item_idx").to_numpy().astype("int64")),
        "rating": torch.tensor(table.column("rating").to_numpy()),
    }


def errors(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """MSE, RMSE, MAE as rayrec evaluates them (predictions clipped to [1, 5])."""
    model.eval()
    evaluation = Evaluation("rating")
    with torch.no_grad():
        evaluation.update(batch, model(batch))
    return evaluation.result()


def fit(name: str, config: dict, info: DataInfo, data: dict, args) -> tuple[int, float, dict]:
    torch.manual_seed(args.seed)
    model = build_model(name, config, info)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train, n = data["train"], len(data["train"]["rating"])
    best = (float("inf"), 0, {})
    for epoch in range(1, args.epochs + 1):
        model.train()
        for index in torch.randperm(n).split(args.batch_size):
            optimizer.zero_grad()
            model({k: v[index] for k, v in train.items()})["loss"].backward()
            optimizer.step()
        val = errors(model, data["val"])["mse"]
        if val < best[0]:
            best = (val, epoch, errors(model, data["test"]))
    return best[1], best[0], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared dataset (local or s3://)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    prepared = PreparedDataset(args.data)
    manifest = prepared.manifest
    info = DataInfo(
        n_users=manifest["counts"]["users"], n_items=manifest["counts"]["items"],
        n_domains=len(manifest["domains"]), vocab_size=manifest["tokenizer"]["vocab_size"],
        pad_token_id=manifest["tokenizer"]["pad_token_id"], global_mean=manifest["global_mean"],
        max_len=manifest["max_len"], reviews_per_doc=manifest["reviews_per_user"],
    )  # fmt: skip
    data = {split: tensors(prepared, split) for split in ("train", "val", "test")}
    print(f"{args.data}: train/val/test {[len(d['rating']) for d in data.values()]}, "
          f"seed {manifest['seed']}, split {manifest['split']}")  # fmt: skip
    print(f"{'model':<14}{'best epoch':>11}{'val MSE':>9}{'test MSE':>10}{'RMSE':>8}{'MAE':>8}")
    for name, config in (("global_mean", {}), ("biased_mf", {"factors": args.factors})):
        epoch, val, test = fit(name, config, info, data, args)
        print(
            f"{name:<14}{epoch:>11}{val:>9.4f}{test['mse']:>10.4f}{test['rmse']:>8.4f}"
            f"{test['mae']:>8.4f}"
        )


if __name__ == "__main__":
    main()
