"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """An optional package that a feature needs is not installed."""


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error naming the extra that provides it.

    Args:
        module: Importable module name, e.g. ``"matplotlib.pyplot"``.
        extra: The auxlab extra that installs it, e.g. ``"report"``.
        feature: What needs it, for the message (defaults to the module name).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: If the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        what = feature or top
        raise MissingDependencyError(
            f"{what} needs the optional package '{top}', which is not installed. "
            f'Install it with: pip install "auxlab[{extra}]" (or pip install {top}).'
        ) from exc
