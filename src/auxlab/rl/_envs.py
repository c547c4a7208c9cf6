"""Environments for the recurrent agent: flat float observations and a small vector of envs.

Observations become one float vector per step: discrete ones one-hot, tuples and
multi-discretes concatenated one-hots, boxes as floats, and MiniGrid's 7x7x3 egocentric
image one-hot per cell (object, colour, state). ``SyncEnvs`` steps several copies in one
process and resets an environment on the step it ends (the observation returned is then the
new episode's first; the finished episode's return, length and success are reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from auxlab._optional import require

__all__ = ["EpisodeEnd", "SyncEnvs", "make_env", "obs_encoder"]

# MiniGrid's cell encoding: object index (11 kinds), colour (6), state (3).
_MINIGRID_SIZES = (11, 6, 3)


def obs_encoder(space: Any) -> tuple[int, Callable[[Any], np.ndarray]]:
    """A function mapping an observation of ``space`` to a flat float32 vector, and its size.

    Raises:
        TypeError: For spaces it cannot encode (text, graphs, dicts), naming the space.
    """
    gym = require("gymnasium", "rl", "reinforcement learning")
    spaces = gym.spaces
    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)

        def one_hot(x: Any) -> np.ndarray:
            out = np.zeros(n, np.float32)
            out[int(x) - start] = 1.0
            return out

        return n, one_hot
    if isinstance(space, spaces.MultiDiscrete):
        sizes = [int(v) for v in np.asarray(space.nvec).ravel()]
        offsets = np.cumsum([0, *sizes[:-1]])
        total = int(sum(sizes))

        def multi_hot(x: Any) -> np.ndarray:
            out = np.zeros(total, np.float32)
            out[offsets + np.asarray(x).ravel()] = 1.0
            return out

        return total, multi_hot
    if isinstance(space, spaces.MultiBinary):
        size = int(np.prod(space.shape))
        return size, lambda x: np.asarray(x, np.float32).ravel()
    if isinstance(space, spaces.Tuple):
        parts = [obs_encoder(s) for s in space.spaces]
        total = sum(size for size, _ in parts)
        fns = [fn for _, fn in parts]
        return total, lambda x: np.concatenate([fn(v) for fn, v in zip(fns, x, strict=True)])
    if isinstance(space, spaces.Box):
        if space.shape == (7, 7, 3) and space.dtype == np.uint8:
            # A MiniGrid egocentric image (ImgObsWrapper): one-hot per channel per cell.
            eye = [np.eye(n, dtype=np.float32) for n in _MINIGRID_SIZES]

            def cells(x: Any) -> np.ndarray:
                x = np.asarray(x)
                return np.concatenate(
                    [eye[c][np.minimum(x[..., c], n - 1)] for c, n in enumerate(_MINIGRID_SIZES)],
                    axis=-1,
                ).ravel()

            return 7 * 7 * sum(_MINIGRID_SIZES), cells
        size = int(np.prod(space.shape))
        return size, lambda x: np.asarray(x, np.float32).ravel()
    raise TypeError(
        f"cannot encode observations of space {space!r} as a flat vector; wrap the environment "
        "so that it returns Discrete, MultiDiscrete, MultiBinary, Tuple or Box observations"
    )


def _success_rule(env_id: str) -> Callable[[float, float, bool], bool] | None:
    """Whether an ended episode counts as a success, or None when the task defines none."""
    if env_id.startswith("MiniGrid-"):
        # MiniGrid pays 1 - 0.9 * steps / max_steps on reaching the goal, 0 otherwise.
        return lambda last_reward, ret, terminated: terminated and last_reward > 0
    if env_id.startswith("CartPole-"):
        # Balanced until the time limit (500 steps in v1): not terminated, truncated.
        return lambda last_reward, ret, terminated: not terminated
    return None


def make_env(env_id: str, seed: int | None = None) -> Any:
    """Build one environment by id: a Gymnasium id, ``MiniGrid-*`` or ``popgym-*``.

    MiniGrid environments are wrapped to return the egocentric image only (the mission
    string carries no information in the memory tasks). The extras ``rl`` provide
    Gymnasium, MiniGrid and POPGym.
    """
    gym = require("gymnasium", "rl", "reinforcement learning")
    if env_id.startswith("MiniGrid-"):
        require("minigrid", "rl", f"the MiniGrid environment {env_id}")
        from minigrid.wrappers import ImgObsWrapper

        env = ImgObsWrapper(gym.make(env_id))
    elif env_id.startswith("popgym-"):
        require("popgym", "rl", f"the POPGym environment {env_id}")
        env = gym.make(env_id)
    else:
        try:
            env = gym.make(env_id)
        except gym.error.Error as exc:
            raise ValueError(
                f"unknown environment {env_id!r} ({exc}); MiniGrid ids start with 'MiniGrid-' "
                "and POPGym ids with 'popgym-', e.g. popgym-RepeatPreviousEasy-v0"
            ) from None
    if seed is not None:
        env.action_space.seed(seed)
    return env


@dataclass(frozen=True)
class EpisodeEnd:
    """One finished episode: its environment slot, return, length and success (or None)."""

    env: int
    ret: float
    length: int
    success: bool | None


class SyncEnvs:
    """``n`` copies of an environment stepped in turn, reset on the step an episode ends.

    ``reset()`` returns ``(n, obs_dim)`` float32 observations; ``step(actions)`` returns
    ``(obs, rewards, dones, ends)`` where ``dones[k]`` says the episode of env ``k`` ended on
    this step (terminated or truncated), ``obs[k]`` is then the first observation of its next
    episode, and ``ends`` lists the finished episodes. Seeds: env ``k`` is reset with
    ``seed + k`` the first time and continues its own random stream after.
    """

    def __init__(self, env_id: str, n: int, seed: int = 0) -> None:
        if n < 1:
            raise ValueError(f"need at least one environment, got n={n}")
        self.env_id = env_id
        self.envs = [make_env(env_id, seed + k) for k in range(n)]
        self.seed = seed
        space = self.envs[0].observation_space
        self.obs_dim, self._encode = obs_encoder(space)
        gym = require("gymnasium", "rl", "reinforcement learning")
        action_space = self.envs[0].action_space
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(
                f"{env_id} has actions {action_space!r}; the recurrent agent acts in Discrete "
                "action spaces only"
            )
        self.n_actions = int(action_space.n)
        self._success = _success_rule(env_id)
        self._returns = np.zeros(n)
        self._lengths = np.zeros(n, dtype=np.int64)

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def reset(self) -> np.ndarray:
        obs = [env.reset(seed=self.seed + k)[0] for k, env in enumerate(self.envs)]
        self._returns[:] = 0
        self._lengths[:] = 0
        return np.stack([self._encode(o) for o in obs])

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[EpisodeEnd]]:
        n = len(self.envs)
        obs = np.empty((n, self.obs_dim), np.float32)
        rewards = np.empty(n, np.float32)
        dones = np.zeros(n, bool)
        ends: list[EpisodeEnd] = []
        for k, env in enumerate(self.envs):
            o, r, terminated, truncated, _ = env.step(int(actions[k]))
            r = float(r)
            rewards[k] = r
            self._returns[k] += r
            self._lengths[k] += 1
            if terminated or truncated:
                dones[k] = True
                success = None
                if self._success is not None:
                    success = bool(self._success(r, self._returns[k], bool(terminated)))
                ends.append(EpisodeEnd(k, float(self._returns[k]), int(self._lengths[k]), success))
                self._returns[k] = 0
                self._lengths[k] = 0
                o, _ = env.reset()
            obs[k] = self._encode(o)
        return obs, rewards, dones, ends

    def close(self) -> None:
        for env in self.envs:
            env.close()
