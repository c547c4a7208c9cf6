"""``auxlab online`` (``auxlab.online._cli``): out of the box on river's Phishing stream,
progress, flat JSON records, threads, and the errors for missing data or river."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from auxlab.online import _cli

pytest.importorskip("river")

# The measures and keys every flat record carries (docs/online.md, "JSON records").
RECORD_KEYS = {
    "dataset", "learner", "p", "seed", "balanced_accuracy", "auroc", "auprc", "accuracy",
    "errors", "log_loss", "code_loss", "balanced_accuracy_prior_corrected", "majority_errors",
    "seconds", "n", "d",
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="auxlab")
    sub = ap.add_subparsers(dest="command")
    _cli.add_parser(sub)
    return ap


def _run(*argv: str) -> int:
    return _cli.run(_parser().parse_args(["online", *argv]))


def _data() -> Path | None:
    env = os.environ.get("AUXLAB_HAPHAZARD_DATA")
    here = Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"
    for root in ([Path(env)] if env else []) + [here]:
        if (root / "german" / "german.data-numeric").is_file():
            return root
    return None


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_defaults_need_no_argument_and_the_model_alias():
    args = _parser().parse_args(["online"])
    assert (args.dataset, args.learners, args.p, args.seeds) == (
        "phishing",
        ["ensemble", "hbp", "logistic_balanced", "logistic"],
        0.5,
        3,
    )
    assert (args.rows, args.threads, args.data, args.json, args.no_progress) == (
        None,
        None,
        None,
        None,
        False,
    )
    args = _parser().parse_args(["online", "--dataset", "ipd", "--model", "hbp", "auxdrop"])
    assert args.learners == ["hbp", "auxdrop"]
    for bad in (["--p", "0"], ["--p", "x"], ["--threads", "0"], ["--rows", "-1"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["online", *bad])


def test_default_run_learns_phishing_and_names_every_learner(capsys):
    # The defaults (phishing; the default learner, its members and the reference), on the
    # first 200 rows of the shuffled stream.
    assert _run("--rows", "200", "--seeds", "1", "--no-progress") == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].startswith("torch threads: ")  # first line: the thread choice
    assert lines[1].startswith("phishing: 200 rows x 9 features")
    labels = ("HedgeEnsemble(ours)", "HedgeBackprop(ours)", "OnlineLogistic(balanced)")
    for label in (*labels, "OnlineLogistic"):
        # The table's row: the learner, then balanced accuracy and AUROC (mean ± std).
        row = next(
            m
            for x in lines
            if (m := re.match(rf"{re.escape(label)} +([\d.]+) ± [\d.]+ +([\d.]+) ±", x))
        )
        bacc, auroc = float(row[1]), float(row[2])
        assert bacc > 60.0  # learns: chance is 50
        assert auroc > 60.0
    assert "balanced accuracy" in out.out
    assert "AUROC" in out.out
    assert lines[-1].split()[:4] == ["majority", "class", "50.00", "50.00"]
    assert out.err == ""  # --no-progress: no bar at all


def test_progress_is_a_tqdm_bar_on_stderr(capsys):
    assert _run("--rows", "100", "--seeds", "2", "--learner", "logistic") == 0
    err = capsys.readouterr().err
    assert "200/200" in err  # one bar over every run, to the end
    assert "OnlineLogistic seed 1" in err  # its description names the run
    assert "#" not in err  # not the old hand-written bar


def test_json_is_a_list_of_flat_records(tmp_path, capsys):
    path = tmp_path / "r.json"
    argv = ["--rows", "120", "--seeds", "2", "--learner", "auxdrop", "logistic", "--p", "0.75"]
    assert _run(*argv, "--no-progress", "--json", str(path)) == 0
    recs = json.loads(path.read_text())
    assert [(r["learner"], r["seed"]) for r in recs] == [
        ("AuxDrop(ours)", 0),
        ("AuxDrop(ours)", 1),
        ("OnlineLogistic", 0),
        ("OnlineLogistic", 1),
    ]
    for r in recs:
        assert set(r) == RECORD_KEYS
        assert not any(isinstance(v, (dict, list)) for v in r.values())  # flat
        assert (r["dataset"], r["p"], r["n"], r["d"]) == ("phishing", 0.75, 120, 9)
    printed = capsys.readouterr().out
    assert f"balanced accuracy {recs[0]['balanced_accuracy']:.2f}" in printed


def test_threads_flag_is_applied_and_printed_first(capsys):
    assert _run("--rows", "50", "--seeds", "1", "--learner", "logistic", "--threads", "2",
                "--no-progress") == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[0] == "torch threads: 2 (as asked)"
    assert torch.get_num_threads() == 2


def test_a_benchmark_set_without_a_folder_names_the_flag_layout_and_sources(monkeypatch, capsys):
    monkeypatch.delenv("AUXLAB_HAPHAZARD_DATA", raising=False)
    assert _run("--dataset", "german") == 1
    out = capsys.readouterr()
    assert out.out.startswith("torch threads: ")
    err = out.err
    assert "--data DIR" in err
    assert "root=" not in err  # the library's argument, not the command's flag
    assert "german/german.data-numeric" in err
    assert "wbc/wbc.data" in err
    assert "Rohit102497/Aux-Drop" in err
    assert "HaphazardInputsReview" in err
    assert "--dataset phishing" in err  # what runs without a folder


def test_a_folder_without_the_file_names_the_flag_and_the_layout(tmp_path, capsys):
    assert _run("--dataset", "german", "--data", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "missing data file" in err
    assert "german.data-numeric" in err
    assert f"--data {tmp_path}" in err
    assert "magic04/magic04.data" in err
    assert "root=" not in err


def test_without_river_the_error_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    assert _run() == 1
    err = capsys.readouterr().err
    assert 'pip install "auxlab[online]"' in err
    assert "phishing" in err


@pytest.mark.skipif(_data() is None, reason="haphazard data folder not found")
def test_runs_on_german_and_writes_flat_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["--dataset", "german", "--learner", "logistic", "--seeds", "2",
            "--data", str(_data()), "--json", str(out), "--no-progress"]  # fmt: skip
    assert _run(*argv) == 0
    text = capsys.readouterr().out
    assert "german: 1000 rows x 24 features" in text
    assert text.splitlines()[-1].split() == ["majority", "class", "50.00", "50.00", "300"]
    recs = json.loads(out.read_text())
    assert [r["seed"] for r in recs] == [0, 1]
    assert set(recs[0]) == RECORD_KEYS
    assert recs[0]["balanced_accuracy"] > 52.0  # learns (chance is 50)
