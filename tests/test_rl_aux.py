"""The temporal-order and temporal-distance losses, pair sampling and GAE (no environment)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auxlab import Balancer
from auxlab.rl import (
    AYTAR_BINS,
    RecurrentActorCritic,
    TemporalDistance,
    TemporalOrder,
    compute_gae,
    episode_offsets,
    sample_pairs,
)
from auxlab.weighting import FixedWeights


def _episode_ids(starts: torch.Tensor) -> torch.Tensor:
    """Number every (segment-local) episode of each column: id changes at each start."""
    s = starts.clone()
    s[0] = True
    return torch.cumsum(s.long(), dim=0)


def test_episode_offsets_by_hand() -> None:
    starts = torch.tensor([[False, True], [False, False], [True, True], [False, False]])
    assert episode_offsets(starts).tolist() == [[0, 0], [1, 1], [0, 0], [1, 1]]


@pytest.mark.parametrize("window", [None, 1, 3])
def test_pairs_stay_inside_the_current_episode(window: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    starts = torch.rand(60, 5, generator=g) < 0.15
    anchor, env, i, j = sample_pairs(starts, pairs_per_step=3, window=window, generator=g)
    assert len(anchor) > 0
    ids = _episode_ids(starts)
    assert torch.all(i < j)
    assert torch.all(j <= anchor)
    # Same episode as the anchor: no start strictly after i up to the anchor.
    assert torch.equal(ids[i, env], ids[anchor, env])
    assert torch.equal(ids[j, env], ids[anchor, env])
    if window is not None:
        assert torch.all(j - i <= window)


def test_pairs_cover_every_pair_uniformly() -> None:
    # One episode of 4 steps; anchor t = 3 has 6 possible pairs, each should appear ~1/6.
    starts = torch.tensor([[True], [False], [False], [False]])
    g = torch.Generator().manual_seed(1)
    anchor, _, i, j = sample_pairs(starts, pairs_per_step=6000, generator=g)
    at3 = anchor == 3
    pairs = torch.stack([i[at3], j[at3]], dim=1)
    uniq, counts = torch.unique(pairs, dim=0, return_counts=True)
    assert uniq.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    freq = counts.float() / counts.sum()
    assert torch.all((freq - 1 / 6).abs() < 0.02), freq


def test_no_pair_for_an_anchor_alone_in_its_episode() -> None:
    starts = torch.ones(5, 2, dtype=torch.bool)  # every step starts an episode
    anchor, *_ = sample_pairs(starts)
    assert anchor.numel() == 0
    loss = TemporalOrder(4, use_memory=False)(torch.randn(5, 2, 4), starts)
    assert loss.item() == 0.0
    assert loss.requires_grad


def test_labels_are_balanced_and_swaps_reverse_order() -> None:
    torch.manual_seed(0)
    T, B, D = 50, 8, 3
    # Embedding = the time index, so the classifier input reveals the pair's order.
    emb = torch.arange(T, dtype=torch.float32)[:, None, None].expand(T, B, D).clone()
    starts = torch.zeros(T, B, dtype=torch.bool)
    loss = TemporalOrder(D, use_memory=False, pairs_per_step=4)
    seen: dict[str, torch.Tensor] = {}

    def grab(_mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen["x"] = args[0]

    loss.classifier.register_forward_pre_hook(grab)
    g = torch.Generator().manual_seed(3)
    loss(emb, starts, generator=g)
    x = seen["x"]
    first, second = x[:, 0], x[:, D]
    in_order = (first < second).float()
    assert len(x) == 4 * (T - 1) * B
    assert abs(in_order.mean().item() - 0.5) < 0.05
    assert torch.all(first != second)


def test_order_is_learnable_on_a_trivial_sequence() -> None:
    torch.manual_seed(0)
    T, B = 30, 16
    emb = torch.linspace(0, 1, T)[:, None, None].expand(T, B, 1).clone()
    starts = torch.zeros(T, B, dtype=torch.bool)
    loss = TemporalOrder(1, use_memory=False, hidden=16)
    opt = torch.optim.Adam(loss.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(0)
    first = loss(emb, starts, generator=g).item()
    for _ in range(300):
        opt.zero_grad()
        value = loss(emb, starts, generator=g)
        value.backward()
        opt.step()
    assert first > 0.6
    assert value.item() < 0.05
    assert loss.last_accuracy > 0.97


def _agent_and_segment(seed: int = 0) -> tuple[RecurrentActorCritic, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    agent = RecurrentActorCritic(obs_dim=5, n_actions=3, hidden=8, memory=6)
    obs = torch.randn(12, 4, 5)
    starts = torch.zeros(12, 4, dtype=torch.bool)
    starts[0] = True
    starts[7, 1] = True
    return agent, obs, starts


@pytest.mark.parametrize("detach_memory", [False, True])
def test_aux_gradient_reaches_encoder_and_memory_unless_detached(detach_memory: bool) -> None:
    agent, obs, starts = _agent_and_segment()
    _, _, emb, mem = agent.unroll(obs, agent.initial_state(4), starts)
    loss = TemporalOrder(8, memory_dim=6, detach_memory=detach_memory, detach_embeddings=True)
    loss(emb, starts, mem, generator=torch.Generator().manual_seed(0)).backward()
    memory_grad = [p.grad for p in agent.memory.parameters()]
    # Embeddings detached: the encoder is reached only through the memory.
    assert all(p.grad is None for p in agent.policy.parameters())
    if detach_memory:
        assert all(g is None for g in memory_grad)
        assert all(p.grad is None for p in agent.encoder.parameters())
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in memory_grad)
        assert all(
            p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters()
        )


def test_aux_gradient_reaches_encoder_directly_through_the_embeddings() -> None:
    agent, obs, starts = _agent_and_segment()
    _, _, emb, mem = agent.unroll(obs, agent.initial_state(4), starts)
    loss = TemporalOrder(8, memory_dim=6, detach_memory=True)
    loss(emb, starts, mem).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters())
    assert all(p.grad is None for p in agent.memory.parameters())


def test_separate_encoder_leaves_the_agent_encoder_alone() -> None:
    agent, obs, starts = _agent_and_segment()
    _, _, _, mem = agent.unroll(obs, agent.initial_state(4), starts)
    own = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    loss = TemporalOrder(8, memory_dim=6, encoder=own, detach_memory=True)
    loss(obs, starts, mem).backward()
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert all(p.grad is not None for p in own.parameters())


def test_through_the_balancer_with_gradient_cosine_gating() -> None:
    agent, obs, starts = _agent_and_segment()
    logits, values, emb, mem = agent.unroll(obs, agent.initial_state(4), starts)
    aux = TemporalOrder(8, memory_dim=6)
    losses = {"main": values.pow(2).mean() + logits.pow(2).mean(), "order": aux(emb, starts, mem)}
    from auxlab.weighting import GradientCosine

    balancer = Balancer(
        GradientCosine(weights={"order": 0.5}), shared=agent.shared_parameters(), main="main"
    )
    record = balancer.backward(losses)
    assert record.cosines is not None
    assert "order" in record.cosines
    assert record.shared_weights is not None
    assert record.shared_weights["order"] in (0.0, 0.5)
    assert all(p.grad is not None for p in aux.parameters())


def test_memory_input_is_checked() -> None:
    emb = torch.randn(6, 2, 4)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="memory"):
        TemporalOrder(4, memory_dim=3)(emb, starts)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        TemporalOrder(4, memory_dim=3)(emb, starts, torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match="starts must be"):
        TemporalOrder(4, use_memory=False)(emb, starts[:5])
    with pytest.raises(ValueError, match="embed_dim=5"):
        TemporalOrder(5, use_memory=False)(emb, starts)
    with pytest.raises(ValueError, match="window"):
        sample_pairs(starts, window=0)


def test_temporal_distance_classes_and_pairs() -> None:
    T, B, D = 40, 6, 2
    emb = torch.arange(T, dtype=torch.float32)[:, None, None].expand(T, B, D).clone()
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[25, 2] = True
    loss = TemporalDistance(D, pairs_per_step=8)
    seen: dict[str, torch.Tensor] = {}
    loss.classifier.register_forward_pre_hook(lambda _m, a: seen.update(x=a[0]))
    loss(emb, starts, generator=torch.Generator().manual_seed(0))
    x = seen["x"]
    dist = (x[:, 0] - x[:, D]).abs().long()
    # Every distance falls in one of Aytar et al.'s bins, and all six classes occur.
    classes = set()
    for d in dist.tolist():
        match = [k for k, (lo, hi) in enumerate(AYTAR_BINS) if lo <= d <= hi]
        assert len(match) == 1
        classes.add(match[0])
    assert classes == set(range(6))
    assert int(dist.max()) <= 39


def test_temporal_distance_is_learnable() -> None:
    torch.manual_seed(0)
    T, B = 30, 8
    emb = torch.linspace(0, 1, T)[:, None, None].expand(T, B, 1).clone()
    starts = torch.zeros(T, B, dtype=torch.bool)
    loss = TemporalDistance(1, hidden=32, pairs_per_step=2)
    opt = torch.optim.Adam(loss.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(0)
    first = loss(emb, starts, generator=g).item()
    for _ in range(400):
        opt.zero_grad()
        value = loss(emb, starts, generator=g)
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
    assert loss.last_accuracy > 0.8


def test_gae_by_hand() -> None:
    gamma, lam = 0.9, 0.8
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [1.0], [0.2]])
    s = torch.tensor([[False], [False], [True]])  # step 2 begins a new episode
    nv, ns = torch.tensor([3.0]), torch.tensor([False])
    adv, ret = compute_gae(r, v, s, nv, ns, gamma, lam)
    d2 = 2.0 + gamma * 3.0 - 0.2  # bootstraps from next_value
    d1 = 0.0 - 1.0  # step 1 ended an episode: no bootstrap
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + gamma * lam * a1
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, a2])
    assert ret[:, 0].tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 0.2])


def test_unroll_matches_step_by_step_with_resets() -> None:
    agent, obs, starts = _agent_and_segment()
    h0 = torch.randn(4, 6)
    logits, values, _, mem = agent.unroll(obs, h0, starts)
    h = h0
    for t in range(obs.shape[0]):
        lg, val, h = agent.step(obs[t], h, starts[t])
        assert torch.allclose(lg, logits[t], atol=1e-6)
        assert torch.allclose(val, values[t], atol=1e-6)
        assert torch.allclose(h, mem[t], atol=1e-6)


def test_fixed_weight_scales_only_the_aux_term() -> None:
    agent, obs, starts = _agent_and_segment()
    _logits, values, emb, mem = agent.unroll(obs, agent.initial_state(4), starts)
    aux = TemporalOrder(8, memory_dim=6)
    g = torch.Generator().manual_seed(5)
    losses = {"main": values.pow(2).mean(), "order": aux(emb, starts, mem, generator=g)}
    record = Balancer(FixedWeights({"order": 0.25}), main="main").backward(losses)
    assert record.weights == {"main": 1.0, "order": 0.25}
    assert record.total == pytest.approx(record.losses["main"] + 0.25 * record.losses["order"])
