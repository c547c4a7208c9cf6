"""The record of one reinforcement-learning run: :class:`RLRun`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from auxlab.rl._config import PPOConfig

__all__ = ["RLRun"]


@dataclass
class RLRun:
    """The record of one training run.

    Attributes:
        env_id, seed, config: What was run.
        curve: One record per rollout: ``step`` (environment steps so far), ``episodes``
            (ended in this rollout), ``return`` and ``success`` (their means, NaN when none
            ended), and the last update's ``aux_loss``, ``aux_accuracy``, ``weight``,
            ``shared_weight`` and ``cosine`` where they exist.
        episodes: ``(step, return, length, success)`` of every finished episode.
        seconds: Wall-clock time of the run.
    """

    env_id: str
    seed: int
    config: PPOConfig
    curve: list[dict[str, float]] = field(default_factory=list)
    episodes: list[tuple[int, float, int, float]] = field(default_factory=list)
    seconds: float = 0.0

    def final(self, fraction: float = 0.1) -> dict[str, float]:
        """Mean return and success of the episodes ending in the last ``fraction`` of steps."""
        if not self.episodes:
            return {"return": float("nan"), "success": float("nan"), "episodes": 0}
        cut = self.config.total_steps * (1 - fraction)
        last = [e for e in self.episodes if e[0] > cut] or self.episodes[-1:]
        return {
            "return": float(np.mean([e[1] for e in last])),
            "success": float(np.mean([e[3] for e in last])),
            "episodes": len(last),
        }

    def auc(self, key: str = "return") -> float:
        """Normalised area under the learning curve.

        The mean over rollouts of the per-rollout mean (a rollout where no episode ended
        repeats the last value; rollouts before the first ended episode are skipped).
        """
        values: list[float] = []
        last = float("nan")
        for rec in self.curve:
            v = rec[key]
            if not math.isnan(v):
                last = v
            if not math.isnan(last):
                values.append(last)
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        """A flat record: env, seed, the auxiliary setting, final and AUC metrics, time."""
        fin = self.final()
        return {
            "env": self.env_id,
            "seed": self.seed,
            "aux": self.config.aux or "none",
            "strategy": self.config.strategy if self.config.aux else "none",
            "weight": self.config.weight if self.config.aux else 0.0,
            "setting": self.config.label,
            "total_steps": self.config.total_steps,
            "final_return": fin["return"],
            "final_success": fin["success"],
            "auc_return": self.auc("return"),
            "auc_success": self.auc("success"),
            "seconds": self.seconds,
            "steps_per_second": self.config.total_steps / self.seconds if self.seconds else 0.0,
            **self._aux_summary(),
        }

    def _aux_summary(self) -> dict[str, float]:
        """The auxiliary task's own numbers, when there is one.

        The classifier's accuracy and loss over the last 10 % of rollouts, the mean cosine
        between the PPO and auxiliary gradients on the shared block and the fraction of
        rollouts whose gate was open (the last two for gradient-based strategies only).
        """
        out: dict[str, float] = {}
        if not self.curve or "aux_loss" not in self.curve[-1]:
            return out
        tail = self.curve[-max(1, len(self.curve) // 10) :]
        out["aux_accuracy"] = float(np.nanmean([r.get("aux_accuracy", np.nan) for r in tail]))
        out["aux_loss"] = float(np.mean([r["aux_loss"] for r in tail]))
        cos = [r["cosine"] for r in self.curve if "cosine" in r]
        if cos:
            out["cosine"] = float(np.mean(cos))
        gate = [r["shared_weight"] > 0 for r in self.curve if "shared_weight" in r]
        if gate:
            out["gate_open"] = float(np.mean(gate))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "config": asdict(self.config),
            "curve": self.curve,
            "episodes": self.episodes,
            "seconds": self.seconds,
        }
