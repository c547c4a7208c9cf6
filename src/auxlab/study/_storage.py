"""Optuna storages from one string: memory, a SQLite or journal file, or a database URL."""

from __future__ import annotations

import importlib
import os
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
        journal = optuna.storages.journal
        try:
            backend = journal.JournalFileBackend(
                str(path), lock_obj=journal.JournalFileOpenLock(str(path))
            )
            return journal.JournalStorage(backend)
        except OSError as exc:
            raise StorageError(f"cannot open the journal file {spec}: {exc}") from None
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"cannot open the study storage {describe(spec)}: {type(exc).__name__}: {first}"
        ) from None
