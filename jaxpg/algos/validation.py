"""Valid ranges of config and hyperparameter fields, declared once beside each field.

A field declares its range with :func:`bounded`::

    @struct.dataclass
    class PPOHParams:
        learning_rate: float = bounded(2.5e-4, NONNEGATIVE)
        gamma: float = bounded(0.99, UNIT)

and :func:`validate` checks every declared field of a Config or HParams instance, raising one
``ValueError`` line that names the field, the bad value and the valid range. Concrete values
(Python numbers, NumPy or device arrays, including a sweep's batched hyperparameters) are
checked; traced values inside ``jit`` are not (they have no value yet), so validation happens
where runs are set up: ``make_train``, ``sweep.grid``, ``sweep.run`` and the CLI.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
    """``low <= x <= high`` (strict where ``*_open``); ``integer``: a whole number is required."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def contains(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, np.float64)
        above = values > self.low if self.low_open else values >= self.low
        below = values < self.high if self.high_open else values <= self.high
        return np.isfinite(values) & above & below

    def describe(self, name: str) -> str:
        """``"0 <= gamma <= 1"``, ``"max_grad_norm > 0"``, ``"num_steps >= 1 (an integer)"``."""
        parts = []
        if self.low > -math.inf:
            parts.append(f"{_number(self.low)} {'<' if self.low_open else '<='} ")
        parts.append(name)
        if self.high < math.inf:
            parts.append(f" {'<' if self.high_open else '<='} {_number(self.high)}")
        elif self.low > -math.inf:  # "x >= 0" reads better than "0 <= x"
            parts = [name, f" {'>' if self.low_open else '>='} {_number(self.low)}"]
        text = "".join(parts) if len(parts) > 1 else f"{name} finite"
        return text + (" (an integer)" if self.integer else "")


def _number(x: float) -> str:
    """Integers as integers, others to 6 significant digits (float32 sweeps print cleanly)."""
    return str(int(x)) if float(x).is_integer() else f"{float(x):.6g}"


NONNEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, low_open=True)
UNIT = Interval(0.0, 1.0)
POSITIVE_INT = Interval(1, integer=True)
NONNEGATIVE_INT = Interval(0, integer=True)
FINITE = Interval()


def bounded(default, interval: Interval, optional: bool = False):
    """A dataclass field whose values must lie in ``interval`` (``None`` allowed if ``optional``)."""
    return dataclasses.field(default=default, metadata={"interval": interval, "optional": optional})


def _is_traced(value) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_value(name: str, value, interval: Interval, optional: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless every entry of ``value`` lies in ``interval``."""
    if value is None and optional:
        return
    if _is_traced(value):
        return  # inside jit: no value to check
    if isinstance(value, bool) or (interval.integer and not _is_integral(value)):
        kind = "an integer" if interval.integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}; valid: {interval.describe(name)}")
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}; valid: {interval.describe(name)}") from None
    ok = interval.contains(array)
    if np.all(ok):
        return
    if array.ndim == 0:
        raise ValueError(f"{name} = {_show(array)} is out of range; valid: {interval.describe(name)}")
    bad = np.argwhere(~ok)[0]
    where = ", ".join(str(int(i)) for i in bad)
    raise ValueError(
        f"{name} = {_show(array[tuple(bad)])} (sweep entry {where}) is out of range; valid: {interval.describe(name)}"
    )


def _is_integral(value) -> bool:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return True
    return False


def _show(x) -> str:
    x = float(x)
    return _number(x) if math.isfinite(x) else str(x)


def validate(instance) -> None:
    """Check every field of a Config or HParams dataclass that declares an interval."""
    for field in dataclasses.fields(instance):
        interval = field.metadata.get("interval")
        if interval is not None:
            check_value(field.name, getattr(instance, field.name), interval, field.metadata.get("optional", False))
