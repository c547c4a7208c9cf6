"""A builder for ``auxlab study``: ``builder(seed, **builder_args) -> Problem``.

``tiny``: synthetic data, for trying the study machinery in seconds
(``builder = "study_builders:tiny"``; the TOML's folder is on the path). The headline model
on the tweets is the library's own builder, ``auxlab.demo:headline`` (what ``auxlab demo``
runs); ``study_headline.toml`` uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from auxlab import ArrayLoader, Objective
from auxlab.study import Problem


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
