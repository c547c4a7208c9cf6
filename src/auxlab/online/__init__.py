"""Online learning with haphazard inputs: ODL (hedge backpropagation), Aux-Net, Aux-Drop.

The default learner, :class:`HedgeEnsemble`, hedges a deep learner and the online logistic
model (docs/online.md gives its regret bound and the left-out table that supports it).

Learners use river's verbs on dict inputs (a missing feature is a missing key) and have a
fast array path over a whole stream that is the same computation:

    >>> from auxlab.online import AuxDrop
    >>> model = AuxDrop(n_layers=3, n_units=8, aux_units=20, seed=0)
    >>> model.learn_one({"a": 1.0, "b": 0.5}, True)
    >>> model.predict_one({"a": 1.0}) in (True, False)
    True

When river is installed, the learners are registered as (virtual) subclasses of
``river.base.Classifier``, so ``river.checks`` and ``river.evaluate`` accept them.
"""

from __future__ import annotations

import importlib.util

from auxlab.online._auxdrop import AuxDrop, auxdrop_drop_probability
from auxlab.online._auxnet import AuxNet
from auxlab.online._base import OnlineClassifier
from auxlab.online._ensemble import HedgeEnsemble, hedge_mixture
from auxlab.online._evaluate import (
    ProgressiveResult,
    classification_metrics,
    prior_corrected,
    progressive_evaluate,
    summarise,
)
from auxlab.online._hbp import HedgeBackprop
from auxlab.online._logistic import OnlineLogistic
from auxlab.online._streams import (
    MASK_KINDS,
    haphazard_mask,
    iter_dicts,
    obsolete_mask,
    reappearing_mask,
    sudden_mask,
    trapezoidal_mask,
    variable_p_mask,
    window_mask,
)

__all__ = [
    "LEARNERS",
    "MASK_KINDS",
    "AuxDrop",
    "AuxNet",
    "HedgeBackprop",
    "HedgeEnsemble",
    "OnlineClassifier",
    "OnlineLogistic",
    "ProgressiveResult",
    "auxdrop_drop_probability",
    "classification_metrics",
    "haphazard_mask",
    "hedge_mixture",
    "iter_dicts",
    "obsolete_mask",
    "prior_corrected",
    "progressive_evaluate",
    "reappearing_mask",
    "sudden_mask",
    "summarise",
    "trapezoidal_mask",
    "variable_p_mask",
    "window_mask",
]

#: The single learners by their command-line name (``auxlab online`` also runs ``ensemble``,
#: the default :class:`HedgeEnsemble` over two of them).
LEARNERS: dict[str, type[OnlineClassifier]] = {
    "hbp": HedgeBackprop,
    "auxnet": AuxNet,
    "auxdrop": AuxDrop,
    "logistic": OnlineLogistic,
}


def _register_with_river() -> None:
    if importlib.util.find_spec("river") is None:
        return
    from river import base

    for cls in (*LEARNERS.values(), HedgeEnsemble):
        base.Classifier.register(cls)


_register_with_river()
