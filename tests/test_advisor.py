"""The paired advisor: no pruning across seeds, paired comparisons with Holm, a start-up grid."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")
pytest.importorskip("scipy")

from auxlab.study import Study, StudyConfig, parse_config, recommend_from_rows

_spec = importlib.util.spec_from_file_location(
    "_test_study_helpers", Path(__file__).with_name("test_study.py")
)
assert _spec is not None
assert _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
BUILDERS: str = _helpers.BUILDERS

# Five seeds with large seed effects (the spread of weight 0 over seeds is 0.2).
BASE = [0.60, 0.70, 0.80, 0.65, 0.75]


def _rows(shifts: dict[float, list[float]]) -> list[dict[str, Any]]:
    """Rows of weight ``w`` on seed ``s``: ``BASE[s] + shifts[w][s]``."""
    return [
        {
            "state": "COMPLETE",
            "setting": f"fixed:{w!r}",
            "label": f"w={w:g}",
            "kind": "fixed",
            "weight": w,
            "seed": seed,
            "value": base + shift,
        }
        for w, shift in shifts.items()
        for seed, (base, shift) in enumerate(zip(BASE, shift, strict=True))
    ]


# ---------------------------------------------------------------------------------------------
# 1. The default prunes nothing (a median pruner compares a run with other seeds' runs).


def test_default_pruner_prunes_nothing() -> None:
    assert StudyConfig(builder="m:f").pruning["pruner"] == "none"
    toml = '[study]\nbuilder = "m:f"\n\n[[strategies]]\nkind = "fixed"\nweights = [0, 1]\n'
    assert parse_config(toml).pruning["pruner"] == "none"
    study = Study("m:f", strategies=[{"kind": "fixed", "weights": [0.0]}])
    assert type(study._pruner()).__name__ == "NopPruner"
    # The explicit choices still work.
    median = Study(
        "m:f", strategies=[{"kind": "fixed", "weights": [0.0]}], pruning={"pruner": "median"}
    )
    assert type(median._pruner()).__name__ == "MedianPruner"


# ---------------------------------------------------------------------------------------------
# 2. Settings compared seed by seed, Holm-corrected; the plateau.


def test_paired_difference_beats_zero_where_unpaired_means_overlap() -> None:
    # w=0.1 is 0.018 to 0.022 better than weight 0 on every seed; the seeds differ by 0.2.
    rows = _rows(
        {
            0.0: [0.0] * 5,
            0.1: [0.021, 0.019, 0.020, 0.022, 0.018],
            1.0: [-0.05, -0.06, -0.04, -0.05, -0.05],
        }
    )
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.1
    assert rec.beats_baseline
    assert rec.difference == pytest.approx(0.02)
    assert 0 < rec.difference_ci[0] < 0.02 < rec.difference_ci[1] < 0.025
    assert rec.comparisons == 2
    assert rec.p_adjusted < 0.05
    assert "paired by seed over 5 seeds" in rec.reasons[0]
    assert "Holm-adjusted p" in rec.reasons[0]
    assert "among 2 settings compared with weight 0" in rec.reasons[0]
    # The unpaired interval of the two means (as the old rule used) would reach 0.
    zero = [r["value"] for r in rows if r["weight"] == 0.0]
    assert max(zero) - min(zero) > 5 * rec.difference


def test_no_effect_recommends_zero_and_says_why() -> None:
    rows = _rows({0.0: [0.0] * 5, 0.1: [0.01, -0.01, 0.005, -0.005, 0.002]})
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.0
    assert not rec.beats_baseline
    assert rec.best_label == "w=0.1"
    assert rec.difference_ci[0] < 0 < rec.difference_ci[1]
    assert "within the noise between seeds" in rec.reasons[0]
    assert "so weight 0 is recommended" in rec.reasons[0]
    assert rec.plateau == [0.0, 0.1]


def test_holm_correction_counts_the_comparisons() -> None:
    # Alone, w=0.1's paired p is about 0.02; chosen among four settings it is not enough.
    win = [0.02, 0.01, 0.03, 0.005, 0.015]
    alone = recommend_from_rows(_rows({0.0: [0.0] * 5, 0.1: win}), "auc", "maximize")
    assert alone.comparisons == 1
    assert alone.beats_baseline
    many = _rows(
        {
            0.0: [0.0] * 5,
            0.1: win,
            0.3: [-0.01, 0.01, 0.0, 0.005, -0.005],
            1.0: [-0.02, 0.0, -0.01, 0.01, -0.02],
            3.0: [-0.05, 0.01, -0.04, 0.0, -0.05],
        }
    )
    rec = recommend_from_rows(many, "auc", "maximize")
    assert rec.comparisons == 4
    assert rec.best_label == "w=0.1"
    assert rec.weight == 0.0
    assert rec.p_adjusted > 0.05 > alone.p_adjusted
    assert rec.difference_ci[0] > 0  # unadjusted, the interval excludes 0
    assert "best of 4 settings compared with weight 0" in rec.reasons[0]
    assert "so weight 0 is recommended" in rec.reasons[0]


def test_plateau_is_the_range_within_paired_noise_of_the_best() -> None:
    rows = _rows(
        {
            0.0: [0.0] * 5,
            0.03: [0.010, 0.025, 0.015, 0.030, 0.005],
            0.1: [0.021, 0.019, 0.020, 0.022, 0.018],
            0.3: [0.025, 0.012, 0.022, 0.010, 0.016],
            1.0: [-0.05, -0.06, -0.04, -0.05, -0.05],
        }
    )
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.1
    assert rec.plateau == [0.03, 0.1, 0.3]
    text = " ".join(rec.reasons)
    assert "Plateau: weights from 0.03 to 0.3 are within the paired noise of the best" in text


def test_minimised_metric_is_paired_in_the_better_direction() -> None:
    rows = _rows({0.0: [0.0] * 5, 0.5: [-0.021, -0.019, -0.020, -0.022, -0.018]})
    rec = recommend_from_rows(rows, "loss", "minimize")
    assert rec.weight == 0.5
    assert rec.difference == pytest.approx(0.02)


# ---------------------------------------------------------------------------------------------
# 3. A search spends its start-up on a grid, then TPE.


def _log_grid(low: float, high: float, n: int) -> list[float]:
    return [float(f"{low * (high / low) ** (i / (n - 1)):.6g}") for i in range(n)]


@pytest.fixture
def builders(tmp_path: Path) -> Path:
    folder = tmp_path / "builders"
    folder.mkdir()
    (folder / "tiny_study_builders.py").write_text(BUILDERS)
    return folder


def _search(builders: Path, trials: int, name: str) -> list[float]:
    study = Study(
        "tiny_study_builders:build",
        strategies=[{"kind": "search", "low": 0.01, "high": 2.0, "trials": trials}],
        seeds=[0],
        epochs=1,
        metric="auc",
        every=4,
        base_dir=str(builders),
        name=name,
    )
    study.run()
    rows = study.results()
    assert all(r["state"] == "COMPLETE" for r in rows)
    return sorted(r["weight"] for r in rows)


def test_search_with_few_trials_runs_the_grid(builders: Path) -> None:
    grid = _log_grid(0.01, 2.0, 6)
    assert _search(builders, 6, "a") == grid
    assert _search(builders, 6, "b") == grid  # deterministic


def test_search_beyond_the_grid_asks_tpe(builders: Path) -> None:
    weights = _search(builders, 9, "c")
    grid = _log_grid(0.01, 2.0, 8)
    assert len(weights) == 9
    assert set(grid) < set(weights)
    extra = [w for w in weights if w not in grid]
    assert len(extra) == 1
    assert 0.01 <= extra[0] <= 2.0


def test_plateau_weights_are_printed_to_four_digits() -> None:
    # Grid weights such as 0.1732050807 used to print as 0.173205.
    w = 0.1732050807
    rows = _rows(
        {
            0.0: [0.0] * 5,
            w: [0.021, 0.019, 0.020, 0.022, 0.018],
            0.3: [0.025, 0.012, 0.022, 0.010, 0.016],
        }
    )
    text = " ".join(recommend_from_rows(rows, "auc", "maximize").reasons)
    assert "Plateau: weights from 0.1732 to 0.3" in text
    assert "0.173205" not in text


def test_gap_change_is_judged_seed_by_seed() -> None:
    # The gap spreads 0.1 across seeds but is 0.01 smaller on every seed at w=0.3: a paired
    # reading sees the regularising effect that the pooled, unpaired one called noise.
    rows = _rows({0.0: [0.0] * 5, 0.3: [0.021, 0.019, 0.020, 0.022, 0.018]})
    spread = [0.10, 0.0, 0.05, 0.15, 0.02]
    for r in rows:
        cut = 0.01 + 0.002 * (r["seed"] % 3) if r["weight"] == 0.3 else 0.0
        r["gap"] = 0.2 + spread[r["seed"]] - cut
    text = " ".join(recommend_from_rows(rows, "auc", "maximize").reasons)
    assert "acted as a regulariser" in text
    assert "paired interval" in text
