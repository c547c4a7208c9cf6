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
from auxlab.datasets._multi_output import MultiOutputData, cars, linnerud, solar_flare, yeast
from auxlab.datasets._river import RIVER_STREAMS, river_stream
from auxlab.datasets._tokenizer import Tokenizer
from auxlab.datasets._tweets import Split, TweetsData, tweets, tweets_from_frame

__all__ = [
    "HAPHAZARD_DATASETS",
    "RIVER_STREAMS",
    "FashionMNIST",
    "HaphazardData",
    "HaphazardDataError",
    "MultiOutputData",
    "Split",
    "Tokenizer",
    "TweetsData",
    "cars",
    "fashion_mnist",
    "linnerud",
    "load_haphazard",
    "read_idx",
    "river_stream",
    "solar_flare",
    "stratified_subset",
    "tweets",
    "tweets_from_frame",
    "yeast",
]
