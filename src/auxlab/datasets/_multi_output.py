"""Real multi-output data sets: SolarFlare, Yeast, vega ``cars``, Linnerud.

Each loader reads data that an optional package ships in its wheel (nothing is downloaded)
and returns a :class:`MultiOutputData` of numpy arrays. The packages are imported lazily;
a missing one raises :class:`~auxlab.MissingDependencyError` naming the ``data`` extra.

============  ==========  =====================================  ===========================
loader        package     shape                                  targets
============  ==========  =====================================  ===========================
solar_flare   river       1,066 x 10 (23 after one-hot)          3 flare counts (C, M, X)
yeast         river       2,417 x 103                            14 binary labels
cars          vega        406 x 7 features (9 columns)              MPG, acceleration,
              _datasets                                          horsepower (with NaN)
linnerud      scikit-     20 x 3                                 weight, waist, pulse
              learn
============  ==========  =====================================  ===========================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auxlab._optional import require

__all__ = ["CARS_TARGETS", "MultiOutputData", "cars", "linnerud", "solar_flare", "yeast"]

#: Default targets of :func:`cars` (vega ``cars`` column names).
CARS_TARGETS: tuple[str, ...] = ("Miles_per_Gallon", "Acceleration", "Horsepower")


@dataclass(frozen=True, eq=False)
class MultiOutputData:
    """Features and several named targets.

    Attributes:
        X: ``(n, p)`` float32 features (categorical columns one-hot encoded).
        Y: ``(n, k)`` float32 targets; NaN marks a missing value.
        feature_names: ``p`` names; a one-hot column is ``"<column>=<value>"``.
        target_names: ``k`` names.
        kind: ``"regression"`` or ``"multilabel"`` (0/1 targets).
        source: Where the data come from, for reports.
    """

    X: np.ndarray
    Y: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    kind: str
    source: str

    def __post_init__(self) -> None:
        n, p = self.X.shape
        if self.Y.ndim != 2 or len(self.Y) != n:
            raise ValueError(f"X {self.X.shape} and Y {self.Y.shape} do not match")
        if len(self.feature_names) != p or len(self.target_names) != self.Y.shape[1]:
            raise ValueError("feature_names and target_names must match the columns")

    def __len__(self) -> int:
        return len(self.X)

    def targets(self, rows: Any = slice(None)) -> dict[str, np.ndarray]:
        """``{target name: column}``, optionally for some rows only."""
        return {name: self.Y[rows, j] for j, name in enumerate(self.target_names)}

    def __repr__(self) -> str:
        return (
            f"MultiOutputData({self.source}: X {self.X.shape}, Y {self.Y.shape}, "
            f"targets {list(self.target_names)})"
        )


def _one_hot(
    rows: Sequence[Mapping[str, Any]], categorical: Iterable[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Encode dict rows: numbers as they are, categorical columns one-hot (sorted levels)."""
    cats = set(categorical)
    columns = list(rows[0])
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for col in columns:
        values = [r[col] for r in rows]
        if col in cats:
            levels = sorted({str(v) for v in values})
            block = np.array([[str(v) == lv for lv in levels] for v in values], dtype=np.float32)
            names += [f"{col}={lv}" for lv in levels]
        else:
            block = np.array(values, dtype=np.float32).reshape(-1, 1)
            names.append(col)
        blocks.append(block)
    return np.concatenate(blocks, axis=1), tuple(names)


def solar_flare() -> MultiOutputData:
    """UCI Solar Flare (river's ``SolarFlare``): 1,066 regions, 3 flare counts to predict.

    Features: the three categorical columns (``zurich-class``, ``largest-spot-size``,
    ``spot-distribution``) one-hot encoded, and the seven small integer columns as they are,
    23 columns in all (``zurich-class`` never takes the value A). Targets: the numbers of
    C-, M- and X-class flares in the next 24 h (mostly zero).

    Needs ``river`` (the ``data`` extra).
    """
    datasets = require("river.datasets", extra="data", feature="the SolarFlare loader")
    xs, ys = [], []
    for x, y in datasets.SolarFlare():
        xs.append(x)
        ys.append(y)
    X, names = _one_hot(xs, ("zurich-class", "largest-spot-size", "spot-distribution"))
    targets = tuple(ys[0])
    Y = np.array([[row[t] for t in targets] for row in ys], dtype=np.float32)
    return MultiOutputData(X, Y, names, targets, "regression", "river.datasets.SolarFlare (UCI)")


def yeast() -> MultiOutputData:
    """MULAN Yeast (river's ``Yeast``): 2,417 genes, 103 features, 14 functional labels.

    Features are already real-valued and roughly standardised. Targets are 0/1 (a gene has
    4.2 labels on average).

    Needs ``river`` (the ``data`` extra).
    """
    datasets = require("river.datasets", extra="data", feature="the Yeast loader")
    xs, ys = [], []
    for x, y in datasets.Yeast():
        xs.append(x)
        ys.append(y)
    features = tuple(xs[0])
    labels = tuple(ys[0])
    X = np.array([[row[f] for f in features] for row in xs], dtype=np.float32)
    Y = np.array([[bool(row[t]) for t in labels] for row in ys], dtype=np.float32)
    return MultiOutputData(X, Y, features, labels, "multilabel", "river.datasets.Yeast (MULAN)")


def cars(targets: Sequence[str] = CARS_TARGETS, drop_missing: bool = False) -> MultiOutputData:
    """The vega ``cars`` data (406 cars, 1970-1982): several car properties to predict at once.

    Features are the columns that are not targets, out of ``Cylinders``, ``Displacement``,
    ``Horsepower``, ``Weight_in_lbs``, ``Acceleration``, ``Miles_per_Gallon``, ``Year`` (as
    the model year, 70-82) and ``Origin`` (one-hot). ``Name`` is dropped. Missing values are
    NaN: ``Miles_per_Gallon`` has 8, ``Horsepower`` 6. As targets they are masked per task
    (see :func:`auxlab.models.masked`); a feature with a missing value drops its row.

    Args:
        targets: Columns to predict; default miles per gallon, acceleration (0-60 mph
            seconds) and horsepower.
        drop_missing: Also drop rows with a missing target.

    Needs ``vega_datasets`` (the ``data`` extra; pandas is not used).
    """
    vega = require("vega_datasets", extra="data", feature="the cars loader")
    # The JSON file that the wheel ships, read with the standard library: no pandas, and
    # none of the warnings of pandas.read_json's date parsing.
    with open(vega.local_data.cars.filepath, encoding="utf-8") as f:
        records: list[dict[str, Any]] = json.load(f)
    numeric = [
        "Miles_per_Gallon",
        "Cylinders",
        "Displacement",
        "Horsepower",
        "Weight_in_lbs",
        "Acceleration",
    ]
    unknown = [t for t in targets if t not in numeric]
    if unknown or not targets:
        raise ValueError(f"targets must be some of {numeric}, got {list(targets)}")
    features = [c for c in [*numeric, "Year"] if c not in targets]
    origins = sorted({r["Origin"] for r in records})
    xs, ys = [], []
    for r in records:
        row = {**r, "Year": int(str(r["Year"])[:4]) - 1900}
        x = [row[c] for c in features]
        y = [r[t] for t in targets]
        if any(v is None for v in x) or (drop_missing and any(v is None for v in y)):
            continue
        xs.append(x + [float(r["Origin"] == o) for o in origins])
        ys.append([np.nan if v is None else v for v in y])
    X = np.array(xs, dtype=np.float32)
    Y = np.array(ys, dtype=np.float32)
    names = (*features, *(f"Origin={o}" for o in origins))
    return MultiOutputData(X, Y, names, tuple(targets), "regression", "vega_datasets cars")


def linnerud() -> MultiOutputData:
    """Linnerud (scikit-learn): 20 men, 3 exercises -> 3 physiological measurements.

    Features: chins, sit-ups, jumps. Targets: weight, waist, pulse. Twenty rows: a test
    fixture and a warning about small data, not a benchmark.

    Needs ``scikit-learn``.
    """
    sk = require("sklearn.datasets", extra="data", feature="the Linnerud loader")
    d = sk.load_linnerud()
    return MultiOutputData(
        np.asarray(d.data, dtype=np.float32),
        np.asarray(d.target, dtype=np.float32),
        tuple(d.feature_names),
        tuple(d.target_names),
        "regression",
        "sklearn.datasets.load_linnerud",
    )
