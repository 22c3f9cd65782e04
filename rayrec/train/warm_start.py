"""Warm start: a run's model starts from the tensors of an earlier run on the same dataset.

``train.init_from=RUN`` (a run directory, local or s3://, holding ``results.json`` and its
exported ``model.safetensors``) copies every tensor of RUN's weights whose name and shape the
new model has; the others keep their initialisation. The run must have been trained on the
same prepared dataset (``results.json``'s manifest sha256): id tables are indexed by the
dataset's user and item ids, and a table of another dataset with the same shape would be
silently wrong.

The use it is for: a text model whose user and item biases start from a tuned biased MF
(``user_bias.weight``, ``item_bias.weight``: SIFN and U-BERT with ``pair_biases`` name them as
``biased_mf`` does). This is the baseline-predictor residual of Koren (KDD 2008, section 2.1):
the biases are fitted first, then the model learns what they leave, starting from the MF's
predictions exactly (SIFN's rating weight starts at zero and its global bias at the mean, as
MF's ``mu``). The loaded biases keep training, with the run's ``bias_reg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safetensors.torch import load_file

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.train.checkpoint import WEIGHTS_FILE, read_results

if TYPE_CHECKING:
    from torch import nn


def check_init_from(run: str, manifest_sha256: str) -> dict[str, str]:
    """Refuse (:class:`~rayrec.errors.CliError`, one line) a ``train.init_from`` that is not
    a finished run of this dataset; returns what the run was: ``{"model", "uri"}``."""
    try:
        results = read_results(run)
    except CliError as err:
        raise CliError(f"train.init_from {err}") from None
    trained_on = results.get("data", {}).get("manifest_sha256")
    if trained_on != manifest_sha256:
        raise CliError(
            f"train.init_from {run}: trained on another dataset ({results.get('data', {})}); "
            "its id tables would index other users and items"
        )
    if not storage.exists(storage.join(run, WEIGHTS_FILE)):
        raise CliError(f"train.init_from {run}: no exported {WEIGHTS_FILE}")
    return {"model": str(results.get("model")), "uri": run}


def warm_start(model: nn.Module, run: str) -> list[str]:
    """Copy RUN's tensors that ``model`` shares by name and shape; returns their names.
    A run sharing none is refused (ValueError): a warm start that loads nothing is a typo."""
    tensors = load_file(storage.local_copy(storage.join(run, WEIGHTS_FILE)))
    own = model.state_dict()
    shared = sorted(k for k, v in tensors.items() if k in own and own[k].shape == v.shape)
    if not shared:
        raise ValueError(f"train.init_from {run}: no tensor of it fits this model")
    model.load_state_dict({k: tensors[k] for k in shared}, strict=False)
    return shared
