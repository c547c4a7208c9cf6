"""Output folders and files of the ``auxlab`` commands: checked before training, written whole.

* :func:`check_out_dir` and :func:`check_out_file` run before any training, so a ``--out``
  that is a file, lies under a file, or cannot be written is an error in the first second,
  not after the last run.
* :func:`replace_dir` puts a finished folder in place of ``--out`` in one rename, with
  SIGINT held off while it does: the outputs are all old or all new, never a mix, and stale
  files of an earlier run (a ``report.html`` beside new results) do not survive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "OutputError",
    "check_out_dir",
    "check_out_file",
    "hold_interrupts",
    "replace_dir",
    "temp_dir_beside",
]


class OutputError(ValueError):
    """An output path cannot be used (a usage error: the command exits with code 2)."""


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path``'s parent) that is not a folder."""
    for p in [path.parent, *path.parent.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def _writable_folder(path: Path, flag: str) -> None:
    """Create ``path`` (a folder) if needed and prove it writable, or raise OutputError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".auxlab-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"{flag} {path}: cannot write there ({exc.strerror or exc}); choose another {flag}"
        ) from None


def check_out_dir(
    path: str | Path, flag: str = "--out", overwrite: bool = False, keep: Sequence[str] = ()
) -> Path:
    """Check, before any training, that ``path`` can become the command's output folder.

    Args:
        path: The folder.
        flag: The option's name, for messages.
        overwrite: Whether an existing folder with outputs in it may be replaced.
        keep: Names inside the folder that are not outputs (a study's storage file): a
            folder holding only these is resumed, not refused.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Its parent folder exists afterwards.

    Raises:
        OutputError: ``path`` is a file, lies under a file, cannot be written, or holds
            outputs and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    blocking = _blocking_file(path)
    if blocking is not None:
        raise OutputError(f"{flag} {path} lies under {blocking}, which is a file, not a folder")
    _writable_folder(path.parent if path.parent != Path("") else Path("."), flag)
    if path.exists():
        others = sorted(
            p.name for p in path.iterdir() if p.name not in keep and not p.name.startswith(".")
        )
        if others and not overwrite:
            shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
            raise OutputError(
                f"{flag} {path} already holds results ({shown}); pass --overwrite to replace "
                f"them, or choose another {flag}"
            )
        _writable_folder(path, flag)
    return path


def check_out_file(path: str | Path, flag: str, example: str = "out.json") -> Path:
    """Check, before any training, that the file ``path`` can be written; create its folder.

    Raises:
        OutputError: ``path`` is a folder, lies under a file, or its folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name, e.g. {path / example}")
    blocking = _blocking_file(path)
    if blocking is not None:
        raise OutputError(f"{flag} {path} lies under {blocking}, which is a file, not a folder")
    _writable_folder(path.parent if str(path.parent) else Path("."), flag)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path}: the file exists and cannot be written")
    return path


@contextlib.contextmanager
def hold_interrupts() -> Iterator[None]:
    """Defer SIGINT (Ctrl-C) until the block ends; then raise it as ``KeyboardInterrupt``.

    Only the main thread can set signal handlers; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def temp_dir_beside(path: Path) -> Path:
    """A new empty folder next to ``path`` (same file system: a rename moves it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))


def replace_dir(new: Path, out: Path, keep: Sequence[str] = ()) -> Path:
    """Put the finished folder ``new`` in place of ``out``, in one rename; return ``out``.

    The files named in ``keep`` (a study's storage inside ``out``) are moved into ``new``
    first, so they survive; every other old file goes. SIGINT waits until it is done.
    """
    with hold_interrupts():
        old: Path | None = None
        if out.exists():
            for name in keep:
                src = out / name
                if src.exists():
                    os.replace(src, new / name)
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
        os.replace(new, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
