"""Weighting strategies: how much each task's loss weighs at each step.

A strategy declares the signals it ``needs``, creates its state with ``init(tasks, main)``
and decides with ``update(signals, state) -> (weights, state)``. Build one directly or by
name with :func:`create`; :func:`list_strategies` lists the names.

Layout: one module per registered strategy, named after it (``upgrad`` lives in
``_upgrad.py``, ``nash-mtl`` in ``_nash_mtl.py``, ``famo`` in ``_famo.py``), and one
module per shared idea: the protocol (``_base``), the registry (``_registry``), the
catalogue behind ``auxlab strategies`` (``_catalogue``), what each family's strategies
share (``_loss_common``, ``_gradient_common`` with the exact solvers in ``_solvers``,
``_main_first_common``, ``_validation_common``, ``_combinator_common``). :func:`describe`
names a strategy's family, cost, paper and module.
"""

from auxlab.weighting._aligned_mtl import AlignedMTL, AlignedMTLState
from auxlab.weighting._auxilearn import AuxiLearn, AuxiLearnState, implicit_hypergradient
from auxlab.weighting._auxinash import AuxiNash, AuxiNashState, bargaining_weights
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
from auxlab.weighting._cagrad import CAGrad
from auxlab.weighting._catalogue import ParameterInfo, StrategyInfo, describe
from auxlab.weighting._chain import Chain, ChainState, chain
from auxlab.weighting._db_mtl import DBMTL, DBMTLState
from auxlab.weighting._dwa import DynamicWeightAverage, DynamicWeightAverageState
from auxlab.weighting._equal import EqualWeighting
from auxlab.weighting._famo import FAMO, FAMOState
from auxlab.weighting._fixed import FixedWeights, FixedWeightsState
from auxlab.weighting._gated import Gated, GatedState, gated
from auxlab.weighting._gls import GeometricLossStrategy
from auxlab.weighting._graddrop import GradDrop, GradDropState
from auxlab.weighting._gradient_cosine import GradientCosine, GradientCosineState
from auxlab.weighting._gradnorm import GradNorm, GradNormState
from auxlab.weighting._gradvac import GradVac, GradVacState
from auxlab.weighting._hedge import Hedge, HedgeState, hedge_update
from auxlab.weighting._imtl import IMTL
from auxlab.weighting._lookahead_val import LookaheadVal, LookaheadValState
from auxlab.weighting._main_first_common import NonFiniteSignalWarning
from auxlab.weighting._main_pcgrad import PriorityPCGrad, PriorityPCGradState
from auxlab.weighting._metabalance import MetaBalance, MetaBalanceState
from auxlab.weighting._mgda import MGDA
from auxlab.weighting._mgda_ub import MGDAUB
from auxlab.weighting._nash_mtl import NashMTL, NashMTLState
from auxlab.weighting._normalized import Normalized, NormalizedState, normalized
from auxlab.weighting._ol_aux import OLAux, OLAuxState
from auxlab.weighting._pcgrad import PCGrad, PCGradState
from auxlab.weighting._registry import create, list_strategies, register
from auxlab.weighting._relative import RelativeWeights, RelativeWeightsState, relative_share
from auxlab.weighting._rlw import RandomLossWeighting, RandomLossWeightingState
from auxlab.weighting._scale_invariant import ScaleInvariantWeighting
from auxlab.weighting._scheduled import Scheduled, ScheduledState, scheduled
from auxlab.weighting._solvers import SolverWarning
from auxlab.weighting._stch import STCH, STCHState
from auxlab.weighting._uncertainty import UncertaintyWeighting, UncertaintyWeightingState
from auxlab.weighting._upgrad import UPGrad, UPGradState
from auxlab.weighting._warmup import Warmup, WarmupState, warmup

__all__ = [
    "DBMTL",
    "FAMO",
    "IMTL",
    "MGDA",
    "MGDAUB",
    "STCH",
    "AlignedMTL",
    "AlignedMTLState",
    "AuxiLearn",
    "AuxiLearnState",
    "AuxiNash",
    "AuxiNashState",
    "CAGrad",
    "Chain",
    "ChainState",
    "DBMTLState",
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
    "GradDrop",
    "GradDropState",
    "GradNorm",
    "GradNormState",
    "GradVac",
    "GradVacState",
    "GradientCosine",
    "GradientCosineState",
    "Hedge",
    "HedgeState",
    "LookaheadVal",
    "LookaheadValState",
    "MetaBalance",
    "MetaBalanceState",
    "NashMTL",
    "NashMTLState",
    "Need",
    "NoState",
    "NonFiniteSignalWarning",
    "Normalized",
    "NormalizedState",
    "OLAux",
    "OLAuxState",
    "PCGrad",
    "PCGradState",
    "ParameterInfo",
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
    "SolverWarning",
    "Strategy",
    "StrategyInfo",
    "UPGrad",
    "UPGradState",
    "UncertaintyWeighting",
    "UncertaintyWeightingState",
    "Warmup",
    "WarmupState",
    "Weights",
    "as_decision",
    "bargaining_weights",
    "chain",
    "check_weight",
    "create",
    "describe",
    "gated",
    "hedge_update",
    "implicit_hypergradient",
    "list_strategies",
    "normalized",
    "register",
    "relative_share",
    "scheduled",
    "warmup",
]
