import pytest
import torch

from auxlab._threads import DEFAULT_THREADS, configure_threads, resolve_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_explicit_wins_over_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    choice = configure_threads(2)
    assert (choice.threads, choice.source) == (2, "argument")
    assert torch.get_num_threads() == 2
    assert choice.line.startswith("torch threads: 2")


def test_environment_then_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads() == resolve_threads().__class__(2, "OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    choice = configure_threads()
    assert (choice.threads, choice.source) == (DEFAULT_THREADS, "default")
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert "--threads" in choice.line


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_count_is_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        resolve_threads(bad)
