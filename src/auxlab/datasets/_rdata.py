"""A small reader of R's saved data files (``.rda`` / ``.RData``): data frames as columns.

Enough of R's serialisation format ("R Internals", section "Serialization Formats"; XDR,
versions 2 and 3) for the data frames that R packages ship in ``data/``: numeric, integer,
logical and character vectors, factors, lists, attributes, and the compact (ALTREP) row
names of R >= 3.5. The file is read into memory in one go (gzip, bzip2, xz or plain); no
cache file is written and R is not needed.

Anything else (environments, closures, byte code) raises :class:`RDataError` naming it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RDataError", "RFactor", "RVector", "read_rda", "read_rda_frame"]

NA_INTEGER = -(2**31)

# SEXP types (R Internals): the ones a data frame uses, and the special markers.
_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 0, 1, 2, 9, 10, 13, 14, 16, 19
_ALTREP, _EMPTYENV, _BASEENV, _GLOBALENV, _NILVALUE, _REF = 238, 242, 241, 253, 254, 255


class RDataError(ValueError):
    """The file is not an R data file this reader understands; the message says why."""


@dataclass
class RVector:
    """An R vector: its values and its attributes (names, class, levels, dim, ...)."""

    values: Any
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RFactor:
    """An R factor: the level of each entry, ``None`` where R has ``NA``."""

    values: tuple[str | None, ...]
    levels: tuple[str, ...]
    ordered: bool


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.pos = 0
        self.where = where
        self.refs: list[Any] = []

    def fail(self, what: str) -> RDataError:
        return RDataError(f"{self.where}: {what} (at byte {self.pos})")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail("the file ends early: it is cut short or damaged")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def word(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def length(self) -> int:
        n = self.word()
        if n == -1:  # a long vector: two more words
            hi, lo = self.word(), self.word()
            n = (hi << 32) + lo
        if n < 0:
            raise self.fail(f"negative length {n}")
        return n

    def item(self) -> Any:
        flags = self.word()
        kind = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if kind in (_NILVALUE, _EMPTYENV, _BASEENV, _GLOBALENV):
            return None
        if kind == _REF:
            index = flags >> 8 or self.word()
            if not 1 <= index <= len(self.refs):
                raise self.fail(f"reference {index} to an object not read")
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _CHAR:
            n = self.word()
            return None if n == -1 else self.take(n).decode("utf-8", errors="replace")
        if kind == _LIST:
            return self.pairlist(has_attr, has_tag)
        if kind == _ALTREP:
            return self.altrep()
        if kind in (_LGL, _INT):
            n = self.length()
            values: Any = np.frombuffer(self.take(4 * n), dtype=">i4").astype(np.int64)
            if kind == _LGL:
                values = [None if v == NA_INTEGER else bool(v) for v in values.tolist()]
        elif kind == _REAL:
            n = self.length()
            values = np.frombuffer(self.take(8 * n), dtype=">f8").astype(np.float64)
        elif kind in (_STR, _VEC):
            values = [self.item() for _ in range(self.length())]
        else:
            raise self.fail(
                f"R object of type {kind} is not data (this reader takes data frames and "
                f"vectors, not environments, functions or byte code)"
            )
        attrs = self.attributes() if has_attr else {}
        return RVector(values, attrs)

    def attributes(self) -> dict[str, Any]:
        attrs = self.item()
        if not isinstance(attrs, dict):
            raise self.fail("attributes are not a tagged list")
        return attrs

    def pairlist(self, has_attr: bool, has_tag: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            if has_attr:
                self.attributes()
            tag = self.item() if has_tag else None
            out[tag if isinstance(tag, str) else str(len(out))] = self.item()
            flags = self.word()  # the CDR: another cell, or the end of the list
            kind = flags & 0xFF
            if kind == _NILVALUE:
                return out
            if kind != _LIST:
                self.pos -= 4
                self.item()  # a dotted pair's last element: not used by data
                return out
            has_attr = bool(flags & (1 << 9))
            has_tag = bool(flags & (1 << 10))

    def altrep(self) -> Any:
        info = self.item()
        state = self.item()
        attrs = self.item()
        cls = next(iter(info.values())) if isinstance(info, dict) and info else None
        if cls == "compact_intseq":
            n, start, step = (int(v) for v in np.asarray(state.values)[:3])
            values: Any = start + step * np.arange(n, dtype=np.int64)
        elif cls == "compact_realseq":
            n, start, step = np.asarray(state.values)[:3]
            values = float(start) + float(step) * np.arange(int(n), dtype=np.float64)
        elif isinstance(cls, str) and cls.startswith("wrap_"):
            inner = state.values[0]
            return RVector(inner.values, attrs if isinstance(attrs, dict) else inner.attributes)
        elif cls == "deferred_string":
            arg = next(iter(state.values())) if isinstance(state, dict) else state
            values = [None if v is None else _r_number(v) for v in _plain_values(arg)]
        else:
            raise self.fail(f"compact R vector of class {cls!r} is not supported")
        return RVector(values, attrs if isinstance(attrs, dict) else {})


def _plain_values(v: Any) -> list[Any]:
    vals = v.values if isinstance(v, RVector) else v
    return list(np.asarray(vals).tolist())


def _r_number(v: Any) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _decompress(raw: bytes, where: str) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    if raw[:5] in (b"RDX2\n", b"RDX3\n"):
        return raw
    raise RDataError(f"{where}: not an R data file (no RDX2/RDX3 header, not compressed)")


def read_rda(path: str | Path) -> dict[str, Any]:
    """The objects of an ``.rda`` file by name (``RVector`` values, nested).

    Raises:
        RDataError: If the file is not an XDR R data file or holds objects that are not data.
        OSError: If the file cannot be read.
    """
    where = str(path)
    data = _decompress(Path(path).read_bytes(), where)
    if data[:5] not in (b"RDX2\n", b"RDX3\n") or data[5:7] != b"X\n":
        raise RDataError(
            f"{where}: not an XDR R data file (header {data[:7]!r}); only save()'s default "
            f"binary format is read"
        )
    r = _Reader(data, where)
    r.pos = 7
    version = r.word()
    r.word()  # R version that wrote it
    r.word()  # minimal R version to read it
    if version == 3:
        r.take(r.word())  # native encoding
    elif version != 2:
        raise r.fail(f"serialisation version {version} (2 and 3 are read)")
    out = r.item()
    if not isinstance(out, dict):
        raise r.fail("the file holds no named objects")
    return out


def _column(v: Any, where: str, name: str) -> np.ndarray | RFactor:
    if not isinstance(v, RVector):
        raise RDataError(f"{where}: column {name!r} is not a vector")
    cls = _strings(v.attributes.get("class"))
    if "factor" in cls:
        levels = tuple(_strings(v.attributes.get("levels")))
        codes = np.asarray(v.values, dtype=np.int64)
        return RFactor(
            tuple(None if c == NA_INTEGER else levels[c - 1] for c in codes.tolist()),
            levels,
            "ordered" in cls,
        )
    if isinstance(v.values, np.ndarray):
        arr = v.values.astype(np.float64)
        if v.values.dtype.kind == "i":
            arr[v.values == NA_INTEGER] = np.nan
        return arr
    if v.values and all(isinstance(s, (str, type(None))) for s in v.values):
        return np.asarray(v.values, dtype=object)
    if all(isinstance(s, (bool, type(None))) for s in v.values):
        return np.asarray([np.nan if s is None else float(s) for s in v.values])
    raise RDataError(f"{where}: column {name!r} holds values of an unsupported kind")


def _strings(v: Any) -> list[str]:
    if v is None:
        return []
    vals = v.values if isinstance(v, RVector) else v
    return [str(s) for s in vals]


def read_rda_frame(path: str | Path, name: str) -> dict[str, np.ndarray | RFactor]:
    """The data frame ``name`` of an ``.rda`` file as columns, in order.

    Numeric, integer and logical columns come as float64 arrays (NaN for ``NA``); character
    columns as object arrays (``None`` for ``NA``); factors as :class:`RFactor`.
    """
    where = str(path)
    objects = read_rda(path)
    frame = objects.get(name)
    if not isinstance(frame, RVector) or "data.frame" not in _strings(
        frame.attributes.get("class")
    ):
        raise RDataError(f"{where}: no data frame named {name!r} (found {', '.join(objects)})")
    names = _strings(frame.attributes.get("names"))
    if len(names) != len(frame.values):
        raise RDataError(f"{where}: {name} has {len(frame.values)} columns, {len(names)} names")
    return {n: _column(v, where, n) for n, v in zip(names, frame.values, strict=True)}
