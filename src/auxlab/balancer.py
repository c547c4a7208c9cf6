"""The Balancer: compute the signals a strategy needs, let it decide, apply the weights.

Use it in your own loop in place of ``loss.backward()``::

    balancer = Balancer(FixedWeights({"aux": 0.2}), shared=model.encoder)
    for inputs, targets in loader:
        optimizer.zero_grad()
        record = balancer.backward(objective(model(**inputs), targets))
        optimizer.step()
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from auxlab._apply import apply_decision, reusable
from auxlab._errors import NonFiniteLossError, TaskMismatchError
from auxlab._source import GradMode, SignalSource, StepSignals, ValidationSource
from auxlab._step_record import StepRecord
from auxlab._tasks import check_same_tasks
from auxlab.distributed import signal_source
from auxlab.weighting import (
    Decision,
    FixedWeights,
    Need,
    Signals,
    Strategy,
    as_decision,
    create,
)
from auxlab.weighting._base import check_weight

__all__ = ["Balancer", "GradMode", "StepRecord"]


class Balancer:
    """Computes what a strategy needs, calls it, and applies its weights with one backward.

    Args:
        strategy: A :class:`~auxlab.weighting.Strategy`, a registered name (``"equal"``), or
            Keras-style weights (a dict or list) as a shortcut for ``FixedWeights``.
        shared: The shared block (a module or its parameters). Needed only by strategies
            that read per-task gradients.
        main: The main task. Defaults to the ``main`` attribute of the losses (set by
            :class:`~auxlab.Objective`), else a task named ``"main"``.
        every: Compute signals and update the strategy every ``every`` steps; in between,
            reuse the last weights as constants (cheaper for gradient-based strategies; a
            strategy with learnable parameters learns on refresh steps only).
        nan_policy: ``"raise"`` (default) raises :class:`~auxlab.NonFiniteLossError` naming
            the task and step when a loss is NaN or infinite; ``"skip"`` skips the backward
            for that step and counts it in :attr:`skipped_steps`.
        grad_mode: How per-task gradients are computed, for strategies that need them:
            ``"auto"`` (default: the fastest exact way, measured on early steps),
            ``"loop"`` or ``"batched"`` (see :class:`~auxlab.signals.GradientEngine`), or
            ``"layerwise"``. For strategies that need only the Gramian (``Need.GRAMIAN``
            without ``Need.GRADS``) and a ``shared`` module, ``"auto"`` and
            ``"layerwise"`` can compute it layer by layer from the inputs of the shared
            ``nn.Linear`` layers and the per-task gradients of their outputs, without the
            ``(T, d)`` per-task gradients, and apply the decision from the same data
            (``auxlab._layerwise``). It is used only on steps where every use of a shared
            parameter is inside such a layer, which is checked at each step; otherwise the
            per-task gradients give the same result. ``"auto"`` times it against the
            per-task gradients on early steps and keeps the faster.
        tasks: The task names, in output order. Optional: by default they are learned from
            the first losses. Give them (with ``main``) when the strategy has learnable
            parameters, so that :meth:`parameters` can be handed to the optimizer before
            the first step.
        distributed: Data-parallel training (``docs/distributed.md``): the
            ``DistributedDataParallel`` model, a process group, ``True`` (the default
            group), ``False``, or ``None`` (default: on when a process group of more than
            one process is initialised). Every process then takes the step one process
            would take on the global batch: losses and per-task gradients are averaged
            across processes before the strategy decides, and the other gradients after.

    Cost: loss-based strategies, one backward. Strategies that read per-task gradients on
    the shared block, one backward through the trunk per task (the heads' gradients come
    from one more backward that skips the trunk). Gradients on a shared representation:
    one backward through the heads per task, then one full backward.

    Attributes:
        state: The strategy's current state.
        step: Steps taken so far (skipped ones included).
        skipped_steps: Steps skipped under ``nan_policy="skip"``.
    """

    def __init__(
        self,
        strategy: Strategy | str | Mapping[str, float] | list[float],
        shared: nn.Module | Iterable[torch.Tensor] | None = None,
        main: str | None = None,
        every: int = 1,
        nan_policy: Literal["raise", "skip"] = "raise",
        grad_mode: GradMode = "auto",
        tasks: Iterable[str] | None = None,
        distributed: Any = None,
        val: Iterable[Any] | None = None,
        val_loss: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        if isinstance(strategy, str):
            strategy = create(strategy)
        elif isinstance(strategy, (Mapping, list, tuple)):
            strategy = FixedWeights(strategy)
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, a name or weights, got {strategy!r}")
        if nan_policy not in ("raise", "skip"):
            raise ValueError(f"nan_policy must be 'raise' or 'skip', got {nan_policy!r}")
        if isinstance(every, bool) or not isinstance(every, (int, float)):
            raise TypeError(f"every must be a positive integer, got {every!r}")
        if not math.isfinite(every) or int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if grad_mode not in ("auto", "loop", "batched", "layerwise"):
            raise ValueError(
                f"grad_mode must be 'auto', 'loop', 'batched' or 'layerwise', got {grad_mode!r}"
            )
        if main is not None and not isinstance(main, str):
            raise TypeError(f"main must be a task name (a string), got {main!r}")
        if isinstance(tasks, (str, bytes)):
            raise TypeError(f"tasks must be a list of task names, got the string {tasks!r}")
        if shared is not None and not isinstance(shared, (nn.Module, Iterable)):
            raise TypeError(
                "shared must be the shared module or an iterable of its parameters, got "
                f"{type(shared).__name__}"
            )
        self.strategy = strategy
        self.main = main
        self.every = int(every)
        self.nan_policy = nan_policy
        self.grad_mode = grad_mode
        self.tasks: tuple[str, ...] | None = None
        self.state: Any = None
        self.step = 0
        self.skipped_steps = 0
        self._last: Decision | None = None
        # Everything per-task (loss values, gradients, Gramian) comes from here.
        self._source: SignalSource = signal_source(shared, strategy, grad_mode, distributed)
        self.shared = self._source.params
        if strategy.needs & _SHARED_NEEDS and not self.shared:
            raise ValueError(
                f"{type(strategy).__name__} needs per-task gradients on the shared parameters; "
                "pass shared=<the shared module or its parameters> to the Balancer."
            )
        self.validation: ValidationSource | None = None
        if val is not None or val_loss is not None:
            self.use_validation(val, val_loss)
        if tasks is not None:
            names = list(tasks)
            if len(set(names)) != len(names):
                raise ValueError(f"task names must be unique, got {names}")
            self._start(dict.fromkeys(names))

    def _start(self, losses: Mapping[str, Any]) -> None:
        tasks = tuple(losses)
        if not tasks:
            raise ValueError("the Balancer needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"task names must be unique, got {list(tasks)}")
        main = self.main or getattr(losses, "main", None) or ("main" if "main" in tasks else None)
        if main is None:
            raise TaskMismatchError(
                f"which task is the main one? Tasks are {list(tasks)}; pass main=... to the "
                "Balancer (or name the main task 'main')."
            )
        if main not in tasks:
            raise TaskMismatchError(f"main task '{main}' is not one of the tasks {list(tasks)}")
        self.tasks, self.main = tasks, main
        self.state = self.strategy.init(tasks, main)

    def use_validation(
        self, val: Iterable[Any] | None, val_loss: Callable[..., torch.Tensor] | None
    ) -> None:
        """Set the validation batches and loss that ``Need.VAL_GRAD`` reads (see ``val=``)."""
        if val_loss is None:
            raise ValueError(
                "val= needs val_loss=<function of one validation batch that returns the main "
                "task's loss as a scalar tensor>"
            )
        self.validation = ValidationSource(val, val_loss, self.shared)

    def parameters(self) -> list[nn.Parameter]:
        """The strategy's learnable parameters, to give to the optimizer."""
        return self.strategy.parameters()

    @property
    def gramian_way(self) -> str | None:
        """How the Gramian is computed at refresh steps.

        ``"layerwise"``, ``"jacobian"`` (from the per-task gradients), or ``None`` while
        ``grad_mode="auto"`` is still timing both.
        """
        return self._source.gramian_way

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None = None,
        val_losses: Mapping[str, float] | None = None,
        *,
        backward: Callable[..., None] | None = None,
    ) -> StepRecord:
        """Weigh the losses and backpropagate once; return the step's record.

        Args:
            losses: Scalar loss per task (what :class:`~auxlab.Objective` returns).
            representation: The shared representation, for strategies that need
                ``Need.REP_GRADS``.
            val_losses: Validation losses per task, for strategies that need them.
            backward: What backpropagates the weighted total, called as
                ``backward(tensor, **kwargs)`` with keyword arguments of
                :meth:`torch.Tensor.backward` (``inputs``, ``retain_graph``). Default:
                ``Tensor.backward``. In a Lightning module, ``self.manual_backward`` (see
                :mod:`auxlab.lightning`). Per-task gradients are computed with
                :func:`torch.autograd.grad` in either case.
        """
        try:
            return self._backward(losses, representation, val_losses, backward)
        finally:
            self._source.clear()

    def _backward(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None,
        val_losses: Mapping[str, float] | None,
        run: Callable[..., None] | None = None,
    ) -> StepRecord:
        _check_losses(losses)
        if self.tasks is None:
            self._start(losses)
        assert self.tasks is not None
        assert self.main is not None
        check_same_tasks(self.tasks, losses, "the Balancer's tasks", "the losses")
        floats = self._loss_values(losses)
        bad = next((t for t, v in floats.items() if not math.isfinite(v)), None)
        if bad is not None:
            if self.nan_policy == "raise":
                raise NonFiniteLossError(bad, self.step, floats[bad])
            self.skipped_steps += 1
            record = StepRecord(self.step, floats, {}, float("nan"), skipped=True)
            self.step += 1
            return record

        # Ask the strategy what it needs, get it, let it decide (every `every` steps).
        got: StepSignals | None = None
        strategy_seconds = 0.0
        if self._last is None or self.step % self.every == 0:
            got, strategy_seconds = self._refresh(losses, representation, val_losses)
        decision = self._last
        assert decision is not None
        if got is None:
            decision = reusable(decision)
        check_same_tasks(self.tasks, decision.weights, "the tasks", "the strategy's weights")

        # Combine and apply: Σ wᵢ·Lᵢ, and the shared block's part as the strategy decided.
        weights, total = self._weighted_sum(decision, losses)
        coef = decision.shared_weights
        if coef is not None:
            check_same_tasks(self.tasks, coef, "the tasks", "the strategy's shared weights")
        who = type(self.strategy).__name__
        apply_decision(decision, weights, total, losses, self.shared, got, who, run)
        self._source.applied(total, got is not None and got.task_grads is not None)

        # The total from the values already read, so no further device synchronisation.
        total_value = sum(weights[t] * floats[t] for t in self.tasks)
        if decision.extra_loss is not None:
            total_value += float(decision.extra_loss.detach())
        record = StepRecord(self.step, floats, weights, total_value)
        if got is not None:
            self._source.finish(strategy_seconds)
            self._record_alignment(record, got)
        if coef is not None:
            record.shared_weights = {t: float(coef[t]) for t in self.tasks}
        self.step += 1
        return record

    def _loss_values(self, losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """The loss values as floats, checked to be scalars, in one device-to-host read."""
        assert self.tasks is not None
        for t in self.tasks:
            if losses[t].ndim != 0:
                raise ValueError(f"the loss of task '{t}' must be a scalar, got {losses[t].shape}")
        values = [losses[t].detach().to(torch.float64) for t in self.tasks]
        reduced = self._source.reduce_values(torch.stack(values))
        return dict(zip(self.tasks, reduced.tolist(), strict=True))

    def _refresh(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None,
        val_losses: Mapping[str, float] | None,
    ) -> tuple[StepSignals, float]:
        """Collect what the strategy declares it needs and let it decide.

        Returns the step's signals and the strategy's own seconds (left out of the timing of
        the ways of computing the signals).
        """
        assert self.tasks is not None
        assert self.main is not None
        needs = self.strategy.needs
        name = type(self.strategy).__name__
        if Need.REP_GRADS in needs and representation is None:
            raise ValueError(
                f"{name} needs gradients on the shared representation: pass "
                "representation=<tensor> to backward()."
            )
        if Need.VAL_LOSSES in needs and val_losses is None:
            raise ValueError(
                f"{name} needs validation losses: pass val_losses={{task: value}} to backward()."
            )
        val_grad = None
        if Need.VAL_GRAD in needs:
            if self.validation is None:
                raise ValueError(missing_validation_message(name))
            val_grad = self.validation.grad_fn()
        got = self._source.collect({t: losses[t] for t in self.tasks}, needs, representation)
        graph = Need.LOSS_GRAPH in needs
        signals = Signals(
            step=self.step,
            tasks=self.tasks,
            main=self.main,
            losses=got.losses,
            grads=got.grads,
            gramian=got.gramian,
            rep_grads=got.rep_grads,
            val_losses=val_losses,
            val_grad=val_grad,
            graph_losses={t: losses[t] for t in self.tasks} if graph else None,
            params=tuple(self.shared) if graph else (),
        )
        start = time.perf_counter()
        out, self.state = self.strategy.update(signals, self.state)
        seconds = time.perf_counter() - start
        self._last = as_decision(out)
        return got, seconds

    def _weighted_sum(
        self, decision: Decision, losses: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, float], torch.Tensor]:
        """The checked weights as floats, and ``Σ wᵢ·Lᵢ`` (plus the strategy's extra term)."""
        assert self.tasks is not None
        total: torch.Tensor | None = None
        weights: dict[str, float] = {}
        who = f"weight chosen by {type(self.strategy).__name__}"
        for t in self.tasks:
            w = decision.weights[t]
            value = float(w.detach()) if isinstance(w, torch.Tensor) else float(w)
            weights[t] = check_weight(t, value, who)
            term = losses[t] * w
            total = term if total is None else total + term
        assert total is not None
        if decision.extra_loss is not None:
            total = total + decision.extra_loss
        return weights, total

    def _record_alignment(self, record: StepRecord, got: StepSignals) -> None:
        """Per-task gradient norms and cosines with the main task, when they are known."""
        assert self.tasks is not None
        assert self.main is not None
        gram, grads = got.gramian, got.grads
        if gram is None and grads is None:
            return
        # From the Gramian when there is one: it is T x T, the gradients are T x d.
        i_main = self.tasks.index(self.main)
        if gram is not None:
            norms = gram.diagonal().clamp_min(0).sqrt()
            dots = gram[:, i_main]
        else:
            assert grads is not None
            norms = grads.norm(dim=1)
            dots = grads @ grads[i_main]
        record.grad_norms = {t: float(n) for t, n in zip(self.tasks, norms, strict=True)}
        cos = dots / (norms * norms[i_main]).clamp_min(1e-30)
        record.cosines = {t: float(c) for t, c in zip(self.tasks, cos, strict=True)}

    def __repr__(self) -> str:
        return f"Balancer({self.strategy!r}, main={self.main!r}, every={self.every})"


#: Needs that read the shared parameters.
_SHARED_NEEDS = frozenset({Need.GRADS, Need.GRAMIAN, Need.VAL_GRAD, Need.LOSS_GRAPH})


def missing_validation_message(name: str) -> str:
    """The error for a strategy that learns from validation data when none was given."""
    return (
        f"{name} learns the weights from the main task's validation loss, but no validation "
        "data was given: train with fit(..., val=<validation batches>) (or weight_val=), or "
        "build Balancer(..., val=<batches>, val_loss=<function of a batch returning the main "
        "task's loss>). Use a held-out slice of the training data, never the test set."
    )


def _check_losses(losses: Any) -> None:
    """Losses are ``{task: scalar tensor}`` from the autograd graph, not numbers."""
    if not isinstance(losses, Mapping):
        raise TypeError(
            "backward() takes the losses as a dict {task: scalar loss tensor} (what Objective "
            f"returns), got {type(losses).__name__}."
        )
    if not losses:
        raise ValueError("backward() got no loss; give {task: scalar loss tensor}")
    for t, v in losses.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(
                f"the loss of task '{t}' is a {type(v).__name__} ({v!r}); losses must be tensors "
                "from the autograd graph (e.g. what Objective returns, or F.mse_loss(...)), "
                "not numbers: a number has no gradient to follow. Do not call .item() on them."
            )
    if not any(v.requires_grad for v in losses.values()):
        raise ValueError(
            "no loss is part of the autograd graph (none requires grad), so there is nothing to "
            "backpropagate: were they computed under torch.no_grad(), or detached?"
        )
