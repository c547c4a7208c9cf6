"""Loaders for the real data sets that the demo, examples and benchmarks use."""

from __future__ import annotations

from auxlab.datasets._tokenizer import Tokenizer
from auxlab.datasets._tweets import Split, TweetsData, tweets, tweets_from_frame

__all__ = ["Split", "Tokenizer", "TweetsData", "tweets", "tweets_from_frame"]
