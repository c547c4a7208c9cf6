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
from auxlab.study._effects import MIN_SPAN_SDS, Effects, effects_of, group_label, paragraph, verdict
from auxlab.study._figures import (
    Figure,
    compare_figure,
    curves_figure,
    flow_figure,
    setting_colors,
)
from auxlab.study._groups import finite
from auxlab.study._results import StudyRecords

__all__ = ["compare_caption", "write_report"]


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def _axis_note(e: Effects, column: str, fig: Figure) -> str:
    """The caption's sentence on the y-axes, from the spans the figure used."""
    sd, dsd = e.seed_sd.get(column, math.nan), e.diff_sd.get(column, math.nan)
    if not finite(sd):
        return (
            "With one seed per setting the seed noise is unknown: the y-axes span the data "
            "only, and no difference can be read as beyond the noise."
        )
    right = (
        f"; right: sd {dsd:.4f} of the paired differences, so at least {fig.min_spans[1]:.4f}"
        if len(fig.min_spans) > 1 and finite(dsd)
        else ""
    )
    return (
        f"Each y-axis spans at least {MIN_SPAN_SDS:g} seed standard deviations (left: sd "
        f"{sd:.4f} of the runs around their setting's mean, so at least {fig.min_spans[0]:.4f}"
        f"{right}), so that differences within the seed noise look flat, not like a trend."
    )


def compare_caption(e: Effects, column: str, what: str, fig: Figure) -> str:
    """The caption of a :func:`compare_figure`: what it shows, the verdict, the axes."""
    lv = f"{e.level:.0%}"
    right = (
        f" Right: each setting minus weight 0, seed by seed (grey: one seed), with the {lv} "
        f"paired t-interval; above 0: higher {what}. {verdict(e, column, what)}"
        if len(fig.limits) > 1
        else ""
    )
    return (
        f"Left: {what} per setting; grey dots are seeds and grey lines join one seed across "
        f"the settings; in colour, the mean with its {lv} t-interval over the seeds "
        f"(Student's t, n − 1 degrees of freedom, each setting's own standard deviation)."
        f"{right} {_axis_note(e, column, fig)}"
    )


def _flag_items(e: Effects) -> list[str]:
    if e.epochs <= 1:
        return [
            "Every run trained one epoch, so the curves cannot show whether a setting was "
            "under-trained or over-fitted; run more epochs to see it."
        ]
    if not e.flags:
        return [
            "No setting was flagged: no mean validation curve was best at the first epoch, "
            "peaked in the first half of training and then fell beyond the seed noise, or was "
            "still best at the last epoch."
        ]
    # A flag often holds for many settings at once: one line per kind then names them all.
    heads = {
        "first_epoch": (
            f"Under-trained: the validation {e.metric} was best after the first of {e.epochs} "
            "epochs and worse after it, so the model chosen trained one epoch only (a lower "
            "learning rate may let it train longer)"
        ),
        "early_peak": (
            f"Over-fitting: the validation {e.metric} peaked in the first half of the "
            f"{e.epochs} epochs and was worse at the last one, beyond the seed noise (each run "
            "keeps its best epoch's weights, so more epochs do not help)"
        ),
        "still_improving": (
            f"Still improving at the last of {e.epochs} epochs (possibly under-trained; longer "
            "training could change how the settings compare)"
        ),
    }
    out: list[str] = []
    for kind, head in heads.items():
        flags = [f for f in e.flags if f.kind == kind]
        if len(flags) == 1 and kind != "still_improving":
            out.append(flags[0].text)
        elif flags:
            named = [f"{f.setting} ({f.detail})" if f.detail else f.setting for f in flags]
            out.append(f"{head}: {', '.join(named)}.")
    return out


def _settings_table(e: Effects, rec: Any) -> list[list[str]]:
    lv = f"{e.level:.0%}"
    measured = {t["setting"]: t for t in rec.table} if rec is not None else {}
    extra = [c for t in measured.values() for c in t if c.startswith(("ratio/", "cos/"))]
    extra = list(dict.fromkeys(extra))
    head = [
        "setting",
        "seeds",
        f"mean {e.metric}",
        f"{lv} t-interval",
        "minus weight 0 (paired)",
        f"{lv} paired interval",
    ]
    has_test = "test" in e.means
    head += ["test"] if has_test else []
    head += ["gap"] if "gap" in e.means else []
    head += [*extra, "pruned", "failed"]
    rows = [head]
    for lab in e.order:
        iv = e.means["value"][lab]
        p = e.vs_zero.get("value", {}).get(lab)
        row = [
            lab,
            str(e.seeds[lab]),
            f"{iv.mean:.4f}",
            f"[{iv.low:.4f}, {iv.high:.4f}]" if finite(iv.low) else "",
            f"{p.difference:+.4f}" if p is not None and p.n else "",
            f"[{p.ci[0]:+.4f}, {p.ci[1]:+.4f}]" if p is not None and finite(p.ci[0]) else "",
        ]
        if has_test:
            t = e.means["test"].get(lab)
            row.append(f"{t.mean:.4f}" if t is not None else "")
        if "gap" in e.means:
            g = e.means["gap"].get(lab)
            row.append(f"{g.mean:+.4f}" if g is not None else "")
        m = measured.get(lab, {})
        row += [_fmt(m.get(c, math.nan)) for c in extra]
        row += [str(m.get("pruned", 0)), str(m.get("failed", 0))]
        rows.append(row)
    return rows


def write_report(records: StudyRecords, out: Path, level: float = 0.95) -> Path:
    """Write ``report.html``, PNG plots and ``results.csv`` for a study's records into ``out``.

    Every number the page states (text, captions, tables, figures) comes from one
    :func:`~auxlab.study._effects.effects_of` computation.
    """
    import torch

    out.mkdir(parents=True, exist_ok=True)
    runs = records.runs
    rows = records.rows
    records.to_csv(out / "results.csv")
    metric = records.metric
    lv = f"{level:.0%}"
    sections: list[dict[str, Any]] = []
    try:
        rec = records.recommend(level)
        summary = [str(rec).splitlines()[0], *rec.reasons]
    except ValueError as exc:
        rec = None
        summary = [f"No recommendation: {exc}."]
    pruned = sum(r["state"] == "PRUNED" for r in rows)
    if pruned:
        summary.append(
            f"{pruned} run(s) were pruned (pruner '{records.pruner}'), which compares a run "
            "with the runs of other seeds, so it stops unlucky seeds rather than worse "
            "settings; the paired comparisons use only the seeds complete at both settings."
        )
    e = effects_of(records, level) if rec is not None else None
    order = e.order if e is not None else _order([_label_of(r["row"]) for r in runs], runs)
    colors = setting_colors(order, dict(e.weights) if e is not None else {})

    if e is not None:
        sections.append({"title": "What raising the weight did", "paragraphs": paragraph(e)})
        sections.append(
            {
                "title": "Training length",
                "text": (
                    "Per setting, from the mean validation curve over seeds (each run keeps "
                    "its best validation epoch's weights):"
                ),
                "bullets": _flag_items(e),
            }
        )
        for column, title, what, file in (
            (
                "value",
                f"Validation {metric} by setting",
                f"validation {metric}",
                "metric_by_weight.png",
            ),
            ("test", f"Held-out test {metric} by setting", f"test {metric}", "test_by_weight.png"),
            ("gap", "Train/validation gap by setting", "train/validation gap", "gap_by_weight.png"),
        ):
            fig = compare_figure(e, column, f"{what} (main task)", out / file, colors)
            if fig is None:
                continue
            text = {
                "value": "Each completed run at its best epoch. Weight 0 is no auxiliary loss.",
                "test": (
                    "Each completed run with the weights of its best validation epoch, scored "
                    "once on the test split, which is never used to choose: does the "
                    "validation ranking hold on data the study did not look at?"
                ),
                "gap": (
                    "The main task's train - validation gap at the best epoch (positive: "
                    "better on the training data). A smaller gap at a larger weight, beyond "
                    "the noise, is the auxiliary loss regularising."
                ),
            }[column]
            sections.append(
                {
                    "title": title,
                    "text": text,
                    "image": file,
                    "caption": compare_caption(e, column, what, fig),
                }
            )
    # Learning curves per setting.
    val_panel: dict[str, list[tuple[list[float], list[float]]]] = {}
    gap_panel: dict[str, list[tuple[list[float], list[float]]]] = {}
    for r in runs:
        if r["row"]["state"] != "COMPLETE":
            continue
        lab, mon = group_label(r["row"]), r.get("monitor")
        eps = r["epochs"]
        if mon and eps:
            x = [e_["epoch"] for e_ in eps]
            val_panel.setdefault(lab, []).append((x, [e_.get(mon, math.nan) for e_ in eps]))
            gk = next((k for k in eps[0] if k.startswith("gap/") and "loss" not in k), None)
            gk = gk or next((k for k in eps[0] if k.startswith("gap/")), None)
            if gk:
                gap_panel.setdefault(lab, []).append((x, [e_.get(gk, math.nan) for e_ in eps]))
    if val_panel:
        curves_figure(
            {f"validation {metric} (main)": val_panel, "train - validation gap (main)": gap_panel},
            order,
            colors,
            out / "learning_curves.png",
            "epoch",
            level,
        )
        sections.append(
            {
                "title": "Learning curves",
                "text": (
                    f"Completed runs, per setting: the mean over seeds and its {lv} t-interval "
                    "band at each epoch, in the colours of the figures above. The gap is "
                    "measured on the training data evaluated after each epoch; larger means "
                    "more over-fitting."
                ),
                "image": "learning_curves.png",
            }
        )
    # Gradient flow and the auxiliary share per shared layer, each on one colour scale.
    flows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in runs:
        if r["row"]["state"] != "COMPLETE":
            continue
        lab = group_label(r["row"])
        for key, v in r["flow"].items():
            _, task, layer = key.split("/", 2)
            flows.setdefault(task, {}).setdefault(lab, {}).setdefault(layer, []).append(v)
    mean_flows = {
        t: {lab: {lay: float(np.nanmean(vs)) for lay, vs in d.items()} for lab, d in by.items()}
        for t, by in flows.items()
    }
    flow_path = flow_figure(
        mean_flows, order, out / "gradient_flow.png", "'{}' gradient, log10 norm", True, ".1f"
    )
    if flow_path is not None:
        sections.append(
            {
                "title": "Gradient flow per layer",
                "text": (
                    "Norm of each task's weighted gradient reaching each layer (log10, mean "
                    "over probed steps and seeds), every panel on one colour scale. Does the "
                    "auxiliary loss send gradient down to the lower layers, and how much next "
                    "to the main task?"
                ),
                "image": "gradient_flow.png",
            }
        )
    if e is not None and e.shares:
        share_path = flow_figure(
            {"auxiliary": e.shares},
            order,
            out / "aux_share_by_layer.png",
            "{} share of the gradient per shared layer",
            False,
            ".0%",
            vmin=0.0,
            vmax=1.0,
        )
        if share_path is not None:
            sections.append(
                {
                    "title": "The auxiliary gradient's share per shared layer",
                    "text": (
                        "‖w·g_aux‖ / (‖g_main‖ + ‖w·g_aux‖) on each shared layer, from the mean "
                        "weighted norms over probed steps, mean over seeds; colour scale from "
                        "0 to 100 % for every setting. These are the numbers of the paragraph "
                        "above."
                    ),
                    "image": "aux_share_by_layer.png",
                }
            )
    # Alignment and influence over training.
    panels: dict[str, dict[str, list[tuple[list[float], list[float]]]]] = {}
    for r in runs:
        lab, probes = group_label(r["row"]), r["probes"]
        if r["row"]["state"] != "COMPLETE" or not probes:
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
        curves_figure(panels, order, colors, out / "alignment_influence.png", "step", level)
        sections.append(
            {
                "title": "Alignment and influence over training",
                "text": (
                    "Cosine between the main and auxiliary gradients on the shared layers "
                    "(negative: conflict), the auxiliary gradient's size relative to the main "
                    "one, and the first-order change of the main loss that the auxiliary part "
                    f"of a step causes (negative: it helps), every probed step; mean over "
                    f"seeds with its {lv} t-interval band."
                ),
                "image": "alignment_influence.png",
            }
        )
    if e is not None:
        sections.append(
            {
                "title": "Settings compared",
                "text": (
                    f"Mean of the validation {metric} over completed seeds with its {lv} "
                    "t-interval (each setting's own seed noise, as in the figures; the "
                    "recommendation's line pools the noise over settings), the difference to "
                    f"weight 0 seed by seed with its {lv} paired interval, and measurements "
                    "averaged over the runs."
                ),
                "table": _settings_table(e, rec),
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
        f"{metric} of the main task ({records.direction}); pruner '{records.pruner}'; "
        f"{len(rows)} finished runs "
        f"({sum(r['state'] == 'COMPLETE' for r in rows)} complete, "
        f"{pruned} pruned, "
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
        summary_title="Recommendation",
    )
