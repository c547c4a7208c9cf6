"""A study's set-up: task names checked before any run; resuming under another pruner."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("scipy")

from auxlab.study import ConfigError, Study  # noqa: E402
from auxlab.study._errors import StudyError  # noqa: E402
from auxlab.study._study import _stored_pruner  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "_test_study_helpers", Path(__file__).with_name("test_study.py")
)
assert _spec is not None
assert _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)


@pytest.fixture
def builders(tmp_path: Path) -> Path:
    folder = tmp_path / "builders"
    folder.mkdir()
    (folder / "tiny_study_builders.py").write_text(_helpers.BUILDERS)
    return folder


def _study(builders: Path, storage: str | None = None, **kw: Any) -> Study:
    args: dict[str, Any] = {
        "strategies": [{"kind": "fixed", "weights": [0.0, 0.5]}],
        "seeds": [0, 1],
        "epochs": 2,
        "metric": "auc",
        "every": 2,
        "base_dir": str(builders),
        "name": "tiny",
    }
    args.update(kw)
    return Study("tiny_study_builders:build", storage=storage, **args)


# ---------------------------------------------------------------------------------------------
# Task names that the builder's objective does not have: an error before any run.


@pytest.mark.parametrize(
    ("spec", "unknown"),
    [
        ({"kind": "strategy", "name": "relative", "args": {"shares": {"spam": 0.2}}}, "spam"),
        ({"kind": "strategy", "name": "fixed", "args": {"weights": {"likes": 0.3}}}, "likes"),
        ({"kind": "fixed", "weights": [0.1], "aux": ["spam"]}, "spam"),
    ],
)
def test_unknown_task_names_stop_the_study_before_any_run(
    builders: Path, spec: dict[str, Any], unknown: str
) -> None:
    # Was: every run of the setting failed when it started (the study went on and recorded
    # one error per seed); now the set-up names the task, the known ones and the fix.
    study = _study(builders, strategies=[{"kind": "fixed", "weights": [0.0]}, spec])
    with pytest.raises(ConfigError) as info:
        study.run()
    text = str(info.value)
    assert f"'{unknown}'" in text
    assert "['main', 'aux']" in text
    assert "main 'main'" in text
    assert "shares = { aux = 0.2 }" in text
    assert study._study.get_trials() == []  # nothing ran, nothing was enqueued


def test_known_task_names_and_a_failing_builder_pass_the_check(builders: Path) -> None:
    ok = _study(
        builders,
        strategies=[
            {"kind": "fixed", "weights": [0.0]},
            {"kind": "strategy", "name": "relative", "args": {"shares": {"aux": 0.2}}},
        ],
        seeds=[0],
        epochs=1,
    )
    assert ok.check_tasks() == ("main", "aux")
    # The problem built for the check is the first run's (no second build), with the same
    # results as a study that builds every run itself.
    assert ok._runner.spare is not None
    assert ok._runner.spare[0] == 0
    ok.run()
    assert ok._runner.spare is None
    plain = _study(builders, name="plain", strategies=ok.config.strategies, seeds=[0], epochs=1)
    plain.prepare().work()
    assert [r["value"] for r in ok.results()] == [r["value"] for r in plain.results()]
    # A builder that fails is left to the runs, which record its error.
    failing = _study(builders, name="f", builder_args={"fail_seed": 0}, seeds=[0])
    assert failing.check_tasks() is None


# ---------------------------------------------------------------------------------------------
# Resuming a study stored with the old default pruner ("median").


def _prune_one(study: Study) -> None:
    """Record a pruned run of (w=0.5, seed 1), as the median pruner would have."""
    ts = optuna.trial.TrialState
    study._study.add_trial(
        optuna.trial.create_trial(
            state=ts.PRUNED,
            value=None,
            intermediate_values={0: 0.4},
            user_attrs={"setting": "fixed:0.5", "seed": 1, "epochs": []},
        )
    )


def test_resume_under_another_pruner_refuses_to_mix_pruned_runs(
    builders: Path, tmp_path: Path
) -> None:
    storage = str(tmp_path / "old.db")
    old = _study(builders, storage, pruning={"pruner": "median"}, max_trials=1).run()
    _prune_one(old)
    # Was: resumed silently with no pruning; the pruned seed stayed pruned next to complete ones.
    with pytest.raises(StudyError) as info:
        _study(builders, storage)
    text = str(info.value)
    assert "pruner = 'median'" in text
    assert "stopped 1 of its 2 finished runs" in text
    assert "mix pruned and unpruned runs" in text
    assert '[pruning] pruner = "median"' in text
    assert "--name" in text
    # The stored pruner, asked for again, resumes.
    again = _study(builders, storage, pruning={"pruner": "median"}).run()
    assert type(again._pruner()).__name__ == "MedianPruner"


def test_resume_under_another_pruner_without_pruned_runs_adopts_it(
    builders: Path, tmp_path: Path
) -> None:
    storage = str(tmp_path / "none.db")
    _study(builders, storage, pruning={"pruner": "median"}, max_trials=1).run()
    study = _study(builders, storage).run()  # nothing was pruned: nothing to mix
    assert all(r["state"] == "COMPLETE" for r in study.results())
    assert len(study.results()) == 4
    # Workers that join read the pruner from the storage: the new one.
    assert Study.load(storage).config.pruning["pruner"] == "none"


def test_stored_pruner_of_a_configuration_without_one_is_the_old_default() -> None:
    assert _stored_pruner({}) == "median"
    assert _stored_pruner({"pruning": {"pruner": "none"}}) == "none"
    assert _stored_pruner({"pruning": {"startup_trials": 4}}) == "median"
