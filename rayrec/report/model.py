"""A finished run's model, rebuilt on the driver to draw the report's prediction plots.

The model is built from ``results.json``'s config exactly as the training loop builds it
(:class:`rayrec.train.loop.Worker`: the same sizes from the manifest and the config, the same
seed, the same evaluation collate step with ``train=False``) and loads the run's exported
weights (``model.safetensors``, the best checkpoint). Its test predictions are therefore the
ones the run's test metrics were computed from (up to float rounding between DeepSpeed's
engine and a plain module), which the report's tests check.

Only rating models are rebuilt (ratings histogram, attention figures): a pretraining run has no
test split, and a ranking model's predictions are scores, not ratings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load as load_safetensors

from rayrec.data.prepared import PreparedDataset
from rayrec.eval.metrics import RATING_RANGE
from rayrec.models.base import Batch, ModelOutput, ModelSpec, RecModel
from rayrec.models.registry import build_model, get_model_spec
from rayrec.train.collate import Collator
from rayrec.train.config import TrainConfig
from rayrec.train.datasets import eval_table
from rayrec.train.loop import EVAL_SEED_OFFSET, data_info, token_info
from rayrec.train.reviews import ReviewIndex, load_review_index

MAX_ROWS = 2000  # test pairs the report predicts: enough for a histogram, bounded in time
ATTENTION_FIELD = "return_attention"  # models whose config has it can return attention maps


def current_config(tree: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    """``results.json``'s config as this rayrec reads it, and the dotted keys left out: a run
    of an older rayrec may hold keys its sections no longer have (they are not read by
    anything that builds or evaluates the model). Model parameters are not touched: the
    model's own config class validates them."""
    tree = copy.deepcopy(tree)
    dropped = []
    for name, section in TrainConfig.model_fields.items():
        known = section.annotation.model_fields
        for key in [k for k in tree.get(name, {}) if k not in known]:
            del tree[name][key]
            dropped.append(f"{name}.{key}")
    return TrainConfig.model_validate(tree), dropped


@dataclass
class ReportModel:
    """A run's model in eval mode with the collate step and test rows it was evaluated on."""

    spec: ModelSpec
    cfg: TrainConfig
    module: RecModel
    collate: Collator
    reviews: ReviewIndex
    test: pa.Table
    ignored_keys: list[str] = field(default_factory=list)  # see current_config

    @classmethod
    def load(cls, results: dict[str, Any], weights: bytes) -> ReportModel:
        """Build the model of ``results`` (a ``results.json``) and load ``weights`` (the bytes
        of its ``model.safetensors``); reads the run's prepared dataset."""
        cfg, ignored = current_config(results["config"])
        spec = get_model_spec(cfg.model.name)
        if spec.task != "rating":
            raise ValueError(f"{cfg.model.name}: only rating models are rebuilt for reports")
        dataset = PreparedDataset(results["data"]["uri"])
        reviews = load_review_index(dataset.uri)
        tokens = token_info(cfg, dataset.manifest)
        collate = Collator(
            spec, reviews, tokens, train=False, seed=cfg.train.seed + EVAL_SEED_OFFSET
        )
        params = dict(cfg.model.params)
        if "pretrained" in params:  # the exported weights hold every tensor, the pre-trained
            params["pretrained"] = None  # ones included: the pre-training file is not needed
        torch.manual_seed(cfg.train.seed)
        module = build_model(cfg.model.name, params, data_info(dataset.manifest, tokens))
        module.load_state_dict(load_safetensors(weights))
        module.eval()
        test = eval_table(spec, dataset, reviews, "test", cfg.data)
        return cls(spec, cfg, module, collate, reviews, test, ignored)

    @property
    def has_attention(self) -> bool:
        """Whether the model can be asked for its attention maps."""
        return ATTENTION_FIELD in self.spec.config_cls.model_fields

    def batch(self, rows: pa.Table, attention: bool = False) -> Batch:
        """The evaluation batch of ``rows``; ``attention`` asks the model for its maps."""
        batch = self.collate(rows)
        if attention:
            batch[ATTENTION_FIELD] = torch.tensor(True)
        return batch

    @torch.no_grad()
    def forward(self, batch: Batch) -> ModelOutput:
        return self.module(batch)

    def predictions(self, max_rows: int = MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ratings, clipped to [1, 5] as the evaluation clips them, and the true
        ratings of the first ``max_rows`` test pairs."""
        rows = self.test.slice(0, max_rows)
        size = self.cfg.train.eval_batch_size
        predicted, true = [], []
        for start in range(0, rows.num_rows, size):
            batch = self.batch(rows.slice(start, size))
            prediction = self.forward(batch)["prediction"].float().clamp(*RATING_RANGE)
            predicted.append(prediction.numpy())
            true.append(batch["rating"].numpy())
        if not predicted:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(predicted), np.concatenate(true)
