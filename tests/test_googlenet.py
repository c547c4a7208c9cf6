"""Tests for the GoogLeNet auxiliary head and the small Inception network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auxlab.models._googlenet import (
    GOOGLENET_AUX_WEIGHT,
    GoogLeNetAuxHead,
    Inception,
    SmallInception,
    googlenet_loss_weights,
    small_googlenet,
)
from auxlab.models._heads import AuxHeads, strip_aux


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_paper_head_sizes() -> None:
    # Szegedy et al. 2015, section 5: 14x14x512 (4a) -> avg 5x5/3 -> 4x4x512 -> 1x1 conv 128
    # -> 2048 -> FC 1024 -> dropout 0.7 -> 1000 classes. Parameters with biases:
    # 512*128 + 128 + 2048*1024 + 1024 + 1024*1000 + 1000 = 3,188,840 (about 3.19 M).
    head = GoogLeNetAuxHead(512, 1000)
    assert head.pooled_size == (4, 4)
    assert head.pool.kernel_size == 5
    assert head.pool.stride == 3
    assert head.conv.out_channels == 128
    assert head.conv.kernel_size == (1, 1)
    assert head.fc.in_features == 2048
    assert head.fc.out_features == 1024
    assert head.dropout.p == 0.7
    assert n_params(head) == 3_188_840
    # Inception (4d) has 528 channels: only the 1x1 convolution grows.
    assert n_params(GoogLeNetAuxHead(528, 1000)) == 3_188_840 + 16 * 128


@pytest.mark.parametrize(
    ("in_size", "kernel", "stride", "pooled"),
    [
        (14, 5, 3, (4, 4)),  # the paper
        (15, 5, 3, (4, 4)),
        (28, 5, 3, (8, 8)),
        (7, 3, 2, (3, 3)),  # SmallInception, stem stride 1
        (4, 2, 2, (2, 2)),  # SmallInception, stem stride 2
        ((14, 8), 5, 3, (4, 2)),
    ],
)
def test_head_output_shapes_for_several_input_sizes(
    in_size: int | tuple[int, int], kernel: int, stride: int, pooled: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    head = GoogLeNetAuxHead(
        16, 10, in_size=in_size, pool_kernel=kernel, pool_stride=stride, conv_channels=8
    )
    h, w = (in_size, in_size) if isinstance(in_size, int) else in_size
    x = torch.randn(3, 16, h, w)
    assert head.pooled_size == pooled
    assert head.fc.in_features == 8 * pooled[0] * pooled[1]
    assert head.pool(x).shape == (3, 16, *pooled)
    assert head(x).shape == (3, 10)


def test_head_rejects_a_mismatched_input_naming_both_shapes() -> None:
    head = GoogLeNetAuxHead(512, 1000)
    with pytest.raises(ValueError, match=r"\(N, 512, 14, 14\), got \(2, 256, 14, 14\)"):
        head(torch.zeros(2, 256, 14, 14))
    with pytest.raises(ValueError, match=r"got \(2, 512, 7, 7\)"):
        head(torch.zeros(2, 512, 7, 7))
    with pytest.raises(ValueError, match="does not fit"):
        GoogLeNetAuxHead(8, 10, in_size=3)


def test_head_is_the_paper_sequence_of_operations() -> None:
    torch.manual_seed(0)
    head = GoogLeNetAuxHead(6, 4, in_size=7, pool_kernel=3, pool_stride=2, conv_channels=5)
    head.eval()
    x = torch.randn(2, 6, 7, 7)
    z = nn.functional.avg_pool2d(x, 3, 2)
    z = torch.relu(nn.functional.conv2d(z, head.conv.weight, head.conv.bias))
    z = torch.relu(head.fc(z.flatten(1)))
    torch.testing.assert_close(head(x), head.classifier(z))


def test_batch_norm_variant() -> None:
    head = GoogLeNetAuxHead(8, 3, in_size=7, pool_kernel=3, pool_stride=2, batch_norm=True)
    assert isinstance(head.conv_bn, nn.BatchNorm2d)
    assert isinstance(head.fc_bn, nn.BatchNorm1d)
    assert head(torch.randn(4, 8, 7, 7)).shape == (4, 3)


def test_inception_module_concatenates_its_branches() -> None:
    block = Inception(8, 2, 3, 4, 1, 2, 3)
    assert block.out_channels == 11
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 11, 5, 5)


@pytest.mark.parametrize(("stem_stride", "sizes"), [(1, (14, 7, 4)), (2, (7, 4, 2))])
def test_small_inception_layout(stem_stride: int, sizes: tuple[int, int, int]) -> None:
    net = SmallInception(width=1 / 16, stem_stride=stem_stride, seed=0)
    assert net.spatial["inc3a"] == sizes[0]
    assert net.spatial["inc4a"] == net.spatial["inc4e"] == sizes[1]
    assert net.spatial["inc5b"] == sizes[2]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # The paper's channel counts scaled: 3a has 64+128+32+32 = 256 -> 16 at width 1/16.
    assert net.channels["inc3a"] == 16


def test_small_googlenet_heads_sit_at_the_papers_relative_depths() -> None:
    model = small_googlenet(width=1 / 16, stem_stride=2, seed=0)
    assert isinstance(model, AuxHeads)
    assert model.taps == {"aux1": "inc4a", "aux2": "inc4d"}
    modules = [n for n in model.backbone._order if n.startswith("inc")]
    # GoogLeNet: after the 3rd (4a) and the 6th (4d) of nine Inception modules.
    assert len(modules) == 9
    assert modules.index("inc4a") == 2
    assert modules.index("inc4d") == 5
    out = model(torch.randn(3, 1, 28, 28))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "main": (3, 10),
        "aux1": (3, 10),
        "aux2": (3, 10),
    }
    assert all(isinstance(h, GoogLeNetAuxHead) and h.dropout.p == 0.7 for h in model.heads.values())


def test_small_googlenet_heads_are_discarded_at_inference() -> None:
    model = small_googlenet(width=1 / 16, stem_stride=2, seed=0)
    assert isinstance(model, AuxHeads)
    model.eval()
    x = torch.randn(4, 1, 28, 28)
    net = strip_aux(model)
    assert isinstance(net, SmallInception)
    torch.testing.assert_close(net(x), model(x)["main"], rtol=0, atol=0)
    assert n_params(net) == n_params(model) - n_params(model.heads)


def test_seeded_construction_is_reproducible_and_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = small_googlenet(width=1 / 16, stem_stride=2, seed=7)
    b = small_googlenet(width=1 / 16, stem_stride=2, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = small_googlenet(width=1 / 16, stem_stride=2, seed=8)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_loss_weights() -> None:
    assert GOOGLENET_AUX_WEIGHT == 0.3
    assert googlenet_loss_weights() == {"main": 1.0, "aux1": 0.3, "aux2": 0.3}
    assert googlenet_loss_weights(0.0)["aux2"] == 0.0


def test_small_googlenet_learns_a_tiny_batch() -> None:
    from auxlab import ArrayLoader, Objective, fit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 28, 28, generator=g)
    y = torch.arange(32) % 4
    x = x + y.view(-1, 1, 1, 1).float()  # a class-dependent brightness shift
    model = small_googlenet(num_classes=4, width=1 / 16, stem_stride=2, batch_norm=True, seed=0)
    assert isinstance(model, AuxHeads)
    targets = {"main": y, "aux1": y, "aux2": y}
    history = fit(
        model,
        ArrayLoader(x, targets, batch_size=16, shuffle=True, seed=0),
        Objective("ce", outputs=model.output_names),
        googlenet_loss_weights(),
        epochs=12,
        lr=1e-2,
        progress=False,
        seed=0,
    )
    assert history["train_loss_main"][-1] < 0.7 * history["train_loss_main"][0]
