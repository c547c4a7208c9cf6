"""The recommendation rule: the best setting, its uncertainty over seeds, and why, in words.

Rule (on the tidy table of completed runs):

1. Group runs by setting; a fixed weight found by a search joins the fixed weights (the
   group key is the weight).
2. The seed noise is the pooled standard deviation of the runs around their group means,
   ``s² = Σ (nᵢ−1)·sᵢ² / Σ (nᵢ−1)``, with ``Σ (nᵢ−1)`` degrees of freedom; each group's
   confidence interval is ``mean ± t·s/√n``.
3. The best group has the best mean. It is recommended only if it beats weight 0 ("no
   auxiliary loss") beyond the noise: the confidence interval of the difference of means,
   ``d ± t·s·√(1/n_best + 1/n_0)``, lies entirely on the better side. Otherwise weight 0 is
   recommended, and the text says why.
4. The reasons are measurements at the recommended setting (or, when weight 0 is
   recommended, at the best other one). A change of the train/validation gap against weight 0
   is read as regularisation only under the same rule: the interval of the difference, from
   the gap's pooled seed noise, must exclude 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auxlab.study._groups import Group, group_rows, summary_table
from auxlab.study._reasons import measurement_reasons, share_reasons
from auxlab.study._stats import t_quantile

__all__ = ["Group", "Recommendation", "group_rows", "recommend_from_rows"]


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
        difference_ci: Confidence interval of that difference.
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

    def diff(a: Group, b: Group) -> tuple[float, tuple[float, float]]:
        d = sign * (a.mean - b.mean)
        half = t * sd * math.sqrt(1 / a.n + 1 / b.n)
        return d, (d - half, d + half)

    reasons: list[str] = []
    if base is None:
        chosen, beats = best, False
        d, dci = math.nan, (math.nan, math.nan)
        reasons.append(
            "The study has no run with weight 0, so nothing says whether the auxiliary loss "
            f"helps at all; {best.label} had the best mean. Add weight 0 to the grid."
        )
    else:
        d, dci = diff(best, base)
        beats = best is not base and df > 0 and dci[0] > 0
        noise = (
            f"seed noise: pooled standard deviation {_fmt(sd)} over {df} degrees of freedom"
            if df > 0
            else "no estimate of the seed noise (one seed per setting)"
        )
        if best is base:
            chosen = base
            reasons.append(
                f"No auxiliary weight or strategy beat no auxiliary loss: weight 0 had the best "
                f"mean {metric} ({_fmt(base.mean)}, {base.n} seeds). Recommended: weight 0."
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
            ties = [
                g.label
                for g in done.values()
                if g is not best and g is not base and diff(best, g)[1][0] <= 0
            ]
            if ties:
                reasons.append(
                    "Within the noise of the best: " + ", ".join(ties) + "; these runs cannot "
                    "tell them apart from it."
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
    )
