"""Rank statistics shared by the batch metrics (:mod:`auxlab.objective`) and the online ones.

The core depends on torch and numpy only, so ROC AUC is computed here rather than taken from
scikit-learn (an optional extra); the tests check it against ``sklearn.metrics.roc_auc_score``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks", "roc_auc"]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties given the mean of the ranks they span.

    The same ranks as ``scipy.stats.rankdata(values, method="average")``, without a Python
    loop over the ties.

    Example:
        >>> average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist()
        [3.5, 1.0, 3.5, 2.0]
    """
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last member of each group of ties
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count one half).

    Returns NaN when ``y`` holds one class only (no pair to compare).

    Example:
        >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    positive = np.asarray(y).reshape(-1) > 0.5
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(s)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
