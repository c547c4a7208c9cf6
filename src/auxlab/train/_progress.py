"""What ``fit`` shows while it trains: a tqdm bar per epoch and one summary line per epoch.

Logs show the weighted total next to each task's *unweighted* loss and its weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from auxlab.balancer import StepRecord

__all__: list[str] = []


def format_losses(losses: Mapping[str, float], weights: Mapping[str, float]) -> str:
    """``"main 0.4800 (w=1)  aux 0.2110 (w=0.2)"``: unweighted losses next to their weights."""
    return "  ".join(f"{t} {losses[t]:.4f} (w={weights.get(t, math.nan):.3g})" for t in losses)


class EpochBar:
    """A tqdm bar over one epoch's batches (silent when ``enabled`` is false).

    Args:
        batches: The epoch's batches.
        total: Their number, if known.
        epoch: This epoch, from 1.
        epochs: All epochs.
        enabled: Draw the bar and the summary line.
    """

    def __init__(
        self, batches: Iterable[Any], total: int | None, epoch: int, epochs: int, enabled: bool
    ) -> None:
        from tqdm.auto import tqdm

        self.enabled = enabled
        self.epoch, self.epochs = epoch, epochs
        self.bar = tqdm(
            batches,
            total=total,
            desc=f"epoch {epoch}/{epochs}",
            disable=not enabled,
            leave=False,
            dynamic_ncols=True,
        )

    def __iter__(self) -> Any:
        return iter(self.bar)

    def step(self, i: int, record: StepRecord) -> None:
        """Show step ``i``'s losses and weights (every 10th step, to keep the bar cheap)."""
        if self.enabled and i % 10 == 0:
            self.bar.set_postfix_str(
                f"total {record.total:.4f} | " + format_losses(record.losses, record.weights)
            )

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()

    def summary(self, ep: Mapping[str, Any]) -> None:
        """Write the epoch's summary line under the bar."""
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        weights = {k[len("weight_") :]: v for k, v in ep.items() if k.startswith("weight_")}
        losses = {k[len("train_loss_") :]: v for k, v in ep.items() if k.startswith("train_loss_")}
        msg = (
            f"epoch {self.epoch}/{self.epochs}  train total {ep.get('train_total', math.nan):.4f}"
            f" = Σ w·loss over: {format_losses(losses, weights)}"
        )
        vals = [f"{k} {v:.4f}" for k, v in ep.items() if k.startswith("val_")]
        if vals:
            msg += "  |  " + "  ".join(vals)
        tqdm.write(msg)
