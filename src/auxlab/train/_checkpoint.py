"""Best epoch, early stopping and checkpoints: ``fit``'s end-of-epoch bookkeeping.

Follows the monitored value, keeps the best weights, stops early, and writes checkpoints
that load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab._outdir import OutputError, check_out_file
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

    A monitored value that is NaN (a metric undefined on the validation set, such as AUC on
    one class) can never be "best": the tracker then warns, names the metric and why, and
    follows ``fallback`` (the main task's validation loss) for the rest of the run.

    Args:
        monitor: The epoch key to follow; ``None`` follows nothing (no best epoch).
        higher: Whether a larger value is better.
        early_stopping: Stop after this many epochs without improvement (``None``: never).
        restore_best: Keep a copy of the best epoch's weights for :meth:`restore`.
        fallback: The key to follow instead when ``monitor`` is NaN (minimised).
    """

    def __init__(
        self,
        monitor: str | None,
        higher: bool,
        early_stopping: int | None = None,
        restore_best: bool = True,
        fallback: str | None = None,
    ) -> None:
        self.monitor = monitor
        self.higher = higher
        self.early_stopping = early_stopping
        self.restore_best = restore_best
        self.fallback = fallback
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
        value = float(ep[self.monitor])
        if math.isnan(value):
            value = self._fall_back(ep)
        improved = bool(value > self.best if self.higher else value < self.best)
        if improved:
            self.best, self.bad_epochs = value, 0
            history.best_epoch = ep["epoch"]
            history.monitor = self.monitor
            if self.restore_best:
                self._state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return improved

    def _fall_back(self, ep: dict[str, Any]) -> float:
        """Warn about a NaN monitor and follow the fallback key; return its value."""
        old = self.monitor
        assert old is not None
        usable = (
            self.fallback is not None
            and self.fallback != old
            and self.fallback in ep
            and not math.isnan(float(ep[self.fallback]))
        )
        then = (
            f"early stopping and the best checkpoint follow '{self.fallback}' (lower is "
            "better) from now on"
            if usable
            else "the epoch counts as no improvement"
        )
        warnings.warn(
            f"the monitored '{old}' is NaN at epoch {ep['epoch']}: {_why_nan(old)}; {then}. "
            "Pass monitor=... to choose another key.",
            RuntimeWarning,
            stacklevel=4,
        )
        if not usable:
            return math.nan
        assert self.fallback is not None
        # A loss is not comparable with the metric followed so far: start afresh.
        self.monitor, self.higher, self.best, self.bad_epochs = self.fallback, False, math.inf, 0
        return float(ep[self.fallback])

    @property
    def should_stop(self) -> bool:
        """Whether early stopping's patience has run out."""
        return self.early_stopping is not None and self.bad_epochs >= self.early_stopping

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (if they were kept)."""
        if self.restore_best and self._state is not None:
            model.load_state_dict(self._state)


def _why_nan(key: str) -> str:
    metric = key.rsplit("_", 1)[-1]
    if metric == "auc":
        return "AUC is undefined when the validation targets hold one class only"
    if metric == "r2":
        return "R² is undefined when the validation targets are all equal"
    if "loss" in key:
        return "the model's validation outputs are not finite"
    return (
        "the metric is undefined on the validation set (e.g. no observed target) or the "
        "model's outputs are not finite"
    )


def prepare_checkpoint(path: str | Path) -> Path:
    """Check, before training, that a checkpoint can be written at ``path``.

    Creates the missing folders and proves the folder writable (the same check as a command's
    ``--json``, :func:`auxlab._outdir.check_out_file`), so a path under a file, a folder given
    as the path, or an unwritable folder is an error now rather than after the first epoch.

    Raises:
        ValueError: Naming the path and what is wrong with it.
    """
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise TypeError(f"checkpoint must be a file path, got {path!r}")
    try:
        return check_out_file(path, "checkpoint", example="best.pt")
    except OutputError as e:
        raise ValueError(f"cannot write the checkpoint: {e}") from None


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

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is empty, cut short, not an auxlab checkpoint, holds objects
            that a weights-only load refuses, or does not fit ``model``.
    """
    ckpt = _read_checkpoint(Path(path), device_of(model))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise ValueError(f"the checkpoint '{path}' does not fit this model: {e}") from None
    if optimizer is not None:
        if "optimizer" not in ckpt:
            raise ValueError(f"the checkpoint '{path}' holds no optimizer state")
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"the checkpoint '{path}' does not fit this optimizer: {e}") from None
    return dict(ckpt)


def _read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, with a sentence instead of torch's errors.

    Torch's own messages are not passed on: for a file it cannot read they suggest
    ``weights_only=False``, which would run any code the file holds.
    """
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at '{path}': the file does not exist")
    if path.is_dir():
        raise ValueError(f"the checkpoint '{path}' is a folder; give the file written by fit")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(
            f"the checkpoint '{path}' is empty (0 bytes): it was never written completely. "
            "Train again to write it."
        )
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():  # a pickled class or function
            raise ValueError(
                f"refused to load '{path}': it holds Python objects other than tensors and "
                "plain data, so it was not written by auxlab's fit and loading it could run "
                "code. auxlab loads only checkpoints written by fit."
            ) from None
        raise ValueError(_not_a_checkpoint(path, size)) from None
    except (EOFError, RuntimeError, OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise ValueError(_not_a_checkpoint(path, size)) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(
            f"'{path}' is not an auxlab checkpoint: it loads, but holds no 'model' state "
            "(a checkpoint written by fit holds 'model', 'optimizer', 'epoch', 'monitor' "
            "and 'history')."
        )
    return ckpt


def _not_a_checkpoint(path: Path, size: int) -> str:
    return (
        f"'{path}' ({size} bytes) is not an auxlab checkpoint, or it is cut short (a copy or "
        "a write that did not finish). Train again to write it, or give the file that fit "
        "wrote."
    )
