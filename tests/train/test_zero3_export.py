"""ZeRO-3 on two workers: the parameters really are partitioned, and the exported
``model.safetensors`` is the whole model gathered from the partitions.

DeepSpeed keeps a ZeRO-3 parameter of at most ``stage3_param_persistence_threshold``
elements (default 1e5) whole on every rank, which is every parameter of the tests' tiny
models, and keeps parameters it fetched for a forward pass live while they are within
``stage3_max_live_parameters`` / ``stage3_max_reuse_distance`` (default 1e9): a tiny model
stays gathered after its evaluation. ``engine.zero_options`` sets all three to 0, so every
parameter is partitioned and released after each use. Biased MF with 4 factors (24 x 4
user and 16 x 4 item factors, the biases), two workers, one epoch.

* Partitioned, as rank 0 saw it after the test evaluation, before the export
  (``results.json``'s ``zero3_partitions``, from DeepSpeed's parameter attributes and public
  API: ``param.ds_numel``, ``param.ds_persist``, ``param.numel()``,
  ``deepspeed.utils.safe_get_local_fp32_param``): the factor tables are not persistent, hold
  no element on the rank (released) and their fp32 partition is half of them.
* Gathered: every tensor of ``model.safetensors`` (written by rank 0 inside
  ``deepspeed.zero.GatheredParameters`` after loading the best checkpoint) has its whole
  shape and equals, bit for bit, the fp32 weights that DeepSpeed's ``zero_to_fp32``
  rebuilds offline from that checkpoint's two per-rank ZeRO-3 shards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from safetensors.torch import load_file

from rayrec.models.base import ALL_PHASES
from rayrec.train.config import load_config
from rayrec.train.engine import deepspeed_config
from rayrec.train.trainer import fit

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


@pytest.mark.timeout(600)
def test_zero3_two_workers_partitions_and_exports_the_gathered_model(
    tmp_path: Path, tiny_prepared: Path
) -> None:
    cfg = load_config(
        "biased_mf",
        overrides=[
            f"run.storage={tmp_path}",
            "run.name=zero3",
            "run.num_workers=2",
            "engine.zero_stage=3",
            "engine.zero_options.stage3_param_persistence_threshold=0",
            "engine.zero_options.stage3_max_live_parameters=0",
            "engine.zero_options.stage3_max_reuse_distance=0",
            "model.params.factors=4",
            "train.epochs=1",
            "train.batch_size=8",
            "train.max_steps_per_epoch=2",
        ],
    )
    results = fit(cfg, str(tiny_prepared))
    exported = load_file(tmp_path / "zero3" / "model.safetensors")

    partitions = results["zero3_partitions"]
    assert partitions is not None and partitions.keys() <= exported.keys()
    for name, sizes in partitions.items():
        assert sizes["numel"] == exported[name].numel(), name
    split = {
        name
        for name, sizes in partitions.items()
        if not sizes["persistent"] and sizes["held"] == 0 and sizes["partition"] < sizes["numel"]
    }
    assert {"user_factors.weight", "item_factors.weight"} <= split, partitions
    factors = partitions["user_factors.weight"]
    assert (factors["numel"], factors["partition"]) == (24 * 4, 24 * 4 // 2)

    gathered = get_fp32_state_dict_from_zero_checkpoint(results["best_checkpoint"], tag=ALL_PHASES)
    assert set(partitions) <= gathered.keys() <= exported.keys()
    for name, tensor in gathered.items():
        assert exported[name].shape == tensor.shape, name
        assert exported[name].equal(tensor.float()), name


def test_zero_options_reach_deepspeed_and_cannot_set_the_stage() -> None:
    cfg = load_config(
        "biased_mf",
        overrides=["engine.zero_stage=3", "engine.zero_options.stage3_max_live_parameters=0"],
    )
    assert deepspeed_config(cfg)["zero_optimization"] == {
        "stage": 3,
        "stage3_max_live_parameters": 0,
    }
    assert deepspeed_config(load_config("biased_mf"))["zero_optimization"] == {"stage": 0}
    with pytest.raises(ValueError, match="engine.zero_stage"):
        load_config("biased_mf", overrides=["engine.zero_options.stage=2"])
