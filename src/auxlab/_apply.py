"""Applying a strategy's decision: writing ``.grad`` on every parameter the losses reach.

The Balancer always backpropagates the weighted sum ``Σ wᵢ·Lᵢ`` (plus a strategy's extra
term) into the task-specific parameters. On the shared block it writes what the strategy
decided: the same weighted sum, a combination ``Σ cᵢ·gᵢ`` of the per-task gradients with
coefficients of its own, or a flat gradient vector. When the per-task signals of the step
are at hand (:class:`~auxlab._source.StepSignals`), the shared block's part is written from
them and the weighted sum is backpropagated into the other parameters only, so the trunk
is traversed T times in all, not T + 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from auxlab._source import StepSignals
from auxlab.signals import graph_leaves
from auxlab.weighting import Decision

__all__ = ["apply_decision", "reusable"]


def apply_decision(
    decision: Decision,
    weights: Mapping[str, float],
    total: torch.Tensor,
    losses: Mapping[str, torch.Tensor],
    shared: Sequence[torch.Tensor],
    got: StepSignals | None,
    who: str,
    run: Callable[..., None] | None = None,
) -> None:
    """Write the step's gradients: every parameter's, and the shared block's as decided.

    Args:
        decision: The strategy's decision (``shared_weights`` and ``shared_grad`` are read).
        weights: The checked weight per task, in task order.
        total: The weighted sum to backpropagate.
        losses: The losses, for a backward of the shared coefficients alone.
        shared: The shared parameters.
        got: The per-task signals of the step, or ``None`` on a step that reuses a decision.
        who: The strategy's name, for errors.
        run: What backpropagates a tensor, called as ``run(tensor, **kwargs)`` with the
            keyword arguments of :func:`torch.Tensor.backward` (default: ``Tensor.backward``;
            Lightning's ``manual_backward``, to keep its precision plugin and hooks).
    """
    run = run or _plain_backward
    tasks = list(weights)
    coef = decision.shared_weights
    shared_grad = decision.shared_grad
    if got is not None and (
        got.task_grads is not None or (got.layerwise is not None and shared_grad is None)
    ):
        # The per-task signals on the shared block are known: write the combination there
        # (or the strategy's own vector), and backpropagate into everything else only.
        parts = None
        if shared_grad is not None:
            _check_shared_grad(shared_grad, shared, who)
        else:
            c = coef if coef is not None else weights
            parts = got.combine([float(c[t]) for t in tasks])
        backward_others(total, shared, run)
        if parts is None:
            assert shared_grad is not None
            _write_shared(shared, shared_grad, [p.grad for p in shared], got.sparse)
        else:
            sparse = got.sparse
            for k, (p, g) in enumerate(zip(shared, parts, strict=True)):
                # Fresh tensors of our own combination: safe to hand over as they are
                # (in sparse form where autograd gave the gradient so).
                g = g.to(p.dtype)
                if k in sparse:
                    g = g.to_sparse(sparse_dim=1)
                p.grad = g if p.grad is None else p.grad + g
    elif shared_grad is not None:
        _check_shared_grad(shared_grad, shared, who)
        before = [p.grad.clone() if p.grad is not None else None for p in shared]
        run(total)
        _write_shared(shared, shared_grad, before)
    elif coef is not None and any(float(coef[t]) != weights[t] for t in tasks):
        # Reused shared weights that differ from the head weights: one backward for the
        # shared block with the shared coefficients, one for the rest with the weights.
        combo = torch.stack([losses[t] * float(coef[t]) for t in tasks]).sum()
        run(combo, inputs=list(shared), retain_graph=True)
        backward_others(total, shared, run)
    else:
        run(total)


def _plain_backward(tensor: torch.Tensor, **kwargs: object) -> None:
    tensor.backward(**kwargs)


def backward_others(
    total: torch.Tensor,
    shared: Sequence[torch.Tensor],
    run: Callable[..., None] | None = None,
) -> None:
    """Backpropagate ``total`` into every parameter it reaches but the shared ones."""
    shared_ids = {id(p) for p in shared}
    others = [p for p in graph_leaves(total) if id(p) not in shared_ids]
    if others:
        (run or _plain_backward)(total, inputs=others)


def _check_shared_grad(flat: torch.Tensor, shared: Sequence[torch.Tensor], who: str) -> None:
    size = sum(p.numel() for p in shared)
    if flat.ndim != 1 or flat.numel() != size:
        raise ValueError(
            f"{who} returned a shared gradient of shape {tuple(flat.shape)}; the shared "
            f"parameters have {size} values, so it must be a flat vector of length {size}."
        )


def _write_shared(
    shared: Sequence[torch.Tensor],
    flat: torch.Tensor,
    before: Sequence[torch.Tensor | None],
    sparse: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Add the slices of a strategy's flat vector to ``before``, parameter by parameter."""
    offset = 0
    for k, (p, prev) in enumerate(zip(shared, before, strict=True)):
        n = p.numel()
        g = flat[offset : offset + n].view_as(p).to(p.dtype)
        if k in sparse:  # autograd gave this parameter's gradient in sparse form
            g = g.to_sparse(sparse_dim=1)
        # A strategy's own vector is copied, since it may keep it in state.
        if prev is None:
            p.grad = g.clone()
        else:
            p.grad = prev + g
        offset += n


def reusable(decision: Decision) -> Decision:
    """The last decision as it may be applied again, between refreshes, to a new batch.

    Its weights are reused as constants. Whatever belongs to the batch or the autograd graph
    it was computed on is dropped: a gradient written by the strategy (``shared_grad``; those
    steps apply the strategy's weights with one plain backward), and, for strategies with
    learnable parameters (uncertainty weighting), the graph from those parameters to the
    weights and the regulariser (``extra_loss``), which the previous backward freed. The
    strategy's parameters therefore learn on refresh steps only.
    """
    if (
        decision.shared_grad is None
        and decision.extra_loss is None
        and not any(
            isinstance(w, torch.Tensor) and w.requires_grad for w in decision.weights.values()
        )
    ):
        return decision
    weights = {
        t: w.detach() if isinstance(w, torch.Tensor) else w for t, w in decision.weights.items()
    }
    shared = decision.shared_weights if decision.shared_grad is None else None
    return Decision(weights, None, None, shared)
