"""The haphazard-input data loaders, on the real files when present."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from auxlab._optional import MissingDependencyError
from auxlab.datasets import RIVER_STREAMS, river_stream
from auxlab.datasets._haphazard import (
    HAPHAZARD_DATASETS,
    HaphazardDataError,
    MissingHaphazardData,
    load_haphazard,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"haphazard data not found beside the checkout ({DATA})"
)

# Rows, features, percent positive: from the data folder's SOURCE.md.
EXPECTED = {
    "german": (1000, 24, 70.00),
    "magic04": (19020, 10, 64.84),
    "a8a": (32561, 123, 75.92),
    "ipd": (1096, 24, 49.91),
    "svmguide3": (1243, 21, 76.19),
    "diabetes_f": (768, 8, 34.90),
    "ionosphere": (351, 34, 64.10),
    "wbc": (699, 9, 34.48),
}


@needs_data
@pytest.mark.parametrize("name", HAPHAZARD_DATASETS)
def test_loader_on_the_real_file(name):
    data = load_haphazard(name, root=DATA)
    n, d, pos = EXPECTED[name]
    assert data.X.shape == (n, d)
    assert data.y.shape == (n,)
    assert len(data.feature_names) == d
    assert 100 * data.y.mean() == pytest.approx(pos, abs=0.005)
    assert set(np.unique(data.y)) == {0, 1}
    assert np.isnan(data.X).sum() == (16 if name == "wbc" else 0)


@needs_data
def test_german_review_version_and_environment_variable(monkeypatch):
    review = load_haphazard("german", root=DATA, german_rows=959)
    assert review.n == 959
    assert 100 * review.y.mean() == pytest.approx(71.32, abs=0.005)
    monkeypatch.setenv("AUXLAB_HAPHAZARD_DATA", str(DATA))
    assert load_haphazard("ipd").n == 1096
    shuffled = load_haphazard("ipd").shuffled(0)
    assert sorted(shuffled.y.tolist()) == sorted(load_haphazard("ipd").y.tolist())


def test_no_folder_gives_a_clear_error(monkeypatch):
    monkeypatch.delenv("AUXLAB_HAPHAZARD_DATA", raising=False)
    with pytest.raises(MissingHaphazardData, match="AUXLAB_HAPHAZARD_DATA") as info:
        load_haphazard("german")
    text = str(info.value)
    for where in ("root=DIR", "german/german.data-numeric", "wbc/wbc.data", "Rohit102497"):
        assert where in text
    with pytest.raises(ValueError, match="unknown data set"):
        load_haphazard("higgs", root=".")


def test_missing_and_malformed_files_name_file_and_line(tmp_path):
    with pytest.raises(MissingHaphazardData, match=r"(?s)missing data file.*magic04/magic04\.data"):
        load_haphazard("magic04", root=tmp_path)
    (tmp_path / "magic04").mkdir()
    good = "1,2,3,4,5,6,7,8,9,10,g\n"
    (tmp_path / "magic04" / "magic04.data").write_text(good + "1,2,3,4,5,6,7,8,9,g\n")
    with pytest.raises(HaphazardDataError, match=r"magic04\.data, line 2: expected 11"):
        load_haphazard("magic04", root=tmp_path)
    (tmp_path / "magic04" / "magic04.data").write_text(good + "1,2,x,4,5,6,7,8,9,10,g\n")
    with pytest.raises(HaphazardDataError, match=r"line 2: 'x' is not a number"):
        load_haphazard("magic04", root=tmp_path)
    (tmp_path / "a8a").mkdir()
    (tmp_path / "a8a" / "a8a.txt").write_text("-1 3:1\n+1 500:1\n")
    with pytest.raises(HaphazardDataError, match=r"a8a\.txt, line 2: bad entry"):
        load_haphazard("a8a", root=tmp_path)
    (tmp_path / "german").mkdir()
    (tmp_path / "german" / "german.data-numeric").write_text(" ".join(["1"] * 24) + " 3\n")
    with pytest.raises(HaphazardDataError, match="line 1: unknown label '3'"):
        load_haphazard("german", root=tmp_path)


# -- river's bundled streams ------------------------------------------------------------------

needs_river = pytest.mark.skipif(
    importlib.util.find_spec("river") is None, reason="river (the online extra) not installed"
)

# Rows, features, percent positive, counted from the files inside river 0.26.
RIVER_EXPECTED = {"phishing": (1250, 9, 43.84), "bananas": (5300, 2, 44.83)}


@needs_river
@pytest.mark.parametrize("name", sorted(RIVER_EXPECTED))
def test_river_streams_load_without_a_download(name):
    data = river_stream(name)
    n, d, pos = RIVER_EXPECTED[name]
    assert data.name == name
    assert data.X.shape == (n, d)
    assert len(data.feature_names) == d
    assert 100 * data.y.mean() == pytest.approx(pos, abs=0.005)
    assert set(np.unique(data.y)) == {0, 1}
    assert not np.isnan(data.X).any()
    assert name in RIVER_STREAMS


@needs_river
def test_river_stream_names_in_any_case_and_a_prefix():
    head = river_stream("Phishing", n=10)
    assert head.n == 10
    np.testing.assert_array_equal(head.X, river_stream("phishing").X[:10])


@needs_river
def test_river_stream_refuses_unknown_and_multiclass_streams():
    with pytest.raises(ValueError, match=r"no data set 'nope'.*phishing"):
        river_stream("nope")
    # ImageSegments ships with river and has 7 classes: not silently cast to booleans.
    with pytest.raises(ValueError, match="not a binary stream"):
        river_stream("ImageSegments")


def test_river_stream_without_river_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    with pytest.raises(MissingDependencyError, match=r"auxlab\[online\]"):
        river_stream("phishing")


# -- damaged files: non-finite tokens and files cut at a line boundary (issue 15) -------------

GERMAN_ROW = " ".join(["1"] * 24) + " 1\n"
MAGIC_ROW = "1,2,3,4,5,6,7,8,9,10,g\n"


@pytest.mark.parametrize("token", ["inf", "-inf", "nan", "NaN", "Infinity", "1e999"])
def test_non_finite_tokens_are_refused_naming_file_and_line(tmp_path, token):
    (tmp_path / "magic04").mkdir()
    bad = MAGIC_ROW.replace("3", token, 1)
    (tmp_path / "magic04" / "magic04.data").write_text(MAGIC_ROW * 4 + bad + MAGIC_ROW)
    with pytest.raises(
        HaphazardDataError, match=rf"magic04\.data, line 5: '{token}' is not a finite"
    ):
        load_haphazard("magic04", root=tmp_path)
    (tmp_path / "a8a").mkdir()
    (tmp_path / "a8a" / "a8a.txt").write_text(f"-1 3:1\n+1 5:{token}\n")
    with pytest.raises(HaphazardDataError, match=r"a8a\.txt, line 2: .* is not a finite number"):
        load_haphazard("a8a", root=tmp_path)


@pytest.mark.parametrize("rows", [500, 999, 1001])
def test_german_with_the_wrong_number_of_rows_is_refused(tmp_path, rows):
    # A file cut at a line boundary parses cleanly: german used to run on 500 rows.
    (tmp_path / "german").mkdir()
    (tmp_path / "german" / "german.data-numeric").write_text(GERMAN_ROW * rows)
    with pytest.raises(
        HaphazardDataError,
        match=rf"(?s)german\.data-numeric, line {rows}: the file ends there with {rows} data "
        r"rows; the published german/german\.data-numeric has 1000\..*fetch it again",
    ):
        load_haphazard("german", root=tmp_path)


def test_svmlight_and_ipd_files_cut_short_are_refused(tmp_path):
    (tmp_path / "svmguide3").mkdir()
    (tmp_path / "svmguide3" / "svmguide3.txt").write_text("-1 1:0.5 2:1\n" * 10)
    with pytest.raises(HaphazardDataError, match=r"svmguide3\.txt, line 10: .* 10 data rows.*1243"):
        load_haphazard("svmguide3", root=tmp_path)
    (tmp_path / "ipd").mkdir()
    row = "1 " + " ".join(["0.5"] * 24) + "\n"
    (tmp_path / "ipd" / "ItalyPowerDemand_TRAIN.txt").write_text(row * 67)
    (tmp_path / "ipd" / "ItalyPowerDemand_TEST.txt").write_text(row * 3)
    with pytest.raises(
        HaphazardDataError, match=r"ItalyPowerDemand_TEST\.txt, line 3: .* has 1029"
    ):
        load_haphazard("ipd", root=tmp_path)


@needs_data
@pytest.mark.parametrize("name", ["german", "diabetes_f", "wbc"])
def test_a_real_file_cut_at_a_line_boundary_is_refused(tmp_path, name):
    rel = {"german": "german/german.data-numeric", "diabetes_f": "diabetes_f/diabetes_f.csv",
           "wbc": "wbc/wbc.data"}[name]  # fmt: skip
    lines = (DATA / rel).read_text().splitlines(keepends=True)
    (tmp_path / rel).parent.mkdir()
    (tmp_path / rel).write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(HaphazardDataError, match=r"the file ends there .* fetch it again"):
        load_haphazard(name, root=tmp_path)


def test_loader_arguments_are_checked():
    with pytest.raises(ValueError, match="name must be one of german"):
        load_haphazard(None, root=".")
    for n in (0, -1, 2.5):
        with pytest.raises(ValueError, match=r"n must be a number of rows >= 1"):
            river_stream("phishing", n=n)
