"""Cases with a known answer: real problems where the auxiliary loss helps, hurts or not.

Each case is a builder ``builder(seed, **args) -> Problem`` that :class:`~auxlab.study.Study`,
``auxlab study`` and :func:`auxlab.tune` accept (``"auxlab.cases:digits_reconstruct"``).

Split protocol, the same for every case: the rows are drawn once into training, validation
and test parts (a fixed seed, :data:`SPLIT_SEED`), whatever the run's seed; the run's seed
fixes the model's initialisation and the order of the training batches. Choose on the
validation part; score the test part once, with the weights of the best validation epoch.
:data:`CASES` says each case's metric, epoch budget and what its oracle found
(``docs/advisor.md``).
"""

from __future__ import annotations

from auxlab.cases._common import SPLIT_SEED, Split, TwoHead, split_rows
from auxlab.cases._digits import multi_digits
from auxlab.cases._fashion import fashion, multi_fashion
from auxlab.cases._registry import (
    CASES,
    VERDICTS,
    Case,
    digits_distractor,
    digits_random,
    digits_reconstruct,
    digits_semi,
    fashion_reconstruct,
    fashion_rotation,
    get_case,
    solar_flare,
    yeast,
)
from auxlab.cases._tabular import solar, yeast_labels

__all__ = [
    "CASES",
    "SPLIT_SEED",
    "VERDICTS",
    "Case",
    "Split",
    "TwoHead",
    "digits_distractor",
    "digits_random",
    "digits_reconstruct",
    "digits_semi",
    "fashion",
    "fashion_reconstruct",
    "fashion_rotation",
    "get_case",
    "multi_digits",
    "multi_fashion",
    "solar",
    "solar_flare",
    "split_rows",
    "yeast",
    "yeast_labels",
]
