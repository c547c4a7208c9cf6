"""Optimizers by name, with Keras' defaults: :func:`make_optimizer`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from auxlab.train._checks import check_lr

__all__ = ["make_optimizer"]


def _lr(lr: float | None, default: float) -> float:
    return default if lr is None else lr  # lr=0.0 is a valid choice, so no `lr or default`


_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=_lr(lr, 1e-3)),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=_lr(lr, 1e-3)),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=_lr(lr, 1e-2), momentum=0.9),
    # Keras' RMSprop defaults (lr 1e-3, rho 0.9, epsilon 1e-7), not PyTorch's (1e-2, 0.99, 1e-8).
    "rmsprop": lambda params, lr: torch.optim.RMSprop(
        params, lr=_lr(lr, 1e-3), alpha=0.9, eps=1e-7
    ),
}


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float | None = None
) -> torch.optim.Optimizer:
    """An optimizer by name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"rmsprop"`` (Keras defaults).

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {type(name).__name__}")
    check_lr(lr)
    key = name.lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}'. Known: {', '.join(sorted(_OPTIMIZERS))}.")
    return _OPTIMIZERS[key](list(params), lr)
