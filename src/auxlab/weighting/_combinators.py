"""Combinators: strategies built from strategies, as optax builds transforms by ``chain``.

Each combinator is a :class:`~auxlab.weighting.Strategy` whose state is a ``NamedTuple`` of
its inner strategies' states and whose ``needs`` is the union of theirs (plus what it reads
itself). An inner strategy is shown only the signals it declared.

How a combinator treats a :class:`~auxlab.weighting.Decision`:

* ``weights`` are the heads' weights (and the shared block's, when there are no
  ``shared_weights``); ``shared_weights`` are the shared block's coefficients. A combinator
  that rescales a task rescales both, unless it says otherwise (``gated`` acts on the shared
  block only).
* ``shared_grad`` is a finished vector that per-task factors cannot enter. A combinator
  passes it on when its factors are all 1 and raises ``ValueError`` otherwise.
* ``extra_loss`` is passed on (``chain`` adds those of its members).

Each combinator's ``scale_reaction`` is derived from its inner strategies' (see each class).
The existing ``scheduled`` combinator lives in ``_fixed.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch

from auxlab.objective import check_same_tasks
from auxlab.weighting._base import Decision, Need, Signals, Strategy, as_decision, check_weight
from auxlab.weighting._main_first import _cosines, _gram
from auxlab.weighting._registry import register

__all__ = [
    "Chain",
    "ChainState",
    "Gated",
    "GatedState",
    "Normalized",
    "NormalizedState",
    "Warmup",
    "WarmupState",
    "chain",
    "gated",
    "normalized",
    "warmup",
]

WeightValue = float | torch.Tensor


def _check_strategy(strategy: object, who: str) -> Strategy:
    if not isinstance(strategy, Strategy):
        raise TypeError(f"{who} takes a Strategy, got {strategy!r}")
    return strategy


def _restrict(signals: Signals, needs: frozenset[Need]) -> Signals:
    """The signals an inner strategy declared, and no more (fields it did not ask for: None)."""
    return dataclasses.replace(
        signals,
        grads=signals.grads if Need.GRADS in needs else None,
        gramian=signals.gramian if Need.GRAMIAN in needs else None,
        rep_grads=signals.rep_grads if Need.REP_GRADS in needs else None,
        val_losses=signals.val_losses if Need.VAL_LOSSES in needs else None,
    )


def _value(w: WeightValue) -> float:
    return float(w.detach()) if isinstance(w, torch.Tensor) else float(w)


def _decision(out: Any, signals: Signals, inner: Strategy) -> Decision:
    """``as_decision`` plus a clear error when an inner strategy misses or adds tasks."""
    d = as_decision(out)
    who = f"the weights of {type(inner).__name__}"
    check_same_tasks(signals.tasks, d.weights, "the tasks", who)
    if d.shared_weights is not None:
        check_same_tasks(signals.tasks, d.shared_weights, "the tasks", f"the shared {who}")
    return d


def _no_shared_grad(decision: Decision, inner: Strategy, what: str) -> None:
    if decision.shared_grad is not None:
        raise ValueError(
            f"{type(inner).__name__} aggregates the gradients itself (it returns a shared "
            f"gradient), so {what}; apply it to a strategy that returns weights or "
            "shared_weights."
        )


# ------------------------------------------------------------------------------ normalized


class NormalizedState(NamedTuple):
    """State of :class:`Normalized`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Normalized(Strategy):
    """Rescale another strategy's weights to a fixed total, or so that the main task weighs 1.

    Rule: ``mode="sum"``: ``wᵢ ← wᵢ · total / Σⱼ wⱼ`` (``total`` defaults to the number of
    tasks, so equal weights stay 1); ``mode="main"``: ``wᵢ ← wᵢ / w_main``. ``weights`` and
    ``shared_weights`` are each rescaled by their own factor, so a Gramian aggregator's
    coefficients also sum to ``total`` (or give the main gradient coefficient 1). The factor is
    a number computed from detached values: learnable weights keep their gradient direction.
    Weights that sum to 0 (or a main weight of 0 in ``mode="main"``) are returned unchanged:
    there is nothing to rescale.

    Cost: that of the inner strategy.

    Loss scaling: ``"independent"``, ``"invariant"`` and ``"adaptive"`` are kept (a common
    factor changes neither equal weights nor the direction of a combination); ``"inverse"`` is
    kept with ``mode="main"`` (the ratio to the main weight is what is inverse) and becomes
    ``"none"`` with ``mode="sum"``.

    Args:
        strategy: The strategy whose weights are rescaled. It must not return a
            ``shared_grad`` (``ValueError`` at the first update).
        total: The sum of the weights with ``mode="sum"`` (``> 0``); default: the number of
            tasks.
        mode: ``"sum"`` or ``"main"``.
    """

    def __init__(
        self, strategy: Strategy, total: float | None = None, mode: Literal["sum", "main"] = "sum"
    ) -> None:
        self.strategy = _check_strategy(strategy, "normalized")
        if mode not in ("sum", "main"):
            raise ValueError(f"mode must be 'sum' or 'main', got {mode!r}")
        if total is not None:
            if mode == "main":
                raise ValueError("total applies to mode='sum'; mode='main' makes the main weight 1")
            total = float(total)
            if not (math.isfinite(total) and total > 0):
                raise ValueError(f"total must be a finite number > 0, got {total!r}")
        self.total = total
        self.mode = mode
        self.needs = strategy.needs  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        if inner in ("independent", "invariant", "adaptive"):
            reaction = inner
        elif inner == "inverse" and mode == "main":
            reaction = "inverse"
        else:
            reaction = "none"
        self.scale_reaction = reaction  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> NormalizedState:
        return NormalizedState(self.strategy.init(tasks, main))

    def _rescale(self, weights: Mapping[str, Any], main: str, n: int) -> dict[str, WeightValue]:
        if self.mode == "main":
            ref = _value(weights[main])
            factor = 1.0 / ref if ref > 0 else 1.0
        else:
            s = sum(_value(w) for w in weights.values())
            target = self.total if self.total is not None else float(n)
            factor = target / s if s > 0 and math.isfinite(target / s) else 1.0
        return {t: w * factor for t, w in weights.items()}

    def update(self, signals: Signals, state: NormalizedState) -> tuple[Decision, NormalizedState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        _no_shared_grad(d, self.strategy, "its weights cannot be normalized")
        n = len(signals.tasks)
        weights = self._rescale(d.weights, signals.main, n)
        shared = None
        if d.shared_weights is not None:
            shared = {
                t: float(v) for t, v in self._rescale(d.shared_weights, signals.main, n).items()
            }
        return (
            Decision(weights, extra_loss=d.extra_loss, shared_weights=shared),
            NormalizedState(inner),
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("normalized")
def normalized(
    strategy: Strategy, total: float | None = None, mode: Literal["sum", "main"] = "sum"
) -> Normalized:
    """Rescale a strategy's weights to sum to ``total`` (default: the number of tasks).

    With ``mode="main"`` they are divided by the main weight instead. See :class:`Normalized`.

    Example:
        >>> from auxlab.weighting import FixedWeights
        >>> s = normalized(FixedWeights({"main": 2.0, "aux": 0.5}), mode="main")
        >>> state = s.init(["main", "aux"], "main")
        >>> s.update(Signals(0, ("main", "aux"), "main", {}), state)[0].weights
        {'main': 1.0, 'aux': 0.25}
    """
    return Normalized(strategy, total, mode)


# ------------------------------------------------------------------------------ gated


class GatedState(NamedTuple):
    """State of :class:`Gated`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Gated(Strategy):
    """Shut an auxiliary task out of the shared block while its gradient opposes the main one.

    Rule: with ``cₖ = cos(g_main, gₖ)`` on the shared parameters, the shared coefficient of
    auxiliary task ``k`` (its ``shared_weights`` entry, or its weight) becomes 0 while
    ``cₖ < threshold``; heads keep the inner strategy's weights, as in gradient-cosine gating
    (Du et al., 2018), where an auxiliary head always learns its own task. A zero gradient has
    cosine 0, so with ``threshold=0`` it is kept (its contribution is nil anyway), whereas
    :class:`~auxlab.weighting._main_first.GradientCosine` admits only ``cos > 0``. The main
    task is never gated.

    Cost: that of the inner strategy, plus per-task gradients on the shared block if it did
    not need them already (``Need.GRAMIAN`` is added).

    Loss scaling: cosines do not depend on the scale of a gradient, so ``"independent"``,
    ``"inverse"`` and ``"adaptive"`` are kept; ``"invariant"`` and ``"none"`` give ``"none"``.

    Args:
        strategy: The strategy whose auxiliary tasks are gated. It must not return a
            ``shared_grad``.
        threshold: The cosine (in [-1, 1]) below which an auxiliary task is shut out.
    """

    def __init__(self, strategy: Strategy, threshold: float = 0.0) -> None:
        self.strategy = _check_strategy(strategy, "gated")
        threshold = float(threshold)
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine, in [-1, 1]; got {threshold!r}")
        self.threshold = threshold
        self.needs = strategy.needs | {Need.GRAMIAN}  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        keep = inner in ("independent", "inverse", "adaptive")
        self.scale_reaction = inner if keep else "none"  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> GatedState:
        return GatedState(self.strategy.init(tasks, main))

    def update(self, signals: Signals, state: GatedState) -> tuple[Decision, GatedState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        _no_shared_grad(d, self.strategy, "it cannot be gated")
        cos = _cosines(_gram(signals, self), signals.tasks.index(signals.main), self)
        base = d.shared_weights if d.shared_weights is not None else d.weights
        shared = {}
        for t, c in zip(signals.tasks, cos, strict=True):
            v = _value(base[t])
            shared[t] = v if t == signals.main or c >= self.threshold else 0.0
        return Decision(d.weights, extra_loss=d.extra_loss, shared_weights=shared), GatedState(
            inner
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("gated")
def gated(strategy: Strategy, threshold: float = 0.0) -> Gated:
    """Gate a strategy's auxiliary tasks on the shared block by ``cos(g_main, gₖ) >= threshold``.

    See :class:`Gated`.

    Example:
        >>> import torch
        >>> from auxlab.weighting import FixedWeights
        >>> G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # cos(g_main, g_aux) < 0
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = gated(FixedWeights({"aux": 0.2}))
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'aux': 0.0}
    """
    return Gated(strategy, threshold)


# ------------------------------------------------------------------------------ warmup


class WarmupState(NamedTuple):
    """State of :class:`Warmup`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Warmup(Strategy):
    """Ramp a strategy's auxiliary weights up linearly over the first steps.

    Rule: ``wₖ(t) ← wₖ(t)·f(t)`` for every auxiliary task, with
    ``f(t) = start + (1 − start)·min(t, steps)/steps`` (``t`` the Balancer step): from
    ``start·w`` at step 0 to ``w`` from step ``steps`` on. The main weight is untouched.
    ``weights`` and ``shared_weights`` are both scaled. With ``Balancer(every=k)`` the strategy
    is called every ``k`` steps, so the ramp advances in stairs of ``k`` steps.

    Cost: that of the inner strategy.

    Loss scaling: the factor depends on the step only, so the inner strategy's reaction is
    kept (``"invariant"`` for a Gramian aggregator becomes ``"none"``: scaling some
    coefficients turns the combination).

    Args:
        strategy: The strategy whose auxiliary weights are warmed up. A ``shared_grad`` is
            accepted only once the ramp is over (``ValueError`` before).
        steps: Length of the ramp in Balancer steps (``>= 1``).
        start: Fraction of the weight at step 0 (``>= 0``; above 1 it ramps down).
    """

    def __init__(self, strategy: Strategy, steps: int, start: float = 0.0) -> None:
        self.strategy = _check_strategy(strategy, "warmup")
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.steps = int(steps)
        self.start = check_weight("the auxiliary tasks", start, "warm-up start fraction")
        self.needs = strategy.needs  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        keep = inner in ("independent", "inverse", "adaptive")
        self.scale_reaction = inner if keep else "none"  # type: ignore[misc]

    def factor(self, step: int) -> float:
        """The factor applied to the auxiliary weights at ``step``."""
        t = min(max(step, 0), self.steps) / self.steps
        return self.start + (1.0 - self.start) * t

    def init(self, tasks: Sequence[str], main: str) -> WarmupState:
        return WarmupState(self.strategy.init(tasks, main))

    def update(self, signals: Signals, state: WarmupState) -> tuple[Decision, WarmupState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        f = self.factor(signals.step)
        if f != 1.0 and signals.aux:
            _no_shared_grad(
                d, self.strategy, f"its weights cannot be warmed up (step {signals.step})"
            )
        main = signals.main
        weights = {t: w if t == main else w * f for t, w in d.weights.items()}
        shared = None
        if d.shared_weights is not None:
            shared = {
                t: float(c) if t == main else float(c) * f for t, c in d.shared_weights.items()
            }
        return Decision(weights, d.shared_grad, d.extra_loss, shared), WarmupState(inner)

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("warmup")
def warmup(strategy: Strategy, steps: int, start: float = 0.0) -> Warmup:
    """Ramp the auxiliary weights of ``strategy`` from ``start·w`` to ``w`` over ``steps``.

    See :class:`Warmup`. (:func:`auxlab.schedules.warmup` is the schedule function of the same
    idea, for :func:`~auxlab.weighting.scheduled`; this one wraps any strategy.)

    Example:
        >>> from auxlab.weighting import FixedWeights
        >>> s = warmup(FixedWeights({"aux": 0.2}), steps=10)
        >>> state = s.init(["main", "aux"], "main")
        >>> s.update(Signals(5, ("main", "aux"), "main", {}), state)[0].weights
        {'main': 1.0, 'aux': 0.1}
    """
    return Warmup(strategy, steps, start)


# ------------------------------------------------------------------------------ chain


class ChainState(NamedTuple):
    """State of :class:`Chain`.

    Attributes:
        inner: The members' states, in order.
    """

    inner: tuple[Any, ...]


def _chain_reaction(reactions: Sequence[str]) -> str:
    rest = [r for r in reactions if r != "independent"]
    if not rest:
        return "independent"
    if rest == ["inverse"]:
        return "inverse"
    if all(r == "adaptive" for r in rest):
        return "adaptive"
    return "none"


class Chain(Strategy):
    """Multiply the weights of several strategies, task by task.

    Rule: ``wᵢ = Πₘ wᵢ⁽ᵐ⁾`` for the heads, and ``cᵢ = Πₘ cᵢ⁽ᵐ⁾`` for the shared block, where a
    member's ``cᵢ⁽ᵐ⁾`` is its ``shared_weights`` entry, or its weight when it returns plain
    weights. Example: ``chain(FixedWeights({"aux": 0.2}), GradientCosine())`` is the cosine gate
    on a base weight 0.2. Every member is updated at every step, on the signals it declared.

    How the parts of a :class:`~auxlab.weighting.Decision` compose:

    * ``shared_weights``: the result has them when at least one member does.
    * ``shared_grad``: at most one member may return one (``ValueError`` otherwise). It is
      passed on when every other member's shared coefficients are 1 for every task (their
      weights then act on the heads only) and ``ValueError`` is raised otherwise: a finished
      vector cannot be reweighted per task. Non-linear aggregators take base weights as an
      argument for that reason (e.g. ``PriorityPCGrad(weights=...)``).
    * ``extra_loss``: the members' extra losses are added.
    * Learnable weights (tensors) stay tensors in the product; ``parameters()`` gathers the
      members'.

    Cost: the sum of the members' costs, with the per-task gradients computed once.

    Loss scaling: ``"independent"`` if every member is; ``"inverse"`` if one member is inverse
    and the others independent; ``"adaptive"`` if the members are adaptive or independent;
    ``"none"`` otherwise.

    Args:
        strategies: The members, at least one.
    """

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        if isinstance(strategies, Strategy):
            strategies = (strategies,)
        members = tuple(_check_strategy(s, "chain") for s in strategies)
        if not members:
            raise ValueError("chain needs at least one strategy")
        self.strategies = members
        needs: frozenset[Need] = frozenset()
        for s in members:
            needs = needs | s.needs
        self.needs = needs  # type: ignore[misc]
        self.randomized = any(s.randomized for s in members)  # type: ignore[misc]
        reactions = [getattr(s, "scale_reaction", "none") for s in members]
        self.scale_reaction = _chain_reaction(reactions)  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> ChainState:
        return ChainState(tuple(s.init(tasks, main) for s in self.strategies))

    def update(self, signals: Signals, state: ChainState) -> tuple[Decision, ChainState]:
        decisions = []
        states = []
        for s, inner in zip(self.strategies, state.inner, strict=True):
            out, new = s.update(_restrict(signals, s.needs), inner)
            decisions.append(_decision(out, signals, s))
            states.append(new)
        tasks = signals.tasks
        weights: dict[str, WeightValue] = dict.fromkeys(tasks, 1.0)
        shared: dict[str, float] = dict.fromkeys(tasks, 1.0)
        for d in decisions:
            coef = d.shared_weights if d.shared_weights is not None else d.weights
            for t in tasks:
                weights[t] = weights[t] * d.weights[t]
                shared[t] = shared[t] * _value(coef[t])
        with_grad = [i for i, d in enumerate(decisions) if d.shared_grad is not None]
        extras = [d.extra_loss for d in decisions if d.extra_loss is not None]
        extra = None
        for e in extras:
            extra = e if extra is None else extra + e
        new_state = ChainState(tuple(states))
        if with_grad:
            if len(with_grad) > 1:
                names = [type(self.strategies[i]).__name__ for i in with_grad]
                raise ValueError(
                    f"chain: {names} each return a shared gradient; at most one member may "
                    "aggregate the gradients itself"
                )
            (k,) = with_grad
            for i, d in enumerate(decisions):
                if i == k:
                    continue
                coef = d.shared_weights if d.shared_weights is not None else d.weights
                if any(_value(coef[t]) != 1.0 for t in tasks):
                    raise ValueError(
                        f"chain: {type(self.strategies[k]).__name__} returns a finished shared "
                        f"gradient, which the per-task weights of "
                        f"{type(self.strategies[i]).__name__} cannot rescale; give the weights "
                        "to the aggregator itself (e.g. PriorityPCGrad(weights=...))"
                    )
            return Decision(weights, decisions[k].shared_grad, extra), new_state
        any_shared = any(d.shared_weights is not None for d in decisions)
        return Decision(weights, None, extra, shared if any_shared else None), new_state

    def parameters(self) -> list[torch.nn.Parameter]:
        out: list[torch.nn.Parameter] = []
        seen: set[int] = set()
        for s in self.strategies:
            for p in s.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


@register("chain")
def chain(*strategies: Strategy) -> Chain:
    """Multiply the weights of ``strategies`` task by task. See :class:`Chain`.

    Example:
        >>> import torch
        >>> from auxlab.weighting import FixedWeights
        >>> from auxlab.weighting._main_first import GradientCosine
        >>> G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
        >>> sig = Signals(0, ("main", "a", "b"), "main", {}, gramian=G @ G.T)
        >>> s = chain(FixedWeights({"a": 0.2, "b": 0.2}), GradientCosine())
        >>> d = s.update(sig, s.init(sig.tasks, "main"))[0]
        >>> d.weights, d.shared_weights
        ({'main': 1.0, 'a': 0.2, 'b': 0.2}, {'main': 1.0, 'a': 0.2, 'b': 0.0})
    """
    return Chain(strategies)
