"""River's estimator protocol for auxlab's online learners: values, cloning, memory, pickling.

A learner is a value: its constructor stores every argument under its own name, and
``clone(**overrides)`` rebuilds it from them, with nothing learned. What it learns lives in
private attributes created on first use. Caches and scratch buffers (``_cache``,
``_buffers``) are rebuilt on demand: they are neither pickled nor copied.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Self

import numpy as np
import torch

__all__ = ["Estimator"]

#: Attributes that are rebuilt on demand, never pickled nor copied.
_TRANSIENT = ("_cache", "_buffers")


class Estimator:
    """Value semantics and river's estimator hooks (``clone``, ``mutate``, tags, memory)."""

    n_classes: int

    def _get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def clone(
        self,
        new_params: Mapping[str, Any] | None = None,
        include_attributes: bool = False,
        **overrides: Any,
    ) -> Self:
        """A fresh learner with the same arguments, some overridden; it has learned nothing.

        Args:
            new_params: Arguments to override, as a dict (river's signature).
            include_attributes: Also copy what the learner has learned (a deep copy).
            **overrides: Arguments to override, as keywords.
        """
        params = {k: copy.deepcopy(v) for k, v in self._get_params().items()}
        changes = {**(new_params or {}), **overrides}
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no argument(s) {sorted(unknown)}; "
                f"its arguments are {sorted(params)}"
            )
        params.update(changes)
        twin = type(self)(**params)
        if include_attributes:
            for k, v in self.__dict__.items():
                if k not in params and k not in _TRANSIENT:
                    twin.__dict__[k] = copy.deepcopy(v)
        return twin

    def mutate(self, new_attrs: Mapping[str, Any]) -> None:
        """Change arguments in place (river's ``mutate``); the learned state is kept."""
        params = self._get_params()
        for k, v in new_attrs.items():
            if k not in params:
                raise ValueError(f"{type(self).__name__} has no argument {k!r}")
            setattr(self, k, v)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"

    def __str__(self) -> str:
        return type(self).__name__

    @property
    def _tags(self) -> set[str]:
        return set()

    @property
    def _more_tags(self) -> set[str]:
        return set()

    @property
    def _multiclass(self) -> bool:
        return int(self.n_classes) > 2

    @property
    def _is_stochastic(self) -> bool:
        return "seed" in self._get_params()

    @property
    def _mutable_attributes(self) -> set[str]:
        return set()

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}

    def _unit_test_skips(self) -> set[str]:
        return set()

    @property
    def _raw_memory_usage(self) -> int:
        """Bytes held: tensors and arrays by their buffers, the rest by ``sys.getsizeof``."""
        seen: set[int] = set()

        def size(o: Any) -> int:
            if id(o) in seen:
                return 0
            seen.add(id(o))
            if isinstance(o, torch.Tensor):
                return o.element_size() * o.nelement() + 72
            if isinstance(o, np.ndarray):
                return int(o.nbytes) + 112
            total = sys.getsizeof(o)
            if isinstance(o, dict):
                total += sum(size(k) + size(v) for k, v in o.items())
            elif isinstance(o, (list, tuple, set)):
                total += sum(size(v) for v in o)
            elif hasattr(o, "__dict__") and not isinstance(o, type):
                total += size(o.__dict__)
            return total

        return size(self.__dict__)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in _TRANSIENT:  # caches and scratch buffers are rebuilt on demand
            state.pop(k, None)
        return state

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A reusable scratch tensor (contents undefined) for a large per-instance result.

        A fresh tensor of more than a few hundred kB comes from the system fresh every time
        (and is zeroed page by page): for a gradient the size of Aux-Drop's AuxLayer that
        costs ~3x the multiplication that fills it. Not pickled, not copied by ``clone``.
        """
        bufs = self.__dict__.setdefault("_buffers", {})
        buf = bufs.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = bufs[name] = torch.empty(shape)
        return buf
