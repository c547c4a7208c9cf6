"""The pool of real binary streams for choosing and checking the online learners' defaults.

Fifteen distinct data sets that install offline, each made haphazard by the benchmark's
protocol (:func:`load_binary_stream`):

* the eight benchmark sets of the haphazard-input literature (the shared data folder, see
  :mod:`auxlab.datasets._haphazard`): german, magic04, a8a, ipd, svmguide3, diabetes_f,
  ionosphere, wbc;
* the three binary streams shipped inside river (extra ``online``): phishing, bananas and
  shuttle (river's own binary reduction of Statlog Shuttle, after ODDS: the rare classes
  against "Rad Flow", the second-largest class dropped);
* four UCI sets of the R package mlbench (Debian's ``r-cran-mlbench``): sonar,
  house_votes84 (text features), glass_window (non-window vs window glass, the grouping of
  the UCI notes) and dna (no splice junction vs a junction, our reduction; text features).

Three more mlbench sets duplicate shared ones and are left out of the pool unless asked for
(``include_duplicates=True``): breast_cancer (= wbc, with its values as text categories),
pima (= diabetes_f) and ionosphere_r (= ionosphere, its first two columns as R factors).

Protocols (``protocol=``):

* ``"published"``: the 2024 review's: the rows shuffled once with seed 2023 and the mask
  drawn with seed 2023, whatever ``seed`` says (the published numbers are one order and one
  mask); german has the review's 959 rows (see ``load_haphazard(german_rows=...)``).
* ``"seeded"``: ``seed`` draws the row order and the mask (independent streams of one
  ``numpy.random.SeedSequence``), and for the chunked modes the order in which features
  arrive; german has all 1000 rows.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from auxlab.datasets._haphazard import ENV_VAR, LAYOUT, HaphazardData, load_haphazard
from auxlab.datasets._mlbench import MissingMlbench, load_mlbench, mlbench_folder
from auxlab.datasets._river import river_stream

__all__ = [
    "POOL",
    "POOL_MODES",
    "POOL_PROTOCOLS",
    "BinaryStream",
    "PoolEntry",
    "binary_pool",
    "load_binary",
    "load_binary_stream",
    "missing_cells",
]

#: The seed of the published protocol (the review's shuffle and mask).
PUBLISHED_SEED = 2023
POOL_MODES = ("variable_p", "trapezoidal", "sudden", "obsolete")
POOL_PROTOCOLS = ("published", "seeded")

_REVIEW = "review 2024, Tables VI-VII"
_HI2 = "HI2, arXiv 2504.02912 Table II"


@dataclass(frozen=True)
class PoolEntry:
    """One data set of the pool: where it comes from and what it holds.

    Attributes:
        name: The name :func:`load_binary_stream` takes.
        origin: ``"shared"`` (the benchmark data folder), ``"river"`` or ``"mlbench"``.
        source: The data set's origin and what label 1 means.
        rows: Rows (german: 1000; the published protocol uses the review's 959).
        features: Features (columns before any one-hot encoding).
        categorical: How many features hold text categories.
        positives: Rows with label 1 (of ``rows``).
        best_published: ``p -> (balanced accuracy %, its source)``: the best published
            number of the variable-p protocol (no base feature), where the reference gives
            one.
        duplicate_of: The pool set with the same rows, if any.
        available: Whether it loads here (data folder, river, mlbench installed).
        inputs: The learners' inputs once the text features are one-hot encoded (numbers
            plus categories): size a learner's capacity (``AuxDrop(aux_units=...)``) by it.
    """

    name: str
    origin: str
    source: str
    rows: int
    features: int
    categorical: int
    positives: int
    best_published: Mapping[float, tuple[float, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    duplicate_of: str | None = None
    available: bool = False
    inputs: int = 0

    def __post_init__(self) -> None:
        if not self.inputs:
            object.__setattr__(self, "inputs", self.features)

    @property
    def positive_rate(self) -> float:
        """The fraction of rows with label 1."""
        return self.positives / self.rows

    def best_published_at(self, p: float) -> tuple[float, str] | None:
        """The best published balanced accuracy (%) at availability ``p``, with its source."""
        return self.best_published.get(round(float(p), 2))


def _best(**by_p: tuple[float, str]) -> Mapping[float, tuple[float, str]]:
    return MappingProxyType({int(k[1:]) / 100: v for k, v in by_p.items()})


_ENTRIES: tuple[PoolEntry, ...] = (
    PoolEntry(
        "german", "shared", "UCI Statlog German credit (numeric): good credit", 1000, 24, 0, 700,
        _best(p25=(52.58, f"OLVF, {_REVIEW}"), p50=(57.09, f"OVFM, {_REVIEW}"),
              p75=(53.13, f"OLVF, {_REVIEW}")),
    ),
    PoolEntry(
        "magic04", "shared", "UCI MAGIC gamma telescope: gamma (g)", 19020, 10, 0, 12332,
        _best(p25=(59.89, _HI2), p50=(67.09, _HI2), p75=(74.28, _HI2)),
    ),
    PoolEntry(
        "a8a", "shared", "LIBSVM a8a (UCI Adult): label -1 (income <= 50K)", 32561, 123, 0,
        24720,
        _best(p25=(61.58, f"OVFM, {_REVIEW}"), p50=(68.57, f"OVFM, {_REVIEW}"),
              p75=(72.70, f"OVFM, {_REVIEW}")),
    ),
    PoolEntry(
        "ipd", "shared", "UCR ItalyPowerDemand (TRAIN then TEST): class 1", 1096, 24, 0, 547,
        _best(p25=(76.00, f"OVFM, {_REVIEW}"), p50=(88.10, f"OVFM, {_REVIEW}"),
              p75=(90.00, f"DynFo, {_REVIEW}")),
    ),
    PoolEntry(
        "svmguide3", "shared", "LIBSVM svmguide3: label -1", 1243, 21, 0, 947,
        _best(p25=(54.26, f"OVFM, {_REVIEW}"), p50=(58.13, f"OVFM, {_REVIEW}"),
              p75=(59.70, f"OVFM, {_REVIEW}")),
    ),
    PoolEntry("diabetes_f", "shared", "Pima Indians diabetes (Kaggle): Outcome 1", 768, 8, 0, 268),
    PoolEntry("ionosphere", "shared", "UCI Ionosphere: good (g)", 351, 34, 0, 225),
    PoolEntry(
        "wbc", "shared", "UCI Breast Cancer Wisconsin (original): malignant", 699, 9, 0, 241,
        _best(p25=(81.70, "OVFM, review 2024 (small data sets)"),
              p50=(93.05, "DynFo, review 2024 (small data sets)"),
              p75=(93.91, "DynFo, review 2024 (small data sets)")),
    ),
    PoolEntry("phishing", "river", "UCI Website Phishing (river): phishing", 1250, 9, 0, 548),
    PoolEntry("bananas", "river", "banana-shaped clusters (river, OpenML)", 5300, 2, 0, 2376),
    PoolEntry(
        "shuttle", "river",
        "UCI Statlog Shuttle as anomaly detection (river, after ODDS): rare classes vs Rad "
        "Flow, the second-largest class dropped", 49097, 9, 0, 3511,
    ),
    PoolEntry("sonar", "mlbench", "UCI Sonar (mlbench): mine (M) vs rock", 208, 60, 0, 111),
    PoolEntry(
        "house_votes84", "mlbench",
        "UCI Congressional Voting Records 1984 (mlbench), y/n text: republican", 435, 16, 16,
        168, inputs=32,
    ),
    PoolEntry(
        "glass_window", "mlbench",
        "UCI Glass Identification (mlbench): non-window glass (types 5-7) vs window glass "
        "(1-3), the grouping of the UCI notes", 214, 9, 0, 51,
    ),
    PoolEntry(
        "dna", "mlbench",
        "StatLog DNA splice junctions (mlbench), 0/1 text: no junction (n) vs a junction "
        "(ei or ie), our reduction of the 3 classes", 3186, 180, 180, 1654, inputs=360,
    ),
    PoolEntry(
        "breast_cancer", "mlbench",
        "UCI Breast Cancer Wisconsin (mlbench), levels 1-10 as text: malignant", 699, 9, 9, 241,
        duplicate_of="wbc", inputs=89,
    ),
    PoolEntry(
        "pima", "mlbench", "Pima Indians Diabetes (mlbench): pos", 768, 8, 0, 268,
        duplicate_of="diabetes_f",
    ),
    PoolEntry(
        "ionosphere_r", "mlbench",
        "UCI Ionosphere (mlbench), columns 1-2 as R factors (2 constant): good", 351, 34, 2,
        225, duplicate_of="ionosphere", inputs=35,
    ),
)  # fmt: skip

#: Every known entry by name (duplicates included), ``available`` as False.
POOL: Mapping[str, PoolEntry] = MappingProxyType({e.name: e for e in _ENTRIES})


def _shared_root(data_dir: str | os.PathLike[str] | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else None


def _available(entry: PoolEntry, data_dir: str | os.PathLike[str] | None) -> bool:
    if entry.origin == "river":
        return importlib.util.find_spec("river") is not None
    if entry.origin == "mlbench":
        try:
            mlbench_folder()
        except MissingMlbench:
            return False
        return True
    root = _shared_root(data_dir)
    if root is None:
        return False
    files = [rel for rel, _ in LAYOUT if rel.split("/")[0] == entry.name]
    return all((root / rel).is_file() for rel in files)


def _key(name: object) -> str:
    if not isinstance(name, str) or name.lower().replace("-", "_") not in POOL:
        raise ValueError(f"unknown pool data set {name!r}; known: {', '.join(POOL)}")
    return name.lower().replace("-", "_")


def binary_pool(
    names: Iterable[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    include_duplicates: bool = False,
) -> list[PoolEntry]:
    """The pool's entries, with ``available`` telling whether each loads on this machine.

    Args:
        names: The entries wanted (default: the 15 distinct data sets; with
            ``include_duplicates``, the 18).
        data_dir: The folder of the shared benchmark sets (default
            ``$AUXLAB_HAPHAZARD_DATA``); without one, they are not available.
        include_duplicates: Add the mlbench copies of shared sets (default: only when named).

    Example:
        >>> [e.name for e in binary_pool()][:3]
        ['german', 'magic04', 'a8a']
    """
    if names is None:
        chosen = [e for e in _ENTRIES if include_duplicates or e.duplicate_of is None]
    else:
        if isinstance(names, str):
            names = [names]
        chosen = [POOL[_key(n)] for n in names]
    return [PoolEntry(**{**e.__dict__, "available": _available(e, data_dir)}) for e in chosen]


def load_binary(
    name: str, *, data_dir: str | os.PathLike[str] | None = None, german_rows: int = 1000
) -> HaphazardData:
    """One pool data set as arrays, in the file's order (no shuffle, no mask).

    ``X`` is float64 (NaN where missing), or an object array when the set has text features
    (``None`` where missing). Raises as the underlying loader does (a missing data folder,
    river or mlbench: the message says how to get it). The parsed files are kept in memory
    (a few of them, by name and folder), so a run over seeds and ``p`` parses each once;
    the arrays returned are the caller's own copies.
    """
    data = _parsed(*_source(name, data_dir, german_rows))
    return HaphazardData(data.name, data.X.copy(), data.y.copy(), data.feature_names)


def _source(
    name: str, data_dir: str | os.PathLike[str] | None, german_rows: int
) -> tuple[str, str | None, int]:
    """The cache key: the name, the folder the files come from, german's rows."""
    entry = POOL[_key(name)]
    if entry.origin == "shared":
        root = _shared_root(data_dir)
        return entry.name, None if root is None else str(root.resolve()), german_rows
    if entry.origin == "mlbench":
        return entry.name, str(mlbench_folder().resolve()), 0
    return entry.name, None, 0


@functools.lru_cache(maxsize=32)  # the whole pool, ~50 MB
def _parsed(name: str, root: str | None, german_rows: int) -> HaphazardData:
    """A data set as read from its files, with read-only arrays (shared by the cache)."""
    origin = POOL[name].origin
    if origin == "shared":
        data = load_haphazard(name, root=root, german_rows=german_rows)
    elif origin == "river":
        raw = river_stream(name)
        data = HaphazardData(name, raw.X, raw.y, raw.feature_names)
    else:
        data = load_mlbench(name, root=root)
    data.X.flags.writeable = False
    data.y.flags.writeable = False
    return data


@dataclass(frozen=True, eq=False)
class BinaryStream:
    """A pool data set made haphazard: what ``progressive_evaluate`` and the learners take.

    Run it as ``progressive_evaluate(model, s.X, s.y, s.mask, s.feature_names)``.

    Attributes:
        name: The data set.
        X: ``(n, d)`` values in stream order: float64 with NaN where missing, or an object
            array with text categories (``None`` where missing).
        y: ``(n,)`` labels 0/1.
        mask: ``(n, d)`` availability (already AND-ed with the data's own missing values;
            every row keeps at least one feature).
        feature_names: The ``d`` column names.
        mode: The availability scheme (``POOL_MODES``).
        p: The availability probability (``"variable_p"``), else None.
        protocol: ``"published"`` or ``"seeded"``.
        seed: The seed that drew the order and the mask (2023 for ``"published"``).
        entry: The pool entry.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    feature_names: tuple[str, ...]
    mode: str
    p: float | None
    protocol: str
    seed: int
    entry: PoolEntry

    @property
    def n(self) -> int:
        """Rows."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Features."""
        return int(self.X.shape[1])


def missing_cells(X: np.ndarray) -> np.ndarray:
    """Where ``X`` (float, or object with text) has no value: NaN or ``None``."""
    if X.dtype != object:
        return np.isnan(X)
    return np.vectorize(lambda v: v is None or (isinstance(v, float) and v != v), otypes=[bool])(X)


def load_binary_stream(
    name: str,
    *,
    p: float = 0.5,
    seed: int | None = None,
    mode: str = "variable_p",
    protocol: str = "published",
    data_dir: str | os.PathLike[str] | None = None,
) -> BinaryStream:
    """A pool data set as a haphazard stream, by the benchmark's protocol.

    Args:
        name: A pool name (``POOL``).
        p: Each feature present with probability ``p`` (mode ``"variable_p"``).
        seed: The seed of the order and the mask under ``protocol="seeded"`` (required
            there); ignored by ``"published"``, which fixes both (seed 2023).
        mode: ``"variable_p"``, ``"trapezoidal"``, ``"sudden"`` or ``"obsolete"`` (the
            chunked schemes of :func:`auxlab.online.haphazard_mask`, 10 chunks).
        protocol: ``"published"`` (the review's fixed order and mask) or ``"seeded"``.
        data_dir: The folder of the shared benchmark sets (default ``$AUXLAB_HAPHAZARD_DATA``).

    Returns:
        The stream; see :class:`BinaryStream`.

    Raises:
        ValueError: An unknown name, mode or protocol, ``p`` outside [0, 1], or ``"seeded"``
            without a seed.
        auxlab.datasets.HaphazardDataError: The data cannot be loaded (the message says how
            to get it).

    Example:
        >>> s = load_binary_stream("phishing", p=0.5)
        >>> s.X.shape, s.seed, round(float(s.mask.mean()), 2)
        ((1250, 9), 2023, 0.5)
    """
    from auxlab.online._streams import haphazard_mask

    entry = POOL[_key(name)]
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    if protocol not in POOL_PROTOCOLS:
        raise ValueError(f"protocol must be 'published' or 'seeded', got {protocol!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a number in [0, 1], got {p!r}")
    if protocol == "seeded":
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(
                f"protocol='seeded' draws the order and the mask from seed: give an integer "
                f">= 0, got {seed!r} (protocol='published' fixes them instead)"
            )
        used = int(seed)
        order_seed, mask_seed, perm_seed = (
            int(s.generate_state(1)[0]) for s in np.random.SeedSequence(used).spawn(3)
        )
    else:
        used = order_seed = mask_seed = PUBLISHED_SEED
        perm_seed = None
    rows = 959 if entry.name == "german" and protocol == "published" else 1000
    data = _parsed(*_source(entry.name, data_dir, rows)).shuffled(order_seed)
    n, d = data.X.shape
    avail = ~missing_cells(data.X)
    # haphazard_mask takes the data's own missing values as NaN in a float array.
    proxy = np.where(avail, 0.0, np.nan)
    perm = np.arange(d)
    if perm_seed is not None and mode != "variable_p":
        perm = np.random.default_rng(perm_seed).permutation(d)
    sched = haphazard_mask(mode, n, d, p=float(p), seed=mask_seed, X=proxy[:, perm])
    mask = np.empty_like(sched)
    mask[:, perm] = sched  # feature perm[k] follows column k of the schedule
    return BinaryStream(
        entry.name,
        data.X,
        data.y,
        mask,
        tuple(str(f) for f in data.feature_names),
        mode,
        float(p) if mode == "variable_p" else None,
        protocol,
        used,
        binary_pool([entry.name], data_dir=data_dir)[0],
    )
