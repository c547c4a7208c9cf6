"""The training loop: :func:`fit` and one step of it (:func:`train_step`).

``fit`` is ``Objective`` + ``Balancer`` + an optimizer, with validation each epoch, early
stopping on the main task's validation metric, a :class:`History`, checkpoints and a
progress bar. The end-of-epoch bookkeeping lives in ``_checkpoint``, the display in
``_progress``, the argument checks in ``_checks`` and the optimizers by name in
``_optimizers``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab.balancer import Balancer, StepRecord, missing_validation_message
from auxlab.objective import Objective
from auxlab.train._checkpoint import (
    BestTracker,
    default_monitor,
    higher_is_better,
    prepare_checkpoint,
    save_checkpoint,
)
from auxlab.train._checks import check_batch, check_fit_args
from auxlab.train._evaluate import evaluate
from auxlab.train._history import History
from auxlab.train._loader import Batch, call_model, device_of, to_device
from auxlab.train._optimizers import make_optimizer
from auxlab.train._progress import EpochBar
from auxlab.weighting import Need, Strategy

__all__ = ["fit", "make_optimizer", "train_step"]  # make_optimizer: re-exported


class _Capture:
    """Keeps the latest output of a module (the shared representation), via a forward hook."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):  # e.g. an RNN's (output, state)
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"the representation module {type(module).__name__} returned "
                f"{type(output).__name__}; it must return a tensor"
            )
        self.value = output


def train_step(
    model: nn.Module,
    batch: Batch,
    objective: Objective,
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    representation: _Capture | None = None,
) -> StepRecord:
    """One optimisation step: forward, objective, ``balancer.backward``, ``optimizer.step``."""
    inputs, targets = batch
    optimizer.zero_grad(set_to_none=True)
    losses = objective(call_model(model, inputs), targets)
    rep = representation.value if representation is not None else None
    record = balancer.backward(losses, representation=rep)
    if not record.skipped:
        optimizer.step()
    return record


def fit(
    model: nn.Module,
    train: Iterable[Batch],
    objective: Objective,
    strategy: Strategy | Balancer | str | Mapping[str, float] | Sequence[float] = "equal",
    *,
    epochs: int = 10,
    optimizer: str | torch.optim.Optimizer = "adam",
    lr: float | None = None,
    val: Iterable[Batch] | None = None,
    shared: nn.Module | Iterable[torch.Tensor] | None = None,
    representation: nn.Module | None = None,
    monitor: str | None = None,
    mode: str = "auto",
    early_stopping: int | None = None,
    restore_best: bool = True,
    checkpoint: str | Path | None = None,
    evaluate_train: Iterable[Batch] | None = None,
    progress: bool = True,
    seed: int | None = None,
    nan_policy: str = "raise",
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    distributed: Any = None,
    weight_val: Iterable[Batch] | None = None,
) -> History:
    """Train ``model`` on named tasks; return a :class:`History`.

    Epochs are counted from 1 everywhere: in the progress line, in the records' ``epoch``
    key, in :attr:`History.best_epoch` and in a checkpoint's ``epoch``.

    Args:
        model: Returns ``{task: output}`` (or a tuple in ``objective``'s output order).
        train: Iterable of ``(inputs, targets)`` batches, e.g. an :class:`ArrayLoader`.
        objective: The per-task losses and metrics.
        strategy: A strategy, a registered name, Keras-style weights (dict or list), or a
            ready :class:`Balancer`.
        epochs: Passes over ``train``.
        optimizer: A name (``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"`` with Keras'
            defaults) or an optimizer you built (it must include the strategy's learnable
            parameters, if any).
        lr: Learning rate for an optimizer given by name.
        val: Validation batches, evaluated after each epoch (and, unless ``weight_val`` is
            given, the batches a validation-driven strategy learns its weights from).
        shared: The shared block, for strategies that read per-task gradients.
        representation: The module whose output is the shared representation, for
            strategies that read gradients on it (``"mgda-ub"``); its output is captured by
            a forward hook at each step.
        monitor: The epoch key for early stopping and the best checkpoint. Default: the
            main task's first validation metric (``val_<main>_<metric>``), else its
            validation loss. If the monitored value is NaN at an epoch (AUC on a
            validation set with one class, R² on constant targets), ``fit`` warns and
            follows ``val_loss_<main>`` from then on; :attr:`History.monitor` says which
            key :attr:`History.best_epoch` is best by.
        mode: Whether a larger ``monitor`` value is better: ``"max"``, ``"min"``, or
            ``"auto"`` (default: keys containing "loss", and the metrics ``mse`` and ``mae``,
            are minimised; other metrics, such as ``auc``, ``accuracy`` and ``r2``, maximised).
        early_stopping: Stop after this many epochs (>= 1) without improvement of
            ``monitor``; it needs ``val`` (or an explicit ``monitor``).
        restore_best: With validation data, end with the weights of the best epoch.
        checkpoint: A file to write the best (or, without validation, the last) state to:
            ``{"model", "optimizer", "epoch", "monitor", "history"}``, loadable with
            ``torch.load(path, weights_only=True)``. A relative path is relative to the
            working directory; keep it inside the run's output folder (e.g.
            ``"runs/headline/best.pt"``), whose missing folders are created. It is
            checked before training: a path that cannot be written is an error at once.
        evaluate_train: Batches of training data to evaluate after each epoch (for the
            train/validation gap); e.g. the training set without shuffling.
        progress: Show a progress bar and an epoch summary.
        seed: Seeds torch's global generator *inside* the call only (dropout, ...); the
            caller's random state is restored afterwards.
        nan_policy: ``"raise"`` or ``"skip"`` for non-finite losses (see :class:`Balancer`).
        callbacks: Functions called with each epoch's record (after validation).
        distributed: Data-parallel training, as ``Balancer(distributed=...)``
            (``docs/distributed.md``). ``None`` (default): on when ``model`` is a
            ``DistributedDataParallel`` model or a process group of more than one process
            is initialised; ``False``: off.
        weight_val: Validation batches that drive the weights of a strategy that learns them
            from the main task's validation loss (``"lookahead-val"``, ``"auxilearn"``:
            ``Need.VAL_GRAD``). Default: ``val``. One batch is drawn per step that reads it
            (started over when used up) and the main task's loss on it is differentiated
            with the model in training mode (dropout on; batch-norm statistics are updated
            by these batches too). Pass a held-out slice of the training data, never the
            test set; giving one apart from ``val`` keeps ``val`` an unbiased judge of the
            learned weights. Ignored by other strategies.

    Raises:
        TypeError: For arguments of the wrong kind (``train`` not a re-iterable of
            ``(inputs, {task: target})`` batches, a generator with ``epochs > 1``, ...).
        ValueError: For bad values, found before the first step (``epochs < 1``, a negative
            or NaN ``lr``, ``early_stopping`` < 1 or without validation data, an empty
            ``train``, a checkpoint path that cannot be written), or during it (a batch
            with 0 rows, targets that the task's loss cannot take).

    Warns:
        RuntimeWarning: Once per run, when an epoch did not change the model (every step
            skipped under ``nan_policy="skip"``, or every weight 0); and when the monitored
            value is NaN.
    """
    check_fit_args(locals())
    if seed is None:
        return _fit(**locals())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _fit(**locals())


@dataclass
class _Run:
    """Everything one call of ``fit`` trains with, once its arguments are resolved."""

    model: nn.Module
    train: Iterable[Batch]
    objective: Objective
    balancer: Balancer
    opt: torch.optim.Optimizer
    ours: bool  # the optimizer was built here (so late strategy parameters may join it)
    epochs: int
    val: Iterable[Batch] | None
    evaluate_train: Iterable[Batch] | None
    tracker: BestTracker
    mode: str
    monitor_pending: bool  # the default monitor is chosen once the tasks are known
    checkpoint: str | Path | None
    progress: bool
    callbacks: Sequence[Callable[[dict[str, Any]], None]]
    capture: _Capture | None
    warned_unchanged: bool = False  # "this epoch did not change the model" was said


def _fit(
    model: nn.Module,
    train: Iterable[Batch],
    objective: Objective,
    strategy: Any,
    epochs: int,
    optimizer: str | torch.optim.Optimizer,
    lr: float | None,
    val: Iterable[Batch] | None,
    shared: Any,
    representation: nn.Module | None,
    monitor: str | None,
    mode: str,
    early_stopping: int | None,
    restore_best: bool,
    checkpoint: str | Path | None,
    evaluate_train: Iterable[Batch] | None,
    progress: bool,
    seed: int | None,
    nan_policy: Any,
    callbacks: Sequence[Callable[[dict[str, Any]], None]],
    distributed: Any,
    weight_val: Iterable[Batch] | None,
) -> History:
    if checkpoint is not None:
        checkpoint = prepare_checkpoint(checkpoint)
    objective.bind(model)
    if distributed in (None, True) and isinstance(model, nn.parallel.DistributedDataParallel):
        distributed = model  # the Balancer switches its gradient averaging off where needed
    balancer = (
        strategy
        if isinstance(strategy, Balancer)
        else Balancer(
            strategy,
            shared=shared,
            main=objective.main or None,
            nan_policy=nan_policy,
            tasks=objective.tasks or None,  # known tasks create learnable weights up front
            distributed=distributed,
        )
    )
    _attach_validation(balancer, model, objective, weight_val if weight_val is not None else val)
    extra = balancer.parameters()
    if isinstance(optimizer, str):
        opt = make_optimizer(optimizer, list(model.parameters()) + list(extra), lr)
    else:
        opt = optimizer
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        missing = [p for p in extra if id(p) not in in_opt]
        if missing:
            raise ValueError(
                f"the strategy {balancer.strategy!r} has {len(missing)} learnable parameter(s) "
                "that the optimizer does not update; build it with "
                "list(model.parameters()) + balancer.parameters()."
            )
    pending = monitor is None and val is not None
    if pending and objective.tasks:
        monitor, pending = default_monitor(objective), False
    higher = higher_is_better(monitor, mode)
    capture = _Capture(representation) if representation is not None else None
    run = _Run(
        model=model,
        train=train,
        objective=objective,
        balancer=balancer,
        opt=opt,
        ours=isinstance(optimizer, str),
        epochs=epochs,
        val=val,
        evaluate_train=evaluate_train,
        tracker=BestTracker(monitor, higher, early_stopping, restore_best),
        mode=mode,
        monitor_pending=pending,
        checkpoint=checkpoint,
        progress=progress,
        callbacks=callbacks,
        capture=capture,
    )
    try:
        return _epochs(run)
    finally:
        if capture is not None:
            capture.handle.remove()


def _attach_validation(
    balancer: Balancer, model: nn.Module, objective: Objective, batches: Iterable[Batch] | None
) -> None:
    """Give a strategy that learns from validation data its batches and the main loss."""
    if Need.VAL_GRAD not in balancer.strategy.needs or balancer.validation is not None:
        return
    if batches is None:
        raise ValueError(missing_validation_message(type(balancer.strategy).__name__))
    device = device_of(model)

    def main_val_loss(batch: Batch) -> torch.Tensor:
        inputs, targets = to_device(batch, device)
        losses = objective(call_model(model, inputs), targets)
        return losses[balancer.main or objective.main]

    balancer.use_validation(batches, main_val_loss)


def _epochs(run: _Run) -> History:
    history = History()
    device = device_of(run.model)
    total_steps = len(run.train) if isinstance(run.train, Sized) else None
    tracker = run.tracker
    for epoch in range(1, run.epochs + 1):
        start = time.perf_counter()
        bar = EpochBar(run.train, total_steps, epoch, run.epochs, run.progress)
        ep = _train_epoch(run, bar, epoch, device, history)
        if run.monitor_pending:  # the tasks were learned from the first batch
            tracker.monitor = default_monitor(run.objective)
            tracker.higher = higher_is_better(tracker.monitor, run.mode)
            tracker.best = -math.inf if tracker.higher else math.inf
            run.monitor_pending = False
        if run.val is not None:
            tracker.fallback = f"val_loss_{run.objective.main}"
        if run.evaluate_train is not None:
            # Train-set losses measured after the epoch are "train_eval_loss_<task>", kept
            # apart from "train_loss_<task>", the running mean during the epoch.
            for k, v in evaluate(run.model, run.evaluate_train, run.objective, "train_").items():
                key = "train_eval_" + k[len("train_") :] if k.startswith("train_loss_") else k
                ep[key] = v
        if run.val is not None:
            ep.update(evaluate(run.model, run.val, run.objective, "val_"))
        ep["seconds"] = time.perf_counter() - start
        history.epochs.append(ep)
        for cb in run.callbacks:
            cb(ep)
        improved = tracker.update(ep, run.model, history)
        if run.checkpoint is not None and (improved or tracker.monitor is None):
            best = tracker.best if tracker.monitor is not None else None
            save_checkpoint(run.checkpoint, run.model, run.opt, epoch, best, history)
        bar.summary(ep)
        if tracker.should_stop:
            history.stopped_epoch = epoch
            break
    tracker.restore(run.model)
    return history


def _train_epoch(
    run: _Run, bar: EpochBar, epoch: int, device: torch.device, history: History
) -> dict[str, Any]:
    """One pass over the training batches; returns the epoch record's training part."""
    run.model.train()
    sums: dict[str, float] = {}
    counts = 0
    changed = 0  # steps that could change the model: applied, with a weight other than 0
    for i, batch in enumerate(bar):
        check_batch(batch, i, epoch)
        record = train_step(
            run.model, to_device(batch, device), run.objective, run.balancer, run.opt, run.capture
        )
        if epoch == 1 and i == 0:
            _adopt_late_parameters(run.balancer, run.opt, run.ours)
        row = record.as_dict()
        row["epoch"] = epoch
        history.steps.append(row)
        if record.skipped:
            continue
        counts += 1
        coef = record.shared_weights or {}
        if any(w != 0 for w in record.weights.values()) or any(w != 0 for w in coef.values()):
            changed += 1
        for k, v in row.items():
            if k.startswith(("loss_", "weight_")) or k == "total":
                sums[k] = sums.get(k, 0.0) + v
        bar.step(i, record)
    bar.close()
    steps = len([r for r in history.steps if r["epoch"] == epoch])
    if steps == 0:
        raise ValueError(
            f"train gave no batch in epoch {epoch}; there is nothing to train on. If it is a "
            "generator or an iterator, it is used up after one pass: pass a re-iterable such "
            "as an ArrayLoader or a DataLoader."
        )
    if changed == 0 and not run.warned_unchanged:
        run.warned_unchanged = True  # once per run: the next epochs would say the same
        why = (
            f"all {steps} steps were skipped because a loss was not finite "
            "(nan_policy='skip'); check the inputs and targets for NaN or inf"
            if counts == 0
            else f"the weight of every task was 0 at each of its {counts} steps"
        )
        warnings.warn(
            f"epoch {epoch} did not change the model: {why}. (Said once per run.)",
            RuntimeWarning,
            stacklevel=4,
        )
    ep: dict[str, Any] = {"epoch": epoch}
    for k, v in sums.items():
        ep[("train_" + k) if not k.startswith("weight_") else k] = v / max(counts, 1)
    ep["skipped_steps"] = run.balancer.skipped_steps
    return ep


def _adopt_late_parameters(balancer: Balancer, opt: torch.optim.Optimizer, ours: bool) -> None:
    """Give the optimizer learnable strategy parameters created at the first step.

    They exist only once the tasks are known, which for some models is at the first batch.
    """
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    late = [p for p in balancer.parameters() if id(p) not in in_opt]
    if not late:
        return
    if not ours:
        raise ValueError(
            f"the strategy {balancer.strategy!r} created {len(late)} learnable parameter(s) at "
            "the first step, which the optimizer you passed does not update. Build the "
            "Balancer with tasks=[...] and give balancer.parameters() to the optimizer."
        )
    opt.add_param_group({"params": late})
