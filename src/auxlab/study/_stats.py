"""Student's t distribution, from scipy.stats (the ``study`` extra installs scipy).

Thin wrappers that keep the two calls the study's recommendation and the RL comparison make,
with argument checks that name the problem; scipy is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from auxlab._optional import require

__all__ = ["mean_interval", "t_cdf", "t_quantile"]


def _t() -> Any:
    return require("scipy.stats", extra="study", feature="confidence intervals").t


def _check_df(df: float) -> None:
    if isinstance(df, bool) or not (isinstance(df, (int, float)) and df > 0):
        raise ValueError(f"df (degrees of freedom) must be a positive number, got {df!r}")


def t_cdf(t: float, df: float) -> float:
    """Cumulative distribution of Student's t with ``df > 0`` degrees of freedom.

    Example:
        >>> round(t_cdf(2.228, 10), 3)
        0.975
    """
    _check_df(df)
    return float(_t().cdf(t, df))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df > 0`` degrees of freedom (``0 < q < 1``).

    Example:
        >>> round(t_quantile(0.975, 2), 3)
        4.303
    """
    if not (isinstance(q, (int, float)) and 0 < q < 1) or math.isnan(q):
        raise ValueError(f"q must be a probability strictly between 0 and 1, got {q!r}")
    _check_df(df)
    return float(_t().ppf(q, df))


def mean_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (NaNs dropped) and its Student-t interval.

    ``mean ± t_{(1+level)/2, n−1}·sd/√n`` with ``sd`` over ``n − 1``: the interval of a mean
    over seeds, or of paired differences seed by seed. One value: ``(mean, nan, nan)``; none:
    all three NaN.

    Example:
        >>> [round(v, 4) for v in mean_interval([1.0, 2.0, 3.0])]
        [2.0, -0.4841, 4.4841]
    """
    vals = [float(v) for v in values if not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(vals) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
