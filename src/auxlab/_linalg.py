"""Pure linear-algebra helpers shared by the signal side and the strategies.

Nothing here knows about tasks, losses or the Balancer: both :mod:`auxlab.signals` (which
computes per-task gradients) and :mod:`auxlab.weighting` (which decides from them) import
from this module, so neither depends on the other.
"""

from __future__ import annotations

import torch

__all__ = ["gramian"]

#: Floats per column block of :func:`gramian` on CPU (1 MiB of float32).
_GRAM_BLOCK = 2**18


def gramian(grads: torch.Tensor) -> torch.Tensor:
    """The Gramian ``G Gᵀ`` of a ``(T, d)`` gradient matrix, in column blocks on CPU.

    One product over a width of hundreds of thousands runs at a fraction of the speed of
    the same product in blocks that stay in cache (10 x 577k floats: 5.2 ms in one call,
    2.6 ms in blocks, one thread).
    """
    t, d = grads.shape
    width = max(1024, _GRAM_BLOCK // max(t, 1))
    if grads.device.type != "cpu" or d <= width:
        return grads @ grads.T
    out = torch.zeros(t, t, dtype=grads.dtype, device=grads.device)
    for start in range(0, d, width):
        block = grads[:, start : start + width]
        out.addmm_(block, block.T)
    return out
