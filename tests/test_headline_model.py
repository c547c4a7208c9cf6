"""Tests for auxlab.models.HeadlineModel: shapes, parameter count, Keras-style init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auxlab import Objective
from auxlab.models import HeadlineModel

TINY = {"vocab_size": 50, "seq_len": 6, "embed_dim": 8, "lstm_units": 4, "hidden": 8}


def inputs(batch: int = 3, seq_len: int = 6, num_side: int = 5, vocab: int = 50, seed: int = 0):
    g = torch.Generator()
    g.manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, seq_len), generator=g)
    return tokens, torch.randn(batch, num_side, generator=g)


@pytest.mark.parametrize(
    ("task", "num_classes", "shape", "loss"),
    [
        ("binary", 2, (3,), "bce_logits"),
        ("regression", 2, (3,), "mse"),
        ("multiclass", 4, (3, 4), "ce"),
    ],
)
def test_output_shapes(task: str, num_classes: int, shape: tuple[int, ...], loss: str) -> None:
    model = HeadlineModel(**TINY, task=task, num_classes=num_classes, seed=0)
    out = model(*inputs())
    assert list(out) == ["main", "aux"]
    assert tuple(out["main"].shape) == shape
    assert tuple(out["aux"].shape) == shape
    assert model.loss == loss
    assert model.output_names == ("main", "aux")
    # The loss name fits the heads: the objective computes finite scalar losses.
    targets = (
        {"main": torch.tensor([0, 3, 1]), "aux": torch.tensor([2, 2, 0])}
        if task == "multiclass"
        else {"main": torch.tensor([0.0, 1.0, 1.0]), "aux": torch.tensor([1.0, 0.0, 1.0])}
    )
    losses = Objective(model.loss).bind(model)(out, targets)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())


def test_other_sequence_lengths_and_depth() -> None:
    model = HeadlineModel(**TINY, depth=1, num_side=2, seed=0)
    out = model(*inputs(batch=2, seq_len=9, num_side=2))
    assert out["main"].shape == (2,)
    assert sum(isinstance(m, nn.Linear) for m in model.dense) == 1
    model0 = HeadlineModel(**TINY, depth=0, num_side=0, seed=0)
    assert model0.main_head.in_features == 4
    assert model0(*inputs(num_side=0))["main"].shape == (3,)


def keras_param_count(
    vocab: int = 10_000,
    embed: int = 512,
    units: int = 32,
    side: int = 5,
    hidden: int = 64,
    depth: int = 3,
    out: int = 1,
) -> int:
    embedding = vocab * embed
    lstm = 4 * (units * (embed + units) + units)  # one bias vector in Keras
    aux_head = units * out + out
    dense = 0
    width = units + side
    for _ in range(depth):
        dense += width * hidden + hidden
        width = hidden
    main_head = width * out + out
    return embedding + lstm + aux_head + dense + main_head


def test_parameter_count_matches_keras_plus_second_lstm_bias() -> None:
    keras = keras_param_count()
    assert keras == 5_200_610  # the Keras guide's model.summary()
    model = HeadlineModel(seed=0)
    n = sum(p.numel() for p in model.parameters())
    assert n == keras + 4 * 32  # PyTorch's bias_hh
    assert n == 5_200_738


def test_parameter_count_of_other_sizes() -> None:
    model = HeadlineModel(**TINY, task="multiclass", num_classes=3, depth=2, seed=0)
    n = sum(p.numel() for p in model.parameters())
    want = keras_param_count(vocab=50, embed=8, units=4, hidden=8, depth=2, out=3) + 4 * 4
    assert n == want


def test_keras_init() -> None:
    model = HeadlineModel(vocab_size=200, seq_len=6, embed_dim=16, lstm_units=8, seed=1)
    units = 8
    emb = model.embedding.weight
    assert emb.abs().max() <= 0.05
    assert emb.std() > 0.02  # spread over the range, not all zeros
    lstm = dict(model.lstm.named_parameters())
    b_ih, b_hh = lstm["bias_ih_l0"], lstm["bias_hh_l0"]
    assert torch.equal(b_ih[units : 2 * units], torch.ones(units))
    assert torch.count_nonzero(b_ih[:units]) == 0
    assert torch.count_nonzero(b_ih[2 * units :]) == 0
    assert torch.count_nonzero(b_hh) == 0
    w_hh = lstm["weight_hh_l0"].detach()
    assert w_hh.shape == (4 * units, units)
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(units), atol=1e-5)
    # Glorot uniform with Keras' fans: (input, 4 units) for the kernel.
    w_ih = lstm["weight_ih_l0"]
    limit = (6.0 / (16 + 4 * units)) ** 0.5
    assert w_ih.abs().max() <= limit
    assert w_ih.abs().max() > 0.8 * limit
    for m in model.modules():
        if isinstance(m, nn.Linear):
            lim = (6.0 / (m.in_features + m.out_features)) ** 0.5
            assert m.weight.abs().max() <= lim
            assert torch.count_nonzero(m.bias) == 0


def test_same_seed_same_init_different_seed_different() -> None:
    torch.manual_seed(100)
    a = HeadlineModel(**TINY, seed=3)
    torch.manual_seed(200)  # the global RNG must not matter when a seed is given
    b = HeadlineModel(**TINY, seed=3)
    c = HeadlineModel(**TINY, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for k in ("embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "main_head.weight"):
        assert not torch.equal(sa[k], sc[k]), k


def test_torch_init_with_seed_is_reproducible_and_not_keras() -> None:
    torch.manual_seed(1)
    a = HeadlineModel(**TINY, init="torch", seed=3)
    torch.manual_seed(2)
    b = HeadlineModel(**TINY, init="torch", seed=3)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    # PyTorch's default embedding init is N(0, 1), far outside Keras' [-0.05, 0.05].
    assert a.embedding.weight.abs().max() > 0.5
    assert torch.count_nonzero(a.lstm.bias_hh_l0) > 0


def test_bad_side_feature_shape() -> None:
    model = HeadlineModel(**TINY, seed=0)
    tokens, _ = inputs()
    with pytest.raises(ValueError, match=r"side must be \(batch, 5\), got shape \(3, 4\)"):
        model(tokens, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="side must be"):
        model(tokens, torch.zeros(3))
    with pytest.raises(ValueError, match=r"tokens must be \(batch, seq_len\)"):
        model(tokens.reshape(-1), torch.zeros(3, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "vocab_size must be >= 1"),
        ({"lstm_units": 0}, "lstm_units must be >= 1"),
        ({"depth": -1}, "num_side and depth must be >= 0"),
        ({"task": "ranking"}, "task must be"),
        ({"init": "xavier"}, "init must be"),
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    args = {**TINY, **kwargs}
    with pytest.raises(ValueError, match=match):
        HeadlineModel(**args)


def test_shared_is_embedding_and_lstm_only() -> None:
    model = HeadlineModel(**TINY, seed=0)
    shared = {id(p) for p in model.shared.parameters()}
    want = {id(p) for p in model.embedding.parameters()} | {id(p) for p in model.lstm.parameters()}
    assert shared == want
    assert len(shared) == 5  # embedding weight + 4 LSTM tensors
    heads = [*model.aux_head.parameters(), *model.main_head.parameters(), *model.dense.parameters()]
    assert not any(id(p) in shared for p in heads)
    # The shared block gets gradients from both heads; the heads only from their own loss.
    out = model(*inputs())
    out["aux"].sum().backward()
    assert model.embedding.weight.grad is not None
    assert model.main_head.weight.grad is None


def test_gradients_reach_every_parameter() -> None:
    model = HeadlineModel(**TINY, seed=0)
    tokens = torch.arange(18).reshape(3, 6) % 50
    out = model(tokens, torch.randn(3, 5, generator=torch.Generator().manual_seed(0)))
    (out["main"].sum() + out["aux"].sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.count_nonzero(p.grad) > 0, name
