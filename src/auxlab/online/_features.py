"""The feature registry of an online learner: slots, base features, online z-scores.

* **Slots.** Each feature gets a slot the first time it is *learned from*; predicting never
  creates one (an unseen feature is ignored by ``predict_proba_one``, so prediction changes
  nothing). New features of one instance get their slots in sorted order of their names, so
  the order of the keys in a dict never matters.
* **Base features** (Aux-Net, Aux-Drop): given by name, or as a number ``k``: the first ``k``
  features observed become the base features (the review's protocol). A base feature that is
  missing is forward-filled with its last value (0, the mean, before its first value).
* **Categories.** A text value is a category, one-hot encoded online (see
  :mod:`auxlab.online._inputs`): ``{"colour": "red"}`` is the input ``OneHot("colour",
  "red") = 1`` plus a 0 for every other category of ``colour`` learned from before. Each
  category gets its slot like any feature, the first time it is learned from.
* **Normalisation** (our default mode only): each feature is z-scored with the mean and
  standard deviation of its values seen *before* this instance (running sums), so a prediction
  and the learning step that follows use the same input; a missing feature enters as 0
  (its mean).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from auxlab.online._inputs import OneHot, feature_entry

__all__ = ["FeatureSpace"]


def _sort_key(k: Hashable) -> tuple[str, Any]:
    return (type(k).__name__, k if isinstance(k, (int, float, str)) else repr(k))


def _zscore(x: np.ndarray, m: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Online z-scores of ``x`` where ``m``, else 0, from the statistics of earlier values.

    ``stats`` holds, per feature (last axis), ``count``, ``ref`` (the feature's first value),
    ``s1 = Σ(v − ref)`` and ``s2 = Σ(v − ref)²`` over the values seen so far; the mean is
    ``ref + s1/count`` and the sum of squared deviations ``s2 − s1²/count``. Sums of shifted
    values rather than Welford's update, so that the array path can form every row's
    statistics with one cumulative sum and get the same numbers, bit for bit, as the dict
    path's running sums. Works on any leading shape (``stats`` ``(4, ..., d)``).
    """
    count, ref, s1, s2 = stats
    c = np.maximum(count, 1.0)
    std = np.sqrt(np.maximum(s2 - s1 * s1 / c, 0.0) / c)
    z = (x - ref - s1 / c) / np.where(std > 0, std, 1.0)
    return np.where(m & (count > 0), z, 0.0)


def _accumulate(stats: np.ndarray, x: np.ndarray, m: np.ndarray) -> None:
    """Add the values ``x`` where ``m`` to the running statistics ``stats`` (in place)."""
    count, ref, s1, s2 = stats
    first = m & (count == 0)
    ref[first] = x[first]
    r = np.where(m, x - ref, 0.0)
    count += m
    s1 += r
    s2 += r * r


class FeatureSpace:
    """Maps a learner's features to its inputs: slots, base features and their statistics.

    The learner provides ``_grow`` (add auxiliary slots to its network) and a ``seed`` for
    the generator that initialises the new slots' weights.
    """

    _uses_base: ClassVar[bool] = False
    seed: int
    faithful: str | None

    def _grow(self, n_new: int) -> int:
        """Add ``n_new`` auxiliary slots; return how many were accepted (from the first)."""
        raise NotImplementedError

    def _base_spec(self) -> tuple[tuple[Hashable, ...], int]:
        """Named base features and the number of base inputs (``(), 0`` without base)."""
        if not self._uses_base:
            return (), 0
        spec = getattr(self, "base_features", None)
        if spec is None:
            return (), 0
        if isinstance(spec, int) and not isinstance(spec, bool):
            if spec < 0:
                raise ValueError(f"{type(self).__name__}: base_features must be >= 0")
            return (), int(spec)
        names = tuple(spec)
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self).__name__}: base_features has duplicates: {names!r}")
        return names, len(names)

    def _init_features(self) -> None:
        """An empty registry, and the generator that initialises weights (unparked)."""
        names, n_base = self._base_spec()
        self._base_names = names
        self._n_base = n_base
        self._base_pos: dict[Hashable, int] = {k: i for i, k in enumerate(names)}
        self._slot: dict[Hashable, int] = {}  # auxiliary feature -> slot
        self._ignored: set[Hashable] = set()
        # Text feature -> its categories learned from (every OneHot key that is known).
        self._categories: dict[Hashable, list[str]] = {}
        for k in names:
            if isinstance(k, OneHot):
                self._categories.setdefault(k.feature, []).append(k.category)
        self._n_seen = 0  # instances learned from
        # Normaliser and forward fill, float64 (see _zscore for the statistics).
        self._stats = np.zeros((4, 0))  # count, ref, s1, s2 per auxiliary slot
        self._bstats = np.zeros((4, n_base))
        self._blast = np.zeros(n_base)  # last raw value of each base feature
        self._bseen = np.zeros(n_base, dtype=bool)
        self._init_gen = torch.Generator().manual_seed(int(self.seed))

    def _park_generator(self) -> None:
        # A torch.Generator pickles to different bytes each time; keep its state as a tensor.
        self._gen_state = self._init_gen.get_state()
        del self._init_gen

    @property
    def _normalise(self) -> bool:
        return self.faithful is None

    @property
    def n_aux(self) -> int:
        """The number of auxiliary slots (features learned from, base features aside)."""
        return len(getattr(self, "_slot", {}))

    def _register(self, keys: list[Hashable]) -> None:
        """Give slots to features learned from for the first time (``keys`` not known)."""
        keys = sorted(keys, key=_sort_key)
        for k in keys:
            if isinstance(k, OneHot) and k not in self._base_names:
                # (setdefault: a learner pickled before categories existed has no registry)
                cats = self.__dict__.setdefault("_categories", {})
                cats.setdefault(k.feature, []).append(k.category)
        new_aux: list[Hashable] = []
        for k in keys:
            if k in self._base_names:
                continue
            if not self._base_names and len(self._base_pos) < self._n_base:
                self._base_pos[k] = len(self._base_pos)
                continue
            new_aux.append(k)
        if not new_aux:
            return
        self._init_gen = torch.Generator()
        self._init_gen.set_state(self._gen_state)
        accepted = self._grow(len(new_aux))
        self._park_generator()
        for k in new_aux[:accepted]:
            self._slot[k] = len(self._slot)
        if accepted < len(new_aux):
            rejected = new_aux[accepted:]
            self._ignored.update(rejected)
            warnings.warn(
                f"{type(self).__name__} has no room for the new feature(s) {rejected!r} "
                f"({self.n_aux} auxiliary features already); they are ignored.",
                RuntimeWarning,
                stacklevel=4,
            )
        self._stats = np.concatenate([self._stats, np.zeros((4, accepted))], axis=1)

    def _known(self, k: Hashable) -> bool:
        return k in self._slot or k in self._base_pos or k in self._ignored

    def _known_categories(self, k: Hashable) -> list[str]:
        """The categories of the text feature ``k`` learned from, in the order first seen."""
        return getattr(self, "_categories", {}).get(k, [])

    def _encode(
        self, xa: np.ndarray, ma: np.ndarray, xb: np.ndarray, mb: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw float64 values and masks -> the float32 inputs of ``_step``."""
        if self._n_base:
            xb = np.where(mb, xb, self._blast)
            known = mb | self._bseen
        if self._normalise:
            xa = _zscore(xa, ma, self._stats)
            if self._n_base:
                xb = _zscore(xb, known, self._bstats)
        else:
            xa = np.where(ma, xa, 0.0)
            if self._n_base:
                xb = np.where(known, xb, 0.0)
        return (
            torch.from_numpy(xb.astype(np.float32)),
            torch.from_numpy(xa.astype(np.float32)),
            torch.from_numpy(ma),
        )

    def _after(self, xa: np.ndarray, ma: np.ndarray, xb: np.ndarray, mb: np.ndarray) -> None:
        """Update the normaliser and the forward fill with this instance's raw values."""
        if self._normalise:
            _accumulate(self._stats, xa, ma)
            if self._n_base:
                _accumulate(self._bstats, xb, mb)
        if self._n_base:
            self._blast = np.where(mb, xb, self._blast)
            self._bseen = self._bseen | mb
        self._n_seen += 1

    def _values(self, x: Mapping[Hashable, Any]) -> dict[Hashable, float]:
        """The present inputs of ``x`` as floats, checked, text one-hot encoded.

        See :mod:`auxlab.online._inputs`: a text value ``v`` of ``k`` gives
        ``OneHot(k, v) = 1`` and ``0`` for each other category of ``k`` learned from before.
        """
        if not hasattr(x, "items"):
            raise TypeError(
                f"{type(self).__name__}: x must be a dict {{feature: value}} (river's "
                f"convention), got {type(x).__name__}; for a row of an array use "
                "dict(zip(names, row)), or the array path learn_predict_stream"
            )
        who = type(self).__name__
        out: dict[Hashable, float] = {}
        for k, v in x.items():
            f = feature_entry(who, k, v)
            if isinstance(f, str):
                for c in self._known_categories(k):
                    out[OneHot(k, c)] = 0.0
                out[OneHot(k, f)] = 1.0
            elif f is not None:
                out[k] = f
        return out

    def _raw_from_values(
        self, x: Mapping[Hashable, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xa = np.zeros(self.n_aux)
        ma = np.zeros(self.n_aux, dtype=bool)
        xb = np.zeros(self._n_base)
        mb = np.zeros(self._n_base, dtype=bool)
        for k, v in x.items():
            i = self._slot.get(k)
            if i is not None:
                xa[i] = v
                ma[i] = True
                continue
            j = self._base_pos.get(k)
            if j is not None:
                xb[j] = v
                mb[j] = True
        return xa, ma, xb, mb
