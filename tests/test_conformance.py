"""The public conformance suite, applied to every registered strategy."""

import pytest

from auxlab.checks import STRATEGY_CHECKS, check_strategy
from auxlab.schedules import anneal_to_zero, linear
from auxlab.weighting import (
    EqualWeighting,
    FixedWeights,
    GradientCosine,
    RelativeWeights,
    Strategy,
    chain,
    create,
    gated,
    list_strategies,
    normalized,
    scheduled,
    warmup,
)

# Strategies whose constructor needs arguments get an example configured symmetrically in
# aux1 and aux2 (the symmetry checks assume that). Every other registered name must build
# with no arguments.
EXAMPLES: dict[str, object] = {
    "relative": lambda: RelativeWeights(0.2),
    "normalized": lambda: normalized(FixedWeights({"aux1": 0.2, "aux2": 0.2})),
    "gated": lambda: gated(FixedWeights({"aux1": 0.2, "aux2": 0.2})),
    "warmup": lambda: warmup(FixedWeights({"aux1": 0.2, "aux2": 0.2}), steps=3),
    "chain": lambda: chain(FixedWeights({"aux1": 0.2, "aux2": 0.2}), GradientCosine()),
    "fixed": lambda: FixedWeights({"aux1": 0.2, "aux2": 0.2}),
    "scheduled": lambda: scheduled({"aux1": linear(0.0, 1.0, 3), "aux2": linear(0.0, 1.0, 3)}),
}


def build(name: str) -> Strategy:
    factory = EXAMPLES.get(name)
    return factory() if callable(factory) else create(name)


@pytest.mark.parametrize("name", list_strategies())
@pytest.mark.parametrize("check", STRATEGY_CHECKS, ids=lambda c: c.__name__)
def test_registered_strategy_conforms(name, check):
    check(build(name))


def test_every_registered_strategy_is_covered():
    for name in list_strategies():
        assert isinstance(build(name), Strategy), name


def test_check_strategy_returns_the_checks_it_ran():
    names = check_strategy(EqualWeighting())
    assert names == [c.__name__ for c in STRATEGY_CHECKS]


def test_skip_and_unknown_check_names():
    names = check_strategy(FixedWeights({"aux1": 0.2, "aux2": 0.5}), skip=["check_identical_tasks"])
    assert "check_identical_tasks" not in names
    with pytest.raises(ValueError, match="unknown checks"):
        check_strategy(EqualWeighting(), skip=["check_nothing"])


def test_asymmetric_fixed_weights_fail_the_symmetry_check():
    with pytest.raises(AssertionError, match="identical tasks different weights"):
        check_strategy(FixedWeights({"aux1": 0.2, "aux2": 0.5}))


def test_scheduled_keeps_base_properties():
    check_strategy(scheduled({"aux1": anneal_to_zero(0.3, 4), "aux2": anneal_to_zero(0.3, 4)}))


# --- the checks catch broken strategies -------------------------------------------------------


class _Mutating(Strategy):
    scale_reaction = "independent"

    def init(self, tasks, main):
        from auxlab.weighting import NoState

        return NoState()

    def update(self, signals, state):
        signals.grads.mul_(2.0)  # in-place on the input: forbidden
        return dict.fromkeys(signals.tasks, 1.0), state


class _Unseeded(Strategy):
    scale_reaction = "independent"

    def init(self, tasks, main):
        from auxlab.weighting import NoState

        return NoState()

    def update(self, signals, state):
        import random

        return {t: random.random() for t in signals.tasks}, state


class _WrongClaim(Strategy):
    scale_reaction = "invariant"

    def init(self, tasks, main):
        from auxlab.weighting import NoState

        return NoState()

    def update(self, signals, state):
        return {t: 1.0 / float(signals.losses[t]) for t in signals.tasks}, state


class _NoClaim(Strategy):
    def init(self, tasks, main):
        from auxlab.weighting import NoState

        return NoState()

    def update(self, signals, state):
        return dict.fromkeys(signals.tasks, 1.0), state


def test_checks_catch_mutation():
    from auxlab.checks import check_purity

    with pytest.raises(AssertionError, match="mutated its signals"):
        check_purity(_Mutating())


def test_checks_catch_unseeded_randomness():
    from auxlab.checks import check_seeded

    with pytest.raises(AssertionError, match="different weights on two identical runs"):
        check_seeded(_Unseeded())


def test_checks_catch_a_wrong_scaling_claim():
    from auxlab.checks import check_scale_reaction

    with pytest.raises(AssertionError, match="claims scale_reaction='invariant'"):
        check_scale_reaction(_WrongClaim())
    # The same rule, honestly documented, passes.
    _WrongClaim.scale_reaction = "inverse"
    try:
        check_scale_reaction(_WrongClaim())
    finally:
        _WrongClaim.scale_reaction = "invariant"


def test_checks_require_a_documented_scale_reaction():
    from auxlab.checks import check_scale_reaction

    with pytest.raises(AssertionError, match="must document its reaction"):
        check_scale_reaction(_NoClaim())
