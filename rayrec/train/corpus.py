"""The embedded synthetic corpus, prepared on first use: the data of a run without ``--data``.

``default_dataset()`` prepares the synthetic cross-domain corpus (:mod:`rayrec.data.synthetic`,
three domains sharing users; the first is the target) with :func:`rayrec.data.pipeline.prepare`
into ``$RAYREC_CACHE/prepared/<name>`` (default ``~/.cache/rayrec``) and reuses it afterwards
(a directory with a manifest is complete). Its size keeps every job within minutes on two CPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rayrec.data import storage
from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.prepared import MANIFEST

DEMO_CORPUS: dict[str, Any] = {
    "synthetic_reviews": 1500,  # per domain, before the 5-core filter
    "max_len": 64,
    "reviews_per_user": 4,
    "reviews_per_item": 4,
    "negatives": 49,
    "seed": 0,
}


def cache_root() -> Path:
    return Path(os.environ.get("RAYREC_CACHE", Path.home() / ".cache" / "rayrec"))


def default_dataset(report: Callable[[str], None] = print, **changes: Any) -> str:
    """URI of the prepared embedded corpus (``DEMO_CORPUS`` updated with ``changes``),
    preparing it if it is not in the cache yet."""
    params = DEMO_CORPUS | changes
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    out = cache_root() / "prepared" / f"synthetic-{digest}"
    if storage.exists(storage.join(str(out), MANIFEST)):
        return str(out)
    report(f"preparing the embedded synthetic corpus into {out}")
    config = PrepareConfig(sources=[f"synthetic:{out}-raw"], out=str(out), overwrite=True, **params)
    prepare(config, report)
    return str(out)
