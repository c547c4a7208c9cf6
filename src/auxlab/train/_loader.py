"""In-memory batches (:class:`ArrayLoader`); moving a batch to a device; calling a model."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["ArrayLoader", "Batch"]

Batch = tuple[Any, Mapping[str, torch.Tensor]]


class ArrayLoader:
    """Mini-batches from in-memory tensors, re-iterable, with its own seeded shuffling.

    Cheaper than ``DataLoader(TensorDataset(...))`` for in-memory data: one index per batch,
    no per-sample collation.

    Args:
        inputs: ``{name: tensor}`` passed to the model as keyword arguments, or one tensor.
        targets: ``{task: tensor}``; may be ``None`` for prediction.
        batch_size: Rows per batch.
        shuffle: Reshuffle at every pass (epoch).
        seed: Seed of the shuffling generator; pass ``k`` gives a different order per pass.
        drop_last: Drop the last incomplete batch.
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor] | torch.Tensor,
        targets: Mapping[str, torch.Tensor] | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        batch_size = _integer("batch_size", batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        seed = _integer("seed", seed)
        if targets is not None and not isinstance(targets, Mapping):
            raise TypeError(
                "targets must be a dict {task: tensor} (or None for prediction), got "
                f"{type(targets).__name__}"
            )
        tensors = dict(inputs) if isinstance(inputs, Mapping) else {"": inputs}
        if not tensors:
            raise ValueError("inputs is an empty dict; give {name: tensor} for the model's inputs")
        named = {("inputs" if k == "" else f"input '{k}'"): v for k, v in tensors.items()}
        named.update({f"target '{k}'": v for k, v in (targets or {}).items()})
        for what, v in named.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(
                    f"{what} must be a torch tensor, got {type(v).__name__}; convert it with "
                    "torch.as_tensor(x) (and dtype=torch.float32 for float64 arrays)."
                )
            if v.ndim == 0:
                raise ValueError(f"{what} is a 0-d tensor; it needs one row per example")
        sizes = {what: len(v) for what, v in named.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs and targets must have the same number of rows, got {sizes}")
        if next(iter(sizes.values())) == 0:
            raise ValueError("inputs and targets have 0 rows; there is nothing to batch")
        self.inputs = inputs
        self.targets = dict(targets) if targets is not None else None
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.n = next(iter(sizes.values()))
        self._passes = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self._passes)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        self._passes += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = (
                {k: v[idx] for k, v in self.inputs.items()}
                if isinstance(self.inputs, Mapping)
                else self.inputs[idx]
            )
            y = {k: v[idx] for k, v in self.targets.items()} if self.targets is not None else {}
            yield x, y


def _integer(name: str, value: Any) -> int:
    """``value`` as an int (Python's or numpy's integers), or a TypeError naming it."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def call_model(model: Callable[..., Any], inputs: Any) -> Any:
    """``model(**inputs)`` for a dict, ``model(*inputs)`` for a tuple, else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def to_device(x: Any, device: torch.device) -> Any:
    """``x`` (a tensor, or dicts, tuples and lists of them) moved to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    return x


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
