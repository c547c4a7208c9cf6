"""Reference models with auxiliary heads."""

from auxlab.models._googlenet import (
    GOOGLENET_AUX_WEIGHT,
    GoogLeNetAuxHead,
    Inception,
    SmallInception,
    googlenet_loss_weights,
    small_googlenet,
)
from auxlab.models._headline import HeadlineModel
from auxlab.models._heads import AuxHeads, attach_heads, strip_aux
from auxlab.models._multi_output import (
    MultiOutputMLP,
    Target,
    masked,
    masked_metric,
    multilabel_scores,
)

__all__ = [
    "GOOGLENET_AUX_WEIGHT",
    "AuxHeads",
    "GoogLeNetAuxHead",
    "HeadlineModel",
    "Inception",
    "MultiOutputMLP",
    "SmallInception",
    "Target",
    "attach_heads",
    "googlenet_loss_weights",
    "masked",
    "masked_metric",
    "multilabel_scores",
    "small_googlenet",
    "strip_aux",
]
