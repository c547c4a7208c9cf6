"""Runs grouped by setting, with each group's statistics and the seed noise pooled over groups.

A fixed weight found by a search joins the fixed weights: the group key is the weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auxlab.study._stats import t_cdf, t_quantile

__all__ = [
    "Group",
    "Paired",
    "columns",
    "count",
    "finite",
    "group_rows",
    "paired",
    "pooled_sd",
    "summary_table",
]


@dataclass
class Group:
    """The runs of one setting (or one fixed weight) and their statistics.

    Attributes:
        key: ``"w=<weight>"`` for fixed (and searched) weights, else the setting id.
        label: For tables and text.
        kind: The setting's kind (``"fixed"`` for searched weights too).
        weight: The fixed weight, else ``None``.
        values: The metric of each completed seed.
        rows: The completed rows.
        mean: Mean over seeds.
        ci: Confidence interval of the mean (NaN without a noise estimate).
        pruned: Runs pruned.
        failed: Runs failed.
    """

    key: str
    label: str
    kind: str
    weight: float | None
    values: list[float] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    mean: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    pruned: int = 0
    failed: int = 0

    @property
    def n(self) -> int:
        """Completed seeds."""
        return len(self.values)

    def by_seed(self, column: str = "value") -> dict[int, float]:
        """A column (default: the metric) of each completed seed, by seed.

        A repeated seed keeps its last run; runs without a finite value in ``column`` are left
        out.
        """
        return {
            int(r["seed"]): float(r[column])
            for r in self.rows
            if finite(r.get("seed")) and finite(r.get(column))
        }

    def measure(self, column: str) -> float:
        """Mean of a measurement column over the completed runs (NaN if absent)."""
        vals = [float(r[column]) for r in self.rows if finite(r.get(column))]
        return sum(vals) / len(vals) if vals else math.nan


def finite(v: Any) -> bool:
    """Whether ``v`` is a finite number (or a string of one); empty and ``None`` are not."""
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Group]:
    """Group a tidy table's rows by setting (fixed and searched weights by weight)."""
    groups: dict[str, Group] = {}
    for r in rows:
        kind = str(r.get("kind", "fixed"))
        weight = float(r["weight"]) if finite(r.get("weight")) else None
        if kind in ("fixed", "search") and weight is not None:
            key, label, gkind = f"w={weight!r}", f"w={weight:.4g}", "fixed"
        else:
            key, label, gkind = str(r["setting"]), str(r.get("label", r["setting"])), kind
        g = groups.setdefault(key, Group(key, label, gkind, weight if gkind == "fixed" else None))
        state = r.get("state", "COMPLETE")
        if state == "COMPLETE" and finite(r.get("value")):
            g.values.append(float(r["value"]))
            g.rows.append(dict(r))
        elif state == "PRUNED":
            g.pruned += 1
        else:
            g.failed += 1
    return groups


def columns(g: Group, prefixes: tuple[str, ...]) -> list[str]:
    """The measurement columns of a group's rows that start with ``prefixes``, in order."""
    cols: list[str] = []
    for r in g.rows:
        for k in r:
            if k.startswith(prefixes) and k not in cols:
                cols.append(k)
    return cols


def count(g: Group, column: str) -> int:
    """How many of a group's rows have a finite ``column``."""
    return sum(finite(r.get(column)) for r in g.rows)


def pooled_sd(groups: Iterable[Group], column: str) -> tuple[float, int]:
    """Pooled standard deviation of a measurement around its group means, and its df."""
    ss, df = 0.0, 0
    for g in groups:
        vals = [float(r[column]) for r in g.rows if finite(r.get(column))]
        if len(vals) > 1:
            m = sum(vals) / len(vals)
            ss += sum((v - m) ** 2 for v in vals)
            df += len(vals) - 1
    return (math.sqrt(ss / df) if df else math.nan), df


def summary_table(groups: Iterable[Group]) -> list[dict[str, Any]]:
    """One summary dict per group (weights first, in order), for tables and the report."""
    return [
        {
            "setting": g.label,
            "kind": g.kind,
            "seeds": g.n,
            "mean": g.mean,
            "ci_low": g.ci[0],
            "ci_high": g.ci[1],
            "pruned": g.pruned,
            "failed": g.failed,
            **{c: g.measure(c) for c in columns(g, ("ratio/", "cos/", "conflict/", "gap"))},
            **({"test": g.measure("test")} if any("test" in r for r in g.rows) else {}),
        }
        for g in sorted(groups, key=lambda g: (g.weight is None, g.weight or 0, g.label))
    ]


@dataclass
class Paired:
    """The paired comparison of two settings over the seeds both completed.

    Attributes:
        difference: Mean of the per-seed differences, in the better direction (positive:
            the first setting is better).
        ci: Its t-interval (NaN with fewer than two common seeds).
        n: Common seeds.
        sd: Standard deviation of the per-seed differences.
        p: Two-sided p-value of "no difference" (NaN with fewer than two common seeds).
    """

    difference: float
    ci: tuple[float, float]
    n: int
    sd: float
    p: float


def paired(
    a: Group, b: Group, sign: float = 1.0, level: float = 0.95, column: str = "value"
) -> Paired:
    """Compare ``a`` with ``b`` seed by seed (``sign`` -1 when the metric is minimised).

    ``column`` is the measurement compared: the metric (``"value"``) or another column of the
    rows, such as the train/validation ``"gap"``.
    """
    va, vb = a.by_seed(column), b.by_seed(column)
    d = [sign * (va[s] - vb[s]) for s in sorted(va.keys() & vb.keys())]
    n = len(d)
    if n == 0:
        return Paired(math.nan, (math.nan, math.nan), 0, math.nan, math.nan)
    mean = sum(d) / n
    if n < 2:
        return Paired(mean, (math.nan, math.nan), n, math.nan, math.nan)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * se
    if se <= 1e-15 * max(1.0, abs(mean)):  # identical differences on every seed
        p = 1.0 if mean == 0 else 0.0
    else:
        p = 2 * (1 - t_cdf(abs(mean) / se, n - 1))
    return Paired(mean, (mean - half, mean + half), n, sd, min(1.0, max(0.0, p)))
