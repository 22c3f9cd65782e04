"""``train.init_from``: a text model warm-started from a biased MF run of the same dataset, and
BERT-RS from a NeuMF ranker's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from real_batch import ranking_batch

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.models.baselines import BiasedMF, BiasedMFConfig
from rayrec.models.bertrs import BertRS, BertRSConfig
from rayrec.models.neumf import NeuMF, NeuMFConfig
from rayrec.models.sifn import SIFN, SIFNConfig
from rayrec.models.ubert import UBertFinetune, UBertFinetuneConfig
from rayrec.train.checkpoint import WEIGHTS_FILE, export_weights
from rayrec.train.warm_start import check_init_from, warm_start

pytestmark = pytest.mark.usefixtures("single_thread")
MANIFEST_SHA = "a" * 64


def _mf_run(tmp_path: Path, data_info, manifest_sha: str = MANIFEST_SHA) -> tuple[str, BiasedMF]:
    """A finished biased MF 'run': trained-looking biases, results.json naming the dataset."""
    torch.manual_seed(1)
    mf = BiasedMF(BiasedMFConfig(factors=0), data_info)
    with torch.no_grad():
        mf.user_bias.weight.normal_(0, 0.5)
        mf.item_bias.weight.normal_(0, 0.5)
    run = str(tmp_path / "mf-run")
    export_weights(mf.state_dict(), storage.join(run, WEIGHTS_FILE))
    results = {"model": "biased_mf", "data": {"uri": "d", "manifest_sha256": manifest_sha}}
    storage.write_json(storage.join(run, "results.json"), results)
    return run, mf


def test_sifn_from_mf_predicts_exactly_as_the_mf(tmp_path, data_info, rating_batch) -> None:
    run, mf = _mf_run(tmp_path, data_info)
    assert check_init_from(run, MANIFEST_SHA) == {"model": "biased_mf", "uri": run}
    torch.manual_seed(0)
    sifn = SIFN(SIFNConfig(backbone="tiny"), data_info).eval()
    loaded = warm_start(sifn, run)
    assert loaded == ["item_bias.weight", "user_bias.weight"]  # mu is MF's buffer only
    with torch.no_grad():
        expected = mf.eval()(rating_batch)["prediction"]
        torch.testing.assert_close(sifn(rating_batch)["prediction"], expected)
        cold = SIFN(SIFNConfig(backbone="tiny"), data_info).eval()(rating_batch)["prediction"]
    assert (cold - expected).abs().max() > 0.1  # without the warm start: the global mean


def test_ubert_with_pair_biases_from_mf_predicts_exactly_as_the_mf(
    tmp_path, data_info, rating_batch
) -> None:
    run, mf = _mf_run(tmp_path, data_info)
    torch.manual_seed(0)
    config = UBertFinetuneConfig(backbone="tiny", pair_biases=True, bias_reg=1.5)
    ubert = UBertFinetune(config, data_info).eval()
    assert warm_start(ubert, run) == ["item_bias.weight", "user_bias.weight"]
    with torch.no_grad():
        expected = mf.eval()(rating_batch)["prediction"]
        torch.testing.assert_close(ubert(rating_batch)["prediction"], expected)
    ubert.train()
    ubert(rating_batch)["loss"].backward()
    assert ubert.predict.weight.grad.abs().sum() > 0  # the text's part starts at 0 and learns


def test_bertrs_from_neumf_ranks_exactly_as_the_neumf(
    tmp_path, data_info, reviews, tokenizer
) -> None:
    """BERT-RS names its id branches and id head as NeuMF does, and its text head starts at
    zero: started from a NeuMF run it gives that ranker's logits, then the text learns."""
    torch.manual_seed(1)
    neumf = NeuMF(NeuMFConfig(), data_info)
    with torch.no_grad():
        for table in (neumf.branches.user_gmf, neumf.branches.item_gmf):
            table.weight.normal_(0, 0.5)  # trained-looking id rows
    run = str(tmp_path / "neumf-run")
    export_weights(neumf.state_dict(), storage.join(run, WEIGHTS_FILE))
    torch.manual_seed(0)
    bertrs = BertRS(BertRSConfig(backbone="tiny"), data_info).eval()
    loaded = warm_start(bertrs, run)
    assert set(loaded) == set(neumf.state_dict())  # every NeuMF tensor has its place
    candidates = ranking_batch(reviews, tokenizer)
    with torch.no_grad():
        expected = neumf.eval()(candidates)["prediction"]
        torch.testing.assert_close(bertrs(candidates)["prediction"], expected)
    bertrs.train()
    bertrs(candidates)["loss"].backward()
    assert bertrs.predict_semantic.weight.grad.abs().sum() > 0  # the text's head learns


def test_another_datasets_run_or_one_sharing_nothing_is_refused(tmp_path, data_info) -> None:
    run, _ = _mf_run(tmp_path, data_info)
    with pytest.raises(CliError, match="trained on another dataset"):
        check_init_from(run, "b" * 64)
    with pytest.raises(CliError, match="not a finished run"):
        check_init_from(str(tmp_path / "nowhere"), MANIFEST_SHA)
    with pytest.raises(ValueError, match="no tensor of it fits"):
        warm_start(torch.nn.Linear(2, 2), run)
