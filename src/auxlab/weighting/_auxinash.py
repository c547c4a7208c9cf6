"""AuxiNash: asymmetric Nash bargaining whose bargaining powers are learned on validation."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights, check_weight
from auxlab.weighting._main_first_common import _check_max_weight
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import SolverWarning, gramian64
from auxlab.weighting._validation_common import (
    DISTRIBUTED_REFUSAL,
    AdamMoments,
    adam_step,
    check_positive,
    zero_moments,
)

__all__ = ["AuxiNash", "AuxiNashState", "bargaining_weights"]

Array = np.ndarray


class AuxiNashState(NamedTuple):
    """State of :class:`AuxiNash`.

    Attributes:
        prefs: The bargaining power of each task (the main task's is 1.0).
        moments: Adam's moments of the auxiliary powers' hypergradient, in task order.
        weights: The weights applied at the last update: ``αₖ/α_main`` (the main task's 1.0).
        updates: Updates seen so far (calls of ``update``).
    """

    prefs: dict[str, float]
    moments: AdamMoments
    weights: dict[str, float]
    updates: int


def bargaining_weights(
    gram: Array, prefs: Array, max_iter: int = 100, tol: float = 1e-10
) -> tuple[Array, bool]:
    """The asymmetric Nash bargaining solution: ``α > 0`` with ``αᵢ·(G α)ᵢ = pᵢ``.

    The stationarity conditions of the strictly convex potential
    ``½ αᵀGα − Σᵢ pᵢ·log αᵢ``, minimised by damped Newton in unit-gradient coordinates
    ``w = Dα`` (``D`` the gradients' norms), so that gradients of very different sizes are
    solved alike. Tasks with ``pᵢ = 0`` or a zero gradient get ``αᵢ = 0``.

    Args:
        gram: The ``(T, T)`` Gramian of the gradients.
        prefs: The bargaining powers ``p >= 0``.
        max_iter: Newton iterations before giving up.
        tol: Stop when ``max |αᵢ(Gα)ᵢ/pᵢ − 1| <= tol``.

    Returns:
        ``α`` and whether it converged.

    Example:
        >>> g = np.diag([4.0, 1.0])           # orthogonal gradients of norms 2 and 1
        >>> a, ok = bargaining_weights(g, np.array([1.0, 0.25]))
        >>> np.round(a, 6).tolist(), ok       # αᵢ·‖gᵢ‖ = √pᵢ
        ([0.5, 0.5], True)
    """
    t = len(prefs)
    alpha = np.zeros(t)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    live = (prefs > 0) & (norms > 0) & np.isfinite(norms)
    if not live.any():
        return alpha, True
    n, p = norms[live], prefs[live]
    cos = gram[np.ix_(live, live)] / np.outer(n, n)
    w = np.sqrt(p)
    for _ in range(max_iter):
        cw = cos @ w
        if float(np.max(np.abs(w * cw / p - 1.0))) <= tol:
            alpha[live] = w / n
            return alpha, True
        grad = cw - p / w
        hess = cos + np.diag(p / w**2)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        decrement = math.sqrt(max(float(grad @ step), 0.0))
        new = w - (1.0 if decrement < 0.25 else 1.0 / (1.0 + decrement)) * step
        if not np.all(np.isfinite(new)) or np.any(new <= 0):
            break
        w = new
    return alpha, False


@register("auxinash")
class AuxiNash(Strategy):
    """AuxiNash: asymmetric Nash bargaining whose bargaining powers are learned on validation.

    Rule: the shared update is the asymmetric Nash bargaining solution ``Σᵢ αᵢ·gᵢ`` with
    ``αᵢ·(G α)ᵢ = pᵢ`` (:func:`bargaining_weights`; ``G`` the Gramian of the training
    gradients on the shared block, ``pᵢ`` task ``i``'s bargaining power, the main task's
    fixed at 1). The weights applied are ``wᵢ = αᵢ/α_main`` (the main weight stays 1: the
    bargaining solution's direction, in the units of the other strategies). Each update the
    auxiliary powers take an Adam step down the look-ahead hypergradient of the main
    validation loss: after the step ``−η·Σ wᵢ gᵢ``, ``L_val`` changes by
    ``−η·Σ vᵢ·αᵢ/α_main`` (``vᵢ = g_val·gᵢ``), whose derivative in ``p`` follows from the
    implicit derivative of the solution, ``∂α/∂p = J⁻¹`` with
    ``J = diag(Gα) + diag(α)·G``; the powers are clipped to ``[0, max_pref]``. A power at 0
    takes its task out of the bargaining (``α = 0``); its derivative is then taken as the
    task's entry would be (``∂αₖ/∂pₖ = 1/(Gα)ₖ``), so a task that starts to help comes
    back.

    Cost: per refresh step, one backward through the shared block per task (``Need.GRADS``),
    one forward and backward on a validation batch (``Need.VAL_GRAD``), a Newton solve and
    a linear solve on ``T x T`` systems.

    Loss scaling (``scale_reaction = "none"``): scaling an auxiliary loss by ``c`` divides
    its ``α``, and so its weight, by ``c`` at the same power; the powers then move by
    normalised steps.

    Args:
        lr: Step of each auxiliary power per update (``> 0``).
        prefs: The initial bargaining power of every auxiliary task (``>= 0``).
        max_pref: Upper bound on the powers (``None``: none).

    Example:
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.6, 0.8, 0.0]])
        >>> sig = Signals(0, ("main", "good", "bad"), "main", {}, grads=G,
        ...               val_grad=torch.tensor([1.0, 0.0, 0.0]))
        >>> s = AuxiNash(lr=0.1)
        >>> w, state = s.update(sig, s.init(sig.tasks, "main"))
        >>> {t: round(p, 2) for t, p in state.prefs.items()}
        {'main': 1.0, 'good': 1.1, 'bad': 0.9}

    Reference:
        Shamsian, Navon, Glazer, Kawaguchi, Chechik, Fetaya, "Auxiliary Learning as an
        Asymmetric Bargaining Game", ICML 2023. Departures: the weights are the solution's
        ratios to the main task's ``α`` (the paper applies ``α`` itself, whose update has
        norm ``√Σp``); the powers move by Adam on the one-step look-ahead, every update.
    """

    family = "validation"
    paper = "Shamsian et al., ICML 2023"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRADS, Need.VAL_GRAD})
    scale_reaction = "none"
    distributed_refusal = DISTRIBUTED_REFUSAL

    def __init__(self, lr: float = 0.01, prefs: float = 1.0, max_pref: float | None = 10.0):
        self.lr = check_positive("lr", lr)
        self.prefs = check_weight("every auxiliary task", prefs, "initial bargaining power")
        self.max_pref = _check_max_weight(max_pref)

    def init(self, tasks: Sequence[str], main: str) -> AuxiNashState:
        prefs = {t: (1.0 if t == main else self.prefs) for t in tasks}
        aux = sum(t != main for t in tasks)
        return AuxiNashState(prefs, zero_moments(aux), dict.fromkeys(tasks, 1.0), 0)

    def update(self, signals: Signals, state: AuxiNashState) -> tuple[Weights, AuxiNashState]:
        if signals.grads is None:
            raise ValueError("AuxiNash reads the per-task gradients: declare Need.GRADS in needs")
        tasks, aux = signals.tasks, signals.aux
        grads = signals.grads.detach().to(torch.float64)
        gram = gramian64(grads @ grads.T)
        val = signals.main_val_grad().detach().to(device=grads.device, dtype=torch.float64)
        v = (grads @ val).cpu().numpy()
        if not (np.all(np.isfinite(gram)) and np.all(np.isfinite(v))):
            warnings.warn(
                "AuxiNash: the gradients' products are not finite; the weights are kept",
                SolverWarning,
                stacklevel=2,
            )
            return dict(state.weights), state._replace(updates=state.updates + 1)
        prefs = np.array([state.prefs[t] for t in tasks])
        i_main = tasks.index(signals.main)
        if gram[i_main, i_main] <= 0:  # no main gradient: nothing to bargain for or measure
            return dict(state.weights), state._replace(updates=state.updates + 1)
        alpha, ok = bargaining_weights(gram, prefs)
        if not ok or alpha[i_main] <= 0:
            warnings.warn(
                "AuxiNash found no bargaining solution (a convex combination of the task "
                "gradients is zero, or Newton did not converge); the weights are kept",
                SolverWarning,
                stacklevel=2,
            )
            return dict(state.weights), state._replace(updates=state.updates + 1)
        hyper = _hypergradient(gram, alpha, v, i_main)
        idx = [tasks.index(t) for t in aux]
        new_prefs, moments = adam_step(
            [state.prefs[t] for t in aux],
            [float(hyper[i]) for i in idx],
            state.moments,
            self.lr,
            [0.0] * len(aux),
            [self.max_pref] * len(aux),
        )
        weights = {t: float(alpha[i] / alpha[i_main]) for i, t in enumerate(tasks)}
        weights[signals.main] = 1.0
        out_prefs = dict(state.prefs)
        out_prefs.update(zip(aux, new_prefs, strict=True))
        return dict(weights), AuxiNashState(out_prefs, moments, weights, state.updates + 1)


def _hypergradient(gram: Array, alpha: Array, v: Array, i_main: int) -> Array:
    """``∂L_val/∂p`` divided by the step size ``η``, for the applied weights ``α/α_main``.

    After the step ``−η·Σ (αᵢ/α_m)·gᵢ`` the validation loss changes by
    ``f(p) = −η·Σ vᵢ·αᵢ/α_m``, and ``∂α/∂p = J⁻¹``, so
    ``∂f/∂p = −η·J⁻ᵀu`` with ``u = v/α_m − (v·α/α_m²)·e_m``. A task out of the bargaining
    (``αₖ = 0``) would enter with ``∂αₖ/∂pₖ = 1/(Gα)ₖ``: its entry is ``−vₖ/(α_m·(Gα)ₖ)``.
    """
    out = np.zeros(len(alpha))
    live = alpha > 0
    g_alpha = gram @ alpha
    a_m = float(alpha[i_main])
    u = v / a_m
    u[i_main] -= float(v @ alpha) / a_m**2
    jac = np.diag(g_alpha[live]) + np.diag(alpha[live]) @ gram[np.ix_(live, live)]
    try:
        out[live] = -np.linalg.solve(jac.T, u[live])
    except np.linalg.LinAlgError:
        out[live] = -np.linalg.lstsq(jac.T, u[live], rcond=None)[0]
    for i in np.flatnonzero(~live):
        scale = abs(float(g_alpha[i]))
        out[i] = -float(u[i]) / scale if scale > 0 else -float(np.sign(v[i]))
    return out
