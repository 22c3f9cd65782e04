"""Learning-rate schedule: warm-up, then decay, as a factor of the base learning rate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rayrec.train.config import TrainSection


@dataclass(frozen=True)
class Schedule:
    """``factor(step)`` for optimizer step ``step`` (0-based) of a run of ``total`` steps.

    Linear warm-up from ``1 / warmup`` to 1 over ``warmup`` steps, then ``constant``,
    ``linear`` (to 0 at ``total``), ``cosine`` (to 0 at ``total``) or ``exponential``
    (``gamma`` per epoch of ``steps_per_epoch`` optimizer steps, SAFMR's decay).
    """

    kind: str
    total: int
    warmup: int
    steps_per_epoch: int
    gamma: float

    @classmethod
    def from_config(cls, train: TrainSection, steps_per_epoch: int) -> Schedule:
        """``steps_per_epoch``: optimizer steps (micro steps / gradient accumulation)."""
        steps_per_epoch = max(steps_per_epoch, 1)
        total = steps_per_epoch * train.epochs
        warmup = int(train.warmup * total) if train.warmup < 1 else int(train.warmup)
        return cls(train.schedule, total, min(warmup, total), steps_per_epoch, train.decay_gamma)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        if self.kind == "exponential":
            return self.gamma ** ((step - self.warmup) / self.steps_per_epoch)
        progress = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))
