"""Public conformance checks: test your own strategies and online learners as ours are tested.

Example:
    >>> from auxlab.checks import check_strategy
    >>> from auxlab.weighting import FixedWeights
    >>> names = check_strategy(FixedWeights({"aux1": 0.2, "aux2": 0.2}))
    >>> names[:3]
    ['check_finite_weights', 'check_permutation', 'check_identical_tasks']

Gradient aggregators also claim mathematical properties (``properties``), which
:func:`check_properties` tests in float32 and float64:

    >>> from auxlab.checks import check_properties
    >>> from auxlab.weighting import UPGrad
    >>> len(check_properties(UPGrad()))  # all five hold
    5
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
from auxlab.checks._properties import (
    PROPERTIES,
    aggregate,
    check_expected_structure,
    check_linear_under_scaling,
    check_non_conflicting,
    check_permutation_invariant,
    check_properties,
    check_strongly_stationary,
    non_strong_matrices,
    property_matrices,
)
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
    "PROPERTIES",
    "STRATEGY_CHECKS",
    "aggregate",
    "check_appearing_features",
    "check_array_path_matches_dict_path",
    "check_bounded_memory",
    "check_clone",
    "check_clone_independent",
    "check_disappearing_features",
    "check_expected_structure",
    "check_extreme_scales",
    "check_finite_weights",
    "check_identical_tasks",
    "check_inputs_not_mutated",
    "check_linear_under_scaling",
    "check_non_conflicting",
    "check_online_learner",
    "check_online_seeded",
    "check_permutation",
    "check_permutation_invariant",
    "check_pickle",
    "check_predict_before_learning",
    "check_properties",
    "check_purity",
    "check_scale_reaction",
    "check_seeded",
    "check_state_structure",
    "check_strategy",
    "check_strongly_stationary",
    "make_signals",
    "non_strong_matrices",
    "online_checks",
    "property_matrices",
    "realised_update",
    "strategy_checks",
    "synthetic_stream",
]
