"""The Keras functional-API guide's "headline" model, ported to PyTorch.

Architecture (Keras guide, "Multi-input and multi-output models"): 100 word ids ->
``Embedding(10000, 512)`` -> ``LSTM(32)`` -> auxiliary head; the LSTM output concatenated
with 5 side features -> three ``Dense(64)`` ReLU -> main head. The guide compiles it with
``loss_weights=[1.0, 0.2]``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from auxlab._checks import check_int

__all__ = ["HeadlineModel"]

Task = Literal["binary", "regression", "multiclass"]


class HeadlineModel(nn.Module):
    """Text + side features -> ``{"main": ..., "aux": ...}``, as in the Keras guide.

    Heads return logits for ``task="binary"`` (use the loss ``"bce_logits"``, the stable
    equivalent of Keras' sigmoid + ``binary_crossentropy``), class logits for
    ``"multiclass"`` (``"ce"``) and values for ``"regression"`` (``"mse"``). Single-unit heads
    return shape ``(batch,)``.

    The parameter count differs from Keras' 5,200,610 by 128 with the defaults: PyTorch's
    LSTM has two bias vectors (``bias_ih`` and ``bias_hh``) where Keras has one.

    Args:
        vocab_size: Number of word ids (the guide: 10,000); id 0 is padding.
        seq_len: Length of the token sequences (the guide: 100). Only checked, since the LSTM
            reads any length.
        embed_dim: Embedding width (512).
        lstm_units: LSTM units (32).
        num_side: Number of side features (5).
        hidden: Width of the dense layers (64).
        depth: Number of dense layers (3).
        task: ``"binary"``, ``"regression"`` or ``"multiclass"``.
        num_classes: Classes for ``"multiclass"``.
        init: ``"keras"`` initialises as Keras does (uniform(-0.05, 0.05) embedding,
            Glorot-uniform kernels, orthogonal recurrent kernel, forget-gate bias 1, zero
            biases); ``"torch"`` keeps PyTorch's defaults.
        seed: Seed for the initialisation (uses a local generator; no global seeding).

    Example:
        >>> m = HeadlineModel(vocab_size=100, seq_len=8, embed_dim=4, seed=0)
        >>> out = m(torch.randint(0, 100, (2, 8)), torch.zeros(2, 5))
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'main': (2,), 'aux': (2,)}
    """

    output_names = ("main", "aux")

    def __init__(
        self,
        vocab_size: int = 10_000,
        seq_len: int = 100,
        embed_dim: int = 512,
        lstm_units: int = 32,
        num_side: int = 5,
        hidden: int = 64,
        depth: int = 3,
        task: Task = "binary",
        num_classes: int = 2,
        init: Literal["keras", "torch"] = "keras",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, v in (
            ("vocab_size", vocab_size),
            ("seq_len", seq_len),
            ("embed_dim", embed_dim),
            ("lstm_units", lstm_units),
            ("hidden", hidden),
        ):
            check_int(name, v)
        check_int("num_side", num_side, minimum=-(2**62))  # the type; the range below
        check_int("depth", depth, minimum=-(2**62))
        if num_side < 0 or depth < 0:
            raise ValueError(f"num_side and depth must be >= 0, got {num_side} and {depth}")
        if task not in ("binary", "regression", "multiclass"):
            raise ValueError(f"task must be 'binary', 'regression' or 'multiclass', got {task!r}")
        if init not in ("keras", "torch"):
            raise ValueError(f"init must be 'keras' or 'torch', got {init!r}")
        if task == "multiclass":
            check_int("num_classes", num_classes, minimum=2)
        self.seq_len = seq_len
        self.num_side = num_side
        self.task = task
        out_dim = num_classes if task == "multiclass" else 1
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, lstm_units, batch_first=True)
        self.aux_head = nn.Linear(lstm_units, out_dim)
        layers: list[nn.Module] = []
        width = lstm_units + num_side
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.dense = nn.Sequential(*layers)
        self.main_head = nn.Linear(width, out_dim)
        if init == "keras":
            self._keras_init(seed)
        elif seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.reset_parameters()

    @property
    def loss(self) -> str:
        """The auxlab loss name that matches the heads."""
        return {"binary": "bce_logits", "regression": "mse", "multiclass": "ce"}[self.task]

    @property
    def shared(self) -> nn.ModuleList:
        """The text branch that both heads share (embedding and LSTM)."""
        return nn.ModuleList([self.embedding, self.lstm])

    def reset_parameters(self) -> None:
        """Re-initialise with PyTorch's defaults."""
        for m in self.modules():
            reset = getattr(m, "reset_parameters", None)
            if m is not self and callable(reset):
                reset()

    def _keras_init(self, seed: int | None) -> None:
        g = torch.Generator()
        if seed is None:  # draw from torch's global generator, like PyTorch's own init
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        g.manual_seed(seed)

        def glorot_(w: torch.Tensor, fan_in: int, fan_out: int) -> None:
            limit = (6.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                w.uniform_(-limit, limit, generator=g)

        with torch.no_grad():
            self.embedding.weight.uniform_(-0.05, 0.05, generator=g)
            units = self.lstm.hidden_size
            # Keras' LSTM kernel is one (input, 4·units) matrix, so Glorot uses those fans.
            lstm = dict(self.lstm.named_parameters())
            glorot_(lstm["weight_ih_l0"], self.lstm.input_size, 4 * units)
            # Orthogonal recurrent kernel, (units, 4·units) in Keras: QR of a Gaussian matrix.
            a = torch.randn(4 * units, units, generator=g)
            q, r = torch.linalg.qr(a)
            q = q * torch.sign(torch.diagonal(r))
            lstm["weight_hh_l0"].copy_(q)
            lstm["bias_ih_l0"].zero_()
            lstm["bias_hh_l0"].zero_()
            lstm["bias_ih_l0"][units : 2 * units] = 1.0  # unit_forget_bias (gate order i,f,g,o)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    glorot_(m.weight, m.in_features, m.out_features)
                    if m.bias is not None:
                        m.bias.zero_()

    def forward(self, tokens: torch.Tensor, side: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map ``tokens`` ``(batch, seq_len)`` and ``side`` ``(batch, num_side)`` to outputs."""
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, seq_len), got shape {tuple(tokens.shape)}")
        if side.ndim != 2 or side.shape[1] != self.num_side:
            raise ValueError(
                f"side must be (batch, {self.num_side}), got shape {tuple(side.shape)}"
            )
        _, (h, _) = self.lstm(self.embedding(tokens))
        text = h[-1]
        aux = self.aux_head(text)
        main = self.main_head(self.dense(torch.cat([text, side.to(text.dtype)], dim=1)))
        if self.task != "multiclass":
            aux, main = aux.squeeze(-1), main.squeeze(-1)
        return {"main": main, "aux": aux}
