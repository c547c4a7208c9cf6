"""Objective: named per-task losses and metrics, with Keras-style list or dict arguments.

Tasks are named. A model returns a mapping ``{task: output}``; the objective maps each output
and its target to a scalar loss, ``{task: loss}``. One task is the main task; every other task
is auxiliary.

Keras users may give losses (and, to strategies, weights) as a *list*. A list is matched to
the model's outputs **in the model's declared output order**: ``model.output_names`` when the
model has that attribute, otherwise the ``outputs=`` argument of :class:`Objective`. Unlike
Keras 3, which flattens dict outputs in *sorted key* order, auxlab never sorts: the order is
the one the model declares, and the length is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from auxlab._errors import TaskMismatchError
from auxlab._losses import (
    HIGHER_IS_BETTER,
    LOSSES,
    METRICS,
    NEEDS_ALIGN,
    LossFn,
    LossInputError,
    MetricFn,
    align_target,
    resolve_loss,
)
from auxlab._tasks import check_same_tasks, match_to_tasks

__all__ = [
    "HIGHER_IS_BETTER",
    "LOSSES",
    "METRICS",
    "Losses",
    "Objective",
    "check_same_tasks",
    "match_to_tasks",
    "resolve_loss",
]


class Losses(dict[str, torch.Tensor]):
    """A ``{task: scalar loss}`` dict that also knows which task is the main one."""

    def __init__(self, values: Mapping[str, torch.Tensor], main: str) -> None:
        super().__init__(values)
        self.main = main

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self), self.main))


class Objective:
    """Named per-task losses and metrics.

    Args:
        losses: One loss for every output (a name or a callable, as Keras' ``loss="bce"``),
            a dict ``{task: loss}``, or a list matched to ``outputs`` in order. Loss names:
            ``"bce"`` (probabilities), ``"bce_logits"``, ``"ce"`` (logits; integer class ids
            or class probabilities), ``"mse"``, ``"mae"``, ``"huber"``, and the Keras
            spellings (``"binary_crossentropy"``, ...). A callable takes
            ``(output, target)`` and returns a scalar.
        main: The main task. Defaults to ``"main"`` if there is such a task, else the first
            output in order.
        outputs: Task names in the model's output order. Needed when ``losses`` is one loss
            for all outputs or a list, unless the model passed to :meth:`bind` has an
            ``output_names`` attribute.
        metrics: ``{task: [metric, ...]}`` or one list for every task. Names: ``"accuracy"``,
            ``"auc"``, ``"mse"``, ``"mae"``, ``"r2"``; or callables ``(pred, target) -> float``.

    Example:
        >>> import torch
        >>> obj = Objective({"main": "mse", "aux": "mae"}, metrics={"main": ["r2"]})
        >>> out = {"main": torch.zeros(4, 1), "aux": torch.ones(4)}
        >>> losses = obj(out, {"main": torch.ones(4), "aux": torch.ones(4)})
        >>> {k: v.item() for k, v in losses.items()}
        {'main': 1.0, 'aux': 0.0}
    """

    def __init__(
        self,
        losses: str | LossFn | Mapping[str, str | LossFn] | Sequence[str | LossFn],
        main: str | None = None,
        outputs: Sequence[str] | None = None,
        metrics: Mapping[str, Sequence[str | MetricFn]] | Sequence[str | MetricFn] | None = None,
    ) -> None:
        if losses is None or not (isinstance(losses, (str, Mapping, Sequence)) or callable(losses)):
            raise TypeError(
                "losses must be a loss name ('mse'), a callable, a dict {task: loss} or a list "
                f"matched to the outputs, got {type(losses).__name__}."
            )
        if isinstance(outputs, (str, bytes)):
            raise TypeError(
                f"outputs must be a list of task names, got the string {outputs!r}; "
                f"write outputs=[{outputs!r}]."
            )
        if main is not None and not isinstance(main, str):
            raise TypeError(f"main must be a task name (a string), got {type(main).__name__}")
        self._spec = losses
        self._metric_spec = metrics
        # Whether the task order was declared (outputs=, or a list of losses) rather than
        # taken from a dict's keys: a declared order must agree with the model's.
        self._declared_order = outputs is not None
        self._main_arg = main
        self.tasks: tuple[str, ...] = ()
        self.loss_names: dict[str, str] = {}
        self._losses: dict[str, LossFn] = {}
        self.metrics: dict[str, dict[str, MetricFn]] = {}
        self.main = ""
        if outputs is not None:
            self._build(tuple(outputs))
        elif isinstance(losses, Mapping):
            self._build(tuple(losses))
        # Otherwise the tasks are learned from the model (bind) or the first outputs seen.

    # -- construction ------------------------------------------------------------------------
    def _build(self, tasks: tuple[str, ...]) -> None:
        if not tasks:
            raise ValueError(
                "the objective has no task: give at least one output (a non-empty dict of "
                "losses, or outputs=[...])."
            )
        bad = [t for t in tasks if not isinstance(t, str) or not t]
        if bad:
            raise TypeError(f"task names must be non-empty strings, got {bad!r}")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"task names must be unique, got {list(tasks)}")
        spec = self._spec
        per_task = (
            dict.fromkeys(tasks, spec)
            if isinstance(spec, str) or callable(spec)
            else match_to_tasks(spec, tasks, "losses")
        )
        self.tasks = tasks
        self._losses = {}
        self.loss_names = {}
        for task, s in per_task.items():
            if s is None:
                raise ValueError(
                    f"task '{task}' has no loss. Every output needs a loss in auxlab; drop the "
                    "output from the model's returned dict if it should not be trained."
                )
            name, fn = resolve_loss(s)
            self.loss_names[task] = name
            self._losses[task] = fn
        if self._main_arg is not None:
            if self._main_arg not in tasks:
                raise TaskMismatchError(
                    f"main task '{self._main_arg}' is not one of the tasks {list(tasks)}."
                )
            self.main = self._main_arg
        else:
            self.main = "main" if "main" in tasks else tasks[0]
        self.metrics = self._build_metrics(self._metric_spec)

    def _build_metrics(
        self, spec: Mapping[str, Sequence[str | MetricFn]] | Sequence[str | MetricFn] | None
    ) -> dict[str, dict[str, MetricFn]]:
        if spec is None:
            return {}
        if isinstance(spec, Mapping):
            unknown = [t for t in spec if t not in self.tasks]
            if unknown:
                raise TaskMismatchError(
                    f"metrics were given for {unknown}, which are not tasks; tasks are "
                    f"{list(self.tasks)}."
                )
            per_task = dict(spec)
        else:
            per_task = dict.fromkeys(self.tasks, spec)
        out: dict[str, dict[str, MetricFn]] = {}
        for task, items in per_task.items():
            if isinstance(items, str) or callable(items):
                items = [items]
            out[task] = {}
            for m in items:
                if isinstance(m, str):
                    if m not in METRICS:
                        raise ValueError(
                            f"unknown metric '{m}'. Known metrics: {', '.join(sorted(METRICS))}."
                        )
                    out[task][m] = METRICS[m](self.loss_names[task])
                else:
                    out[task][getattr(m, "__name__", type(m).__name__)] = m
        return out

    def bind(self, model: Any) -> Objective:
        """Learn the output order from ``model.output_names`` if the tasks are not known yet.

        If they are known and the model declares names, the two are checked against each
        other: the same names, and, where the objective's order was declared
        (``outputs=[...]``), the same order, since a model that returns a tuple is read in
        that order. An order that came only from the keys of a dict of losses follows the
        model's. Returns ``self``.

        Raises:
            TaskMismatchError: If the names differ, or the declared orders differ.
        """
        names = getattr(model, "output_names", None)
        if names is None:
            return self
        if isinstance(names, (str, bytes)):
            raise TypeError(
                f"the model's output_names must be a tuple of task names, got the string {names!r}"
            )
        names = tuple(names)
        if not self.tasks:
            self._build(names)
            self._declared_order = True
        else:
            check_same_tasks(self.tasks, names, "the objective's tasks", "the model's outputs")
            if names != self.tasks:
                if self._declared_order:
                    raise TaskMismatchError(
                        f"the objective's outputs are in the order {list(self.tasks)} but the "
                        f"model declares output_names {list(names)}. A model that returns a "
                        "tuple is read in one order, and the two would swap its outputs' "
                        "losses: give Objective(outputs=...) the model's order (or leave "
                        "outputs= out to take it from the model)."
                    )
                self._reorder(names)
        return self

    def _reorder(self, names: tuple[str, ...]) -> None:
        """Put the tasks in the model's declared order (the names are the same)."""
        self.tasks = names
        self.loss_names = {t: self.loss_names[t] for t in names}
        self._losses = {t: self._losses[t] for t in names}
        self._declared_order = True

    # -- use ---------------------------------------------------------------------------------
    def _outputs_as_dict(self, outputs: Any) -> dict[str, torch.Tensor]:
        if isinstance(outputs, Mapping):
            if not self.tasks:
                spec = self._spec
                if not (isinstance(spec, (str, Mapping)) or callable(spec)):
                    raise ValueError(
                        "losses were given as a list, which is matched to the model's outputs "
                        "in their declared order, but the order is unknown: pass outputs=[...] "
                        "to Objective, give the model an `output_names` attribute, or give "
                        "the losses as a dict keyed by task name."
                    )
                self._build(tuple(outputs))
            return dict(outputs)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if not self.tasks:
            raise ValueError(
                "the model returned a tuple/list of outputs but the output names are unknown: "
                "pass outputs=[...] to Objective, or return a dict from the model."
            )
        return match_to_tasks(list(outputs), self.tasks, "model outputs")

    def __call__(self, outputs: Any, targets: Mapping[str, torch.Tensor]) -> Losses:
        """Compute ``{task: loss}`` for one batch.

        Raises:
            TaskMismatchError: If outputs, targets and losses name different tasks.
        """
        out = self._outputs_as_dict(outputs)
        check_same_tasks(self.tasks, out, "the objective's tasks", "the model's outputs")
        if not isinstance(targets, Mapping):
            raise TypeError(
                "targets must be a dict keyed by task name, e.g. {'main': y, 'aux': y} "
                f"(got {type(targets).__name__})."
            )
        check_same_tasks(self.tasks, targets, "the objective's tasks", "the targets")
        losses = {}
        for task in self.tasks:
            pred, target = out[task], targets[task]
            for what, x in (("output", pred), ("target", target)):
                if not isinstance(x, torch.Tensor):
                    raise TypeError(
                        f"task '{task}': the {what} must be a tensor, got {type(x).__name__}"
                        + (" (convert it with torch.as_tensor)" if what == "target" else "")
                    )
            name = self.loss_names[task]
            try:
                if name in NEEDS_ALIGN:
                    target = align_target(pred, target, task)
                loss = self._losses[task](pred, target)
            except LossInputError as e:
                msg = str(e)
                prefix = f"task '{task}'"
                raise LossInputError(
                    msg if msg.startswith(prefix) else f"{prefix}: {msg}"
                ) from None
            if not isinstance(loss, torch.Tensor):
                raise TypeError(
                    f"the loss of task '{task}' returned {type(loss).__name__}; a loss must "
                    "return a scalar tensor that is part of the graph."
                )
            if loss.ndim != 0:
                raise ValueError(
                    f"the loss of task '{task}' returned shape {tuple(loss.shape)}; a loss must "
                    "return a scalar (reduce it with .mean())."
                )
            losses[task] = loss
        return Losses(losses, self.main)

    def compute_metrics(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> dict[str, float]:
        """Metrics over a whole set of predictions, keyed ``"<task>_<metric>"``."""
        result: dict[str, float] = {}
        for task, fns in self.metrics.items():
            for name, fn in fns.items():
                try:
                    value = float(fn(outputs[task].detach(), targets[task]))
                except LossInputError as e:
                    raise LossInputError(f"task '{task}', metric '{name}': {e}") from None
                result[f"{task}_{name}"] = value if math.isfinite(value) else float("nan")
        return result

    def __repr__(self) -> str:
        losses = ", ".join(f"{t}={n}" for t, n in self.loss_names.items())
        return f"Objective({losses}; main={self.main!r})"
