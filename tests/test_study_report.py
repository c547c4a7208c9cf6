"""The study report on hand-made StudyRecords with known answers.

t-intervals computed by scipy, paired intervals against weight 0, y-axes that span the seed
noise, one colour scale, captions that say what the text says, the paragraph on what raising
the weight did, and the flags on the learning curves.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import pytest

stats = pytest.importorskip("scipy.stats")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from auxlab.study import StudyRecords  # noqa: E402
from auxlab.study._effects import (  # noqa: E402
    MIN_SPAN_SDS,
    axis_limits,
    curve_flags,
    effects_of,
    paragraph,
    t_interval,
    verdict,
)
from auxlab.study._figures import compare_figure, flow_figure, setting_colors  # noqa: E402
from auxlab.study._report import write_report  # noqa: E402

SEEDS = [0, 1, 2, 3]
# Large seed effects (0.05 apart) and small, consistent weight effects: w=1 is +0.004 seed
# by seed (within ±0.0005), w=3 is -0.001 to +0.002 (within noise).
SEED_BASE = [0.70, 0.75, 0.80, 0.85]
SHIFT = {
    0.0: [0.0, 0.0, 0.0, 0.0],
    1.0: [0.0040, 0.0045, 0.0035, 0.0040],
    3.0: [0.0020, -0.0010, 0.0010, 0.0000],
}
GAP = {0.0: [0.10, 0.12, 0.11, 0.13], 1.0: [0.08, 0.10, 0.09, 0.11], 3.0: [0.10, 0.13, 0.11, 0.12]}
# Weighted gradient norms per layer: the main task's, and the auxiliary one's at each weight.
MAIN_FLOW = {"embed": 1.0, "lstm": 2.0, "head_main": 0.5}
AUX_FLOW = {0.0: 0.0, 1.0: 0.25, 3.0: 1.0}  # times the main norm on every shared layer


def _curve(kind: str, seed: int, epochs: int = 10) -> list[float]:
    base = SEED_BASE[seed]
    if kind == "peak2":  # best at epoch 2 of 10, then falls by 0.05
        return [base - 0.02, base + 0.01] + [base + 0.01 - 0.006 * i for i in range(1, 9)]
    if kind == "first":  # best at epoch 1, then lower
        return [base] + [base - 0.01 - 0.001 * i for i in range(epochs - 1)]
    return [base - 0.05 + 0.005 * i for i in range(epochs)]  # rising to the last epoch


def _records(kinds: dict[float, str] | None = None, pruned: int = 0) -> StudyRecords:
    kinds = kinds or {0.0: "rise", 1.0: "peak2", 3.0: "first"}
    runs: list[dict[str, Any]] = []
    trial = 0
    for w in SHIFT:
        for s in SEEDS:
            curve = _curve(kinds[w], s)
            value = max(curve)
            row = {
                "trial": trial,
                "state": "COMPLETE",
                "setting": f"fixed:{w!r}",
                "label": f"w={w:g}",
                "kind": "fixed",
                "weight": w,
                "seed": s,
                "value": SEED_BASE[s] + SHIFT[w][s],
                "test": SEED_BASE[s] + SHIFT[w][s] - 0.01,
                "gap": GAP[w][s],
                "best_epoch": curve.index(value) + 1,
                "ratio/aux": 0.5 * w,
                "cos/aux": 0.2,
                "norm/main": 2.0,
                "norm/aux": 1.0,
            }
            flow = {f"flow/main/{lay}": v for lay, v in MAIN_FLOW.items()}
            flow.update(
                {f"flow/aux/{lay}": AUX_FLOW[w] * MAIN_FLOW[lay] for lay in ("embed", "lstm")}
            )
            flow["flow/aux/head_aux"] = AUX_FLOW[w]
            runs.append(
                {
                    "row": row,
                    "epochs": [{"epoch": i + 1, "val_main_auc": v} for i, v in enumerate(curve)],
                    "probes": [{"step": 0, "cos/aux": 0.2, "ratio/aux": 0.5 * w}],
                    "flow": flow,
                    "monitor": "val_main_auc",
                    "main": "main",
                    "shared_layers": ["embed", "lstm"],
                }
            )
            trial += 1
    for k in range(pruned):
        row = {**runs[-1]["row"], "trial": trial + k, "state": "PRUNED", "seed": 9 + k}
        runs.append({**runs[-1], "row": row})
    return StudyRecords(
        name="hand-made",
        metric="auc",
        direction="maximize",
        settings=[f"w={w:g}" for w in SHIFT],
        seeds=SEEDS,
        epochs=10,
        runs=runs,
        pruner="median" if pruned else "none",
    )


def _scipy_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    lo, hi = stats.t.interval(0.95, n - 1, loc=sum(values) / n, scale=stats.sem(values))
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# 95 % t-intervals over seeds, and paired ones against weight 0.


def test_t_interval_is_scipys() -> None:
    vals = [0.70, 0.7045, 0.8035, 0.854]
    iv = t_interval(vals)
    assert (iv.low, iv.high) == pytest.approx(_scipy_interval(vals), abs=1e-12)
    assert t_interval([0.5]).n == 1
    assert math.isnan(t_interval([0.5]).low)


def test_settings_get_t_intervals_and_paired_intervals_against_zero() -> None:
    e = effects_of(_records())
    vals = [SEED_BASE[s] + SHIFT[1.0][s] for s in SEEDS]
    iv = e.means["value"]["w=1"]
    assert (iv.low, iv.high) == pytest.approx(_scipy_interval(vals), abs=1e-12)
    # Seed by seed, w=1 is +0.004 ± 0.0005 over weight 0: the paired interval is scipy's on the
    # differences, far narrower than either setting's own interval (the seeds differ by 0.05).
    p = e.vs_zero["value"]["w=1"]
    assert p.ci == pytest.approx(_scipy_interval(SHIFT[1.0]), abs=1e-12)
    assert p.ci[0] > 0
    assert p.ci[1] - p.ci[0] < (iv.high - iv.low) / 50
    p3 = e.vs_zero["value"]["w=3"]
    assert p3.ci[0] < 0 < p3.ci[1]
    assert "w=0" not in e.vs_zero["value"]


# ---------------------------------------------------------------------------------------------
# Y-axes that show the seed noise.


def test_axis_spans_every_interval_and_the_seed_noise(tmp_path: Path) -> None:
    e = effects_of(_records())
    colors = setting_colors(e.order, dict(e.weights))
    fig = compare_figure(e, "value", "validation auc", tmp_path / "m.png", colors)
    assert fig is not None
    assert fig.path.stat().st_size > 2000
    (lo0, hi0), (lo1, hi1) = fig.limits
    # Left: every seed and every interval, and at least MIN_SPAN_SDS seed sds.
    ivs = e.means["value"].values()
    assert lo0 <= min(iv.low for iv in ivs)
    assert hi0 >= max(iv.high for iv in ivs)
    assert hi0 - lo0 >= MIN_SPAN_SDS * e.seed_sd["value"]
    # Right: the paired differences span 0.0055 (the 0.0035-wide kind of range that a
    # zoomed axis turns into a trend); the axis spans at least MIN_SPAN_SDS sds of them.
    pairs = e.vs_zero["value"].values()
    assert lo1 <= min(p.ci[0] for p in pairs)
    assert hi1 >= max(p.ci[1] for p in pairs)
    assert lo1 <= 0 <= hi1
    assert hi1 - lo1 >= MIN_SPAN_SDS * e.diff_sd["value"]
    assert fig.min_spans == [
        pytest.approx(MIN_SPAN_SDS * e.seed_sd["value"]),
        pytest.approx(MIN_SPAN_SDS * e.diff_sd["value"]),
    ]


def test_axis_limits_widen_a_narrow_range_to_the_minimum_span() -> None:
    lo, hi = axis_limits([0.700, 0.7010], [0.7035, 0.7020], min_span=0.03)
    assert hi - lo >= 0.03
    assert lo < 0.700
    assert hi > 0.7035
    lo, hi = axis_limits([0.0, -0.5], [1.0, 0.2], min_span=0.01)  # data wider than the span
    assert lo <= -0.5
    assert hi >= 1.0


# ---------------------------------------------------------------------------------------------
# One colour scale where settings are compared.


def test_one_colour_per_setting_and_one_scale_per_heatmap(tmp_path: Path) -> None:
    order = ["w=0", "w=0.1", "w=1", "relative(shares={'aux': 0.2})"]
    colors = setting_colors(order, {"w=0": 0.0, "w=0.1": 0.1, "w=1": 1.0})
    assert len({tuple(colors[lab]) for lab in order}) == len(order)
    # The fixed weights lie on one sequential scale, in the order of the weights.
    import matplotlib

    viridis = matplotlib.colormaps["viridis"]
    assert tuple(colors["w=0"]) == pytest.approx(tuple(viridis(0.05)))
    assert tuple(colors["w=1"]) == pytest.approx(tuple(viridis(0.85)))
    flows = {
        "main": {"w=0": {"embed": 1.0}, "w=1": {"embed": 1.0}},
        "aux": {"w=1": {"embed": 0.01}},
    }
    fig = flow_figure(flows, order, tmp_path / "f.png", "{}", True, ".1f")
    assert fig is not None
    assert fig.limits == [(-2.0, 0.0), (-2.0, 0.0)]  # both panels on the scale of both


# ---------------------------------------------------------------------------------------------
# What raising the weight did, in words; captions that agree with it.


def test_paragraph_states_metric_gap_and_layer_shares_with_known_answers() -> None:
    e = effects_of(_records())
    text = " ".join(paragraph(e))
    p1 = e.vs_zero["value"]["w=1"]
    assert f"w=1: {p1.difference:+.4f} [{p1.ci[0]:+.4f}, {p1.ci[1]:+.4f}]" in text
    assert "+0.0040" in text
    assert "Beyond the noise between seeds, the validation auc was higher at w=1." in text
    # The gap: 0.02 smaller at w=1 on every seed (paired interval [-0.02, -0.02]).
    assert "went from +0.1150 at weight 0 to +0.1150 at w=3" in text
    assert "w=1: -0.0200 [-0.0200, -0.0200]" in text
    assert "narrower at w=1: the auxiliary loss regularised" in text
    # Shares per shared layer: aux = 0.25 x main -> 20 %, aux = main -> 50 %; the head of the
    # main task is not shared and is left out.
    assert "'embed': 0 % at w=0, 20 % at w=1, 50 % at w=3" in text
    assert "'lstm': 0 % at w=0, 20 % at w=1, 50 % at w=3" in text
    assert "head_main" not in text
    assert e.shares["w=1"] == {"embed": pytest.approx(0.2), "lstm": pytest.approx(0.2)}


def test_layer_shares_of_a_study_stored_without_shared_layers_are_inferred() -> None:
    records = _records()
    for r in records.runs:
        r["shared_layers"] = None
        r["main"] = None  # read from the norm/ and ratio/ columns
    # On seed 0 at w=1, no auxiliary gradient reached the shared layers (share 0); on the
    # other three seeds it was 0.25 x the main one (share 0.2): the mean is 0.15.
    first = next(r for r in records.runs if r["row"]["weight"] == 1.0)
    first["flow"] = {k: (0.0 if k.startswith("flow/aux/") else v) for k, v in first["flow"].items()}
    e = effects_of(records)
    assert e.layers == ["embed", "lstm"]  # the layers both gradients reach at some weight
    assert e.shares["w=0"] == {"embed": 0.0, "lstm": 0.0}
    assert e.shares["w=3"]["lstm"] == pytest.approx(0.5)
    assert e.shares["w=1"]["embed"] == pytest.approx(0.15)


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report of the hand-made records (with two pruned runs), written once."""
    return write_report(_records(pruned=2), tmp_path_factory.mktemp("report"))


def test_report_captions_agree_with_the_text(report: Path) -> None:
    page = report.read_text()
    e = effects_of(_records())
    captions = [_text(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)]
    paras = _text(" ".join(re.findall(r"<p>(.*?)</p>", page, re.S)))
    for column, what in (
        ("value", "validation auc"),
        ("test", "test auc"),
        ("gap", "train/validation gap"),
    ):
        said = verdict(e, column, what)
        assert any(said in c for c in captions), said
        if column != "gap":
            assert said in paras, said
    assert "Beyond the noise between seeds, the validation auc was higher at w=1." in paras
    # The axis rule, with the seed sd the figure used.
    sd = e.seed_sd["value"]
    assert any(
        f"at least {MIN_SPAN_SDS:g} seed standard deviations (left: sd {sd:.4f}" in c
        for c in captions
    )
    assert "min-max" not in page
    # The table's paired interval is the paragraph's.
    p1 = e.vs_zero["value"]["w=1"]
    assert f"[{p1.ci[0]:+.4f}, {p1.ci[1]:+.4f}]" in page
    for png in ("metric_by_weight", "test_by_weight", "gap_by_weight", "aux_share_by_layer"):
        assert (report.parent / f"{png}.png").stat().st_size > 2000, png


# ---------------------------------------------------------------------------------------------
# Flags on the learning curves.


def test_flag_on_a_curve_that_peaks_at_epoch_2_of_10_and_not_on_a_rising_one() -> None:
    peak = [_curve("peak2", s) for s in SEEDS]
    rising = [_curve("rise", s) for s in SEEDS]
    flags = curve_flags("w=1", peak, "auc", maximize=True)
    assert [f.kind for f in flags] == ["early_peak"]
    assert "over-fitting" in flags[0].text
    assert "peaked at epoch 2 of 10" in flags[0].text
    # The fall from epoch 2 to 10 is 0.048 on every seed.
    assert "0.0480 worse at the last epoch" in flags[0].text
    kinds = [f.kind for f in curve_flags("w=0", rising, "auc", maximize=True)]
    assert "early_peak" not in kinds
    assert "first_epoch" not in kinds
    assert kinds == ["still_improving"]
    # A loss that is minimised: the same shapes upside down.
    loss = [[-v for v in c] for c in peak]
    assert [f.kind for f in curve_flags("w=1", loss, "loss", maximize=False)] == ["early_peak"]


def test_flag_when_the_chosen_epoch_is_the_first() -> None:
    flags = curve_flags("w=3", [_curve("first", s) for s in SEEDS], "auc", maximize=True)
    assert [f.kind for f in flags] == ["first_epoch"]
    assert "under-trained" in flags[0].text
    assert "best after the first epoch of 10 (4 of 4 seeds)" in flags[0].text


def test_no_flag_for_an_early_peak_within_the_noise() -> None:
    # Peaks at epoch 2 of 10 on average, but the end is above the peak on two seeds out of
    # four: the fall is within the noise between seeds.
    curves = [
        [0.70, 0.75, 0.72, 0.71, 0.70, 0.70, 0.70, 0.70, 0.70, 0.76],
        [0.70, 0.75, 0.72, 0.71, 0.70, 0.70, 0.70, 0.70, 0.70, 0.70],
        [0.70, 0.75, 0.72, 0.71, 0.70, 0.70, 0.70, 0.70, 0.70, 0.77],
        [0.70, 0.75, 0.72, 0.71, 0.70, 0.70, 0.70, 0.70, 0.70, 0.71],
    ]
    assert curve_flags("w=1", curves, "auc", maximize=True) == []


def test_report_flags_each_setting_in_words(report: Path) -> None:
    page = _text(report.read_text())
    assert "w=1: over-fitting. The validation auc peaked at epoch 2 of 10" in page
    assert "w=3: under-trained." in page
    assert "Still improving at the last of 10 epochs" in page
    assert "w=0." in page.split("Still improving at the last of 10 epochs", 1)[1][:200]


def test_report_says_runs_were_pruned_and_by_which_pruner(report: Path) -> None:
    page = _text(report.read_text())
    assert "2 run(s) were pruned (pruner 'median')" in page
    assert "pruner 'median'; 14 finished runs" in page


def test_plot_metric_by_weight_draws_t_intervals_on_a_wide_enough_axis(tmp_path: Path) -> None:
    # auxlab.report's public plot: no min-max bars; the y-axis spans min_span at least.
    import matplotlib.pyplot as plt

    from auxlab.report import plot_metric_by_weight

    made: list[Any] = []
    real = plt.subplots

    def spy(*args: Any, **kwargs: Any) -> Any:
        fig, ax = real(*args, **kwargs)
        made.append(ax)
        return fig, ax

    per_weight = {0.0: [0.700, 0.7010, 0.7020], 1.0: [0.7025, 0.7035, 0.7030]}
    plt.subplots = spy
    try:
        path = plot_metric_by_weight(per_weight, "auc", tmp_path / "p.png", "t", min_span=0.03)
    finally:
        plt.subplots = real
    assert path.stat().st_size > 2000
    lo, hi = made[0].get_ylim()
    assert hi - lo >= 0.03
    # The error bar of weight 0 is scipy's t-interval, not the min-max range.
    bars = [c for c in made[0].collections if type(c).__name__ == "LineCollection"]
    segs = bars[0].get_segments()
    low, high = segs[0][0][1], segs[0][1][1]
    assert (low, high) == pytest.approx(_scipy_interval(per_weight[0.0]))
