"""Haphazard stream generators, metrics and progressive evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from auxlab.online import (
    OnlineLogistic,
    classification_metrics,
    haphazard_mask,
    iter_dicts,
    progressive_evaluate,
    summarise,
    trapezoidal_mask,
    window_mask,
)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])
def test_variable_p_availability_rate_and_base_features(p):
    m = haphazard_mask("variable_p", 20_000, 10, p=p, seed=1, n_base=2, at_least_one=False)
    assert m[:, :2].all()
    assert m[:, 2:].mean() == pytest.approx(p, abs=0.01)
    again = haphazard_mask("variable_p", 20_000, 10, p=p, seed=1, n_base=2, at_least_one=False)
    assert np.array_equal(m, again)
    other = haphazard_mask("variable_p", 20_000, 10, p=p, seed=2, n_base=2, at_least_one=False)
    assert not np.array_equal(m, other)


def test_at_least_one_feature_per_row_and_nan_respected():
    X = np.ones((2000, 4))
    X[:, 1] = np.nan
    m = haphazard_mask("variable_p", 2000, 4, p=0.1, seed=0, X=X)
    assert m.any(axis=1).all()
    assert not m[:, 1].any()
    assert m.mean() < 0.1 + 0.2  # only the empty rows were repaired


def test_chunked_schemes():
    t = trapezoidal_mask(100, 10)
    assert t[:10].sum(1).tolist() == [1] * 10
    assert t[-1].all()
    s = haphazard_mask("sudden", 100, 10, at_least_one=False)
    assert s.sum(1)[0] == 1
    assert s[-1].all()
    assert (np.diff(s.sum(1)) >= 0).all()
    o = haphazard_mask("obsolete", 100, 10, at_least_one=False)
    assert o[0].all()
    assert o.sum(1)[-1] == 1
    # Obsolete features never come back.
    for j in range(10):
        gone = np.flatnonzero(~o[:, j])
        assert gone.size == 0 or not o[gone[0] :, j].any()
    r = haphazard_mask("reappearing", 100, 10, at_least_one=False)
    assert r[0, :5].all()
    assert not r[0, 5:].any()
    assert r[20, :5].all()
    assert r[10, 5:].all()
    assert not r[10, :5].any()
    w = window_mask(10, 4, starts=[0, 2], ends=[5, 8], n_base=2)
    assert w[:, :2].all()
    assert w[:, 2].tolist() == [True] * 5 + [False] * 5
    i = haphazard_mask("intrinsic", 3, 2, X=np.array([[1, np.nan], [np.nan, np.nan], [1, 1.0]]))
    assert i.tolist() == [[True, False], [False, False], [True, True]]
    with pytest.raises(ValueError, match="unknown kind"):
        haphazard_mask("random", 3, 2)


def test_iter_dicts_drops_missing_keys():
    X = np.array([[1.0, 2.0], [3.0, np.nan]])
    rows = list(
        iter_dicts(X, np.array([1, 0]), np.array([[True, False], [True, True]]), ["a", "b"])
    )
    assert rows == [({"a": 1.0}, True), ({"a": 3.0}, False)]


def test_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.clip(rng.random(300) * 0.7 + 0.3 * y, 0, 1)
    s[:30] = 0.5  # ties
    proba = np.stack([1 - s, s], 1)
    m = classification_metrics(y, proba)
    pos, neg = s[y == 1], s[y == 0]
    auc = ((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum()) / (pos.size * neg.size)
    assert m["auroc"] == pytest.approx(100 * auc)
    pred = (s > 0.5).astype(int)  # argmax breaks the tie at 0.5 to class 0
    assert m["errors"] == (pred != y).sum()
    recalls = [(pred[y == c] == c).mean() for c in (0, 1)]
    assert m["balanced_accuracy"] == pytest.approx(50 * sum(recalls))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(np.where(y == 1, s, 1 - s))))
    assert 0 < m["auprc"] <= 100
    # The "code" loss: CrossEntropyLoss on probabilities, in [log(1+e^-1), log(1+e)] for K=2.
    assert np.log(1 + np.exp(-1)) <= m["code_loss"] <= np.log(1 + np.e)


def test_progressive_evaluate_reports_the_majority_baseline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.1 * rng.normal(size=400) > 0.5).astype(int)
    res = progressive_evaluate(OnlineLogistic(lr=0.5), X, y)
    assert res.majority["errors"] == min(y.sum(), len(y) - y.sum())
    assert res.majority["balanced_accuracy"] == 50.0
    assert res.metrics["balanced_accuracy"] > 80
    assert res.seconds > 0
    assert res.n == 400
    assert summarise([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
