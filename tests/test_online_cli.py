"""``auxlab online`` (``auxlab.online._cli``): parsing, a run on the real data, JSON output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from auxlab.online import _cli


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="auxlab")
    sub = ap.add_subparsers(dest="command")
    _cli.add_parser(sub)
    return ap


def _data() -> Path | None:
    env = os.environ.get("AUXLAB_HAPHAZARD_DATA")
    here = Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"
    for root in ([Path(env)] if env else []) + [here]:
        if (root / "german" / "german.data-numeric").is_file():
            return root
    return None


def test_parser_defaults_and_the_model_alias():
    args = _parser().parse_args(["online", "--dataset", "ipd", "--model", "hbp"])
    assert (args.learner, args.p, args.seeds, args.faithful) == ("hbp", 0.5, 3, "ours")
    with pytest.raises(SystemExit):
        _parser().parse_args(["online", "--dataset", "ipd", "--p", "0"])


def test_missing_data_is_an_error_exit(tmp_path, capsys):
    args = _parser().parse_args(["online", "--dataset", "german", "--data", str(tmp_path)])
    assert _cli.run(args) == 1
    assert "german" in capsys.readouterr().err


@pytest.mark.skipif(_data() is None, reason="haphazard data folder not found")
def test_runs_on_german_and_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["online", "--dataset", "german", "--learner", "logistic", "--seeds", "2",
            "--data", str(_data()), "--json", str(out)]  # fmt: skip
    assert _cli.run(_parser().parse_args(argv)) == 0
    text = capsys.readouterr()
    assert "majority class: balanced accuracy 50.00, errors 300" in text.out
    assert "1000/1000" in text.err  # the progress bar reached the end
    recs = json.loads(out.read_text())
    assert [r["seed"] for r in recs] == [0, 1]
    assert recs[0]["metrics"]["balanced_accuracy"] > 52.0  # learns (chance is 50)
