"""Schedules: plain ``step -> float`` functions for weights that change during training.

Steps count optimizer steps (Balancer steps), from 0. Use them with
:func:`auxlab.weighting.scheduled`, e.g. to anneal an auxiliary weight to zero::

    scheduled({"aux": anneal_to_zero(0.3, steps=2000)})
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Schedule",
    "anneal_to_zero",
    "constant",
    "cosine",
    "linear",
    "piecewise_constant",
    "warmup",
]

Schedule = Callable[[int], float]


# Schedules are small frozen dataclasses with __call__, not closures, so that strategies that
# hold them can be pickled (checkpoints, multiprocessing studies) and print readably.


@dataclass(frozen=True)
class _Constant:
    value: float

    def __call__(self, step: int) -> float:
        return self.value


@dataclass(frozen=True)
class _Linear:
    start: float
    end: float
    steps: int

    def __call__(self, step: int) -> float:
        t = min(max(step, 0), self.steps) / self.steps
        return self.start + (self.end - self.start) * t


@dataclass(frozen=True)
class _Cosine:
    start: float
    end: float
    steps: int

    def __call__(self, step: int) -> float:
        t = min(max(step, 0), self.steps) / self.steps
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class _Piecewise:
    values: tuple[float, ...]
    boundaries: tuple[int, ...]

    def __call__(self, step: int) -> float:
        i = 0
        while i < len(self.boundaries) and step >= self.boundaries[i]:
            i += 1
        return self.values[i]


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
        raise TypeError(f"steps must be a positive integer, got {steps!r}")
    if not math.isfinite(steps) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _check_value(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0 (it is a loss weight), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (it is a loss weight), got {value}")


def constant(value: float) -> Schedule:
    """``value`` at every step.

    >>> constant(0.2)(1000)
    0.2
    """
    _check_value("value", value)
    return _Constant(value)


def linear(start: float, end: float, steps: int) -> Schedule:
    """From ``start`` at step 0 to ``end`` at step ``steps``, straight; ``end`` after that.

    >>> f = linear(0.0, 1.0, 10)
    >>> f(0), f(5), f(10), f(20)
    (0.0, 0.5, 1.0, 1.0)
    """
    _check_value("start", start)
    _check_value("end", end)
    _check_steps(steps)
    return _Linear(start, end, steps)


def cosine(start: float, end: float, steps: int) -> Schedule:
    """Half a cosine from ``start`` (step 0) to ``end`` (step ``steps``); ``end`` after that.

    >>> f = cosine(1.0, 0.0, 10)
    >>> f(0), round(f(5), 6), f(10)
    (1.0, 0.5, 0.0)
    """
    _check_value("start", start)
    _check_value("end", end)
    _check_steps(steps)
    return _Cosine(start, end, steps)


def piecewise_constant(values: Sequence[float], boundaries: Sequence[int]) -> Schedule:
    """A step schedule: ``values[i]`` from ``boundaries[i-1]`` on (``values[0]`` before).

    >>> f = piecewise_constant([1.0, 0.5, 0.0], [100, 200])
    >>> f(99), f(100), f(250)
    (1.0, 0.5, 0.0)
    """
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"piecewise_constant needs one more value than boundaries, got {len(values)} "
            f"values and {len(boundaries)} boundaries"
        )
    if list(boundaries) != sorted(boundaries) or any(b < 0 for b in boundaries):
        raise ValueError(f"boundaries must be increasing steps >= 0, got {list(boundaries)}")
    for v in values:
        _check_value("each value", v)
    return _Piecewise(tuple(values), tuple(boundaries))


def warmup(value: float, steps: int, start: float = 0.0) -> Schedule:
    """Linear warm-up from ``start`` to ``value`` over ``steps``, then ``value``.

    >>> f = warmup(0.2, 100)
    >>> f(0), f(50), f(100), f(1000)
    (0.0, 0.1, 0.2, 0.2)
    """
    return linear(start, value, steps)


def anneal_to_zero(value: float, steps: int, kind: str = "linear") -> Schedule:
    """From ``value`` down to 0 at step ``steps`` (``kind`` is ``"linear"`` or ``"cosine"``).

    GoogLeNet-style auxiliary classifiers help early and are discarded at inference; annealing
    their weight to zero lets the last part of training optimise the main loss alone.

    >>> f = anneal_to_zero(0.3, 10)
    >>> f(0), f(10), f(11)
    (0.3, 0.0, 0.0)
    """
    if kind == "linear":
        return linear(value, 0.0, steps)
    if kind == "cosine":
        return cosine(value, 0.0, steps)
    raise ValueError(f"unknown kind '{kind}'; use 'linear' or 'cosine'")
