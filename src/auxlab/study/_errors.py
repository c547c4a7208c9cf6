"""The errors a study raises while it runs (configuration errors are in ``_config``)."""

from __future__ import annotations

__all__ = ["MetricError", "StudyError"]


class StudyError(RuntimeError):
    """A study cannot run as configured (storage, workers, a changed configuration)."""


class MetricError(ValueError):
    """The optimised metric is missing or not finite in a run."""
