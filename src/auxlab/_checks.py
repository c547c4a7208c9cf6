"""Argument checks shared by the models, fit and other public constructors."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_fraction", "check_int"]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or a clear error if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_fraction(name: str, value: Any) -> float:
    """A probability in ``[0, 1)`` (dropout), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return v
