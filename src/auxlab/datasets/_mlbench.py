"""Binary UCI data sets from the R package mlbench, as installed by Debian's ``r-cran-mlbench``.

The package keeps each data set as an ``.rda`` file in its ``data/`` folder; they are read
in pure Python by :mod:`auxlab.datasets._rdata` (R itself is not needed, nothing is cached):

    apt-get install r-cran-mlbench     # files in /usr/lib/R/site-library/mlbench/data/

Or name the folder that holds the ``.rda`` files with ``root=`` or the environment variable
``AUXLAB_MLBENCH_DATA``. Factor columns (House Votes' ``y``/``n``, Breast Cancer's levels
``"1"`` .. ``"10"``) come as text, which the online learners one-hot encode online; R's
``NA`` is a missing value (NaN, or ``None`` in a text column).

=================  ==========  ==========================================================
name               rows x d    source, label 1
=================  ==========  ==========================================================
sonar              208 x 60    Sonar (UCI Connectionist Bench): mines (M) vs rocks
house_votes84      435 x 16    UCI Congressional Voting Records 1984, text y/n: republican
glass_window       214 x 9     UCI Glass Identification: non-window glass (types 5-7) vs
                               window glass (types 1-3), the grouping of the UCI notes
dna                3,186 x 180 StatLog DNA (primate splice junctions), text 0/1: no
                               junction (class n) vs a junction (ei or ie); our reduction
breast_cancer      699 x 9     UCI Breast Cancer Wisconsin (original), text 1..10:
                               malignant; the shared ``wbc`` file, with factor columns
pima               768 x 8     Pima Indians Diabetes: pos; the shared ``diabetes_f`` file
ionosphere_r       351 x 34    UCI Ionosphere: good; the shared ``ionosphere``, with its
                               first two columns as R factors (the second is constant)
=================  ==========  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxlab.datasets._haphazard import HaphazardData, HaphazardDataError
from auxlab.datasets._rdata import RDataError, RFactor, read_rda_frame

__all__ = ["MLBENCH_DATASETS", "MissingMlbench", "load_mlbench", "mlbench_folder"]

ENV_VAR = "AUXLAB_MLBENCH_DATA"

#: Where R packages live on Debian and on a source install of R.
_R_LIBRARIES = (
    "/usr/lib/R/site-library",
    "/usr/local/lib/R/site-library",
    "/usr/lib/R/library",
    "/usr/local/lib/R/library",
)


class MissingMlbench(HaphazardDataError):
    """mlbench's data files are not installed (the message says how to install them)."""


@dataclass(frozen=True)
class _Spec:
    frame: str  # the data frame's name in mlbench
    label: str  # its class column
    positive: Callable[[str], bool]  # class level -> label 1
    drop: tuple[str, ...] = ()  # columns that are not features (identifiers)


_SPECS: dict[str, _Spec] = {
    "sonar": _Spec("Sonar", "Class", lambda c: c == "M"),
    "house_votes84": _Spec("HouseVotes84", "Class", lambda c: c == "republican"),
    "glass_window": _Spec("Glass", "Type", lambda c: c in ("5", "6", "7")),
    "dna": _Spec("DNA", "Class", lambda c: c == "n"),
    "breast_cancer": _Spec("BreastCancer", "Class", lambda c: c == "malignant", drop=("Id",)),
    "pima": _Spec("PimaIndiansDiabetes", "diabetes", lambda c: c == "pos"),
    "ionosphere_r": _Spec("Ionosphere", "Class", lambda c: c == "good"),
}

#: The binary data sets :func:`load_mlbench` knows.
MLBENCH_DATASETS: tuple[str, ...] = tuple(_SPECS)


def _install_hint() -> str:
    return (
        "mlbench's data sets come with the Debian package r-cran-mlbench: run "
        "`apt-get install r-cran-mlbench` (as root), or install the R package mlbench and "
        f"set {ENV_VAR} to its data/ folder (the one holding Sonar.rda)"
    )


def mlbench_folder(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of mlbench's ``.rda`` files: ``root``, else ``$AUXLAB_MLBENCH_DATA``, else R's.

    Raises:
        MissingMlbench: If no such folder holds ``Sonar.rda`` (the message says how to
            install the package).
    """
    if root is not None or os.environ.get(ENV_VAR):
        folder = Path(root if root is not None else os.environ[ENV_VAR])
        if not (folder / "Sonar.rda").is_file():
            raise MissingMlbench(
                f"{folder} holds no mlbench data (no Sonar.rda). {_install_hint()}"
            )
        return folder
    for lib in _R_LIBRARIES:
        folder = Path(lib) / "mlbench" / "data"
        if (folder / "Sonar.rda").is_file():
            return folder
    raise MissingMlbench(f"the R package mlbench is not installed. {_install_hint()}")


def load_mlbench(name: str, root: str | os.PathLike[str] | None = None) -> HaphazardData:
    """One of mlbench's binary data sets, in the file's order (see the module's table).

    Args:
        name: One of ``MLBENCH_DATASETS``.
        root: The folder of the ``.rda`` files (default: see :func:`mlbench_folder`).

    Returns:
        ``X`` is float64 (NaN for ``NA``) when every feature is numeric, else an object array
        holding floats and text (``None`` for ``NA``); labels 0/1 as the table says.

    Raises:
        MissingMlbench: If the package is not installed.
        HaphazardDataError: If the file cannot be read as the data set (named).
        ValueError: For an unknown name.
    """
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _SPECS:
        raise ValueError(f"unknown mlbench data set {name!r}; known: {', '.join(_SPECS)}")
    spec = _SPECS[key]
    path = mlbench_folder(root) / f"{spec.frame}.rda"
    try:
        cols = read_rda_frame(path, spec.frame)
    except FileNotFoundError:
        raise MissingMlbench(f"missing {path}. {_install_hint()}") from None
    except RDataError as exc:
        raise HaphazardDataError(f"{exc}; reinstall r-cran-mlbench") from None
    label = cols.pop(spec.label, None)
    if not isinstance(label, RFactor) or None in label.values:
        raise HaphazardDataError(f"{path}: {spec.frame} has no complete factor {spec.label!r}")
    for c in spec.drop:
        cols.pop(c, None)
    y = np.asarray([spec.positive(str(v)) for v in label.values], dtype=np.int64)
    names = tuple(cols)
    text = any(isinstance(c, RFactor) or c.dtype == object for c in cols.values())
    X = np.empty((len(y), len(names)), dtype=object if text else np.float64)
    for j, col in enumerate(cols.values()):
        if len(col.values if isinstance(col, RFactor) else col) != len(y):
            raise HaphazardDataError(f"{path}: column {names[j]!r} has a different length")
        if isinstance(col, RFactor):
            X[:, j] = col.values
        elif text and col.dtype != object:  # a number column beside text: None for NA
            X[:, j] = [None if np.isnan(v) else float(v) for v in col.tolist()]
        else:
            X[:, j] = col
    return HaphazardData(key, X, y, names)
