"""Loaders for the real data sets that the demo, examples and benchmarks use."""

from __future__ import annotations

from auxlab.datasets._haphazard import (
    HAPHAZARD_DATASETS,
    HaphazardData,
    HaphazardDataError,
    load_haphazard,
    river_stream,
)
from auxlab.datasets._tokenizer import Tokenizer
from auxlab.datasets._tweets import Split, TweetsData, tweets, tweets_from_frame

__all__ = [
    "HAPHAZARD_DATASETS",
    "HaphazardData",
    "HaphazardDataError",
    "Split",
    "Tokenizer",
    "TweetsData",
    "load_haphazard",
    "river_stream",
    "tweets",
    "tweets_from_frame",
]
