"""The record of a training run: :class:`History`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["History"]


class History:
    """Per-step and per-epoch records of a training run.

    ``history.steps`` and ``history.epochs`` are lists of flat dicts. ``history["key"]``
    returns that key's values over epochs (or over steps if only steps have it).

    Epochs are numbered from 1, as the progress line counts them ("epoch 2/3" is the second
    of three): the ``epoch`` key of every record, :attr:`best_epoch` and
    :attr:`stopped_epoch`. The record of epoch ``k`` is ``history.epochs[k - 1]``.

    Keys: steps have ``step``, ``epoch``, ``total``, ``loss_<task>`` (unweighted),
    ``weight_<task>``; epochs have ``epoch``, ``seconds``, ``train_total``,
    ``train_loss_<task>``, ``weight_<task>`` (epoch means), ``val_loss_<task>`` and
    ``val_<task>_<metric>`` with validation data, ``train_<task>_<metric>`` with
    ``evaluate_train=True``.

    Attributes:
        best_epoch: The epoch (from 1) with the best monitored value, or ``None`` without
            a monitor.
        stopped_epoch: The epoch (from 1) at which early stopping ended the run, or
            ``None`` if it ran all its epochs.
        monitor: The epoch key that :attr:`best_epoch` is best by: ``fit``'s ``monitor``,
            or the main task's validation loss when that metric was NaN (``fit`` warns).
    """

    def __init__(
        self, steps: list[dict[str, Any]] | None = None, epochs: list[dict[str, Any]] | None = None
    ) -> None:
        self.steps: list[dict[str, Any]] = steps or []
        self.epochs: list[dict[str, Any]] = epochs or []
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None
        self.monitor: str | None = None

    def __getitem__(self, key: str) -> list[Any]:
        if not isinstance(key, str):
            raise TypeError(
                f"History is indexed by a key such as 'val_loss_main', got {key!r}; "
                "history.epochs[k - 1] is the record of epoch k."
            )
        if any(key in e for e in self.epochs):
            return [e.get(key, math.nan) for e in self.epochs]
        if any(key in s for s in self.steps):
            return [s.get(key, math.nan) for s in self.steps]
        known = sorted({k for r in self.epochs + self.steps[:1] for k in r})
        raise KeyError(f"no record has '{key}'. Keys: {', '.join(known)}")

    def weights(self, per: str = "epoch") -> dict[str, list[float]]:
        """Each task's weight over the run, for strategies that learn it.

        Args:
            per: ``"epoch"`` (default): the weight in force at the end of each epoch (its last
                applied step; the epoch records' ``weight_<task>`` are epoch means);
                ``"step"``: the weight applied at each applied step.

        Returns:
            ``{task: [weight, ...]}``, in the order of the steps' records.

        Example:
            >>> h = History([{"epoch": 1, "weight_main": 1.0, "weight_aux": 0.5},
            ...              {"epoch": 1, "weight_main": 1.0, "weight_aux": 0.7}])
            >>> h.weights(), h.final_weights()
            ({'main': [1.0], 'aux': [0.7]}, {'main': 1.0, 'aux': 0.7})
        """
        if per not in ("epoch", "step"):
            raise ValueError(f"per must be 'epoch' or 'step', got {per!r}")
        applied = [s for s in self.steps if not s.get("skipped")]
        if per == "epoch":
            last: dict[Any, dict[str, Any]] = {}
            for s in applied:
                last[s.get("epoch")] = s
            applied = list(last.values())
        out: dict[str, list[float]] = {}
        for s in applied:
            for k, v in s.items():
                if k.startswith("weight_"):
                    out.setdefault(k[len("weight_") :], []).append(v)
        return out

    def final_weights(self) -> dict[str, float]:
        """The weight of each task at the last applied step: a learned weight, to fix.

        Raises:
            ValueError: If no step was applied (no step records, or all skipped).
        """
        for s in reversed(self.steps):
            if not s.get("skipped"):
                return {k[len("weight_") :]: v for k, v in s.items() if k.startswith("weight_")}
        raise ValueError("the history has no applied step, so no weights to report")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists of dicts of numbers and strings), JSON- and torch-safe."""
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
        }

    def save(self, path: str | Path) -> None:
        """Write the history as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), allow_nan=True))

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by :meth:`save`.

        Raises:
            ValueError: If the file is not a history written by :meth:`save` (not JSON, cut
                short, or without its ``steps`` and ``epochs`` lists).
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(
                f"'{path}' is not a History written by History.save (not JSON, or cut short: {e})."
            ) from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("steps"), list)
            and isinstance(data.get("epochs"), list)
        ):
            raise ValueError(
                f"'{path}' is JSON but not a History written by History.save: it needs lists "
                "'steps' and 'epochs'."
            )
        h = cls(data["steps"], data["epochs"])
        h.stopped_epoch, h.best_epoch = data.get("stopped_epoch"), data.get("best_epoch")
        h.monitor = data.get("monitor")
        return h

    def __repr__(self) -> str:
        return f"History({len(self.steps)} steps, {len(self.epochs)} epochs)"
