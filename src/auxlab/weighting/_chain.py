"""Multiply the weights of several strategies, task by task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._combinator_common import (
    WeightValue,
    _check_strategy,
    _decision,
    _restrict,
    _value,
)
from auxlab.weighting._registry import register

__all__ = ["Chain", "ChainState", "chain"]


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

    family = "combinator"

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
        >>> from auxlab.weighting import GradientCosine
        >>> G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
        >>> sig = Signals(0, ("main", "a", "b"), "main", {}, gramian=G @ G.T)
        >>> s = chain(FixedWeights({"a": 0.2, "b": 0.2}), GradientCosine())
        >>> d = s.update(sig, s.init(sig.tasks, "main"))[0]
        >>> d.weights, d.shared_weights
        ({'main': 1.0, 'a': 0.2, 'b': 0.2}, {'main': 1.0, 'a': 0.2, 'b': 0.0})
    """
    return Chain(strategies)
