"""Class-balanced loss weights for the online learners (our default mode; not from the papers).

The haphazard-input benchmarks score balanced accuracy, and several of their streams are
imbalanced (german 70 % / 30 %, svmguide3 76 % / 24 %, a8a 76 % / 24 %). A learner trained on
the plain cross-entropy estimates ``P(y | x)`` and, at the plain argmax, favours the majority
class; early in a stream, when its experts still predict the class prior, it predicts the
majority class for every instance. Weighting instance ``t``'s loss by the inverse frequency
of its class among the labels seen *before* it makes the learner estimate the posterior
under balanced classes instead, whose argmax is the balanced-accuracy decision. It uses only
labels already revealed, so it is a valid online learner.
"""

from __future__ import annotations

__all__ = ["CLASS_WEIGHTS", "ClassBalance", "resolve_class_weight"]

#: The values of ``class_weight``: ``"balanced"`` or ``"none"``.
CLASS_WEIGHTS = ("balanced", "none")


def resolve_class_weight(value: str | None, ours: bool, name: str) -> bool:
    """Whether to weight by class: ``None`` takes the mode's default (ours: balanced)."""
    if value is None:
        return ours
    if value not in CLASS_WEIGHTS:
        raise ValueError(f"{name}: class_weight must be None, 'balanced' or 'none', got {value!r}")
    return value == "balanced"


class ClassBalance:
    """Running class counts and the weight ``w_y = (n + K) / (K · (c_y + 1))``.

    ``n`` is the number of labels seen before this one and ``c_y`` how many of them were
    ``y`` (each count starts at 1, so the first instance has weight 1 and no class weight
    is infinite). With balanced classes every weight tends to 1; the mean weight over the
    stream stays near 1, so the step size keeps its meaning.

    Example:
        >>> b = ClassBalance(2)
        >>> [round(b.observe(y), 4) for y in (1, 1, 0)]  # weights before each count
        [1.0, 0.75, 2.0]
    """

    def __init__(self, n_classes: int) -> None:
        self.counts = [0.0] * int(n_classes)

    def weight(self, y: int) -> float:
        """The weight of an instance of class ``y`` given the labels counted so far."""
        k = len(self.counts)
        return (sum(self.counts) + k) / (k * (self.counts[y] + 1.0))

    def observe(self, y: int) -> float:
        """The weight of this instance, then count its label."""
        w = self.weight(y)
        self.counts[y] += 1.0
        return w
