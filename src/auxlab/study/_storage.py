"""Optuna storages from one string: memory, a SQLite or journal file, or a database URL."""

from __future__ import annotations

import importlib
import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auxlab._optional import MissingDependencyError, require

__all__ = ["StorageError", "describe", "jsonable", "open_storage"]

#: Heartbeat of RDB storages: a worker that stops beating for ``GRACE`` seconds is dead, and
#: its running trial is failed and requeued by the next worker that looks.
HEARTBEAT = 10
GRACE = 60

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StorageError(RuntimeError):
    """The study storage cannot be opened or reached."""


def jsonable(v: Any) -> Any:
    """``v`` as plain JSON data, for Optuna's user attributes (anything else as ``str``)."""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return str(v)


def describe(spec: str | None) -> str:
    """The storage spec with any password hidden, for messages."""
    if spec is None:
        return "memory"
    if "://" not in spec:
        return spec
    try:
        from sqlalchemy.engine import make_url

        return make_url(spec).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: show what follows the credentials
        return spec.split("@")[-1]


def storage_url(spec: str) -> str | None:
    """The database URL of a spec, or ``None`` for a journal file."""
    if "://" in spec:
        return spec
    if spec.lower().endswith(_SQLITE_SUFFIXES):
        return f"sqlite:///{Path(spec).resolve()}"
    return None


def _postgres_driver(url: str) -> str:
    """Name a driver that is installed: SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3.

    An explicit driver (``postgresql+psycopg2://``) is kept; a bare ``postgresql://`` (or
    ``postgres://``) gets psycopg 3 if installed, else psycopg2.
    """
    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return f"postgresql+{driver}://{rest}"
    raise MissingDependencyError(
        "PostgreSQL study storage needs a driver, and neither 'psycopg' nor 'psycopg2' is "
        'installed. Install one: pip install psycopg2-binary (or pip install "psycopg[binary]").'
    )


_JOURNAL_FIX = (
    "If it is a study journal cut by a crash or a full disk, keep a copy and delete its "
    "incomplete or broken lines (each line is one JSON record; the runs they recorded will "
    "run again); otherwise choose another --storage."
)


def _check_journal(path: Path, lock: Any) -> None:
    """Refuse a journal file whose first line is not a record, or whose last is cut."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        record = json.loads(first)
        if not isinstance(record, dict) or "op_code" not in record:
            raise ValueError("no op_code")
    except (ValueError, UnicodeDecodeError):
        raise StorageError(
            f"the study storage {path} is not an Optuna journal: its first line is not a "
            f"journal record. {_JOURNAL_FIX}"
        ) from None
    lock.acquire()  # a writer holds it while it appends: the last line is whole outside it
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"
    finally:
        lock.release()
    if cut:
        raise StorageError(
            f"the study storage {path} is cut mid-record: its last line is incomplete. "
            f"{_JOURNAL_FIX}"
        )


def open_storage(
    spec: str | None, heartbeat: int | None = HEARTBEAT, grace: int | None = GRACE
) -> Any:
    """Open an Optuna storage.

    Args:
        spec: ``None`` or ``":memory:"`` (in memory); a file path: ``*.db``, ``*.sqlite``,
            ``*.sqlite3`` open as SQLite, anything else as an Optuna journal file (both
            survive a crash and can be shared by processes on one machine); or a URL that
            SQLAlchemy understands (``sqlite:///path``, ``postgresql://user:pw@host/db``).
        heartbeat: Seconds between a running trial's heartbeats (database storages).
        grace: Seconds without a heartbeat after which a trial counts as dead.

    Raises:
        StorageError: If the storage cannot be opened or the server cannot be reached; the
            message shows the spec without its password.
        MissingDependencyError: For PostgreSQL without ``psycopg2``.
    """
    optuna = require("optuna", extra="study", feature="auxlab studies")
    if spec is None or spec == ":memory:":
        return optuna.storages.InMemoryStorage()
    url = storage_url(spec)
    if url is None:
        path = Path(spec)
        if path.parent and not path.parent.exists():
            raise StorageError(f"cannot open the journal file {spec}: {path.parent} does not exist")
        if path.is_dir():
            raise StorageError(f"the study storage {spec} is a folder; give a file name")
        journal = optuna.storages.journal
        try:
            lock = journal.JournalFileOpenLock(str(path))
            _check_journal(path, lock)
            backend = journal.JournalFileBackend(str(path), lock_obj=lock)
            return journal.JournalStorage(backend)
        except OSError as exc:
            raise StorageError(f"cannot open the journal file {spec}: {exc}") from None
        except StorageError:
            raise
        except Exception as exc:  # a line that is not a journal record
            raise StorageError(
                f"the study storage {spec} is not a readable Optuna journal ({type(exc).__name__}: "
                f"{exc}). {_JOURNAL_FIX}"
            ) from None
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    engine_kwargs: dict[str, Any] = {}
    if scheme == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}
        target = Path(url.split(":///", 1)[-1])
        if url.startswith("sqlite:///") and not target.parent.exists():
            raise StorageError(f"cannot open {describe(spec)}: {target.parent} does not exist")
    elif scheme.startswith("postgres"):
        url = _postgres_driver(url)
        engine_kwargs["connect_args"] = {
            "connect_timeout": int(os.environ.get("AUXLAB_DB_CONNECT_TIMEOUT", "10"))
        }
        engine_kwargs["pool_pre_ping"] = True
    # Two processes creating one new SQLite file at once race on its tables (the second
    # fails on `alembic_version`); the loser tries again and finds them made.
    attempts = 6 if scheme == "sqlite" else 1
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                # Heartbeats are "experimental" in Optuna; they are what detects dead workers.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                )
        except Exception as exc:  # driver errors have many types; all mean "cannot open"
            text = str(exc)
            if attempt + 1 < attempts and "file is not a database" not in text:
                time.sleep(0.2 * (attempt + 1))
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            hint = ""
            if "file is not a database" in text:
                hint = " (it is another kind of file: choose another --storage)"
            raise StorageError(
                f"cannot open the study storage {describe(spec)}: {type(exc).__name__}: "
                f"{first}{hint}"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover
