"""Balance loss scales by a log transform and gradient scales by the largest norm (DB-MTL)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import _check_tasks, _grads
from auxlab.weighting._registry import register

__all__ = ["DBMTL", "DBMTLState"]


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

    family = "gradient"
    paper = "Lin et al., arXiv 2023"

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
