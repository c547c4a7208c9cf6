"""A small, deterministic word tokenizer for short texts such as tweets."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

__all__ = ["Tokenizer"]

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = "<pad>"
OOV_TOKEN = "<oov>"
URL_TOKEN = "<url>"

# Alternatives are tried left to right at each position:
#   1. a URL (http://, https:// or www.), collapsed into URL_TOKEN;
#   2. an @mention or #hashtag, kept whole with its sigil;
#   3. a number with thousands or decimal separators ("1,000", "3.5");
#   4. a word: letters, digits and underscores, with inner apostrophes ("don't", "2nd").
# Everything else (punctuation, emoji, "&") separates tokens and is dropped.
_TOKEN_RE = re.compile(
    r"(?P<url>https?://\S+|www\.\S+)"
    r"|(?P<tok>[@#]\w+|\d+(?:[.,]\d+)+|\w+(?:'\w+)*)"
)


class Tokenizer:
    """Map texts to fixed-length arrays of word ids, keeping the most frequent words.

    Words are regular-expression tokens: words (with inner apostrophes), @mentions and
    #hashtags (kept with their sigil), and numbers; every URL becomes the single token
    ``"<url>"``. Curly apostrophes are read as straight ones. Punctuation is dropped.

    Ids: ``0`` is padding, ``1`` is out-of-vocabulary, and the kept words get
    ``2 .. len(self) - 1`` by frequency rank in the texts given to :meth:`fit` (most
    frequent first; equal counts are ordered alphabetically, so the result is
    deterministic). ``len(self)`` (at most ``num_words``) is the size an embedding
    table needs.

    Example:
        >>> tok = Tokenizer(num_words=5).fit(["the cat", "the dog", "a dog"])
        >>> tok.word_index
        {'dog': 2, 'the': 3, 'a': 4}
        >>> tok.transform(["the cat sat", "dog"], max_len=4).tolist()
        [[0, 3, 1, 1], [0, 0, 0, 2]]

    Args:
        num_words: Size of the id space, including the two reserved ids, so at most
            ``num_words - 2`` words are kept. Must be at least 3.
        lowercase: Whether to lowercase texts before tokenizing.

    Raises:
        ValueError: If ``num_words`` is smaller than 3.
    """

    def __init__(self, num_words: int = 10000, lowercase: bool = True) -> None:
        if isinstance(num_words, bool) or not isinstance(num_words, int | np.integer):
            raise ValueError(f"num_words must be an int >= 3, got {num_words!r}")
        if num_words < 3:
            raise ValueError(f"num_words must be >= 3 (ids 0 and 1 are reserved), got {num_words}")
        self.num_words = int(num_words)
        self.lowercase = bool(lowercase)
        self._word_index: dict[str, int] | None = None
        self._counts: Counter[str] | None = None

    def __repr__(self) -> str:
        state = f"{len(self)} ids" if self.fitted else "not fitted"
        return f"Tokenizer(num_words={self.num_words}, lowercase={self.lowercase}; {state})"

    # ----------------------------------------------------------------------------- fitting

    def tokenize(self, text: str) -> list[str]:
        """Split one text into tokens (no ids, no vocabulary needed).

        Args:
            text: The text.

        Returns:
            The tokens in order, lowercased if ``lowercase`` is set.

        Raises:
            TypeError: If ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}: {text!r}")
        if self.lowercase:
            text = text.lower()
        text = text.replace("\u2019", "'")
        tokens: list[str] = []
        for match in _TOKEN_RE.finditer(text):
            tokens.append(URL_TOKEN if match.group("url") is not None else match.group("tok"))
        return tokens

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Count the words in ``texts`` and keep the ``num_words - 2`` most frequent.

        Fitting again replaces the previous vocabulary.

        Args:
            texts: The texts to count words in (e.g. the training split only).

        Returns:
            ``self``, fitted.

        Raises:
            TypeError: If an element of ``texts`` is not a string.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of strings, not a single str")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[: self.num_words - 2]
        self._word_index = {word: rank + 2 for rank, (word, _) in enumerate(kept)}
        self._counts = counts
        return self

    # ----------------------------------------------------------------------------- state

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called."""
        return self._word_index is not None

    def _require_fitted(self, what: str) -> dict[str, int]:
        if self._word_index is None:
            raise RuntimeError(f"Tokenizer.{what} needs a fitted tokenizer; call fit(texts) first")
        return self._word_index

    @property
    def word_index(self) -> dict[str, int]:
        """A copy of the mapping from each kept word to its id (2 and up).

        Raises:
            RuntimeError: If the tokenizer is not fitted.
        """
        return dict(self._require_fitted("word_index"))

    @property
    def vocab(self) -> list[str]:
        """The token of every id, in id order: ``["<pad>", "<oov>", most frequent, ...]``.

        Raises:
            RuntimeError: If the tokenizer is not fitted.
        """
        index = self._require_fitted("vocab")
        return [PAD_TOKEN, OOV_TOKEN, *index]

    @property
    def word_counts(self) -> dict[str, int]:
        """How often each token (kept or not) occurred in the fitted texts.

        Raises:
            RuntimeError: If the tokenizer is not fitted.
        """
        self._require_fitted("word_counts")
        assert self._counts is not None
        return dict(self._counts)

    def __len__(self) -> int:
        """Number of ids in use (reserved ids included): the embedding table size.

        Raises:
            RuntimeError: If the tokenizer is not fitted.
        """
        return len(self._require_fitted("__len__")) + 2

    # ----------------------------------------------------------------------------- transform

    def transform(self, texts: Iterable[str], max_len: int) -> np.ndarray:
        """Turn texts into a padded ``(n, max_len)`` array of word ids.

        A text with more than ``max_len`` tokens keeps its FIRST ``max_len`` tokens (the end
        is cut: Keras's ``pad_sequences(truncating="post")``). A shorter text is padded with
        zeros at the START (Keras's default ``padding="pre"``), so the last steps of a
        recurrent network always see text rather than padding.

        Args:
            texts: The texts.
            max_len: Length of every row. Must be at least 1.

        Returns:
            An ``int64`` array of shape ``(len(texts), max_len)``; unknown words are ``1``.

        Raises:
            RuntimeError: If the tokenizer is not fitted.
            ValueError: If ``max_len`` is smaller than 1.
            TypeError: If an element of ``texts`` is not a string.
        """
        index = self._require_fitted("transform")
        if isinstance(max_len, bool) or not isinstance(max_len, int | np.integer):
            raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of strings, not a single str")
        rows: list[list[int]] = []
        for text in texts:
            ids = [index.get(token, OOV_ID) for token in self.tokenize(text)[:max_len]]
            rows.append(ids)
        out = np.full((len(rows), int(max_len)), PAD_ID, dtype=np.int64)
        for i, ids in enumerate(rows):
            if ids:
                out[i, max_len - len(ids) :] = ids
        return out
