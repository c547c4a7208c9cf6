"""A study sets torch's intra-op threads as configured, in-process and in its workers."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("optuna")

from auxlab.cli import main as cli_main
from auxlab.study import Study

# The builder writes the thread count torch has while it builds the run's problem, inside the
# study's trial, to the file `record`; training follows in the same process and threads.
BUILDERS = textwrap.dedent(
    """
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


    def build(seed, record=None):
        if record is not None:
            with open(record, "a") as f:
                f.write(f"{torch.get_num_threads()}\\n")
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 3, generator=g)
        y = {"main": x[:, 0].clone(), "aux": x[:, 1].clone()}
        model = Tiny(seed)
        return Problem(
            model,
            Objective({"main": "mse", "aux": "mse"}),
            ArrayLoader(x, y, batch_size=16),
            ArrayLoader(x, y, batch_size=16),
            shared=model.trunk,
        )
    """
)

CONFIG = """\
[study]
name = "threads"
builder = "thread_study_builders:build"
seeds = [0]
epochs = 1
every = 1
{threads}
[builder_args]
record = "{record}"

[pruning]
pruner = "none"

[[strategies]]
kind = "fixed"
weights = [0]
"""


@pytest.fixture(autouse=True)
def busy_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torch starts at 3 threads (not what any test asks for) and is restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "thread_study_builders.py").write_text(BUILDERS)
    return tmp_path


def _seen(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()]


def _config(folder: Path, threads: str = "") -> Path:
    path = folder / "study.toml"
    record = folder / "threads.txt"
    path.write_text(CONFIG.format(threads=threads, record=record.as_posix()))
    return path


def _study(folder: Path, **kw: Any) -> Study:
    return Study(
        "thread_study_builders:build",
        [{"kind": "fixed", "weights": [0.0]}],
        seeds=[0, 1],
        epochs=1,
        every=1,
        pruning={"pruner": "none"},
        base_dir=str(folder),
        builder_args={"record": str(folder / "threads.txt")},
        **kw,
    )


def test_in_process_study_uses_the_configured_threads_and_restores(folder: Path) -> None:
    _study(folder, threads=1).run()
    assert _seen(folder / "threads.txt") == [1, 1]
    assert torch.get_num_threads() == 3  # the caller's count is back


def test_run_threads_argument_wins_and_default_is_one(folder: Path) -> None:
    _study(folder, threads=1, name="a").run(threads=2)
    assert _seen(folder / "threads.txt") == [2, 2]
    (folder / "threads.txt").unlink()
    _study(folder, name="b").run()  # no threads, no OMP_NUM_THREADS: auxlab's default
    assert _seen(folder / "threads.txt") == [1, 1]


def test_omp_num_threads_is_the_default(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    _study(folder).run()
    assert _seen(folder / "threads.txt") == [2, 2]


def test_bad_threads_is_a_config_error(folder: Path) -> None:
    from auxlab.study import ConfigError

    with pytest.raises(ConfigError, match="threads must be an integer >= 1, got 0"):
        _study(folder, threads=0)


def test_cli_prints_the_thread_line_first_and_obeys_the_toml(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(folder, threads="threads = 1")
    out = folder / "out"
    assert cli_main(["study", str(config), "--out", str(out), "--quiet", "--no-report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "torch threads: 1 (as asked)"
    assert "Recommendation" in "\n".join(lines[1:])
    assert _seen(folder / "threads.txt") == [1]


def test_cli_threads_flag_and_default(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(folder, threads="threads = 1")
    out = str(folder / "out")
    args = ["study", str(config), "--out", out, "--quiet", "--no-report", "--overwrite"]
    assert cli_main([*args, "--threads", "2", "--name", "flag"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "torch threads: 2 (as asked)"
    config = _config(folder)
    assert cli_main([*args, "--name", "default"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "torch threads: 1 (auxlab's default; --threads N to change)"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cli_main([*args, "--name", "env"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "torch threads: 2 (from OMP_NUM_THREADS)"
    assert _seen(folder / "threads.txt") == [2, 1, 2]


def test_worker_prints_the_thread_line_first_and_uses_the_stored_threads(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = str(tmp_path / "w.db")
    _study(folder, storage=storage, threads=1).prepare()
    assert cli_main(["study", "worker", "--storage", storage, "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "torch threads: 1 (as asked)"
    assert _seen(folder / "threads.txt") == [1, 1]


class _FakeProcess:
    def __init__(self, cmd: list[str], seen: list[list[str]]) -> None:
        seen.append(cmd)

    def wait(self) -> int:
        return 0


@pytest.mark.parametrize(("env", "expected"), [(None, "1"), ("2", "2")])
def test_spawned_workers_get_the_resolved_count(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    expected: str,
) -> None:
    import auxlab.study._spawn as study_module

    if env is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    cmds: list[list[str]] = []
    monkeypatch.setattr(
        study_module.subprocess, "Popen", lambda cmd: _FakeProcess(cmd, cmds), raising=True
    )
    # The fake workers do nothing; this process then runs every run itself.
    _study(folder, storage=str(tmp_path / "s.db")).run(workers=2)
    assert len(cmds) == 2
    for cmd in cmds:
        assert cmd[cmd.index("--threads") + 1] == expected
        assert "--no-thread-line" in cmd  # the study printed the line once
    assert _seen(folder / "threads.txt") == [int(expected)] * 2
