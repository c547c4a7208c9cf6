"""What a study trains: the :class:`Problem` a builder returns, and finding the builder."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from auxlab.objective import Objective
from auxlab.study._config import ConfigError

__all__ = ["Problem", "as_problem", "resolve_builder"]


@dataclass
class Problem:
    """What a builder returns: one model and its data, built from a seed.

    Attributes:
        model: The model, returning ``{task: output}``; initialised from the seed.
        objective: Its losses and metrics (the main task's validation metric is optimised).
        train: Training batches (e.g. a shuffled :class:`~auxlab.ArrayLoader` seeded with
            the seed).
        val: Validation batches.
        shared: The shared block, for gradient-based strategies and the diagnostics
            (default: all parameters, for the diagnostics).
        train_eval: Training batches evaluated after each epoch, for the train/validation
            gap (e.g. a fixed sample of the training set, not shuffled).
        optimizer: Optimizer name for :func:`~auxlab.fit`.
        lr: Its learning rate (``None``: the optimizer's default).
        test: Held-out batches, evaluated once after training with the weights of the best
            validation epoch. They are reported (``test`` and ``test_*`` columns), never used
            to choose: the study optimises the validation metric.
    """

    model: nn.Module
    objective: Objective
    train: Iterable[Any]
    val: Iterable[Any]
    shared: nn.Module | Iterable[torch.Tensor] | None = None
    train_eval: Iterable[Any] | None = None
    optimizer: str = "adam"
    lr: float | None = None
    test: Iterable[Any] | None = None


def as_problem(built: Any) -> Problem:
    """A builder's return value as a :class:`Problem` (a dict of its fields is accepted).

    Raises:
        TypeError: The builder returned something else.
    """
    if isinstance(built, Problem):
        return built
    if isinstance(built, Mapping):
        try:
            return Problem(**built)
        except TypeError as exc:
            raise TypeError(f"the builder returned a dict that is not a Problem: {exc}") from None
    raise TypeError(f"the builder must return an auxlab.study.Problem, got {type(built).__name__}")


def resolve_builder(ref: Any, base_dir: str | None = None) -> Callable[..., Any]:
    """The builder callable from ``"module:function"`` (or the callable itself).

    Raises:
        ConfigError: If the reference is malformed, or the module or function is missing.
    """
    if callable(ref):
        return ref  # type: ignore[no-any-return,unused-ignore]
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ConfigError(f"builder must be 'module:function', got {ref!r}")
    mod_name, attr = ref.split(":")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"builder {ref!r}: cannot import module '{mod_name}': {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"builder {ref!r}: module '{mod_name}' has no '{attr}'")
    if not callable(obj):
        raise ConfigError(f"builder {ref!r} is not callable")
    return obj  # type: ignore[no-any-return,unused-ignore]
