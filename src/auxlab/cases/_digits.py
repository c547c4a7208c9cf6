"""Cases on scikit-learn's digits (1,797 images of 8x8 pixels, 10 classes; no download).

Multi-Digits: two digits on a 12x12 canvas, one at the top left and one at the bottom
right (overlapping in a 4x4 corner, combined by the pixel-wise maximum). The main task is
the left digit's class. The source images are split first (train / validation / test pools
of distinct images), then composed into pairs, so no test image is ever seen in training.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from auxlab._checks import check_int
from auxlab._optional import require
from auxlab.cases._common import SPLIT_SEED, Split, TwoHead, make_problem, split_rows
from auxlab.models import masked
from auxlab.study._problem import Problem

__all__ = ["multi_digits"]

#: Source images in the three pools of Multi-Digits (of 1,797): train / validation / test.
_POOLS = (600, 400, 797)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    datasets = require("sklearn.datasets", extra="data", feature="the digits cases")
    d = datasets.load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=8)
def _pairs(n_train: int, n_val: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(canvas (n, 144), left ids, right ids)``, train rows then validation then test."""
    images, labels = _digits()
    pools = split_rows(len(labels), _POOLS, SPLIT_SEED)
    rng = np.random.default_rng(SPLIT_SEED + 1)
    lefts, rights = [], []
    for pool, k in zip(pools, (n_train, n_val, n_test), strict=True):
        left = rng.choice(pool, size=k, replace=k > len(pool))
        right = rng.choice(pool, size=k, replace=True)
        lefts.append(left)
        rights.append(right)
    left, right = np.concatenate(lefts), np.concatenate(rights)
    canvas = np.zeros((len(left), 12, 12), np.float32)
    canvas[:, :8, :8] = images[left]
    canvas[:, 4:, 4:] = np.maximum(canvas[:, 4:, 4:], images[right])
    return canvas.reshape(len(left), -1), left, right


def _both_ce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of both digits' classes: ``pred`` (n, 20) logits, ``target`` (n, 2)."""
    left = torch.nn.functional.cross_entropy(pred[:, :10], target[:, 0])
    return left + torch.nn.functional.cross_entropy(pred[:, 10:], target[:, 1])


def multi_digits(
    seed: int,
    main: str = "left",
    aux: str = "reconstruct",
    n_train: int = 300,
    n_unlabelled: int = 0,
    n_val: int = 300,
    n_test: int = 1000,
    hidden: int = 64,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> Problem:
    """Multi-Digits: a question about the two digits, with an auxiliary target.

    Args:
        seed: The run's seed (initialisation, batch order). The split is fixed.
        main: ``"left"`` (the left digit's class, accuracy) or ``"greater"`` (whether the
            left digit is greater than the right one, accuracy).
        aux: ``"reconstruct"`` (the left digit's 64 pixels, MSE: it separates the digit
            from the other one), ``"classes"`` (both digits' classes, the sum of two
            cross-entropies: the concepts the question is about), ``"right"`` (the right
            digit's class: a distractor) or ``"random"`` (a random class per composite,
            fixed: labels with nothing to learn).
        n_train: Labelled training composites.
        n_unlabelled: Further training composites without the main label (the auxiliary
            target only; semi-supervised).
        n_val: Validation composites.
        n_test: Test composites.
        hidden: Width of the two hidden layers.
        batch_size: Training batch rows.
        lr: Adam's learning rate.
    """
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_int(name, v)
    n_unlabelled = check_int("n_unlabelled", n_unlabelled, minimum=0)
    if main not in ("left", "greater"):
        raise ValueError(f"main must be 'left' or 'greater', got {main!r}")
    if aux not in ("reconstruct", "classes", "right", "random"):
        raise ValueError(f"aux must be 'reconstruct', 'classes', 'right' or 'random', got {aux!r}")
    n_fit = n_train + n_unlabelled
    canvas, left, right = _pairs(n_fit, n_val, n_test)
    images, labels = _digits()
    n = len(left)
    split = Split(np.arange(n_fit), np.arange(n_fit, n_fit + n_val), np.arange(n_fit + n_val, n))
    unlabelled = np.zeros(n, bool)
    unlabelled[n_train:n_fit] = True
    if main == "left":
        y = labels[left].copy()
        y[unlabelled] = -1  # missing: the masked loss skips it
        targets = {"main": torch.as_tensor(y)}
        main_dim, main_loss = 10, masked("ce")
    else:
        yf = (labels[left] > labels[right]).astype(np.float32)
        yf[unlabelled] = np.nan
        targets = {"main": torch.as_tensor(yf)}
        main_dim, main_loss = 1, masked("bce_logits")
    aux_loss: Any
    if aux == "reconstruct":
        targets["aux"] = torch.as_tensor(images[left].reshape(n, 64))
        aux_dim, aux_loss = 64, "mse"
    elif aux == "classes":
        targets["aux"] = torch.as_tensor(np.stack([labels[left], labels[right]], 1))
        aux_dim, aux_loss = 20, _both_ce
    elif aux == "right":
        targets["aux"] = torch.as_tensor(labels[right])
        aux_dim, aux_loss = 10, "ce"
    else:
        rng = np.random.default_rng(SPLIT_SEED + 2)
        targets["aux"] = torch.as_tensor(rng.integers(0, 10, size=n))
        aux_dim, aux_loss = 10, "ce"
    model = TwoHead(144, (hidden, hidden), main_dim, aux_dim, seed)
    return make_problem(
        seed=seed,
        x=torch.as_tensor(canvas),
        targets=targets,
        split=split,
        model=model,
        losses={"main": main_loss, "aux": aux_loss},
        metric="accuracy",
        batch_size=batch_size,
        lr=lr,
        shared=model.trunk,
    )
