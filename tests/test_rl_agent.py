"""The recurrent agent in environments: rollouts, advantages, training, the command, statistics."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

from auxlab.cli import main  # noqa: E402
from auxlab.rl import (  # noqa: E402
    Collector,
    PPOConfig,
    RecurrentActorCritic,
    SyncEnvs,
    compute_gae,
    make_env,
    merge_config,
    obs_encoder,
    train,
)
from auxlab.rl._cli import mean_line, parse_overrides  # noqa: E402
from auxlab.rl._compare import compare, mean_ci, permutation_p, welch_p  # noqa: E402

CHAIN_ID = "auxlab-test/Chain-v0"


class Chain(gym.Env):  # type: ignore[misc]
    """Three steps whatever the action: observations 0, 1, 2, reward 1 on the third step."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Discrete(3)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.pos = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        self.pos += 1
        done = self.pos == 3
        return min(self.pos, 2), float(done), done, False, {}


if CHAIN_ID not in gym.registry:
    gym.register(CHAIN_ID, entry_point=Chain)


def test_rollout_and_advantages_by_hand() -> None:
    torch.manual_seed(0)
    envs = SyncEnvs(CHAIN_ID, 2, seed=0)
    agent = RecurrentActorCritic(envs.obs_dim, envs.n_actions, hidden=4, memory=3)
    ro = Collector(agent, envs, num_steps=5).collect()
    # Each env: steps 0-2 are one episode (reward on the third), step 3 starts the next.
    assert ro.starts[:, 0].tolist() == [True, False, False, True, False]
    assert ro.starts.T.tolist()[1] == ro.starts.T.tolist()[0]
    assert ro.rewards[:, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert ro.obs[:, 0].argmax(dim=1).tolist() == [0, 1, 2, 0, 1]
    assert [(at, e.env, e.ret, e.length) for at, e in ro.ends] == [(6, 0, 1.0, 3), (6, 1, 1.0, 3)]
    assert not bool(ro.next_start[0])

    gamma, lam = 0.9, 0.5
    adv, ret = compute_gae(
        ro.rewards, ro.values, ro.starts, ro.next_value, ro.next_start, gamma, lam
    )
    v, r, nv = ro.values[:, 0].tolist(), ro.rewards[:, 0].tolist(), float(ro.next_value[0])
    # Episode one (steps 0-2) ends at step 2: no bootstrap from step 3.
    d = [r[0] + gamma * v[1] - v[0], r[1] + gamma * v[2] - v[1], r[2] - v[2]]
    a2 = d[2]
    a1 = d[1] + gamma * lam * a2
    a0 = d[0] + gamma * lam * a1
    # Episode two (steps 3-4) continues past the rollout: bootstrap from next_value.
    e4 = r[4] + gamma * nv - v[4]
    e3 = r[3] + gamma * v[4] - v[3]
    a4 = e4
    a3 = e3 + gamma * lam * a4
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, a2, a3, a4], abs=1e-6)
    assert ret[:, 0].tolist() == pytest.approx(
        [a + b for a, b in zip(adv[:, 0].tolist(), v, strict=False)]
    )
    envs.close()


def test_memory_carries_across_rollouts_and_resets_at_starts() -> None:
    torch.manual_seed(0)
    envs = SyncEnvs(CHAIN_ID, 1, seed=0)
    agent = RecurrentActorCritic(envs.obs_dim, envs.n_actions, hidden=4, memory=3)
    col = Collector(agent, envs, num_steps=2)
    first = col.collect()
    second = col.collect()
    # The second rollout starts from the memory the first left, mid-episode.
    assert not torch.equal(second.init_state, agent.initial_state(1))
    _, _, _, mem = agent.unroll(first.obs, first.init_state, first.starts)
    assert torch.allclose(second.init_state, mem[-1])


def test_obs_encoder_spaces() -> None:
    S = gym.spaces
    n, f = obs_encoder(S.Discrete(3, start=1))
    assert n == 3
    assert f(2).tolist() == [0, 1, 0]
    n, f = obs_encoder(S.MultiDiscrete([2, 3]))
    assert n == 5
    assert f(np.array([1, 2])).tolist() == [0, 1, 0, 0, 1]
    n, f = obs_encoder(S.Tuple((S.Discrete(2), S.Box(-1, 1, (2,)))))
    assert n == 4
    assert f((1, np.array([0.5, -0.5]))).tolist() == [0, 1, 0.5, -0.5]
    n, f = obs_encoder(S.Box(0, 255, (7, 7, 3), np.uint8))
    assert n == 7 * 7 * 20
    img = np.zeros((7, 7, 3), np.uint8)
    img[0, 0] = (2, 5, 1)
    v = f(img)
    assert v.sum() == 7 * 7 * 3  # one hot per channel per cell
    # Cell-major: cell (0, 0) holds object 0..10, colour 11..16, state 17..19.
    assert v[:20].nonzero()[0].tolist() == [2, 11 + 5, 17 + 1]
    assert v[20:40].nonzero()[0].tolist() == [0, 11, 17]
    with pytest.raises(TypeError, match="cannot encode"):
        obs_encoder(S.Text(5))


def test_unknown_environment_is_named() -> None:
    with pytest.raises(ValueError, match="unknown environment 'NoSuchEnv-v9'"):
        make_env("NoSuchEnv-v9")


def test_continuous_actions_are_refused() -> None:
    with pytest.raises(TypeError, match="Discrete action spaces only"):
        SyncEnvs("Pendulum-v1", 1)


def test_minigrid_and_popgym_build() -> None:
    pytest.importorskip("minigrid")
    pytest.importorskip("popgym")
    envs = SyncEnvs("MiniGrid-MemoryS7-v0", 2, seed=0)
    assert envs.obs_dim == 980
    assert envs.n_actions == 7
    assert envs.reset().shape == (2, 980)
    envs.close()
    envs = SyncEnvs("popgym-RepeatPreviousEasy-v0", 2, seed=0)
    assert envs.obs_dim == 4
    assert envs.reset().shape == (2, 4)
    envs.close()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="multiple of num_minibatches"):
        PPOConfig(num_envs=6, num_minibatches=4)
    with pytest.raises(ValueError, match="unknown auxiliary task 'order'"):
        PPOConfig(aux="order")
    with pytest.raises(ValueError, match="weight must be"):
        PPOConfig(weight=float("nan"))
    with pytest.raises(ValueError, match=r"unknown PPOConfig field\(s\) \['lr_'\]"):
        merge_config(PPOConfig(), {"lr_": 1.0})
    assert parse_overrides(["lr=0.001", "window=none", "clip-vloss=false", "max_pairs=64"]) == {
        "lr": 0.001,
        "window": None,
        "clip_vloss": False,
        "max_pairs": 64,
    }
    with pytest.raises(ValueError, match="unknown PPOConfig field"):
        parse_overrides(["learning_rate=1"])
    with pytest.raises(ValueError, match="expected a value like"):
        parse_overrides(["num_envs=many"])


def _tiny(**kw: Any) -> PPOConfig:
    base = {"total_steps": 256, "num_envs": 4, "num_steps": 16, "num_minibatches": 2}
    base.update(update_epochs=1, hidden=16, memory=16, aux_hidden=8)
    base.update(kw)
    return PPOConfig(**base)


@pytest.mark.parametrize(
    ("aux", "strategy"),
    [(None, "fixed"), ("temporal-order", "fixed"), ("temporal-order", "gated"),
     ("temporal-order", "relative"), ("temporal-distance", "fixed")],
)  # fmt: skip
def test_training_records_the_auxiliary_loss(aux: str | None, strategy: str) -> None:
    run = train(CHAIN_ID, _tiny(aux=aux, strategy=strategy, weight=0.5), seed=0)
    assert run.config.total_steps == 256
    assert len(run.curve) == 4
    assert [rec["step"] for rec in run.curve] == [64.0, 128.0, 192.0, 256.0]
    assert len(run.episodes) == 4 * (64 // 3)  # 64 steps per env, episodes of 3 steps
    assert all(e[1] == 1.0 for e in run.episodes)
    last = run.curve[-1]
    if aux is None:
        assert "aux_loss" not in last
    else:
        assert math.isfinite(last["aux_loss"])
        assert last["aux_loss"] > 0
        if strategy == "relative":
            # The weight that scales the auxiliary gradient to 0.5 x the PPO gradient's norm.
            assert math.isfinite(last["weight"])
            assert last["weight"] > 0
        else:
            assert last["weight"] == 0.5
    if strategy == "gated":
        assert last["shared_weight"] in (0.0, 0.5)
        assert -1 <= last["cosine"] <= 1
    s = run.summary()
    assert s["final_return"] == 1.0
    assert math.isnan(s["final_success"])


def test_training_is_seeded() -> None:
    a = train(CHAIN_ID, _tiny(aux="temporal-order"), seed=3)
    b = train(CHAIN_ID, _tiny(aux="temporal-order"), seed=3)
    assert [r["aux_loss"] for r in a.curve] == [r["aux_loss"] for r in b.curve]


def test_cartpole_learns_a_little() -> None:
    # 16k steps: returns rise well above a random policy's ~22 (a learning check, not the
    # solve check, which is a benchmark: docs/rl.md).
    config = PPOConfig(total_steps=16_384, num_envs=8, num_steps=64, lr=1e-3)
    run = train("CartPole-v1", config, seed=0)
    first = np.mean([e[1] for e in run.episodes[:50]])
    assert first < 30
    assert run.final()["return"] > 4 * first


def test_cli_quick_smoke(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("minigrid")
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    rc = main(
        ["rl", "--quick", "--seeds", "2", "--out", str(out), "--json", str(tmp_path / "r.json"),
         "--no-progress", "--strategy", "gated"]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "temporal-order gated 1" in text
    assert "final_return" in text
    records = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in records] == [0, 1]
    assert records[0]["env"] == "MiniGrid-MemoryS7-v0"
    assert records[0]["total_steps"] == 512
    for name in ("curves.png", "success.png"):
        assert (out / name).stat().st_size > 5_000
    full = json.loads((out / "runs.json").read_text())
    assert len(full[0]["curve"]) == 4


def test_one_seed_has_no_interval(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # `auxlab rl --quick` runs one seed; it used to print "95 % CI nan .. nan".
    before = torch.get_num_threads()
    try:
        rc = main(
            ["rl", "--quick", "--env", "CartPole-v1", "--out", str(tmp_path), "--no-plot",
             "--no-progress", "--threads", "1"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "torch threads: 1 (as asked)"
    summary = [line for line in lines if line.startswith(("final_return", "auc_return"))]
    assert len(summary) == 2
    for line in summary:
        assert "no confidence interval: it needs 2 seeds or more" in line
        assert "nan" not in line
    assert mean_line("x", [1.0, 2.0, 3.0]) == "x: 2.000 (95 % CI -0.484 .. 4.484) over 3 seeds"


def test_cli_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rl", "--quick", "--set", "bogus=1", "--no-plot"]) == 2
    assert "unknown PPOConfig field" in capsys.readouterr().err
    assert main(["rl", "--quick", "--strategy", "nonsense", "--no-plot", "--no-progress"]) == 2
    assert "unknown strategy 'nonsense'" in capsys.readouterr().err
    assert main(["rl", "--quick", "--env", "Nope-v0", "--no-plot", "--no-progress"]) == 2
    assert "unknown environment 'Nope-v0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--weight", "-1"])


def test_statistics_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a = [0.61, 0.72, 0.55, 0.68, 0.70]
    b = [0.50, 0.58, 0.49, 0.62, 0.52]
    _m, lo, hi = mean_ci(a)
    ref = stats.t.interval(0.95, len(a) - 1, loc=np.mean(a), scale=stats.sem(a))
    assert (lo, hi) == pytest.approx(ref, rel=1e-6)
    # Welch with integer df (ours floors it) vs scipy's fractional df: close, not equal.
    assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    exact = stats.permutation_test(
        (a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
        n_resamples=np.inf, alternative="two-sided",
    ).pvalue  # fmt: skip
    assert permutation_p(a, b) == pytest.approx(exact, abs=1e-9)
    out = compare(a, b)
    assert out["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["low"] < out["diff"] < out["high"]
    # Identical groups: no evidence of a difference.
    assert permutation_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0


def test_training_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(CHAIN_ID, _tiny(aux="temporal-order"), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_summary_reports_the_auxiliary_task() -> None:
    s = train(CHAIN_ID, _tiny(aux="temporal-order", strategy="gated", weight=0.5), seed=1).summary()
    assert 0.0 <= s["aux_accuracy"] <= 1.0
    assert s["aux_loss"] > 0
    assert -1.0 <= s["cosine"] <= 1.0
    assert 0.0 <= s["gate_open"] <= 1.0
    plain = train(CHAIN_ID, _tiny(), seed=1).summary()
    assert "aux_accuracy" not in plain
    assert "gate_open" not in plain


def test_default_step_budgets() -> None:
    from auxlab.rl._cli import default_steps

    assert default_steps("MiniGrid-MemoryS7-v0") == 400_000
    assert default_steps("popgym-RepeatPreviousEasy-v0") == 150_000
    assert default_steps("CartPole-v1") == 100_000
