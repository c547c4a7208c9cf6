"""Argument checks of :func:`fit`: bad input is refused before anything trains.

Each error names the argument, what is wrong with it and the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any

import torch
from torch import nn

from auxlab._checks import check_int
from auxlab.objective import Objective

__all__ = ["check_batch", "check_fit_args", "check_lr"]


def check_lr(lr: Any) -> None:
    """``lr``: ``None`` or a finite number >= 0."""
    if lr is None:
        return
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a number, got {type(lr).__name__}")
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"lr must be a finite number >= 0, got {lr}")


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    check_int(name, value)


def _reiterable(name: str, data: Any, epochs: int) -> None:
    """Refuse data that is not iterable, or that is used up after one pass."""
    if data is None or isinstance(data, (str, bytes, torch.Tensor, Mapping)):
        raise TypeError(
            f"{name} must be an iterable of (inputs, targets) batches, such as an ArrayLoader "
            f"or a DataLoader; got {type(data).__name__}."
        )
    if not isinstance(data, Iterable):
        raise TypeError(f"{name} must be an iterable of batches, got {type(data).__name__}")
    if isinstance(data, Iterator) and epochs > 1:
        raise TypeError(
            f"{name} is an iterator (e.g. a generator), which is used up after one pass, so "
            "epochs after the first would see no batch. Pass a re-iterable such as an "
            "ArrayLoader, a DataLoader or a list of batches."
        )
    if isinstance(data, Sized) and len(data) == 0:
        raise ValueError(f"{name} has no batch (its length is 0); there is nothing to train on")


def check_fit_args(a: dict[str, Any]) -> None:
    """Refuse bad arguments before anything trains (each error names the fix)."""
    if not isinstance(a["model"], nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(a['model']).__name__}")
    if not isinstance(a["objective"], Objective):
        raise TypeError(
            "objective must be an auxlab.Objective (e.g. Objective({'main': 'bce', 'aux': "
            f"'mse'}})), got {type(a['objective']).__name__}"
        )
    _positive_int("epochs", a["epochs"])
    check_lr(a["lr"])
    _reiterable("train", a["train"], a["epochs"])
    for name in ("val", "evaluate_train"):
        if a[name] is not None:
            _reiterable(name, a[name], a["epochs"])
    if a.get("weight_val") is not None:  # drawn from again and again: a re-iterable
        _reiterable("weight_val", a["weight_val"], 2)
    es = a["early_stopping"]
    if es is not None:
        _positive_int("early_stopping (epochs without improvement)", es)
        if a["val"] is None and a["monitor"] is None:
            raise ValueError(
                "early_stopping needs something to follow: pass val=<validation batches> (it "
                "then follows the main task's validation metric), or monitor=<epoch key>."
            )
    if a["monitor"] is not None and not isinstance(a["monitor"], str):
        raise TypeError(f"monitor must be an epoch key (a string), got {a['monitor']!r}")
    if a["nan_policy"] not in ("raise", "skip"):
        raise ValueError(f"nan_policy must be 'raise' or 'skip', got {a['nan_policy']!r}")
    seed = a["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer or None, got {a['seed']!r}")
    cbs = a["callbacks"]
    if callable(cbs) or not all(callable(cb) for cb in cbs):
        raise TypeError("callbacks must be a list of functions, each called with an epoch record")
    opt = a["optimizer"]
    if not isinstance(opt, (str, torch.optim.Optimizer)):
        raise TypeError(
            f"optimizer must be a name ('adam', ...) or a torch optimizer, got {type(opt).__name__}"
        )


def check_batch(batch: Any, i: int, epoch: int) -> None:
    """A batch is ``(inputs, {task: target})`` with at least one row."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], Mapping)):
        raise TypeError(
            f"batch {i} of epoch {epoch} is not (inputs, {{task: target}}) but "
            f"{type(batch).__name__}; a training batch pairs the model's inputs with a dict "
            "of targets keyed by task."
        )
    for task, y in batch[1].items():
        if isinstance(y, torch.Tensor) and y.ndim > 0 and y.shape[0] == 0:
            raise ValueError(
                f"batch {i} of epoch {epoch} has 0 rows (target '{task}' has shape "
                f"{tuple(y.shape)}); a batch needs at least one row. Check the loader's "
                "sampler or filtering."
            )
