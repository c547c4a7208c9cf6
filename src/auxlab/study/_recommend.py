"""The recommendation rule: the best setting, its uncertainty over seeds, and why, in words.

Rule (on the tidy table of completed runs):

1. Group runs by setting; a fixed weight found by a search joins the fixed weights (the
   group key is the weight).
2. Each group's confidence interval is ``mean ± t·s/√n``, ``s`` the pooled standard
   deviation of the runs around their group means (``Σ (nᵢ−1)`` degrees of freedom). This
   describes a mean; it is not used to compare settings.
3. Settings are compared *by seed*: a seed gives every setting the same initialisation and
   data order, so the comparison of ``a`` with ``b`` is the paired difference
   ``dₛ = a_s − b_s`` (in the better direction) over the seeds both completed, with the
   t-interval ``mean(d) ± t·sd(d)/√n`` on ``n − 1`` degrees of freedom.
4. The best group has the best mean. Every other setting is compared with weight 0 ("no
   auxiliary loss"); the best was chosen among these ``m`` comparisons, so their two-sided
   p-values are Holm-adjusted. The best is recommended only if it is better than weight 0
   and its Holm-adjusted p-value is below ``1 − level``. Otherwise weight 0 is recommended,
   and the text says why.
5. The plateau: the fixed weights whose paired difference to the best has an interval that
   reaches 0 (the best included) are within the noise of it; the text gives their range.
6. The reasons are measurements at the recommended setting (or, when weight 0 is
   recommended, at the best other one). A change of the train/validation gap against weight 0
   is read as regularisation only when the interval of the difference, from the gap's pooled
   seed noise, excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auxlab.study._groups import Group, Paired, group_rows, paired, summary_table
from auxlab.study._reasons import measurement_reasons, share_reasons
from auxlab.study._stats import t_quantile

__all__ = [
    "Group",
    "Paired",
    "Recommendation",
    "group_rows",
    "holm",
    "paired",
    "recommend_from_rows",
]


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down; NaN stays NaN and is not counted).

    Example:
        >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
        {'a': 0.03, 'c': 0.06, 'b': 0.06}
    """
    ok = sorted((p, k) for k, p in pvalues.items() if math.isfinite(p))
    m = len(ok)
    out: dict[str, float] = {}
    running = 0.0
    for i, (p, k) in enumerate(ok):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = round(running, 12)
    out.update({k: math.nan for k, p in pvalues.items() if not math.isfinite(p)})
    return out


@dataclass
class Recommendation:
    """What to use, how sure, and why.

    Attributes:
        label: The recommended setting, in words (``"w=0.1"``, ``"relative(...)"``).
        key: Its group key.
        kind: ``"fixed"``, ``"schedule"``, ``"strategy"``.
        weight: The recommended auxiliary weight, for a fixed weight.
        mean: Its mean metric over seeds.
        ci: Its confidence interval.
        n_seeds: Completed seeds behind it.
        beats_baseline: Whether it beats weight 0 beyond the seed noise (``False`` when the
            recommendation *is* weight 0).
        best_label: The setting with the best mean (may differ from the recommendation).
        difference: Best mean minus weight 0's mean, in the better direction (positive:
            better).
        difference_ci: Paired confidence interval of that difference (seed by seed; not
            adjusted for the number of comparisons).
        p_adjusted: Holm-adjusted p-value of the best against weight 0.
        comparisons: How many settings were compared with weight 0 (the Holm family).
        plateau: The fixed weights within the paired noise of the best, lowest to highest
            (empty when the best is not within noise of any fixed weight).
        relative_share: The recommendation as ``RelativeWeights`` shares per auxiliary task,
            ``‖w·g_aux‖/‖g_main‖`` measured at that weight (``None`` if not measured).
        reasons: Plain sentences built from the measurements.
        table: One summary dict per setting.
        metric: The metric optimised.
        direction: ``"maximize"`` or ``"minimize"``.
        level: Confidence level.
    """

    label: str
    key: str
    kind: str
    weight: float | None
    mean: float
    ci: tuple[float, float]
    n_seeds: int
    beats_baseline: bool
    best_label: str
    difference: float
    difference_ci: tuple[float, float]
    relative_share: dict[str, float] | None
    reasons: list[str]
    table: list[dict[str, Any]]
    metric: str
    direction: str
    level: float = 0.95
    p_adjusted: float = math.nan
    comparisons: int = 0
    plateau: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        lo, hi = self.ci
        head = (
            f"Recommendation: {self.label} ({self.metric} {self.mean:.4f}, "
            f"{self.level:.0%} CI [{lo:.4f}, {hi:.4f}], {self.n_seeds} seeds)"
        )
        return "\n".join([head, *(f"- {r}" for r in self.reasons)])


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def recommend_from_rows(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    direction: str,
    level: float = 0.95,
) -> Recommendation:
    """Apply the recommendation rule (see the module docstring) to a tidy table.

    Args:
        rows: Rows of :meth:`Study.results` (``state``, ``setting``, ``label``, ``kind``,
            ``weight``, ``seed``, ``value`` and measurement columns such as ``ratio/aux``,
            ``cos/aux``, ``conflict/aux``, ``norm/main``, ``norm/aux``, ``gap``).
        metric: The metric's name, for the text.
        direction: ``"maximize"`` or ``"minimize"``.
        level: Confidence level of the intervals.

    Raises:
        ValueError: If no run completed with a finite metric.
    """
    sign = 1.0 if direction == "maximize" else -1.0
    groups = {k: g for k, g in group_rows(rows).items()}
    done = {k: g for k, g in groups.items() if g.n}
    if not done:
        failed = sum(g.failed for g in groups.values())
        pruned = sum(g.pruned for g in groups.values())
        raise ValueError(
            f"no run completed with a finite {metric} ({failed} failed, {pruned} pruned); "
            "nothing to recommend"
        )
    df = sum(g.n - 1 for g in done.values())
    ss = 0.0
    for g in done.values():
        g.mean = sum(g.values) / g.n
        ss += sum((v - g.mean) ** 2 for v in g.values)
    sd = math.sqrt(ss / df) if df > 0 else math.nan
    t = t_quantile(0.5 + level / 2, df) if df > 0 else math.nan
    for g in done.values():
        half = t * sd / math.sqrt(g.n)
        g.ci = (g.mean - half, g.mean + half)

    def better(g: Group) -> tuple[float, float]:
        # Ties go to the smaller weight (0 first): the simpler choice.
        return (sign * g.mean, -(g.weight if g.weight is not None else math.inf))

    best = max(done.values(), key=better)
    base = done.get("w=0.0")
    alpha = 1 - level

    reasons: list[str] = []
    p_adj, m = math.nan, 0
    if base is None:
        chosen, beats = best, False
        d, dci = math.nan, (math.nan, math.nan)
        reasons.append(
            "The study has no run with weight 0, so nothing says whether the auxiliary loss "
            f"helps at all; {best.label} had the best mean. Add weight 0 to the grid."
        )
    else:
        vs0 = {k: paired(g, base, sign, level) for k, g in done.items() if g is not base}
        adjusted = holm({k: c.p for k, c in vs0.items()})
        m = sum(math.isfinite(p) for p in adjusted.values())
        cmp = vs0.get(best.key)
        if cmp is None:
            d, dci = 0.0, (math.nan, math.nan)
        else:
            d, dci, p_adj = cmp.difference, cmp.ci, adjusted[best.key]
        beats = cmp is not None and d > 0 and math.isfinite(p_adj) and p_adj < alpha
        if cmp is not None and cmp.n >= 2:
            noise = (
                f"paired by seed over {cmp.n} seeds: standard deviation of the difference "
                f"{_fmt(cmp.sd)}; Holm-adjusted p = {_fmt(p_adj, 3)}, the best chosen among "
                f"{m} setting{'s' if m != 1 else ''} compared with weight 0"
            )
        else:
            noise = "no estimate of the seed noise (fewer than two seeds run with both)"
        if best is base:
            chosen = base
            reasons.append(
                f"No auxiliary weight or strategy beat no auxiliary loss: weight 0 had the best "
                f"mean {metric} ({_fmt(base.mean)}, {base.n} seeds). Recommended: weight 0."
            )
        elif not beats and dci[0] > 0:
            chosen = base
            reasons.append(
                f"The best mean was {best.label} ({_fmt(best.mean)}), {_fmt(d)} better than "
                f"weight 0 ({_fmt(base.mean)}); seed by seed the {level:.0%} interval of the "
                f"difference is [{_fmt(dci[0])}, {_fmt(dci[1])}] ({noise}). But it was the best "
                f"of {m} settings compared with weight 0, and corrected for those comparisons "
                "(Holm) the difference is within the noise between seeds. Nothing beats no "
                "auxiliary loss beyond the noise, so weight 0 is recommended; more seeds could "
                "settle it."
            )
        elif not beats:
            chosen = base
            reasons.append(
                f"The best mean was {best.label} ({_fmt(best.mean)}), {_fmt(d)} better than "
                f"weight 0 ({_fmt(base.mean)}), but that is within the noise between seeds: "
                f"the {level:.0%} interval of the difference is [{_fmt(dci[0])}, "
                f"{_fmt(dci[1])}] ({noise}). Nothing beats no auxiliary loss beyond the noise, "
                "so weight 0 is recommended; more seeds could settle it."
            )
        else:
            chosen = best
            reasons.append(
                f"{best.label} had the best mean {metric}, {_fmt(best.mean)} ({level:.0%} CI "
                f"[{_fmt(best.ci[0])}, {_fmt(best.ci[1])}], {best.n} seeds), {_fmt(d)} better "
                f"than weight 0 ({_fmt(base.mean)}); the {level:.0%} interval of the difference, "
                f"[{_fmt(dci[0])}, {_fmt(dci[1])}], excludes 0 ({noise})."
            )
    vs_best = {k: paired(best, g, sign, level) for k, g in done.items() if g is not best}
    ties = [g for k, g in done.items() if g is not best and not vs_best[k].ci[0] > 0]
    plateau = sorted(
        {g.weight for g in [best, *ties] if g.kind == "fixed" and g.weight is not None}
    )
    if beats and (named := [g.label for g in ties if g is not base]):
        reasons.append(
            "Within the noise of the best: " + ", ".join(named) + "; these runs cannot "
            "tell them apart from it."
        )
    if len(plateau) > 1:
        reasons.append(
            f"Plateau: weights from {plateau[0]:.4g} to {plateau[-1]:.4g} are within the paired "
            f"noise of the best ({len(plateau)} of the weights run: "
            + ", ".join(f"{w:.4g}" for w in plateau)
            + f"; each {level:.0%} interval of the difference to {best.label}, seed by seed, "
            "reaches 0). Any weight in it is as good as these runs can tell."
        )
    reasons += measurement_reasons(chosen, best, base, done, metric, sign, level)
    share, said = share_reasons(chosen, base, done, sign)
    reasons += said
    table = summary_table(groups.values())
    return Recommendation(
        label=chosen.label,
        key=chosen.key,
        kind=chosen.kind,
        weight=chosen.weight,
        mean=chosen.mean,
        ci=chosen.ci,
        n_seeds=chosen.n,
        beats_baseline=beats,
        best_label=best.label,
        difference=d,
        difference_ci=dci,
        relative_share=share,
        reasons=reasons,
        table=table,
        metric=metric,
        direction=direction,
        level=level,
        p_adjusted=p_adj,
        comparisons=m,
        plateau=plateau,
    )
