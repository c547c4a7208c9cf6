"""What the main-task-first strategies share: Gramian reads, cosines, checks.

Every main-first strategy treats the main task asymmetrically: its gradient is never reduced, and
the auxiliary gradients are admitted, scaled or projected according to how they relate to
it. All read the per-task gradients on the shared parameters, through their Gramian
``G Gᵀ`` when that suffices (gradient norms are the square roots of its diagonal, cosines
follow from its entries), so they cost one backward through the shared block per task (the
Balancer's ``every=k`` spreads that cost over ``k`` steps).

Vocabulary used in each class's "Loss scaling" paragraph (``scale_reaction``): multiplying
one task's loss by ``c > 0`` multiplies its gradient by ``c``. ``"independent"``: the
weights do not change (so that task's contribution to the update is multiplied by ``c``);
``"inverse"``: that task's weight is divided by ``c`` and the others stay, so the whole
update is unchanged; ``"invariant"``: the weights, or for a strategy that combines the
gradients on the shared block, the direction of the shared update, do not change;
``"adaptive"`` / ``"none"``: no exact one-step statement.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from auxlab._errors import TaskMismatchError
from auxlab.weighting._base import Need, Signals, Strategy, check_weight

__all__ = ["NonFiniteSignalWarning"]


_GRAMIAN_ONLY = frozenset({Need.LOSSES, Need.GRAMIAN})


class NonFiniteSignalWarning(UserWarning):
    """A gradient signal (Gramian entry, norm) was not finite; a documented fallback was used."""


def _gram(signals: Signals, who: Strategy) -> list[list[float]]:
    """The Gramian as nested Python floats (float64), for the small T x T arithmetic.

    One transfer of T² numbers to the host: cheaper than many tiny device operations and
    exact in float64 whatever the dtype and device of the gradients.
    """
    g = signals.gramian
    if g is None:
        if signals.grads is None:
            raise ValueError(
                f"{type(who).__name__} reads the Gramian of the per-task gradients, but the "
                "signals carry neither gramian nor grads (declare Need.GRAMIAN in needs)"
            )
        g = signals.grads @ signals.grads.T
    n = len(signals.tasks)
    if tuple(g.shape) != (n, n):
        raise ValueError(
            f"{type(who).__name__}: the Gramian has shape {tuple(g.shape)}, expected ({n}, {n}) "
            f"for the tasks {list(signals.tasks)}"
        )
    rows: list[list[float]] = g.detach().to(device="cpu", dtype=torch.float64).tolist()
    return rows


def _warn(who: Strategy, message: str) -> None:
    warnings.warn(f"{type(who).__name__}: {message}", NonFiniteSignalWarning, stacklevel=3)


def _norms(gram: list[list[float]], who: Strategy) -> list[float]:
    """Gradient norms ``sqrt(Gᵢᵢ)``; a non-finite entry becomes 0 with a warning."""
    out = []
    for i, row in enumerate(gram):
        v = row[i]
        if not math.isfinite(v):
            _warn(
                who,
                f"a squared gradient norm is {v} (the gradients overflow the dtype of the "
                "Gramian); that task is treated as having no gradient",
            )
            v = 0.0
        out.append(math.sqrt(max(v, 0.0)))
    return out


def _cosines(gram: list[list[float]], i_main: int, who: Strategy) -> list[float]:
    """``cos(g_main, gᵢ)`` for every task; 0 where either gradient is zero (or not finite)."""
    norms = _norms(gram, who)
    out = []
    for i, row in enumerate(gram):
        denom = norms[i] * norms[i_main]
        dot = row[i_main]
        if denom > 0.0 and math.isfinite(dot) and math.isfinite(denom):
            out.append(min(1.0, max(-1.0, dot / denom)))
        else:
            out.append(0.0)
    return out


def _resolve(
    given: Mapping[str, float] | float | None,
    tasks: Sequence[str],
    main: str,
    what: str,
    default: float = 1.0,
) -> dict[str, float]:
    """``{task: value}`` for every task.

    From a dict (missing tasks get ``default``, the main task 1.0), a number (every auxiliary
    task) or ``None`` (all ``default``, the main task 1.0).
    """
    out = {t: (1.0 if t == main else default) for t in tasks}
    if given is None:
        return out
    if isinstance(given, Mapping):
        unknown = [t for t in given if t not in tasks]
        if unknown:
            raise TaskMismatchError(
                f"{what} name tasks {unknown} that are not among the tasks {list(tasks)}"
            )
        out.update({t: check_weight(t, v, what) for t, v in given.items()})
        return out
    v = check_weight("every auxiliary task", given, what)
    out.update({t: v for t in tasks if t != main})
    return out


def _check_weights_arg(weights: Mapping[str, float] | float | None, what: str) -> Any:
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        for t, v in weights.items():
            check_weight(t, v, what)
        return dict(weights)
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        check_weight("every auxiliary task", weights, what)
        return float(weights)
    raise TypeError(f"{what} must be a dict {{task: value}}, a number or None, got {weights!r}")


def _check_fraction(name: str, value: float, *, closed_top: bool) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed_top else 0.0 <= v < 1.0
    if not ok:
        interval = "[0, 1]" if closed_top else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_max_weight(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not (v > 0 and not math.isnan(v)):
        raise ValueError(f"max_weight must be > 0 (or None for no cap), got {value!r}")
    return v
