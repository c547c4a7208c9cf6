"""Hand-made signals for the strategy checks: a decision tested without a model.

:func:`make_signals` builds :class:`~auxlab.weighting.Signals` for three tasks (random
positive losses, random per-task gradients and their Gramian, representation gradients and
validation losses); :func:`realised_update` is the shared-block update a decision makes from
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from auxlab.weighting._base import Decision, Signals, Strategy, as_decision

__all__ = ["TASKS", "decision_weights", "make_signals", "realised_update", "run_steps"]


TASKS = ("main", "aux1", "aux2")


def make_signals(
    step: int,
    tasks: Sequence[str] = TASKS,
    main: str = "main",
    seed: int = 0,
    dim: int = 24,
    loss_scale: float = 1.0,
    grad_scale: float = 1.0,
    scale_task: str | None = None,
    factor: float = 1.0,
) -> Signals:
    """Random but reproducible signals for step ``step`` (same seed and step, same signals).

    ``scale_task`` and ``factor`` multiply one task's loss, gradient and representation
    gradient by ``factor`` (the Gramian follows), as if that loss had been multiplied by it.
    """
    g = torch.Generator().manual_seed(seed * 7919 + step)
    t = len(tasks)
    base = torch.randn(dim, generator=g, dtype=torch.float64)
    # Partly shared direction so that gradients are neither all aligned nor all opposed.
    grads = 0.5 * base + torch.randn(t, dim, generator=g, dtype=torch.float64)
    rep = torch.randn(t, dim // 2, generator=g, dtype=torch.float64)
    losses = 0.2 + torch.rand(t, generator=g, dtype=torch.float64) * (1.0 + 0.5 / (1 + step))
    val = 0.2 + torch.rand(t, generator=g, dtype=torch.float64)
    scale = torch.ones(t, dtype=torch.float64)
    if scale_task is not None:
        scale[list(tasks).index(scale_task)] = factor
    losses = losses * loss_scale * scale
    grads = grads * grad_scale * scale[:, None]
    rep = rep * grad_scale * scale[:, None]
    # Drawn last, so that the signals above are the same as before these were added.
    val_grad = torch.randn(dim, generator=g, dtype=torch.float64) * grad_scale
    graph_losses, params = _loss_graph(losses, grads, scale * grad_scale)
    return Signals(
        step=step,
        tasks=tuple(tasks),
        main=main,
        losses={k: losses[i] for i, k in enumerate(tasks)},
        grads=grads,
        gramian=grads @ grads.T,
        rep_grads=rep,
        val_losses={k: float(val[i]) for i, k in enumerate(tasks)},
        val_grad=val_grad,
        graph_losses={k: graph_losses[i] for i, k in enumerate(tasks)},
        params=params,
    )


def _loss_graph(
    losses: torch.Tensor, grads: torch.Tensor, curvature: torch.Tensor
) -> tuple[list[torch.Tensor], tuple[torch.Tensor]]:
    """Losses with an autograd graph on one parameter vector ``θ``.

    At ``θ`` their values are ``losses``, their gradients ``grads`` and their Hessians
    ``curvatureₜ·I``: ``Lₜ(θ) = lossesₜ + gradsₜ·θ + ½·curvatureₜ·‖θ‖²`` at ``θ = 0``.
    """
    theta = torch.zeros(grads.shape[1], dtype=grads.dtype, requires_grad=True)
    out = [
        losses[i] + grads[i] @ theta + 0.5 * curvature[i] * (theta @ theta)
        for i in range(len(losses))
    ]
    return out, (theta,)


def decision_weights(decision: Decision) -> dict[str, float]:
    return {
        k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
        for k, v in decision.weights.items()
    }


def realised_update(decision: Decision, signals: Signals) -> torch.Tensor:
    """The update a decision writes on the shared parameters, from the signals' gradients."""
    assert signals.grads is not None
    if decision.shared_grad is not None:
        return decision.shared_grad.detach().to(signals.grads.dtype)
    coef = decision.shared_weights if decision.shared_weights is not None else decision.weights
    c = torch.tensor(
        [float(torch.as_tensor(coef[t]).detach()) for t in signals.tasks],
        dtype=signals.grads.dtype,
    )
    return c @ signals.grads


def run_steps(
    strategy: Strategy, steps: int, seed: int = 0, **signal_kwargs: Any
) -> list[tuple[Decision, Signals, Any]]:
    s = strategy.clone()
    tasks = signal_kwargs.pop("tasks", TASKS)
    state = s.init(list(tasks), signal_kwargs.get("main", "main"))
    out = []
    for step in range(steps):
        sig = make_signals(step, tasks=tasks, seed=seed, **signal_kwargs)
        value, state = s.update(sig, state)
        out.append((as_decision(value), sig, state))
    return out
