"""Exceptions that auxlab raises, so users can catch them by kind."""

from __future__ import annotations

__all__ = ["NonFiniteLossError", "TaskMismatchError"]


class TaskMismatchError(ValueError):
    """Task names disagree between outputs, targets, losses or weights."""


class NonFiniteLossError(FloatingPointError):
    """A task's loss is NaN or infinite.

    Attributes:
        task: The first task whose loss is not finite.
        step: The Balancer step at which it happened.
    """

    def __init__(self, task: str, step: int, value: float) -> None:
        super().__init__(
            f"the loss of task '{task}' is {value} at step {step}. Check the inputs and targets "
            "of that task, lower the learning rate, or pass nan_policy='skip' to the Balancer "
            "to skip such steps (they are counted in Balancer.skipped_steps)."
        )
        self.task = task
        self.step = step
