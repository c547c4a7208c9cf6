"""A registry of strategies by name: ``create("fixed", ...)`` and ``list_strategies()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from auxlab.weighting._base import Strategy

__all__ = ["create", "list_strategies", "register"]

_REGISTRY: dict[str, Callable[..., Strategy]] = {}

F = TypeVar("F", bound=Callable[..., Strategy])


def register(name: str) -> Callable[[F], F]:
    """Register a strategy class (or factory) under ``name``; use as a decorator.

    Raises:
        ValueError: If the name is already taken by another strategy.
    """

    def decorator(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"a strategy is already registered as '{name}'")
        _REGISTRY[name] = factory
        return factory

    return decorator


def create(name: str, *args: Any, **kwargs: Any) -> Strategy:
    """Build a registered strategy by name.

    Example:
        >>> create("fixed", {"main": 1.0, "aux": 0.2})
        FixedWeights(weights={'main': 1.0, 'aux': 0.2})

    Raises:
        ValueError: For an unknown name; the message lists the registered ones.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy '{name}'. Registered strategies: {', '.join(list_strategies())}."
        ) from None
    return factory(*args, **kwargs)


def list_strategies() -> list[str]:
    """Names of the registered strategies, sorted."""
    return sorted(_REGISTRY)
