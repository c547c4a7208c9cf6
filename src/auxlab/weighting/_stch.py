"""Smooth Tchebycheff scalarisation of the normalised log-losses (Lin et al.)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._loss_common import (
    _as_weights,
    _check_at_least,
    _loss_vector,
    _per_task,
    _positive,
    _positive_int,
)
from auxlab.weighting._registry import register

__all__ = ["STCH", "STCHState"]


class STCHState(NamedTuple):
    """State of :class:`STCH`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        preference: ``(T,)`` the preference ``pᵢ``.
        loss_sum: ``(T,)`` sum of the losses seen during the warm-up.
        warmup_seen: Number of warm-up updates so far (``warmup_steps`` once it is over).
    """

    tasks: tuple[str, ...]
    preference: torch.Tensor
    loss_sum: torch.Tensor
    warmup_seen: int


@register("stch")
class STCH(Strategy):
    """Smooth Tchebycheff scalarisation of the normalised log-losses (Lin et al.).

    After a warm-up, the objective is the smooth maximum

    ``T · μ · log Σᵢ exp(pᵢ·zᵢ / μ)``,  ``zᵢ = log(Dᵢ / nᵢ)``, ``Dᵢ = Lᵢ + eps``,

    whose gradient weights are ``wᵢ = T · softmax(p⊙z/μ)ᵢ · pᵢ / Dᵢ``: the task furthest
    above its reference point (in log scale, times its preference) gets most of the weight;
    ``μ → 0`` approaches the (non-smooth) Tchebycheff maximum and a large ``μ`` approaches the
    sum of the log-losses. ``nᵢ`` is the mean loss of task ``i`` over the ``warmup_steps``
    warm-up updates (the "nadir" point of the official code), held fixed afterwards. During
    the warm-up the objective is ``Σᵢ log Dᵢ``, i.e. ``wᵢ = 1/Dᵢ``.

    Choices, as in the official multi-task code (used by LibMTL ``STCH.py``): the values
    scalarised are the log-losses normalised by the nadir (not the raw ``Lᵢ − zᵢ*`` of the
    paper's general formulation, which would make the rule depend on each loss's units); the
    nadir is averaged over the warm-up (the code averages over the last warm-up epoch; here
    over all ``warmup_steps`` updates); the factor ``T`` keeps ``Σ wᵢ·Lᵢ ≈ T`` (with unit
    preferences), as in the code.
    ``preference`` is the paper's ``λ`` (default 1 for every task, as the code).

    Cost: one backward; ``O(T)`` memory.

    Scale reaction (``"inverse"``): multiplying task ``k``'s loss by ``c`` from the start
    multiplies its nadir by ``c`` too, so every ``zᵢ`` and the softmax are unchanged, and
    ``wₖ`` is divided by ``c`` (the others unchanged); the warm-up weights ``1/Dᵢ`` react the
    same way. (Scaling a loss only after the warm-up shifts its ``zₖ`` by ``log c``.)

    Args:
        mu: Smoothing ``μ > 0`` (LibMTL's default 1; the paper tries 0.01 to 1).
        warmup_steps: Number of warm-up updates used to estimate the nadir, ``>= 1``.
        preference: Optional ``{task: pᵢ > 0}``; missing tasks get 1.
        eps: Added to every loss, ``> 0``.

    Raises:
        ValueError: From ``update``, if a loss is negative (its log is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> stch = STCH(warmup_steps=1)
        >>> state = stch.init(["main", "aux"], "main")
        >>> for step, (m, a) in enumerate([(2.0, 1.0), (2.0, 0.5)]):
        ...     losses = {"main": torch.tensor(m), "aux": torch.tensor(a)}
        ...     w, state = stch.update(Signals(step, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.6667, 'aux': 1.3333}

    Reference: Lin et al., "Smooth Tchebycheff Scalarization for Multi-Objective
    Optimization", ICML 2024 (official code ``Xi-L/STCH``, ``STCH_MTL``). Compared against
    LibMTL ``STCH.py`` and TorchJD ``scalarization/_stch.py``.
    """

    family = "loss-based"
    paper = "Lin et al., ICML 2024"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "inverse"

    def __init__(
        self,
        mu: float = 1.0,
        warmup_steps: int = 100,
        preference: Mapping[str, float] | None = None,
        eps: float = 1e-8,
    ) -> None:
        self.mu = _positive("mu", mu)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        if preference is not None:
            if not isinstance(preference, Mapping):
                raise TypeError("preference must be a dict {task: weight > 0} or None")
            for t, p in preference.items():
                _positive(f"the preference of task '{t}'", p)
            preference = dict(preference)
        self.preference = preference
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> STCHState:
        """Start the warm-up."""
        pref = _per_task(self.preference or {}, tasks, 1.0, "the tasks of preference")
        zeros = torch.zeros(len(tasks), dtype=torch.float64)
        return STCHState(tuple(tasks), pref, zeros, 0)

    def update(self, signals: Signals, state: STCHState) -> tuple[Weights, STCHState]:
        """Warm-up: weights ``1/Dᵢ`` and accumulate the nadir; then the STCH weights."""
        losses = _loss_vector(signals, state.tasks)
        _check_at_least(losses, 0.0, state.tasks, signals.step, "STCH")
        d = losses + self.eps
        loss_sum = state.loss_sum.to(losses)
        if state.warmup_seen < self.warmup_steps:
            new_state = STCHState(
                state.tasks, state.preference, loss_sum + losses, state.warmup_seen + 1
            )
            return _as_weights(signals.tasks, state.tasks, 1.0 / d), new_state
        nadir = loss_sum / self.warmup_steps
        pref = state.preference.to(losses)
        z = torch.log(d) - torch.log(nadir + self.eps)
        soft = torch.softmax(pref * z / self.mu, dim=0)
        w = len(state.tasks) * soft * pref / d
        return _as_weights(signals.tasks, state.tasks, w), state._replace(loss_sum=loss_sum)
