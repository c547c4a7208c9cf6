"""Per-task signals on the shared block: gradients, their Gramian, representation gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["gramian", "per_task_grads", "representation_grads"]


def per_task_grads(
    losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], retain_graph: bool = True
) -> torch.Tensor:
    """Gradients of each loss with respect to ``params``, flattened into a ``(T, d)`` matrix.

    Only the shared parameters are differentiated, so task-specific heads are not traversed
    twice. A parameter that a loss does not reach contributes zeros. The graph is kept
    (``retain_graph``) so the Balancer can apply the weights with one more backward.

    Cost: one backward through the shared block per loss; memory ``T·d`` floats.
    """
    if not params:
        raise ValueError("no shared parameters: give the Balancer shared=module or a list")
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def representation_grads(
    losses: Sequence[torch.Tensor], representation: torch.Tensor, retain_graph: bool = True
) -> torch.Tensor:
    """Gradients of each loss with respect to a shared representation, ``(T, n)`` (MGDA-UB).

    Cheaper than :func:`per_task_grads` when the representation is smaller than the shared
    parameters: each backward stops at the representation.
    """
    rows = []
    for loss in losses:
        (g,) = torch.autograd.grad(loss, representation, retain_graph=retain_graph)
        rows.append(g.reshape(-1))
    return torch.stack(rows)


def gramian(grads: torch.Tensor) -> torch.Tensor:
    """The Gramian ``G Gᵀ`` of a ``(T, d)`` gradient matrix."""
    return grads @ grads.T
