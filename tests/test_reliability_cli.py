"""Nothing lost: the commands' outputs, interrupts, failed runs and storages (issue 15).

Each test here failed on the code before the fix: outputs checked only after training,
overwritten without notice, Ctrl-C as a traceback that lost the demo's runs, partial and
failed studies that exited 0, storages that were created or misread instead of refused.
"""

from __future__ import annotations

import gzip
import os
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")

from auxlab.cli import main

BUILDER = textwrap.dedent(
    """
    from pathlib import Path

    import torch
    from torch import nn

    from auxlab import ArrayLoader, Objective
    from auxlab.study import Problem


    class Tiny(nn.Module):
        output_names = ("main", "aux")

        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.trunk = nn.Linear(3, 4)
            self.head_main = nn.Linear(4, 1)
            self.head_aux = nn.Linear(4, 1)

        def forward(self, x):
            h = torch.tanh(self.trunk(x))
            return {"main": self.head_main(h).squeeze(-1), "aux": self.head_aux(h).squeeze(-1)}


    def build(seed, log=None, fail_if=None, interrupt_if=None, sleep_if=None):
        if log is not None:
            with open(log, "a") as f:
                f.write(f"{seed}\\n")
        if fail_if is not None and seed == 1 and Path(fail_if).exists():
            raise RuntimeError("builder failed on purpose")
        if interrupt_if is not None and seed == 1 and Path(interrupt_if).exists():
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a run
        if sleep_if is not None and seed == 1 and Path(sleep_if).exists():
            import time

            time.sleep(60)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 3, generator=g)
        y = {"main": (x[:, 0] > 0).float(), "aux": (x[:, 1] > 0).float()}
        model = Tiny(seed)
        losses = {"main": "bce_logits", "aux": "bce_logits"}
        objective = Objective(losses, metrics={"main": ["auc"]})
        return Problem(
            model, objective, ArrayLoader(x, y, batch_size=16), ArrayLoader(x, y, batch_size=32),
            shared=model.trunk, optimizer="adam", lr=0.01,
        )
    """
)

CONFIG = """\
[study]
name = "rel"
builder = "{builder}"
seeds = [0, 1]
epochs = 1
metric = "auc"
every = 1
{extra}
[pruning]
pruner = "none"

[[strategies]]
kind = "fixed"
weights = [0, 0.5]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rel_builders.py").write_text(BUILDER)
    return tmp_path


def _config(folder: Path, builder: str = "rel_builders:build", **args: Any) -> Path:
    extra = ""
    if args:
        lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in args.items()]
        extra = "\n[builder_args]\n" + "\n".join(lines) + "\n"
    path = folder / "c.toml"
    path.write_text(CONFIG.format(builder=builder, extra=extra))
    return path


def _built(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def _study(*argv: str) -> int:
    return main(["study", *argv, "--quiet"])


# -- --out checked before training -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_study_out_that_cannot_be_a_folder_is_refused_before_any_run(
    folder: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = folder / "built.txt"
    config = _config(folder, log=str(log))
    blocker = folder / "taken"
    blocker.write_text("a file")
    out = blocker if where == "file" else blocker / "sub"
    assert _study(str(config), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "auxlab study: --out" in err
    assert ("is a file" if where == "file" else "lies under") in err
    assert _built(log) == []  # no run trained
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_study_out_that_cannot_be_written_is_refused(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert _study(str(_config(folder)), "--out", str(locked / "out")) == 2
    finally:
        locked.chmod(0o700)
    assert "cannot write there" in capsys.readouterr().err


def test_demo_out_that_is_a_file_is_refused_before_loading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import auxlab.demo

    def no_data(*a: Any, **k: Any) -> Any:
        raise AssertionError("the data were loaded")

    monkeypatch.setattr(auxlab.demo, "_tweets", no_data)
    out = tmp_path / "f"
    out.write_text("x")
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "auxlab demo: --out" in capsys.readouterr().err


def test_online_json_and_rl_out_are_checked_before_learning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["online", "--json", str(blocker / "r.json"), "--no-progress"]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["online", "--json", str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err
    pytest.importorskip("gymnasium")
    argv = ["rl", "--quick", "--env", "CartPole-v1", "--no-plot", "--no-progress"]
    assert main([*argv, "--out", str(blocker)]) == 2
    assert "auxlab rl: --out" in capsys.readouterr().err
    assert main([*argv, "--json", str(blocker / "r.json")]) == 2
    assert "lies under" in capsys.readouterr().err


# -- an existing --out -----------------------------------------------------------------------------


def test_existing_out_is_refused_then_replaced_whole_with_overwrite(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(folder)
    out = folder / "out"
    assert _study(str(config), "--out", str(out)) == 0
    assert (out / "report.html").exists()
    capsys.readouterr()
    assert _study(str(config), "--out", str(out), "--no-report") == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "report.html").exists()
    assert _study(str(config), "--out", str(out), "--no-report", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["recommendation.txt", "results.csv"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".out.")]  # no temp left


def test_interrupt_while_writing_keeps_the_old_outputs_whole(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auxlab.study._study import Study

    config = _config(folder)
    out = folder / "out"
    storage = str(folder / "s.log")
    assert _study(str(config), "--out", str(out), "--storage", storage) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def interrupted_report(self: Any, out: Any, level: float = 0.95) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Study, "report", interrupted_report)
    assert _study(str(config), "--out", str(out), "--storage", storage, "--overwrite") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".out.")]


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_in_a_study_is_one_line_and_the_finished_runs_resume(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = folder / "built.txt"
    storage = str(folder / "s.db")
    out = str(folder / "out")
    flag = folder / "interrupt"
    flag.touch()
    config = _config(folder, log=str(log), interrupt_if=str(flag))
    assert _study(str(config), "--storage", storage, "--out", out) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"auxlab study: interrupted; 1 finished runs are kept in {storage}; run the same "
        "command again to resume"
    ]
    assert not Path(out).exists()
    flag.unlink()  # the same command again
    assert _study(str(config), "--storage", storage, "--out", out) == 0
    built = _built(log)  # weight 0 seed 0 ran once; the interrupted run and the rest after it
    assert built[:2] == [0, 1]
    assert sorted(built[2:]) == [0, 1, 1]
    rows = (Path(out) / "results.csv").read_text().splitlines()
    assert len(rows) == 5
    assert all(",COMPLETE," in r for r in rows[1:])


def test_sigint_to_a_study_process_ends_it_in_one_line(folder: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    log = folder / "built.txt"
    flag = folder / "sleep"
    flag.touch()
    config = _config(folder, log=str(log), sleep_if=str(flag))
    storage = str(folder / "s.log")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "auxlab.cli", "study", str(config), "--storage", storage]
    proc = subprocess.Popen(
        [*cmd, "--quiet", "--out", str(folder / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while _built(log) != [0, 1] and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the second run sleeps in its builder
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("auxlab study: interrupted; 1 finished runs")


def test_ctrl_c_in_the_demo_keeps_its_runs_in_its_folder(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import auxlab.demo
    from auxlab.study import load_config

    log = folder / "built.txt"
    flag = folder / "interrupt"
    flag.touch()
    config = load_config(_config(folder, log=str(log), interrupt_if=str(flag)))
    config.name = "auxlab-demo"
    monkeypatch.setattr(auxlab.demo.DemoConfig, "study_config", lambda self: config)
    monkeypatch.setattr(auxlab.demo, "_tweets", lambda *a: None)
    monkeypatch.setattr(auxlab.demo, "_description", lambda *a: "tiny")
    out = folder / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--no-tune"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "kept in" in err[0]
    assert "runs.log" in err[0]
    assert (out / "runs.log").exists()
    args = dict(config.builder_args)
    config.builder_args = {**args, "log": str(folder / "other.txt")}
    assert (
        main(["demo", "--out", str(out), "--no-progress", "--no-tune"]) == 2
    )  # other settings: refused
    assert "pass --overwrite to start over" in capsys.readouterr().err
    config.builder_args = args
    flag.unlink()  # a rerun resumes
    assert main(["demo", "--out", str(out), "--no-progress", "--no-tune"]) == 0
    built = _built(log)
    assert built[:2] == [0, 1]
    assert sorted(built[2:]) == [0, 1, 1]
    assert (out / "report.html").exists()
    assert (out / "runs.log").exists()
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--no-progress", "--no-tune"]) == 2  # finished: refused
    assert "--overwrite" in capsys.readouterr().err


# -- two processes, failed runs --------------------------------------------------------------------


def test_a_run_still_running_elsewhere_makes_the_results_partial(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auxlab.study import Study, load_config

    config = _config(folder)
    storage = str(folder / "s.log")
    other = Study(config=load_config(config), storage=storage).prepare()
    taken = other._study.ask()  # another live process (our parent) runs this one
    taken.set_user_attr("worker", f"{socket.gethostname()}:{os.getppid()}")
    out = folder / "out"
    assert _study(str(config), "--storage", storage, "--out", str(out), "--wait", "0.2") == 1
    assert "partial" in capsys.readouterr().err
    assert (out / "recommendation.txt").read_text().startswith("PARTIAL: 1 of 4 runs")
    assert ",RUNNING," in (out / "results.csv").read_text()
    assert "PARTIAL: 1 run(s) were not finished" in (out / "report.html").read_text()


def test_failed_runs_exit_1_and_run_again_once_fixed(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = folder / "broken"
    flag.touch()
    config = _config(folder, fail_if=str(flag))
    storage = str(folder / "s.db")
    out = str(folder / "out")
    assert _study(str(config), "--storage", storage, "--out", out) == 1
    assert "2 run(s) failed" in capsys.readouterr().err
    flag.unlink()  # the cause fixed: the same command runs the failed runs again
    assert _study(str(config), "--storage", storage, "--out", out, "--overwrite") == 0
    rows = (Path(out) / "results.csv").read_text().splitlines()[1:]
    assert len(rows) == 4
    assert all(",COMPLETE," in r for r in rows)


def test_a_corrected_config_runs_the_failed_study_again(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = str(folder / "s.log")
    out = str(folder / "out")
    config = _config(folder)
    config.write_text(config.read_text().replace('metric = "auc"', 'metric = "aucc"'))
    assert _study(str(config), "--storage", storage, "--out", out) == 1
    assert "4 run(s) failed" in capsys.readouterr().err
    config = _config(folder)  # the metric corrected: no run finished, so the study takes it
    assert _study(str(config), "--storage", storage, "--out", out, "--overwrite") == 0
    rows = (Path(out) / "results.csv").read_text().splitlines()[1:]
    assert len(rows) == 4
    assert all(",COMPLETE," in r for r in rows)


def test_a_builder_or_lr_that_cannot_work_is_refused_before_any_run(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _study(str(_config(folder, "rel_builders:nope"))) == 2
    assert "has no 'nope'" in capsys.readouterr().err
    for lr in ("nan", "-1.0", "0.0"):
        config = _config(folder)
        config.write_text(config.read_text().replace("every = 1", f"every = 1\nlr = {lr}"))
        assert _study(str(config)) == 2
        assert "lr must be a finite number > 0" in capsys.readouterr().err
    assert not list(folder.glob("study-*"))


# -- storages --------------------------------------------------------------------------------------


def test_worker_refuses_a_storage_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("missing.log", "missing.db"):
        assert main(["study", "worker", "--storage", str(tmp_path / name)]) == 2
        assert "there is no study storage" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    (tmp_path / "empty.log").touch()
    assert main(["study", "worker", "--storage", str(tmp_path / "empty.log")]) == 2
    assert "holds no study yet: start one with `auxlab study" in capsys.readouterr().err


def test_foreign_or_cut_journal_is_a_clear_error(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = folder / "notes.log"
    foreign.write_text("hello\nworld\n")
    assert main(["study", "worker", "--storage", str(foreign)]) == 2
    assert "is not an Optuna journal" in capsys.readouterr().err
    journal = folder / "s.log"
    assert _study(str(_config(folder)), "--storage", str(journal), "--out", str(folder / "o")) == 0
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 7])
    assert _study(str(_config(folder)), "--storage", str(journal), "--out", str(folder / "p")) == 2
    err = capsys.readouterr().err
    assert "cut mid-record" in err
    assert "delete its incomplete or broken lines" in err
    sqlite = folder / "x.db"
    sqlite.write_bytes(b"\x00\x01 not sqlite" * 10)
    assert main(["study", "worker", "--storage", str(sqlite)]) == 2
    assert "another kind of file" in capsys.readouterr().err


def test_sqlite_creation_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from auxlab.study._storage import open_storage

    real = optuna.storages.RDBStorage
    calls = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # what the second of two creators sees
            raise RuntimeError("(sqlite3.IntegrityError) UNIQUE constraint failed: alembic_version")
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = open_storage(str(tmp_path / "new.db"))
    monkeypatch.undo()
    assert optuna.get_all_study_summaries(storage) == []
    assert len(calls) == 2


# -- raw tracebacks --------------------------------------------------------------------------------


def test_binary_or_gzip_toml_is_a_config_error(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(folder)
    packed = folder / "c.toml.gz"
    packed.write_bytes(gzip.compress(config.read_bytes()))
    assert _study(str(packed)) == 2
    assert "is gzip-compressed: give a TOML text file" in capsys.readouterr().err
    binary = folder / "b.toml"
    binary.write_bytes(b"name = \xff\xfe\n")
    assert _study(str(binary)) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


def test_rl_without_its_extra_is_one_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import auxlab._optional as optional

    real = optional.require

    def missing(module: str, extra: str, feature: str | None = None) -> Any:
        if module == "gymnasium":
            raise optional.MissingDependencyError(
                "auxlab rl needs the extra 'rl': pip install 'auxlab[rl]'"
            )
        return real(module, extra, feature)

    monkeypatch.setattr(optional, "require", missing)
    assert main(["rl", "--quick", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "auxlab rl: auxlab rl needs the extra 'rl': pip install 'auxlab[rl]'"


# -- bad values on every command -------------------------------------------------------------------

BAD_ARGV = [
    # demo
    ["demo", "--seeds", "0"],
    ["demo", "--seeds", "-1"],
    ["demo", "--epochs", "0"],
    ["demo", "--epochs", "nan"],
    ["demo", "--weights", "nan"],
    ["demo", "--weights", "-0.2"],
    ["demo", "--weights", "0,0"],
    ["demo", "--threads", "0"],
    # study
    ["study", "missing.toml"],
    ["study", "worker"],
    ["study", "c.toml", "--workers", "0"],
    ["study", "c.toml", "--threads", "-2"],
    ["study", "c.toml", "--wait", "nan"],
    ["study", "c.toml", "--wait", "-1"],
    ["study", "c.toml", "--name="],
    # online
    ["online", "--seeds", "0"],
    ["online", "--rows", "-5"],
    ["online", "--p", "nan"],
    ["online", "--p", "2"],
    ["online", "--learner", "nope"],
    ["online", "--dataset", "nope"],
    # rl
    ["rl", "--seeds", "0"],
    ["rl", "--steps", "-1"],
    ["rl", "--weight", "nan"],
    ["rl", "--weight", "-1"],
    ["rl", "--aux", "nope"],
    ["rl", "--set", "lr"],
    ["rl", "--set", "bogus=1"],
    # strategies
    ["strategies", "--bogus"],
    ["nope"],
]


@pytest.mark.parametrize("argv", BAD_ARGV, ids=[" ".join(a) for a in BAD_ARGV])
def test_bad_values_are_usage_errors(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    if "c.toml" in argv:
        _config(tmp_path)
        (tmp_path / "rel_builders.py").write_text(BUILDER)
    try:
        code = main([*argv, "--no-progress"] if argv[0] in ("online", "rl") else argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()
