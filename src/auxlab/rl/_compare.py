"""Across-seed statistics of RL runs: means with confidence intervals and significance tests."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auxlab._optional import require
from auxlab.study._stats import mean_interval, t_quantile

__all__ = ["compare", "mean_ci", "permutation_p", "plot_curves", "welch_p"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its Student-t confidence interval (NaNs dropped).

    Example:
        >>> [round(v, 3) for v in mean_ci([1.0, 2.0, 3.0])]
        [2.0, -0.484, 4.484]
    """
    return mean_interval(values, level)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test for equal means (``scipy.stats.ttest_ind``)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.size < 2 or y.size < 2:
        return float("nan")
    if x.var(ddof=1) + y.var(ddof=1) == 0:
        return 1.0 if x.mean() == y.mean() else 0.0
    stats = require("scipy.stats", "rl", "Welch's t-test")
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def permutation_p(a: Sequence[float], b: Sequence[float], max_exact: int = 20_000) -> float:
    """Two-sided p-value of the permutation test of the difference in means.

    Exact (all relabellings) when there are at most ``max_exact`` of them, as for 5 vs 5
    seeds (252); otherwise 20,000 random relabellings with a fixed seed.
    """
    x, y = np.asarray(a, float), np.asarray(b, float)
    pooled = np.concatenate([x, y])
    n, k = pooled.size, x.size
    if k == 0 or n == k:
        return float("nan")
    observed = abs(x.mean() - y.mean())
    total = pooled.sum()
    if math.comb(n, k) <= max_exact:
        sums = np.array([pooled[list(c)].sum() for c in itertools.combinations(range(n), k)])
    else:
        rng = np.random.default_rng(0)
        sums = np.array([pooled[rng.permutation(n)[:k]].sum() for _ in range(20_000)])
    diffs = np.abs(sums / k - (total - sums) / (n - k))
    return float(np.mean(diffs >= observed - 1e-12))


def compare(
    treated: Sequence[float], baseline: Sequence[float], level: float = 0.95
) -> dict[str, float]:
    """Difference of means (treated - baseline) with its Welch interval and both p-values."""
    x, y = np.asarray(treated, float), np.asarray(baseline, float)
    diff = float(x.mean() - y.mean())
    out = {"diff": diff, "low": float("nan"), "high": float("nan")}
    if x.size >= 2 and y.size >= 2:
        va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
        se = math.sqrt(va + vb)
        if se > 0:
            df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
            half = t_quantile(0.5 + level / 2, df) * se
            out["low"], out["high"] = diff - half, diff + half
    out["p_welch"] = welch_p(treated, baseline)
    out["p_permutation"] = permutation_p(treated, baseline)
    return out


def plot_curves(runs: Sequence[Any], path: str | Path, key: str = "return", bins: int = 40) -> Path:
    """Plot the mean learning curve per setting with its 95 % interval across seeds.

    ``runs`` are :class:`~auxlab.rl.RLRun` records; they are grouped by environment (one
    panel each) and setting (one line each). Each seed's episodes are averaged in ``bins``
    equal spans of environment steps. Needs matplotlib (extra ``report``).
    """
    require("matplotlib", "report", "plotting learning curves")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = {"return": 1, "success": 3}[key]
    envs = sorted({r.env_id for r in runs})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        settings: dict[str, list[Any]] = {}
        for r in runs:
            if r.env_id == env:
                settings.setdefault(r.config.label, []).append(r)
        for label, group in settings.items():
            total = max(r.config.total_steps for r in group)
            edges = np.linspace(0, total, bins + 1)
            centres = 0.5 * (edges[1:] + edges[:-1])
            per_seed = []
            for r in group:
                eps = np.asarray(r.episodes, float).reshape(-1, 4)
                idx = np.clip(np.searchsorted(edges, eps[:, 0], side="left") - 1, 0, bins - 1)
                vals = np.full(bins, np.nan)
                for b in range(bins):
                    sel = eps[idx == b, column]
                    if sel.size:
                        vals[b] = sel.mean()
                per_seed.append(vals)
            arr = np.asarray(per_seed)
            stats = [mean_ci(arr[:, b].tolist()) for b in range(bins)]
            mean = np.array([s[0] for s in stats])
            (line,) = ax.plot(centres, mean, label=f"{label} ({len(group)} seeds)")
            lo = np.array([s[1] for s in stats])
            hi = np.array([s[2] for s in stats])
            ax.fill_between(centres, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"episode {key} (mean, 95 % CI)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
