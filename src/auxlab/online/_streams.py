"""Haphazard streams: availability masks that make features come and go, seeded.

Every generator returns an ``(n, d)`` boolean mask, True where the feature is present.
``n_base`` leading columns are base features, always present. Masks are AND-ed with the
data's own missing values by :func:`haphazard_mask` (``X`` with NaN), and, where the
protocol asks for it (``at_least_one=True``), every row keeps at least one feature: a row
left empty gets one feature drawn uniformly among those the data has.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np

from auxlab.online._inputs import label_indices, stream_table

__all__ = [
    "MASK_KINDS",
    "haphazard_mask",
    "iter_dicts",
    "obsolete_mask",
    "reappearing_mask",
    "sudden_mask",
    "trapezoidal_mask",
    "variable_p_mask",
    "window_mask",
]

MASK_KINDS = ("variable_p", "trapezoidal", "sudden", "obsolete", "reappearing", "intrinsic")


def _check_shape(n: int, d: int, n_base: int = 0, n_chunks: int = 1) -> None:
    """Refuse sizes that give a wrong mask silently, or fail deep inside numpy.

    (A negative ``n_base`` would mark all but the last columns as base features.)
    """
    for name, value, low in (
        ("n", n, 0),
        ("d", d, 0),
        ("n_base", n_base, 0),
        ("n_chunks", n_chunks, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_base > d:
        raise ValueError(f"n_base ({n_base}) must be at most the number of features d ({d})")


def _with_base(mask: np.ndarray, n_base: int) -> np.ndarray:
    mask[:, :n_base] = True
    return mask


def variable_p_mask(n: int, d: int, p: float, seed: int, n_base: int = 0) -> np.ndarray:
    """Each non-base feature present independently with probability ``p`` (Aux-Drop, review)."""
    _check_shape(n, d, n_base)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    return _with_base(rng.random((n, d)) < p, n_base)


def _chunks(n: int, n_chunks: int) -> np.ndarray:
    """Chunk index of each row: ``n_chunks`` equal chunks, the remainder in the last one."""
    size = max(n // n_chunks, 1)
    return np.minimum(np.arange(n) // size, n_chunks - 1)


def trapezoidal_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Chunk ``i`` (1-based) of ``n_chunks`` sees the first ``round(d·i/n_chunks)`` features.

    (OLSF's protocol, used by Aux-Drop §4.3. Aux-Drop's code gives the rows past
    ``n_chunks·⌊n/n_chunks⌋`` no auxiliary feature; here they belong to the last chunk.)
    """
    _check_shape(n, d, n_base, n_chunks)
    chunk = _chunks(n, n_chunks) + 1
    width = np.maximum(np.rint(d * chunk / n_chunks).astype(int), n_base)
    return _with_base(np.arange(d)[None, :] < width[:, None], n_base)


def sudden_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Features appear suddenly: chunk ``i`` (0-based) sees the first ``⌊d(i+1)/n_chunks⌋``."""
    _check_shape(n, d, n_base, n_chunks)
    chunk = _chunks(n, n_chunks)
    width = np.maximum((d * (chunk + 1)) // n_chunks, max(n_base, 1))
    return _with_base(np.arange(d)[None, :] < width[:, None], n_base)


def obsolete_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Features become obsolete and never come back: the reverse of :func:`sudden_mask`."""
    return _with_base(sudden_mask(n, d, n_base, n_chunks)[::-1].copy(), n_base)


def reappearing_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Even chunks see the first half of the features, odd chunks the second half."""
    _check_shape(n, d, n_base, n_chunks)
    chunk = _chunks(n, n_chunks)
    first = np.arange(d)[None, :] < (d + 1) // 2
    mask = np.where((chunk % 2 == 0)[:, None], first, ~first)
    return _with_base(mask, n_base)


def window_mask(
    n: int, d: int, starts: Sequence[int], ends: Sequence[int], n_base: int = 0
) -> np.ndarray:
    """Feature ``n_base + k`` present on rows ``[starts[k], ends[k])``.

    Aux-Drop's HIGGS/SUSY protocol: features that appear suddenly, then become obsolete.
    """
    _check_shape(n, d, n_base)
    if len(starts) != d - n_base or len(ends) != d - n_base:
        raise ValueError(f"starts and ends need one entry per auxiliary feature ({d - n_base})")
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        if not 0 <= a <= b:
            raise ValueError(
                f"feature {n_base + k}: the window [starts, ends) = [{a}, {b}) must have "
                "0 <= start <= end"
            )
    rows = np.arange(n)[:, None]
    aux = (rows >= np.asarray(starts)[None, :]) & (rows < np.asarray(ends)[None, :])
    return np.concatenate([np.ones((n, n_base), dtype=bool), aux], axis=1)


def haphazard_mask(
    kind: str,
    n: int,
    d: int,
    *,
    p: float = 0.5,
    seed: int = 0,
    n_base: int = 0,
    n_chunks: int = 10,
    X: np.ndarray | None = None,
    at_least_one: bool = True,
) -> np.ndarray:
    """An availability mask of one of ``MASK_KINDS``, AND-ed with ``X``'s own NaN.

    Args:
        kind: ``"variable_p"``, ``"trapezoidal"``, ``"sudden"``, ``"obsolete"``,
            ``"reappearing"`` or ``"intrinsic"`` (only the data's own missing values).
        n: Rows.
        d: Features.
        p: Availability probability for ``"variable_p"``.
        seed: Seed (``"variable_p"`` and the at-least-one repair).
        n_base: Leading base features, always present (unless NaN in ``X``).
        n_chunks: Chunks of the chunked schemes.
        X: Optional data; its NaN entries are never present.
        at_least_one: Give every empty row one feature the data has.

    Returns:
        ``(n, d)`` boolean mask.

    Example:
        >>> m = haphazard_mask("variable_p", 10_000, 8, p=0.25, seed=0, at_least_one=False)
        >>> round(float(m.mean()), 2)
        0.25
    """
    _check_shape(n, d, n_base, n_chunks)
    if kind == "variable_p":
        mask = variable_p_mask(n, d, p, seed, n_base)
    elif kind == "trapezoidal":
        mask = trapezoidal_mask(n, d, n_base, n_chunks)
    elif kind == "sudden":
        mask = sudden_mask(n, d, n_base, n_chunks)
    elif kind == "obsolete":
        mask = obsolete_mask(n, d, n_base, n_chunks)
    elif kind == "reappearing":
        mask = reappearing_mask(n, d, n_base, n_chunks)
    elif kind == "intrinsic":
        mask = np.ones((n, d), dtype=bool)
    else:
        raise ValueError(f"unknown kind {kind!r}; kinds are {MASK_KINDS}")
    avail = np.ones((n, d), dtype=bool) if X is None else ~np.isnan(np.asarray(X, dtype=float))
    if avail.shape != (n, d):
        raise ValueError(f"X has shape {avail.shape}, expected {(n, d)}")
    mask &= avail
    if at_least_one:
        empty = np.flatnonzero(~mask.any(axis=1) & avail.any(axis=1))
        if empty.size:
            rng = np.random.default_rng([seed, 1])
            for r in empty:
                mask[r, rng.choice(np.flatnonzero(avail[r]))] = True
    return mask


def iter_dicts(
    X: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    feature_names: Sequence[Hashable] | None = None,
) -> Iterator[tuple[dict[Hashable, float | str], Any]]:
    """River-style ``(x, y)`` pairs: ``x`` holds the present features only.

    Binary labels come out as booleans (river's convention), others as ints; text values
    (categories) stay text. The arrays are checked as the array path checks them (shapes,
    distinct names, finite values up to ``MAX_ABS_VALUE``; labels booleans or class indices
    >= 0), before the first pair.
    """
    yy = np.asarray(y)
    if yy.ndim != 1:
        raise ValueError(f"iter_dicts: y must be one label per row, (n,), got shape {yy.shape}")
    table = stream_table("iter_dicts", X, mask, feature_names, n_rows=len(yy))
    X, m, names = table.values, table.present, table.names
    labels = label_indices("iter_dicts", yy, _max_classes(yy))
    binary = bool(labels.size) and int(labels.max()) <= 1
    for t in range(X.shape[0]):
        x: dict[Hashable, float | str] = {names[j]: float(X[t, j]) for j in np.flatnonzero(m[t])}
        for j, col in table.text.items():
            if col[t] is not None:
                x[names[j]] = col[t]
        yield x, (bool(labels[t]) if binary else int(labels[t]))


def _max_classes(y: np.ndarray) -> int:
    # iter_dicts does not know the number of classes: any class index >= 0 (or a boolean) goes.
    if y.dtype.kind in "iuf" and y.size:
        top = np.nanmax(y) if y.dtype.kind == "f" else y.max()
        if np.isfinite(top):
            return max(int(top) + 1, 2)
    return 2
