"""Weighting strategies: how much each task's loss weighs at each step.

A strategy declares the signals it ``needs``, creates its state with ``init(tasks, main)``
and decides with ``update(signals, state) -> (weights, state)``. Build one directly or by
name with :func:`create`; :func:`list_strategies` lists the names.

Families: fixed and scheduled weights (``_fixed``); loss-based (``_loss_based``); the hedge
(``_hedge``); gradient-based (``_gramian``, ``_projection``); main task first
(``_main_first``); combinators (``_combinators``).
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
from auxlab.weighting._combinators import (
    Chain,
    ChainState,
    Gated,
    GatedState,
    Normalized,
    NormalizedState,
    Warmup,
    WarmupState,
    chain,
    gated,
    normalized,
    warmup,
)
from auxlab.weighting._fixed import (
    EqualWeighting,
    FixedWeights,
    FixedWeightsState,
    Scheduled,
    ScheduledState,
    scheduled,
)
from auxlab.weighting._hedge import (
    Hedge,
    HedgeState,
    hedge_update,
)
from auxlab.weighting._loss_based import (
    FAMO,
    STCH,
    DynamicWeightAverage,
    DynamicWeightAverageState,
    FAMOState,
    GeometricLossStrategy,
    RandomLossWeighting,
    RandomLossWeightingState,
    ScaleInvariantWeighting,
    STCHState,
    UncertaintyWeighting,
    UncertaintyWeightingState,
)
from auxlab.weighting._main_first import (
    GradientCosine,
    GradientCosineState,
    MetaBalance,
    MetaBalanceState,
    NonFiniteSignalWarning,
    OLAux,
    OLAuxState,
    PriorityPCGrad,
    PriorityPCGradState,
    RelativeWeights,
    RelativeWeightsState,
    relative_share,
)
from auxlab.weighting._registry import create, list_strategies, register

__all__ = [
    "FAMO",
    "STCH",
    "Chain",
    "ChainState",
    "Decision",
    "DynamicWeightAverage",
    "DynamicWeightAverageState",
    "EqualWeighting",
    "FAMOState",
    "FixedWeights",
    "FixedWeightsState",
    "Gated",
    "GatedState",
    "GeometricLossStrategy",
    "GradientCosine",
    "GradientCosineState",
    "Hedge",
    "HedgeState",
    "MetaBalance",
    "MetaBalanceState",
    "Need",
    "NoState",
    "NonFiniteSignalWarning",
    "Normalized",
    "NormalizedState",
    "OLAux",
    "OLAuxState",
    "PriorityPCGrad",
    "PriorityPCGradState",
    "RandomLossWeighting",
    "RandomLossWeightingState",
    "RelativeWeights",
    "RelativeWeightsState",
    "STCHState",
    "ScaleInvariantWeighting",
    "Scheduled",
    "ScheduledState",
    "Signals",
    "Strategy",
    "UncertaintyWeighting",
    "UncertaintyWeightingState",
    "Warmup",
    "WarmupState",
    "Weights",
    "as_decision",
    "chain",
    "check_weight",
    "create",
    "gated",
    "hedge_update",
    "list_strategies",
    "normalized",
    "register",
    "relative_share",
    "scheduled",
    "warmup",
]
