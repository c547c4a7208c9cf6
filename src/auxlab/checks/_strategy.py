"""The conformance checks every weighting strategy must pass, public so users can test theirs.

Each check takes a strategy and raises ``AssertionError`` with a message that names the
strategy and the property it broke. :func:`check_strategy` runs them all.

The checks feed a strategy hand-made :class:`~auxlab.weighting.Signals` (three tasks, random
positive losses, random per-task gradients and their Gramian, representation gradients and
validation losses), so they test the decision alone, without a model.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from auxlab.checks._signals import (
    TASKS,
    decision_weights,
    make_signals,
    realised_update,
    run_steps,
)
from auxlab.weighting._base import Signals, Strategy, as_decision

__all__ = [
    "STRATEGY_CHECKS",
    "check_strategy",
    "make_signals",
    "realised_update",
    "strategy_checks",
]


def _name(strategy: Strategy) -> str:
    return type(strategy).__name__


def _close(a: float, b: float, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


# ---------------------------------------------------------------------------------------------
# The checks.


def _require(condition: object, message: str) -> None:
    # Not `assert`: the checks must also fail under `python -O`.
    if not condition:
        raise AssertionError(message)


def check_finite_weights(strategy: Strategy) -> None:
    """Weights are finite, >= 0 and keyed by exactly the tasks, for several steps."""
    for decision, sig, _ in run_steps(strategy, 6):
        w = decision_weights(decision)
        _require(
            set(w) == set(sig.tasks),
            f"{_name(strategy)} returned weights for {sorted(w)}, tasks are {list(sig.tasks)}",
        )
        for t, v in w.items():
            _require(math.isfinite(v) and v >= 0, f"{_name(strategy)}: weight of {t} is {v}")
        upd = realised_update(decision, sig)
        _require(torch.isfinite(upd).all(), f"{_name(strategy)}: non-finite shared update")


def check_permutation(strategy: Strategy) -> None:
    """Reordering the auxiliary tasks reorders the weights (not for randomised strategies)."""
    if getattr(strategy, "randomized", False):
        return
    order = ("main", "aux2", "aux1")
    a = run_steps(strategy, 4)
    # Same signals, tasks listed in another order: build b's signals by permuting a's.
    s = strategy.clone()
    state = s.init(list(order), "main")
    for step, (dec_a, sig_a, _) in enumerate(a):
        idx = [sig_a.tasks.index(t) for t in order]
        assert sig_a.grads is not None
        assert sig_a.rep_grads is not None
        grads = sig_a.grads[idx]
        sig_b = Signals(
            step=step,
            tasks=order,
            main="main",
            losses={t: sig_a.losses[t] for t in order},
            grads=grads,
            gramian=grads @ grads.T,
            rep_grads=sig_a.rep_grads[idx],
            val_losses=sig_a.val_losses,
            val_grad=sig_a.val_grad,
            graph_losses=(
                {t: sig_a.graph_losses[t] for t in order} if sig_a.graph_losses else None
            ),
            params=sig_a.params,
        )
        value, state = s.update(sig_b, state)
        wa, wb = decision_weights(dec_a), decision_weights(as_decision(value))
        for t in order:
            _require(
                _close(wa[t], wb[t], 1e-6, 1e-9),
                f"{_name(strategy)} is not permutation-equivariant at step {step}: weight of "
                f"{t} is {wa[t]} with tasks {list(sig_a.tasks)} and {wb[t]} with {list(order)}",
            )
        ua = realised_update(dec_a, sig_a)
        ub = realised_update(as_decision(value), sig_b)
        _require(
            torch.allclose(ua, ub, rtol=1e-6, atol=1e-9),
            f"{_name(strategy)}: the shared update changes when the tasks are reordered",
        )


def check_identical_tasks(strategy: Strategy) -> None:
    """Two auxiliary tasks with identical losses and gradients get identical weights."""
    if getattr(strategy, "randomized", False):
        return
    s = strategy.clone()
    state = s.init(list(TASKS), "main")
    for step in range(4):
        sig = make_signals(step)
        assert sig.grads is not None
        assert sig.rep_grads is not None
        grads = sig.grads.clone()
        grads[2] = grads[1]
        rep = sig.rep_grads.clone()
        rep[2] = rep[1]
        losses = dict(sig.losses)
        losses["aux2"] = losses["aux1"]
        val = dict(sig.val_losses or {})
        val["aux2"] = val["aux1"]
        graph = dict(sig.graph_losses or {})
        if graph:
            graph["aux2"] = graph["aux1"]
        sig = Signals(
            step,
            TASKS,
            "main",
            losses,
            grads,
            grads @ grads.T,
            rep,
            val,
            sig.val_grad,
            graph or None,
            sig.params,
        )
        value, state = s.update(sig, state)
        w = decision_weights(as_decision(value))
        _require(
            _close(w["aux1"], w["aux2"], 1e-6, 1e-9),
            f"{_name(strategy)} gives identical tasks different weights at step {step}: "
            f"{w['aux1']} and {w['aux2']}",
        )


def check_scale_reaction(strategy: Strategy, factor: float = 1000.0) -> None:
    """The documented reaction (``scale_reaction``) to multiplying one loss by a constant.

    ``"invariant"``: the weights (or, for gradient aggregators, the direction of the shared
    update) do not change; ``"inverse"``: that task's weight is divided by the constant and
    the others do not change; ``"independent"``: the weights do not depend on the losses;
    ``"adaptive"`` and ``"none"``: only finiteness is checked.
    """
    reaction = getattr(strategy, "scale_reaction", None)
    _require(
        reaction in {"invariant", "inverse", "independent", "adaptive", "none"},
        f"{_name(strategy)} must document its reaction to loss scaling in a `scale_reaction` "
        "class attribute: 'invariant', 'inverse', 'independent', 'adaptive' or 'none'",
    )
    a = run_steps(strategy, 5)
    b = run_steps(strategy, 5, scale_task="aux1", factor=factor)
    for (da, sa, _), (db, sb, _) in zip(a, b, strict=True):
        wa, wb = decision_weights(da), decision_weights(db)
        for t, v in wb.items():
            _require(math.isfinite(v), f"{_name(strategy)}: weight of {t} is {v} after scaling")
        if reaction in {"adaptive", "none"}:
            continue
        aggregator = da.shared_grad is not None or da.shared_weights is not None
        if reaction == "invariant" and aggregator:
            ua, ub = realised_update(da, sa), realised_update(db, sb)
            cos = float(ua @ ub / (ua.norm() * ub.norm()).clamp_min(1e-300))
            _require(
                cos > 1 - 1e-6,
                f"{_name(strategy)} claims scale invariance, but multiplying aux1's loss by "
                f"{factor:g} turns its shared update by cos={cos:.6f} at step {sa.step}",
            )
            continue
        expected = dict(wa)
        if reaction == "inverse":
            expected["aux1"] = wa["aux1"] / factor
        for t in wa:
            _require(
                _close(wb[t], expected[t], 1e-5, 1e-12),
                f"{_name(strategy)} claims scale_reaction={reaction!r}, but after multiplying "
                f"aux1's loss by {factor:g} the weight of {t} is {wb[t]} instead of "
                f"{expected[t]} (step {sa.step})",
            )


def check_extreme_scales(strategy: Strategy) -> None:
    """No NaN or inf for losses and gradients from 1e-10 to 1e15, nor for zero gradients."""
    for scale in (1e-10, 1e-5, 1.0, 1e5, 1e15):
        for decision, _sig, _ in run_steps(strategy, 3, loss_scale=scale, grad_scale=scale):
            for t, v in decision_weights(decision).items():
                _require(
                    math.isfinite(v), f"{_name(strategy)}: weight of {t} is {v} at scale {scale}"
                )
    for decision, sig, _ in run_steps(strategy, 3, grad_scale=0.0):
        for t, v in decision_weights(decision).items():
            _require(
                math.isfinite(v), f"{_name(strategy)}: weight of {t} is {v} for zero gradients"
            )
        _require(
            torch.isfinite(realised_update(decision, sig)).all(),
            f"{_name(strategy)}: non-finite shared update for zero gradients",
        )


def _snapshot(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_snapshot(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_snapshot(v) for v in x)
    return copy.deepcopy(x)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and bool(torch.equal(a.detach(), b.detach()) or (a.isnan().all() and b.isnan().all()))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def check_purity(strategy: Strategy) -> None:
    """``update`` mutates neither the signals nor the state it is given."""
    s = strategy.clone()
    state = s.init(list(TASKS), "main")
    for step in range(4):
        sig = make_signals(step)
        before_sig = _snapshot(sig.__dict__)
        before_state = _snapshot(state)
        _, new_state = s.update(sig, state)
        _require(
            _same(before_sig, _snapshot(sig.__dict__)),
            f"{_name(strategy)}.update mutated its signals at step {step}",
        )
        _require(
            _same(before_state, _snapshot(state)),
            f"{_name(strategy)}.update mutated the state it was given at step {step}; return "
            "a new state instead",
        )
        state = new_state


def _structure(state: Any) -> Any:
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, tuple(_structure(v) for v in state))
    if isinstance(state, torch.Tensor):
        return ("tensor", tuple(state.shape), state.dtype)
    if isinstance(state, dict):
        return ("dict", tuple(sorted((k, _structure(v)) for k, v in state.items())))
    if isinstance(state, (list, tuple)):
        return (type(state).__name__, len(state))
    return type(state).__name__ if state is not None else "None"


def check_state_structure(strategy: Strategy) -> None:
    """The state is a NamedTuple whose structure (types, fields, shapes) stays the same."""
    s = strategy.clone()
    state = s.init(list(TASKS), "main")
    _require(
        isinstance(state, tuple) and hasattr(state, "_fields"),
        f"{_name(strategy)}.init must return a NamedTuple state, got {type(state).__name__}",
    )
    _, state = s.update(make_signals(0), state)
    first = _structure(state)
    for step in range(1, 5):
        _, state = s.update(make_signals(step), state)
        _require(
            _structure(state) == first,
            f"{_name(strategy)}'s state changed structure at step {step}: {first} -> "
            f"{_structure(state)}",
        )


def _trajectory(strategy: Strategy, steps: int = 5) -> list[dict[str, float]]:
    return [decision_weights(d) for d, _, _ in run_steps(strategy, steps)]


def check_clone(strategy: Strategy) -> None:
    """``clone()`` is independent: running it leaves the original's trajectory unchanged."""
    ref = _trajectory(strategy)
    twin = strategy.clone()
    state = twin.init(list(TASKS), "main")
    for step in range(3):
        _, state = twin.update(make_signals(step, seed=5), state)
    _require(_trajectory(strategy) == ref, f"running a clone of {_name(strategy)} changed it")
    own = {id(p) for p in strategy.parameters()}
    _require(
        not own & {id(p) for p in twin.parameters()},
        f"a clone of {_name(strategy)} shares learnable parameters with the original",
    )


def check_pickle(strategy: Strategy) -> None:
    """The strategy and its state survive pickling, and continue the same trajectory."""
    s = strategy.clone()
    state = s.init(list(TASKS), "main")
    for step in range(2):
        _, state = s.update(make_signals(step), state)
    s2 = pickle.loads(pickle.dumps(s))
    state2 = pickle.loads(pickle.dumps(state))
    for step in range(2, 5):
        va, state = s.update(make_signals(step), state)
        vb, state2 = s2.update(make_signals(step), state2)
        wa, wb = decision_weights(as_decision(va)), decision_weights(as_decision(vb))
        _require(
            wa.keys() == wb.keys() and all(_close(wa[k], wb[k], 1e-9, 0) for k in wa),
            f"{_name(strategy)} after pickling gives {wb} instead of {wa} at step {step}",
        )


def check_seeded(strategy: Strategy) -> None:
    """The same strategy (same seed) gives the same trajectory twice."""
    _require(
        _trajectory(strategy) == _trajectory(strategy),
        f"{_name(strategy)} gives different weights on two identical runs; randomness must come "
        "from a `seed` argument and live in the state",
    )


STRATEGY_CHECKS: tuple[Callable[[Strategy], None], ...] = (
    check_finite_weights,
    check_permutation,
    check_identical_tasks,
    check_scale_reaction,
    check_extreme_scales,
    check_purity,
    check_state_structure,
    check_clone,
    check_pickle,
    check_seeded,
)


def strategy_checks(strategy: Strategy) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, thunk)`` pairs, for parametrising a test suite."""
    for check in STRATEGY_CHECKS:
        yield check.__name__, (lambda c=check: c(strategy))  # type: ignore[misc]


def check_strategy(strategy: Strategy, skip: Sequence[str] = ()) -> list[str]:
    """Run every conformance check on ``strategy``; return the names of the checks run.

    The checks use three tasks, ``main``, ``aux1`` and ``aux2``. The symmetry checks
    (``check_identical_tasks``) assume hyperparameters that treat ``aux1`` and ``aux2``
    alike; skip them by name for a strategy configured otherwise.

    Raises:
        AssertionError: At the first broken property, with a message naming it.
        ValueError: If ``skip`` names an unknown check.
    """
    known = {c.__name__ for c in STRATEGY_CHECKS}
    unknown = set(skip) - known
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; checks are {sorted(known)}")
    names = []
    for name, run in strategy_checks(strategy):
        if name in skip:
            continue
        run()
        names.append(name)
    return names
