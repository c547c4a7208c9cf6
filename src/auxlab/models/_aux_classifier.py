"""GoogLeNet's auxiliary classifier head and loss weights (Szegedy et al., CVPR 2015, §5).

Each auxiliary classifier is a 5x5 average pooling with stride 3, a 1x1 convolution with 128
filters and ReLU, a fully connected layer of 1024 units with ReLU, dropout 0.7 and a linear
classifier; its loss is added with weight 0.3. The head attaches to any network's
intermediate feature map; :mod:`auxlab.models._googlenet` builds a small Inception network
with two of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from auxlab._checks import check_fraction, check_int

__all__ = ["GOOGLENET_AUX_WEIGHT", "GoogLeNetAuxHead", "googlenet_loss_weights"]

#: The weight of each auxiliary classifier's loss in GoogLeNet (Szegedy et al., 2015, §5).
GOOGLENET_AUX_WEIGHT = 0.3


def as_pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def googlenet_loss_weights(
    aux_weight: float = GOOGLENET_AUX_WEIGHT, heads: Sequence[str] = ("aux1", "aux2")
) -> dict[str, float]:
    """GoogLeNet's loss weights, ``{"main": 1.0, "aux1": 0.3, "aux2": 0.3}``.

    Pass them to :func:`~auxlab.fit` or :class:`~auxlab.FixedWeights`.

    >>> googlenet_loss_weights()
    {'main': 1.0, 'aux1': 0.3, 'aux2': 0.3}
    """
    return {"main": 1.0, **dict.fromkeys(heads, float(aux_weight))}


class GoogLeNetAuxHead(nn.Module):
    """GoogLeNet's auxiliary classifier, with its sizes as arguments.

    Layers, as in §5 of the paper: ``AvgPool2d(pool_kernel, stride=pool_stride)`` ->
    ``Conv2d(in_channels, conv_channels, 1)`` + ReLU -> ``Linear(conv_channels · h · w,
    fc_units)`` + ReLU -> ``Dropout(dropout)`` -> ``Linear(fc_units, num_classes)``, where
    ``h x w`` is the pooled size of an ``in_size`` input. It returns logits (the paper's
    softmax is in the cross-entropy loss, ``"ce"``).

    The defaults are the paper's: for the 14x14x512 output of Inception (4a), pooling 5x5
    with stride 3 gives 4x4x512, the 1x1 convolution 4x4x128 = 2048 values, then FC 1024,
    dropout 0.7 and 1000 classes; about 3.19 M parameters. For small images, scale the sizes,
    e.g. ``in_size=7, pool_kernel=3, pool_stride=2, conv_channels=32, fc_units=128``.

    Args:
        in_channels: Channels of the tapped feature map (512 for 4a, 528 for 4d).
        num_classes: Classes of the main task (the paper: the same 1000).
        in_size: Spatial size ``(H, W)`` (or one int) of the tapped feature map; the fully
            connected layer is sized from it. The input is checked against it.
        pool_kernel: Average pooling window (paper: 5).
        pool_stride: Average pooling stride (paper: 3).
        conv_channels: Filters of the 1x1 convolution (paper: 128).
        fc_units: Units of the hidden fully connected layer (paper: 1024).
        dropout: Dropout probability before the classifier (paper: 0.7).
        batch_norm: Batch-normalise the convolution and the hidden layer ("BN-auxiliary",
            Szegedy et al., CVPR 2016, which gave 0.4 % top-1 in Inception-v3). Off in
            GoogLeNet.

    Raises:
        ValueError: At construction, if the pooling does not fit ``in_size``; at forward, if
            the input's channels or spatial size differ from ``in_channels`` and ``in_size``
            (the message names both shapes).

    Example:
        >>> head = GoogLeNetAuxHead(512, 1000)  # the paper's head on Inception (4a)
        >>> head.pooled_size, head.fc.in_features
        ((4, 4), 2048)
        >>> head(torch.zeros(2, 512, 14, 14)).shape
        torch.Size([2, 1000])

    Reference: Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich,
    "Going Deeper with Convolutions", CVPR 2015, arXiv 1409.4842, §5 and Table 1.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        in_size: int | Sequence[int] = 14,
        pool_kernel: int = 5,
        pool_stride: int = 3,
        conv_channels: int = 128,
        fc_units: int = 1024,
        dropout: float = 0.7,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("pool_kernel", pool_kernel),
            ("pool_stride", pool_stride),
            ("conv_channels", conv_channels),
            ("fc_units", fc_units),
        ):
            check_int(name, v)
        check_fraction("dropout", dropout)
        self.in_channels = in_channels
        self.in_size = as_pair(in_size)
        h, w = ((s - pool_kernel) // pool_stride + 1 for s in self.in_size)
        if h < 1 or w < 1:
            raise ValueError(
                f"average pooling {pool_kernel}x{pool_kernel} with stride {pool_stride} does not "
                f"fit a {self.in_size[0]}x{self.in_size[1]} input; use a smaller pool_kernel"
            )
        self.pooled_size = (h, w)
        self.pool = nn.AvgPool2d(pool_kernel, stride=pool_stride)
        self.conv = nn.Conv2d(in_channels, conv_channels, 1, bias=not batch_norm)
        self.conv_bn = nn.BatchNorm2d(conv_channels) if batch_norm else nn.Identity()
        self.fc = nn.Linear(conv_channels * h * w, fc_units, bias=not batch_norm)
        self.fc_bn = nn.BatchNorm1d(fc_units) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fc_units, num_classes)

    @property
    def expected_input_shape(self) -> str:
        """The input shape the head accepts, for error messages."""
        return f"(N, {self.in_channels}, {self.in_size[0]}, {self.in_size[1]})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)`` from a feature map ``(N, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.in_size:
            raise ValueError(
                f"GoogLeNetAuxHead expects input of shape {self.expected_input_shape}, got "
                f"{tuple(x.shape)}"
            )
        x = torch.relu(self.conv_bn(self.conv(self.pool(x))))
        x = torch.relu(self.fc_bn(self.fc(torch.flatten(x, 1))))
        return self.classifier(self.dropout(x))
