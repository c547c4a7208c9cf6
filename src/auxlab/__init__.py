"""auxlab: train neural networks with auxiliary losses and choose their weights.

The core pieces, as in DESIGN.md: an :class:`Objective` turns outputs and targets into named
losses; a strategy (:mod:`auxlab.weighting`) decides the weights; a :class:`Balancer` computes
what the strategy needs and applies the weights with one backward. :func:`fit` is an optional
loop built on the same pieces.
"""

from auxlab import diagnostics, schedules, weighting
from auxlab._errors import NonFiniteLossError, TaskMismatchError
from auxlab._optional import MissingDependencyError
from auxlab._tune import TuneResult, tune
from auxlab.balancer import Balancer, StepRecord
from auxlab.objective import Losses, Objective
from auxlab.train import (
    ArrayLoader,
    ForkMergeResult,
    History,
    evaluate,
    fit,
    forkmerge,
    load_checkpoint,
    make_optimizer,
    predict,
    train_step,
)
from auxlab.weighting import EqualWeighting, FixedWeights, scheduled

__version__ = "0.1.0.dev0"

__all__ = [
    "ArrayLoader",
    "Balancer",
    "EqualWeighting",
    "FixedWeights",
    "ForkMergeResult",
    "History",
    "Losses",
    "MissingDependencyError",
    "NonFiniteLossError",
    "Objective",
    "StepRecord",
    "TaskMismatchError",
    "TuneResult",
    "__version__",
    "diagnostics",
    "evaluate",
    "fit",
    "forkmerge",
    "load_checkpoint",
    "make_optimizer",
    "predict",
    "scheduled",
    "schedules",
    "train_step",
    "tune",
    "weighting",
]
