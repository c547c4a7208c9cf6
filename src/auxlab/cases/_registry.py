"""The registry of cases: one builder per case, with its metric, epoch budget and verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from auxlab.cases._digits import multi_digits
from auxlab.cases._fashion import fashion, multi_fashion
from auxlab.cases._tabular import solar, yeast_labels
from auxlab.study._problem import Problem

__all__ = ["CASES", "VERDICTS", "Case", "get_case"]

#: What the auxiliary loss does in a case, by its oracle (``docs/advisor.md``).
VERDICTS = ("helps", "hurts", "neutral")


@dataclass(frozen=True)
class Case:
    """A problem with a known answer to "how much should the auxiliary loss weigh?".

    Attributes:
        name: The case's name (its builder is ``auxlab.cases:<name>``).
        description: What the main and auxiliary tasks are, in a sentence.
        builder: ``builder(seed, **args) -> Problem``.
        metric: The main task's metric (chosen on validation, scored on test).
        epochs: The epoch budget the oracle was measured at (the verdict may depend on it).
        expected: ``"helps"``, ``"hurts"`` or ``"neutral"``: what the oracle found (some
            weight beats weight 0 beyond the paired noise; some weight up to 1 is worse
            beyond it and none better; neither).
        data: The data set and where it comes from.
    """

    name: str
    description: str
    builder: Callable[..., Problem]
    metric: str
    epochs: int
    expected: str
    data: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.expected not in VERDICTS:
            raise ValueError(f"expected must be one of {VERDICTS}, got {self.expected!r}")

    @property
    def ref(self) -> str:
        """The builder by name, for ``Study`` worker processes and TOML files."""
        return f"auxlab.cases:{self.name}"

    def build(self, seed: int, **args: Any) -> Problem:
        """The case's :class:`Problem` for ``seed`` (``args`` override its defaults)."""
        return self.builder(seed, **args)


def digits_reconstruct(seed: int, **args: Any) -> Problem:
    """Multi-Digits, 300 labelled: the left digit's class; aux: reconstruct the left digit."""
    return multi_digits(seed, **{"main": "left", "aux": "reconstruct", **args})


def digits_semi(seed: int, **args: Any) -> Problem:
    """Multi-Digits, 150 labelled + 1,500 unlabelled: aux reconstructs the left digit."""
    kw = {"aux": "reconstruct", "n_train": 150, "n_unlabelled": 1500, "batch_size": 128}
    return multi_digits(seed, **{**kw, **args})


def digits_distractor(seed: int, **args: Any) -> Problem:
    """Multi-Digits, 300 labelled: the left digit's class; aux: the right digit's class."""
    return multi_digits(seed, **{"main": "left", "aux": "right", **args})


def digits_random(seed: int, **args: Any) -> Problem:
    """Multi-Digits, 300 labelled: the left digit's class; aux: random labels (fixed)."""
    return multi_digits(seed, **{"main": "left", "aux": "random", **args})


def fashion_reconstruct(seed: int, **args: Any) -> Problem:
    """Two garments, 200 labelled: the top-left one's class; aux: reconstruct it."""
    return multi_fashion(seed, **{"aux": "reconstruct", "n_train": 200, "batch_size": 50, **args})


def fashion_rotation(seed: int, **args: Any) -> Problem:
    """Fashion-MNIST, 1,000 labelled + 2,000 unlabelled: aux predicts the rotation."""
    kw = {"aux": "rotation", "n_unlabelled": 2000, "n_test": 2000}
    return fashion(seed, **{**kw, **args})


def yeast(seed: int, **args: Any) -> Problem:
    """Yeast: label 0 is the main task, the other 13 labels the auxiliary one."""
    return yeast_labels(seed, **args)


def solar_flare(seed: int, **args: Any) -> Problem:
    """SolarFlare: any C-class flare is the main task; the M and X flare counts are aux."""
    return solar(seed, **args)


_DIGITS = "scikit-learn digits (1,797 images of 8x8), two per 12x12 canvas"
_FASHION = "Fashion-MNIST (Debian dataset-fashion-mnist), averaged to 14x14"

#: The cases, by name. ``expected`` is the verdict of the oracle in
#: ``benchmarks/results/oracle.json`` (weights 0 ... 10 over 10 seeds, paired on test).
CASES: Mapping[str, Case] = MappingProxyType(
    {
        c.name: c
        for c in (
            Case(
                "digits_reconstruct",
                "the left digit's class (300 labelled); aux: the left digit's 64 pixels (MSE)",
                digits_reconstruct,
                "accuracy",
                150,
                "helps",
                _DIGITS,
            ),
            Case(
                "digits_semi",
                "the left digit's class (150 labelled); aux: the left digit's pixels, on "
                "1,650 composites (1,500 without the class)",
                digits_semi,
                "accuracy",
                60,
                "helps",
                _DIGITS,
            ),
            Case(
                "fashion_reconstruct",
                "the top-left garment's class (200 labelled) on a 20x20 canvas of two; aux: "
                "its 196 pixels (squared error summed over the pixels)",
                fashion_reconstruct,
                "accuracy",
                100,
                "helps",
                _FASHION,
            ),
            Case(
                "digits_distractor",
                "the left digit's class (300 labelled); aux: the right digit's class",
                digits_distractor,
                "accuracy",
                150,
                "hurts",
                _DIGITS,
            ),
            Case(
                "digits_random",
                "the left digit's class (300 labelled); aux: a random class per composite",
                digits_random,
                "accuracy",
                150,
                "hurts",
                _DIGITS,
            ),
            Case(
                "fashion_rotation",
                "the class (1,000 labelled); aux: which of four rotations an unlabelled image "
                "(2,000) was turned by",
                fashion_rotation,
                "accuracy",
                20,
                "neutral",
                _FASHION,
            ),
            Case(
                "yeast",
                "Yeast label 0 (600 training genes, AUC); aux: the other 13 labels",
                yeast,
                "auc",
                40,
                "neutral",
                "MULAN Yeast (river.datasets.Yeast), 2,417 x 103",
            ),
            Case(
                "solar_flare",
                "any C-class flare (400 training regions, AUC); aux: the M and X flare counts",
                solar_flare,
                "auc",
                40,
                "neutral",
                "UCI SolarFlare (river.datasets.SolarFlare), 1,066 x 23",
            ),
        )
    }
)


def get_case(name: str) -> Case:
    """The case called ``name``.

    Raises:
        KeyError: If there is no such case; the message lists the cases.
    """
    try:
        return CASES[name]
    except KeyError:
        raise KeyError(f"no case named {name!r}; the cases are: {', '.join(CASES)}") from None
