"""AuxiLearn: the loss combination learned by implicit differentiation of the validation loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F

from auxlab._checks import check_int
from auxlab.weighting._base import Need, Signals, Strategy, Weights, check_weight
from auxlab.weighting._main_first_common import _check_max_weight
from auxlab.weighting._registry import register
from auxlab.weighting._validation_common import (
    DISTRIBUTED_REFUSAL,
    AdamMoments,
    adam_step,
    check_positive,
    zero_moments,
)

__all__ = ["AuxiLearn", "AuxiLearnState", "implicit_hypergradient"]

#: The smallest loss used as a scale for the non-linear combiner's inputs.
_TINY = 1e-12


class AuxiLearnState(NamedTuple):
    """State of :class:`AuxiLearn`.

    Attributes:
        phi: The combiner's parameters, flat (see :class:`AuxiLearn` for the layout).
        moments: Adam's moments of their hypergradient.
        scale: Each auxiliary loss at the first update, the unit of the non-linear
            combiner's inputs (``()`` until then, and for the linear combiner).
        updates: Updates seen so far (calls of ``update``).
        hyper_steps: Hypergradient steps taken so far.
        weights: The effective weights ``∂h/∂Lₖ`` applied at the last update.
    """

    phi: tuple[float, ...]
    moments: AdamMoments
    scale: tuple[float, ...]
    updates: int
    hyper_steps: int
    weights: dict[str, float]


def implicit_hypergradient(
    train_loss: torch.Tensor,
    params: Sequence[torch.Tensor],
    phi: torch.Tensor,
    val_grad: torch.Tensor,
    terms: int = 3,
    alpha: float = 0.1,
) -> torch.Tensor:
    """``dL_val/dφ`` by the implicit function theorem, with a truncated Neumann series.

    At a minimum ``θ*(φ)`` of ``L_train(θ, φ)``,
    ``dL_val/dφ = −(∂²L_train/∂φ∂θ)·H⁻¹·g_val`` with ``H = ∇²_θ L_train`` and ``g_val`` the
    validation gradient. ``H⁻¹·g_val`` is approximated by ``α·Σ_{j=0..K} (I − αH)ʲ·g_val``
    (``K`` Hessian-vector products), which converges when ``0 < α·λ < 2`` for every
    eigenvalue ``λ`` of ``H``. A term larger than the one before it (a direction of
    negative curvature, or ``α`` too large) ends the series there. ``K = 0`` gives the
    first-order look-ahead ``−α·∂(g_train·g_val)/∂φ``.

    Args:
        train_loss: ``L_train`` with its autograd graph through ``params`` and ``phi``; the
            graph is kept (``retain_graph``), so it can be backpropagated afterwards.
        params: The parameters ``θ``, in the layout of ``val_grad``.
        phi: The combination parameters (a tensor that requires grad).
        val_grad: ``g_val``, flat, laid out as ``params`` in order.
        terms: ``K``, Hessian-vector products in the series (``>= 0``).
        alpha: ``α``, the series' step (``> 0``).

    Returns:
        ``dL_val/dφ``, shaped like ``phi`` (zeros where ``L_train`` does not reach ``phi``).

    Example:
        ``L_train = θ²/2 + w·(θ − 2)²/2`` has ``θ* = 2w/(1 + w)``; with ``L_val = θ``,
        ``dL_val/dw = 2/(1 + w)² = 0.8889`` at ``w = 0.5``:

        >>> w = torch.tensor([0.5], requires_grad=True)
        >>> theta = torch.tensor([2 / 3], requires_grad=True)  # θ*(0.5)
        >>> loss = 0.5 * (theta**2).sum() + w[0] * 0.5 * ((theta - 2) ** 2).sum()
        >>> implicit_hypergradient(loss, [theta], w, torch.tensor([1.0]), terms=40, alpha=0.5)
        tensor([0.8889])
    """
    params = list(params)
    parts = torch.autograd.grad(
        train_loss, params, create_graph=True, retain_graph=True, allow_unused=True
    )
    pieces = [
        torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
        for p, g in zip(params, parts, strict=True)
    ]
    grad = torch.cat(pieces)
    if not grad.requires_grad:  # L_train is linear in θ, or does not reach φ: no signal
        return torch.zeros_like(phi)
    v = val_grad.detach().to(grad.dtype).reshape(-1)
    total = v.clone()
    last = float(v.norm())
    for _ in range(terms):
        hv = _flat(
            torch.autograd.grad(grad, params, v, retain_graph=True, allow_unused=True), params
        )
        v = v - alpha * hv
        size = float(v.norm())
        if not math.isfinite(size) or size > last:
            break
        total, last = total + v, size
    inverse = alpha * total
    (mixed,) = torch.autograd.grad(grad, phi, inverse, retain_graph=True, allow_unused=True)
    return torch.zeros_like(phi) if mixed is None else -mixed


def _flat(parts: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(
        [
            torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
            for p, g in zip(params, parts, strict=True)
        ]
    )


@register("auxilearn")
class AuxiLearn(Strategy):
    """AuxiLearn: the loss combination learned by implicit differentiation of the validation loss.

    Rule: the model trains on ``L_train = L_main + h_φ(L_aux)``; every ``every`` updates the
    combiner's parameters ``φ`` take one Adam step down ``dL_val/dφ``, the hypergradient of
    the main task's validation loss, by the implicit function theorem
    (:func:`implicit_hypergradient`: ``−(∂²L_train/∂φ∂θ)·H⁻¹·g_val`` with the inverse
    Hessian-vector product a Neumann series of ``terms`` products with step ``alpha``), on
    the shared parameters (``Balancer(shared=...)``; the heads are held fixed in the
    implicit function). Each step applies the effective weights ``wₖ = ∂h_φ/∂Lₖ`` at the
    current losses (the main weight is 1): ``Σ wₖ·∇Lₖ`` is exactly ``∇h_φ``, so the model
    follows ``L_train``'s gradient. The state's ``weights`` are the weights a fixed-weight
    run would use.

    Combiners (``h`` non-decreasing in every loss, as AuxiLearn requires):

    * ``"linear"``: ``h = Σₖ aₖ·Lₖ`` with ``0 <= aₖ <= max_weight``; ``φ = a``.
    * ``"monotone"``: ``h = Σₖ aₖ·Lₖ + Σⱼ cⱼ·softplus(Σₖ Bⱼₖ·Lₖ/ℓₖ + dⱼ)``, a one-hidden-layer
      network with non-negative ``a``, ``B``, ``c`` (so monotone), ``hidden`` units, inputs
      in units of each loss's first value ``ℓₖ``; ``φ = (a, B row by row, c, d)``. It starts
      as the linear combiner (``c = 0``); ``dⱼ`` are spread over ``[-1, 1]`` so that the units
      differ. Its effective weight is ``aₖ + Σⱼ cⱼ·σ(zⱼ)·Bⱼₖ/ℓₖ``, capped at ``max_weight``.

    Cost: on ordinary steps, one backward (weights from the losses). Every ``every`` steps,
    the hypergradient: one forward and backward on a validation batch, one backward with
    ``create_graph`` through the shared block, ``terms`` Hessian-vector products (about two
    backwards each) and one more for ``∂/∂φ``. The model must be twice differentiable:
    a kernel without a second derivative (cuDNN's RNN) is an error that names the fix,
    and an operation PyTorch marks ``once_differentiable`` adds no curvature, silently.

    Loss scaling (``scale_reaction = "none"``): the hypergradient steps are normalised
    (Adam), so a linear weight moves as before when its loss is multiplied by ``c``.

    Args:
        combiner: ``"linear"`` or ``"monotone"``.
        lr: Adam's step on ``φ`` per hypergradient step (``> 0``); for the linear combiner,
            in weight units.
        every: Updates between hypergradient steps (``>= 1``).
        terms: Hessian-vector products in the Neumann series (``K >= 0``; AuxiLearn uses 3).
        alpha: The Neumann series' step (``> 0``); it converges while ``alpha`` is below
            ``2/λ_max`` of the training loss's Hessian on the shared block.
        weights: The initial auxiliary weight (``aₖ``), the same for every auxiliary task.
        hidden: Hidden units of the monotone combiner (``>= 1``).
        max_weight: Upper bound on ``aₖ`` and on the applied weights (``None``: none).

    Example:
        >>> s = AuxiLearn("monotone", hidden=2)
        >>> len(s.init(("main", "aux"), "main").phi)  # a, B (2x1), c (2), d (2)
        7

    Reference:
        Navon, Achituve, Maron, Chechik, Fetaya, "Auxiliary Learning by Implicit
        Differentiation", ICLR 2021. The paper's non-linear combiner also reads per-sample
        (or per-pixel) losses; this one reads each task's batch loss, so the Balancer's
        one weighted backward applies it. The authors' code (``AvivNavon/AuxiLearn``) steps
        ``φ`` with Adam through its meta-optimizer, with 3 Neumann terms whose step is the
        auxiliary learning rate and the hypergradient's norm clipped at 10; here Adam's
        step is clipped to ``lr`` per parameter and the Neumann step ``alpha`` is its own
        argument.
    """

    family = "validation"
    paper = "Navon et al., ICLR 2021"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.VAL_GRAD, Need.LOSS_GRAPH})
    scale_reaction = "none"
    distributed_refusal = DISTRIBUTED_REFUSAL

    def __init__(
        self,
        combiner: Literal["linear", "monotone"] = "linear",
        lr: float = 0.05,
        every: int = 10,
        terms: int = 3,
        alpha: float = 0.1,
        weights: float = 1.0,
        hidden: int = 4,
        max_weight: float | None = 10.0,
    ) -> None:
        if combiner not in ("linear", "monotone"):
            raise ValueError(f"combiner must be 'linear' or 'monotone', got {combiner!r}")
        self.combiner = combiner
        self.lr = check_positive("lr", lr)
        self.every = check_int("every", every)
        if isinstance(terms, bool) or not isinstance(terms, int) or terms < 0:
            raise ValueError(f"terms must be an integer >= 0, got {terms!r}")
        self.terms = terms
        self.alpha = check_positive("alpha", alpha)
        self.weights = check_weight("every auxiliary task", weights, "initial weight")
        self.hidden = check_int("hidden", hidden)
        self.max_weight = _check_max_weight(max_weight)

    # -- the combiner ----------------------------------------------------------------------
    def _sizes(self, n: int) -> tuple[int, int]:
        """(n aux tasks) -> (parameters of the linear part, of the non-linear part)."""
        hid = self.hidden if self.combiner == "monotone" else 0
        return n, hid * n + 2 * hid

    def _bounds(self, n: int) -> tuple[list[float | None], list[float | None]]:
        hid = self.hidden if self.combiner == "monotone" else 0
        low: list[float | None] = [0.0] * (n + hid * n + hid) + [None] * hid
        high: list[float | None] = [self.max_weight] * n + [None] * (hid * n + 2 * hid)
        return low, high

    def _h(self, phi: torch.Tensor, losses: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``h_φ(L)`` for a vector of auxiliary losses."""
        n = losses.shape[0]
        out = phi[:n] @ losses
        if self.combiner == "monotone":
            hid = self.hidden
            b = phi[n : n + hid * n].reshape(hid, n)
            c = phi[n + hid * n : n + hid * n + hid]
            d = phi[n + hid * n + hid :]
            out = out + c @ F.softplus(b @ (losses / scale) + d)
        return out

    def _effective(
        self, phi: Sequence[float], losses: Sequence[float], scale: Sequence[float]
    ) -> list[float]:
        """``∂h/∂Lₖ`` at the given losses, capped at ``max_weight``."""
        n = len(losses)
        if self.combiner == "linear" or n == 0:
            eff = list(phi[:n])
        else:
            p = torch.tensor(list(phi), dtype=torch.float64)
            x = torch.tensor(list(losses), dtype=torch.float64, requires_grad=True)
            s = torch.tensor(list(scale), dtype=torch.float64)
            (g,) = torch.autograd.grad(self._h(p, x, s), x)
            eff = g.tolist()
        cap = self.max_weight if self.max_weight is not None else math.inf
        return [min(cap, max(0.0, w)) if math.isfinite(w) else 0.0 for w in eff]

    # -- the protocol ----------------------------------------------------------------------
    def init(self, tasks: Sequence[str], main: str) -> AuxiLearnState:
        n = sum(t != main for t in tasks)
        phi = [self.weights] * n
        if self.combiner == "monotone":
            hid = self.hidden
            phi += [1.0 / max(n, 1)] * (hid * n) + [0.0] * hid
            phi += [(2.0 * j / (hid - 1) - 1.0) if hid > 1 else 0.0 for j in range(hid)]
        weights = {t: (1.0 if t == main else self.weights) for t in tasks}
        return AuxiLearnState(tuple(phi), zero_moments(len(phi)), (), 0, 0, weights)

    def update(self, signals: Signals, state: AuxiLearnState) -> tuple[Weights, AuxiLearnState]:
        aux = signals.aux
        losses = [float(signals.losses[t]) for t in aux]
        scale = state.scale
        if self.combiner == "monotone" and not scale:
            scale = tuple(max(abs(v), _TINY) if math.isfinite(v) else 1.0 for v in losses)
        phi, moments, hyper_steps = list(state.phi), state.moments, state.hyper_steps
        updates = state.updates + 1
        if aux and updates % self.every == 0:
            grad = self._hypergradient(signals, phi, scale)
            low, high = self._bounds(len(aux))
            phi, moments = adam_step(phi, grad, moments, self.lr, low, high)
            hyper_steps += 1
        eff = self._effective(phi, losses, scale or (1.0,) * len(aux))
        weights = {t: 1.0 for t in signals.tasks}
        weights.update(zip(aux, eff, strict=True))
        new = AuxiLearnState(tuple(phi), moments, scale, updates, hyper_steps, dict(weights))
        return weights, new

    def _hypergradient(
        self, signals: Signals, phi: list[float], scale: Sequence[float]
    ) -> list[float]:
        graph, params = signals.graph_losses, list(signals.params)
        if graph is None or not params:
            raise ValueError(
                "AuxiLearn differentiates the training losses twice: declare Need.LOSS_GRAPH "
                "(the Balancer then passes the losses with their graph and the shared "
                "parameters)"
            )
        val_grad = signals.main_val_grad()
        dtype, device = params[0].dtype, params[0].device
        p = torch.tensor(phi, dtype=dtype, device=device, requires_grad=True)
        aux = torch.stack([graph[t].to(dtype) for t in signals.aux])
        s = torch.tensor(list(scale) or [1.0] * len(signals.aux), dtype=dtype, device=device)
        train_loss = graph[signals.main].to(dtype) + self._h(p, aux, s)
        try:
            out = implicit_hypergradient(train_loss, params, p, val_grad, self.terms, self.alpha)
        except (RuntimeError, NotImplementedError) as e:
            if not any(k in str(e) for k in ("twice", "not implemented", "double backward")):
                raise
            raise RuntimeError(
                "AuxiLearn needs Hessian-vector products of the training loss, but the model "
                f"is not twice differentiable ({e}). Use a first-order strategy "
                "('lookahead-val', 'auxinash'), or switch the operation's fused kernel off "
                "(for a cuDNN RNN: with torch.backends.cudnn.flags(enabled=False))."
            ) from e
        return [v if math.isfinite(v) else 0.0 for v in out.detach().cpu().tolist()]
