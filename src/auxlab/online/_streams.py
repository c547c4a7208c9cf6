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


def _with_base(mask: np.ndarray, n_base: int) -> np.ndarray:
    mask[:, :n_base] = True
    return mask


def variable_p_mask(n: int, d: int, p: float, seed: int, n_base: int = 0) -> np.ndarray:
    """Each non-base feature present independently with probability ``p`` (Aux-Drop, review)."""
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
    chunk = _chunks(n, n_chunks) + 1
    width = np.maximum(np.rint(d * chunk / n_chunks).astype(int), n_base)
    return _with_base(np.arange(d)[None, :] < width[:, None], n_base)


def sudden_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Features appear suddenly: chunk ``i`` (0-based) sees the first ``⌊d(i+1)/n_chunks⌋``."""
    chunk = _chunks(n, n_chunks)
    width = np.maximum((d * (chunk + 1)) // n_chunks, max(n_base, 1))
    return _with_base(np.arange(d)[None, :] < width[:, None], n_base)


def obsolete_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Features become obsolete and never come back: the reverse of :func:`sudden_mask`."""
    return _with_base(sudden_mask(n, d, n_base, n_chunks)[::-1].copy(), n_base)


def reappearing_mask(n: int, d: int, n_base: int = 0, n_chunks: int = 10) -> np.ndarray:
    """Even chunks see the first half of the features, odd chunks the second half."""
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
    if len(starts) != d - n_base or len(ends) != d - n_base:
        raise ValueError(f"starts and ends need one entry per auxiliary feature ({d - n_base})")
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
) -> Iterator[tuple[dict[Hashable, float], Any]]:
    """River-style ``(x, y)`` pairs: ``x`` holds the present features only.

    Binary labels come out as booleans (river's convention), others as ints.
    """
    X = np.asarray(X, dtype=float)
    m = ~np.isnan(X) if mask is None else np.asarray(mask, dtype=bool) & ~np.isnan(X)
    names = list(range(X.shape[1])) if feature_names is None else list(feature_names)
    binary = set(np.unique(y).tolist()) <= {0, 1}
    for t in range(X.shape[0]):
        cols = np.flatnonzero(m[t])
        x = {names[j]: float(X[t, j]) for j in cols}
        yield x, (bool(y[t]) if binary else int(y[t]))
