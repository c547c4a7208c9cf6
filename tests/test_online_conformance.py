"""Every online learner passes auxlab's online checks and, with river installed, river's."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from auxlab.checks._online import (
    check_array_path_matches_dict_path,
    check_online_learner,
    synthetic_stream,
)
from auxlab.online import AuxDrop, AuxNet, HedgeBackprop, OnlineLogistic

LEARNERS = {
    "hbp": HedgeBackprop(n_layers=3, n_units=8, seed=1),
    "hbp-code": HedgeBackprop(n_layers=3, n_units=8, faithful="code", seed=1),
    "auxnet": AuxNet(2, 2, 8, lr=0.05, seed=1),
    "auxnet-code": AuxNet(2, 2, 8, lr=0.05, faithful="code", seed=1),
    "auxdrop": AuxDrop(3, 8, aux_units=20, seed=1),
    "auxdrop-pos2-paper": AuxDrop(
        4, 8, aux_position=2, aux_units=20, base_features=1, faithful="paper", seed=1
    ),
    "auxdrop-ogd-code": AuxDrop(3, 8, aux_units=20, variant="ogd", faithful="code", seed=1),
    "logistic": OnlineLogistic(),
}

HAS_RIVER = importlib.util.find_spec("river") is not None
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None  # river.checks needs it


@pytest.mark.parametrize("name", list(LEARNERS))
def test_online_checks(name):
    names = check_online_learner(LEARNERS[name])
    assert "check_array_path_matches_dict_path" in names


def test_the_array_check_catches_a_learner_whose_paths_differ():
    class Broken(OnlineLogistic):
        def learn_predict_stream(self, X, y, mask=None, feature_names=None, progress=None):
            out = super().learn_predict_stream(X, y, mask, feature_names, progress)
            out[5] = out[5][::-1]
            return out

    with pytest.raises(AssertionError, match="array path"):
        check_array_path_matches_dict_path(Broken())


def test_the_checks_catch_a_learner_that_keeps_instances():
    class Hoarder(OnlineLogistic):
        def learn_one(self, x, y):
            self.__dict__.setdefault("seen", []).append(dict(x))
            super().learn_one(x, y)

    with pytest.raises(AssertionError, match="memory grew"):
        check_online_learner(Hoarder(), skip=["check_array_path_matches_dict_path"])


def test_array_path_equals_dict_path_on_a_haphazard_stream_with_nan():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5))
    X[rng.random(X.shape) < 0.4] = np.nan
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int)
    for model in (AuxDrop(3, 8, aux_units=20, seed=2), AuxNet(1, 2, 8, base_features=1)):
        arr = model.clone().learn_predict_stream(X, y)
        twin = model.clone()
        for t in range(len(y)):
            x = {j: X[t, j] for j in range(5)}  # NaN values count as missing
            p = twin.predict_proba_one(x)
            np.testing.assert_allclose([p[False], p[True]], arr[t], rtol=1e-6, atol=1e-7)
            twin.learn_one(x, bool(y[t]))


@pytest.mark.parametrize(
    "model",
    [
        AuxDrop(4, 8, aux_position=2, aux_units=20, base_features=2, seed=3),
        AuxNet(1, 2, 8, base_features=1, seed=3),
        AuxDrop(4, 8, aux_position=2, aux_units=20, base_features=2, faithful="code", seed=3),
        HedgeBackprop(n_layers=2, n_units=8, seed=3),
        OnlineLogistic(),
    ],
    ids=["auxdrop-base", "auxnet", "auxdrop-code", "hbp", "logistic"],
)
def test_array_path_is_the_dict_path_bit_for_bit_across_blocks_and_calls(model, monkeypatch):
    # Blocks of 7 rows (the array path's statistics restart from the learner's at each
    # block), a dict-path warm-up before, and dict-path learning after: every probability
    # and the state the array path leaves must be exactly the dict path's.
    from auxlab.online import _array_path

    monkeypatch.setattr(_array_path, "_CHUNK", 7)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 5)) * [1.0, 10.0, 0.1, 1.0, 100.0] + [0.0, 50.0, 0.0, 3.0, -7.0]
    X[rng.random(X.shape) < 0.45] = np.nan
    X[:12, 4] = np.nan  # a feature that appears late
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=60) > 0).astype(int)
    rows = [{j: X[t, j] for j in range(5)} for t in range(60)]
    arr, twin = model.clone(), model.clone()
    for t in range(10):
        arr.learn_one(rows[t], bool(y[t]))
    got = arr.learn_predict_stream(X[10:50], y[10:50])
    for t in range(10):
        twin.learn_one(rows[t], bool(y[t]))
    for t in range(10, 50):
        p = twin.predict_proba_one(rows[t])
        np.testing.assert_array_equal([p[False], p[True]], got[t - 10])
        twin.learn_one(rows[t], bool(y[t]))
    for t in range(50, 60):
        pa, pt = arr.predict_proba_one(rows[t]), twin.predict_proba_one(rows[t])
        assert pa == pt
        arr.learn_one(rows[t], bool(y[t]))
        twin.learn_one(rows[t], bool(y[t]))
    np.testing.assert_array_equal(arr._stats, twin._stats)
    np.testing.assert_array_equal(arr._bstats, twin._bstats)


def test_online_zscore_matches_the_batch_mean_and_std_of_earlier_values():
    from auxlab.online._features import _accumulate, _zscore

    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=50)
    stats = np.zeros((4, 1))
    for t, v in enumerate(values):
        z = _zscore(np.array([v]), np.array([True]), stats)[0]
        if t == 0:
            assert z == 0.0  # nothing seen yet: the mean
        elif t > 1:
            seen = values[:t]
            assert z == pytest.approx((v - seen.mean()) / seen.std(), rel=1e-9)
        _accumulate(stats, np.array([v]), np.array([True]))


river_only = pytest.mark.skipif(
    not (HAS_RIVER and HAS_SKLEARN), reason="river (the `online` extra) and scikit-learn needed"
)


def _river_checks(model, n):
    from river import checks, datasets

    rows = list(datasets.Phishing().take(n))
    ran = []
    for check in checks.yield_checks(model):
        name = check.__name__
        if name in model._unit_test_skips():
            continue
        kwargs = getattr(check, "keywords", {})
        if "dataset" in kwargs:
            check.func(model.clone(), dataset=iter(rows) if n else kwargs["dataset"])
        else:
            check(model.clone())
        ran.append(name)
    return ran


@river_only
@pytest.mark.parametrize("name", ["hbp", "auxnet", "auxdrop", "logistic"])
def test_river_checks_on_a_short_stream(name):
    ran = _river_checks(LEARNERS[name], 40)
    assert {"check_emerging_features", "check_predict_proba_one_binary"} <= set(ran)


@river_only
@pytest.mark.slow
@pytest.mark.parametrize("name", ["hbp", "auxnet", "auxdrop", "logistic"])
def test_river_check_estimator(name):
    from river import checks

    checks.check_estimator(LEARNERS[name])


@pytest.mark.skipif(not HAS_RIVER, reason="river (the `online` extra) not installed")
def test_runs_in_river_progressive_val_score():
    from river import base, datasets, evaluate, metrics

    model = AuxDrop(3, 16, aux_units=40, seed=0)
    assert isinstance(model, base.Classifier)
    stream = list(itertools.islice(datasets.Phishing(), 300))
    result = evaluate.progressive_val_score(stream, model, metrics.Accuracy())
    assert result.get() > 0.6
    assert model.n_aux == 9


def test_synthetic_streams_have_the_advertised_shapes():
    appearing = synthetic_stream(120, kind="appearing")
    assert len(appearing[0][0]) == 1
    assert len(appearing[-1][0]) == 6
    gone = synthetic_stream(120, kind="disappearing")
    assert len(gone[-1][0]) == 1
    last_seen = {k: t for t, (x, _) in enumerate(gone) for k in x}
    first_missing = {k: min(t for t, (x, _) in enumerate(gone) if k not in x) for k in last_seen
                     if k != "f5"}  # fmt: skip
    assert all(last_seen[k] < first_missing[k] + 1 for k in first_missing)  # never come back
