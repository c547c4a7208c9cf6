"""Recurrent PPO with an auxiliary loss entering through the Balancer.

The algorithm follows the common single-file reference implementations of PPO with a
recurrent policy (CleanRL's ``ppo_atari_lstm``; Huang et al., "The 37 Implementation Details
of Proximal Policy Optimization", ICLR blog track 2022): several environments stepped in
sync, rollouts of ``num_steps``, GAE(lambda), advantages normalised per minibatch, clipped
policy and value losses, an entropy bonus, global gradient clipping, a linearly annealed
learning rate, and minibatches made of whole environments so each sequence is replayed from
its stored initial memory with the episode starts resetting it. Written for this project;
the choices, not the code, follow those references.

The auxiliary loss is computed on the same replayed minibatch sequences (the encoder's
embeddings and the memory after each step), and ``{"main": ppo_loss, aux: aux_loss}`` is
handed to :class:`auxlab.Balancer`, so every weighting strategy applies to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from auxlab.balancer import Balancer
from auxlab.rl._agent import RecurrentActorCritic
from auxlab.rl._aux import TemporalDistance, TemporalOrder
from auxlab.rl._envs import EpisodeEnd, SyncEnvs
from auxlab.weighting import FixedWeights, GradientCosine, RelativeWeights, Strategy, create

__all__ = [
    "AUX_TASKS",
    "Collector",
    "PPOConfig",
    "RLRun",
    "Rollout",
    "compute_gae",
    "make_aux",
    "make_strategy",
    "merge_config",
    "train",
]

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


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    starts: torch.Tensor,
    next_value: torch.Tensor,
    next_start: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a ``(T, B)`` rollout.

    ``starts[t]`` marks a step that begins an episode (so step ``t - 1`` ended one), and
    ``next_start`` the same for the step after the rollout, whose value is ``next_value``.
    An ended episode does not bootstrap (truncations are treated as ends, as in the
    reference implementations).

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.

    Example:
        >>> r = torch.tensor([[1.0], [1.0]]); v = torch.tensor([[0.5], [0.5]])
        >>> s = torch.tensor([[False], [False]])
        >>> adv, _ = compute_gae(r, v, s, torch.tensor([2.0]), torch.tensor([True]), 0.9, 1.0)
        >>> [round(x, 4) for x in adv[:, 0].tolist()]
        [1.4, 0.5]
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        if t == T - 1:
            cont = 1.0 - next_start.to(rewards.dtype)
            nxt = next_value
        else:
            cont = 1.0 - starts[t + 1].to(rewards.dtype)
            nxt = values[t + 1]
        delta = rewards[t] + gamma * nxt * cont - values[t]
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv, adv + values


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


@dataclass
class Rollout:
    """One rollout of ``T`` steps in ``N`` environments (time-major tensors).

    ``starts[t]`` is true where step ``t`` begins an episode; ``rewards`` are as used for
    learning (scaled when ``norm_reward``); ``init_state`` is the memory before step 0;
    ``next_value``/``next_start`` describe the step after the rollout; ``ends`` lists
    ``(environment steps so far, EpisodeEnd)`` for the episodes that ended.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    rewards: torch.Tensor
    starts: torch.Tensor
    values: torch.Tensor
    init_state: torch.Tensor
    next_value: torch.Tensor
    next_start: torch.Tensor
    ends: list[tuple[int, EpisodeEnd]]


class Collector:
    """Steps the agent in the environments ``T`` steps at a time, carrying memory across."""

    def __init__(
        self,
        agent: RecurrentActorCritic,
        envs: SyncEnvs,
        num_steps: int,
        scaler: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.agent, self.envs, self.num_steps, self.scaler = agent, envs, num_steps, scaler
        n = envs.num_envs
        self.next_obs = torch.from_numpy(envs.reset())
        self.next_start = torch.ones(n, dtype=torch.bool)
        self.state = agent.initial_state(n)
        self.steps = 0

    @torch.no_grad()
    def collect(self) -> Rollout:
        """Act for ``num_steps`` steps with actions sampled from the policy."""
        T, N = self.num_steps, self.envs.num_envs
        obs_buf = torch.zeros(T, N, self.envs.obs_dim)
        act_buf = torch.zeros(T, N, dtype=torch.long)
        logp_buf = torch.zeros(T, N)
        rew_buf = torch.zeros(T, N)
        start_buf = torch.zeros(T, N, dtype=torch.bool)
        val_buf = torch.zeros(T, N)
        init_state = self.state.clone()
        ends: list[tuple[int, EpisodeEnd]] = []
        for t in range(T):
            obs_buf[t] = self.next_obs
            start_buf[t] = self.next_start
            logits, value, self.state = self.agent.step(self.next_obs, self.state, self.next_start)
            dist = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            act_buf[t] = action
            logp_buf[t] = dist.log_prob(action)
            val_buf[t] = value
            obs, rewards, dones, done_eps = self.envs.step(action.numpy())
            self.steps += N
            if self.scaler is not None:
                rewards = self.scaler(rewards, dones)
            rew_buf[t] = torch.from_numpy(rewards)
            self.next_obs = torch.from_numpy(obs)
            self.next_start = torch.from_numpy(dones)
            ends.extend((self.steps, e) for e in done_eps)
        _, next_value, _ = self.agent.step(self.next_obs, self.state, self.next_start)
        return Rollout(
            obs_buf, act_buf, logp_buf, rew_buf, start_buf, val_buf, init_state,
            next_value, self.next_start.clone(), ends,
        )  # fmt: skip


def train(
    env_id: str,
    config: PPOConfig | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    **overrides: Any,
) -> RLRun:
    """Train the recurrent agent on ``env_id`` and return the run's record.

    Args:
        env_id: ``MiniGrid-*``, ``popgym-*`` or any Gymnasium id with discrete actions.
        config: The :class:`PPOConfig` (``overrides`` replace its fields).
        seed: Seeds torch, the environments and the pair sampling.
        progress: Called with the number of new environment steps after each rollout.
        **overrides: Fields of :class:`PPOConfig` to replace.
    """
    config = replace(config or PPOConfig(), **overrides)
    # Seeded inside a forked RNG state: the caller's global torch RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train(env_id, config, seed, progress)


def _train(
    env_id: str, config: PPOConfig, seed: int, progress: Callable[[int], None] | None
) -> RLRun:
    gen = torch.Generator().manual_seed(seed + 10_007)
    envs = SyncEnvs(env_id, config.num_envs, seed=seed * 1000)
    agent = RecurrentActorCritic(
        envs.obs_dim, envs.n_actions, config.hidden, config.memory, config.layers
    )
    aux = make_aux(config, envs.obs_dim, agent)
    tasks = ["main"] + ([config.aux] if config.aux else [])
    balancer = Balancer(
        make_strategy(config),
        shared=agent.shared_parameters(),
        main="main",
        tasks=tasks,
        every=config.balancer_every,
    )
    params = [
        *agent.parameters(),
        *(aux.parameters() if aux is not None else []),
        *balancer.parameters(),
    ]
    optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-5)

    T, N = config.num_steps, config.num_envs
    n_updates = max(1, config.total_steps // (T * N))
    run = RLRun(env_id, seed, replace(config, total_steps=n_updates * T * N))
    started = time.perf_counter()
    scaler = _ReturnScaler(N, config.gamma) if config.norm_reward else None
    collector = Collector(agent, envs, T, scaler)
    last_stats: dict[str, float] = {}
    try:
        for update in range(n_updates):
            if config.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * (1.0 - update / n_updates)
            ro = collector.collect()
            ended: list[tuple[float, float]] = []
            for at, e in ro.ends:
                succ = float("nan") if e.success is None else float(e.success)
                run.episodes.append((at, e.ret, e.length, succ))
                ended.append((e.ret, succ))
            adv, returns = compute_gae(
                ro.rewards, ro.values, ro.starts, ro.next_value, ro.next_start,
                config.gamma, config.gae_lambda,
            )  # fmt: skip
            step = collector.steps
            last_stats = _update(
                config, agent, aux, balancer, optimizer, gen, ro.init_state,
                ro.obs, ro.actions, ro.logp, ro.starts, ro.values, adv, returns,
            )  # fmt: skip
            rec = {
                "step": float(step),
                "episodes": float(len(ended)),
                "return": float(np.mean([e[0] for e in ended])) if ended else float("nan"),
                "success": float(np.mean([e[1] for e in ended])) if ended else float("nan"),
                **last_stats,
            }
            run.curve.append(rec)
            if progress is not None:
                progress(T * N)
    finally:
        envs.close()
    run.seconds = time.perf_counter() - started
    return run


class _ReturnScaler:
    """Scale rewards by the running standard deviation of each env's discounted return.

    The running variance starts at 1 with a tiny count (as the reference implementations'
    running mean/std does), so the first rewards are not divided by a near-zero spread.
    """

    def __init__(self, n: int, gamma: float) -> None:
        self.gamma = gamma
        self.ret = np.zeros(n)
        self.count, self.mean, self.var = 1e-4, 0.0, 1.0

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rewards
        # Chan et al.'s parallel update of the running mean and variance with this batch.
        n, mean, var = len(self.ret), float(self.ret.mean()), float(self.ret.var())
        total = self.count + n
        delta = mean - self.mean
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var, self.count = m2 / total, total
        self.ret[dones] = 0.0
        return (rewards / math.sqrt(self.var + 1e-8)).astype(np.float32)


def _update(
    config: PPOConfig,
    agent: RecurrentActorCritic,
    aux: nn.Module | None,
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    init_state: torch.Tensor,
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    starts: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
) -> dict[str, float]:
    """PPO epochs over minibatches of whole environments; returns the last minibatch's stats."""
    N = config.num_envs
    per_batch = N // config.num_minibatches
    params = [p for g in optimizer.param_groups for p in g["params"]]
    stats: dict[str, float] = {}
    aux_name = config.aux
    for _ in range(config.update_epochs):
        order = torch.randperm(N, generator=gen)
        for k in range(0, N, per_batch):
            envs = order[k : k + per_batch]
            logits, values, emb, mem = agent.unroll(obs[:, envs], init_state[envs], starts[:, envs])
            dist = torch.distributions.Categorical(logits=logits)
            logp = dist.log_prob(actions[:, envs])
            ratio = (logp - old_logp[:, envs]).exp()
            adv = advantages[:, envs]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(
                -adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            ).mean()
            ret = returns[:, envs]
            if config.clip_vloss:
                old_v = old_values[:, envs]
                clipped = old_v + (values - old_v).clamp(-config.clip_coef, config.clip_coef)
                v_loss = 0.5 * torch.max((values - ret) ** 2, (clipped - ret) ** 2).mean()
            else:
                v_loss = 0.5 * ((values - ret) ** 2).mean()
            entropy = dist.entropy().mean()
            main = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss
            losses: dict[str, torch.Tensor] = {"main": main}
            if aux is not None and aux_name is not None:
                source = obs[:, envs] if config.aux_encoder == "separate" else emb
                losses[aux_name] = aux(source, starts[:, envs], mem, generator=gen)
            optimizer.zero_grad(set_to_none=True)
            record = balancer.backward(losses)
            nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
    stats = {
        "pg_loss": float(pg_loss.detach()),
        "v_loss": float(v_loss.detach()),
        "entropy": float(entropy.detach()),
    }
    if aux is not None and aux_name is not None:
        stats["aux_loss"] = record.losses[aux_name]
        stats["aux_accuracy"] = float(getattr(aux, "last_accuracy", float("nan")))
        stats["weight"] = record.weights[aux_name]
        if record.shared_weights is not None:
            stats["shared_weight"] = record.shared_weights[aux_name]
        if record.cosines is not None:
            stats["cosine"] = record.cosines[aux_name]
    return stats


def merge_config(base: PPOConfig, values: Mapping[str, Any]) -> PPOConfig:
    """``base`` with ``values`` replacing fields; unknown names are an error naming them."""
    known = set(PPOConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown PPOConfig field(s) {unknown}; known: {sorted(known)}")
    return replace(base, **values)
