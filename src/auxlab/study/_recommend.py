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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auxlab.study._stats import t_quantile

__all__ = ["Group", "Recommendation", "group_rows", "recommend_from_rows"]


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

    def measure(self, column: str) -> float:
        """Mean of a measurement column over the completed runs (NaN if absent)."""
        vals = [float(r[column]) for r in self.rows if _finite(r.get(column))]
        return sum(vals) / len(vals) if vals else math.nan


def _finite(v: Any) -> bool:
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Group]:
    """Group a tidy table's rows by setting (fixed and searched weights by weight)."""
    groups: dict[str, Group] = {}
    for r in rows:
        kind = str(r.get("kind", "fixed"))
        weight = float(r["weight"]) if _finite(r.get("weight")) else None
        if kind in ("fixed", "search") and weight is not None:
            key, label, gkind = f"w={weight!r}", f"w={weight:.4g}", "fixed"
        else:
            key, label, gkind = str(r["setting"]), str(r.get("label", r["setting"])), kind
        g = groups.setdefault(key, Group(key, label, gkind, weight if gkind == "fixed" else None))
        state = r.get("state", "COMPLETE")
        if state == "COMPLETE" and _finite(r.get("value")):
            g.values.append(float(r["value"]))
            g.rows.append(dict(r))
        elif state == "PRUNED":
            g.pruned += 1
        else:
            g.failed += 1
    return groups


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


# How the share is computed, in the recommendation's words. RelativeWeights divides moving
# averages of the norms, so the share is a ratio of mean norms; the "×" gradient ratio in the
# reasons is a mean of per-step ratios, larger when the main gradient's norm varies.
def _share_how(which: str) -> str:
    return (
        f"w·mean‖g_aux‖/mean‖g_main‖ over the probed steps at {which} weight: the ratio of "
        "mean norms that RelativeWeights tracks, not the mean per-step ratio"
    )


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
    reasons += _measurement_reasons(chosen, best, base, done, metric, sign, level)
    share = _relative_share(chosen)
    if share is not None and chosen.weight:
        reasons.append(
            "As a share of the main gradient, which stays valid if the auxiliary loss is "
            f"rescaled: {_relative_text(share)} ({_share_how('this')})."
        )
    elif chosen is base:
        nonzero = [g for g in done.values() if g.weight]
        ref = max(nonzero, key=lambda g: sign * g.mean) if nonzero else None
        ref_share = _relative_share(ref) if ref is not None else None
        if ref is not None and ref_share is not None:
            reasons.append(
                f"Should you keep the auxiliary loss anyway: the best non-zero weight, "
                f"{ref.label}, is {_relative_text(ref_share)} as a share of the main gradient "
                f"({_share_how('that')}), which stays valid if the auxiliary loss is "
                "rescaled."
            )
    table = [
        {
            "setting": g.label,
            "kind": g.kind,
            "seeds": g.n,
            "mean": g.mean,
            "ci_low": g.ci[0],
            "ci_high": g.ci[1],
            "pruned": g.pruned,
            "failed": g.failed,
            **{c: g.measure(c) for c in _columns(g, ("ratio/", "cos/", "conflict/", "gap"))},
            **({"test": g.measure("test")} if any("test" in r for r in g.rows) else {}),
        }
        for g in sorted(groups.values(), key=lambda g: (g.weight is None, g.weight or 0, g.label))
    ]
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


def _columns(g: Group, prefixes: tuple[str, ...]) -> list[str]:
    cols: list[str] = []
    for r in g.rows:
        for k in r:
            if k.startswith(prefixes) and k not in cols:
                cols.append(k)
    return cols


def _count(g: Group, column: str) -> int:
    return sum(_finite(r.get(column)) for r in g.rows)


def _pooled_sd(groups: Iterable[Group], column: str) -> tuple[float, int]:
    """Pooled standard deviation of a measurement around its group means, and its df."""
    ss, df = 0.0, 0
    for g in groups:
        vals = [float(r[column]) for r in g.rows if _finite(r.get(column))]
        if len(vals) > 1:
            m = sum(vals) / len(vals)
            ss += sum((v - m) ** 2 for v in vals)
            df += len(vals) - 1
    return (math.sqrt(ss / df) if df else math.nan), df


def _relative_text(share: Mapping[str, float]) -> str:
    return "RelativeWeights({" + ", ".join(f"'{t}': {v:.3g}" for t, v in share.items()) + "})"


def _aux_tasks(g: Group) -> list[str]:
    return [c[len("ratio/") :] for c in _columns(g, ("ratio/",))]


def _relative_share(g: Group) -> dict[str, float] | None:
    from auxlab.weighting import relative_share

    if g.weight is None:
        return None
    out: dict[str, float] = {}
    for aux in _aux_tasks(g):
        vals = []
        for r in g.rows:
            nm, na = r.get("norm/main"), r.get(f"norm/{aux}")
            if nm is not None and na is not None and _finite(nm) and _finite(na) and float(nm) > 0:
                vals.append(relative_share(g.weight, float(nm), float(na)))
        if vals:
            out[aux] = sum(vals) / len(vals)
    return out or None


def _measurement_reasons(
    chosen: Group,
    best: Group,
    base: Group | None,
    done: Mapping[str, Group],
    metric: str,
    sign: float,
    level: float,
) -> list[str]:
    out: list[str] = []
    # What the auxiliary gradient did, measured at the setting of interest: the recommended
    # one, or (when 0 is recommended) the best non-zero one.
    subject = chosen if chosen is not base or best is base else best
    if subject is base and base is not None:
        others = [g for g in done.values() if g is not base]
        subject = max(others, key=lambda g: sign * g.mean) if others else base
    for aux in _aux_tasks(subject):
        ratio = subject.measure(f"ratio/{aux}")
        cos = subject.measure(f"cos/{aux}")
        conflict = subject.measure(f"conflict/{aux}")
        dmain = subject.measure(f"dmain/{aux}")
        at = f"At {subject.label}"
        if math.isfinite(ratio):
            size = (
                "a small nudge"
                if ratio < 0.1
                else "a substantial part of the update"
                if ratio < 1
                else "larger than the main task's own gradient"
            )
            out.append(
                f"{at}, the gradient of '{aux}' on the shared layers was {ratio:.2f}× the main "
                f"task's (‖w·g_{aux}‖/‖g_main‖, mean over probed steps): {size}."
            )
        if math.isfinite(cos):
            kind = (
                "aligned with"
                if cos > 0.1
                else "opposed to"
                if cos < -0.1
                else "nearly orthogonal to"
            )
            conf = (
                f", in conflict (negative cosine) at {conflict:.0%} of probed steps"
                if (math.isfinite(conflict))
                else ""
            )
            out.append(f"Its gradient was {kind} the main task's (mean cosine {cos:+.2f}){conf}.")
        if math.isfinite(dmain):
            effect = "lowered" if dmain < 0 else "raised"
            out.append(
                f"To first order, the auxiliary part of each step {effect} the main training "
                f"loss by {abs(dmain):.3g} (−lr·g_main·w·g_{aux}, mean over probed steps)."
            )
    if base is not None:
        g_sub, g_base = subject.measure("gap"), base.measure("gap")
        if math.isfinite(g_sub) and math.isfinite(g_base) and subject is not base:
            change = g_sub - g_base
            # The same rule as for the metric: the interval of the difference, from the
            # seed noise of the gap pooled over settings, must exclude 0.
            sd, df = _pooled_sd(done.values(), "gap")
            half = math.nan
            if df > 0:
                n_sub, n_base = _count(subject, "gap"), _count(base, "gap")
                half = t_quantile(0.5 + level / 2, df) * sd * math.sqrt(1 / n_sub + 1 / n_base)
            if not math.isfinite(half):
                effect = (
                    f"a change of {change:+.4f}; with one seed per setting the noise between "
                    "seeds is unknown, so no regularising effect can be read from it"
                )
            elif abs(change) <= half:
                effect = (
                    f"a change of {change:+.4f}, within the noise between seeds (the "
                    f"{level:.0%} interval of the difference is ±{half:.4f}): no regularising "
                    "effect can be read from these runs"
                )
            elif change < 0:
                effect = "smaller: the auxiliary loss acted as a regulariser"
            else:
                effect = "larger: no regularising effect"
            out.append(
                f"Train/validation gap of the main task ({metric}, at the best epoch): "
                f"{g_sub:+.4f} at {subject.label} against {g_base:+.4f} at weight 0, "
                f"{effect}."
            )
        t_sub, t_base = subject.measure("test"), base.measure("test")
        if math.isfinite(t_sub) and math.isfinite(t_base) and subject is not base:
            out.append(
                f"On the held-out test split, which played no part in the choice: {metric} "
                f"{t_sub:.4f} at {subject.label} against {t_base:.4f} at weight 0 (means over "
                "seeds, at each run's best validation epoch)."
            )
    if chosen.weight is not None:
        ws = sorted((g.weight, g) for g in done.values() if g.weight is not None)
        keys = [g.key for _, g in ws]
        if chosen.key in keys:
            i = keys.index(chosen.key)
            near = [ws[j][1] for j in (i - 1, i + 1) if 0 <= j < len(ws)]
            if near:
                parts = [f"{g.label}: {sign * (g.mean - chosen.mean):+.4f}" for g in near]
                out.append(
                    f"Neighbouring weights, {metric} relative to {chosen.label} "
                    f"(negative: worse): " + ", ".join(parts) + "."
                )
    return out
