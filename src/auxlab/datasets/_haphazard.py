"""The small benchmark data sets of the haphazard-input literature (Aux-Drop, the 2024 review).

The files are not shipped with auxlab. Put them in one folder, one sub-folder per data set
with the original file names, and pass it as ``root`` or set the environment variable
``AUXLAB_HAPHAZARD_DATA``::

    german/german.data-numeric        UCI Statlog German credit (numeric version)
    magic04/magic04.data              UCI MAGIC gamma telescope
    a8a/a8a.txt                       LIBSVM binary a8a (UCI Adult)
    ipd/ItalyPowerDemand_TRAIN.txt    UCR ItalyPowerDemand (TRAIN then TEST)
    ipd/ItalyPowerDemand_TEST.txt
    svmguide3/svmguide3.txt           LIBSVM binary svmguide3
    diabetes_f/diabetes_f.csv         Pima Indians diabetes (Kaggle ``diabetes.csv``)
    ionosphere/ionosphere.data        UCI ionosphere
    wbc/wbc.data                      UCI breast cancer Wisconsin (original)

The same files are in the public repositories of the Aux-Drop paper (Rohit102497/Aux-Drop,
``Code/Datasets``) and of the review (Rohit102497/HaphazardInputsReview, ``Data``); the
originals come from the UCI, LIBSVM and UCR archives.

Labels follow the reference loaders (the class they call 1): german "good" (1), magic04 'g',
a8a and svmguide3 −1, IPD class 1, diabetes_f Outcome 1, ionosphere 'g', wbc malignant (4).
Rows keep the file order (IPD: TRAIN then TEST); shuffle with :meth:`HaphazardData.shuffled`.
river's bundled binary streams, which need no folder, are in :mod:`auxlab.datasets._river`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "HAPHAZARD_DATASETS",
    "HaphazardData",
    "HaphazardDataError",
    "MissingHaphazardData",
    "data_folder_help",
    "load_haphazard",
]

ENV_VAR = "AUXLAB_HAPHAZARD_DATA"


class HaphazardDataError(ValueError):
    """A data file is missing or malformed; the message names the file (and line)."""


@dataclass(frozen=True, eq=False)
class HaphazardData:
    """A data set as arrays.

    Attributes:
        name: The data set's name.
        X: ``(n, d)`` float64 features; NaN where a value is missing in the file (wbc). The
            mlbench sets with text features (:mod:`auxlab.datasets._mlbench`) have an object
            array of numbers and text instead, ``None`` where a value is missing.
        y: ``(n,)`` int64 labels in {0, 1}.
        feature_names: The ``d`` column names.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Number of features."""
        return int(self.X.shape[1])

    def shuffled(self, seed: int) -> HaphazardData:
        """The rows in a random order drawn from ``seed``."""
        order = np.random.default_rng(seed).permutation(self.n)
        return HaphazardData(self.name, self.X[order], self.y[order], self.feature_names)


#: The folder layout: one sub-folder per data set, the original file names.
LAYOUT: tuple[tuple[str, str], ...] = (
    ("german/german.data-numeric", "UCI Statlog German credit (numeric version)"),
    ("magic04/magic04.data", "UCI MAGIC gamma telescope"),
    ("a8a/a8a.txt", "LIBSVM binary a8a (UCI Adult)"),
    ("ipd/ItalyPowerDemand_TRAIN.txt", "UCR ItalyPowerDemand (TRAIN then TEST)"),
    ("ipd/ItalyPowerDemand_TEST.txt", ""),
    ("svmguide3/svmguide3.txt", "LIBSVM binary svmguide3"),
    ("diabetes_f/diabetes_f.csv", "Pima Indians diabetes (Kaggle diabetes.csv)"),
    ("ionosphere/ionosphere.data", "UCI ionosphere"),
    ("wbc/wbc.data", "UCI breast cancer Wisconsin (original)"),
)

#: Where the files come from.
SOURCES = (
    "The files are in the public repositories of the Aux-Drop paper "
    "(github.com/Rohit102497/Aux-Drop, Code/Datasets) and of the 2024 review "
    "(github.com/Rohit102497/HaphazardInputsReview, Data); the originals come from the UCI, "
    "LIBSVM and UCR archives."
)


class MissingHaphazardData(HaphazardDataError):
    """No data folder was given, or a file is not where the layout says."""


def data_folder_help() -> str:
    """The expected layout of the data folder and where the files come from, as text."""
    rows = [f"    {path:34s} {what}".rstrip() for path, what in LAYOUT]
    return "The folder holds one sub-folder per data set:\n" + "\n".join(rows) + "\n" + SOURCES


def _root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    raise MissingHaphazardData(
        "no folder for the haphazard-input data sets: pass root=DIR or set the environment "
        f"variable {ENV_VAR}.\n{data_folder_help()}"
    )


def _file(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise MissingHaphazardData(f"missing data file {path}\n{data_folder_help()}")
    return path


def _lines(path: Path) -> list[tuple[int, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        out = [(i, line.rstrip("\r\n")) for i, line in enumerate(f, 1)]
    return [(i, s) for i, s in out if s.strip()]


def _float(path: Path, line: int, token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise HaphazardDataError(f"{path}, line {line}: {token!r} is not a number") from None
    if not math.isfinite(value):  # "inf", "nan", "1e999": none of the published files has one
        raise HaphazardDataError(
            f"{path}, line {line}: {token!r} is not a finite number; the published file has "
            f"none: the file is damaged or not the original. Fetch it again. {SOURCES}"
        )
    return value


#: Rows of each published file (data rows, header aside): a file cut at a line boundary
#: parses cleanly, so its length is checked against these.
ROWS: dict[str, int] = {
    "german/german.data-numeric": 1000,
    "magic04/magic04.data": 19020,
    "a8a/a8a.txt": 32561,
    "ipd/ItalyPowerDemand_TRAIN.txt": 67,
    "ipd/ItalyPowerDemand_TEST.txt": 1029,
    "svmguide3/svmguide3.txt": 1243,
    "diabetes_f/diabetes_f.csv": 768,
    "ionosphere/ionosphere.data": 351,
    "wbc/wbc.data": 699,
}


def _check_rows(path: Path, rel: str, rows: int, last_line: int) -> None:
    want = ROWS[rel]
    if rows != want:
        cut = "cut short" if rows < want else "longer than the published file"
        raise HaphazardDataError(
            f"{path}, line {last_line}: the file ends there with {rows} data rows; the "
            f"published {rel} has {want}. The file is {cut} (an interrupted download or copy, "
            f"or another version): fetch it again. {SOURCES}"
        )


def _dense(
    path: Path,
    rel: str,
    sep: str | None,
    n_values: int,
    label_col: int,
    positive: Callable[[str], bool | None],
    skip: int = 0,
    drop_cols: tuple[int, ...] = (),
    missing: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    lines = _lines(path)
    for i, line in lines[skip:]:
        tokens = line.split() if sep is None else [t.strip() for t in line.split(sep)]
        if len(tokens) != n_values:
            raise HaphazardDataError(
                f"{path}, line {i}: expected {n_values} values, found {len(tokens)}"
            )
        label = positive(tokens[label_col])
        if label is None:
            raise HaphazardDataError(f"{path}, line {i}: unknown label {tokens[label_col]!r}")
        keep = [t for j, t in enumerate(tokens) if j != label_col % n_values and j not in drop_cols]
        rows.append([np.nan if t == missing else _float(path, i, t) for t in keep])
        labels.append(int(label))
    if not rows:
        raise HaphazardDataError(f"{path}: no data")
    _check_rows(path, rel, len(rows), lines[-1][0])
    return np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def _svmlight(
    path: Path,
    rel: str,
    n_features: int,
    positive: Callable[[str], bool | None],
    keep: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    lines = _lines(path)
    if not lines:
        raise HaphazardDataError(f"{path}: no data")
    X = np.zeros((len(lines), n_features))
    y = np.zeros(len(lines), dtype=np.int64)
    for r, (i, line) in enumerate(lines):
        tokens = line.split()
        label = positive(tokens[0]) if tokens else None
        if label is None:
            raise HaphazardDataError(f"{path}, line {i}: unknown label {line[:20]!r}")
        y[r] = int(label)
        for tok in tokens[1:]:
            idx, sep, val = tok.partition(":")
            if not sep or not idx.isdigit() or not 1 <= int(idx) <= n_features:
                raise HaphazardDataError(f"{path}, line {i}: bad entry {tok!r}")
            X[r, int(idx) - 1] = _float(path, i, val)
    _check_rows(path, rel, len(lines), lines[-1][0])
    return (X if keep is None else X[:, :keep]), y


def _choice(table: dict[str, bool]) -> Callable[[str], bool | None]:
    return lambda t: table.get(t)


def _german(root: Path, rows: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "german/german.data-numeric")
    X, y = _dense(
        path, "german/german.data-numeric", None, 25, 24, _choice({"1": True, "2": False})
    )
    if rows == 959:
        # The review's loader splits on two spaces, which mangles the 41 rows whose 4th value
        # has three digits; it drops them. Reproduce that selection.
        ok = X[:, 3] < 100
        X, y = X[ok], y[ok]
    elif rows != 1000:
        raise ValueError(f"german: rows must be 1000 (correct parse) or 959 (review), got {rows}")
    return X, y, tuple(f"a{j + 1}" for j in range(24))


def _magic04(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "magic04/magic04.data")
    X, y = _dense(path, "magic04/magic04.data", ",", 11, 10, _choice({"g": True, "h": False}))
    names = ("fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long", "fM3Trans",
             "fAlpha", "fDist")  # fmt: skip
    return X, y, names


def _a8a(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "a8a/a8a.txt")
    X, y = _svmlight(path, "a8a/a8a.txt", 123, _choice({"-1": True, "+1": False, "1": False}))
    return X, y, tuple(f"f{j + 1}" for j in range(123))


def _ipd(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    parts = []
    for rel in ("ipd/ItalyPowerDemand_TRAIN.txt", "ipd/ItalyPowerDemand_TEST.txt"):
        path = _file(root, rel)
        parts.append(
            _dense(
                path,
                rel,
                None,
                25,
                0,
                lambda t: {1.0: True, 2.0: False}.get(float(t)) if _isnum(t) else None,
            )
        )
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return X, y, tuple(f"t{j + 1}" for j in range(24))


def _isnum(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def _svmguide3(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "svmguide3/svmguide3.txt")
    X, y = _svmlight(
        path, "svmguide3/svmguide3.txt", 22, _choice({"-1": True, "+1": False, "1": False}), keep=21
    )
    return X, y, tuple(f"f{j + 1}" for j in range(21))


def _diabetes_f(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "diabetes_f/diabetes_f.csv")
    with path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f), None)
    if not header or len(header) != 9 or header[-1] != "Outcome":
        raise HaphazardDataError(f"{path}, line 1: expected a header of 8 features and Outcome")
    X, y = _dense(
        path, "diabetes_f/diabetes_f.csv", ",", 9, 8, _choice({"1": True, "0": False}), skip=1
    )
    return X, y, tuple(header[:8])


def _ionosphere(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "ionosphere/ionosphere.data")
    X, y = _dense(path, "ionosphere/ionosphere.data", ",", 35, 34, _choice({"g": True, "b": False}))
    return X, y, tuple(f"a{j + 1}" for j in range(34))


def _wbc(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = _file(root, "wbc/wbc.data")
    positive = _choice({"4": True, "2": False})
    X, y = _dense(path, "wbc/wbc.data", ",", 11, 10, positive, drop_cols=(0,), missing="?")
    names = (
        "clump_thickness", "cell_size", "cell_shape", "marginal_adhesion", "epithelial_size",
        "bare_nuclei", "bland_chromatin", "normal_nucleoli", "mitoses",
    )  # fmt: skip
    return X, y, names


_LOADERS: dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]] = {
    "magic04": _magic04,
    "a8a": _a8a,
    "ipd": _ipd,
    "svmguide3": _svmguide3,
    "diabetes_f": _diabetes_f,
    "ionosphere": _ionosphere,
    "wbc": _wbc,
}

#: The data sets :func:`load_haphazard` knows.
HAPHAZARD_DATASETS: tuple[str, ...] = ("german", *_LOADERS)


def load_haphazard(
    name: str, root: str | os.PathLike[str] | None = None, german_rows: int = 1000
) -> HaphazardData:
    """Load one of the haphazard-input benchmark data sets, in file order.

    Args:
        name: One of ``HAPHAZARD_DATASETS``: german, magic04, a8a, ipd, svmguide3,
            diabetes_f, ionosphere, wbc.
        root: The folder holding the data sets (see the module's docstring); default the
            environment variable ``AUXLAB_HAPHAZARD_DATA``.
        german_rows: 1000, german parsed on any whitespace (700 good / 300 bad); or 959, the
            review's version, without the 41 rows its two-space parser mangles (71.32 %
            good). Aux-Drop's own loader relabels those rows instead; not reproduced.

    Returns:
        The data as arrays; ``X`` has NaN where the file has no value (wbc's '?').

    Raises:
        MissingHaphazardData: If the folder is not known or a file is missing (the message
            gives the layout and where the files come from).
        HaphazardDataError: If a line is malformed (the message names the file and the line).
        ValueError: For an unknown name.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be one of {', '.join(HAPHAZARD_DATASETS)}, got {name!r}")
    key = name.lower().replace("-", "_")
    if key not in HAPHAZARD_DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(HAPHAZARD_DATASETS)}")
    base = _root(root)
    if key == "german":
        X, y, names = _german(base, german_rows)
    else:
        X, y, names = _LOADERS[key](base)
    return HaphazardData(key, X, y, names)
