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

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from auxlab.balancer import Balancer
from auxlab.rl._agent import RecurrentActorCritic
from auxlab.rl._config import PPOConfig, make_aux, make_strategy
from auxlab.rl._envs import SyncEnvs
from auxlab.rl._record import RLRun
from auxlab.rl._rollout import Collector, ReturnScaler, compute_gae

__all__ = ["train"]


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
    scaler = ReturnScaler(N, config.gamma) if config.norm_reward else None
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
