"""fit / evaluate / predict: a convenience loop on the same pieces a user's own loop uses.

One module per idea: ``_loader`` (:class:`ArrayLoader`, batches on a device), ``_history``
(:class:`History`), ``_fit`` (the loop, :func:`train_step`, optimizers by name),
``_evaluate`` (:func:`evaluate`, :func:`predict`), ``_checkpoint`` (best epoch, early
stopping, checkpoints) and ``_progress`` (the bar and the epoch line).
"""

from auxlab.train._checkpoint import load_checkpoint
from auxlab.train._evaluate import evaluate, predict
from auxlab.train._fit import fit, make_optimizer, train_step
from auxlab.train._history import History
from auxlab.train._loader import ArrayLoader, Batch

__all__ = [
    "ArrayLoader",
    "Batch",
    "History",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_optimizer",
    "predict",
    "train_step",
]
