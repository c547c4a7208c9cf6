"""What the combinators share: showing an inner strategy only what it declared.

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
``scheduled``, ``normalized``, ``gated``, ``warmup`` and ``chain`` have a module each.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Decision, Need, Signals, Strategy, as_decision

__all__ = []


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
        val_grad=signals.val_grad if Need.VAL_GRAD in needs else None,
        graph_losses=signals.graph_losses if Need.LOSS_GRAPH in needs else None,
        params=signals.params if Need.LOSS_GRAPH in needs else (),
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
