"""What the gradient-based strategies share: reading the Gramian, returning coefficients.

The strategies that read only the Gramian ``G = J Jᵀ`` of the task gradients (GradNorm,
MGDA, MGDA-UB, PCGrad, GradVac, IMTL, CAGrad, Nash-MTL, Aligned-MTL, UPGrad; one module
each) decide coefficients ``cᵢ`` from the ``T x T`` Gramian (``T`` tasks) and return
``Decision(weights=1.0 for every task, shared_weights=c)``: the shared parameters get
``Σᵢ cᵢ·gᵢ`` while every head keeps its own task's plain gradient, as in LibMTL and TorchJD.
GradNorm is the exception: it learns loss weights, which weigh the heads too, as published.

Because the result is a combination of the per-task gradients, these strategies need no
``(T, d)`` matrix of their own: the Balancer combines the gradients it already computed, and
when it reuses a decision between refreshes (``Balancer(every=k)``) it recombines the new
gradients with the same coefficients. PCGrad and GradVac belong here too: their projections
are linear in the gradients, with coefficients that depend only on inner products, so they
are computed on the Gramian (as TorchJD does for GradVac). GradDrop and DB-MTL need the full
``(T, d)`` gradients (a coordinate-wise random mask; an EMA of past gradients) and return
``Decision(shared_grad=...)``. The small exact solvers live in ``_solvers``.

Scale reactions (``scale_reaction``) describe what happens when one task's loss is
multiplied by ``k > 0`` (its gradient by ``k``): ``"invariant"`` means the direction of the
shared update does not change; ``"inverse"`` (plain loss weights) that the task's weight is
divided by ``k`` and the others do not change; ``"adaptive"`` that the weights change and
adapt over steps; ``"none"`` that there is no such guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from auxlab._linalg import gramian
from auxlab._tasks import match_to_tasks
from auxlab.weighting._base import Decision, Signals
from auxlab.weighting._solvers import Array, gramian64, input_eps

__all__ = []


Preference = Mapping[str, float] | Sequence[float]


def _gramian(signals: Signals, who: str) -> tuple[Array, float]:
    """The float64 Gramian of the shared-parameter gradients and the inputs' epsilon."""
    if signals.gramian is not None:
        gram, eps = gramian64(signals.gramian), input_eps(signals.gramian)
    elif signals.grads is not None:  # also accept the raw gradients
        gram, eps = gramian64(gramian(signals.grads)), input_eps(signals.grads)
    else:
        raise ValueError(f"{who} needs the Gramian of the per-task gradients (Need.GRAMIAN).")
    return _finite(gram, who, signals.step), eps


def _finite(gram: Array, who: str, step: int) -> Array:
    if not np.all(np.isfinite(gram)):
        raise FloatingPointError(
            f"{who} got a Gramian with NaN or inf at step {step}: the per-task gradients are "
            "not finite, or their inner products overflow the gradients' dtype."
        )
    return gram


def _tie_rtol(eps: float) -> float:
    """Tolerance under which two Gramian rows count as the same gradient (see tie_identical)."""
    return max(8.0 * eps, 1e-13)


def _losses64(signals: Signals) -> Array:
    return np.array([float(signals.losses[t]) for t in signals.tasks], dtype=np.float64)


def _ones(tasks: Sequence[str]) -> dict[str, float]:
    return dict.fromkeys(tasks, 1.0)


def _shared(tasks: Sequence[str], coef: Array) -> Decision:
    """Heads get their own gradient (weight 1); the shared block gets ``Σ cᵢ gᵢ``."""
    shared = {t: float(c) for t, c in zip(tasks, coef, strict=True)}
    bad = [t for t, c in shared.items() if not math.isfinite(c)]
    if bad:  # a bug, never an expected outcome: the solvers fall back before this
        raise FloatingPointError(f"non-finite shared coefficients for tasks {bad}")
    return Decision(weights=_ones(tasks), shared_weights=shared)


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_tasks(tasks: Sequence[str], main: str) -> None:
    if not tasks:
        raise ValueError("a strategy needs at least one task")
    if main not in tasks:
        raise ValueError(f"main task '{main}' is not one of the tasks {list(tasks)}")


def _check_preference(pref: Preference | None) -> Preference | None:
    if pref is None:
        return None
    items = list(pref.items()) if isinstance(pref, Mapping) else list(enumerate(pref))
    if isinstance(pref, str) or not items:
        raise TypeError("pref_vector must be a non-empty dict {task: weight} or a list")
    for key, value in items:
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"pref_vector entry {key!r} is {value!r}; it must be finite and >= 0")
    if not any(float(v) > 0 for _, v in items):
        raise ValueError("pref_vector must have at least one positive entry")
    return dict(pref) if isinstance(pref, Mapping) else list(pref)


def _positional_preference(pref: Preference | None) -> bool:
    """Whether ``pref`` is a list of unequal values (matched to tasks by position)."""
    return pref is not None and not isinstance(pref, Mapping) and len({float(v) for v in pref}) > 1


def _resolve_preference(
    pref: Preference | None, tasks: Sequence[str], default: float | None
) -> torch.Tensor:
    """The preference vector in task order; ``default`` per task (``None``: ``1/T``)."""
    if pref is None:
        value = 1.0 / len(tasks) if default is None else default
        return torch.full((len(tasks),), value, dtype=torch.float64)
    resolved = match_to_tasks(pref, list(tasks), "pref_vector")
    return torch.tensor([float(resolved[t]) for t in tasks], dtype=torch.float64)


def _rng_state(seed: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(seed)
    return g.get_state()


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _visit_orders(tasks: Sequence[str], rng: torch.Tensor) -> tuple[list[list[int]], torch.Tensor]:
    """For each task, the other tasks in a random order; and the generator's next state.

    The draw is a ``T x T`` matrix of uniforms indexed by the tasks sorted by name, so the
    orders depend on the seed and the step, not on the order in which the tasks are listed:
    permuting the tasks permutes the result exactly.
    """
    g = torch.Generator()
    g.set_state(rng)
    t = len(tasks)
    u = torch.rand((t, t), generator=g, dtype=torch.float64).tolist()
    rank = {i: r for r, i in enumerate(sorted(range(t), key=tasks.__getitem__))}
    orders = []
    for i in range(t):
        row = u[rank[i]]
        orders.append(sorted((j for j in range(t) if j != i), key=lambda j: row[rank[j]]))
    return orders, g.get_state()


def _grads(signals: Signals, who: str) -> torch.Tensor:
    if signals.grads is None:
        raise ValueError(f"{who} needs the per-task gradients (Need.GRADS).")
    return signals.grads.detach()
