"""Acting in the environments: rollouts, reward scaling, advantages.

:class:`Collector` steps the agent with its memory carried across rollouts,
:class:`ReturnScaler` scales rewards, :func:`compute_gae` estimates advantages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from auxlab.rl._agent import RecurrentActorCritic
from auxlab.rl._envs import EpisodeEnd, SyncEnvs

__all__ = ["Collector", "ReturnScaler", "Rollout", "compute_gae"]


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


class ReturnScaler:
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
