"""A registry of strategies by name: ``create("fixed", ...)`` and ``list_strategies()``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from auxlab.weighting._base import Strategy

if TYPE_CHECKING:
    from auxlab.weighting._catalogue import StrategyInfo

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
        raise ValueError(unknown_strategy_message(name, list_all=True)) from None
    return factory(*args, **kwargs)


def close_matches(name: str) -> list[str]:
    """Registered names close to ``name`` (spelling, case, or a part of the name)."""
    names = sorted(_REGISTRY)
    low = name.lower()
    close = difflib.get_close_matches(low, names, n=4, cutoff=0.6)
    return close + [n for n in names if low and low in n and n not in close]


def unknown_strategy_message(name: str, list_all: bool = False) -> str:
    """The error for an unknown strategy name: close matches, and every name if asked or none."""
    close = close_matches(name)
    parts = [f"unknown strategy '{name}'."]
    if close:
        parts.append(f"Did you mean: {', '.join(close)}?")
    if list_all or not close:
        parts.append(f"Registered strategies: {', '.join(sorted(_REGISTRY))}.")
    return " ".join(parts)


@overload
def list_strategies(details: Literal[False] = False) -> list[str]: ...
@overload
def list_strategies(details: Literal[True]) -> list[StrategyInfo]: ...
def list_strategies(details: bool = False) -> list[str] | list[StrategyInfo]:
    """The registered strategies, sorted by name.

    Args:
        details: ``False`` (default): their names. ``True``: a
            :class:`~auxlab.weighting.StrategyInfo` for each (family, cost class, paper,
            summary, parameters), as :func:`~auxlab.weighting.describe` gives and
            ``auxlab strategies`` prints.

    Example:
        >>> "upgrad" in list_strategies()
        True
        >>> {i.name: i.cost for i in list_strategies(details=True)}["famo"]
        'one backward'
    """
    if not details:
        return sorted(_REGISTRY)
    from auxlab.weighting._catalogue import describe

    return [describe(n) for n in sorted(_REGISTRY)]
