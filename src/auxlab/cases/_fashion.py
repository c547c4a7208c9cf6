"""Cases on Fashion-MNIST (the Debian package ``dataset-fashion-mnist``; no download).

Images are averaged down to 14x14 (196 pixels) so that a run takes seconds on one CPU
thread. The labelled, unlabelled and validation images are drawn from the official
training set, the test images from the official test set; the draw is fixed
(:data:`~auxlab.cases._common.SPLIT_SEED`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from auxlab._checks import check_int
from auxlab.cases._common import SPLIT_SEED, Split, TwoHead, make_problem, split_rows
from auxlab.datasets._fashion_mnist import fashion_mnist
from auxlab.models import masked
from auxlab.study._problem import Problem

__all__ = ["fashion", "multi_fashion"]


@lru_cache(maxsize=1)
def _small() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train images, train labels, test images, test labels)``, images 14x14 in [0, 1]."""
    data = fashion_mnist()

    def pool(x: np.ndarray) -> np.ndarray:
        f = x.astype(np.float32) / 255.0
        return f.reshape(len(x), 14, 2, 14, 2).mean(axis=(2, 4))

    return pool(data.x_train), data.y_train, pool(data.x_test), data.y_test


def fashion(
    seed: int,
    aux: str = "rotation",
    n_train: int = 1000,
    n_unlabelled: int = 5000,
    n_val: int = 1000,
    n_test: int = 5000,
    noise: float = 0.0,
    hidden: int = 128,
    batch_size: int = 256,
    lr: float = 2e-3,
) -> Problem:
    """Fashion-MNIST with few labels: the class, with an auxiliary task on all images.

    Args:
        seed: The run's seed (initialisation, batch order). The split is fixed.
        aux: ``"rotation"`` (the unlabelled images are turned by 0, 90, 180 or 270 degrees,
            drawn once per image, and the auxiliary task says which; labelled images are
            upright) or ``"reconstruct"`` (the 196 clean pixels, MSE; with ``noise``, a
            denoising target that is not in the input).
        n_train: Labelled training images.
        n_unlabelled: Training images without the class (the auxiliary target only).
        n_val: Validation images (official training set, disjoint from the others).
        n_test: Test images (official test set).
        noise: Standard deviation of Gaussian noise on the input pixels (drawn once per
            image): the input is a noisy image, the clean one is known at training time only.
        hidden: Width of the two hidden layers.
        batch_size: Training batch rows.
        lr: Adam's learning rate.
    """
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_int(name, v)
    n_unlabelled = check_int("n_unlabelled", n_unlabelled, minimum=0)
    if aux not in ("rotation", "reconstruct"):
        raise ValueError(f"aux must be 'rotation' or 'reconstruct', got {aux!r}")
    xtr, ytr, xte, yte = _small()
    lab, unl, val = split_rows(len(ytr), (n_train, n_unlabelled, n_val), SPLIT_SEED)
    (test,) = split_rows(len(yte), (n_test,), SPLIT_SEED)
    images = np.concatenate([xtr[lab], xtr[unl], xtr[val], xte[test]])
    y = np.concatenate([ytr[lab], np.full(len(unl), -1), ytr[val], yte[test]]).astype(np.int64)
    n = len(y)
    fit_rows = n_train + n_unlabelled
    split = Split(
        np.arange(fit_rows), np.arange(fit_rows, fit_rows + n_val), np.arange(fit_rows + n_val, n)
    )
    targets = {"main": torch.as_tensor(y)}
    if aux == "rotation":
        turns = np.zeros(n, np.int64)
        turns[n_train:fit_rows] = np.random.default_rng(SPLIT_SEED + 5).integers(0, 4, n_unlabelled)
        for k in (1, 2, 3):
            rows = turns == k
            images[rows] = np.rot90(images[rows], k, axes=(1, 2))
        targets["aux"] = torch.as_tensor(turns)
        aux_dim, aux_loss = 4, "ce"
    else:
        targets["aux"] = torch.as_tensor(images.reshape(n, -1).copy())
        aux_dim, aux_loss = 196, "mse"
    flat = images.reshape(n, -1)
    if noise:
        flat = flat + np.random.default_rng(SPLIT_SEED + 6).normal(0, noise, flat.shape)
    x = torch.as_tensor(np.ascontiguousarray(flat, dtype=np.float32))
    model = TwoHead(196, (hidden, hidden), 10, aux_dim, seed)
    return make_problem(
        seed=seed,
        x=x,
        targets=targets,
        split=split,
        model=model,
        losses={"main": masked("ce"), "aux": aux_loss},
        metric="accuracy",
        batch_size=batch_size,
        lr=lr,
        shared=model.trunk,
    )


def _sse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the pixels, averaged over the images."""
    return ((pred - target) ** 2).sum(-1).mean()


def multi_fashion(
    seed: int,
    aux: str = "reconstruct",
    n_train: int = 500,
    n_unlabelled: int = 0,
    n_val: int = 500,
    n_test: int = 2000,
    hidden: int = 128,
    batch_size: int = 100,
    lr: float = 2e-3,
) -> Problem:
    """Two garments on a 20x20 canvas; the main task is the top-left one's class.

    The garments sit at the top left and the bottom right, overlap in 8x8 pixels and are
    combined by the maximum.

    The source images of the training and validation composites come from disjoint parts of
    the official training set, those of the test composites from the official test set.

    Args:
        seed: The run's seed (initialisation, batch order). The split is fixed.
        aux: ``"reconstruct"`` (the top-left garment's 196 pixels, the squared error summed
            over the pixels and averaged over the images: it separates the garment from the
            other one) or ``"other"`` (the other garment's class: a distractor).
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
    n_fit = n_train + n_unlabelled
    if aux not in ("reconstruct", "other"):
        raise ValueError(f"aux must be 'reconstruct' or 'other', got {aux!r}")
    xtr, ytr, xte, yte = _small()
    pool_train, pool_val = split_rows(len(ytr), (2 * n_fit, 2 * n_val), SPLIT_SEED)
    (pool_test,) = split_rows(len(yte), (min(2 * n_test, len(yte)),), SPLIT_SEED)
    rng = np.random.default_rng(SPLIT_SEED + 7)
    firsts, seconds = [], []
    sources = (
        (xtr, ytr, pool_train, n_fit),
        (xtr, ytr, pool_val, n_val),
        (xte, yte, pool_test, n_test),
    )
    for _, _, pool, k in sources:
        pick = rng.permutation(pool)
        firsts.append(pick[:k])
        seconds.append(pick[k : 2 * k] if len(pick) >= 2 * k else rng.choice(pool, k))
    imgs = [src[0] for src in sources]
    labs = [src[1] for src in sources]
    first = np.concatenate([x[i] for x, i in zip(imgs, firsts, strict=True)])
    second = np.concatenate([x[i] for x, i in zip(imgs, seconds, strict=True)])
    y1 = np.concatenate([y[i] for y, i in zip(labs, firsts, strict=True)])
    y2 = np.concatenate([y[i] for y, i in zip(labs, seconds, strict=True)])
    n = len(y1)
    canvas = np.zeros((n, 20, 20), np.float32)
    canvas[:, :14, :14] = first
    canvas[:, 6:, 6:] = np.maximum(canvas[:, 6:, 6:], second)
    split = Split(np.arange(n_fit), np.arange(n_fit, n_fit + n_val), np.arange(n_fit + n_val, n))
    y1 = y1.astype(np.int64)
    y1[n_train:n_fit] = -1  # missing: the masked loss skips it
    aux_loss: Any
    if aux == "reconstruct":
        aux_target, aux_dim, aux_loss = torch.as_tensor(first.reshape(n, -1)), 196, _sse
    else:
        aux_target, aux_dim, aux_loss = torch.as_tensor(y2.astype(np.int64)), 10, "ce"
    model = TwoHead(400, (hidden, hidden), 10, aux_dim, seed)
    return make_problem(
        seed=seed,
        x=torch.as_tensor(canvas.reshape(n, -1)),
        targets={"main": torch.as_tensor(y1), "aux": aux_target},
        split=split,
        model=model,
        losses={"main": masked("ce"), "aux": aux_loss},
        metric="accuracy",
        batch_size=batch_size,
        lr=lr,
        shared=model.trunk,
    )
