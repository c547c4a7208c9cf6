"""pytest settings for the Python blocks of README.md and docs/*.md.

pytest-markdown-docs (``--markdown-docs`` in pyproject.toml) collects every ```python block
as a test, marked ``markdown-docs``, and runs it as written. Here each block also runs:

* in an empty temporary working directory, and fails if it leaves a file there: a block a
  reader copies must not litter their folder (write under ``tempfile`` instead);
* with its output captured like any test's, shown only when the block fails
  (pytest-markdown-docs 0.9 lets it through to the terminal: its issue #54);
* as ``__main__``, as it would in a reader's script: ``if __name__ == "__main__":`` runs, and
  ``sys.modules["__main__"]`` finds what the block defines, so pickle can find a class the
  block defines by name (``check_strategy`` pickles the strategy it checks).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
import torch

_BLOCK = "markdown-docs"  # the marker pytest-markdown-docs puts on each block it collects

# As in tests/conftest.py (which does not apply to README.md and docs/): the blocks train
# tiny models, for which intra-op threads only add overhead on a loaded machine.
torch.set_num_threads(1)


class _BlockMain(types.ModuleType):
    """``sys.modules["__main__"]`` while a block runs: its names are the running block's."""

    def __init__(self) -> None:
        super().__init__("__main__")

    def __getattr__(self, name: str) -> Any:
        # The innermost frame whose globals are a __main__'s is the block (or a function it
        # defined); pytest's own __main__ lies further out.
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") != "__main__":
            frame = frame.f_back
        if frame is not None and name in frame.f_globals:
            return frame.f_globals[name]
        raise AttributeError(f"the running Markdown block defines no {name!r}")


def pytest_markdown_docs_globals() -> dict[str, Any]:
    """Run each block under the name a script runs under."""
    return {"__name__": "__main__"}


@pytest.fixture(autouse=True)
def _markdown_block_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker(_BLOCK) is None:
        yield
        return
    folder = request.getfixturevalue("tmp_path")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.chdir(folder)
    monkeypatch.setitem(sys.modules, "__main__", _BlockMain())
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # None under `-p no:capture`
        monkeypatch.setattr(capture, "global_and_fixture_disabled", contextlib.nullcontext)
    yield
    left = sorted(p.name for p in folder.iterdir())
    assert not left, (
        f"the block wrote {left} into the working directory; write into a folder made by "
        "tempfile.TemporaryDirectory() instead"
    )
