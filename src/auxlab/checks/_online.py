"""Conformance checks every online learner must pass, public so users can test theirs.

Each check takes a learner with river's verbs (``learn_one``, ``predict_proba_one``,
``predict_one``, ``clone``) and raises ``AssertionError`` naming the learner and the broken
property. :func:`check_online_learner` runs them all. Learners that also have auxlab's array
path (``learn_predict_stream``) are checked to give the same predictions on both paths.

The checks build small synthetic streams (a linear rule on 6 features) whose features
appear, disappear for good, reappear, or all vanish but one.
"""

from __future__ import annotations

import copy
import gc
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ONLINE_CHECKS",
    "check_appearing_features",
    "check_array_path_matches_dict_path",
    "check_bounded_memory",
    "check_broken_input",
    "check_clone_independent",
    "check_disappearing_features",
    "check_inputs_not_mutated",
    "check_online_learner",
    "check_predict_before_learning",
    "check_seeded",
    "online_checks",
    "synthetic_stream",
]


def _require(condition: object, message: str) -> None:
    # Not `assert`: the checks must also fail under `python -O`.
    if not condition:
        raise AssertionError(message)


def _name(learner: Any) -> str:
    return type(learner).__name__


def synthetic_stream(
    n: int = 120, d: int = 6, seed: int = 0, kind: str = "full"
) -> list[tuple[dict[str, float], bool]]:
    """A small labelled stream of dicts; ``kind`` decides which features each row has.

    ``"full"``: all; ``"appearing"``: feature ``j`` from row ``j·n/(2d)`` on;
    ``"disappearing"``: feature ``j`` until row ``n/2 + j·n/(2d)``, never after (the last
    rows keep one feature); ``"reappearing"``: halves alternate every ``n/6`` rows;
    ``"random"``: each feature with probability 0.5 (at least one per row).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.arange(1, d + 1) + np.arange(d)
    w = rng.normal(size=d)
    y = ((X - np.arange(d)) / np.arange(1, d + 1)) @ w > 0
    rows = np.arange(n)[:, None]
    cols = np.arange(d)[None, :]
    if kind == "full":
        mask = np.ones((n, d), dtype=bool)
    elif kind == "appearing":
        mask = rows >= cols * n // (2 * d)
    elif kind == "disappearing":
        mask = rows < n // 2 + cols * n // (2 * d)
        mask[:, -1] = True
    elif kind == "reappearing":
        first = cols < d // 2
        mask = np.where(((rows // max(n // 6, 1)) % 2 == 0), first, ~first)
    elif kind == "random":
        mask = rng.random((n, d)) < 0.5
        mask[~mask.any(1), 0] = True
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return [
        ({f"f{j}": float(X[t, j]) for j in range(d) if mask[t, j]}, bool(y[t])) for t in range(n)
    ]


def _check_proba(learner: Any, proba: Any, where: str) -> None:
    _require(isinstance(proba, dict) and proba, f"{_name(learner)}: {where}: got {proba!r}")
    total = 0.0
    for k, v in proba.items():
        _require(
            isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0,
            f"{_name(learner)}: {where}: probability of {k!r} is {v!r}",
        )
        total += v
    _require(
        math.isclose(total, 1.0, rel_tol=1e-9, abs_tol=1e-9),
        f"{_name(learner)}: {where}: probabilities sum to {total}",
    )


def _run(learner: Any, stream: Sequence[tuple[dict[str, float], Any]], what: str) -> list[Any]:
    out = []
    for t, (x, y) in enumerate(stream):
        proba = learner.predict_proba_one(x)
        _check_proba(learner, proba, f"{what}, instance {t}")
        _require(
            learner.predict_one(x) == max(proba, key=proba.__getitem__),
            f"{_name(learner)}: predict_one disagrees with predict_proba_one ({what}, {t})",
        )
        out.append(proba)
        learner.learn_one(x, y)
    return out


def check_predict_before_learning(learner: Any) -> None:
    """A fresh learner predicts a valid distribution, and predicting changes nothing."""
    stream = synthetic_stream(40)
    fresh = learner.clone()
    _check_proba(fresh, fresh.predict_proba_one(stream[0][0]), "before any learning")
    _check_proba(fresh, fresh.predict_proba_one({}), "empty input before any learning")
    a, b = learner.clone(), learner.clone()
    for t, (x, y) in enumerate(stream):
        for _ in range(3):
            a.predict_proba_one(x)
        a.learn_one(x, y)
        b.learn_one(x, y)
        pa, pb = a.predict_proba_one(x), b.predict_proba_one(x)
        _require(
            pa == pb,
            f"{_name(learner)}: predicting changed the learner: after instance {t} a learner "
            f"that also predicted gives {pa}, one that only learned gives {pb}",
        )


def check_appearing_features(learner: Any) -> None:
    """Features that appear over time (never seen before) are handled."""
    _run(learner.clone(), synthetic_stream(120, kind="appearing"), "appearing features")


def check_disappearing_features(learner: Any) -> None:
    """Features that disappear and never come back, or come and go, are handled."""
    _run(learner.clone(), synthetic_stream(120, kind="disappearing"), "disappearing features")
    _run(learner.clone(), synthetic_stream(120, kind="reappearing"), "reappearing features")
    model = learner.clone()
    stream = synthetic_stream(60)
    _run(model, stream[:30], "all features")
    one = [({"f2": x["f2"]}, y) for x, y in stream[30:]]
    _run(model, one, "all features but one gone")
    _check_proba(model, model.predict_proba_one({}), "no feature at all")


def check_inputs_not_mutated(learner: Any) -> None:
    """Learning and predicting leave ``x`` and ``y`` alone, and keep no reference to ``x``.

    Mutating ``x`` after learning from it does not change the learner.
    """
    model = learner.clone()
    for x, y in synthetic_stream(30, kind="random"):
        xx, yy = copy.deepcopy(x), copy.deepcopy(y)
        model.predict_proba_one(x)
        model.predict_one(x)
        model.learn_one(x, y)
        _require(x == xx and y == yy, f"{_name(learner)} mutated its input {xx} -> {x}")
    x, y = synthetic_stream(1, seed=1)[0]
    model.learn_one(x, y)
    before = model.predict_proba_one(dict(x))
    for k in list(x):
        x[k] += 1e9
    x.clear()
    _require(
        model.predict_proba_one(dict(xx)) == model.predict_proba_one(dict(xx))
        and before == model.predict_proba_one(synthetic_stream(1, seed=1)[0][0]),
        f"{_name(learner)} keeps a reference to an input dict",
    )


def _memory(model: Any) -> int:
    gc.collect()
    usage = getattr(model, "_raw_memory_usage", None)
    return int(usage) if usage is not None else len(pickle.dumps(model))


def check_bounded_memory(learner: Any) -> None:
    """On a fixed set of features, memory does not grow with the number of instances."""
    model = learner.clone()
    stream = synthetic_stream(300, kind="random", seed=3)
    for x, y in stream[:100]:
        model.learn_one(x, y)
    first = _memory(model)
    for x, y in stream[100:]:
        model.learn_one(x, y)
    last = _memory(model)
    _require(
        last - first <= max(4096, first // 20),
        f"{_name(learner)}'s memory grew from {first} to {last} bytes over 200 instances on "
        "the same features; an online learner must not keep instances",
    )


def check_clone_independent(learner: Any) -> None:
    """``clone()`` starts fresh and shares nothing with the original."""
    a = learner.clone()
    stream = synthetic_stream(30, kind="random")
    ref = [a.clone().predict_proba_one(x) for x, _ in stream[:3]]
    twin = a.clone()
    for x, y in stream:
        a.learn_one(x, y)
    _require(
        [twin.predict_proba_one(x) for x, _ in stream[:3]] == ref,
        f"training a learner changed its clone ({_name(learner)})",
    )
    again = a.clone()
    _require(
        [again.predict_proba_one(x) for x, _ in stream[:3]] == ref,
        f"the clone of a trained {_name(learner)} is not fresh",
    )


def check_seeded(learner: Any) -> None:
    """Two clones (same arguments, same seed) make the same predictions on the same stream."""
    stream = synthetic_stream(60, kind="random", seed=2)
    a = _run(learner.clone(), stream, "first run")
    b = _run(learner.clone(), stream, "second run")
    _require(a == b, f"{_name(learner)} is not reproducible: two identical runs differ")


def check_array_path_matches_dict_path(learner: Any) -> None:
    """``learn_predict_stream`` gives the predictions of ``predict_proba_one``/``learn_one``."""
    if not hasattr(learner, "learn_predict_stream"):
        return
    for kind in ("random", "appearing", "disappearing"):
        stream = synthetic_stream(80, kind=kind, seed=4)
        names = [f"f{j}" for j in range(6)]
        X = np.array([[x.get(k, np.nan) for k in names] for x, _ in stream])
        mask = ~np.isnan(X)
        y = np.array([int(v) for _, v in stream])
        X_before = X.copy()
        arr = learner.clone().learn_predict_stream(X, y, mask, names)
        _require(
            np.array_equal(X, X_before, equal_nan=True),
            f"{_name(learner)}.learn_predict_stream mutated X",
        )
        model = learner.clone()
        labels = None
        for t, (x, yv) in enumerate(stream):
            proba = model.predict_proba_one(x)
            labels = labels or list(proba)
            row = np.array([proba[k] for k in labels])
            _require(
                np.allclose(row, arr[t], rtol=1e-6, atol=1e-7),
                f"{_name(learner)}: array path {arr[t]} != dict path {row} at instance {t} "
                f"({kind} stream)",
            )
            model.learn_one(x, yv)


#: Feature values no learner may let poison it, and labels that are no binary class.
_BROKEN_VALUES: tuple[Any, ...] = (math.inf, -math.inf, 1e300, "abc", [1.0, 2.0])
_BROKEN_LABELS: tuple[Any, ...] = ("no", "0", 2, -1, 0.5)


def check_broken_input(learner: Any) -> None:
    """A broken value or label never poisons the learner.

    After some learning, ``learn_one`` gets instances whose feature value is ``inf``,
    ``-inf``, ``1e300``, text or a list, old and new features alike, and (for a binary
    learner) labels that are no class (``"no"``, ``"0"``, ``2``, ``-1``, ``0.5``). A learner
    may refuse one (raise): it is then unchanged, and predicts exactly as before. If it
    accepts one, its predictions stay valid distributions while it goes on learning.
    """
    stream = synthetic_stream(60, kind="random", seed=5)
    probe = stream[-1][0]
    model = learner.clone()
    for x, y in stream[:30]:
        model.learn_one(x, y)
    cases: list[tuple[dict[str, Any], Any]] = []
    for v in _BROKEN_VALUES:
        cases += [({"f0": v, "f1": 1.0}, True), ({"f0": 1.0, "unseen": v}, False)]
    binary = set(model.predict_proba_one(probe)) == {False, True}
    cases += [({"f0": 1.0}, label) for label in (_BROKEN_LABELS if binary else ())]
    for x, y in cases:
        before = model.predict_proba_one(probe)
        try:
            model.learn_one(x, y)
        except (ValueError, TypeError):
            after = model.predict_proba_one(probe)
            _require(
                after == before,
                f"{_name(learner)} refused learn_one({x!r}, {y!r}) but changed: it predicted "
                f"{before} before and {after} after",
            )
            continue
        try:
            _run(model, stream[30:40], f"after learn_one({x!r}, {y!r})")
        except (ValueError, ArithmeticError) as exc:
            raise AssertionError(
                f"{_name(learner)} accepted learn_one({x!r}, {y!r}), then failed on good "
                f"instances: {exc}"
            ) from exc


ONLINE_CHECKS: tuple[Callable[[Any], None], ...] = (
    check_predict_before_learning,
    check_appearing_features,
    check_disappearing_features,
    check_inputs_not_mutated,
    check_bounded_memory,
    check_clone_independent,
    check_seeded,
    check_array_path_matches_dict_path,
    check_broken_input,
)


def online_checks(learner: Any) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, thunk)`` pairs, for parametrising a test suite."""
    for check in ONLINE_CHECKS:
        yield check.__name__, (lambda c=check: c(learner))  # type: ignore[misc]


def check_online_learner(learner: Any, skip: Sequence[str] = ()) -> list[str]:
    """Run every online-learner check on ``learner``; return the names of the checks run.

    Raises:
        AssertionError: At the first broken property, with a message naming it.
        ValueError: If ``skip`` names an unknown check.

    Example:
        >>> from auxlab.online import OnlineLogistic
        >>> check_online_learner(OnlineLogistic())[:2]
        ['check_predict_before_learning', 'check_appearing_features']
    """
    known = {c.__name__ for c in ONLINE_CHECKS}
    unknown = set(skip) - known
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; checks are {sorted(known)}")
    names = []
    for name, run in online_checks(learner):
        if name in skip:
            continue
        run()
        names.append(name)
    return names
