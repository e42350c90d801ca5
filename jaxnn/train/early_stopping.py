"""Early stopping on any logged metric.

An :class:`EarlyStopping` value is immutable; ``update(value)`` returns a new one. It
improves when the monitored value beats the best one by more than ``min_delta`` in the
direction of ``mode`` and asks to stop after ``patience`` epochs without improvement.
Non-finite values never count as an improvement.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

__all__ = ["EarlyStopping"]


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Patience-based early stopping (cf. ``flax.training.early_stopping``, plus ``mode``).

    Attributes:
      patience: ``should_stop`` is set after this many epochs in a row without improvement
        (0 behaves as 1: stop at the first epoch that does not improve).
      min_delta: the smallest change that counts as an improvement (>= 0).
      mode: ``"min"`` (losses) or ``"max"`` (accuracies).
      best_value: the best value seen (``None`` before the first finite value).
      best_epoch: the epoch index at which it was seen (-1 before).
      wait: epochs since the last improvement.
      should_stop: whether the patience has run out.
      has_improved: whether the latest update improved.
    """

    patience: int = 0
    min_delta: float = 0.0
    mode: str = "min"
    best_value: float | None = None
    best_epoch: int = -1
    wait: int = 0
    should_stop: bool = False
    has_improved: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {self.mode!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, numbers.Integral) \
                or self.patience < 0:
            raise ValueError(
                f"EarlyStopping: patience must be an integer >= 0, got {self.patience!r}")
        if not isinstance(self.min_delta, numbers.Real) or not self.min_delta >= 0:
            raise ValueError(
                f"EarlyStopping: min_delta must be a number >= 0, got {self.min_delta!r}")

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(self, value: float, epoch: int) -> EarlyStopping:
        """Record the metric of ``epoch``; returns the new state."""
        if isinstance(value, (bool, str, bytes)) or value is None:
            raise TypeError(
                f"EarlyStopping.update: value must be a real number, got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"EarlyStopping.update: value must be a real number, got {value!r}") from None
        if self._improves(value):
            return dataclasses.replace(
                self, best_value=value, best_epoch=epoch, wait=0, has_improved=True,
                should_stop=False,
            )
        wait = self.wait + 1
        return dataclasses.replace(
            self, wait=wait, has_improved=False, should_stop=wait >= max(self.patience, 1)
        )
