"""The cases with a known answer (auxlab.cases): they build, split, repeat, train; the registry."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from auxlab import fit
from auxlab.cases import CASES, SPLIT_SEED, VERDICTS, Case, get_case, split_rows
from auxlab.cases._digits import _pairs
from auxlab.datasets._fashion_mnist import DEFAULT_ROOT
from auxlab.objective import METRICS
from auxlab.study import Problem
from auxlab.study._problem import resolve_builder

ORACLE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "oracle.json"

_DIGITS = {"n_train": 24, "n_val": 16, "n_test": 16}
_FASHION = {"n_train": 20, "n_unlabelled": 20, "n_val": 16, "n_test": 16}
#: Tiny sizes per case (builder arguments), so that a test builds and trains in a second.
TINY: dict[str, dict[str, Any]] = {
    "digits_reconstruct": _DIGITS,
    "digits_semi": {**_DIGITS, "n_unlabelled": 24},
    "digits_distractor": _DIGITS,
    "digits_random": _DIGITS,
    "fashion_reconstruct": _FASHION,
    "fashion_rotation": _FASHION,
    "yeast": {"n_train": 60, "n_val": 40},
    "solar_flare": {"n_train": 60, "n_val": 40},
}


def _needs_data(name: str) -> None:
    if name.startswith("fashion") and not DEFAULT_ROOT.is_dir():
        pytest.skip("Fashion-MNIST is not installed (Debian dataset-fashion-mnist)")
    if name in ("yeast", "solar_flare"):
        pytest.importorskip("river")


def _build(name: str, seed: int = 0) -> Problem:
    _needs_data(name)
    return get_case(name).build(seed, **TINY[name])


def _part(loader: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return loader.inputs, loader.targets


def test_tiny_sizes_cover_every_case() -> None:
    assert set(TINY) == set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_case_builds_a_problem_with_three_parts(name: str) -> None:
    p = _build(name)
    assert isinstance(p, Problem)
    assert p.test is not None
    out = p.model(p.val.inputs)
    assert set(out) == {"main", "aux"}
    assert set(p.train.targets) == {"main", "aux"}
    assert len(out["main"]) == p.val.n
    # The model's parameters are all reached by a loss: the trunk is the shared block.
    assert isinstance(p.shared, torch.nn.Module)


@pytest.mark.parametrize("name", [n for n in CASES if n != "solar_flare"])
def test_no_test_input_is_a_training_or_validation_input(name: str) -> None:
    # (SolarFlare's raw data hold identical rows, so its split is checked on indices below.)
    p = _build(name)
    xt, xv, xs = p.train.inputs, p.val.inputs, p.test.inputs
    seen = {tuple(r) for r in torch.cat([xt, xv]).round(decimals=5).tolist()}
    assert not any(tuple(r) in seen for r in xs.round(decimals=5).tolist())
    train = {tuple(r) for r in xt.round(decimals=5).tolist()}
    assert not any(tuple(r) in train for r in xv.round(decimals=5).tolist())


def test_split_rows_are_disjoint_sorted_and_fixed() -> None:
    a, b, c = split_rows(100, (30, 20, 10), SPLIT_SEED)
    assert (len(a), len(b), len(c)) == (30, 20, 10)
    assert not set(a) & set(b)
    assert not set(a) & set(c)
    assert not set(b) & set(c)
    assert all(np.all(np.diff(p) > 0) for p in (a, b, c))
    again = split_rows(100, (30, 20, 10), SPLIT_SEED)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c), again, strict=True))
    with pytest.raises(ValueError, match="ask for 61 rows"):
        split_rows(60, (30, 31))


def test_multi_digits_parts_use_disjoint_source_images() -> None:
    pytest.importorskip("sklearn")
    _, left, right = _pairs(50, 30, 40)
    train = set(left[:50]) | set(right[:50])
    val = set(left[50:80]) | set(right[50:80])
    test = set(left[80:]) | set(right[80:])
    assert not train & val
    assert not train & test
    assert not val & test


def test_tabular_test_rows_are_every_row_left() -> None:
    pytest.importorskip("river")
    p = get_case("solar_flare").build(0, n_train=100, n_val=100)
    assert p.train.n + p.val.n + p.test.n == 1066


@pytest.mark.parametrize("name", list(CASES))
def test_a_seed_fixes_init_and_batch_order_but_not_the_split(name: str) -> None:
    a, b, c = _build(name, 3), _build(name, 3), _build(name, 4)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(a.model.parameters(), c.model.parameters(), strict=True)
    )
    first = [next(iter(p.train))[1]["main"] for p in (a, b, c)]
    assert torch.allclose(first[0], first[1], equal_nan=True)
    for part in ("train", "val", "test"):
        xa, ya = _part(getattr(a, part))
        xc, yc = _part(getattr(c, part))
        assert torch.equal(xa, xc)
        for k in ya:
            assert torch.allclose(ya[k].double(), yc[k].double(), equal_nan=True)


@pytest.mark.parametrize("name", list(CASES))
def test_a_tiny_run_trains(name: str) -> None:
    p = _build(name)
    h = fit(
        p.model,
        p.train,
        p.objective,
        {"main": 1.0, "aux": 0.3},
        epochs=4,
        optimizer=p.optimizer,
        lr=p.lr,
        val=p.val,
        shared=p.shared,
        progress=False,
        seed=0,
    )
    losses = [ep["train_loss_main"] for ep in h.epochs]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    metric = f"val_main_{get_case(name).metric}"
    assert math.isfinite(h.epochs[-1][metric])


def test_registry_is_complete_and_consistent() -> None:
    verdicts = [c.expected for c in CASES.values()]
    assert len(CASES) >= 8
    assert verdicts.count("helps") >= 3
    assert verdicts.count("hurts") >= 2
    assert verdicts.count("neutral") >= 2
    for name, case in CASES.items():
        assert case.name == name
        assert case.expected in VERDICTS
        assert case.metric in METRICS
        assert case.epochs >= 1
        assert case.description
        assert case.data
        assert resolve_builder(case.ref) is case.builder


def test_get_case_names_the_cases_when_it_does_not_know_one() -> None:
    with pytest.raises(KeyError, match="digits_reconstruct"):
        get_case("no such case")
    assert get_case("yeast").name == "yeast"


def test_a_case_with_an_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValueError, match="expected must be one of"):
        Case("x", "d", lambda seed: None, "accuracy", 1, "maybe", "data")  # type: ignore[arg-type,return-value]


def test_bad_builder_arguments_are_named() -> None:
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="aux must be"):
        get_case("digits_reconstruct").build(0, aux="colour")
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        get_case("digits_reconstruct").build(0, n_train=0)


def test_the_registry_verdicts_are_the_stored_oracle_s() -> None:
    if not ORACLE.is_file():
        pytest.skip("no stored oracle")
    records = json.loads(ORACLE.read_text())
    found = {r["case"]: r["verdict"] for r in records if r["record"] == "summary"}
    assert set(found) == set(CASES)
    assert found == {n: c.expected for n, c in CASES.items()}
