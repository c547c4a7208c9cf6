"""The pool of binary streams: entries, protocols, the mlbench reader."""

from __future__ import annotations

import importlib.util
import lzma
from pathlib import Path

import numpy as np
import pytest

from auxlab.datasets import (
    POOL,
    HaphazardDataError,
    MissingMlbench,
    binary_pool,
    load_binary,
    load_binary_stream,
    load_haphazard,
    load_mlbench,
)
from auxlab.datasets._mlbench import mlbench_folder
from auxlab.datasets._rdata import RDataError, read_rda, read_rda_frame
from auxlab.online import haphazard_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"
HAS_RIVER = importlib.util.find_spec("river") is not None


def _has_mlbench() -> bool:
    try:
        mlbench_folder()
    except MissingMlbench:
        return False
    return True


needs_mlbench = pytest.mark.skipif(
    not _has_mlbench(), reason="mlbench not installed (apt-get install r-cran-mlbench)"
)
needs_river = pytest.mark.skipif(not HAS_RIVER, reason="river (extra 'online') not installed")
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"haphazard data not found beside the checkout ({DATA})"
)


def _loadable(name: str) -> bool:
    origin = POOL[name].origin
    return {"river": HAS_RIVER, "mlbench": _has_mlbench(), "shared": DATA.is_dir()}[origin]


def test_pool_has_twelve_distinct_sets_and_names_its_duplicates():
    distinct = binary_pool()
    names = [e.name for e in distinct]
    assert len(names) == len(set(names)) >= 12
    assert all(e.duplicate_of is None for e in distinct)
    every = binary_pool(include_duplicates=True)
    dups = {e.name: e.duplicate_of for e in every if e.duplicate_of}
    assert dups == {"breast_cancer": "wbc", "pima": "diabetes_f", "ionosphere_r": "ionosphere"}
    assert all(d in names for d in dups.values())
    assert {e.origin for e in distinct} == {"shared", "river", "mlbench"}


def test_pool_entries_carry_published_numbers_with_sources():
    german = POOL["german"]
    assert german.best_published_at(0.5) == (57.09, "OVFM, review 2024, Tables VI-VII")
    assert POOL["magic04"].best_published_at(0.5)[0] == 67.09
    assert POOL["sonar"].best_published_at(0.5) is None
    for e in POOL.values():
        for p, (value, source) in e.best_published.items():
            assert p in (0.25, 0.5, 0.75)
            assert 50 < value < 100
            assert source


def test_pool_availability_follows_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("AUXLAB_HAPHAZARD_DATA", raising=False)
    assert not binary_pool(["german"])[0].available
    assert not binary_pool(["wbc"], data_dir=tmp_path)[0].available
    (tmp_path / "wbc").mkdir()
    (tmp_path / "wbc" / "wbc.data").write_text("")
    assert binary_pool(["wbc"], data_dir=tmp_path)[0].available
    assert binary_pool("phishing")[0].available == HAS_RIVER


@pytest.mark.parametrize("name", list(POOL))
def test_pool_entry_matches_its_data(name):
    if not _loadable(name):
        pytest.skip(f"{POOL[name].origin} data not available here")
    e = POOL[name]
    data = load_binary(name, data_dir=DATA)
    assert (data.n, data.d, int(data.y.sum())) == (e.rows, e.features, e.positives)
    text_cols = 0
    if data.X.dtype == object:
        text_cols = sum(any(isinstance(v, str) for v in data.X[:, j]) for j in range(data.d))
    assert text_cols == e.categorical
    if data.X.dtype == object:  # numbers plus the categories of the text columns
        inputs = 0
        for j in range(data.d):
            col = [v for v in data.X[:, j] if v is not None and v == v]
            inputs += len({v for v in col if isinstance(v, str)})
            inputs += any(not isinstance(v, str) for v in col)
    else:
        inputs = int((~np.isnan(data.X)).any(axis=0).sum())
    assert inputs == e.inputs
    assert set(np.unique(data.y)) <= {0, 1}


@needs_data
def test_published_protocol_is_the_review_benchmarks():
    s = load_binary_stream("ipd", p=0.25, seed=7, data_dir=DATA)
    ref = load_haphazard("ipd", root=DATA).shuffled(2023)
    np.testing.assert_array_equal(s.X, ref.X)
    np.testing.assert_array_equal(s.y, ref.y)
    want = haphazard_mask("variable_p", ref.n, ref.d, p=0.25, seed=2023, X=ref.X)
    np.testing.assert_array_equal(s.mask, want)
    assert (s.seed, s.protocol, s.p) == (2023, "published", 0.25)
    assert load_binary_stream("german", data_dir=DATA).n == 959
    assert load_binary_stream("german", protocol="seeded", seed=0, data_dir=DATA).n == 1000


@needs_river
def test_seeded_protocol_varies_order_and_mask_and_repeats_per_seed():
    a = load_binary_stream("phishing", protocol="seeded", seed=1)
    b = load_binary_stream("phishing", protocol="seeded", seed=1)
    c = load_binary_stream("phishing", protocol="seeded", seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.X, c.X)
    assert not np.array_equal(a.mask, c.mask)
    assert abs(a.mask.mean() - 0.5) < 0.02
    pub = load_binary_stream("phishing")
    assert not np.array_equal(pub.X, a.X)


@needs_river
@pytest.mark.parametrize("mode", ["trapezoidal", "sudden", "obsolete"])
def test_chunked_modes_and_seeded_feature_order(mode):
    pub = load_binary_stream("phishing", mode=mode)
    assert pub.p is None
    # Published: features arrive in file order (trapezoidal/sudden: the first columns first).
    first = pub.mask[: pub.n // 10].sum(axis=0) if mode != "obsolete" else pub.mask[-10:].sum(0)
    assert first[0] > 0
    assert first[-1] == 0
    orders = {
        tuple(np.argsort(-load_binary_stream("phishing", mode=mode, protocol="seeded", seed=s)
                         .mask.sum(axis=0), kind="stable"))
        for s in range(4)
    }  # fmt: skip
    assert len(orders) > 1  # the seed decides which features come first


@needs_mlbench
def test_stream_mask_never_shows_a_missing_value():
    s = load_binary_stream("house_votes84", p=0.75, protocol="seeded", seed=0)
    missing = np.vectorize(lambda v: v is None, otypes=[bool])(s.X)
    assert missing.any()
    assert not (s.mask & missing).any()
    # Every row keeps a feature, unless the data has none (one member abstained throughout).
    np.testing.assert_array_equal(s.mask.any(axis=1), (~missing).any(axis=1))
    assert (~missing).any(axis=1).sum() == s.n - 1
    assert s.X.dtype == object
    assert {v for v in s.X.ravel() if v is not None} == {"y", "n"}


def test_load_binary_stream_refuses_bad_arguments():
    with pytest.raises(ValueError, match="unknown pool data set 'nope'"):
        load_binary_stream("nope")
    with pytest.raises(ValueError, match="mode must be one of"):
        load_binary_stream("phishing", mode="random")
    with pytest.raises(ValueError, match="protocol must be"):
        load_binary_stream("phishing", protocol="fixed")
    with pytest.raises(ValueError, match="give an integer >= 0"):
        load_binary_stream("phishing", protocol="seeded")
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
        load_binary_stream("phishing", p=1.5)


def test_missing_mlbench_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXLAB_MLBENCH_DATA", str(tmp_path))
    with pytest.raises(MissingMlbench, match="apt-get install r-cran-mlbench"):
        load_mlbench("sonar")
    assert not binary_pool(["sonar"])[0].available


@needs_mlbench
def test_mlbench_factors_come_as_text_with_none_for_na():
    votes = load_mlbench("house_votes84")
    assert votes.feature_names[:2] == ("V1", "V2")
    col = list(votes.X[:, 0])
    assert (col.count(None), col.count("n"), col.count("y")) == (12, 236, 187)
    cancer = load_mlbench("breast_cancer")
    assert "Id" not in cancer.feature_names  # an identifier, not a feature
    assert cancer.X[0, 0] == "5"
    assert list(cancer.X[:, 5]).count(None) == 16
    sonar = load_mlbench("sonar")
    assert sonar.X.dtype == np.float64
    assert sonar.X[:, 0].sum() == pytest.approx(6.0661)  # R: sum(Sonar$V1)


@needs_mlbench
def test_rdata_reader_refuses_damaged_files(tmp_path):
    src = mlbench_folder() / "Sonar.rda"
    raw = lzma.decompress(src.read_bytes())
    cut = tmp_path / "cut.rda"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RDataError, match="ends early"):
        read_rda(cut)
    bad = tmp_path / "bad.rda"
    bad.write_bytes(b"hello world")
    with pytest.raises(RDataError, match="not an R data file"):
        read_rda(bad)
    with pytest.raises(RDataError, match="no data frame named 'Glass'"):
        read_rda_frame(src, "Glass")
    assert isinstance(RDataError("x"), ValueError)
    assert issubclass(MissingMlbench, HaphazardDataError)


@needs_river
def test_parsed_files_are_kept_but_callers_get_their_own_arrays():
    a = load_binary("phishing")
    a.X[:] = 0.0  # the caller's copy: the next load is untouched
    b = load_binary("phishing")
    assert b.X.any()
    s = load_binary_stream("phishing")
    assert s.X.flags.writeable
    assert not np.shares_memory(s.X, b.X)
