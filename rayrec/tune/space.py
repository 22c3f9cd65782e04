"""Search spaces: ``KEY=DIST`` expressions, short aliases, and the space files of each model.

An expression is ``KEY=VALUE`` where VALUE is either a distribution

* ``uniform(LOW, HIGH)``, ``loguniform(LOW, HIGH)``, ``quniform(LOW, HIGH, Q)``: floats;
* ``randint(LOW, HIGH)``: integers in ``[LOW, HIGH)``;
* ``choice(A, B, ...)``: one of the values, sampled;
* ``grid(A, B, ...)``: every value, each once per ``--num-samples`` (random search only);

or a plain YAML value (``1e-3``, ``tiny``, ``null``), which fixes that key for every trial.
Arguments are YAML scalars: ``choice(0.1, 1, 10)``, ``choice(tanh, relu)``.

KEY is a dotted path of :class:`~rayrec.train.config.TrainConfig` (``train.lr``,
``model.params.sentiment_weight``, ``data.max_len``) or a short alias, resolved in order:

1. a key whose first part is a config section (``train``, ``model``, ...) is used as is;
2. ``MODEL.NAME`` (``sifn.lambda``, ``ubert.beta``) must name the model being tuned
   (``ubert`` stands for both U-BERT stages) and continues with NAME;
3. the paper's names of :data:`PAPER_ALIASES` (``lambda`` -> ``model.params.sentiment_weight``
   for SIFN, ``kernels`` -> ``model.params.n_filters`` for SAFMR, ``max_len`` ->
   ``data.max_len``);
4. a field of ``train`` (``lr`` -> ``train.lr``), then of ``data``, then of the model's own
   config (``dropout`` -> ``model.params.dropout``).

Anything else, or a malformed distribution, is a :class:`SpaceError` that quotes the
expression. A space file (``rayrec/tune/spaces/<model>.yaml``, or ``--space FILE``) is a
mapping ``space: {KEY: VALUE}`` of the same expressions; ``--set`` adds to and overrides it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ray import tune

from rayrec.models.registry import get_model_spec
from rayrec.train.config import DataSection, TrainConfig, TrainSection

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
SECTIONS = frozenset(TrainConfig.model_fields)
PAPER_ALIASES: dict[str, dict[str, str]] = {
    "sifn": {"lambda": "model.params.sentiment_weight"},
    "ubert_pretrain": {"beta": "model.params.beta"},
    "safmr": {"kernels": "model.params.n_filters", "layers": "model.params.transform_layers"},
    "bertrs": {},
}
FAMILIES = {"ubert": ("ubert_pretrain", "ubert_finetune")}  # a prefix naming several models
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


class SpaceError(ValueError):
    """A search-space expression that cannot be used; the message quotes it."""


@dataclass(frozen=True)
class Dimension:
    """One swept key: its distribution and the values that bound it (for validation)."""

    key: str  # the full dotted path
    kind: str  # uniform, loguniform, quniform, randint, choice, grid
    args: tuple[Any, ...]
    expression: str  # as the user wrote it

    def domain(self) -> Any:
        """The Ray Tune domain (or grid search) of this dimension."""
        a = self.args
        if self.kind == "uniform":
            return tune.uniform(*a)
        if self.kind == "loguniform":
            return tune.loguniform(*a)
        if self.kind == "quniform":
            return tune.quniform(*a)
        if self.kind == "randint":
            return tune.randint(*a)
        if self.kind == "choice":
            return tune.choice(list(a))
        return tune.grid_search(list(a))

    def probes(self) -> list[Any]:
        """Values every trial config must accept: the choices, or the bounds."""
        if self.kind in ("choice", "grid"):
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


@dataclass
class SearchSpace:
    """Swept dimensions and fixed overrides (dotted keys), in the order they were given."""

    dimensions: dict[str, Dimension] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    def add(self, other: SearchSpace) -> None:
        """Entries of ``other`` replace this space's entries of the same key."""
        for key, dim in other.dimensions.items():
            self.fixed.pop(key, None)
            self.dimensions[key] = dim
        for key, value in other.fixed.items():
            self.dimensions.pop(key, None)
            self.fixed[key] = value

    def param_space(self) -> dict[str, Any]:
        """Tune's ``param_space``: ``{dotted key: domain}``."""
        return {key: dim.domain() for key, dim in self.dimensions.items()}

    @property
    def has_grid(self) -> bool:
        return any(dim.kind == "grid" for dim in self.dimensions.values())


def resolve_key(model: str, key: str, expression: str) -> str:
    """The dotted config path of ``key`` for ``model`` (see the module docstring)."""
    key = key.strip()
    first, _, rest = key.partition(".")
    if first in SECTIONS:
        return key
    if rest and (first == model or model in FAMILIES.get(first, ())):
        key = rest
    elif rest:
        raise SpaceError(f"{expression!r}: {first!r} is not a config section nor the model {model}")
    if key in PAPER_ALIASES.get(model, {}):
        return PAPER_ALIASES[model][key]
    if key == "max_len":
        return "data.max_len"
    if key in TrainSection.model_fields:
        return f"train.{key}"
    if key in DataSection.model_fields:
        return f"data.{key}"
    if key in get_model_spec(model).config_cls.model_fields:
        return f"model.params.{key}"
    raise SpaceError(
        f"{expression!r}: unknown key {key!r} for {model}; use a dotted config path "
        "(train.lr, model.params.dropout, data.max_len) or a field of train, data or the model"
    )


def _number(value: Any, expression: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpaceError(f"{expression!r}: {what} must be a finite number, not {value!r}")
    return value


def scalar(text: str) -> Any:
    """A value as written: an int, a float (``1e-3`` too, which YAML 1.1 reads as a
    string), else a YAML scalar (``true``, ``null``, ``tanh``)."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _arguments(raw: str, expression: str) -> tuple[Any, ...]:
    if not raw.strip():
        return ()
    try:
        return tuple(scalar(part) for part in raw.split(","))
    except yaml.YAMLError:
        raise SpaceError(f"{expression!r}: cannot read the arguments {raw!r}") from None


def parse_distribution(key: str, raw: str, expression: str) -> Dimension | None:
    """The dimension of ``raw`` (e.g. ``loguniform(1e-5, 1e-2)``), or None for a plain
    value. Raises :class:`SpaceError` naming ``expression`` for a malformed distribution."""
    match = _CALL.match(raw)
    if match is None:
        if re.match(r"^\s*[a-z_]+\s*\(", raw):
            raise SpaceError(f"{expression!r}: unbalanced parentheses")
        return None
    kind, args = match.group(1), _arguments(match.group(2), expression)
    if kind in ("choice", "grid"):
        if not args:
            raise SpaceError(f"{expression!r}: {kind}() needs at least one value")
        return Dimension(key, kind, args, expression)
    arity = {"uniform": 2, "loguniform": 2, "quniform": 3, "randint": 2}
    if kind not in arity:
        known = ", ".join([*arity, "choice", "grid"])
        raise SpaceError(f"{expression!r}: unknown distribution {kind!r} (known: {known})")
    if len(args) != arity[kind]:
        raise SpaceError(f"{expression!r}: {kind}() takes {arity[kind]} numbers, got {len(args)}")
    low, high = _number(args[0], expression, "LOW"), _number(args[1], expression, "HIGH")
    if low >= high:
        raise SpaceError(f"{expression!r}: LOW must be below HIGH")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{expression!r}: loguniform needs LOW > 0")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise SpaceError(f"{expression!r}: randint takes integers")
    if kind == "quniform" and _number(args[2], expression, "Q") <= 0:
        raise SpaceError(f"{expression!r}: Q must be positive")
    return Dimension(key, kind, args, expression)


def parse_expression(model: str, expression: str) -> SearchSpace:
    """One ``KEY=VALUE`` expression as a one-entry space."""
    key, sep, raw = expression.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise SpaceError(f"{expression!r} is not KEY=DIST or KEY=VALUE")
    path = resolve_key(model, key, expression)
    space = SearchSpace()
    dim = parse_distribution(path, raw, expression)
    if dim is not None:
        space.dimensions[path] = dim
    else:
        try:
            space.fixed[path] = scalar(raw)
        except yaml.YAMLError:
            raise SpaceError(f"{expression!r}: {raw!r} is not a YAML value") from None
    return space


def parse_expressions(model: str, expressions: Iterable[str]) -> SearchSpace:
    """Several expressions; a later one replaces an earlier one of the same key."""
    space = SearchSpace()
    for expression in expressions:
        space.add(parse_expression(model, expression))
    return space


def space_path(model: str) -> Path:
    """The space file shipped for ``model``."""
    return SPACES_DIR / f"{model}.yaml"


def load_space_file(model: str, path: str | Path | None = None) -> SearchSpace:
    """The space of a YAML file (default: the model's shipped one; none shipped: empty)."""
    path = Path(path) if path is not None else space_path(model)
    if not path.exists():
        if path == space_path(model):
            return SearchSpace()
        raise SpaceError(f"space file {str(path)!r} does not exist")
    tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = tree.get("space") if isinstance(tree, dict) else None
    if not isinstance(entries, Mapping):
        raise SpaceError(f"{path}: a space file holds a mapping 'space: {{KEY: DIST}}'")
    return parse_expressions(model, (f"{k}={_yaml_text(v)}" for k, v in entries.items()))


def _yaml_text(value: Any) -> str:
    """A space-file value back as expression text (strings are expressions already)."""
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True)


def apply_values(tree: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``tree`` (a config as a nested dict) with dotted ``values`` applied, in place."""
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def check_space(base: TrainConfig, space: SearchSpace) -> None:
    """Validate every dimension's bounding values against the config; a value the config
    rejects is a :class:`SpaceError` naming the expression."""
    for dim in space.dimensions.values():
        for value in dim.probes():
            tree = apply_values(base.model_dump(mode="json"), {dim.key: value})
            try:
                TrainConfig.model_validate(tree)
            except ValidationError as err:
                problems = "; ".join(e["msg"] for e in err.errors(include_url=False))
                raise SpaceError(
                    f"{dim.expression!r}: value {value!r} is invalid: {problems}"
                ) from None
