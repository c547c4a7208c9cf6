"""Text features are categories, one-hot encoded online; odd columns give no NaN (issue 18).

Before issue 18, text was refused (issue 15's check): ``{"colour": "red"}`` raised. Now the
text value ``v`` of feature ``k`` is the input ``OneHot(k, v) = 1``, with a 0 for every
category of ``k`` learned from before; a category first seen later is a new input, absent
until then; a missing ``k`` leaves all its categories absent.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

from auxlab.online import LEARNERS, OnlineLogistic, iter_dicts, progressive_evaluate
from auxlab.online import _inputs as inputs_module
from auxlab.online._inputs import OneHot, stream_arrays

# Every learner, in every mode it has (OnlineLogistic has only ours).
MODES = [
    (name, mode)
    for name in sorted(LEARNERS)
    for mode in ([None] if name == "logistic" else [None, "paper", "code"])
]


def _make(name, mode=None, **kw):
    cls = LEARNERS[name]
    if name != "logistic":
        kw["faithful"] = mode
        kw.setdefault("seed", 0)
    if name in ("hbp", "auxdrop"):
        kw.update(n_layers=3, n_units=8)
    if name == "auxdrop":
        kw.update(aux_units=40)
    if name == "auxnet":
        kw.update(n_base_layers=2, n_end_layers=2, n_units=8, base_features=1)
    return cls(**kw)


def _odd_stream(n=80, seed=0):
    """Numbers, text (one category arrives late), a constant and a never-present column."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 5), dtype=object)
    X[:, 0] = rng.normal(size=n)
    X[:, 1] = rng.choice(["a", "b", "c"], size=n)
    X[: n // 3, 1] = rng.choice(["a", "b"], size=n // 3)  # "c" first seen later
    X[5, 1] = None
    X[:, 2] = 7.0  # constant
    X[:, 3] = None  # never present
    X[:, 4] = ["1.5" if u < 0.5 else 1.5 for u in rng.random(n)]  # text and numbers
    y = (X[:, 0].astype(float) > 0) ^ (X[:, 1] == "c")
    mask = rng.random((n, 5)) < 0.8
    return X, y, mask, ["num", "cat", "const", "never", "mixed"]


@pytest.mark.parametrize(("name", "mode"), MODES)
def test_array_path_equals_dict_path_with_text_constant_and_absent_columns(name, mode):
    X, y, mask, names = _odd_stream()
    a = _make(name, mode)
    P = a.learn_predict_stream(X, y, mask, names)
    b = _make(name, mode)
    Q = []
    for x, label in iter_dicts(X, y, mask, names):
        Q.append([b.predict_proba_one(x)[k] for k in (False, True)])
        b.learn_one(x, label)
    assert np.isfinite(P).all()
    np.testing.assert_array_equal(P, np.asarray(Q))
    assert a._slot == b._slot
    assert a._categories == b._categories
    assert "never" not in a._slot  # a feature never present gets no input


@pytest.mark.parametrize(("name", "mode"), MODES)
def test_constant_and_never_present_features_give_no_nan(name, mode):
    rng = np.random.default_rng(3)
    n = 60
    X = np.column_stack([rng.normal(size=n), np.full(n, 4.0), np.full(n, np.nan)])
    y = X[:, 0] > 0
    model = _make(name, mode)
    P = model.learn_predict_stream(X, y, feature_names=["x", "const", "never"])
    assert np.isfinite(P).all()
    proba = model.predict_proba_one({"x": 0.3, "const": 4.0, "never": None})
    assert all(np.isfinite(list(proba.values())))
    if mode is None:  # the constant enters as its z-score, 0; the learner still learns
        assert progressive_evaluate(model, X, y).metrics["balanced_accuracy"] > 60


def test_text_becomes_one_hot_inputs_and_a_late_category_a_new_one():
    model = OnlineLogistic()
    model.learn_one({"colour": "red", "size": 1.0}, True)
    model.learn_one({"colour": "blue", "size": 2.0}, False)
    assert set(model._slot) == {"size", OneHot("colour", "red"), OneHot("colour", "blue")}
    assert model._known_categories("colour") == ["red", "blue"]
    # A known category of a present feature enters as 0; an unseen one is ignored.
    values = model._values({"colour": "green"})
    assert values == {
        OneHot("colour", "red"): 0.0,
        OneHot("colour", "blue"): 0.0,
        OneHot("colour", "green"): 1.0,
    }
    before = model.predict_proba_one({"colour": "green"})
    assert OneHot("colour", "green") not in model._slot  # predicting adds nothing
    model.learn_one({"colour": "green"}, True)
    assert OneHot("colour", "green") in model._slot
    assert model.predict_proba_one({"colour": "green"}) != before


def test_a_missing_text_feature_leaves_all_its_categories_absent():
    model = OnlineLogistic()
    for t in range(10):
        model.learn_one({"c": "ab"[t % 2], "x": float(t)}, t % 2 == 0)
    assert model._values({"c": None, "x": 1.0}) == {"x": 1.0}
    assert model.predict_proba_one({"c": None, "x": 1.0}) == model.predict_proba_one({"x": 1.0})


def test_text_is_never_cast_to_a_number():
    model = OnlineLogistic()
    model.learn_one({"a": "1.5"}, True)
    assert list(model._slot) == [OneHot("a", "1.5")]
    model.learn_one({"a": 1.5}, False)
    assert set(model._slot) == {OneHot("a", "1.5"), "a"}


def test_a_mask_hides_text_cells():
    X, y, mask, names = _odd_stream()
    hidden = X.copy()
    hidden[~mask] = None
    np.testing.assert_array_equal(
        OnlineLogistic().learn_predict_stream(X, y, mask, names),
        OnlineLogistic().learn_predict_stream(hidden, y, None, names),
    )


def test_categories_learned_in_an_earlier_call_are_known_in_the_next():
    X, y, mask, names = _odd_stream()
    whole = OnlineLogistic().learn_predict_stream(X, y, mask, names)
    model = OnlineLogistic()
    first = model.learn_predict_stream(X[:40], y[:40], mask[:40], names)
    # The second part starts with known categories: "c" never re-appears as new.
    second = model.learn_predict_stream(X[40:], y[40:], mask[40:], names)
    np.testing.assert_array_equal(np.vstack([first, second]), whole)


def test_categories_survive_pickling_and_cloning():
    model = OnlineLogistic()
    model.learn_one({"c": "a"}, True)
    model.learn_one({"c": "b"}, False)
    twin = pickle.loads(pickle.dumps(model))
    assert twin._known_categories("c") == ["a", "b"]
    assert twin.predict_proba_one({"c": "a"}) == model.predict_proba_one({"c": "a"})
    assert model.clone(include_attributes=True)._known_categories("c") == ["a", "b"]
    fresh = model.clone()
    fresh.learn_one({"x": 1.0}, True)
    assert fresh._known_categories("c") == []


def test_iter_dicts_keeps_text():
    X, y, _, names = _odd_stream(n=10)
    rows = list(iter_dicts(X, y, None, names))
    assert rows[0][0]["cat"] == X[0, 1]
    assert isinstance(rows[0][0]["cat"], str)
    assert "never" not in rows[0][0]
    assert "cat" not in rows[5][0]  # None is missing


def test_array_path_one_hot_columns_follow_the_originals():
    X = np.array([["a", 1.0], ["b", 2.0], [None, 3.0], ["a", np.nan]], dtype=object)
    Xf, m, names = stream_arrays("t", X, None, ["c", "x"])
    assert names == ["c", "x", OneHot("c", "a"), OneHot("c", "b")]
    np.testing.assert_array_equal(Xf[:, 2:], [[1, 0], [0, 1], [0, 0], [1, 0]])
    # "b" is unavailable before its first row, both are absent where c is missing.
    np.testing.assert_array_equal(m[:, 2:], [[1, 0], [1, 1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(m[:, :2], [[0, 1], [0, 1], [0, 1], [0, 0]])
    _, m2, names2 = stream_arrays("t", X, None, ["c", "x"], known=lambda k: ["z"])
    assert names2[2] == OneHot("c", "z")
    np.testing.assert_array_equal(m2[:, 2], [1, 1, 0, 1])  # a known category: from the start


def test_an_all_text_array_is_categories():
    X = np.array([["a", "x"], ["b", "x"], ["a", "y"]])
    model = OnlineLogistic()
    P = model.learn_predict_stream(X, np.array([1, 0, 1]))
    assert np.isfinite(P).all()
    assert set(model._slot) == {OneHot(0, "a"), OneHot(0, "b"), OneHot(1, "x"), OneHot(1, "y")}


def test_too_many_distinct_text_values_are_refused_on_the_array_path(monkeypatch):
    monkeypatch.setattr(inputs_module, "MAX_ONE_HOT_CELLS", 100)
    X = np.array([[str(v)] for v in np.linspace(0, 1, 20)])
    with pytest.raises(ValueError, match=r"feature 0 holds 20 distinct text values.*float\(\)"):
        OnlineLogistic().learn_predict_stream(X, np.arange(20) % 2)


def test_one_hot_names_that_clash_with_a_feature_name_are_refused():
    X = np.array([["a", 1.0]], dtype=object)
    with pytest.raises(ValueError, match=r"clash with the feature names"):
        stream_arrays("t", X, None, ["c", OneHot("c", "a")])


@pytest.mark.skipif(importlib.util.find_spec("river") is None, reason="river not installed")
def test_encoding_matches_rivers_one_hot_encoder_when_every_feature_is_present():
    from river.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    stream = [{"c": str(rng.choice(["a", "b", "c"])), "d": str(rng.choice(["u", "v"]))}]
    stream += [{"c": str(rng.choice(["a", "b", "c", "e"])), "d": "v"} for _ in range(30)]
    ours, theirs = OnlineLogistic(), OneHotEncoder()
    ours._ensure()
    for x in stream:
        mine = {f"{k.feature}_{k.category}": v for k, v in ours._values(x).items()}
        assert mine == theirs.transform_one(x)
        ours.learn_one(x, True)
        theirs.learn_one(x)


def _has_mlbench() -> bool:
    from auxlab.datasets import MissingMlbench
    from auxlab.datasets._mlbench import mlbench_folder

    try:
        mlbench_folder()
    except MissingMlbench:
        return False
    return True


@pytest.mark.skipif(not _has_mlbench(), reason="mlbench not installed (r-cran-mlbench)")
@pytest.mark.parametrize("name", ["house_votes84", "breast_cancer"])
def test_real_factor_data_learns(name):
    from auxlab.datasets import load_binary_stream

    s = load_binary_stream(name, p=0.5)
    res = progressive_evaluate(OnlineLogistic(), s.X, s.y, s.mask, s.feature_names)
    # Published protocol, p = .5: 88.07 and 91.68 when written (majority class: 50).
    assert res.metrics["balanced_accuracy"] > 80
