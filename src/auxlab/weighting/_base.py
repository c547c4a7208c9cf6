"""The strategy protocol: what a weighting strategy needs, its state, and its decision.

A strategy is a value. It holds hyperparameters only and declares the signals it
``needs``; what changes during training lives in an explicit state record that
``init`` creates and ``update`` returns anew::

    state = strategy.init(tasks, main)
    weights, state = strategy.update(signals, state)

A strategy never calls ``.backward()`` and never touches ``.grad``: the
:class:`~auxlab.Balancer` computes the signals and applies the decision.
"""

from __future__ import annotations

import copy
import enum
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

import torch

__all__ = [
    "Decision",
    "Need",
    "NoState",
    "Signals",
    "Strategy",
    "Weights",
    "as_decision",
    "check_weight",
]

#: Weights keyed by task: Python floats, or scalar tensors when a strategy learns them.
Weights = Mapping[str, float | torch.Tensor]


class Need(enum.Enum):
    """A signal a strategy can ask the Balancer for.

    Attributes:
        LOSSES: The detached per-task loss values (always provided; costs nothing).
        GRADS: Per-task gradients on the shared parameters, a ``(T, d)`` matrix in task order.
            Costs one extra backward pass through the shared block per task.
        GRAMIAN: The ``(T, T)`` Gramian ``G Gᵀ`` of those gradients.
        REP_GRADS: Per-task gradients on a shared representation (MGDA-UB style), a
            ``(T, n)`` matrix; the user passes the representation to ``Balancer.backward``.
        VAL_LOSSES: Per-task validation losses, passed by the user to ``Balancer.backward``.
        VAL_GRAD: The gradient of the main task's loss on the next batch of validation data,
            on the shared parameters, a ``(d,)`` vector laid out as a row of ``grads``
            (:meth:`Signals.main_val_grad`). Computed only when the strategy asks for it, at
            most once per step: one forward and one backward on a validation batch. The
            Balancer needs ``val=`` and ``val_loss=``; ``fit`` provides them from its
            validation batches (``weight_val=``, default ``val``).
        LOSS_GRAPH: The training losses with their autograd graph and the shared parameters
            (``Signals.graph_losses``, ``Signals.params``), for strategies that differentiate
            the training loss twice (Hessian-vector products). Providing them costs nothing;
            what the strategy computes from them is its own cost.
    """

    LOSSES = "losses"
    GRADS = "grads"
    GRAMIAN = "gramian"
    REP_GRADS = "rep_grads"
    VAL_LOSSES = "val_losses"
    VAL_GRAD = "val_grad"
    LOSS_GRAPH = "loss_graph"


@dataclass(frozen=True)
class Signals:
    """Everything a strategy may read at one step. Fields it did not ask for are ``None``.

    Attributes:
        step: The Balancer's step counter, from 0.
        tasks: Task names; the order of the rows of ``grads`` and ``gramian``.
        main: The main task.
        losses: Detached scalar loss per task.
        grads: ``(T, d)`` per-task gradients on the shared parameters, or ``None``.
        gramian: ``(T, T)`` Gramian of ``grads``, or ``None``.
        rep_grads: ``(T, n)`` per-task gradients on the shared representation, or ``None``.
        val_losses: Per-task validation losses, or ``None``.
        val_grad: The main task's validation gradient on the shared parameters
            (``Need.VAL_GRAD``): a ``(d,)`` tensor, or a function of no argument that computes
            it (the Balancer passes one, so that it is computed only if read). Read it with
            :meth:`main_val_grad`.
        graph_losses: The loss per task with its autograd graph (``Need.LOSS_GRAPH``), or
            ``None``. Differentiate it with ``torch.autograd.grad(..., retain_graph=True)``:
            the Balancer backpropagates the same graph afterwards.
        params: The shared parameters, in the order of the columns of ``grads``
            (``Need.LOSS_GRAPH``), or ``()``.
    """

    step: int
    tasks: tuple[str, ...]
    main: str
    losses: Mapping[str, torch.Tensor]
    grads: torch.Tensor | None = None
    gramian: torch.Tensor | None = None
    rep_grads: torch.Tensor | None = None
    val_losses: Mapping[str, float] | None = None
    val_grad: torch.Tensor | Callable[[], torch.Tensor] | None = None
    graph_losses: Mapping[str, torch.Tensor] | None = None
    params: Sequence[torch.Tensor] = ()

    @property
    def aux(self) -> tuple[str, ...]:
        """The auxiliary tasks, in order."""
        return tuple(t for t in self.tasks if t != self.main)

    def grad(self, task: str) -> torch.Tensor:
        """The gradient row of one task (requires ``Need.GRADS``)."""
        if self.grads is None:
            raise ValueError("per-task gradients were not computed: declare Need.GRADS in needs")
        return self.grads[self.tasks.index(task)]

    def main_val_grad(self) -> torch.Tensor:
        """The main task's validation gradient on the shared parameters (``Need.VAL_GRAD``).

        Computed at the first call of a step (one forward and backward on a validation
        batch), then the same tensor.
        """
        if self.val_grad is None:
            raise ValueError(
                "the validation gradient was not computed: declare Need.VAL_GRAD in needs"
            )
        return self.val_grad() if callable(self.val_grad) else self.val_grad


@dataclass(frozen=True)
class Decision:
    """What a strategy decided for one step, when plain weights are not enough.

    Attributes:
        weights: Weight per task for the backward of ``Σ wᵢ·Lᵢ``. This gives the gradient of
            every task-specific parameter (heads), and of the shared parameters unless
            ``shared_grad`` is set.
        shared_grad: A flat gradient (length ``d``) that replaces ``Σ wᵢ·∇Lᵢ`` on the shared
            parameters, for methods that aggregate gradients non-linearly (PCGrad, ...).
        extra_loss: A scalar added to the weighted sum before the backward, for strategies
            with learnable parameters and a regulariser (uncertainty weighting).
        shared_weights: Coefficients ``cᵢ`` for the shared parameters only: their gradient
            becomes ``Σ cᵢ·gᵢ`` while task-specific parameters get ``weights``. This is how
            Gramian-based aggregators (MGDA, UPGrad, ...) combine per-task gradients on the
            shared block and leave each head its own task's gradient, as LibMTL and TorchJD
            do. Mutually exclusive with ``shared_grad``.
    """

    weights: Weights
    shared_grad: torch.Tensor | None = None
    extra_loss: torch.Tensor | None = None
    shared_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.shared_grad is not None and self.shared_weights is not None:
            raise ValueError("a Decision takes shared_grad or shared_weights, not both")


def as_decision(value: Weights | Decision) -> Decision:
    """Normalise what ``update`` returned to a :class:`Decision`."""
    if isinstance(value, Decision):
        return value
    if isinstance(value, Mapping):
        return Decision(weights=value)
    raise TypeError(
        "a strategy's update must return (weights, state) with weights a {task: weight} "
        f"mapping or a Decision, got {type(value).__name__}"
    )


class NoState(NamedTuple):
    """The state of a strategy that keeps none."""


def check_weight(task: str, value: float, what: str = "weight") -> float:
    """Return ``value`` as a float, or raise if it is negative, NaN or infinite."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the {what} of task '{task}' must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ValueError(f"the {what} of task '{task}' is {v}; weights must be finite.")
    if v < 0:
        raise ValueError(
            f"the {what} of task '{task}' is {v}; weights must be >= 0 (use 0 to switch a "
            "loss off)."
        )
    return v


class Strategy(ABC):
    """Base class of weighting strategies.

    Subclasses set ``needs``, implement ``init`` and ``update``, and store every constructor
    argument under the same attribute name (so ``clone`` and ``repr`` work, as in river).
    """

    #: Signals this strategy reads. ``Need.LOSSES`` is always provided.
    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES})

    #: How the weights react when one task's loss is multiplied by a constant ``c``:
    #: ``"invariant"`` (weights unchanged; for gradient aggregators, the direction of the
    #: shared update unchanged), ``"inverse"`` (that task's weight divided by ``c``),
    #: ``"independent"`` (weights never depend on the losses), ``"adaptive"`` (they change,
    #: and the method re-balances over steps) or ``"none"`` (no guarantee). Every strategy
    #: states it; :func:`auxlab.checks.check_strategy` tests the claim.
    scale_reaction: ClassVar[str]

    #: The strategy's family, for the catalogue (``auxlab strategies``,
    #: :func:`auxlab.weighting.describe`): ``"fixed"``, ``"schedule"``, ``"loss-based"``,
    #: ``"gradient"``, ``"main-first"``, ``"hedge"``, ``"validation"``, ``"combinator"``, or
    #: ``"custom"``.
    family: ClassVar[str] = "custom"

    #: The paper, short (``"Yu et al., NeurIPS 2020"``); empty for a method without one. The
    #: docstring's "Reference:" paragraph gives it in full.
    paper: ClassVar[str] = ""

    #: True for strategies that draw random numbers each step (their permutation and
    #: symmetry properties hold only in distribution, so those checks skip them).
    randomized: ClassVar[bool] = False

    #: The aggregator properties a Gramian-based strategy claims, tested by
    #: :func:`auxlab.checks.check_properties`: any of ``"expected_structure"``,
    #: ``"non_conflicting"``, ``"permutation_invariant"``, ``"linear_under_scaling"`` and
    #: ``"strongly_stationary"`` (defined there, as TorchJD's test suite states them). A
    #: strategy whose claims depend on its hyperparameters sets them per instance.
    properties: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def init(self, tasks: Sequence[str], main: str) -> Any:
        """Check the tasks and return the initial state (a ``NamedTuple``)."""

    @abstractmethod
    def update(self, signals: Signals, state: Any) -> tuple[Weights | Decision, Any]:
        """Decide this step's weights from the signals; return them and the new state.

        Must not mutate ``signals`` or ``state``.
        """

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learnable parameters that the optimizer must update (none by default)."""
        return []

    # -- value semantics -------------------------------------------------------------------
    def _init_args(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        args = {}
        for name, p in sig.parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if hasattr(self, name):
                args[name] = getattr(self, name)
        return args

    def clone(self, **overrides: Any) -> Self:
        """A new, independent strategy with the same arguments, some overridden."""
        args = {k: copy.deepcopy(v) for k, v in self._init_args().items()}
        unknown = set(overrides) - set(args)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no argument(s) {sorted(unknown)}; "
                f"its arguments are {sorted(args)}"
            )
        args.update(overrides)
        return type(self)(**args)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_args().items())
        return f"{type(self).__name__}({args})"
