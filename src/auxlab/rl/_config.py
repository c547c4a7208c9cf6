"""What defines a reinforcement-learning run: :class:`PPOConfig`, and what it builds.

A config builds the auxiliary loss module (:func:`make_aux`) and the weighting strategy
(:func:`make_strategy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from auxlab.rl._agent import RecurrentActorCritic
from auxlab.rl._aux import TemporalDistance, TemporalOrder
from auxlab.weighting import FixedWeights, GradientCosine, RelativeWeights, Strategy, create

__all__ = ["AUX_TASKS", "PPOConfig", "make_aux", "make_strategy", "merge_config"]

AUX_TASKS = ("temporal-order", "temporal-distance")


@dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a training run (ours unless a reference is named).

    PPO (the reference implementations' defaults except three of ours: ``lr`` 1e-3 instead of
    2.5e-4, because with 2.5e-4 the agent had not left MiniGrid-MemoryS7's 50 % plateau after
    600k steps while 1e-3 reached 100 % success by 400k; 16 environments x 64 steps and 2
    minibatches instead of 8 x 128 and 4, which replays 4x fewer sequential GRU steps per
    update on a CPU): ``num_envs`` environments, ``num_steps`` per rollout, ``total_steps``
    environment steps in all, ``lr`` (Adam, eps 1e-5, linearly annealed to 0 when
    ``anneal_lr``), ``gamma``,
    ``gae_lambda``, ``num_minibatches`` (of whole environments), ``update_epochs``,
    ``clip_coef``, ``clip_vloss``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``, and
    ``norm_reward`` (divide rewards by a running standard deviation of the discounted
    return, so the value loss of a shared network does not swamp the policy gradient under
    global gradient clipping; logged returns stay raw).

    Network: ``hidden`` (encoder width = embedding size), ``memory`` (GRU size),
    ``layers`` (encoder layers).

    Auxiliary task: ``aux`` (None, ``"temporal-order"`` or ``"temporal-distance"``), its
    ``weight`` under ``strategy`` (``"fixed"``: the loss times ``weight``; ``"gated"``:
    gradient-cosine gating of Du et al. with base weight ``weight``; ``"relative"``: the
    auxiliary gradient scaled to ``weight`` times the PPO gradient's norm on the shared
    block; or any registered strategy name), ``aux_hidden``, ``pairs_per_step``, ``window``,
    ``max_pairs`` per minibatch, ``use_memory``, ``detach_memory`` and ``aux_encoder``
    (``"shared"``: the classifier reads the policy's encoder; ``"separate"``: its own).
    ``balancer_every`` refreshes a gradient-based strategy's weights every n updates. The
    default ``weight`` 1 is ours, from docs/rl.md's benchmark: on POPGym RepeatPreviousEasy
    0.1 changed nothing measurable and 1 helped significantly; on MiniGrid-MemoryS7 neither
    changed anything at 300k steps.
    """

    total_steps: int = 100_000
    num_envs: int = 16
    num_steps: int = 64
    lr: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 2
    update_epochs: int = 4
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_reward: bool = True
    hidden: int = 128
    memory: int = 128
    layers: int = 1
    aux: str | None = None
    weight: float = 1.0
    strategy: str = "fixed"
    aux_hidden: int = 64
    pairs_per_step: int = 1
    window: int | None = None
    max_pairs: int | None = 1024
    use_memory: bool = True
    detach_memory: bool = False
    aux_encoder: str = "shared"
    balancer_every: int = 1

    def __post_init__(self) -> None:
        for name in ("total_steps", "num_envs", "num_steps", "num_minibatches", "update_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer")
        if self.num_envs % self.num_minibatches:
            raise ValueError(
                f"num_envs ({self.num_envs}) must be a multiple of num_minibatches "
                f"({self.num_minibatches}): minibatches are made of whole environments"
            )
        if self.aux is not None and self.aux not in AUX_TASKS:
            raise ValueError(f"unknown auxiliary task {self.aux!r}; choose one of {AUX_TASKS}")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight must be a finite number >= 0, got {self.weight}")
        if self.aux_encoder not in ("shared", "separate"):
            raise ValueError(
                f"aux_encoder must be 'shared' or 'separate', got {self.aux_encoder!r}"
            )
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("gamma and gae_lambda must lie in [0, 1]")

    @property
    def label(self) -> str:
        """A short name of the auxiliary setting, e.g. ``none`` or ``temporal-order fixed 0.1``."""
        if self.aux is None:
            return "none"
        return f"{self.aux} {self.strategy} {self.weight:g}"


def merge_config(base: PPOConfig, values: Mapping[str, Any]) -> PPOConfig:
    """``base`` with ``values`` replacing fields; unknown names are an error naming them."""
    known = set(PPOConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown PPOConfig field(s) {unknown}; known: {sorted(known)}")
    return replace(base, **values)


def make_aux(config: PPOConfig, obs_dim: int, agent: RecurrentActorCritic) -> nn.Module | None:
    """The auxiliary loss module a config asks for (or None)."""
    if config.aux is None:
        return None
    encoder = None
    if config.aux_encoder == "separate":
        encoder = nn.Sequential(nn.Linear(obs_dim, agent.embed_dim), nn.ReLU())
    common: dict[str, Any] = {
        "embed_dim": agent.embed_dim,
        "memory_dim": agent.memory_dim,
        "hidden": config.aux_hidden,
        "pairs_per_step": config.pairs_per_step,
        "use_memory": config.use_memory,
        "detach_memory": config.detach_memory,
        "encoder": encoder,
        "max_pairs": config.max_pairs,
    }
    if config.aux == "temporal-order":
        return TemporalOrder(window=config.window, **common)
    return TemporalDistance(**common)


def make_strategy(config: PPOConfig) -> Strategy:
    """The weighting strategy for ``{"main": ppo, aux: aux_loss}`` a config asks for."""
    if config.aux is None:
        return FixedWeights({})
    aux = config.aux
    if config.strategy == "fixed":
        return FixedWeights({aux: config.weight})
    if config.strategy == "gated":
        return GradientCosine(mode="gate", weights={aux: config.weight})
    if config.strategy == "relative":
        return RelativeWeights({aux: config.weight})
    try:
        return create(config.strategy)
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"unknown strategy {config.strategy!r} for the auxiliary loss: use fixed, gated, "
            f"relative or a registered strategy name ({exc})"
        ) from None
