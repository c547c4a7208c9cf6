"""What raising the auxiliary weight did, as numbers and in words, for the study report.

One computation feeds the report's paragraph, its captions, its tables and its figures, so
that they cannot disagree:

* every setting's mean over seeds with its t-interval (Student's t from ``scipy.stats``,
  ``mean ± t(n−1)·s/√n``, ``s`` the setting's own standard deviation over its seeds);
* every setting against weight 0, seed by seed (the paired t-interval of the recommendation,
  :func:`~auxlab.study._groups.paired`), for the metric, the held-out test metric and the
  train/validation gap;
* the auxiliary gradient's share of the gradient reaching each shared layer,
  ``Σ‖w·g_aux‖ / (‖g_main‖ + Σ‖w·g_aux‖)`` from the mean weighted norms the diagnostics
  record per layer (``flow/<task>/<layer>``);
* flags on the learning curves, per setting: the best validation epoch was the first
  (the model chosen trained one epoch: under-trained), the metric peaked in the first half
  of training (rounded up) and then fell beyond the seed noise (over-fitting), or it was
  still best at the last epoch (more epochs could change the verdict).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auxlab.study._groups import Paired, finite, group_rows, paired, pooled_sd
from auxlab.study._results import StudyRecords
from auxlab.study._stats import mean_interval

__all__ = [
    "MIN_SPAN_SDS",
    "Effects",
    "Flag",
    "Interval",
    "axis_limits",
    "curve_flags",
    "effects_of",
    "paragraph",
    "t_interval",
]

#: A figure's y-axis spans at least this many seed standard deviations, so that differences
#: within the seed noise look flat instead of filling the axis.
MIN_SPAN_SDS = 4.0


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its t-interval (NaN bounds with fewer than two seeds)."""

    mean: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """``mean ± t(level, n−1)·s/√n`` over ``values`` (``s``: standard deviation, ``n − 1``).

    Example:
        >>> iv = t_interval([1.0, 2.0, 3.0])
        >>> round(iv.low, 4), round(iv.high, 4)
        (-0.4841, 4.4841)
    """
    vals = [float(v) for v in values if finite(v)]
    return Interval(*mean_interval(vals, level), len(vals))


def axis_limits(
    lows: Sequence[float], highs: Sequence[float], min_span: float = 0.0
) -> tuple[float, float]:
    """Y-limits that hold every interval and span at least ``min_span`` (plus a margin).

    Example:
        >>> axis_limits([0.70, 0.701], [0.7035, 0.702], min_span=0.03)
        (0.68555, 0.71795)
    """
    lo = min((v for v in lows if finite(v)), default=math.nan)
    hi = max((v for v in highs if finite(v)), default=math.nan)
    if not (finite(lo) and finite(hi)):
        return (-1.0, 1.0)
    span = max(hi - lo, min_span if finite(min_span) else 0.0)
    if span <= 0:
        span = max(abs(hi), 1.0) * 0.1
    mid = (lo + hi) / 2
    pad = 0.04 * span
    return (round(mid - span / 2 - pad, 12), round(mid + span / 2 + pad, 12))


@dataclass(frozen=True)
class Flag:
    """A remark on one setting's learning curves.

    Attributes:
        setting: The setting's label.
        kind: ``"first_epoch"`` (under-trained), ``"early_peak"`` (over-fitting) or
            ``"still_improving"``.
        text: The remark in words.
        detail: Its numbers, short, for a line that names several settings.
    """

    setting: str
    kind: str
    text: str
    detail: str = ""


@dataclass
class Effects:
    """The numbers the report states (see the module docstring).

    Attributes:
        metric: The metric's name.
        level: Confidence level of every interval.
        order: Setting labels, fixed weights by weight first, then the others.
        weights: Each fixed weight's label and weight, in order.
        seeds: Completed seeds per setting.
        values: ``{column: {setting: {seed: value}}}`` for ``value``, ``test`` and ``gap``.
        means: ``{column: {setting: Interval}}``.
        vs_zero: ``{column: {setting: Paired}}``: the setting minus weight 0, seed by seed
            (raw differences, in the metric's units; empty without weight 0).
        seed_sd: ``{column: sd}``: pooled standard deviation over seeds around each
            setting's mean (NaN with one seed per setting).
        diff_sd: ``{column: sd}``: pooled standard deviation of the paired differences.
        layers: The shared layers whose gradients were recorded.
        shares: ``{setting: {layer: share}}`` of the auxiliary gradient, mean over seeds.
        flags: Remarks on the learning curves, per setting.
        epochs: Epochs per run.
    """

    metric: str
    level: float
    order: list[str]
    weights: list[tuple[str, float]]
    seeds: dict[str, int]
    values: dict[str, dict[str, dict[int, float]]]
    means: dict[str, dict[str, Interval]]
    vs_zero: dict[str, dict[str, Paired]]
    seed_sd: dict[str, float]
    diff_sd: dict[str, float]
    layers: list[str] = field(default_factory=list)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    epochs: int = 0

    def has_base(self) -> bool:
        """Whether weight 0 was run (the paired comparisons need it)."""
        return bool(self.vs_zero.get("value"))


_COLUMNS = ("value", "test", "gap")


def _pooled_diff_sd(pairs: Mapping[str, Paired]) -> float:
    ss, df = 0.0, 0
    for p in pairs.values():
        if p.n >= 2 and finite(p.sd):
            ss += (p.n - 1) * p.sd**2
            df += p.n - 1
    return math.sqrt(ss / df) if df else math.nan


def group_label(row: Mapping[str, Any]) -> str:
    """The label of the group a row joins (as :func:`~auxlab.study._groups.group_rows`)."""
    if row.get("kind", "fixed") in ("fixed", "search") and finite(row.get("weight")):
        return f"w={float(row['weight']):.4g}"
    return str(row.get("label", row.get("setting")))


def _main_of(run: Mapping[str, Any]) -> str | None:
    if run.get("main"):
        return str(run["main"])
    row = run["row"]
    aux = {k[len("ratio/") :] for k in row if k.startswith("ratio/")}
    mains = [k[len("norm/") :] for k in row if k.startswith("norm/") and k[5:] not in aux]
    if len(mains) == 1:
        return mains[0]
    tasks = {k.split("/")[1] for k in run.get("flow", {})}
    return "main" if "main" in tasks else None


def _by_task(flow: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    by_task: dict[str, dict[str, float]] = {}
    for key, v in flow.items():
        _, task, layer = key.split("/", 2)
        by_task.setdefault(task, {})[layer] = float(v)
    return by_task


def _layer_shares(
    runs: Sequence[Mapping[str, Any]], label_of: Callable[[Mapping[str, Any]], str]
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The shared layers and each setting's auxiliary share per layer (mean over seeds).

    The shared layers are those the run recorded; for studies stored before they were, the
    layers that the main gradient and an auxiliary one both reach in some run (at weight 0
    no auxiliary gradient reaches any layer, so a single run cannot tell).
    """
    usable = []
    for r in runs:
        flow, main = r.get("flow") or {}, _main_of(r)
        if flow and main is not None:
            usable.append((r, main, _by_task(flow)))
    inferred: list[str] = []
    for r, main, by_task in usable:
        if not r.get("shared_layers"):
            aux = [t for t in by_task if t != main]
            inferred += [
                lay
                for lay, v in by_task.get(main, {}).items()
                if v > 0 and any(by_task[a].get(lay, 0.0) > 0 for a in aux) and lay not in inferred
            ]
    layers: list[str] = []
    per: dict[str, dict[str, list[float]]] = {}
    for r, main, by_task in usable:
        aux = [t for t in by_task if t != main]
        names = list(r.get("shared_layers") or inferred)
        for lay in names:
            m = by_task.get(main, {}).get(lay, math.nan)
            a = sum(by_task[t].get(lay, 0.0) for t in aux)
            if finite(m) and m + a > 0:
                if lay not in layers:
                    layers.append(lay)
                per.setdefault(label_of(r["row"]), {}).setdefault(lay, []).append(a / (m + a))
    return layers, {lab: {lay: sum(v) / len(v) for lay, v in d.items()} for lab, d in per.items()}


def curve_flags(
    label: str,
    curves: Sequence[Sequence[float]],
    metric: str,
    maximize: bool,
    level: float = 0.95,
) -> list[Flag]:
    """Remarks on one setting's validation curves (one per seed, epoch 1 first).

    * ``first_epoch``: the mean curve is best at epoch 1 (of two or more): the model chosen
      trained one epoch, and later epochs were worse: under-trained.
    * ``early_peak``: best in the first half of training (after epoch 1; epoch 2 of 3
      counts), and the last epoch worse than the peak, seed by seed, beyond the noise (the
      paired interval of the fall excludes 0; with one seed, any fall): over-fitting.
    * ``still_improving``: best at the last epoch: more epochs could change the verdict.

    Example:
        >>> peak = [0.5, 0.8, 0.75, 0.7, 0.68, 0.66, 0.64, 0.62, 0.61, 0.6]
        >>> [f.kind for f in curve_flags("w=1", [peak, [v + 0.01 for v in peak]], "auc", True)]
        ['early_peak']
    """
    usable = [[float(v) for v in c] for c in curves if len(c)]
    if not usable:
        return []
    length = min(len(c) for c in usable)
    if length < 2:
        return []
    sign = 1.0 if maximize else -1.0
    cols = [[c[i] for c in usable] for i in range(length)]
    mean = [sum(col) / len(col) for col in cols]
    best = max(range(length), key=lambda i: (sign * mean[i], -i)) + 1  # ties: the earliest
    n = len(usable)
    seeds_first = sum(1 for c in usable if max(range(length), key=lambda i: (sign * c[i], -i)) == 0)
    out: list[Flag] = []
    if best == 1:
        out.append(
            Flag(
                label,
                "first_epoch",
                f"{label}: under-trained. The validation {metric} (mean over {n} seed"
                f"{'s' if n != 1 else ''}) was best after the first epoch of {length} "
                f"({seeds_first} of {n} seeds) and worse after it, so the model chosen trained "
                "one epoch only. A lower learning rate may let it train longer before the "
                "validation metric falls.",
                f"{seeds_first} of {n} seeds",
            )
        )
    elif best <= math.ceil(length / 2):
        fall = [sign * (c[best - 1] - c[length - 1]) for c in usable]
        drop = sum(fall) / n
        iv = t_interval(fall, level)
        beyond = drop > 0 and (n < 2 or iv.low > 0)
        if beyond:
            noise = (
                f"seed by seed {level:.0%} interval [{iv.low:+.4f}, {iv.high:+.4f}]"
                if n >= 2
                else "one seed: the noise is unknown"
            )
            out.append(
                Flag(
                    label,
                    "early_peak",
                    f"{label}: over-fitting. The validation {metric} peaked at epoch {best} of "
                    f"{length} (mean over {n} seed{'s' if n != 1 else ''}) and was "
                    f"{abs(drop):.4f} worse at the last epoch ({noise}). The run keeps the "
                    "best epoch's weights; more epochs do not help this setting.",
                    f"peak at epoch {best}, {abs(drop):.4f} worse at the end"
                    + (f" [{iv.low:+.4f}, {iv.high:+.4f}]" if n >= 2 else ", one seed"),
                )
            )
    elif best == length:
        out.append(
            Flag(
                label,
                "still_improving",
                f"{label}: still improving. The validation {metric} (mean over {n} seed"
                f"{'s' if n != 1 else ''}) was best at the last of {length} epochs: longer "
                "training could change how the settings compare.",
            )
        )
    return out


def effects_of(records: StudyRecords, level: float = 0.95) -> Effects:
    """Compute the report's numbers from a study's records (see the module docstring)."""
    rows = records.rows
    groups = group_rows(rows)
    done = {k: g for k, g in groups.items() if g.n}
    ordered = sorted(done.values(), key=lambda g: (g.weight is None, g.weight or 0.0, g.label))
    order = [g.label for g in ordered]
    base = done.get("w=0.0")
    values: dict[str, dict[str, dict[int, float]]] = {}
    means: dict[str, dict[str, Interval]] = {}
    vs_zero: dict[str, dict[str, Paired]] = {}
    seed_sd: dict[str, float] = {}
    diff_sd: dict[str, float] = {}
    for col in _COLUMNS:
        by = {g.label: g.by_seed(col) for g in ordered}
        by = {lab: v for lab, v in by.items() if v}
        if not by:
            continue
        values[col] = by
        means[col] = {lab: t_interval(list(v.values()), level) for lab, v in by.items()}
        seed_sd[col] = pooled_sd(ordered, col)[0]
        if base is not None and base.by_seed(col):
            vs_zero[col] = {
                g.label: paired(g, base, 1.0, level, col)
                for g in ordered
                if g is not base and g.by_seed(col)
            }
            diff_sd[col] = _pooled_diff_sd(vs_zero[col])
    complete = [r for r in records.runs if r["row"].get("state") == "COMPLETE"]
    layers, shares = _layer_shares(complete, group_label)
    maximize = records.direction == "maximize"
    flags: list[Flag] = []
    for g in ordered:
        curves = []
        for r in complete:
            if group_label(r["row"]) != g.label:
                continue
            mon = r.get("monitor")
            eps = r.get("epochs") or []
            if mon and eps:
                curves.append([float(e.get(mon, math.nan)) for e in eps])
        curves = [c for c in curves if all(finite(v) for v in c)]
        flags += curve_flags(g.label, curves, records.metric, maximize, level)
    return Effects(
        metric=records.metric,
        level=level,
        order=order,
        weights=[(g.label, float(g.weight)) for g in ordered if g.weight is not None],
        seeds={g.label: g.n for g in ordered},
        values=values,
        means=means,
        vs_zero=vs_zero,
        seed_sd=seed_sd,
        diff_sd=diff_sd,
        layers=layers,
        shares=shares,
        flags=flags,
        epochs=records.epochs,
    )


# ---------------------------------------------------------------------------------------------
# Words, from the numbers above (the report's captions call the same functions).


def diff_words(p: Paired) -> str:
    """A paired difference with its interval: ``+0.0021 [-0.0030, +0.0072]``."""
    if p.n == 0:
        return "no seed in common"
    if p.n < 2 or not finite(p.ci[0]):
        return f"{p.difference:+.4f} (one seed: noise unknown)"
    return f"{p.difference:+.4f} [{p.ci[0]:+.4f}, {p.ci[1]:+.4f}]"


def beyond(p: Paired) -> bool:
    """Whether the paired interval excludes 0."""
    return p.n >= 2 and finite(p.ci[0]) and (p.ci[0] > 0 or p.ci[1] < 0)


def verdict(e: Effects, column: str, what: str) -> str:
    """Which settings differ from weight 0 beyond the noise, in one sentence."""
    pairs = e.vs_zero.get(column, {})
    if not pairs:
        return f"Without runs at weight 0, nothing says what the weight did to the {what}."
    up = [lab for lab, p in pairs.items() if beyond(p) and p.difference > 0]
    down = [lab for lab, p in pairs.items() if beyond(p) and p.difference < 0]
    if not up and not down:
        return f"No setting changed the {what} beyond the noise between seeds."
    parts = []
    if up:
        parts.append(f"higher at {', '.join(up)}")
    if down:
        parts.append(f"lower at {', '.join(down)}")
    return f"Beyond the noise between seeds, the {what} was " + " and ".join(parts) + "."


def _changes(e: Effects, column: str, labels: Sequence[str]) -> str:
    pairs = e.vs_zero.get(column, {})
    return ", ".join(f"{lab}: {diff_words(pairs[lab])}" for lab in labels if lab in pairs)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %" if x >= 0.01 or x == 0 else f"{100 * x:.1g} %"


def paragraph(e: Effects) -> list[str]:
    """What raising the weight did, in plain words: metric, gap, share per shared layer."""
    out: list[str] = []
    lv = f"{e.level:.0%}"
    nonzero = [lab for lab, w in e.weights if w > 0]
    others = [lab for lab in e.order if lab not in {lab for lab, _ in e.weights}]
    if not e.has_base():
        out.append(
            "The study has no run at weight 0, so nothing here says what the auxiliary loss "
            "did; add weight 0 to the grid."
        )
        return out
    seeds = sorted({e.seeds[lab] for lab in e.order})
    n_words = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
    what = f"validation {e.metric}"
    if nonzero:
        top = max(w for _, w in e.weights)
        out.append(
            f"Raising the auxiliary weight from 0 to {top:g} changed the {what} of the main "
            f"task, seed by seed against weight 0 ({lv} paired t-intervals over {n_words} "
            f"seeds, each on its own: unlike the recommendation, not corrected for the "
            f"{len(e.vs_zero['value'])} settings compared), by {_changes(e, 'value', nonzero)}. "
            f"{verdict(e, 'value', what)}"
        )
    if others:
        out.append(f"The other settings against weight 0: {_changes(e, 'value', others)}.")
    if "test" in e.vs_zero:
        out.append(
            f"On the held-out test split (never used to choose): "
            f"{_changes(e, 'test', nonzero + others)}. {verdict(e, 'test', f'test {e.metric}')}"
        )
    gaps = e.means.get("gap", {})
    base_label = next((lab for lab, w in e.weights if w == 0), None)
    if "gap" in e.vs_zero and base_label in gaps and nonzero:
        top_label = nonzero[-1]
        g0, gt = gaps[base_label].mean, gaps.get(top_label)
        end = f" to {gt.mean:+.4f} at {top_label}" if gt is not None else ""
        regul = [lab for lab, p in e.vs_zero["gap"].items() if beyond(p) and p.difference < 0]
        over = [lab for lab, p in e.vs_zero["gap"].items() if beyond(p) and p.difference > 0]
        if regul or over:
            bits = (
                [f"narrower at {', '.join(regul)}: the auxiliary loss regularised"] if regul else []
            )
            bits += [f"wider at {', '.join(over)}: more over-fitting"] if over else []
            read = "Beyond the noise, the gap was " + "; ".join(bits) + "."
        else:
            read = (
                "No change of the gap is beyond the noise between seeds: no regularising "
                "effect can be read."
            )
        out.append(
            f"The train/validation gap of the main task (at the best epoch; positive: better "
            f"on the training data) went from {g0:+.4f} at weight 0{end}; against weight 0, "
            f"seed by seed: {_changes(e, 'gap', nonzero + others)}. {read}"
        )
    if e.layers and e.shares:
        shown = e.layers[:8]
        parts = []
        for lay in shown:
            vals = [
                f"{_pct(e.shares[lab][lay])} at {lab}"
                for lab in e.order
                if lab in e.shares and lay in e.shares[lab]
            ]
            parts.append(f"'{lay}': " + ", ".join(vals))
        more = f" ({len(e.layers) - 8} more layers in the figure)" if len(e.layers) > 8 else ""
        out.append(
            "The auxiliary gradient's share of the gradient reaching each shared layer "
            "(‖w·g_aux‖ / (‖g_main‖ + ‖w·g_aux‖), from mean weighted norms over the probed "
            "steps, mean over seeds): " + "; ".join(parts) + more + "."
        )
    return out
