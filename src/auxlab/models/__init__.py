"""Reference models with auxiliary heads."""

from auxlab.models._headline import HeadlineModel

__all__ = ["HeadlineModel"]
