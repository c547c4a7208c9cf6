"""In-memory batches (:class:`ArrayLoader`); moving a batch to a device; calling a model."""

from __future__ import annotations

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
        tensors = dict(inputs) if isinstance(inputs, Mapping) else {"": inputs}
        sizes = {k: len(v) for k, v in tensors.items()}
        sizes.update({f"target '{k}'": len(v) for k, v in (targets or {}).items()})
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs and targets must have the same number of rows, got {sizes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
