"""What an online learner accepts as a feature value and as a label, on both paths.

Checked before the learner changes, so a refused instance leaves it as it was:

* **Feature values** are numbers (``int``, ``float``, ``bool``, numpy scalars), finite and at
  most :data:`MAX_ABS_VALUE` in magnitude, or text (``str``): a category. A missing value is
  a missing key, ``None`` or NaN. ``inf``, values like ``1e300``, lists and other objects are
  refused, naming the feature: they are not missing values but broken ones (an unparsed
  file, a division by zero upstream), and one of them would turn the running statistics or
  the network's float32 activations into ``inf``/NaN for the rest of the stream.
* **Categories** are one-hot encoded online, as river's ``OneHotEncoder`` (with its zeros)
  does: the text value ``v`` of feature ``k`` becomes the input ``OneHot(k, v) = 1``, and
  every category of ``k`` learned from before becomes an input ``0``. A category seen for
  the first time is a new feature (an input that was unavailable until then); when ``k``
  is missing, all its categories are missing. Text is never cast to a number: ``"1.5"`` is
  a category.
* **Labels**, with ``n_classes=2``: ``False``/``True`` (river's convention) or the numbers
  0 and 1. Other labels are refused rather than guessed: ``bool(y)`` would make ``"no"``,
  ``"0"``, ``-1`` and ``2`` all positive, and a mapping from two arbitrary values (``-1``/``1``,
  ``"no"``/``"yes"``) to the classes depends on which comes first. With ``n_classes=K > 2``:
  the integers ``0 .. K-1``.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_ONE_HOT_CELLS",
    "OneHot",
    "StreamTable",
    "check_arguments",
    "feature_entry",
    "feature_value",
    "label_index",
    "label_indices",
    "one_hot_columns",
    "stream_arrays",
    "stream_table",
]

#: The largest magnitude of a feature value the learners take. Beyond 2^53 ≈ 9e15 float64
#: no longer counts in units, so no real measurement needs more; 1e15 keeps the running sums
#: of squares (1e30 per value) and the float32 network inputs far from overflow.
MAX_ABS_VALUE = 1e15

_MISSING_HINT = "give a missing value as None or NaN, or leave the feature out"

#: The most cells (rows x one-hot columns) the array path lays out for a stream's categories.
MAX_ONE_HOT_CELLS = 50_000_000


class OneHot(NamedTuple):
    """The input of category ``category`` of the text feature ``feature`` (1 or 0)."""

    feature: Hashable
    category: str


def feature_value(who: str, key: Hashable, v: Any) -> float | None:
    """The value of feature ``key`` as a float, ``None`` when missing; raise when it is broken.

    Example:
        >>> feature_value("m", "a", 2), feature_value("m", "a", None)
        (2.0, None)
    """
    if v is None:
        return None
    if isinstance(v, float):  # the common case first
        f = v
    elif isinstance(v, (str, bytes)) or not hasattr(type(v), "__float__"):
        raise ValueError(
            f"{who}: feature {key!r} has the value {v!r} ({type(v).__name__}); the learners "
            f"take numbers (int, float, bool) and text categories (str): convert it; "
            f"{_MISSING_HINT}"
        )
    else:
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{who}: feature {key!r} has the value {v!r}, which is not a number ({exc})"
            ) from None
    if math.isnan(f):
        return None
    if not abs(f) <= MAX_ABS_VALUE:
        raise ValueError(
            f"{who}: feature {key!r} has the value {v!r}; the learners take finite values up to "
            f"{MAX_ABS_VALUE:.0e} in magnitude: rescale the feature (log, units) or fix the "
            f"source; {_MISSING_HINT}"
        )
    return f


def feature_entry(who: str, key: Hashable, v: Any) -> float | str | None:
    """``feature_value``, except that text is a category and comes back as ``str``.

    Example:
        >>> feature_entry("m", "a", "red"), feature_entry("m", "a", 2)
        ('red', 2.0)
    """
    if isinstance(v, str):
        return str(v)  # numpy's str_ as the plain str
    return feature_value(who, key, v)


def _label_text(k: int) -> str:
    if k == 2:
        return "False/True or 0/1"
    return f"the integers 0 .. {k - 1}"


def _label_fix(k: int) -> str:
    if k == 2:
        return "map your labels first, e.g. y == 'yes' (the positive class becomes True)"
    return "map your labels to class indices first"


def label_index(who: str, y: Any, k: int) -> int:
    """The class index of the label ``y`` for ``k`` classes; raise for anything else.

    Example:
        >>> label_index("m", True, 2), label_index("m", 0, 2), label_index("m", 2.0, 3)
        (1, 0, 2)
    """
    if isinstance(y, (bool, np.bool_)):
        return int(y)
    if isinstance(y, numbers.Real) and not isinstance(y, (str, bytes)):
        f = float(y)
        if f.is_integer() and 0 <= f < k:
            return int(f)
    raise ValueError(
        f"{who}: the label {y!r} is not a class; with n_classes={k} the labels are "
        f"{_label_text(k)}: {_label_fix(k)}"
    )


def label_indices(who: str, y: Any, k: int) -> np.ndarray:
    """The class indices of a sequence of labels (``int64``); raise naming the first bad one."""
    yy = np.asarray(y)
    if yy.dtype == bool:
        return yy.astype(np.int64)
    if yy.dtype.kind in "iu":
        ok = (yy >= 0) & (yy < k)
    elif yy.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(yy) & (np.floor(yy) == yy) & (yy >= 0) & (yy < k)
    else:
        ok = np.array([_is_label(v, k) for v in yy.reshape(-1)], dtype=bool).reshape(yy.shape)
    if not ok.all():
        t = int(np.flatnonzero(~ok.reshape(-1))[0])
        bad = _plain(yy.reshape(-1)[t])
        try:
            values = sorted({_plain(v) for v in yy.reshape(-1)})
        except TypeError:  # labels of several types
            values = sorted({repr(v) for v in yy.reshape(-1)})
        shown = ", ".join(map(repr, values[:6])) + (", ..." if len(values) > 6 else "")
        raise ValueError(
            f"{who}: label {bad!r} at row {t} is not a class; with n_classes={k} the labels "
            f"are {_label_text(k)} (y holds {shown}): {_label_fix(k)}"
        )
    return yy.astype(np.int64)


def _plain(v: Any) -> Any:
    # A numpy scalar as the Python value it holds, for messages (5, not np.int64(5)).
    return v.item() if isinstance(v, np.generic) else v


def _is_label(v: Any, k: int) -> bool:
    try:
        label_index("", v, k)
    except ValueError:
        return False
    return True


class StreamTable(NamedTuple):
    """A checked stream: numbers, their availability, the names, and the text cells.

    ``values`` is float64, 0 where no number is present; ``present`` is True where a number
    is; ``text`` maps the index of each column holding text to an object array of its text
    per row (``None`` where the row has no text there, or the mask hides it).
    """

    values: np.ndarray
    present: np.ndarray
    names: list[Hashable]
    text: dict[int, np.ndarray]


def _split_cells(
    who: str, X: Any, names: Sequence[Hashable] | None
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """``X`` as float64 (NaN for text and missing cells) and its text cells by column."""
    arr = np.asarray(X)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False), {}
    if arr.ndim != 2:
        raise ValueError(f"{who}: X must be (n, d) numbers or text, got shape {arr.shape}")
    if arr.dtype.kind == "U":  # all text
        cols = {j: arr[:, j].astype(object) for j in range(arr.shape[1])}
        return np.full(arr.shape, np.nan), cols
    n, d = arr.shape
    out = np.empty(arr.shape)
    text: dict[int, np.ndarray] = {}
    for j in range(d):
        col = arr[:, j]
        is_text = np.fromiter((isinstance(v, str) for v in col), dtype=bool, count=n)
        plain = np.fromiter((isinstance(v, _PLAIN) for v in col), dtype=bool, count=n)
        # Numbers and None in one conversion (broken numbers are refused later, by cell);
        # any other object is checked on its own.
        out[:, j] = np.asarray(
            [v if ok else np.nan for v, ok in zip(col, plain, strict=True)], dtype=np.float64
        )
        name = j if names is None or j >= len(names) else names[j]
        for t in np.flatnonzero(~plain & ~is_text):
            f = feature_value(who, name, col[t])
            out[t, j] = np.nan if f is None else f
        if is_text.any():
            text[j] = np.full(n, None, dtype=object)
            text[j][is_text] = [str(v) for v in col[is_text]]  # numpy's str_ as str
    return out, text


#: Cell types the array path converts in one go (anything else is checked cell by cell).
_PLAIN = (float, int, np.floating, np.integer, np.bool_, type(None))


def stream_table(
    who: str,
    X: Any,
    mask: Any,
    feature_names: Sequence[Hashable] | None,
    n_rows: int | None = None,
) -> StreamTable:
    """Check a stream's arrays; the text cells stay text (see :class:`StreamTable`).

    ``X`` must be ``(n, d)`` numbers or text (an object array may mix them, with ``None``
    or NaN for missing values); ``mask``, when given, ``(n, d)`` booleans (or 0/1);
    ``feature_names`` ``d`` distinct names. A NaN or ``None`` in ``X`` is a missing value
    whatever the mask says (as on the dict path). A present number must be finite and at
    most :data:`MAX_ABS_VALUE` in magnitude; the error names the column and the row.
    """
    names_in = None if feature_names is None else list(feature_names)
    Xf, text = _split_cells(who, X, names_in)
    if Xf.ndim != 2:
        raise ValueError(f"{who}: X must be (n, d), got shape {Xf.shape}")
    n, d = Xf.shape
    if n_rows is not None and n != n_rows:
        raise ValueError(f"{who}: X has {n} rows and y has {n_rows}; give one label per row")
    names: list[Hashable] = list(range(d)) if names_in is None else names_in
    if len(names) != d:
        raise ValueError(f"{who}: feature_names has {len(names)} names for {d} columns")
    if len(set(names)) != d:
        dup = sorted(repr(k) for k, c in Counter(names).items() if c > 1)
        raise ValueError(f"{who}: feature_names has duplicates: {', '.join(dup)}")
    present: np.ndarray = ~np.isnan(Xf)
    if mask is not None:
        mm = np.asarray(mask)
        if mm.shape != Xf.shape:
            raise ValueError(
                f"{who}: mask must have the shape of X {Xf.shape}, got {mm.shape} "
                "(one True/False per value: True where the feature is present)"
            )
        if mm.dtype != bool and (mm.dtype.kind not in "iuf" or not np.isin(mm, (0, 1)).all()):
            bad = np.argwhere(~np.isin(mm, (0, 1)))[0] if mm.dtype.kind in "iuf" else (0, 0)
            raise ValueError(
                f"{who}: mask must hold True/False (or 0/1), found "
                f"{_plain(mm[tuple(bad)])!r} at row {bad[0]}, column {names[bad[1]]!r}"
            )
        shown = mm.astype(bool)
        present &= shown
        for j, col in text.items():
            col[~shown[:, j]] = None
    with np.errstate(invalid="ignore"):
        broken = present & ~(np.abs(Xf) <= MAX_ABS_VALUE)
    if broken.any():
        t, j = (int(i) for i in np.argwhere(broken)[0])
        raise ValueError(
            f"{who}: feature {names[j]!r} has the value {float(Xf[t, j])!r} at row {t}; the "
            f"learners take finite values up to {MAX_ABS_VALUE:.0e} in magnitude: rescale the "
            f"feature or fix the source; mark a missing value NaN or False in the mask"
        )
    text = {j: col for j, col in text.items() if any(v is not None for v in col)}
    return StreamTable(np.where(present, Xf, 0.0), present, names, text)


def one_hot_columns(
    who: str,
    table: StreamTable,
    known: Callable[[Hashable], Sequence[str]] = lambda k: (),
) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """The stream with its text columns one-hot encoded online: values, availability, names.

    For a text column ``k``, each category ``v`` (those in ``known(k)``, learned from
    before, then the stream's in order of appearance) gets the column ``OneHot(k, v)``:
    present on the rows where ``k`` holds text, from the category's first row on (from the
    start for a known one), 1 where the text is ``v`` and 0 elsewhere; the rows learn, so
    from its first row on the category is known, as on the dict path.
    """
    X, m, names = table.values, table.present, list(table.names)
    if not table.text:
        return X, m, names
    n = X.shape[0]
    rows = np.arange(n)
    cols_x, cols_m = [X], [m]
    for j, col in table.text.items():
        # Codes in order of appearance, after the categories the learner knows (first -1).
        index = {str(v): i for i, v in enumerate(known(names[j]))}
        first = [-1] * len(index)
        codes = np.empty(n, dtype=np.int64)
        for t, v in enumerate(col):
            if v is None:
                codes[t] = -1
                continue
            c = index.setdefault(v, len(index))
            if c == len(first):
                first.append(t)
            codes[t] = c
        cells = n * (len(names) + len(index))
        if cells > MAX_ONE_HOT_CELLS:
            raise ValueError(
                f"{who}: feature {names[j]!r} holds {len(index)} distinct text values in "
                f"{n} rows; one-hot encoding them needs {cells:.2g} cells, more than the array "
                f"path lays out ({MAX_ONE_HOT_CELLS:.0e}). If they are numbers given as text, "
                f"convert them with float(); else use the dict path (learn_one), or fewer rows"
            )
        has = codes >= 0
        for v, c in index.items():
            cols_x.append((codes == c).astype(np.float64)[:, None])
            cols_m.append((has & (rows >= first[c]))[:, None])
            names.append(OneHot(names[j], v))
    if len(set(names)) != len(names):
        dup = sorted(repr(k) for k, c in Counter(names).items() if c > 1)
        raise ValueError(
            f"{who}: the one-hot columns of the text features clash with the feature names "
            f"{', '.join(dup)}: rename those features"
        )
    return np.hstack(cols_x), np.hstack(cols_m), names


def stream_arrays(
    who: str,
    X: Any,
    mask: Any,
    feature_names: Sequence[Hashable] | None,
    n_rows: int | None = None,
    known: Callable[[Hashable], Sequence[str]] = lambda k: (),
) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """Check a stream's arrays; return ``X`` (0 where absent), the availability and the names.

    :func:`stream_table`, then the text columns one-hot encoded (:func:`one_hot_columns`,
    with the categories ``known(k)`` that the learner has learned from): the columns
    ``OneHot(k, v)`` follow the original ones.
    """
    return one_hot_columns(who, stream_table(who, X, mask, feature_names, n_rows), known)


#: Size arguments of the learners: integers >= 1.
_SIZES = ("n_layers", "n_units", "n_base_layers", "n_end_layers", "aux_units")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_arguments(who: str, params: dict[str, Any]) -> None:
    """Refuse constructor arguments that would fail deep inside, or learn nothing, silently.

    Sizes and ``n_classes`` are integers (``2.5`` and ``"2"`` were truncated or parsed),
    ``lr`` a finite number >= 0 and ``eps`` > 0 (``lr=nan`` made every later step fail in the
    hedge), ``seed`` an integer >= 0, ``base_features`` a count or a sequence of names (not
    one string, which would be read letter by letter). The learners' own ranges (``beta``,
    ``s``, ``dropout``, ...) are checked where they are used.
    """
    for name in _SIZES:
        if name in params and not (_is_int(params[name]) and params[name] >= 1):
            raise ValueError(f"{who}: {name} must be an integer >= 1, got {params[name]!r}")
    k: Any = params.get("n_classes")
    if not (_is_int(k) and k >= 2):
        raise ValueError(f"{who}: n_classes must be an integer >= 2, got {k!r}")
    seed: Any = params.get("seed")
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"{who}: seed must be an integer >= 0, got {seed!r}")
    for name, low in (("lr", "0 (0 freezes the network)"), ("eps", "0")):
        v = params.get(name)
        if v is None:
            continue
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        if not (ok and (v > 0 or (name == "lr" and v == 0))):
            sign = ">=" if name == "lr" else ">"
            raise ValueError(f"{who}: {name} must be a finite number {sign} {low}, got {v!r}")
    base = params.get("base_features")
    if isinstance(base, (str, bytes)) or (
        base is not None and not _is_int(base) and not isinstance(base, Sequence)
    ):
        raise ValueError(
            f"{who}: base_features must be a number of features or a sequence of names "
            f"(e.g. ('a', 'b')), got {base!r}"
        )
