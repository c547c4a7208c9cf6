"""Best epoch, early stopping and checkpoints: ``fit``'s end-of-epoch bookkeeping.

Follows the monitored value, keeps the best weights, stops early, and writes checkpoints
that load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab.objective import HIGHER_IS_BETTER, Objective
from auxlab.train._history import History
from auxlab.train._loader import device_of

__all__ = ["load_checkpoint"]


def default_monitor(objective: Objective) -> str:
    """The main task's first validation metric (``val_<main>_<metric>``), else its loss."""
    main = objective.main
    names = list(objective.metrics.get(main, {}))
    return f"val_{main}_{names[0]}" if names else f"val_loss_{main}"


def higher_is_better(monitor: str | None, mode: str = "auto") -> bool:
    """Whether a larger ``monitor`` is better, by ``mode`` (``"auto"``, ``"max"``, ``"min"``).

    ``"auto"``: keys containing "loss" and the metrics ``mse`` and ``mae`` are minimised;
    other metrics (``auc``, ``accuracy``, ``r2``, ...) maximised.
    """
    if mode not in ("auto", "max", "min"):
        raise ValueError(f"mode must be 'auto', 'max' or 'min', got {mode!r}")
    if mode != "auto":
        return mode == "max"
    if monitor is None or "loss" in monitor:
        return False
    metric = monitor.rsplit("_", 1)[-1]
    return HIGHER_IS_BETTER.get(metric, True)


class BestTracker:
    """Follows ``monitor`` over epoch records: the best epoch, its weights, early stopping.

    Args:
        monitor: The epoch key to follow; ``None`` follows nothing (no best epoch).
        higher: Whether a larger value is better.
        early_stopping: Stop after this many epochs without improvement (``None``: never).
        restore_best: Keep a copy of the best epoch's weights for :meth:`restore`.
    """

    def __init__(
        self,
        monitor: str | None,
        higher: bool,
        early_stopping: int | None = None,
        restore_best: bool = True,
    ) -> None:
        self.monitor = monitor
        self.higher = higher
        self.early_stopping = early_stopping
        self.restore_best = restore_best
        self.best = -math.inf if higher else math.inf
        self.bad_epochs = 0
        self._state: dict[str, torch.Tensor] | None = None

    def update(self, ep: dict[str, Any], model: nn.Module, history: History) -> bool:
        """Read one epoch record; return whether it improved on the best so far."""
        if self.monitor is None:
            return False
        if self.monitor not in ep:
            raise KeyError(
                f"monitor '{self.monitor}' is not in the epoch record; keys: {sorted(ep)}"
            )
        value = ep[self.monitor]
        improved = bool(value > self.best if self.higher else value < self.best)
        if improved:
            self.best, self.bad_epochs = value, 0
            history.best_epoch = ep["epoch"]
            if self.restore_best:
                self._state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Whether early stopping's patience has run out."""
        return self.early_stopping is not None and self.bad_epochs >= self.early_stopping

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (if they were kept)."""
        if self.restore_best and self._state is not None:
            model.load_state_dict(self._state)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    epoch: int,
    monitor: float | None,
    history: History,
) -> None:
    """Write ``{"model", "optimizer", "epoch", "monitor", "history"}`` to ``path``, atomically.

    ``epoch`` counts from 1, as :class:`History` does. Missing folders are created.
    """
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

    Returns the checkpoint dict (``epoch``, counted from 1, ``monitor``, ``history``).
    """
    ckpt = torch.load(path, map_location=device_of(model), weights_only=True)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return dict(ckpt)
