"""Studies on tiny data: storages, kill -9 and resume, workers, advice, report, bad input."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from auxlab.study import (  # noqa: E402
    ConfigError,
    StorageError,
    Study,
    StudyConfig,
    log_grid,
    open_storage,
    parse_config,
    recommend_from_rows,
    t_quantile,
)
from auxlab.study._cli import main as cli_main  # noqa: E402

BUILDERS = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import torch
    from torch import nn

    from auxlab import ArrayLoader, Objective
    from auxlab.study import Problem


    class Tiny(nn.Module):
        output_names = ("main", "aux")

        def __init__(self, seed):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.trunk = nn.Linear(4, 6)
            self.head_main = nn.Linear(6, 1)
            self.head_aux = nn.Linear(6, 1)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)

        def forward(self, x):
            h = torch.tanh(self.trunk(x))
            return {"main": self.head_main(h).squeeze(-1), "aux": self.head_aux(h).squeeze(-1)}


    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 4, generator=g)
        z = x[:, 0] - x[:, 1]
        noisy = (z + 0.5 * torch.randn(n, generator=g) > 0).float()
        return x, {"main": noisy, "aux": (z > 0).float()}


    def rendezvous(folder, parties=2, timeout=120.0):
        # Hold this process's first run until `parties` processes have started one: then
        # each of them has taken a run from the queue, whatever their start-up times.
        Path(folder, str(os.getpid())).touch()
        deadline = time.monotonic() + timeout
        while len(os.listdir(folder)) < parties and time.monotonic() < deadline:
            time.sleep(0.02)


    def build(
        seed,
        fail_seed=None,
        sleep=0.0,
        sleep_seed=None,
        constant_val=False,
        with_test=False,
        meet=None,
    ):
        if fail_seed is not None and seed == fail_seed:
            raise RuntimeError("builder failed on purpose")
        if sleep_seed is None or seed == sleep_seed:
            time.sleep(sleep)
        if meet is not None:
            rendezvous(meet)
        model = Tiny(seed)
        x, y = data(64, 0)
        xv, yv = data(48, 1)
        if constant_val:
            yv = {k: torch.zeros_like(v) for k, v in yv.items()}  # AUC is NaN
        objective = Objective(
            {"main": "bce_logits", "aux": "bce_logits"}, metrics={"main": ["auc"]}
        )
        xt, yt = data(40, 2)
        return Problem(
            model,
            objective,
            ArrayLoader(x, y, batch_size=32, shuffle=True, seed=seed),
            ArrayLoader(xv, yv, batch_size=48),
            shared=model.trunk,
            train_eval=ArrayLoader(x, y, batch_size=64),
            optimizer="adam",
            lr=0.01,
            test=ArrayLoader(xt, yt, batch_size=40) if with_test else None,
        )
    """
)


@pytest.fixture
def builders(tmp_path: Path) -> Path:
    folder = tmp_path / "builders"
    folder.mkdir()
    (folder / "tiny_study_builders.py").write_text(BUILDERS)
    return folder


def _study(builders: Path, storage: str | None = None, **kw: Any) -> Study:
    args: dict[str, Any] = {
        "strategies": [{"kind": "fixed", "weights": [0.0, 0.5]}],
        "seeds": [0, 1],
        "epochs": 2,
        "metric": "auc",
        "every": 2,
        "pruning": {"pruner": "none"},
        "base_dir": str(builders),
        "name": "tiny",
    }
    args.update(kw)
    return Study("tiny_study_builders:build", storage=storage, **args)


def _completed_keys(study: Study) -> Counter[tuple[str, int]]:
    return Counter((r["setting"], r["seed"]) for r in study.results() if r["state"] == "COMPLETE")


# ---------------------------------------------------------------------------------------------
# Pure pieces.


def test_log_grid_includes_zero() -> None:
    assert log_grid(0.01, 1.0, 3) == [0.0, 0.01, 0.1, 1.0]
    assert log_grid(0.1, 0.1, 1, zero=False) == [0.1]
    with pytest.raises(ConfigError):
        log_grid(0.0, 1.0, 3)


def _rows(groups: dict[float, list[float]], extra: dict[str, float] | None = None) -> list[dict]:
    rows = []
    for w, values in groups.items():
        for seed, v in enumerate(values):
            row = {
                "state": "COMPLETE",
                "setting": f"fixed:{w!r}",
                "label": f"w={w:g}",
                "kind": "fixed",
                "weight": w,
                "seed": seed,
                "value": v,
            }
            row.update(
                {
                    "ratio/aux": w * 0.8,
                    "cos/aux": 0.3,
                    "conflict/aux": 0.1,
                    "norm/main": 2.0,
                    "norm/aux": 4.0,
                    "gap": 0.1 - 0.05 * w,
                }
            )
            row.update(extra or {})
            rows.append(row)
    return rows


def test_recommend_clear_winner() -> None:
    rows = _rows({0.0: [0.70, 0.71, 0.69], 0.1: [0.74, 0.75, 0.73], 1.0: [0.60, 0.61, 0.59]})
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.1
    assert rec.beats_baseline
    assert rec.mean == pytest.approx(0.74)
    lo, hi = rec.ci
    assert lo < 0.74 < hi
    assert hi - lo < 0.05
    # Pooled sd 0.01 over 6 df: half-width t(0.975, 6)·0.01/√3.
    assert hi - 0.74 == pytest.approx(t_quantile(0.975, 6) * 0.01 / math.sqrt(3))
    assert rec.relative_share == {"aux": pytest.approx(0.1 * 4.0 / 2.0)}
    text = " ".join(rec.reasons)
    assert "RelativeWeights({'aux': 0.2})" in text
    assert "0.08× the main task's" in text  # the measured gradient ratio at w = 0.1
    assert "aligned" in text
    assert "regulariser" in text
    assert "w=0: -0.0400" in text
    assert "w=1: -0.1400" in text


def test_recommend_tie_within_noise_recommends_zero() -> None:
    # Seed by seed, w=0.1 is +0.02, -0.01, +0.05 against weight 0: within the paired noise.
    rows = _rows({0.0: [0.70, 0.75, 0.65], 0.1: [0.72, 0.74, 0.70]})
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.0
    assert not rec.beats_baseline
    assert rec.best_label == "w=0.1"
    assert rec.difference == pytest.approx(0.02)
    assert rec.difference_ci[0] < 0 < rec.difference_ci[1]
    assert "within the noise" in rec.reasons[0]


def test_recommend_nothing_better_than_zero_and_minimize() -> None:
    rows = _rows({0.0: [0.30, 0.31], 0.5: [0.40, 0.41], 2.0: [0.50, 0.52]})
    rec = recommend_from_rows(rows, "loss", "minimize")
    assert rec.weight == 0.0
    assert not rec.beats_baseline
    assert rec.best_label == "w=0"
    assert "No auxiliary weight or strategy beat no auxiliary loss" in rec.reasons[0]
    # The best non-zero weight (0.5; loss is minimised) as a share: 0.5 · 4.0 / 2.0.
    assert any(
        "the best non-zero weight, w=0.5, is RelativeWeights({'aux': 1})" in r for r in rec.reasons
    )


def test_recommend_does_not_read_a_gap_change_within_noise() -> None:
    rows = _rows({0.0: [0.70, 0.71, 0.69], 0.1: [0.74, 0.75, 0.73]})
    # Gaps seed by seed: 0.17, 0.20, 0.23 at weight 0 and 0.16, 0.22, 0.19 at 0.1: the paired
    # differences -0.01, +0.02, -0.04 (mean -0.01) are within their own noise.
    for r, gap in zip(rows, [0.17, 0.20, 0.23, 0.16, 0.22, 0.19], strict=True):
        r["gap"] = gap
    rec = recommend_from_rows(rows, "auc", "maximize")
    d = [-0.01, 0.02, -0.04]
    sd = math.sqrt(sum((x + 0.01) ** 2 for x in d) / 2)
    half = t_quantile(0.975, 2) * sd / math.sqrt(3)
    text = " ".join(rec.reasons)
    assert "a change of -0.0100, within the noise between seeds" in text
    assert f"[{-0.01 - half:+.4f}, {-0.01 + half:+.4f}]" in text
    assert "regulariser" not in text
    # One seed per setting: no estimate of the noise, so no reading either way.
    one = [r for r in rows if r["seed"] == 0]
    text = " ".join(recommend_from_rows(one, "auc", "maximize").reasons)
    assert "the noise between seeds is unknown" in text
    assert "regulariser" not in text


def test_recommend_reports_the_held_out_test_metric() -> None:
    rows = _rows({0.0: [0.70, 0.71], 0.3: [0.80, 0.81]})
    for r in rows:
        r["test"] = 0.6 if r["weight"] == 0.0 else 0.65 + 0.01 * r["seed"]
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.3
    assert any(
        "held-out test split" in r and "auc 0.6550 at w=0.3 against 0.6000 at weight 0" in r
        for r in rec.reasons
    )
    assert [t["test"] for t in rec.table] == [pytest.approx(0.6), pytest.approx(0.655)]


def test_recommend_ignores_failed_and_pruned_and_needs_a_run() -> None:
    rows = _rows({0.0: [0.7, 0.71], 0.1: [0.8, 0.81]})
    rows.append({**rows[-1], "state": "FAIL", "value": float("nan")})
    rows.append({**rows[-1], "state": "PRUNED", "value": 0.1})
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.n_seeds == 2
    row01 = next(t for t in rec.table if t["setting"] == "w=0.1")
    assert row01["failed"] == 1
    assert row01["pruned"] == 1
    with pytest.raises(ValueError, match="no run completed"):
        recommend_from_rows([{**rows[0], "state": "FAIL"}], "auc", "maximize")


# ---------------------------------------------------------------------------------------------
# Studies on each storage.


def test_study_in_memory_results_report(builders: Path, tmp_path: Path) -> None:
    study = _study(
        builders,
        builder_args={"with_test": True},
        description="A tiny synthetic problem.",
        strategies=[
            {"kind": "fixed", "weights": [0.0, 0.5]},
            {"kind": "strategy", "name": "relative", "args": {"shares": {"aux": 0.2}}},
            {"kind": "schedule", "schedule": "anneal_to_zero", "args": {"value": 0.5, "steps": 4}},
            {"kind": "search", "low": 0.01, "high": 2.0, "trials": 1},
        ],
    )
    study.run()
    rows = study.results()
    assert len(rows) == 5 * 2  # 2 weights, a strategy, a schedule, a searched weight; 2 seeds
    assert all(r["state"] == "COMPLETE" for r in rows)
    assert set(_completed_keys(study).values()) == {1}
    search = [r for r in rows if r["kind"] == "search"]
    assert len({r["weight"] for r in search}) == 1
    assert {r["seed"] for r in search} == {0, 1}
    zero = next(r for r in rows if r["weight"] == 0.0)
    assert zero["ratio/aux"] == 0.0
    assert zero["norm/main"] > 0
    assert math.isfinite(zero["cos/aux"])
    assert "gap" in zero
    # The test split is scored once per run, with the best validation epoch's weights.
    for r in rows:
        assert r["test"] == r["test_main_auc"]
        assert 0.0 <= r["test"] <= 1.0
        assert r["test_loss_aux"] > 0
    csv_path = study.to_csv(tmp_path / "r.csv")
    assert len(csv_path.read_text().strip().splitlines()) == 11
    rec = study.recommend()
    assert rec.n_seeds == 2
    assert rec.reasons
    out = tmp_path / "report"
    page = study.report(out)
    html = page.read_text()
    assert "Recommendation" in html
    assert "Settings compared" in html
    assert "A tiny synthetic problem." in html
    assert "test" in rec.table[0]
    for png in (
        "metric_by_weight",
        "test_by_weight",
        "learning_curves",
        "gradient_flow",
        "alignment_influence",
        "gap_by_weight",
    ):
        f = out / f"{png}.png"
        assert f.exists(), png
        assert f.stat().st_size > 2000, png
        assert f'src="{png}.png"' in html
    # Running again does nothing: everything is done.
    study.run()
    assert len(study.results()) == 10


@pytest.mark.parametrize("suffix", [".db", ".log"])
def test_file_storage_resumes_without_rerunning(
    builders: Path, tmp_path: Path, suffix: str
) -> None:
    storage = str(tmp_path / f"study{suffix}")
    first = _study(builders, storage, max_trials=2).run()
    assert sum(_completed_keys(first).values()) == 2
    again = _study(builders, storage).run()
    keys = _completed_keys(again)
    assert len(keys) == 4
    assert set(keys.values()) == {1}
    assert [r["trial"] for r in again.results()] == [0, 1, 2, 3]
    # The queue was enqueued once: no WAITING trial is left, no extra trial exists.
    assert len(again._study.get_trials()) == 4


def test_changed_configuration_is_refused(builders: Path, tmp_path: Path) -> None:
    storage = str(tmp_path / "s.db")
    _study(builders, storage, max_trials=1).run()
    with pytest.raises(Exception, match="was created with seeds"):
        _study(builders, storage, seeds=[0, 1, 2])


def test_builder_error_and_nan_metric_are_recorded(builders: Path) -> None:
    study = _study(builders, builder_args={"fail_seed": 1}).run()
    rows = study.results()
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert {r["seed"] for r in failed} == {1}
    assert len(failed) == 2
    assert all("builder failed on purpose" in r["error"] for r in failed)
    assert sum(r["state"] == "COMPLETE" for r in rows) == 2  # the study went on
    nan = _study(builders, name="nan", builder_args={"constant_val": True}).run()
    rows = nan.results()
    assert rows
    assert all(r["state"] == "FAIL" for r in rows)
    assert "val_main_auc' is nan at epoch 1" in rows[0]["error"]
    with pytest.raises(ValueError, match="no run completed"):
        nan.recommend()


def test_unreachable_storage_url(builders: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot open the study storage postgresql://u:\*\*\*"):
        _study(builders, "postgresql://u:secret@127.0.0.1:9/nowhere")
    with pytest.raises(StorageError, match="does not exist"):
        _study(builders, "/nonexistent/dir/study.db")


# ---------------------------------------------------------------------------------------------
# Worker processes.


def _worker(storage: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "auxlab.study._worker",
            "--storage",
            storage,
            "--quiet",
            "--threads",
            "1",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_worker_then_resume(builders: Path, tmp_path: Path) -> None:
    storage = str(tmp_path / "kill.db")
    # Runs of seed 0 are instant, runs of seed 1 wait 2 minutes: the worker finishes trial 0
    # (w=0, seed 0) and is killed while it runs trial 1 (w=0, seed 1).
    study = _study(builders, storage, builder_args={"sleep": 120.0, "sleep_seed": 1}).prepare()
    proc = _worker(storage)
    ts = optuna.trial.TrialState
    deadline = time.monotonic() + 120
    victim = None
    try:
        while time.monotonic() < deadline:
            trials = study._study.get_trials(deepcopy=False)
            done = [t for t in trials if t.state == ts.COMPLETE]
            running = [t for t in trials if t.state == ts.RUNNING and "worker" in t.user_attrs]
            if done and running:
                victim = running[0].number
                break
            if proc.poll() is not None:
                pytest.fail(f"the worker exited: {proc.communicate()[1].decode()}")
            time.sleep(0.05)
        assert victim is not None, "the worker never had a finished and a running trial"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps the process and closes its pipe
    assert proc.returncode == -signal.SIGKILL
    before = {t.number for t in study._study.get_trials() if t.state == ts.COMPLETE}
    resumed = _study(builders, storage, builder_args={"sleep": 0.0}).run()
    keys = _completed_keys(resumed)
    assert len(keys) == 4
    assert set(keys.values()) == {1}
    rows = {r["trial"]: r for r in resumed.results()}
    assert rows[victim]["state"] == "FAIL"
    assert "died" in rows[victim]["error"]
    assert before <= {n for n, r in rows.items() if r["state"] == "COMPLETE"}


@pytest.mark.parametrize("suffix", [".log"])
def test_two_workers_share_one_study(builders: Path, tmp_path: Path, suffix: str) -> None:
    storage = str(tmp_path / f"two{suffix}")
    meet = tmp_path / "meet"
    meet.mkdir()
    # Each worker's first run waits until the other has started one, so both take part
    # however long each takes to start (no sleeps to tune). The workers are a worker process
    # and this test's process (as in Study.run(workers=n), which works too): one interpreter
    # start instead of two, which is most of the time on a loaded machine.
    study = _study(
        builders,
        storage,
        strategies=[{"kind": "fixed", "weights": [0.0, 0.2, 1.0]}],
        builder_args={"meet": str(meet)},
    ).prepare()
    proc = _worker(storage)
    try:
        study.work()
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert len(os.listdir(meet)) == 2
    keys = _completed_keys(study)
    assert len(keys) == 6
    assert set(keys.values()) == {1}
    workers = {r["worker"] for r in study.results()}
    assert len(workers) == 2  # both took part


@pytest.mark.skipif(
    not os.environ.get("AUXLAB_TEST_POSTGRES_URL"),
    reason="set AUXLAB_TEST_POSTGRES_URL=postgresql://... (e.g. from .ci/postgres.sh) to run",
)
def test_postgres_study_with_two_workers(builders: Path, tmp_path: Path) -> None:
    url = os.environ["AUXLAB_TEST_POSTGRES_URL"]
    name = f"pg-{os.getpid()}-{time.time_ns()}"
    meet = tmp_path / "meet"
    meet.mkdir()
    study = _study(builders, url, name=name, builder_args={"meet": str(meet)}).prepare()
    proc = _worker(url, "--name", name)  # the other worker is this process
    try:
        study.work()
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert len(os.listdir(meet)) == 2
    keys = _completed_keys(study)
    assert len(keys) == 4
    assert set(keys.values()) == {1}
    assert len({r["worker"] for r in study.results()}) == 2  # both took part
    assert study.recommend().n_seeds == 2
    optuna.delete_study(study_name=name, storage=open_storage(url))


# ---------------------------------------------------------------------------------------------
# Configuration files and the command line.

GOOD = """\
[study]
name = "cli"
builder = "tiny_study_builders:build"
seeds = [0, 1]
epochs = 2
metric = "auc"
every = 2

[pruning]
pruner = "none"

[[strategies]]
kind = "fixed"
weights = [0, 0.5]
"""


def test_config_errors_name_the_key_and_line() -> None:
    bad = GOOD.replace('metric = "auc"', 'metric = "auc"\nepoch = 3')
    with pytest.raises(ConfigError, match=r"c.toml, line 7: unknown key 'epoch' in \[study\]"):
        parse_config(bad, "c.toml")
    bad = GOOD.replace("epochs = 2", 'epochs = "2"')
    with pytest.raises(ConfigError, match=r"line 5: 'epochs' in \[study\] must be an integer"):
        parse_config(bad, "c.toml")
    bad = GOOD + '\n[[strategies]]\nkind = "fixed"\nweights = [0.1, "x"]\n'
    with pytest.raises(ConfigError, match=r"line 18: 'weights' in \[\[strategies\]\] #2"):
        parse_config(bad, "c.toml")
    bad = GOOD.replace("[pruning]", "[prunning]")
    with pytest.raises(ConfigError, match="line 9: unknown key or table 'prunning'"):
        parse_config(bad, "c.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[study\n", "c.toml")
    cfg = parse_config(GOOD)
    assert isinstance(cfg, StudyConfig)
    assert cfg.seeds == [0, 1]


def test_unknown_strategy_name_is_a_config_error(builders: Path) -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        _study(builders, strategies=[{"kind": "strategy", "name": "nope"}])


def test_cli_runs_a_study_and_reports_errors(
    builders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = builders / "c.toml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    code = cli_main(
        ["study", str(config), "--storage", str(tmp_path / "c.db"), "--out", str(out), "--quiet"]
    )
    assert code == 0
    assert (out / "report.html").stat().st_size > 0
    assert len((out / "results.csv").read_text().splitlines()) == 5
    assert "Recommendation:" in (out / "recommendation.txt").read_text()
    config.write_text(GOOD.replace("epochs = 2", "epochs = 2.5"))
    assert cli_main(["study", str(config)]) == 2
    assert "line 5: 'epochs' in [study] must be an integer" in capsys.readouterr().err
    assert cli_main(["study", "worker"]) == 2
