"""GoogLeNet-style auxiliary classifiers, and a small Inception network for 28x28 images.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv 1409.4842), §5: two
auxiliary classifiers sit on the outputs of Inception (4a) and (4d); each is a 5x5 average
pooling with stride 3, a 1x1 convolution with 128 filters and ReLU, a fully connected layer of
1024 units with ReLU, dropout 0.7 and a linear classifier over the same classes. Their losses
are added with weight 0.3, ``L = L_main + 0.3·L_aux1 + 0.3·L_aux2``, and the heads are
discarded at inference.

Differences from torchvision's ``GoogLeNet(aux_logits=True)``, which this module does not
follow: torchvision pools adaptively to 4x4 instead of 5x5/3, puts batch normalisation in
every convolution, uses main dropout 0.2 instead of 0.4, and uses a 3x3 convolution in the
"5x5" branch. Here the pooling is the paper's (with its size an argument), batch
normalisation is off unless asked for, and the 5x5 branch is 5x5.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from auxlab._checks import check_fraction, check_int
from auxlab.models._aux_classifier import (
    GOOGLENET_AUX_WEIGHT,
    GoogLeNetAuxHead,
    googlenet_loss_weights,
)
from auxlab.models._heads import AuxHeads, attach_heads

__all__ = [
    "GOOGLENET_AUX_WEIGHT",
    "GoogLeNetAuxHead",
    "Inception",
    "SmallInception",
    "googlenet_loss_weights",
    "small_googlenet",
]

# GoogLeNet's Inception modules (Table 1 of the paper): (1x1, 3x3 reduce, 3x3, 5x5 reduce,
# 5x5, pool proj). Output channels are 1x1 + 3x3 + 5x5 + pool proj.
_PAPER_MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
_PAPER_STEM = 192  # channels after the paper's stem (conv 7x7/2 64, conv 1x1 64, conv 3x3 192)


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's generator inside the block only (PyTorch's own layer initialisation)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


Init = Literal["he", "xavier_caffe", "torch"]


def _initialize(module: nn.Module, init: Init) -> None:
    """Re-initialise the convolutions and linear layers of ``module`` (see SmallInception)."""
    if init not in ("he", "xavier_caffe", "torch"):
        raise ValueError(f"init must be 'he', 'xavier_caffe' or 'torch', got {init!r}")
    if init == "torch":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                if init == "he":
                    m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                else:
                    bound = math.sqrt(3.0 / fan_in)
                    m.weight.uniform_(-bound, bound)
                if m.bias is not None:
                    m.bias.zero_()


def _conv(c_in: int, c_out: int, k: int, bn: bool, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not bn)
    ]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Inception(nn.Module):
    """GoogLeNet's Inception module: four parallel branches, concatenated on channels.

    Branches: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 max pooling (stride 1) -> 1x1
    projection; each convolution followed by ReLU (and batch normalisation before it when
    ``batch_norm``). Spatial size is kept.

    Args:
        in_channels: Input channels.
        c1: Filters of the 1x1 branch.
        c3_reduce: Filters of the 1x1 reduction before the 3x3.
        c3: Filters of the 3x3.
        c5_reduce: Filters of the 1x1 reduction before the 5x5.
        c5: Filters of the 5x5.
        pool_proj: Filters of the projection after max pooling.
        batch_norm: Batch-normalise every convolution (not in GoogLeNet).
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = c1 + c3 + c5 + pool_proj
        self.branch1 = _conv(in_channels, c1, 1, batch_norm)
        self.branch3 = nn.Sequential(
            _conv(in_channels, c3_reduce, 1, batch_norm), _conv(c3_reduce, c3, 3, batch_norm)
        )
        self.branch5 = nn.Sequential(
            _conv(in_channels, c5_reduce, 1, batch_norm), _conv(c5_reduce, c5, 5, batch_norm)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv(in_channels, pool_proj, 1, batch_norm)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the four branches on the channel axis."""
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


class SmallInception(nn.Module):
    """GoogLeNet's layout for 28x28 images: a stem, nine Inception modules, one classifier.

    The order of the paper is kept, with its channel counts times ``width``: stem ->
    3a, 3b -> max pool -> 4a, 4b, 4c, 4d, 4e -> max pool -> 5a, 5b -> global average pooling
    -> dropout 0.4 -> linear. The paper's stem (7x7/2 conv, pool, 1x1 conv, 3x3 conv, pool;
    224 -> 28) becomes one 3x3 convolution and a 2x2 max pooling (28 -> 14), so the feature
    maps are 14x14 in stage 3, 7x7 in stage 4 and 4x4 in stage 5 (the paper: 28, 14, 7).
    With ``stem_stride=2`` the stem convolution has stride 2 and the maps are 7x7, 4x4 and
    2x2, about four times cheaper (what the benchmark uses on CPU). Local response
    normalisation is left out.

    Named submodules for taps (:func:`~auxlab.models.attach_heads`): ``stem``, ``inc3a``,
    ``inc3b``, ``pool3``, ``inc4a`` ... ``inc4e``, ``pool4``, ``inc5a``, ``inc5b``,
    ``classifier``. The first convolution block is ``stem``.

    Args:
        num_classes: Output classes.
        in_channels: Image channels (1 for Fashion-MNIST).
        width: Multiplier of the paper's channel counts (1/8 gives 32 channels out of 3a and
            128 out of 5b). Every branch keeps at least 2 filters.
        batch_norm: Batch-normalise every convolution (GoogLeNet had none).
        dropout: Dropout before the classifier (paper: 0.4).
        image_size: Side of the square input images.
        stem_stride: Stride of the stem convolution (1 or 2).
        init: Initialisation of convolutions and linear layers: ``"he"`` (default; He et
            al., ICCV 2015: normal with variance 2/fan-in, zero biases), ``"xavier_caffe"``
            (Caffe's ``xavier`` filler that the public GoogLeNet model uses: uniform with
            variance 1/fan-in, zero biases) or ``"torch"`` (PyTorch's default, variance
            1/(3·fan-in)). Without batch normalisation the signal in this 22-layer network
            shrinks by about the square root of twice the variance times fan-in per layer, so
            ``"torch"`` and ``"xavier_caffe"`` start with a vanishing gradient at the lower
            layers; see ``docs/deep_supervision.md``.
        seed: Seed for the initialisation (a local generator; nothing is seeded globally).

    Attributes:
        channels: ``{layer: output channels}`` for ``stem`` and every Inception module.
        spatial: ``{layer: output side}`` for the same layers.

    Example:
        >>> net = SmallInception(width=1 / 16, seed=0)
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> net.channels["inc4a"], net.spatial["inc4a"]
        (32, 7)
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 0.125,
        batch_norm: bool = False,
        dropout: float = 0.4,
        image_size: int = 28,
        stem_stride: int = 1,
        init: Init = "he",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        check_int("in_channels", in_channels)
        check_int("image_size", image_size)
        check_int("stem_stride", stem_stride)
        check_fraction("dropout", dropout)
        if isinstance(width, bool) or not isinstance(width, (int, float)):
            raise TypeError(f"width must be a number > 0, got {width!r}")
        with _seeded(seed):
            if not (math.isfinite(width) and width > 0):
                raise ValueError(f"width must be > 0, got {width}")

            def scaled(c: int) -> int:
                return max(2, round(c * width))

            self.width = width
            stem = scaled(_PAPER_STEM)
            self.stem = nn.Sequential(
                _conv(in_channels, stem, 3, batch_norm, stride=stem_stride), nn.MaxPool2d(2)
            )
            size = -(-image_size // stem_stride) // 2
            if size < 4:
                raise ValueError(
                    f"a {image_size}x{image_size} image with stem_stride={stem_stride} leaves "
                    f"{size}x{size} feature maps after the stem; at least 4x4 are needed"
                )
            self.channels: dict[str, int] = {"stem": stem}
            self.spatial: dict[str, int] = {"stem": size}
            c = stem
            for name, spec in _PAPER_MODULES.items():
                if name == "4a":
                    self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)  # 14 -> 7 (7 -> 4)
                    size = (size - 1) // 2 + 1
                if name == "5a":
                    self.pool4 = nn.MaxPool2d(3, stride=2, padding=1)  # 7 -> 4 (4 -> 2)
                    size = (size - 1) // 2 + 1
                c1, c3r, c3, c5r, c5, cp = (scaled(v) for v in spec)
                block = Inception(c, c1, c3r, c3, c5r, c5, cp, batch_norm=batch_norm)
                self.add_module(f"inc{name}", block)
                c = block.out_channels
                self.channels[f"inc{name}"] = c
                self.spatial[f"inc{name}"] = size
            self._order = ["stem", "inc3a", "inc3b", "pool3", "inc4a", "inc4b", "inc4c", "inc4d"]
            self._order += ["inc4e", "pool4", "inc5a", "inc5b"]
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(c, num_classes)
            _initialize(self, init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(N, C, 4, 4)`` for 28x28 images and ``stem_stride=1``."""
        for name in self._order:
            x = self._modules[name](x)  # type: ignore[misc]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)`` from images ``(N, C, 28, 28)``."""
        x = self.features(x).mean(dim=(2, 3))
        return self.classifier(self.dropout(x))


def _scaled_pool(size: int) -> tuple[int, int]:
    """Average pooling (kernel, stride) that shrinks a map about as 5x5/3 shrinks 14x14."""
    if size >= 14:
        return (5, 3)
    if size >= 7:
        return (3, 2)
    return (2, 2) if size >= 2 else (1, 1)


def small_googlenet(
    num_classes: int = 10,
    in_channels: int = 1,
    width: float = 0.125,
    batch_norm: bool = False,
    stem_stride: int = 1,
    init: Init = "he",
    aux: bool = True,
    aux_conv_channels: int | None = None,
    aux_fc_units: int | None = None,
    seed: int | None = None,
) -> AuxHeads | SmallInception:
    """A :class:`SmallInception` with GoogLeNet's two auxiliary classifiers attached.

    The heads tap ``inc4a`` (``aux1``) and ``inc4d`` (``aux2``), the paper's relative depths
    (the outputs of the 3rd and 6th of nine Inception modules). Their feature maps are 7x7
    (4x4 with ``stem_stride=2``), so each :class:`GoogLeNetAuxHead` is scaled: 3x3 average
    pooling with stride 2 on 7x7 maps (7 -> 3, as the paper's 5x5/3 takes 14 -> 4; 2x2 with
    stride 2 on 4x4 maps), a 1x1 convolution to ``256 · width`` channels and ``1024 · width``
    hidden units (32 and 128 at the default width, the paper's 128 and 1024 at width 1/2),
    dropout 0.7 as in the paper.

    Train with :func:`googlenet_loss_weights` (0.3 each); use
    :func:`~auxlab.models.strip_aux` for inference, which returns the bare
    :class:`SmallInception`.

    Args:
        num_classes: Output classes of the main and auxiliary classifiers.
        in_channels: Image channels.
        width: Channel multiplier of :class:`SmallInception`.
        batch_norm: Batch normalisation in the backbone and the heads.
        stem_stride: Stride of the stem convolution (see :class:`SmallInception`).
        init: Initialisation of backbone and heads (see :class:`SmallInception`).
        aux: Attach the auxiliary classifiers; ``False`` returns the bare backbone.
        aux_conv_channels: Override the heads' 1x1 convolution filters.
        aux_fc_units: Override the heads' hidden units.
        seed: Seed for the initialisation of backbone and heads.

    Returns:
        An :class:`~auxlab.models.AuxHeads` whose forward returns ``{"main", "aux1",
        "aux2"}`` logits (or the backbone alone with ``aux=False``).

    Example:
        >>> model = small_googlenet(width=1 / 16, seed=0)
        >>> sorted(model(torch.zeros(2, 1, 28, 28)))
        ['aux1', 'aux2', 'main']
    """
    backbone = SmallInception(
        num_classes, in_channels, width, batch_norm, stem_stride=stem_stride, init=init, seed=seed
    )
    if not aux:
        return backbone
    conv = aux_conv_channels or max(4, round(128 * width * 2))
    fc = aux_fc_units or max(8, round(1024 * width))

    def make_heads() -> dict[str, tuple[str, nn.Module]]:
        return {
            name: (
                layer,
                GoogLeNetAuxHead(
                    backbone.channels[layer],
                    num_classes,
                    in_size=backbone.spatial[layer],
                    pool_kernel=_scaled_pool(backbone.spatial[layer])[0],
                    pool_stride=_scaled_pool(backbone.spatial[layer])[1],
                    conv_channels=conv,
                    fc_units=fc,
                    dropout=0.7,
                    batch_norm=batch_norm,
                ),
            )
            for name, layer in (("aux1", "inc4a"), ("aux2", "inc4d"))
        }

    with _seeded(None if seed is None else seed + 1):
        heads = make_heads()
        for _, head in heads.values():
            _initialize(head, init)
    return attach_heads(backbone, heads)
