"""Student's t quantiles without scipy (the core depends on torch and numpy only)."""

from __future__ import annotations

import math

__all__ = ["t_cdf", "t_quantile"]


def _t_abs_prob(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_cdf(t: float, df: int) -> float:
    """Cumulative distribution of Student's t with ``df >= 1`` (integer) degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    p = _t_abs_prob(abs(t), int(df))
    return 0.5 + 0.5 * p if t >= 0 else 0.5 - 0.5 * p


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`t_cdf`; ``0 < q < 1``).

    Example:
        >>> round(t_quantile(0.975, 2), 3)
        4.303
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)
