"""Auxiliary weights stated as a share of the main gradient: ``{"aux": 0.2}`` means 20 %."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from auxlab._errors import TaskMismatchError
from auxlab.weighting._base import Signals, Strategy, Weights, check_weight
from auxlab.weighting._main_first_common import (
    _GRAMIAN_ONLY,
    _check_fraction,
    _check_max_weight,
    _check_positive_int,
    _check_weights_arg,
    _gram,
    _norms,
    _resolve,
    _warn,
)
from auxlab.weighting._registry import register

__all__ = ["RelativeWeights", "RelativeWeightsState", "relative_share"]


def relative_share(weight: float, norm_main: float, norm_aux: float) -> float:
    """The share of the main gradient that a fixed auxiliary ``weight`` amounts to.

    ``share = weight·‖g_aux‖ / ‖g_main‖``: the ratio ``‖w·g_aux‖ / ‖g_main‖`` on the shared
    parameters. State advice as a share and it means the same thing whatever the losses'
    scales; :class:`RelativeWeights` turns it back into a weight at every step.

    Args:
        weight: The fixed auxiliary weight (``>= 0``), relative to a main weight of 1.
        norm_main: ``‖g_main‖`` on the shared parameters (``> 0``), e.g. from
            ``StepRecord.grad_norms``.
        norm_aux: ``‖g_aux‖`` on the same parameters (``>= 0``).

    Raises:
        ValueError: For a negative or non-finite input, or a zero main gradient (a share of
            nothing is undefined).

    Example:
        >>> relative_share(0.2, norm_main=4.0, norm_aux=2.0)
        0.1
    """
    w = check_weight("aux", weight)
    for name, v in (("norm_main", norm_main), ("norm_aux", norm_aux)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite gradient norm >= 0, got {v!r}")
    if norm_main == 0:
        raise ValueError(
            "the main task's gradient norm is 0, so a share of it is undefined; measure it on "
            "a batch where the main loss has a gradient"
        )
    return w * float(norm_aux) / float(norm_main)


class RelativeWeightsState(NamedTuple):
    """State of :class:`RelativeWeights`.

    Attributes:
        norms: Per task, the (not bias-corrected) moving average of its gradient norm on the
            shared parameters; divide by ``1 − beta**measurements`` for the corrected average.
        measurements: Measurements taken so far.
        calls: Calls of ``update`` so far (measurements happen every ``every`` calls).
        weights: The weights in force.
    """

    norms: dict[str, float]
    measurements: int
    calls: int
    weights: dict[str, float]


@register("relative")
class RelativeWeights(Strategy):
    """Auxiliary weights stated as a share of the main gradient: ``{"aux": 0.2}`` means 20 %.

    Rule: with bias-corrected moving averages ``n̂ᵢ`` of the gradient norms ``‖gᵢ‖`` on the
    shared parameters (``nᵢ ← β·nᵢ + (1−β)·‖gᵢ‖``, ``n̂ᵢ = nᵢ/(1−βᵗ)``),
    ``w_main = 1`` and ``wₖ = shareₖ · n̂_main / n̂ₖ`` (capped at ``max_weight``), so that
    ``‖wₖ·gₖ‖ ≈ shareₖ·‖g_main‖``: exactly when the norms are steady or ``beta=0``. "0.2"
    then means the same thing whatever the scales of the losses, unlike a fixed weight 0.2.
    A task whose average norm is 0 (no gradient) gets weight 0, without any epsilon, so the
    statement holds at every scale of the losses. The weights apply to the whole loss, heads
    included (a plain weighted sum, one backward).

    Cost: one backward through the shared block per task for the measurement
    (``Need.GRAMIAN`` only: the norms are the square roots of its diagonal). To save it, pass
    ``every=k`` to the **Balancer**: it then measures every ``k`` steps and reuses the weights
    in between. This class's own ``every`` only decides which of the measurements it is given
    enter the average; it saves nothing, since the Balancer computes the gradients whenever
    it calls the strategy.

    Loss scaling (``scale_reaction = "inverse"``): multiplying an auxiliary loss by ``c``
    (from the start) divides its weight by ``c`` exactly at every step, whatever ``beta``, so
    ``wₖ·gₖ`` is unchanged. If the scale changes during training, the weight follows as the
    average forgets the old norms (at once with ``beta=0``). A ``max_weight`` cap can break
    this (``scale_reaction`` is then ``"none"``). Multiplying the *main* loss by ``c``
    multiplies every auxiliary weight by ``c``: the shares are of the main gradient.

    Args:
        shares: ``{aux_task: share >= 0}`` for every auxiliary task (the main task may appear
            with share 1), or one number for every auxiliary task.
        beta: Moving-average coefficient in [0, 1); 0 uses the current norms only.
        every: Take a measurement every ``every`` calls of ``update`` (``>= 1``); see Cost.
        max_weight: Optional cap on every auxiliary weight, against a vanishing auxiliary
            gradient (``None``: no cap).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[3.0, 4.0], [0.0, 100.0]])  # ‖g_main‖ = 5, ‖g_aux‖ = 100
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = RelativeWeights({"aux": 0.2})
        >>> s.update(sig, s.init(sig.tasks, "main"))[0]  # 0.01 · 100 = 0.2 · 5
        {'main': 1.0, 'aux': 0.01}

    Reference:
        auxlab's own formulation of the effective gradient ratio ``‖w·g_aux‖/‖g_main‖``
        (see the weighting reference notes); related to GradNorm (Chen et al., ICML 2018) and
        MetaBalance (He et al., WWW 2022), which balance magnitudes towards equality instead
        of a stated share.
    """

    family = "main-first"
    #: With ``max_weight`` set, an instance says ``"none"`` instead (see above).
    scale_reaction: ClassVar[str] = "inverse"

    needs = _GRAMIAN_ONLY

    def __init__(
        self,
        shares: Mapping[str, float] | float,
        beta: float = 0.9,
        every: int = 1,
        max_weight: float | None = None,
    ) -> None:
        if shares is None:
            raise TypeError("shares is required: e.g. RelativeWeights({'aux': 0.2})")
        self.shares = _check_weights_arg(shares, "share")
        self.beta = _check_fraction("beta", beta, closed_top=False)
        self.every = _check_positive_int("every", every)
        self.max_weight = _check_max_weight(max_weight)
        self.scale_reaction = "inverse" if self.max_weight is None else "none"  # type: ignore[misc]

    @classmethod
    def from_fixed(
        cls,
        weights: Mapping[str, float],
        grad_norms: Mapping[str, float],
        main: str = "main",
        **kwargs: Any,
    ) -> RelativeWeights:
        """The shares that fixed ``weights`` amounted to, given measured gradient norms.

        ``shareₖ = (wₖ/w_main)·‖gₖ‖/‖g_main‖`` (:func:`relative_share`). With the norms of one
        batch (``StepRecord.grad_norms``), the result first gives the same weights, then keeps
        the same *shares* as the losses' scales drift.

        Example:
            >>> s = RelativeWeights.from_fixed({"aux": 0.2}, {"main": 4.0, "aux": 2.0})
            >>> s.shares
            {'aux': 0.1}
        """
        w_main = check_weight(main, weights.get(main, 1.0))
        if w_main == 0:
            raise ValueError("the main task's weight is 0, so shares of it are undefined")
        missing = [t for t in [main, *weights] if t not in grad_norms]
        if missing:
            raise TaskMismatchError(
                f"grad_norms has no norm for {missing}; it has {sorted(grad_norms)}"
            )
        shares = {
            t: relative_share(check_weight(t, w) / w_main, grad_norms[main], grad_norms[t])
            for t, w in weights.items()
            if t != main
        }
        return cls(shares, **kwargs)

    def init(self, tasks: Sequence[str], main: str) -> RelativeWeightsState:
        shares = self._shares(tasks, main)
        zero = dict.fromkeys(tasks, 0.0)
        return RelativeWeightsState(zero, 0, 0, {t: 1.0 if t == main else 0.0 for t in shares})

    def _shares(self, tasks: Sequence[str], main: str) -> dict[str, float]:
        given = self.shares
        if isinstance(given, Mapping):
            if main in given and given[main] != 1.0:
                raise ValueError(
                    f"the main task '{main}' weighs 1 by definition (shares are of its "
                    f"gradient); got share {given[main]!r} for it"
                )
            unknown = [t for t in given if t not in tasks]
            missing = [t for t in tasks if t != main and t not in given]
            if unknown or missing:
                raise TaskMismatchError(
                    f"shares must name every auxiliary task of {list(tasks)} (main '{main}'). "
                    f"Missing: {missing}. Not a task: {unknown}."
                )
        return _resolve(given, tasks, main, "shares")

    def update(
        self, signals: Signals, state: RelativeWeightsState
    ) -> tuple[Weights, RelativeWeightsState]:
        if state.calls % self.every != 0:
            new = state._replace(calls=state.calls + 1)
            return dict(state.weights), new
        tasks, main = signals.tasks, signals.main
        shares = self._shares(tasks, main)
        norms = _norms(_gram(signals, self), self)
        b = self.beta
        ema = {t: b * state.norms[t] + (1.0 - b) * n for t, n in zip(tasks, norms, strict=True)}
        measurements = state.measurements + 1
        correction = 1.0 - b**measurements
        main_norm = ema[main] / correction
        weights = {}
        for t in tasks:
            if t == main:
                weights[t] = 1.0
                continue
            aux_norm = ema[t] / correction
            w = shares[t] * main_norm / aux_norm if aux_norm > 0.0 else 0.0
            if self.max_weight is not None:
                w = min(w, self.max_weight)
            if not math.isfinite(w):
                _warn(self, f"the weight of '{t}' overflows (its gradient is ~0); it is set to 0")
                w = 0.0
            weights[t] = w
        return dict(weights), RelativeWeightsState(ema, measurements, state.calls + 1, weights)
