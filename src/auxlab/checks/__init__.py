"""Public conformance checks: test your own strategies the way the built-in ones are tested.

Example:
    >>> from auxlab.checks import check_strategy
    >>> from auxlab.weighting import FixedWeights
    >>> names = check_strategy(FixedWeights({"aux1": 0.2, "aux2": 0.2}))
    >>> names[:3]
    ['check_finite_weights', 'check_permutation', 'check_identical_tasks']
"""

from auxlab.checks._strategy import (
    STRATEGY_CHECKS,
    check_clone,
    check_extreme_scales,
    check_finite_weights,
    check_identical_tasks,
    check_permutation,
    check_pickle,
    check_purity,
    check_scale_reaction,
    check_seeded,
    check_state_structure,
    check_strategy,
    make_signals,
    realised_update,
    strategy_checks,
)

__all__ = [
    "STRATEGY_CHECKS",
    "check_clone",
    "check_extreme_scales",
    "check_finite_weights",
    "check_identical_tasks",
    "check_permutation",
    "check_pickle",
    "check_purity",
    "check_scale_reaction",
    "check_seeded",
    "check_state_structure",
    "check_strategy",
    "make_signals",
    "realised_update",
    "strategy_checks",
]
