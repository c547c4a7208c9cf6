"""Learn loss weights that equalise the tasks' gradient norms (GradNorm)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._gradient_common import _check_tasks, _gramian, _losses64
from auxlab.weighting._registry import register

__all__ = ["GradNorm", "GradNormState"]


class GradNormState(NamedTuple):
    """State of :class:`GradNorm`.

    Attributes:
        weights: ``(T,)`` float64 weights to use at the next step, in task order; sum ``T``.
        initial_losses: ``(T,)`` float64 losses at the first update, ``Lᵢ(0)`` (zeros before).
        updates: Updates so far.
    """

    weights: torch.Tensor
    initial_losses: torch.Tensor
    updates: int


_GRADNORM_FLOOR = 1e-6  # weights are kept positive so that renormalising cannot flip signs


@register("gradnorm")
class GradNorm(Strategy):
    """Learn loss weights that equalise the tasks' gradient norms (GradNorm).

    Rule (Chen et al., 2018, eqs. 1-2). With weights ``wᵢ``, gradient norms ``nᵢ = ||gᵢ||`` on
    the shared parameters, ``Gᵢ = wᵢ·nᵢ`` (``= ||∇(wᵢ Lᵢ)||``), ``Ḡ = meanᵢ Gᵢ``, loss ratios
    ``L̃ᵢ = Lᵢ(t)/Lᵢ(0)`` and relative inverse training rates ``rᵢ = L̃ᵢ / meanⱼ L̃ⱼ``, the
    GradNorm loss is ``L_grad = Σᵢ |Gᵢ - Ḡ·rᵢ^α|`` with the target ``Ḡ·rᵢ^α`` held constant.
    Its gradient is written by hand: ``∂L_grad/∂wᵢ = sign(Gᵢ - Ḡ rᵢ^α)·nᵢ``. Each update
    returns the current weights (used for this step's loss ``Σ wᵢ Lᵢ``, heads included, as
    published) and stores ``w ← w - lr·∂L_grad/∂w``, floored at 1e-6 and renormalised to
    ``Σ wᵢ = T``.

    The paper measures the norms on the last shared layer. The Balancer measures them on the
    ``shared=`` parameters it is given, so ``Balancer(GradNorm(), shared=model.trunk[-1])``
    is the published variant (and the cheapest); passing the whole trunk gives LibMTL's.

    Args:
        alpha: Asymmetry ``α >= 0``: how strongly tasks that train slowly get larger
            gradients (0: equal norms). The paper's default 1.5.
        lr: Step size ``> 0`` of plain gradient descent on the weights. The GradNorm loss
            has the units of a gradient norm, so choose it relative to the norms on the
            shared layer (the paper trains ``w`` with the network's optimiser).

    Cost: ``T`` backward passes through the shared parameters per update (only the last
    layer for the published variant) and ``T x T`` memory; the weight step is ``O(T)``.

    Reaction to scaling one loss by ``k``: ``"adaptive"``: its weight is unchanged at that
    step (the loss ratios ``L̃`` are scale free) and then moves to bring ``k·wᵢ·nᵢ`` back to
    the target.

    Reference: Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
    Compared with LibMTL's ``GradNorm`` (which parametrises ``w = T·softmax(s)``, uses the
    network's optimiser, and skips the first epoch).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> s = GradNorm(alpha=1.5, lr=0.1)
        >>> state = s.init(["main", "aux"], "main")
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # norms 1 and 3
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> w, state = s.update(sig, state)
        >>> w, [round(x, 2) for x in state.weights.tolist()]
        ({'main': 1.0, 'aux': 1.0}, [1.22, 0.78])
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "Chen et al., ICML 2018"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "adaptive"

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be finite and > 0, got {lr!r}")
        self.alpha = float(alpha)
        self.lr = float(lr)

    def init(self, tasks: Sequence[str], main: str) -> GradNormState:
        _check_tasks(tasks, main)
        t = len(tasks)
        return GradNormState(
            torch.ones(t, dtype=torch.float64), torch.zeros(t, dtype=torch.float64), 0
        )

    def update(self, signals: Signals, state: GradNormState) -> tuple[Weights, GradNormState]:
        gram, _ = _gramian(signals, "GradNorm")
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        losses = _losses64(signals)
        initial = losses.copy() if state.updates == 0 else state.initial_losses.numpy().copy()
        w = state.weights.numpy().copy()
        t = len(w)
        # Loss ratios; a task whose initial loss was not positive has no training rate: 1.
        safe0 = np.where(initial > 0, initial, 1.0)
        ratio = np.where(initial > 0, np.clip(losses, 0.0, None) / safe0, 1.0)
        mean_ratio = float(ratio.mean())
        rate = ratio / mean_ratio if mean_ratio > 0 and math.isfinite(mean_ratio) else np.ones(t)
        g_w = w * norms
        target = float(g_w.mean()) * rate**self.alpha
        grad = np.sign(g_w - target) * norms
        new = np.clip(w - self.lr * grad, _GRADNORM_FLOOR, None)
        new = t * new / new.sum()
        if not np.all(np.isfinite(new)):  # lr·norm overflowed: keep the weights
            new = w
        weights = {task: float(v) for task, v in zip(signals.tasks, w, strict=True)}
        new_state = GradNormState(
            torch.from_numpy(new),
            torch.from_numpy(np.asarray(initial, dtype=np.float64)),
            state.updates + 1,
        )
        return weights, new_state
