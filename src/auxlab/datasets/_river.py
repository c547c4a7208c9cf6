"""river's binary classification streams as arrays, for haphazard-input runs out of the box.

river (the ``online`` extra) ships three binary streams inside its package, so they load
with no download and no data folder:

    phishing    1,250 x 9     UCI Website Phishing (44 % phishing)
    bananas     5,300 x 2     the OpenML banana-shaped clusters (45 % positive)
    shuttle    49,097 x 9     UCI Statlog Shuttle as anomaly detection (7 % anomalies)

Other river data sets download their files on first use (``river_stream`` accepts them too,
where the machine can reach the internet).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auxlab._optional import require
from auxlab.datasets._haphazard import HaphazardData, HaphazardDataError

__all__ = ["RIVER_STREAMS", "river_stream"]

#: The binary streams that river ships inside its package (no download).
RIVER_STREAMS: tuple[str, ...] = ("phishing", "bananas", "shuttle")


def _dataset_class(datasets: Any, name: str) -> Any:
    wanted = name.lower().replace("_", "").replace("-", "")
    for attr in dir(datasets):
        if attr.lower() == wanted and isinstance(getattr(datasets, attr), type):
            return getattr(datasets, attr)
    raise ValueError(
        f"river has no data set {name!r}; its bundled binary streams are "
        f"{', '.join(RIVER_STREAMS)} (any name in river.datasets works where it can download)"
    )


def river_stream(name: str, n: int | None = None) -> HaphazardData:
    """One of river's binary classification streams as arrays (needs river, extra ``online``).

    Args:
        name: The data set's name in ``river.datasets``, in any case: ``"phishing"``,
            ``"bananas"`` and ``"shuttle"`` are shipped with river (see ``RIVER_STREAMS``);
            others (e.g. ``"Elec2"``, ``"CreditCard"``) are downloaded by river on first use.
        n: Keep the first ``n`` instances (default all).

    Returns:
        Numeric features only, in the order they first appear (NaN where an instance lacks
        one); labels 0/1 (river's ``False``/``True``).

    Raises:
        auxlab._optional.MissingDependencyError: river is not installed (the message names
            the extra).
        ValueError: An unknown name, or a stream whose labels are not binary.
        HaphazardDataError: river could not download the data set's file.

    Example:
        >>> data = river_stream("phishing")
        >>> data.X.shape, round(float(data.y.mean()), 4)
        ((1250, 9), 0.4384)
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"river_stream: n must be a number of rows >= 1 (or None), got {n!r}")
    datasets = require("river.datasets", "online", f"the river stream {name!r}")
    cls = _dataset_class(datasets, name)
    try:
        stream = cls()
        names: dict[str, int] = {}
        rows: list[dict[str, float]] = []
        labels: list[Any] = []
        for i, (x, y) in enumerate(stream):
            if n is not None and i >= n:
                break
            row = {}
            for k, v in x.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    names.setdefault(k, len(names))
                    row[k] = float(v)
            rows.append(row)
            labels.append(y)
    except OSError as exc:  # urllib's URLError is an OSError
        raise HaphazardDataError(
            f"river could not fetch the data set {cls.__name__} ({exc}); the streams shipped "
            f"with river need no download: {', '.join(RIVER_STREAMS)}"
        ) from exc
    kinds = set(labels)
    if not kinds <= {False, True}:  # True == 1 and False == 0: 0/1 labels pass too
        shown = ", ".join(sorted(map(repr, kinds))[:6])
        raise ValueError(
            f"river's {cls.__name__} is not a binary stream (labels {shown}, ...); "
            f"binary streams shipped with river: {', '.join(RIVER_STREAMS)}"
        )
    X = np.full((len(rows), len(names)), np.nan)
    for r, row in enumerate(rows):
        for k, v in row.items():
            X[r, names[k]] = v
    y = np.asarray([int(bool(v)) for v in labels], dtype=np.int64)
    return HaphazardData(cls.__name__.lower(), X, y, tuple(names))
