"""Weighting strategies: how much each task's loss weighs at each step.

A strategy declares the signals it ``needs``, creates its state with ``init(tasks, main)``
and decides with ``update(signals, state) -> (weights, state)``. Build one directly or by
name with :func:`create`; :func:`list_strategies` lists the names.
"""

from auxlab.weighting._base import (
    Decision,
    Need,
    NoState,
    Signals,
    Strategy,
    Weights,
    as_decision,
    check_weight,
)
from auxlab.weighting._fixed import (
    EqualWeighting,
    FixedWeights,
    FixedWeightsState,
    Scheduled,
    ScheduledState,
    scheduled,
)
from auxlab.weighting._registry import create, list_strategies, register

__all__ = [
    "Decision",
    "EqualWeighting",
    "FixedWeights",
    "FixedWeightsState",
    "Need",
    "NoState",
    "Scheduled",
    "ScheduledState",
    "Signals",
    "Strategy",
    "Weights",
    "as_decision",
    "check_weight",
    "create",
    "list_strategies",
    "register",
    "scheduled",
]
