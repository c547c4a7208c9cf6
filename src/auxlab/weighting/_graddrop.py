"""Keep, per coordinate, only the gradients of one sign, chosen at random (GradDrop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab._tasks import match_to_tasks
from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import _check_tasks, _grads
from auxlab.weighting._registry import register

__all__ = ["GradDrop", "GradDropState"]


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

    family = "gradient"
    paper = "Chen et al., NeurIPS 2020"

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
