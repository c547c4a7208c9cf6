"""What the validation-driven strategies share: a projected, scale-free Adam step on weights.

The validation-driven strategies (``lookahead-val``, ``auxilearn``) move loss-combination
parameters down a hypergradient of the main task's validation loss. Its scale is that of the
gradients' products (``g_val·gₖ``), which varies over orders of magnitude between models and
over training; a step normalised as Adam's is (the Auto-λ and AuxiLearn authors' code
train their weights with Adam) makes ``lr`` a size in weight units, the same on every
model. Each parameter moves
by at most ``lr`` per update, and is then projected into its bounds.

States hold plain Python floats, so they pickle and compare exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["AdamMoments"]

#: Adam's decay rates of the first and second moments (Kingma & Ba's defaults).
BETAS = (0.9, 0.999)


class AdamMoments(NamedTuple):
    """Adam's running moments of the hypergradient, one entry per learned parameter.

    Attributes:
        m: First moments (exponential mean of the hypergradient).
        v: Second moments (exponential mean of its square).
        steps: Adam steps taken.
    """

    m: tuple[float, ...]
    v: tuple[float, ...]
    steps: int


def zero_moments(n: int) -> AdamMoments:
    return AdamMoments((0.0,) * n, (0.0,) * n, 0)


def adam_step(
    values: Sequence[float],
    grads: Sequence[float],
    moments: AdamMoments,
    lr: float,
    low: Sequence[float | None],
    high: Sequence[float | None],
) -> tuple[list[float], AdamMoments]:
    """One descent step of Adam on ``values`` along ``grads``, projected into ``[low, high]``.

    The step ``lr·m̂/√v̂`` is clipped to ``[-lr, lr]`` (it is there in the steady state) and
    is 0 where the second moment is 0 (no signal yet), so it is finite at any scale. A
    non-finite hypergradient entry counts as 0.
    """
    b1, b2 = BETAS
    t = moments.steps + 1
    m_out, v_out, out = [], [], []
    for i, (x, g) in enumerate(zip(values, grads, strict=True)):
        g = g if math.isfinite(g) else 0.0
        m = b1 * moments.m[i] + (1 - b1) * g
        v = b2 * moments.v[i] + (1 - b2) * g * g
        if not math.isfinite(v):  # g² overflowed: keep the direction, drop the scale
            m, v = math.copysign(1.0, g) if g else 0.0, 1.0
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        ratio = m_hat / math.sqrt(v_hat) if v_hat > 0 else 0.0
        x = x - lr * max(-1.0, min(1.0, ratio))
        lo, hi = low[i], high[i]
        if lo is not None:
            x = max(lo, x)
        if hi is not None:
            x = min(hi, x)
        m_out.append(m)
        v_out.append(v)
        out.append(x)
    return out, AdamMoments(tuple(m_out), tuple(v_out), t)


def check_positive(name: str, value: float) -> float:
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


#: Why the validation-driven strategies refuse data-parallel training.
DISTRIBUTED_REFUSAL = (
    "its validation gradient is computed on each process's own batch and not averaged "
    "across processes; train it on one process"
)
