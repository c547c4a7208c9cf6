"""The study report: a static HTML page with PNG plots (matplotlib, jinja2).

It reads a study's :class:`~auxlab.study.StudyRecords` (plain data), never the study itself.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auxlab import report as _report
from auxlab.study._results import StudyRecords

__all__ = ["write_report"]


def _label_of(row: Mapping[str, Any]) -> str:
    w = row.get("weight")
    if row.get("kind") in ("fixed", "search") and w is not None and math.isfinite(float(w)):
        return f"w={float(w):.4g}"
    return str(row.get("label"))


def _order(labels: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    weight = {}
    for r in runs:
        lab = _label_of(r["row"])
        w = r["row"].get("weight")
        weight[lab] = float(w) if w is not None and math.isfinite(float(w)) else math.inf
    return sorted(set(labels), key=lambda lab: (weight.get(lab, math.inf), lab))


def _mean_curve(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    length = min(len(c) for c in curves)
    arr = np.array([list(c[:length]) for c in curves], dtype=float)
    with np.errstate(all="ignore"):
        return np.nanmean(arr, 0), np.nanmin(arr, 0), np.nanmax(arr, 0)


def _panels(
    panels: Mapping[str, Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]]],
    order: Sequence[str],
    path: Path,
    xlabel: str,
) -> Path:
    """One panel per quantity; one line per setting (mean over seeds, band = min-max)."""
    plt = _report._pyplot()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.4), dpi=110, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, by_label) in zip(axes[0], panels.items(), strict=False):
        for i, lab in enumerate(order):
            runs = [r for r in by_label.get(lab, []) if len(r[1])]
            if not runs:
                continue
            mean, lo, hi = _mean_curve([r[1] for r in runs])
            x = np.asarray(runs[0][0][: len(mean)], dtype=float)
            c = colors[i % len(colors)]
            ax.plot(x, mean, color=c, label=lab, marker="o" if len(x) < 30 else None)
            if len(runs) > 1:
                ax.fill_between(x, lo, hi, color=c, alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _heatmap(
    flows: Mapping[str, Mapping[str, Mapping[str, float]]], order: Sequence[str], path: Path
) -> Path | None:
    """``flows[task][setting][layer]``: one heatmap panel per task, log10 of the norm."""
    plt = _report._pyplot()
    tasks = list(flows)
    layers: list[str] = []
    for by_setting in flows.values():
        for by_layer in by_setting.values():
            layers += [lay for lay in by_layer if lay not in layers]
    cols = [lab for lab in order if any(lab in flows[t] for t in tasks)]
    if not tasks or not layers or not cols:
        return None
    ticks = [c if len(c) <= 24 else c[:23] + "…" for c in cols]
    longest = max(len(t) for t in ticks)
    fig, axes = plt.subplots(
        1,
        len(tasks),
        figsize=(
            max(5.0, (2.5 + 0.7 * len(cols)) * len(tasks)),
            1.2 + 0.4 * len(layers) + 0.07 * longest,
        ),
        dpi=110,
        squeeze=False,
        layout="constrained",
    )
    for ax, task in zip(axes[0], tasks, strict=True):
        mat = np.full((len(layers), len(cols)), np.nan)
        for j, lab in enumerate(cols):
            for i, lay in enumerate(layers):
                v = flows[task].get(lab, {}).get(lay)
                if v is not None and v > 0:
                    mat[i, j] = math.log10(v)
        im = ax.imshow(mat, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(cols)), ticks, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_title(f"'{task}' gradient, log10 norm", fontsize=9)
        for i in range(len(layers)):
            for j in range(len(cols)):
                if np.isfinite(mat[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{mat[i, j]:.1f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white",
                    )
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def write_report(records: StudyRecords, out: Path, level: float = 0.95) -> Path:
    """Write ``report.html``, PNG plots and ``results.csv`` for a study's records into ``out``."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    runs = records.runs
    rows = records.rows
    records.to_csv(out / "results.csv")
    metric = records.metric
    sections: list[dict[str, Any]] = []
    try:
        rec = records.recommend(level)
        summary = [str(rec).splitlines()[0], *rec.reasons]
    except ValueError as exc:
        rec = None
        summary = [f"No recommendation: {exc}."]
    done = [r for r in runs if r["row"]["state"] == "COMPLETE"]
    order = _order([_label_of(r["row"]) for r in runs], runs)

    # 1. Metric against weight, with the seed spread.
    per_weight: dict[float, list[float]] = {}
    gap_weight: dict[float, list[float]] = {}
    test_weight: dict[float, list[float]] = {}
    for r in done:
        row = r["row"]
        if row["kind"] in ("fixed", "search") and math.isfinite(row["value"]):
            per_weight.setdefault(float(row["weight"]), []).append(row["value"])
            if isinstance(row.get("gap"), float) and math.isfinite(row["gap"]):
                gap_weight.setdefault(float(row["weight"]), []).append(row["gap"])
            if isinstance(row.get("test"), float) and math.isfinite(row["test"]):
                test_weight.setdefault(float(row["weight"]), []).append(row["test"])
    if per_weight:
        _report.plot_metric_by_weight(
            per_weight,
            f"validation {metric} (main task)",
            out / "metric_by_weight.png",
            "Main task, best epoch: grey = one seed, blue = mean and range",
        )
        sections.append(
            {
                "title": f"Validation {metric} against the auxiliary weight",
                "text": "Each completed run at its best epoch. Weight 0 is no auxiliary loss.",
                "image": "metric_by_weight.png",
            }
        )
    if test_weight:
        _report.plot_metric_by_weight(
            test_weight,
            f"test {metric} (main task)",
            out / "test_by_weight.png",
            "Held-out test split: grey = one seed, blue = mean and range",
        )
        sections.append(
            {
                "title": f"Held-out test {metric} against the auxiliary weight",
                "text": (
                    "Each completed run with the weights of its best validation epoch, scored "
                    "once on the test split. The test split is never used to choose: does the "
                    "validation ranking hold on data the study did not look at?"
                ),
                "image": "test_by_weight.png",
            }
        )
    # 2. Learning curves per weight / setting.
    val_panel: dict[str, list[tuple[list[float], list[float]]]] = {}
    gap_panel: dict[str, list[tuple[list[float], list[float]]]] = {}
    for r in runs:
        lab, mon = _label_of(r["row"]), r.get("monitor")
        eps = r["epochs"]
        if mon and eps:
            x = [e["epoch"] for e in eps]
            val_panel.setdefault(lab, []).append((x, [e.get(mon, math.nan) for e in eps]))
            gk = next((k for k in eps[0] if k.startswith("gap/") and "loss" not in k), None)
            gk = gk or next((k for k in eps[0] if k.startswith("gap/")), None)
            if gk:
                gap_panel.setdefault(lab, []).append((x, [e.get(gk, math.nan) for e in eps]))
    if val_panel:
        _panels(
            {f"validation {metric} (main)": val_panel, "train - validation gap (main)": gap_panel},
            order,
            out / "learning_curves.png",
            "epoch",
        )
        sections.append(
            {
                "title": "Learning curves",
                "text": (
                    "Per setting: mean over seeds, band = min-max. Pruned runs stop early. The "
                    "gap is measured on the training data evaluated after each epoch; larger "
                    "means more over-fitting."
                ),
                "image": "learning_curves.png",
            }
        )
    # 3. Gradient flow heatmap.
    flows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in done:
        lab = _label_of(r["row"])
        for key, v in r["flow"].items():
            _, task, layer = key.split("/", 2)
            flows.setdefault(task, {}).setdefault(lab, {}).setdefault(layer, []).append(v)
    mean_flows = {
        t: {lab: {lay: float(np.nanmean(vs)) for lay, vs in d.items()} for lab, d in by.items()}
        for t, by in flows.items()
    }
    if _heatmap(mean_flows, order, out / "gradient_flow.png") is not None:
        sections.append(
            {
                "title": "Gradient flow per layer",
                "text": (
                    "Norm of each task's weighted gradient reaching each layer (log10, mean "
                    "over probed steps and seeds). Does the auxiliary loss send gradient down "
                    "to the lower layers, and how much next to the main task?"
                ),
                "image": "gradient_flow.png",
            }
        )
    # 4. Alignment and influence over training.
    panels: dict[str, dict[str, list[tuple[list[float], list[float]]]]] = {}
    for r in done:
        lab, probes = _label_of(r["row"]), r["probes"]
        if not probes:
            continue
        x = [p["step"] for p in probes]
        for key in probes[0]:
            if key.startswith(("cos/", "ratio/", "dmain/")):
                title = {
                    "cos": "cosine(main, {})",
                    "ratio": "‖w·g_{}‖ / ‖g_main‖",
                    "dmain": "first-order Δ main loss from {}",
                }[key.split("/")[0]].format(key.split("/", 1)[1])
                panels.setdefault(title, {}).setdefault(lab, []).append(
                    (x, [p.get(key, math.nan) for p in probes])
                )
    if panels:
        _panels(panels, order, out / "alignment_influence.png", "step")
        sections.append(
            {
                "title": "Alignment and influence over training",
                "text": (
                    "Cosine between the main and auxiliary gradients on the shared layers "
                    "(negative: conflict), the auxiliary gradient's size relative to the main "
                    "one, and the first-order change of the main loss that the auxiliary part "
                    "of a step causes (negative: it helps), every probed step."
                ),
                "image": "alignment_influence.png",
            }
        )
    # 5. Gap against weight.
    if gap_weight:
        _report.plot_metric_by_weight(
            gap_weight,
            "train - validation gap",
            out / "gap_by_weight.png",
            "Main task's train/validation gap at the best epoch",
        )
        sections.append(
            {
                "title": "Train/validation gap against the weight",
                "text": "A smaller gap at a larger weight is the auxiliary loss regularising.",
                "image": "gap_by_weight.png",
            }
        )
    # 6. Strategy comparison.
    if rec is not None:
        head = list(rec.table[0])
        sections.append(
            {
                "title": "Settings compared",
                "text": (
                    f"Mean of the validation {metric} over completed seeds, with its "
                    f"{level:.0%} confidence interval (pooled seed noise), and measurements "
                    "averaged over the runs."
                ),
                "table": [head] + [[_fmt(t.get(h)) for h in head] for t in rec.table],
            }
        )
    cols = ["trial", "state", "label", "seed", "value", "best_epoch", "epochs", "seconds", "error"]
    if any("test" in r for r in rows):
        cols.insert(cols.index("value") + 1, "test")
    sections.append(
        {
            "title": "Runs",
            "table": [cols] + [[_fmt(r.get(c, "")) for c in cols] for r in rows],
        }
    )
    meta = (
        f"Study '{records.name}': {len(records.settings)} settings x "
        f"{len(records.seeds)} seeds, {records.epochs} epochs; metric: validation "
        f"{metric} of the main task ({records.direction}); {len(rows)} finished runs "
        f"({sum(r['state'] == 'COMPLETE' for r in rows)} complete, "
        f"{sum(r['state'] == 'PRUNED' for r in rows)} pruned, "
        f"{sum(r['state'] == 'FAIL' for r in rows)} failed). torch {torch.__version__}, "
        f"Python {platform.python_version()}."
    )
    if records.unfinished:
        summary = [
            f"PARTIAL: {len(records.unfinished)} run(s) were not finished when this report was "
            "written; run the study again once they are.",
            *summary,
        ]
    return _report.write_html(
        out / "report.html",
        f"auxlab study: {records.name}",
        meta,
        summary,
        sections,
        intro=records.description,
    )
