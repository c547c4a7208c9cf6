"""Bring each auxiliary gradient's magnitude towards the main gradient's, on the shared block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._main_first_common import (
    _GRAMIAN_ONLY,
    _check_fraction,
    _check_positive_int,
    _gram,
    _norms,
    _warn,
)
from auxlab.weighting._registry import register

__all__ = ["MetaBalance", "MetaBalanceState"]


class MetaBalanceState(NamedTuple):
    """State of :class:`MetaBalance`.

    Attributes:
        norms: Per task, the moving average of its gradient norm on each block of the shared
            parameters (a float64 tensor of one value per block; one block by default).
        updates: Updates seen so far.
    """

    norms: dict[str, torch.Tensor]
    updates: int


@register("metabalance")
class MetaBalance(Strategy):
    """Bring each auxiliary gradient's magnitude towards the main gradient's, on the shared block.

    Rule (per block of shared parameters): moving averages of the gradient norms
    ``mᵢ ← β·mᵢ + (1−β)·‖gᵢ‖`` for every task; each auxiliary gradient is rescaled to
    ``gₖ ← (r·m_main/mₖ + 1 − r)·gₖ`` and the shared parameters receive ``g_main + Σₖ gₖ``.
    ``r`` (the relax factor) sets how close the magnitudes are brought: 1 equalises them,
    0 leaves them. The paper's three strategies choose when to rescale: ``"reduce"`` only
    when the auxiliary gradient is the larger (``mₖ > m_main``), ``"enlarge"`` only when it is
    the smaller, ``"both"`` always. The comparison uses the same moving averages as the ratio,
    so ``"reduce"`` never enlarges and ``"enlarge"`` never reduces. The averages start at 0
    with no bias correction, as in the paper: a correction would cancel in ``m_main/mₖ``. An
    auxiliary task whose average is 0 (no gradient yet) keeps factor 1. Heads get their own
    task's plain gradient (weight 1).

    By default the whole shared block is one block, and the decision is linear in the task
    gradients: ``Decision(weights=1, shared_weights={main: 1, k: factorₖ})`` from the Gramian
    alone. The paper rescales per parameter tensor ("adaptively for each part of the
    network"); pass ``blocks`` (the sizes of the shared parameter tensors, in the Balancer's
    order, e.g. from :meth:`per_parameter`) for that; it then reads the gradients and returns
    the combined ``shared_grad``.

    Cost: one backward through the shared block per task. ``Need.GRAMIAN`` by default;
    ``Need.GRADS`` with ``blocks``; state T·(number of blocks) floats.

    Loss scaling (``scale_reaction``): with ``relax_factor=1`` and ``mode="both"`` every
    auxiliary contribution has norm ``m_main`` whatever its loss's scale, so multiplying one
    loss by ``c`` leaves the direction of the shared update unchanged (``"invariant"``); with
    ``relax_factor=0`` nothing is rescaled (``"independent"``); with ``0 < r < 1`` and
    ``"both"`` the magnitudes are partly re-balanced (``"adaptive"``); ``"reduce"`` and
    ``"enlarge"`` with ``r > 0`` give ``"none"``.

    Args:
        relax_factor: ``r`` in [0, 1]; 0.7 is the authors' default.
        beta: Moving-average coefficient in [0, 1); 0.9 is the authors' default.
        mode: ``"reduce"``, ``"enlarge"`` or ``"both"`` (the paper's strategies A, B, C).
        blocks: Sizes of consecutive blocks of the flattened shared parameters (summing to
            their number), each rescaled separately; ``None``: one block.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [0.0, 4.0]])  # ‖g_aux‖ = 4‖g_main‖
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = MetaBalance(relax_factor=0.5)
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'aux': 0.625}

    Reference:
        He, Feng, Cheng, Ji, Guo, Caverlee, "MetaBalance: Improving Multi-Task Recommendations
        via Adapting Gradient Magnitudes of Auxiliary Tasks", WWW 2022. Implemented from the
        paper (the authors' code is CC-BY-NC and was not used); the technique comes from
        MTAdam (Malkiel & Wolf).
    """

    family = "main-first"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "He et al., WWW 2022"

    needs = _GRAMIAN_ONLY

    def __init__(
        self,
        relax_factor: float = 0.7,
        beta: float = 0.9,
        mode: Literal["reduce", "enlarge", "both"] = "both",
        blocks: Sequence[int] | None = None,
    ) -> None:
        self.relax_factor = _check_fraction("relax_factor", relax_factor, closed_top=True)
        self.beta = _check_fraction("beta", beta, closed_top=False)
        if mode not in ("reduce", "enlarge", "both"):
            raise ValueError(f"mode must be 'reduce', 'enlarge' or 'both', got {mode!r}")
        self.mode = mode
        if blocks is not None:
            blocks = tuple(_check_positive_int("each block size", b) for b in blocks)
            if not blocks:
                raise ValueError("blocks must name at least one block (or be None)")
        self.blocks = blocks
        needs = frozenset({Need.LOSSES, Need.GRADS}) if blocks else _GRAMIAN_ONLY
        self.needs = needs  # type: ignore[misc]
        r = self.relax_factor
        if r == 0.0:
            reaction = "independent"
        elif mode != "both":
            reaction = "none"
        else:
            reaction = "invariant" if r == 1.0 else "adaptive"
        self.scale_reaction = reaction  # type: ignore[misc]

    @classmethod
    def per_parameter(cls, shared: torch.nn.Module, **kwargs: Any) -> MetaBalance:
        """MetaBalance per parameter tensor of ``shared`` (the module given to the Balancer)."""
        sizes = [p.numel() for p in shared.parameters() if p.requires_grad]
        return cls(blocks=sizes, **kwargs)

    def init(self, tasks: Sequence[str], main: str) -> MetaBalanceState:
        n = len(self.blocks) if self.blocks else 1
        return MetaBalanceState({t: torch.zeros(n, dtype=torch.float64) for t in tasks}, 0)

    def _factor(self, m_main: torch.Tensor, m_aux: torch.Tensor) -> torch.Tensor:
        r = self.relax_factor
        ratio = m_main / m_aux.clamp_min(torch.finfo(torch.float64).tiny)
        # No auxiliary gradient yet (or one so small that the ratio overflows): its
        # contribution is nil whatever the factor, so leave it at 1 rather than inf.
        ratio = torch.where((m_aux > 0) & torch.isfinite(ratio), ratio, 1.0)
        factor = r * ratio + (1.0 - r)
        if self.mode == "reduce":
            return factor.clamp_max(1.0)
        if self.mode == "enlarge":
            return factor.clamp_min(1.0)
        return factor

    def update(
        self, signals: Signals, state: MetaBalanceState
    ) -> tuple[Decision, MetaBalanceState]:
        tasks, main = signals.tasks, signals.main
        if self.blocks is None:
            norms = _norms(_gram(signals, self), self)
            current = {
                t: torch.tensor([n], dtype=torch.float64) for t, n in zip(tasks, norms, strict=True)
            }
        else:
            grads = signals.grads
            if grads is None:
                raise ValueError(
                    "MetaBalance with blocks reads the per-task gradients (Need.GRADS)"
                )
            if sum(self.blocks) != grads.shape[1]:
                raise ValueError(
                    f"MetaBalance: the blocks {list(self.blocks)} cover {sum(self.blocks)} values "
                    f"but the shared parameters have {grads.shape[1]}; pass the sizes of the "
                    "shared parameter tensors (MetaBalance.per_parameter(module))"
                )
            parts = torch.split(grads.detach().to(torch.float64), list(self.blocks), dim=1)
            per_block = torch.stack([p.norm(dim=1) for p in parts], dim=1).cpu()  # (T, B)
            if not torch.isfinite(per_block).all():
                _warn(self, "a gradient norm is not finite; that block is treated as zero")
                per_block = torch.nan_to_num(per_block, nan=0.0, posinf=0.0)
            current = {t: per_block[i] for i, t in enumerate(tasks)}
        b = self.beta
        ema = {t: b * state.norms[t] + (1.0 - b) * current[t] for t in tasks}
        factors = {t: self._factor(ema[main], ema[t]) for t in tasks if t != main}
        weights = dict.fromkeys(tasks, 1.0)
        new_state = MetaBalanceState(ema, state.updates + 1)
        if self.blocks is None:
            shared = {t: 1.0 if t == main else float(factors[t][0]) for t in tasks}
            return Decision(weights, shared_weights=shared), new_state
        assert signals.grads is not None
        g = signals.grads.detach()
        sizes = torch.tensor(self.blocks)
        out = g[tasks.index(main)].clone()
        for i, t in enumerate(tasks):
            if t != main:
                scale = torch.repeat_interleave(factors[t], sizes).to(
                    device=g.device, dtype=g.dtype
                )
                out = out + scale * g[i]
        return Decision(weights, shared_grad=out), new_state
