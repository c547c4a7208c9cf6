"""HedgeEnsemble: the hedge over a deep learner and the online logistic model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auxlab.online import (
    LEARNERS,
    HedgeBackprop,
    HedgeEnsemble,
    OnlineLogistic,
    haphazard_mask,
    hedge_mixture,
    iter_dicts,
)
from auxlab.online._ensemble import _HedgeState


def _stream(n=80, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0.3).astype(int)
    mask = haphazard_mask("variable_p", n, d, p=0.6, seed=seed)
    return X, y, mask


def _small(seed=0):
    return HedgeEnsemble(
        members=[
            HedgeBackprop(n_layers=2, n_units=6, seed=seed),
            OnlineLogistic(class_weight="balanced"),
        ]
    )


def test_dict_path_is_the_array_path():
    X, y, mask = _stream()
    a, b = _small(), _small()
    arr = a.learn_predict_stream(X, y, mask)
    rows = []
    for x, label in iter_dicts(X, y, mask):
        p = b.predict_proba_one(x)
        rows.append([p[False], p[True]])
        b.learn_one(x, label)
    np.testing.assert_allclose(np.array(rows), arr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-12)


def test_the_run_is_its_members_runs_then_the_mixture():
    # What benchmarks/online_generalisation.py relies on: members learn on their own.
    X, y, mask = _stream(seed=1)
    ens = _small(seed=3)
    mix = ens.clone().learn_predict_stream(X, y, mask)
    members = [m.clone().learn_predict_stream(X, y, mask) for m in ens.members]
    again, _ = hedge_mixture(np.stack(members), y)
    np.testing.assert_array_equal(mix, again)


def test_weights_by_hand_on_two_rows():
    # Round 1: uniform. Loss c * (1 - p_y)^2, c = 1 on the first row (no label seen yet).
    probas = np.array([[[0.2, 0.8], [0.5, 0.5]], [[0.6, 0.4], [0.5, 0.5]]])
    y = np.array([1, 0])
    mix, w = hedge_mixture(probas, y)
    np.testing.assert_allclose(w[0], [0.5, 0.5])
    losses = np.array([(1 - 0.8) ** 2, (1 - 0.4) ** 2])
    eta = math.sqrt(8 * math.log(2) / 2)
    expect = np.exp(-eta * (losses - losses.min()))
    np.testing.assert_allclose(w[1], expect / expect.sum())
    np.testing.assert_allclose(mix[1], w[1] @ probas[:, 1])


def test_class_weight_of_the_hedged_loss():
    # c_t = (min_k n_k + 1) / (n_y + 1) from the labels before row t: the rarest class so far
    # weighs 1. Member A always says 1/2, member B always says class 1 for sure.
    probas = np.array([[[0.5, 0.5]] * 4, [[0.0, 1.0]] * 4])
    state = _HedgeState(2, 2)
    hedge_mixture(probas, np.array([1, 1, 1, 0]), state=state)
    np.testing.assert_allclose(state.cum, [0.25 * (1 + 1 / 2 + 1 / 3 + 1), 1.0])
    assert state.t == 4
    assert state.counts.tolist() == [1.0, 3.0]


@pytest.mark.parametrize("eta", [None, 0.3])
def test_regret_bound_on_an_adversarial_sequence(eta):
    rng = np.random.default_rng(0)
    N, T, K = 3, 2000, 2
    probas = rng.dirichlet([0.3, 0.3], size=(N, T))
    probas[0] = np.clip(probas[0] * 0.2 + 0.4, 0, 1)  # a cautious member
    probas[0] /= probas[0].sum(1, keepdims=True)
    y = rng.integers(0, K, size=T)
    mix, _ = hedge_mixture(probas, y, eta=eta)
    onehot = np.eye(K)[y]
    counts = np.cumsum(onehot, 0) - onehot
    c = (counts.min(1) + 1) / (counts[np.arange(T), y] + 1)
    member = (c * 0.5 * ((probas - onehot) ** 2).sum(2)).sum(1)
    ours = (c * 0.5 * ((mix - onehot) ** 2).sum(1)).sum()
    bound = (
        2 * math.sqrt(T * math.log(N) / 2) + math.sqrt(math.log(N) / 8)
        if eta is None
        else math.log(N) / eta + eta * T / 8
    )
    assert ours - member.min() <= bound
    assert ours <= member.max()  # convexity: never worse than the worst member


def test_follows_the_better_member():
    X, y, mask = _stream(n=400, seed=2)
    good = OnlineLogistic(class_weight="balanced")
    bad = OnlineLogistic(lr=1e-6)  # learns nothing: predicts 1/2
    ens = HedgeEnsemble(members=[bad, good])
    ens.learn_predict_stream(X, y, mask)
    assert ens.weights[1] > 0.75


def test_defaults_and_value_semantics():
    ens = HedgeEnsemble(seed=4)
    assert HedgeEnsemble not in LEARNERS.values()  # LEARNERS: the single learners
    kinds = [type(m) for m in ens.members_]
    assert kinds == [HedgeBackprop, OnlineLogistic]
    assert ens.members_[0].seed == 4
    assert ens.members_[1].class_weight == "balanced"
    given = [OnlineLogistic(), OnlineLogistic(lr=0.3)]
    ens = HedgeEnsemble(members=given)
    ens.learn_one({"a": 1.0}, True)
    assert not getattr(given[0], "_built", False)  # the arguments are cloned, not trained
    twin = ens.clone()
    assert twin.weights.tolist() == [0.5, 0.5]


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="n_classes"):
        HedgeEnsemble(members=[OnlineLogistic(n_classes=3)]).learn_one({"a": 1.0}, True)
    with pytest.raises(ValueError, match="eta must be"):
        HedgeEnsemble(eta=-1.0).learn_one({"a": 1.0}, True)
    with pytest.raises(ValueError, match="members is empty"):
        HedgeEnsemble(members=[]).predict_one({"a": 1.0})
    with pytest.raises(TypeError, match="not an auxlab online learner"):
        HedgeEnsemble(members=[object()]).predict_one({"a": 1.0})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="label"):
        HedgeEnsemble().learn_one({"a": 1.0}, "maybe")


def test_river_sees_a_classifier():
    river = pytest.importorskip("river")
    assert isinstance(HedgeEnsemble(), river.base.Classifier)


def test_library_defaults_are_the_whole_pool_choice_of_the_stored_selection():
    # benchmarks/online_defaults.py chose these by leave-one-data-set-out; the constructors'
    # defaults (ours) must be what it chose on the whole pool, not values set by hand.
    import json
    from pathlib import Path

    from auxlab.online import AuxDrop, AuxNet

    path = Path(__file__).resolve().parents[1] / "benchmarks/results/online_defaults.json"
    chosen = {
        r["learner"]: r["config"] for r in json.loads(path.read_text()) if r["kind"] == "whole_pool"
    }
    effective = {
        "HedgeBackprop": lambda m, k: {"lr": m._lr, "beta": m._beta}.get(k, getattr(m, k)),
        "AuxDrop": lambda m, k: {"lr": m._lr, "beta": m._beta, "dropout": m._dropout}.get(
            k, getattr(m, k)
        ),
        "AuxNet": lambda m, k: {"lr": m._lr, "beta": m._beta}.get(k, getattr(m, k)),
    }
    classes = {"HedgeBackprop": HedgeBackprop, "AuxDrop": AuxDrop, "AuxNet": AuxNet}
    assert set(chosen) == set(classes)
    for name, config in chosen.items():
        model = classes[name]()
        for key, value in config.items():
            assert effective[name](model, key) == value, (name, key)


def test_text_features_reach_every_member_alike():
    # Text categories are one-hot encoded online by each member; dict path = array path.
    rng = np.random.default_rng(5)
    n = 60
    X = np.empty((n, 2), dtype=object)
    X[:, 0] = rng.choice(["red", "green", "blue"], size=n)
    X[:, 1] = rng.normal(size=n)
    X[rng.random(n) < 0.2, 0] = None
    y = (X[:, 0] == "red").astype(int)
    a, b = _small(seed=1), _small(seed=1)
    arr = a.learn_predict_stream(X, y)
    rows = []
    for t in range(n):
        x = {j: X[t, j] for j in range(2) if X[t, j] is not None}
        p = b.predict_proba_one(x)
        rows.append([p[False], p[True]])
        b.learn_one(x, bool(y[t]))
    np.testing.assert_allclose(np.array(rows), arr, rtol=0, atol=1e-12)
    assert arr[-10:, 1][y[-10:] == 1].mean() > 0.5
