"""The base class of auxlab's online learners: river's verbs, values, and the feature registry.

An online learner sees one instance at a time, as a dict ``{feature: value}``; a missing
feature is a missing key (or a ``None`` or NaN value). It predicts (``predict_proba_one``),
then learns from the label (``learn_one``). The same learner runs a whole stream given as
arrays (``learn_predict_stream``), and that path is the same computation as the dict path:
both call the learner's one ``_step``.

Feature handling, shared by every learner:

* **Slots.** Each feature gets a slot the first time it is *learned from*; predicting never
  creates one (an unseen feature is ignored by ``predict_proba_one``, so prediction changes
  nothing). New features of one instance get their slots in sorted order of their names, so
  the order of the keys in a dict never matters.
* **Base features** (Aux-Net, Aux-Drop): given by name, or as a number ``k``: the first ``k``
  features observed become the base features (the review's protocol). A base feature that is
  missing is forward-filled with its last value (0, the mean, before its first value).
* **Normalisation** (our default mode only): each feature is z-scored with the mean and
  standard deviation of its values seen *before* this instance (running sums), so a prediction
  and the learning step that follows use the same input; a missing feature enters as 0
  (its mean).

The learners also speak river's estimator protocol (``clone(new_params)``,
``_get_params``, ``_raw_memory_usage``, tags), and ``auxlab.online`` registers them as
virtual subclasses of ``river.base.Classifier`` when river is installed, so they pass
``river.checks`` and run in ``river.evaluate.progressive_val_score``.
"""

from __future__ import annotations

import copy
import inspect
import math
import sys
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch

from auxlab.online._balance import resolve_class_weight

#: Rows per block of the array path (bounds its memory: a few float64 copies of a block).
_CHUNK = 4096

__all__ = ["Faithful", "OnlineClassifier", "check_faithful"]

#: The three modes: ``"paper"`` (the papers' equations), ``"code"`` (what the authors' public
#: code does) and ``None`` (ours: the papers' equations plus the fixes described per learner).
Faithful = str | None

_MODES = (None, "paper", "code")


def check_faithful(value: Faithful, name: str) -> None:
    """Raise if ``value`` is not one of the modes."""
    if value not in _MODES:
        raise ValueError(f"{name}: faithful must be None (ours), 'paper' or 'code', got {value!r}")


def _sort_key(k: Hashable) -> tuple[str, Any]:
    return (type(k).__name__, k if isinstance(k, (int, float, str)) else repr(k))


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not math.isnan(v)
    except TypeError:
        return True


class OnlineClassifier:
    """Base of the online learners: dict verbs, a fast array path, and value semantics.

    Subclasses store every constructor argument under its own name, implement ``_build``
    (the network for ``n_base`` base inputs and no auxiliary slot), ``_grow`` (add auxiliary
    slots) and ``_step`` (one forward pass, and the update when a label is given), and set
    ``_uses_base`` if they have base features.
    """

    _supervised: ClassVar[bool] = True
    _uses_base: ClassVar[bool] = False
    #: Names of the constructor arguments that hold base features and the mode.
    n_classes: int
    seed: int
    faithful: Faithful

    # -- value semantics (river's protocol) --------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def clone(
        self,
        new_params: Mapping[str, Any] | None = None,
        include_attributes: bool = False,
        **overrides: Any,
    ) -> Self:
        """A fresh learner with the same arguments, some overridden; it has learned nothing.

        Args:
            new_params: Arguments to override, as a dict (river's signature).
            include_attributes: Also copy what the learner has learned (a deep copy).
            **overrides: Arguments to override, as keywords.
        """
        params = {k: copy.deepcopy(v) for k, v in self._get_params().items()}
        changes = {**(new_params or {}), **overrides}
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no argument(s) {sorted(unknown)}; "
                f"its arguments are {sorted(params)}"
            )
        params.update(changes)
        twin = type(self)(**params)
        if include_attributes:
            for k, v in self.__dict__.items():
                if k not in params and k not in ("_cache", "_buffers"):
                    twin.__dict__[k] = copy.deepcopy(v)
        return twin

    def mutate(self, new_attrs: Mapping[str, Any]) -> None:
        """Change arguments in place (river's ``mutate``); the learned state is kept."""
        params = self._get_params()
        for k, v in new_attrs.items():
            if k not in params:
                raise ValueError(f"{type(self).__name__} has no argument {k!r}")
            setattr(self, k, v)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"

    def __str__(self) -> str:
        return type(self).__name__

    @property
    def _tags(self) -> set[str]:
        return set()

    @property
    def _more_tags(self) -> set[str]:
        return set()

    @property
    def _multiclass(self) -> bool:
        return int(self.n_classes) > 2

    @property
    def _is_stochastic(self) -> bool:
        return "seed" in self._get_params()

    @property
    def _mutable_attributes(self) -> set[str]:
        return set()

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}

    def _unit_test_skips(self) -> set[str]:
        return set()

    @property
    def _raw_memory_usage(self) -> int:
        """Bytes held: tensors and arrays by their buffers, the rest by ``sys.getsizeof``."""
        seen: set[int] = set()

        def size(o: Any) -> int:
            if id(o) in seen:
                return 0
            seen.add(id(o))
            if isinstance(o, torch.Tensor):
                return o.element_size() * o.nelement() + 72
            if isinstance(o, np.ndarray):
                return int(o.nbytes) + 112
            total = sys.getsizeof(o)
            if isinstance(o, dict):
                total += sum(size(k) + size(v) for k, v in o.items())
            elif isinstance(o, (list, tuple, set)):
                total += sum(size(v) for v in o)
            elif hasattr(o, "__dict__") and not isinstance(o, type):
                total += size(o.__dict__)
            return total

        return size(self.__dict__)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_cache", None)  # caches and scratch buffers are rebuilt on demand
        state.pop("_buffers", None)
        return state

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A reusable scratch tensor (contents undefined) for a large per-instance result.

        A fresh tensor of more than a few hundred kB comes from the system fresh every time
        (and is zeroed page by page): for a gradient the size of Aux-Drop's AuxLayer that
        costs ~3x the multiplication that fills it. Not pickled, not copied by ``clone``.
        """
        bufs = self.__dict__.setdefault("_buffers", {})
        buf = bufs.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = bufs[name] = torch.empty(shape)
        return buf

    # -- labels ------------------------------------------------------------------------------
    def _label_index(self, y: Any) -> int:
        k = int(self.n_classes)
        if k == 2:
            return 1 if bool(y) else 0
        i = int(y)
        if not 0 <= i < k or i != y:
            raise ValueError(
                f"{type(self).__name__}: labels must be integers in [0, {k}), got {y!r}"
            )
        return i

    def _labels(self) -> list[Any]:
        k = int(self.n_classes)
        return [False, True] if k == 2 else list(range(k))

    # -- features ----------------------------------------------------------------------------
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

    def _ensure(self) -> None:
        if getattr(self, "_built", False):
            return
        check_faithful(self.faithful, type(self).__name__)
        if int(self.n_classes) < 2:
            raise ValueError(f"{type(self).__name__}: n_classes must be >= 2")
        names, n_base = self._base_spec()
        self._base_names = names
        self._n_base = n_base
        self._base_pos: dict[Hashable, int] = {k: i for i, k in enumerate(names)}
        self._slot: dict[Hashable, int] = {}  # auxiliary feature -> slot
        self._ignored: set[Hashable] = set()
        self._n_seen = 0  # instances learned from
        # Normaliser and forward fill, float64 (see _zscore for the statistics).
        self._stats = np.zeros((4, 0))  # count, ref, s1, s2 per auxiliary slot
        self._bstats = np.zeros((4, n_base))
        self._blast = np.zeros(n_base)  # last raw value of each base feature
        self._bseen = np.zeros(n_base, dtype=bool)
        self._init_gen = torch.Generator().manual_seed(int(self.seed))
        self._build(n_base)
        self._park_generator()
        self._built = True

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

    def _raw_from_dict(
        self, x: Mapping[Hashable, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xa = np.zeros(self.n_aux)
        ma = np.zeros(self.n_aux, dtype=bool)
        xb = np.zeros(self._n_base)
        mb = np.zeros(self._n_base, dtype=bool)
        for k, v in x.items():
            if not _present(v):
                continue
            i = self._slot.get(k)
            if i is not None:
                xa[i] = float(v)
                ma[i] = True
                continue
            j = self._base_pos.get(k)
            if j is not None:
                xb[j] = float(v)
                mb[j] = True
        return xa, ma, xb, mb

    # -- river's verbs -----------------------------------------------------------------------
    def predict_proba_one(self, x: Mapping[Hashable, Any]) -> dict[Any, float]:
        """Class probabilities for ``x``; features never learned from are ignored.

        Pure: the learner does not change (a stochastic learner draws the randomness of its
        next learning step, the same that step will use).
        """
        self._ensure()
        raw = self._raw_from_dict(x)
        xb, xa, ma = self._encode(*raw)
        with torch.inference_mode():
            proba = _as_proba(self._step(xb, xa, ma, None))
        return dict(zip(self._labels(), proba.tolist(), strict=True))

    def predict_one(self, x: Mapping[Hashable, Any]) -> Any:
        """The most probable class for ``x``."""
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__)

    def learn_one(self, x: Mapping[Hashable, Any], y: Any) -> None:
        """Update on one labelled instance. New features get slots (see the learner)."""
        self._ensure()
        target = self._label_index(y)
        new = [k for k, v in x.items() if not self._known(k) and _present(v)]
        if new:
            self._register(new)
        raw = self._raw_from_dict(x)
        xb, xa, ma = self._encode(*raw)
        with torch.inference_mode():
            self._step(xb, xa, ma, target)
        self._after(*raw)

    # -- the array path ----------------------------------------------------------------------
    def learn_predict_stream(
        self,
        X: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray | None = None,
        feature_names: Sequence[Hashable] | None = None,
        progress: Any = None,
    ) -> np.ndarray:
        """Test-then-train over a whole stream: the probabilities predicted before each label.

        The same computation as ``predict_proba_one(x)`` then ``learn_one(x, y)`` for each row
        with ``x = {name: X[t, j] for j present}``; faster, since no dict is built.

        Args:
            X: ``(n, d)`` feature values; entries where ``mask`` is False are ignored (NaN
                entries count as missing).
            y: ``(n,)`` class indices in ``[0, n_classes)``.
            mask: ``(n, d)`` availability, True where the feature is present; default
                ``~isnan(X)``.
            feature_names: Names of the ``d`` columns, as the dict path would see them
                (default ``0 .. d-1``).
            progress: Optional callable called with the number of rows done, every 256 rows.

        Returns:
            ``(n, n_classes)`` float64 probabilities.
        """
        self._ensure()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be (n, d), got shape {X.shape}")
        n, d = X.shape
        yy = np.asarray(y)
        if yy.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {yy.shape}")
        m = ~np.isnan(X) if mask is None else (np.asarray(mask, dtype=bool) & ~np.isnan(X))
        if m.shape != X.shape:
            raise ValueError(f"mask must have the shape of X {X.shape}, got {m.shape}")
        names = list(range(d)) if feature_names is None else list(feature_names)
        if len(names) != d:
            raise ValueError(f"feature_names has {len(names)} names for {d} columns")
        targets = [self._label_index(v) for v in yy.tolist()]
        k = int(self.n_classes)
        out = torch.empty(n, k)
        col_slot = np.full(d, -1)
        col_base = np.full(d, -1)
        known = np.zeros(d, dtype=bool)

        def refresh() -> None:
            for j, name in enumerate(names):
                col_slot[j] = self._slot.get(name, -1)
                col_base[j] = self._base_pos.get(name, -1)
                known[j] = self._known(name)

        refresh()
        step = self._step
        with torch.inference_mode():
            for lo in range(0, n, _CHUNK):
                hi = min(lo + _CHUNK, n)
                mb = m[lo:hi]
                inputs = _ChunkInputs(self, X[lo:hi], mb, col_slot, col_base)
                XA, MA, XB = inputs.tensors(col_slot, col_base)
                # The rows that bring features not known yet (rare: a feature's first row).
                pending = np.flatnonzero((mb & ~known).any(axis=1))
                next_new = int(pending[0]) if pending.size else -1
                for i in range(hi - lo):
                    t = lo + i
                    if i == next_new:
                        # Predict as the dict path does (unseen features ignored), register
                        # them, then learn with their slots.
                        new = mb[i] & ~known
                        out[t] = step(XB[i], XA[i], MA[i], None)
                        self._register([names[j] for j in np.flatnonzero(new)])
                        refresh()
                        XA, MA, XB = inputs.tensors(col_slot, col_base)
                        step(XB[i], XA[i], MA[i], targets[t])
                        later = np.flatnonzero((mb[i + 1 :] & ~known).any(axis=1))
                        next_new = int(later[0]) + i + 1 if later.size else -1
                    else:
                        out[t] = step(XB[i], XA[i], MA[i], targets[t])
                    self._n_seen += 1
                    if progress is not None and (t + 1) % 256 == 0:
                        progress(t + 1)
                inputs.commit(col_slot, col_base)
        if progress is not None:
            progress(n)
        q = out.numpy().astype(np.float64)
        return q / q.sum(axis=1, keepdims=True)

    # -- to implement ------------------------------------------------------------------------
    def _build(self, n_base: int) -> None:
        raise NotImplementedError

    def _grow(self, n_new: int) -> int:
        """Add ``n_new`` auxiliary slots; return how many were accepted (from the first)."""
        raise NotImplementedError

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        """Forward pass; update when ``y`` is given. Returns the ``(K,)`` prediction."""
        raise NotImplementedError


def _as_proba(p: torch.Tensor) -> np.ndarray:
    q = p.numpy().astype(np.float64)
    return q / q.sum()


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


class _ChunkInputs:
    """The inputs of ``_step`` for a block of rows of a stream, all computed at once.

    The normaliser's statistics before each row are those of the learner (for the features
    it has) plus the block's earlier values: one cumulative sum, started from the learner's
    sums, so every row gets the numbers the dict path's running sums give it. Base features
    are forward-filled the same way. ``tensors`` lays the columns out in the learner's slot
    order (again after each registration of new features); ``commit`` writes the block's
    statistics back into the learner.
    """

    def __init__(
        self,
        learner: OnlineClassifier,
        X: np.ndarray,
        m: np.ndarray,
        col_slot: np.ndarray,
        col_base: np.ndarray,
    ) -> None:
        self.learner = learner
        self.m = m
        rows, d = X.shape
        prior = np.zeros((4, d))
        has, isb = col_slot >= 0, col_base >= 0
        prior[:, has] = learner._stats[:, col_slot[has]]
        prior[:, isb] = learner._bstats[:, col_base[isb]]
        # The reference of a feature without values so far is its first value in the block.
        first_row = np.where(m.any(axis=0), m.argmax(axis=0), 0)
        first_val = np.where(m.any(axis=0), X[first_row, np.arange(d)], 0.0)
        ref = np.where(prior[0] > 0, prior[1], first_val)
        r = np.where(m, X - ref, 0.0)
        # Exclusive prefix sums (row t: before row t), started from the learner's sums; the
        # last row is the block's final state.
        count = np.cumsum(np.vstack([prior[0], m]), axis=0)
        s1 = np.cumsum(np.vstack([prior[2], r]), axis=0)
        s2 = np.cumsum(np.vstack([prior[3], r * r]), axis=0)
        refs = np.broadcast_to(ref, (rows + 1, d))
        self.final = np.stack([count[-1], ref, s1[-1], s2[-1]])
        before = np.stack([count[:-1], refs[:-1], s1[:-1], s2[:-1]])
        norm = learner._normalise
        Xv = np.where(m, X, 0.0)
        self.xa = (_zscore(Xv, m, before) if norm else Xv).astype(np.float32)
        self.n_base = learner._n_base
        if self.n_base:
            # Forward fill: the last present value up to and including the row.
            idx = np.where(m, np.arange(rows)[:, None], -1)
            np.maximum.accumulate(idx, axis=0, out=idx)
            filled = X[np.maximum(idx, 0), np.arange(d)]
            seen_before = np.zeros(d, dtype=bool)
            last_before = np.zeros(d)
            seen_before[isb] = learner._bseen[col_base[isb]]
            last_before[isb] = learner._blast[col_base[isb]]
            filled = np.where(idx >= 0, filled, last_before)
            known = (idx >= 0) | seen_before
            self.xb = (
                _zscore(filled, known, before) if norm else np.where(known, filled, 0.0)
            ).astype(np.float32)
            self.last = filled[-1]
            self.seen = known[-1]

    def tensors(
        self, col_slot: np.ndarray, col_base: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``XA`` ``(rows, n_aux)``, ``MA`` (bool) and ``XB`` ``(rows, n_base)``."""
        learner = self.learner
        rows = self.m.shape[0]
        has = col_slot >= 0
        xa = np.zeros((rows, learner.n_aux), dtype=np.float32)
        ma = np.zeros((rows, learner.n_aux), dtype=bool)
        xa[:, col_slot[has]] = self.xa[:, has]
        ma[:, col_slot[has]] = self.m[:, has]
        xb = np.zeros((rows, self.n_base), dtype=np.float32)
        if self.n_base:
            # Base features without a column here: their (constant) last value.
            last, seen = learner._blast, learner._bseen
            if learner._normalise:
                xb[:] = _zscore(last, seen, learner._bstats)
            else:
                xb[:] = np.where(seen, last, 0.0)
            isb = col_base >= 0
            xb[:, col_base[isb]] = self.xb[:, isb]
        return torch.from_numpy(xa), torch.from_numpy(ma), torch.from_numpy(xb)

    def commit(self, col_slot: np.ndarray, col_base: np.ndarray) -> None:
        """Write the block's final statistics and forward fill into the learner."""
        learner = self.learner
        has, isb = col_slot >= 0, col_base >= 0
        if learner._normalise:  # as the dict path, which keeps statistics only to use them
            learner._stats[:, col_slot[has]] = self.final[:, has]
            learner._bstats[:, col_base[isb]] = self.final[:, isb]
        if self.n_base:
            learner._blast[col_base[isb]] = self.last[isb]
            learner._bseen[col_base[isb]] = self.seen[isb]


class HedgedClassifier(OnlineClassifier):
    """Defaults shared by the hedged deep learners (HedgeBackprop, AuxNet, AuxDrop).

    ``faithful=None`` is our mode; ``"paper"`` and ``"code"`` keep the papers' values. A
    learner sets ``_lr_defaults`` to its step sizes (ours, then the papers' modes).
    """

    faithful: Faithful
    lr: float | None
    beta: float | None
    class_weight: str | None
    #: Learning rate when ``lr`` is None: (our mode, the papers' modes).
    _lr_defaults: ClassVar[tuple[float, float]] = (0.05, 0.01)

    @property
    def _ours(self) -> bool:
        return self.faithful is None

    @property
    def _balanced(self) -> bool:
        # The class-balanced loss: ``class_weight=None`` takes the mode's default (ours: on).
        return resolve_class_weight(self.class_weight, self._ours, type(self).__name__)

    @property
    def _lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return self._lr_defaults[0] if self._ours else self._lr_defaults[1]

    @property
    def _beta(self) -> float:
        # The hedge discount: 0.9 in our mode, the papers' 0.99 otherwise.
        if self.beta is not None:
            return float(self.beta)
        return 0.9 if self._ours else 0.99
