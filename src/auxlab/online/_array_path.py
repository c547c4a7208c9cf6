"""The array path of an online learner: test-then-train over a whole stream given as arrays.

The same computation as ``predict_proba_one(x)`` then ``learn_one(x, y)`` for each row, with
no dict built: the inputs of a block of rows are formed at once (online z-scores from one
cumulative sum started from the learner's running sums, forward fill of base features), and
each row then goes through the learner's one ``_step``, as on the dict path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from auxlab.online._features import _zscore
from auxlab.online._inputs import label_indices, stream_arrays
from auxlab.online._ops import Diverged

if TYPE_CHECKING:
    from auxlab.online._base import OnlineClassifier

__all__ = ["learn_predict_stream"]

#: Rows per block of the array path (bounds its memory: a few float64 copies of a block).
_CHUNK = 4096


def learn_predict_stream(
    learner: OnlineClassifier,
    X: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    feature_names: Sequence[Hashable] | None = None,
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """Test-then-train ``learner`` over a stream; see ``OnlineClassifier.learn_predict_stream``."""
    learner._ensure()
    # Everything is checked before the learner changes (see auxlab.online._inputs).
    who = type(learner).__name__
    k = int(learner.n_classes)
    yy = np.asarray(y)
    if yy.ndim != 1:
        raise ValueError(f"{who}: y must be one label per row, (n,), got shape {yy.shape}")
    # Text columns come back one-hot encoded, given the categories the learner knows.
    X, m, names = stream_arrays(
        who, X, mask, feature_names, n_rows=len(yy), known=learner._known_categories
    )
    n, d = X.shape
    targets = label_indices(who, yy, k).tolist()
    out = torch.empty(n, k)
    col_slot = np.full(d, -1)
    col_base = np.full(d, -1)
    known = np.zeros(d, dtype=bool)

    def refresh() -> None:
        for j, name in enumerate(names):
            col_slot[j] = learner._slot.get(name, -1)
            col_base[j] = learner._base_pos.get(name, -1)
            known[j] = learner._known(name)

    refresh()
    step = learner._step
    try:
        with torch.inference_mode():
            for lo in range(0, n, _CHUNK):
                hi = min(lo + _CHUNK, n)
                mb = m[lo:hi]
                inputs = _ChunkInputs(learner, X[lo:hi], mb, col_slot, col_base)
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
                        learner._register([names[j] for j in np.flatnonzero(new)])
                        refresh()
                        XA, MA, XB = inputs.tensors(col_slot, col_base)
                        step(XB[i], XA[i], MA[i], targets[t])
                        later = np.flatnonzero((mb[i + 1 :] & ~known).any(axis=1))
                        next_new = int(later[0]) + i + 1 if later.size else -1
                    else:
                        out[t] = step(XB[i], XA[i], MA[i], targets[t])
                    learner._n_seen += 1
                    if progress is not None and (t + 1) % 256 == 0:
                        progress(t + 1)
                inputs.commit(col_slot, col_base)
    except Diverged:
        # Raised before the step's update: the learner stays as it was at this row.
        raise Diverged(f"{learner._diverged_message()} (row {learner._n_seen})") from None
    if progress is not None:
        progress(n)
    q = out.numpy().astype(np.float64)
    return q / q.sum(axis=1, keepdims=True)


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
