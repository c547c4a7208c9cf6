"""Public conformance checks: test your own strategies and online learners as ours are tested.

Example:
    >>> from auxlab.checks import check_strategy
    >>> from auxlab.weighting import FixedWeights
    >>> names = check_strategy(FixedWeights({"aux1": 0.2, "aux2": 0.2}))
    >>> names[:3]
    ['check_finite_weights', 'check_permutation', 'check_identical_tasks']
"""

from auxlab.checks._online import (
    ONLINE_CHECKS,
    check_appearing_features,
    check_array_path_matches_dict_path,
    check_bounded_memory,
    check_clone_independent,
    check_disappearing_features,
    check_inputs_not_mutated,
    check_online_learner,
    check_predict_before_learning,
    online_checks,
    synthetic_stream,
)
from auxlab.checks._online import check_seeded as check_online_seeded
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
    "ONLINE_CHECKS",
    "STRATEGY_CHECKS",
    "check_appearing_features",
    "check_array_path_matches_dict_path",
    "check_bounded_memory",
    "check_clone",
    "check_clone_independent",
    "check_disappearing_features",
    "check_extreme_scales",
    "check_finite_weights",
    "check_identical_tasks",
    "check_inputs_not_mutated",
    "check_online_learner",
    "check_online_seeded",
    "check_permutation",
    "check_pickle",
    "check_predict_before_learning",
    "check_purity",
    "check_scale_reaction",
    "check_seeded",
    "check_state_structure",
    "check_strategy",
    "make_signals",
    "online_checks",
    "realised_update",
    "strategy_checks",
    "synthetic_stream",
]
