"""Builders for ``auxlab study``: ``builder(seed, **builder_args) -> Problem``.

``headline``: the Keras guide's headline model on real tweets (a small variant that a study
of a few weights and seeds runs in minutes on 2 CPU cores). ``tiny``: synthetic data, for
trying the study machinery in seconds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from auxlab import ArrayLoader, Objective
from auxlab.models import HeadlineModel
from auxlab.study import Problem

_CACHE: dict[tuple[int, int, int | None], object] = {}


def headline(
    seed: int,
    limit: int | None = 4000,
    max_len: int = 30,
    num_words: int = 5000,
    embed_dim: int = 64,
    batch_size: int = 64,
) -> Problem:
    """The headline model (text -> LSTM -> aux head; + side features -> main head) on tweets.

    The data split is fixed (time order); the seed sets the model's initialisation and the
    shuffling. The gap is measured on a fixed sample of the training split.
    """
    from auxlab.datasets import tweets

    key = (max_len, num_words, limit)
    if key not in _CACHE:  # one load per worker process
        _CACHE[key] = tweets(max_len=max_len, num_words=num_words, limit=limit)
    data = _CACHE[key]
    train_x, train_y = data.train.inputs(), data.train.targets()  # type: ignore[attr-defined]
    model = HeadlineModel(
        vocab_size=num_words,
        seq_len=max_len,
        embed_dim=embed_dim,
        num_side=len(data.side_names),  # type: ignore[attr-defined]
        task="binary",
        seed=seed,
    )
    n_gap = min(len(data.train), len(data.val))  # type: ignore[attr-defined]
    idx = torch.from_numpy(np.random.default_rng(0).choice(len(data.train), n_gap, replace=False))  # type: ignore[attr-defined]
    return Problem(
        model=model,
        objective=Objective(model.loss, metrics=["auc"]),
        train=ArrayLoader(train_x, train_y, batch_size=batch_size, shuffle=True, seed=seed),
        val=ArrayLoader(data.val.inputs(), data.val.targets(), batch_size=512),  # type: ignore[attr-defined]
        shared=[*model.embedding.parameters(), *model.lstm.parameters()],
        train_eval=ArrayLoader(
            {k: v[idx] for k, v in train_x.items()},
            {k: v[idx] for k, v in train_y.items()},
            batch_size=512,
        ),
        optimizer="rmsprop",
        lr=1e-3,
    )


class _Tiny(nn.Module):
    output_names = ("main", "aux")

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(8, 16)
        self.head_main = nn.Linear(16, 1)
        self.head_aux = nn.Linear(16, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return {"main": self.head_main(h).squeeze(-1), "aux": self.head_aux(h).squeeze(-1)}


def tiny(seed: int, n: int = 256) -> Problem:
    """Synthetic: the auxiliary label is a clean version of the main task's noisy one."""

    def data(rows: int, s: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(s)
        x = torch.randn(rows, 8, generator=g)
        z = x[:, 0] - x[:, 1] + 0.5 * x[:, 2]
        noisy = (z + torch.randn(rows, generator=g) > 0).float()
        return x, {"main": noisy, "aux": (z > 0).float()}

    x, y = data(n, 0)
    xv, yv = data(256, 1)
    model = _Tiny(seed)
    return Problem(
        model=model,
        objective=Objective({"main": "bce_logits", "aux": "bce_logits"}, metrics={"main": ["auc"]}),
        train=ArrayLoader(x, y, batch_size=32, shuffle=True, seed=seed),
        val=ArrayLoader(xv, yv, batch_size=256),
        shared=model.trunk,
        train_eval=ArrayLoader(x, y, batch_size=256),
        optimizer="adam",
        lr=0.01,
    )
