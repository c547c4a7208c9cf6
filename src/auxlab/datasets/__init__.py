"""Loaders for the real data sets that the demo, examples and benchmarks use."""

from __future__ import annotations

from auxlab.datasets._fashion_mnist import (
    FashionMNIST,
    fashion_mnist,
    read_idx,
    stratified_subset,
)
from auxlab.datasets._haphazard import (
    HAPHAZARD_DATASETS,
    HaphazardData,
    HaphazardDataError,
    load_haphazard,
)
from auxlab.datasets._mlbench import MLBENCH_DATASETS, MissingMlbench, load_mlbench
from auxlab.datasets._multi_output import MultiOutputData, cars, linnerud, solar_flare, yeast
from auxlab.datasets._pool import (
    POOL,
    POOL_MODES,
    POOL_PROTOCOLS,
    BinaryStream,
    PoolEntry,
    binary_pool,
    load_binary,
    load_binary_stream,
)
from auxlab.datasets._river import RIVER_STREAMS, river_stream
from auxlab.datasets._tokenizer import Tokenizer
from auxlab.datasets._tweets import Split, TweetsData, tweets, tweets_from_frame

__all__ = [
    "HAPHAZARD_DATASETS",
    "MLBENCH_DATASETS",
    "POOL",
    "POOL_MODES",
    "POOL_PROTOCOLS",
    "RIVER_STREAMS",
    "BinaryStream",
    "FashionMNIST",
    "HaphazardData",
    "HaphazardDataError",
    "MissingMlbench",
    "MultiOutputData",
    "PoolEntry",
    "Split",
    "Tokenizer",
    "TweetsData",
    "binary_pool",
    "cars",
    "fashion_mnist",
    "linnerud",
    "load_binary",
    "load_binary_stream",
    "load_haphazard",
    "load_mlbench",
    "read_idx",
    "river_stream",
    "solar_flare",
    "stratified_subset",
    "tweets",
    "tweets_from_frame",
    "yeast",
]
