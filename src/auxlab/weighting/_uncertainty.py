"""Learn each task's weight as a homoscedastic uncertainty (Kendall et al.)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import nn

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._registry import register

__all__ = ["UncertaintyWeighting", "UncertaintyWeightingState"]


_UW_FORMS = {
    # form: (factor on exp(-s) in the weight, factor on the regulariser)
    "standard": (1.0, 1.0),
    "regression": (0.5, 0.5),
    "classification": (1.0, 0.5),
}


class UncertaintyWeightingState(NamedTuple):
    """State of :class:`UncertaintyWeighting`.

    The learnable log-variances live in the strategy (``nn.Parameter`` objects that the
    optimizer updates), not here.

    Attributes:
        tasks: The tasks, in the order given to ``init``.
    """

    tasks: tuple[str, ...]


@register("uncertainty")
class UncertaintyWeighting(Strategy):
    r"""Learn each task's weight as a homoscedastic uncertainty (Kendall et al.).

    Each task has a learnable log-variance ``sᵢ = log σᵢ²`` and the objective is

    ``L = Σᵢ a·exp(−sᵢ)·Lᵢ + b·R(sᵢ)``,  with ``R(s) = s`` (``regulariser="log"``) or
    ``R(s) = log(1 + eˢ)`` (``regulariser="softplus"``),

    where ``(a, b)`` depend on ``form``: ``"standard"`` ``(1, 1)`` (the form most
    implementations use; at the optimum ``sᵢ = log Lᵢ`` so the weight is ``1/Lᵢ``),
    ``"regression"`` ``(½, ½)`` (the paper's Gaussian likelihood, as LibMTL and TorchJD;
    optimum weight ``1/(2Lᵢ)``) and ``"classification"`` ``(1, ½)`` (the paper's softmax
    approximation). ``update`` returns a :class:`~auxlab.weighting.Decision` whose weights are
    the tensors ``a·exp(−sᵢ)`` and whose ``extra_loss`` is ``Σᵢ b·R(sᵢ)``; the log-variances
    are learned by *your* optimizer, so pass :meth:`parameters` to it.

    The log-variances are created by ``init`` (when the tasks are known), or at once if you
    pass ``tasks``; create the optimizer after that, or add them later with
    ``optimizer.add_param_group({"params": strategy.parameters()})``. Calling ``init`` again
    keeps the log-variances already learned for those tasks; :meth:`clone` gives a strategy
    with new, independent ones. They live on the CPU; the weights are moved to the losses'
    device inside the graph, so gradients still reach them (move them yourself with
    ``p.data = p.data.to(device)`` before creating the optimizer if you prefer).

    **Negative total loss.** With ``regulariser="log"`` the objective is negative whenever
    some ``sᵢ < 0`` (a loss below 1 at the optimum): this is expected, not a bug.
    ``regulariser="softplus"`` (the positive regulariser ``log(1 + σ²)`` of Liebel & Körner,
    "Auxiliary Tasks in Multi-task Learning", arXiv 1805.06334, 2018) keeps the regulariser,
    hence the total, non-negative for non-negative losses.

    **Negative losses** (e.g. a Gaussian negative log-likelihood). For ``Lᵢ < 0`` the term
    ``a·exp(−sᵢ)·Lᵢ`` decreases without bound as ``sᵢ → −∞``: the gradient on ``sᵢ`` always
    pushes it down, the weight grows exponentially and training diverges. Neither
    regulariser stops it: the log one falls linearly too and the softplus one only tends to 0,
    while the loss term falls exponentially. Either shift the loss by a
    known lower bound so it stays ``>= 0``, or pass ``min_log_var``: ``sᵢ`` is clamped at that
    value in the forward pass, so the weight never exceeds ``a·exp(−min_log_var)`` and ``sᵢ``
    stops receiving gradient below it.

    Cost: one backward; ``T`` scalar parameters.

    Scale reaction (``"adaptive"``): multiplying a loss by ``c`` does not change this step's
    weights (they depend only on ``sᵢ``); the learned optimum ``sᵢ = log Lᵢ`` moves by
    ``log c``, so the weight adapts to ``1/c`` times its value over training.

    Args:
        form: ``"standard"``, ``"regression"`` or ``"classification"``, see above.
        regulariser: ``"log"`` (``R(s) = s``, the paper) or ``"softplus"``
            (``R(s) = log(1 + eˢ)``).
        init_log_var: Initial ``sᵢ`` for every task (``0`` gives weight ``a``); LibMTL
            uses ``-0.5``.
        min_log_var: Optional lower clamp on ``sᵢ`` (see negative losses), e.g. ``-5``
            caps the weight at ``a·e⁵ ≈ 148·a``.
        tasks: Optional task names, to create the log-variances now rather than in ``init``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> uw = UncertaintyWeighting()
        >>> state = uw.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(2.0), "aux": torch.tensor(0.5)}
        >>> decision, state = uw.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(float(w.detach()), 3) for t, w in decision.weights.items()}
        {'main': 1.0, 'aux': 1.0}
        >>> len(uw.parameters()), float(decision.extra_loss.detach())
        (2, 0.0)

    Reference: Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
    for Scene Geometry and Semantics", CVPR 2018. Compared against LibMTL ``UW.py`` and
    TorchJD ``scalarization/_uw.py`` (both the ``"regression"`` form).
    """

    family = "loss-based"
    paper = "Kendall et al., CVPR 2018"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "adaptive"

    def __init__(
        self,
        form: Literal["standard", "regression", "classification"] = "standard",
        regulariser: Literal["log", "softplus"] = "log",
        init_log_var: float = 0.0,
        min_log_var: float | None = None,
        tasks: Sequence[str] | None = None,
    ) -> None:
        if form not in _UW_FORMS:
            raise ValueError(f"form must be one of {sorted(_UW_FORMS)}, got {form!r}")
        if regulariser not in ("log", "softplus"):
            raise ValueError(f"regulariser must be 'log' or 'softplus', got {regulariser!r}")
        if not math.isfinite(float(init_log_var)):
            raise ValueError(f"init_log_var must be finite, got {init_log_var!r}")
        if min_log_var is not None:
            if not math.isfinite(float(min_log_var)):
                raise ValueError(f"min_log_var must be finite or None, got {min_log_var!r}")
            if float(init_log_var) < float(min_log_var):
                raise ValueError(
                    f"init_log_var ({init_log_var}) is below min_log_var ({min_log_var}); the "
                    "clamp would stop it from ever being learned"
                )
        if tasks is not None and (isinstance(tasks, str) or len(set(tasks)) != len(tasks)):
            raise ValueError(f"tasks must be a list of distinct task names, got {tasks!r}")
        self.form = form
        self.regulariser = regulariser
        self.init_log_var = float(init_log_var)
        self.min_log_var = None if min_log_var is None else float(min_log_var)
        self.tasks = None if tasks is None else list(tasks)
        # The learnable log-variances, by task; created here or by init, never replaced, so
        # an optimizer that holds them keeps updating the ones the weights are computed from.
        self._log_vars: dict[str, nn.Parameter] = {}
        if self.tasks is not None:
            self._create(self.tasks)

    def _create(self, tasks: Sequence[str]) -> None:
        for t in tasks:
            if t not in self._log_vars:
                self._log_vars[t] = nn.Parameter(torch.tensor(self.init_log_var))

    def init(self, tasks: Sequence[str], main: str) -> UncertaintyWeightingState:
        """Create the log-variances of tasks that have none yet; return the state."""
        if self.tasks is not None:
            check_same_tasks(self.tasks, tasks, "the tasks given to UncertaintyWeighting", "tasks")
        self._create(tasks)
        return UncertaintyWeightingState(tuple(tasks))

    def update(
        self, signals: Signals, state: UncertaintyWeightingState
    ) -> tuple[Decision, UncertaintyWeightingState]:
        """Return the weights ``a·exp(−sᵢ)`` and the regulariser as ``extra_loss``."""
        check_same_tasks(state.tasks, signals.tasks, "the tasks from init", "the signals' tasks")
        missing = [t for t in signals.tasks if t not in self._log_vars]
        if missing:
            raise ValueError(f"no log-variance for tasks {missing}: call init(tasks, main) first")
        first = signals.losses[signals.tasks[0]]
        device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
        a, b = _UW_FORMS[self.form]
        weights: dict[str, float | torch.Tensor] = {}
        reg: torch.Tensor | None = None
        for t in signals.tasks:
            s: torch.Tensor = self._log_vars[t]
            if self.min_log_var is not None:
                s = s.clamp(min=self.min_log_var)
            weights[t] = (a * torch.exp(-s)).to(device)
            r = s if self.regulariser == "log" else nn.functional.softplus(s)
            reg = r if reg is None else reg + r
        assert reg is not None
        return Decision(weights=weights, extra_loss=(b * reg).to(device)), state

    def parameters(self) -> list[nn.Parameter]:
        """The log-variances ``sᵢ`` (one scalar per task), for the optimizer."""
        return list(self._log_vars.values())

    def log_variances(self) -> dict[str, float]:
        """The current ``sᵢ = log σᵢ²`` by task (for logging)."""
        return {t: float(p.detach()) for t, p in self._log_vars.items()}
