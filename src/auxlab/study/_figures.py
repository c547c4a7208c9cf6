"""The study report's figures, drawn from :class:`~auxlab.study._effects.Effects`.

The figures compute no statistics of their own: the intervals they draw are the ones the
report's text states. Every figure that compares settings gives each setting the same colour
(fixed weights on one sequential scale, by weight; other settings in distinct colours), and
every y-axis that compares settings spans at least :data:`~auxlab.study._effects.
MIN_SPAN_SDS` seed standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxlab import report as _report
from auxlab.study._effects import MIN_SPAN_SDS, Effects, Interval, axis_limits, t_interval
from auxlab.study._groups import finite

__all__ = ["Figure", "compare_figure", "curves_figure", "flow_figure", "setting_colors"]

Curves = Mapping[str, Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]]]


@dataclass(frozen=True)
class Figure:
    """A written figure: its panels' y-limits (colour limits of a heatmap), minimum spans."""

    path: Path
    limits: list[tuple[float, float]]
    min_spans: list[float]


def setting_colors(order: Sequence[str], weights: Mapping[str, float]) -> dict[str, Any]:
    """One colour per setting, the same in every figure.

    Fixed weights lie on one sequential scale (viridis, dark = small weight) in the order of
    their weights; other settings get distinct colours from a qualitative palette.
    """
    plt = _report._pyplot()
    fixed = [lab for lab in order if lab in weights]
    scale = plt.get_cmap("viridis")
    out: dict[str, Any] = {}
    for i, lab in enumerate(fixed):
        out[lab] = scale(0.05 + 0.8 * (i / max(1, len(fixed) - 1)))
    palette = plt.get_cmap("tab10").colors
    # Orange, red, purple, brown, pink, olive, grey: none is on the viridis scale.
    distinct = [palette[i] for i in (1, 3, 4, 5, 6, 8, 7)]
    others = [lab for lab in order if lab not in weights]
    for i, lab in enumerate(others):
        out[lab] = distinct[i % len(distinct)]
    return out


def _short(label: str) -> str:
    return label if len(label) <= 22 else label[:21] + "…"


def compare_figure(
    e: Effects, column: str, ylabel: str, path: Path, colors: Mapping[str, Any]
) -> Figure | None:
    """Per setting: seeds, mean and t-interval; and beside it the paired difference to 0."""
    values = e.values.get(column)
    if not values:
        return None
    plt = _report._pyplot()
    labels = [lab for lab in e.order if lab in values]
    pairs = e.vs_zero.get(column, {})
    base = next((lab for lab, w in e.weights if w == 0 and lab in values), None)
    panels = 2 if pairs and base is not None else 1
    fig, axes = plt.subplots(
        1, panels, figsize=(5.2 * panels, 3.8), dpi=110, squeeze=False, layout="constrained"
    )
    limits: list[tuple[float, float]] = []
    spans: list[float] = []
    ax = axes[0][0]
    xs = np.arange(len(labels))
    seeds = sorted({s for v in values.values() for s in v})
    for s in seeds:  # one seed across the settings: the pairing the comparison uses
        ys = [values[lab].get(s, math.nan) for lab in labels]
        ax.plot(xs, ys, color="0.75", linewidth=0.7, zorder=1)
    lows, highs = [], []
    for x, lab in zip(xs, labels, strict=True):
        vals = list(values[lab].values())
        ax.scatter([x] * len(vals), vals, color="0.55", s=14, zorder=2)
        iv: Interval = e.means[column][lab]
        lows += [*vals, iv.low]
        highs += [*vals, iv.high]
        err = [[iv.mean - iv.low], [iv.high - iv.mean]] if finite(iv.low) else None
        ax.errorbar(
            x, iv.mean, yerr=err, fmt="o", color=colors[lab], capsize=5, markersize=7, zorder=3
        )
    span = MIN_SPAN_SDS * e.seed_sd.get(column, math.nan)
    lim = axis_limits(lows, highs, span if finite(span) else 0.0)
    ax.set_ylim(*lim)
    limits.append(lim)
    spans.append(span)
    ax.set_xticks(xs, [_short(lab) for lab in labels], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(f"mean over seeds, {e.level:.0%} t-interval", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    if panels == 2 and base is not None:
        ax = axes[0][1]
        others = [lab for lab in labels if lab in pairs]
        xs2 = np.arange(len(others))
        lows, highs = [0.0], [0.0]
        for x, lab in zip(xs2, others, strict=True):
            common = sorted(values[lab].keys() & values[base].keys())
            d = [values[lab][s] - values[base][s] for s in common]
            ax.scatter([x] * len(d), d, color="0.55", s=14, zorder=2)
            p = pairs[lab]
            lows += [*d, p.ci[0]]
            highs += [*d, p.ci[1]]
            err = [[p.difference - p.ci[0]], [p.ci[1] - p.difference]] if finite(p.ci[0]) else None
            ax.errorbar(
                x,
                p.difference,
                yerr=err,
                fmt="o",
                color=colors[lab],
                capsize=5,
                markersize=7,
                zorder=3,
            )
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        span = MIN_SPAN_SDS * e.diff_sd.get(column, math.nan)
        lim = axis_limits(lows, highs, span if finite(span) else 0.0)
        ax.set_ylim(*lim)
        limits.append(lim)
        spans.append(span)
        ax.set_xticks(xs2, [_short(lab) for lab in others], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"minus weight 0 ({ylabel.split(' (')[0]})")
        ax.set_title(f"against weight 0, seed by seed, {e.level:.0%} paired interval", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.savefig(path)
    plt.close(fig)
    return Figure(path, limits, spans)


def curves_figure(
    panels: Curves,
    order: Sequence[str],
    colors: Mapping[str, Any],
    path: Path,
    xlabel: str,
    level: float,
) -> Path:
    """One panel per quantity; per setting, the mean over seeds and its t-interval band."""
    plt = _report._pyplot()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.4), dpi=110, squeeze=False)
    for ax, (title, by_label) in zip(axes[0], panels.items(), strict=False):
        for lab in order:
            runs = [r for r in by_label.get(lab, []) if len(r[1])]
            if not runs:
                continue
            length = min(len(r[1]) for r in runs)
            x = np.asarray(runs[0][0][:length], dtype=float)
            ivs = [t_interval([r[1][i] for r in runs], level) for i in range(length)]
            mean = np.array([iv.mean for iv in ivs])
            c = colors.get(lab, "0.4")
            ax.plot(x, mean, color=c, label=_short(lab), marker="o" if length < 30 else None)
            lo = np.array([iv.low for iv in ivs])
            hi = np.array([iv.high for iv in ivs])
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=c, alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def flow_figure(
    matrices: Mapping[str, Mapping[str, Mapping[str, float]]],
    order: Sequence[str],
    path: Path,
    title: str,
    log10: bool,
    fmt: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure | None:
    """Heatmaps ``matrices[panel][setting][layer]`` on ONE colour scale with one colour bar.

    ``log10``: show log10 of the values (gradient norms). ``vmin``/``vmax`` fix the scale
    (e.g. 0 and 1 for shares); otherwise it spans every panel's values.
    """
    plt = _report._pyplot()
    names = list(matrices)
    layers: list[str] = []
    for by_setting in matrices.values():
        for by_layer in by_setting.values():
            layers += [lay for lay in by_layer if lay not in layers]
    cols = [lab for lab in order if any(lab in matrices[t] for t in names)]
    if not names or not layers or not cols:
        return None
    mats = {}
    for name in names:
        mat = np.full((len(layers), len(cols)), np.nan)
        for j, lab in enumerate(cols):
            for i, lay in enumerate(layers):
                v = matrices[name].get(lab, {}).get(lay)
                if v is not None and finite(v) and (v > 0 or not log10):
                    mat[i, j] = math.log10(v) if log10 else v
        mats[name] = mat
    every = np.concatenate([m[np.isfinite(m)] for m in mats.values()])
    if every.size == 0:
        return None
    lo = float(every.min()) if vmin is None else vmin
    hi = float(every.max()) if vmax is None else vmax
    if hi <= lo:
        hi = lo + 1.0
    ticks = [_short(c) for c in cols]
    longest = max(len(t) for t in ticks)
    fig, axes = plt.subplots(
        1,
        len(names),
        figsize=(
            max(5.0, (2.5 + 0.7 * len(cols)) * len(names)),
            1.3 + 0.4 * len(layers) + 0.07 * longest,
        ),
        dpi=110,
        squeeze=False,
        layout="constrained",
    )
    im = None
    for ax, name in zip(axes[0], names, strict=True):
        mat = mats[name]
        im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=lo, vmax=hi)
        ax.set_xticks(range(len(cols)), ticks, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_title(title.format(name), fontsize=9)
        for i in range(len(layers)):
            for j in range(len(cols)):
                if np.isfinite(mat[i, j]):
                    light = mat[i, j] < lo + 0.6 * (hi - lo)
                    ax.text(
                        j,
                        i,
                        format(mat[i, j], fmt),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if light else "black",
                    )
    fig.colorbar(im, ax=list(axes[0]), fraction=0.05)
    fig.savefig(path)
    plt.close(fig)
    return Figure(path, [(lo, hi)] * len(names), [])
