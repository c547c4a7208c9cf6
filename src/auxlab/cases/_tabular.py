"""Cases on tabular multi-output data that river ships (no download): Yeast, SolarFlare.

Rows are split once at random (:data:`~auxlab.cases._common.SPLIT_SEED`) into training,
validation and test rows; features are standardised with the training rows' statistics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from auxlab._checks import check_int
from auxlab.cases._common import SPLIT_SEED, Split, TwoHead, make_problem, split_rows
from auxlab.datasets._multi_output import MultiOutputData, solar_flare, yeast
from auxlab.study._problem import Problem

__all__ = ["solar", "yeast_labels"]


@lru_cache(maxsize=1)
def _yeast() -> MultiOutputData:
    return yeast()


@lru_cache(maxsize=1)
def _solar() -> MultiOutputData:
    return solar_flare()


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = x[train].mean(0), x[train].std(0)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def yeast_labels(
    seed: int,
    main: int = 0,
    n_train: int = 600,
    n_val: int = 600,
    hidden: int = 64,
    batch_size: int = 100,
    lr: float = 1e-3,
) -> Problem:
    """Yeast: one functional label is the main task (AUC), the other 13 the auxiliary one.

    Args:
        seed: The run's seed (initialisation, batch order). The split is fixed; the test
            part is every row left (2,417 - ``n_train`` - ``n_val``).
        main: Index of the main label (0..13).
        n_train: Training rows.
        n_val: Validation rows.
        hidden: Width of the two hidden layers.
        batch_size: Training batch rows.
        lr: Adam's learning rate.
    """
    data = _yeast()
    k = data.Y.shape[1]
    if not (isinstance(main, int) and 0 <= main < k):
        raise ValueError(f"main must be a label index in 0..{k - 1}, got {main!r}")
    check_int("n_train", n_train)
    check_int("n_val", n_val)
    n = len(data)
    train, val = split_rows(n, (n_train, n_val), SPLIT_SEED)
    test = np.setdiff1d(np.arange(n), np.concatenate([train, val]))
    x = _standardise(data.X, train)
    others = [j for j in range(k) if j != main]
    model = TwoHead(x.shape[1], (hidden, hidden), 1, len(others), seed)
    return make_problem(
        seed=seed,
        x=torch.as_tensor(x),
        targets={
            "main": torch.as_tensor(data.Y[:, main].copy()),
            "aux": torch.as_tensor(data.Y[:, others].copy()),
        },
        split=Split(train, val, test),
        model=model,
        losses={"main": "bce_logits", "aux": "bce_logits"},
        metric="auc",
        batch_size=batch_size,
        lr=lr,
        shared=model.trunk,
    )


def solar(
    seed: int,
    n_train: int = 400,
    n_val: int = 300,
    hidden: int = 32,
    batch_size: int = 100,
    lr: float = 1e-3,
) -> Problem:
    """SolarFlare: whether a region has any C-class flare (AUC); the M and X counts as aux.

    Args:
        seed: The run's seed (initialisation, batch order). The split is fixed; the test
            part is every row left (1,066 - ``n_train`` - ``n_val``).
        n_train: Training rows.
        n_val: Validation rows.
        hidden: Width of the two hidden layers.
        batch_size: Training batch rows.
        lr: Adam's learning rate.
    """
    check_int("n_train", n_train)
    check_int("n_val", n_val)
    data = _solar()
    n = len(data)
    train, val = split_rows(n, (n_train, n_val), SPLIT_SEED)
    test = np.setdiff1d(np.arange(n), np.concatenate([train, val]))
    x = _standardise(data.X, train)
    c = data.target_names.index("c-class-flares")
    mx = [data.target_names.index(t) for t in ("m-class-flares", "x-class-flares")]
    model = TwoHead(x.shape[1], (hidden, hidden), 1, 2, seed)
    return make_problem(
        seed=seed,
        x=torch.as_tensor(x),
        targets={
            "main": torch.as_tensor((data.Y[:, c] > 0).astype(np.float32)),
            "aux": torch.as_tensor(data.Y[:, mx].copy()),
        },
        split=Split(train, val, test),
        model=model,
        losses={"main": "bce_logits", "aux": "mse"},
        metric="auc",
        batch_size=batch_size,
        lr=lr,
        shared=model.trunk,
    )
