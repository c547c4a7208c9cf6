"""fit / evaluate / predict: a convenience loop on the same pieces a user's own loop uses.

``fit`` is ``Objective`` + ``Balancer`` + an optimizer, with validation each epoch, early
stopping on the main task's validation metric, a :class:`History`, checkpoints that load
with ``torch.load(..., weights_only=True)`` and a progress bar. Logs show the weighted total
next to each task's *unweighted* loss and its weight.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab.balancer import Balancer, StepRecord
from auxlab.objective import HIGHER_IS_BETTER, Objective
from auxlab.weighting import Strategy

__all__ = [
    "ArrayLoader",
    "History",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_optimizer",
    "predict",
    "train_step",
]

Batch = tuple[Any, Mapping[str, torch.Tensor]]


class ArrayLoader:
    """Mini-batches from in-memory tensors, re-iterable, with its own seeded shuffling.

    Cheaper than ``DataLoader(TensorDataset(...))`` for in-memory data: one index per batch,
    no per-sample collation.

    Args:
        inputs: ``{name: tensor}`` passed to the model as keyword arguments, or one tensor.
        targets: ``{task: tensor}``; may be ``None`` for prediction.
        batch_size: Rows per batch.
        shuffle: Reshuffle at every pass (epoch).
        seed: Seed of the shuffling generator; pass ``k`` gives a different order per pass.
        drop_last: Drop the last incomplete batch.
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor] | torch.Tensor,
        targets: Mapping[str, torch.Tensor] | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        tensors = dict(inputs) if isinstance(inputs, Mapping) else {"": inputs}
        sizes = {k: len(v) for k, v in tensors.items()}
        sizes.update({f"target '{k}'": len(v) for k, v in (targets or {}).items()})
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs and targets must have the same number of rows, got {sizes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.inputs = inputs
        self.targets = dict(targets) if targets is not None else None
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.n = next(iter(sizes.values()))
        self._passes = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self._passes)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        self._passes += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = (
                {k: v[idx] for k, v in self.inputs.items()}
                if isinstance(self.inputs, Mapping)
                else self.inputs[idx]
            )
            y = {k: v[idx] for k, v in self.targets.items()} if self.targets is not None else {}
            yield x, y


class History:
    """Per-step and per-epoch records of a training run.

    ``history.steps`` and ``history.epochs`` are lists of flat dicts. ``history["key"]``
    returns that key's values over epochs (or over steps if only steps have it).

    Keys: steps have ``step``, ``epoch``, ``total``, ``loss_<task>`` (unweighted),
    ``weight_<task>``; epochs have ``epoch``, ``seconds``, ``train_total``,
    ``train_loss_<task>``, ``weight_<task>`` (epoch means), ``val_loss_<task>`` and
    ``val_<task>_<metric>`` with validation data, ``train_<task>_<metric>`` with
    ``evaluate_train=True``.
    """

    def __init__(
        self, steps: list[dict[str, Any]] | None = None, epochs: list[dict[str, Any]] | None = None
    ) -> None:
        self.steps: list[dict[str, Any]] = steps or []
        self.epochs: list[dict[str, Any]] = epochs or []
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None

    def __getitem__(self, key: str) -> list[Any]:
        if any(key in e for e in self.epochs):
            return [e.get(key, math.nan) for e in self.epochs]
        if any(key in s for s in self.steps):
            return [s.get(key, math.nan) for s in self.steps]
        known = sorted({k for r in self.epochs + self.steps[:1] for k in r})
        raise KeyError(f"no record has '{key}'. Keys: {', '.join(known)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists of dicts of numbers and strings), JSON- and torch-safe."""
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
        }

    def save(self, path: str | Path) -> None:
        """Write the history as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), allow_nan=True))

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        h = cls(data["steps"], data["epochs"])
        h.stopped_epoch, h.best_epoch = data.get("stopped_epoch"), data.get("best_epoch")
        return h

    def __repr__(self) -> str:
        return f"History({len(self.steps)} steps, {len(self.epochs)} epochs)"


# ---------------------------------------------------------------------------------------------


def _call(model: Callable[..., Any], inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    return x


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _lr(lr: float | None, default: float) -> float:
    return default if lr is None else lr  # lr=0.0 is a valid choice, so no `lr or default`


_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=_lr(lr, 1e-3)),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=_lr(lr, 1e-3)),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=_lr(lr, 1e-2), momentum=0.9),
    # Keras' RMSprop defaults (lr 1e-3, rho 0.9, epsilon 1e-7), not PyTorch's (1e-2, 0.99, 1e-8).
    "rmsprop": lambda params, lr: torch.optim.RMSprop(
        params, lr=_lr(lr, 1e-3), alpha=0.9, eps=1e-7
    ),
}


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float | None = None
) -> torch.optim.Optimizer:
    """An optimizer by name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"rmsprop"`` (Keras defaults).

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    key = name.lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}'. Known: {', '.join(sorted(_OPTIMIZERS))}.")
    return _OPTIMIZERS[key](list(params), lr)


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
    losses = objective(_call(model, inputs), targets)
    rep = representation.value if representation is not None else None
    record = balancer.backward(losses, representation=rep)
    if not record.skipped:
        optimizer.step()
    return record


@torch.no_grad()
def _collect(
    model: nn.Module, data: Iterable[Any], device: torch.device, with_targets: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[int]]:
    outs: dict[str, list[torch.Tensor]] = {}
    tgts: dict[str, list[torch.Tensor]] = {}
    sizes: list[int] = []
    was_training = model.training
    model.eval()
    try:
        for batch in data:
            # A batch is (inputs, targets) when its second item is a dict of targets; a plain
            # tuple of tensors is positional inputs.
            pair = isinstance(batch, (tuple, list)) and len(batch) == 2
            if with_targets or (pair and isinstance(batch[1], Mapping)):
                inputs, targets = batch
            else:
                inputs, targets = batch, {}
            out = _call(model, _to(inputs, device))
            if isinstance(out, torch.Tensor):
                out = {"main": out}
            if not isinstance(out, Mapping):
                out = dict(enumerate(out))
            for k, v in out.items():
                outs.setdefault(k, []).append(v.detach())
            for k, v in (targets or {}).items():
                tgts.setdefault(k, []).append(_to(v, device))
            sizes.append(len(next(iter(out.values()))))
    finally:
        model.train(was_training)
    return (
        {k: torch.cat(v) for k, v in outs.items()},
        {k: torch.cat(v) for k, v in tgts.items()},
        sizes,
    )


def evaluate(
    model: nn.Module, data: Iterable[Batch], objective: Objective, prefix: str = ""
) -> dict[str, float]:
    """Losses and metrics over a whole data set.

    Returns:
        ``{prefix + "loss_<task>": mean loss, prefix + "<task>_<metric>": value}``. Losses are
        computed on all predictions at once, so they equal the per-example mean for the
        built-in (mean-reduced) losses.
    """
    objective.bind(model)
    outputs, targets, _ = _collect(model, data, _device_of(model), with_targets=True)
    if not outputs:
        raise ValueError("evaluate() got no batches")
    with torch.no_grad():
        losses = objective(outputs, targets)
    result = {f"{prefix}loss_{t}": float(v) for t, v in losses.items()}
    for k, v in objective.compute_metrics(outputs, targets).items():
        result[f"{prefix}{k}"] = v
    return result


def predict(
    model: nn.Module,
    data: Iterable[Any] | Mapping[str, torch.Tensor] | torch.Tensor,
    all_outputs: bool = False,
    main: str = "main",
    batch_size: int = 256,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Predict; return the main output only, unless ``all_outputs=True``.

    Args:
        model: A model returning ``{task: output}``.
        data: An iterable of batches (``inputs`` or ``(inputs, targets)``), or in-memory
            inputs (a dict of tensors or one tensor) that are batched by ``batch_size``.
        all_outputs: Return every output as a dict.
        main: Name of the main output.
        batch_size: Rows per batch for in-memory inputs.
    """
    if isinstance(data, (Mapping, torch.Tensor)):
        data = ((x, {}) for x, _ in ArrayLoader(data, None, batch_size=batch_size))
    outputs, _, _ = _collect(model, data, _device_of(model), with_targets=False)
    if all_outputs:
        return outputs
    if main not in outputs:
        raise KeyError(f"the model has no output '{main}'; outputs are {list(outputs)}")
    return outputs[main]


def _format_losses(losses: Mapping[str, float], weights: Mapping[str, float]) -> str:
    # "0.480 main (w=1) + 0.211 aux (w=0.2)": unweighted losses next to their weights.
    return "  ".join(f"{t} {losses[t]:.4f} (w={weights.get(t, math.nan):.3g})" for t in losses)


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
) -> History:
    """Train ``model`` on named tasks; return a :class:`History`.

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
        val: Validation batches, evaluated after each epoch.
        shared: The shared block, for strategies that read per-task gradients.
        representation: The module whose output is the shared representation, for
            strategies that read gradients on it (``"mgda-ub"``); its output is captured by
            a forward hook at each step.
        monitor: The epoch key for early stopping and the best checkpoint. Default: the
            main task's first validation metric (``val_<main>_<metric>``), else its
            validation loss.
        mode: Whether a larger ``monitor`` value is better: ``"max"``, ``"min"``, or
            ``"auto"`` (default: keys containing "loss", and the metrics ``mse`` and ``mae``,
            are minimised; other metrics, such as ``auc``, ``accuracy`` and ``r2``, maximised).
        early_stopping: Stop after this many epochs without improvement of ``monitor``.
        restore_best: With validation data, end with the weights of the best epoch.
        checkpoint: A file to write the best (or, without validation, the last) state to:
            ``{"model", "optimizer", "epoch", "monitor", "history"}``, loadable with
            ``torch.load(path, weights_only=True)``.
        evaluate_train: Batches of training data to evaluate after each epoch (for the
            train/validation gap); e.g. the training set without shuffling.
        progress: Show a progress bar and an epoch summary.
        seed: Seeds torch's global generator *inside* the call only (dropout, ...); the
            caller's random state is restored afterwards.
        nan_policy: ``"raise"`` or ``"skip"`` for non-finite losses (see :class:`Balancer`).
        callbacks: Functions called with each epoch's record (after validation).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if seed is None:
        return _fit(**locals())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _fit(**locals())


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
) -> History:

    objective.bind(model)
    balancer = (
        strategy
        if isinstance(strategy, Balancer)
        else Balancer(
            strategy,
            shared=shared,
            main=objective.main or None,
            nan_policy=nan_policy,
            tasks=objective.tasks or None,  # known tasks create learnable weights up front
        )
    )
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
    device = _device_of(model)
    main = objective.main
    if monitor is None and val is not None:
        names = list(objective.metrics.get(main, {}))
        monitor = f"val_{main}_{names[0]}" if names else f"val_loss_{main}"
    if mode not in ("auto", "max", "min"):
        raise ValueError(f"mode must be 'auto', 'max' or 'min', got {mode!r}")
    higher = _higher_is_better(monitor) if mode == "auto" else mode == "max"
    history = History()
    total_steps = len(train) if isinstance(train, Sized) else None

    capture = _Capture(representation) if representation is not None else None
    try:
        return _epochs(
            model,
            train,
            objective,
            balancer,
            opt,
            device,
            epochs,
            val,
            monitor,
            higher,
            early_stopping,
            restore_best,
            checkpoint,
            evaluate_train,
            progress,
            callbacks,
            capture,
            total_steps,
            history,
            isinstance(optimizer, str),
        )
    finally:
        if capture is not None:
            capture.handle.remove()


def _epochs(
    model: nn.Module,
    train: Iterable[Batch],
    objective: Objective,
    balancer: Balancer,
    opt: torch.optim.Optimizer,
    device: torch.device,
    epochs: int,
    val: Iterable[Batch] | None,
    monitor: str | None,
    higher: bool,
    early_stopping: int | None,
    restore_best: bool,
    checkpoint: str | Path | None,
    evaluate_train: Iterable[Batch] | None,
    progress: bool,
    callbacks: Sequence[Callable[[dict[str, Any]], None]],
    capture: _Capture | None,
    total_steps: int | None,
    history: History,
    ours: bool,
) -> History:
    from tqdm.auto import tqdm

    best = -math.inf if higher else math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}
        counts = 0
        bar = tqdm(
            train,
            total=total_steps,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        for i, batch in enumerate(bar):
            record = train_step(model, _to(batch, device), objective, balancer, opt, capture)
            if epoch == 0 and i == 0:
                _adopt_late_parameters(balancer, opt, ours)
            row = record.as_dict()
            row["epoch"] = epoch
            history.steps.append(row)
            if record.skipped:
                continue
            counts += 1
            for k, v in row.items():
                if k.startswith(("loss_", "weight_")) or k == "total":
                    sums[k] = sums.get(k, 0.0) + v
            if progress and (i % 10 == 0):
                bar.set_postfix_str(
                    f"total {record.total:.4f} | " + _format_losses(record.losses, record.weights)
                )
        bar.close()
        ep: dict[str, Any] = {"epoch": epoch}
        for k, v in sums.items():
            ep[("train_" + k) if not k.startswith("weight_") else k] = v / max(counts, 1)
        ep["skipped_steps"] = balancer.skipped_steps
        if evaluate_train is not None:
            # Train-set losses measured after the epoch are "train_eval_loss_<task>", kept
            # apart from "train_loss_<task>", the running mean during the epoch.
            for k, v in evaluate(model, evaluate_train, objective, "train_").items():
                key = "train_eval_" + k[len("train_") :] if k.startswith("train_loss_") else k
                ep[key] = v
        if val is not None:
            ep.update(evaluate(model, val, objective, "val_"))
        ep["seconds"] = time.perf_counter() - start
        history.epochs.append(ep)
        for cb in callbacks:
            cb(ep)

        improved = False
        if monitor is not None:
            if monitor not in ep:
                raise KeyError(
                    f"monitor '{monitor}' is not in the epoch record; keys: {sorted(ep)}"
                )
            value = ep[monitor]
            improved = value > best if higher else value < best
            if improved:
                best, bad_epochs = value, 0
                history.best_epoch = epoch
                if restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
        if checkpoint is not None and (improved or monitor is None):
            _save_checkpoint(checkpoint, model, opt, epoch, best if monitor else None, history)
        if progress:
            weights = {k[len("weight_") :]: v for k, v in ep.items() if k.startswith("weight_")}
            losses = {
                k[len("train_loss_") :]: v for k, v in ep.items() if k.startswith("train_loss_")
            }
            msg = (
                f"epoch {epoch + 1}/{epochs}  train total {ep.get('train_total', math.nan):.4f}"
                f" = Σ w·loss over: {_format_losses(losses, weights)}"
            )
            vals = [f"{k} {v:.4f}" for k, v in ep.items() if k.startswith("val_")]
            if vals:
                msg += "  |  " + "  ".join(vals)
            tqdm.write(msg)
        if early_stopping is not None and bad_epochs >= early_stopping:
            history.stopped_epoch = epoch
            break

    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


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


def _higher_is_better(monitor: str | None) -> bool:
    if monitor is None or "loss" in monitor:
        return False
    metric = monitor.rsplit("_", 1)[-1]
    return HIGHER_IS_BETTER.get(metric, True)


def _save_checkpoint(
    path: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    epoch: int,
    monitor: float | None,
    history: History,
) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "monitor": monitor,
            "history": {"epochs": history.epochs},
        },
        tmp,
    )
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Load a checkpoint written by ``fit`` (with ``weights_only=True``) into ``model``.

    Returns the checkpoint dict (``epoch``, ``monitor``, ``history``).
    """
    ckpt = torch.load(path, map_location=_device_of(model), weights_only=True)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return dict(ckpt)
