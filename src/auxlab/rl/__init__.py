"""Reinforcement learning with self-supervised auxiliary losses on the agent's trajectory.

* :class:`TemporalOrder`: are two states of the current episode in temporal order? (Ahmed et
  al. 2021; every detail ours, see its docstring) and :class:`TemporalDistance` (Aytar et al.
  2018), loss modules usable from any agent's code;
* :class:`RecurrentActorCritic` and :func:`train`: a compact recurrent PPO whose loss and the
  auxiliary loss go through :class:`auxlab.Balancer`, so every weighting strategy applies;
* :func:`make_env`, :class:`SyncEnvs`: MiniGrid, POPGym and Gymnasium environments as flat
  observations (extra ``rl``).
"""

from auxlab.rl._agent import RecurrentActorCritic
from auxlab.rl._aux import (
    AYTAR_BINS,
    TemporalDistance,
    TemporalOrder,
    episode_offsets,
    sample_pairs,
)
from auxlab.rl._config import AUX_TASKS, PPOConfig, make_aux, make_strategy, merge_config
from auxlab.rl._envs import EpisodeEnd, SyncEnvs, make_env, obs_encoder
from auxlab.rl._ppo import train
from auxlab.rl._record import RLRun
from auxlab.rl._rollout import Collector, Rollout, compute_gae

__all__ = [
    "AUX_TASKS",
    "AYTAR_BINS",
    "Collector",
    "EpisodeEnd",
    "PPOConfig",
    "RLRun",
    "RecurrentActorCritic",
    "Rollout",
    "SyncEnvs",
    "TemporalDistance",
    "TemporalOrder",
    "compute_gae",
    "episode_offsets",
    "make_aux",
    "make_env",
    "make_strategy",
    "merge_config",
    "obs_encoder",
    "sample_pairs",
    "train",
]
