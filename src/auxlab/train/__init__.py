"""fit / evaluate / predict: a convenience loop on the same pieces a user's own loop uses.

One module per idea: ``_loader`` (:class:`ArrayLoader`, batches on a device), ``_history``
(:class:`History`), ``_fit`` (the loop, :func:`train_step`),
``_evaluate`` (:func:`evaluate`, :func:`predict`), ``_checkpoint`` (best epoch, early
stopping, checkpoints), ``_progress`` (the bar and the epoch line), ``_optimizers``
(optimizers by name), ``_forkmerge`` (ForkMerge: branches merged on validation) and
``_checks`` (``fit``'s argument checks).
"""

from auxlab.train._checkpoint import load_checkpoint
from auxlab.train._evaluate import evaluate, predict
from auxlab.train._fit import fit, train_step
from auxlab.train._forkmerge import ForkMergeResult, MergeRecord, forkmerge, merge_states
from auxlab.train._history import History
from auxlab.train._loader import ArrayLoader, Batch
from auxlab.train._optimizers import make_optimizer

__all__ = [
    "ArrayLoader",
    "Batch",
    "ForkMergeResult",
    "History",
    "MergeRecord",
    "evaluate",
    "fit",
    "forkmerge",
    "load_checkpoint",
    "make_optimizer",
    "merge_states",
    "predict",
    "train_step",
]
