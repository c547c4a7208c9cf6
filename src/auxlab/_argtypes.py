"""``argparse`` value types shared by the ``auxlab`` subcommands."""

from __future__ import annotations

import argparse
import math

__all__ = ["finite_nonneg", "positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1, or an ``argparse`` error that names the value."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def finite_nonneg(text: str) -> float:
    """A finite number >= 0, or an ``argparse`` error that names the value."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v
