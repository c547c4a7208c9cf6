"""Gradient-based (symmetric multi-task) strategies: the whole family, in one import.

The strategies that decide from the Gramian alone live in :mod:`auxlab.weighting._gramian`
(GradNorm, MGDA, MGDA-UB, PCGrad, GradVac, IMTL, CAGrad, Nash-MTL, Aligned-MTL, UPGrad) and
their small exact solvers in :mod:`auxlab.weighting._solvers`. This module adds the two that
need the full ``(T, d)`` gradients because their result is not a combination of the current
gradients: GradDrop (a coordinate-wise random mask) and DB-MTL (an EMA of past gradients).
Both return ``Decision(shared_grad=...)``; with ``Balancer(every=k)`` the Balancer re-applies
that vector between refreshes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.objective import match_to_tasks
from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gramian import (
    IMTL,
    MGDA,
    MGDAUB,
    AlignedMTL,
    AlignedMTLState,
    CAGrad,
    GradNorm,
    GradNormState,
    GradVac,
    GradVacState,
    NashMTL,
    NashMTLState,
    PCGrad,
    PCGradState,
    UPGrad,
    UPGradState,
)
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import SolverWarning

__all__ = [
    "DBMTL",
    "IMTL",
    "MGDA",
    "MGDAUB",
    "AlignedMTL",
    "AlignedMTLState",
    "CAGrad",
    "DBMTLState",
    "GradDrop",
    "GradDropState",
    "GradNorm",
    "GradNormState",
    "GradVac",
    "GradVacState",
    "NashMTL",
    "NashMTLState",
    "PCGrad",
    "PCGradState",
    "SolverWarning",
    "UPGrad",
    "UPGradState",
]


def _check_tasks(tasks: Sequence[str], main: str) -> None:
    if not tasks:
        raise ValueError("a strategy needs at least one task")
    if main not in tasks:
        raise ValueError(f"main task '{main}' is not one of the tasks {list(tasks)}")


def _grads(signals: Signals, who: str) -> torch.Tensor:
    if signals.grads is None:
        raise ValueError(f"{who} needs the per-task gradients (Need.GRADS).")
    return signals.grads.detach()


# -------------------------------------------------------------------------------- GradDrop


class GradDropState(NamedTuple):
    """State of :class:`GradDrop`.

    Attributes:
        leak: ``(T,)`` float64 leak per task, in task order.
        rng: The state of the CPU generator that draws the per-coordinate uniforms.
    """

    leak: torch.Tensor
    rng: torch.Tensor


@register("graddrop")
class GradDrop(Strategy):
    """Keep, per coordinate, only the gradients of one sign, chosen at random (GradDrop).

    Rule (Chen et al., 2020, Algorithm 1): for every coordinate of the shared parameters,
    the sign purity ``P = ½(1 + Σᵢ gᵢ / Σᵢ |gᵢ|)`` (``½`` where all are zero); draw
    ``U ~ Uniform(0, 1)``; task ``i`` keeps its component if ``P > U`` and ``gᵢ > 0``, or if
    ``P < U`` and ``gᵢ < 0`` (mask ``Mᵢ``). The shared gradient is
    ``Σᵢ (ℓᵢ + (1 - ℓᵢ) Mᵢ) gᵢ`` with leak ``ℓᵢ``; heads get their own gradients.

    Where it applies: the paper inserts GradDrop at a layer of activations and multiplies
    the batch-summed activation gradients by the sign of the inputs; LibMTL does that with
    representation gradients. Here it is the aggregator form (as TorchJD's ``GradDrop``):
    it works on the per-task gradients of the shared parameters.

    Args:
        leak: Leak ``ℓ`` in ``[0, 1]``: a number for every task, or ``{task: leak}`` for every
            task (or a list in task order). The paper's transfer setting lets the main task
            leak fully (``{"main": 1.0, "aux": 0.0}``): the main gradient is never dropped.
        seed: Seed of the uniforms (drawn on the CPU, ``d`` per update, in float64 for float64
            gradients and float32 otherwise, then moved to the gradients' device, so results
            do not depend on the device).

    Cost: ``T`` backward passes through the shared parameters, ``T x d`` memory plus ``d``
    uniforms per update.

    Reaction to scaling one loss by ``k``: ``"none"`` (the purity ``P`` changes).

    Reference: Z. Chen, J. Ngiam, Y. Huang, T. Luong, H. Kretzschmar, Y. Chai, D. Anguelov,
    "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
    NeurIPS 2020. Compared with TorchJD's ``GradDrop`` and LibMTL's ``GradDrop``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 2.0], [3.0, -2.0]])  # agree on 0, cancel on 1
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = GradDrop(leak={"main": 1.0, "aux": 0.0})  # never drop the main gradient
        >>> d, _ = s.update(Signals(0, ("main", "aux"), "main", losses, grads=g),
        ...                 s.init(["main", "aux"], "main"))
        >>> d.shared_grad[0].item()  # both positive: purity 1, kept
        4.0
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRADS})
    scale_reaction: ClassVar[str] = "none"

    def __init__(
        self, leak: float | Mapping[str, float] | Sequence[float] = 0.0, seed: int = 0
    ) -> None:
        values = (
            list(leak.values())
            if isinstance(leak, Mapping)
            else list(leak)
            if isinstance(leak, Sequence) and not isinstance(leak, str)
            else [leak]
        )
        for v in values:
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"leak values must be numbers in [0, 1], got {v!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.leak = (
            dict(leak)
            if isinstance(leak, Mapping)
            else float(leak)
            if isinstance(leak, (int, float))
            else list(leak)
        )
        self.seed = seed

    def init(self, tasks: Sequence[str], main: str) -> GradDropState:
        _check_tasks(tasks, main)
        if isinstance(self.leak, float):
            leak = torch.full((len(tasks),), self.leak, dtype=torch.float64)
        else:
            resolved = match_to_tasks(self.leak, list(tasks), "GradDrop leaks")
            leak = torch.tensor([float(resolved[t]) for t in tasks], dtype=torch.float64)
        g = torch.Generator()
        g.manual_seed(self.seed)
        return GradDropState(leak, g.get_state())

    def update(self, signals: Signals, state: GradDropState) -> tuple[Decision, GradDropState]:
        grads = _grads(signals, "GradDrop")
        gen = torch.Generator()
        gen.set_state(state.rng)
        # float32 uniforms unless the gradients are float64: half the memory, same resolution
        # as the float32 purities they are compared with.
        precision = torch.float64 if grads.dtype == torch.float64 else torch.float32
        u = torch.rand(grads.shape[1], generator=gen, dtype=precision)
        u = u.to(device=grads.device, dtype=grads.dtype)
        # P > U  <=>  Σgᵢ > (2U - 1)·Σ|gᵢ|, so the side a coordinate keeps is the sign of
        # the difference (+1: the positive components, -1: the negative ones, 0: none, which
        # includes the all-zero coordinates): no division. Task by task, with d-sized
        # scratch (PyTorch's CPU reductions over the task axis are several times slower).
        rows = grads.unbind(0)
        scratch = torch.empty_like(rows[0])
        total, mass = rows[0].clone(), rows[0].abs()
        for r in rows[1:]:
            total.add_(r)
            mass.add_(torch.abs(r, out=scratch))
        side = total.sub_(u.mul_(2.0).sub_(1.0).mul_(mass)).sign_()
        del mass, u
        # gᵢ·[gᵢ on the kept side] = side·max(gᵢ·side, 0).
        leaks = [float(v) for v in state.leak.tolist()]
        shared = torch.zeros_like(side)
        for r, leak in zip(rows, leaks, strict=True):
            if leak < 1.0:
                shared.add_(torch.mul(r, side, out=scratch).clamp_min_(0.0), alpha=1.0 - leak)
        shared.mul_(side)
        for r, leak in zip(rows, leaks, strict=True):
            if leak > 0.0:
                shared.add_(r, alpha=leak)
        decision = Decision(dict.fromkeys(signals.tasks, 1.0), shared_grad=shared)
        return decision, GradDropState(state.leak, gen.get_state())


# ---------------------------------------------------------------------------------- DB-MTL


class DBMTLState(NamedTuple):
    """State of :class:`DBMTL`.

    Attributes:
        buffer: ``(T, d)`` EMA of the log-loss gradients ``gᵢ/Lᵢ`` on the shared parameters,
            on the gradients' device (empty before the first update).
        updates: Updates so far.
    """

    buffer: torch.Tensor
    updates: int


@register("db-mtl")
class DBMTL(Strategy):
    """Balance loss scales by a log transform and gradient scales by the largest norm (DB-MTL).

    Rule (Lin et al., 2023, Algorithm 1): the loss-scale step trains on ``log Lᵢ``, whose
    gradient is ``gᵢ/Lᵢ``; heads therefore get weight ``1/Lᵢ``. The gradient-scale step keeps
    an EMA ``ĝᵢ ← g̃ᵢ + βₖ(ĝᵢ - g̃ᵢ)`` of ``g̃ᵢ = gᵢ/Lᵢ`` with ``βₖ = β / k^{β_σ}`` at update
    ``k = 1, 2, ...`` (from ``ĝ = 0``, as the authors' LibMTL code) and gives the shared
    parameters ``Σᵢ (maxⱼ ||ĝⱼ|| / ||ĝᵢ||) ĝᵢ``: every task's direction with the largest
    norm. A zero ``ĝᵢ`` contributes nothing. Since the EMA mixes past gradients, the result
    is a vector (``shared_grad``), not a combination of this step's gradients.

    Losses must be positive (the logarithm); a loss ``<= 0`` raises ``ValueError``.

    Args:
        beta: EMA factor ``β`` in ``[0, 1)`` (0.9, LibMTL's default).
        beta_sigma: Decay exponent ``β_σ >= 0`` of the EMA factor (0: constant ``β``).

    Cost: ``T`` backward passes through the shared parameters, ``T x d`` memory for the
    gradients and ``T x d`` state.

    Reaction to scaling one loss by ``k``: ``"invariant"``: ``g̃ᵢ = gᵢ/Lᵢ`` does not change, so
    neither do the state or the shared update (exactly); that task's head weight scales by
    ``1/k``, so its head gradient is unchanged too.

    Reference: B. Lin, W. Jiang, F. Ye, Y. Zhang, P. Chen, Y.-C. Chen, S. Liu, J. T. Kwok,
    "Dual-Balancing for Multi-Task Learning", arXiv:2308.12029, 2023. Compared with LibMTL's
    ``DB_MTL`` (which adds ``1e-8`` inside the logarithm and to the norms).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[2.0, 0.0], [0.0, 10.0]])
        >>> losses = {"main": torch.tensor(2.0), "aux": torch.tensor(5.0)}
        >>> s = DBMTL(beta=0.0)  # no memory: g/L is (1, 0) and (0, 2)
        >>> d, _ = s.update(Signals(0, ("main", "aux"), "main", losses, grads=g),
        ...                 s.init(["main", "aux"], "main"))
        >>> d.weights, d.shared_grad.tolist()
        ({'main': 0.5, 'aux': 0.2}, [2.0, 2.0])
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRADS})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        if not (math.isfinite(beta_sigma) and beta_sigma >= 0.0):
            raise ValueError(f"beta_sigma must be finite and >= 0, got {beta_sigma!r}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)

    def init(self, tasks: Sequence[str], main: str) -> DBMTLState:
        _check_tasks(tasks, main)
        return DBMTLState(torch.zeros(0), 0)

    def update(self, signals: Signals, state: DBMTLState) -> tuple[Decision, DBMTLState]:
        grads = _grads(signals, "DBMTL")
        losses = [float(signals.losses[t]) for t in signals.tasks]
        bad = {t: v for t, v in zip(signals.tasks, losses, strict=True) if not v > 0}
        if bad:
            raise ValueError(
                f"DB-MTL takes the logarithm of each loss, so losses must be positive; got {bad}."
            )
        inv = torch.tensor([1.0 / v for v in losses], dtype=torch.float64)
        k = state.updates + 1
        rate = self.beta / k**self.beta_sigma
        # buffer = (1 - rate)·gᵢ/Lᵢ + rate·previous, in two passes over the T x d values
        # (a new tensor: the previous state is not modified).
        buffer = grads * (inv * (1.0 - rate)).to(device=grads.device, dtype=grads.dtype)[:, None]
        if state.updates > 0:
            buffer.add_(state.buffer.to(device=buffer.device, dtype=buffer.dtype), alpha=rate)
        norms = buffer.norm(dim=1)
        top = norms.max()
        factor = torch.where(norms > 0, top / torch.where(norms > 0, norms, 1.0), 0.0)
        shared = factor @ buffer
        weights = {t: float(w) for t, w in zip(signals.tasks, inv.tolist(), strict=True)}
        return Decision(weights, shared_grad=shared), DBMTLState(buffer, k)
