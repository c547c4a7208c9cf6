"""Tests for auxlab.schedules: values at chosen steps and argument checks."""

from __future__ import annotations

import math

import pytest

from auxlab.schedules import anneal_to_zero, constant, cosine, linear, piecewise_constant, warmup


def test_constant() -> None:
    f = constant(0.2)
    assert [f(s) for s in (-5, 0, 1, 10**6)] == [0.2, 0.2, 0.2, 0.2]
    assert constant(0.0)(3) == 0.0


@pytest.mark.parametrize(
    ("step", "want"),
    [(-10, 0.2), (-1, 0.2), (0, 0.2), (2, 0.4), (5, 0.7), (10, 1.2), (11, 1.2), (1000, 1.2)],
)
def test_linear_values(step: int, want: float) -> None:
    assert linear(0.2, 1.2, 10)(step) == pytest.approx(want, abs=1e-12)


def test_linear_decreasing_and_flat() -> None:
    f = linear(1.0, 0.0, 4)
    assert [f(s) for s in range(-1, 6)] == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    assert linear(0.5, 0.5, 3)(2) == 0.5


@pytest.mark.parametrize("step", [-3, 0, 1, 2, 3, 5, 7, 10, 15])
def test_cosine_values(step: int) -> None:
    start, end, steps = 0.8, 0.2, 10
    t = min(max(step, 0), steps) / steps
    want = end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))
    assert cosine(start, end, steps)(step) == pytest.approx(want, abs=1e-12)


def test_cosine_landmarks() -> None:
    f = cosine(1.0, 0.0, 10)
    assert f(0) == 1.0
    assert f(5) == pytest.approx(0.5, abs=1e-12)
    assert f(10) == pytest.approx(0.0, abs=1e-12)
    assert f(20) == pytest.approx(0.0, abs=1e-12)
    assert f(-1) == 1.0
    # Slow at the ends, fast in the middle.
    assert f(0) - f(1) < f(4) - f(5)
    up = cosine(0.0, 2.0, 4)
    assert up(2) == pytest.approx(1.0)
    assert up(4) == pytest.approx(2.0)


def test_piecewise_constant() -> None:
    f = piecewise_constant([1.0, 0.5, 0.0], [100, 200])
    got = [f(s) for s in (-1, 0, 99, 100, 150, 199, 200, 10_000)]
    assert got == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.0, 0.0]
    g = piecewise_constant([0.3], [])
    assert g(0) == g(10**6) == 0.3
    h = piecewise_constant([0.0, 1.0], [0])
    assert h(-1) == 0.0
    assert h(0) == 1.0


def test_warmup() -> None:
    f = warmup(0.2, 100)
    assert f(-5) == 0.0
    assert f(0) == 0.0
    assert f(50) == pytest.approx(0.1)
    assert f(100) == pytest.approx(0.2)
    assert f(1000) == pytest.approx(0.2)
    g = warmup(1.0, 4, start=0.5)
    assert [g(s) for s in range(5)] == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0])


def test_anneal_to_zero_linear() -> None:
    f = anneal_to_zero(0.3, 10)
    assert f(-1) == pytest.approx(0.3)
    assert f(0) == pytest.approx(0.3)
    assert f(5) == pytest.approx(0.15)
    assert f(10) == 0.0
    assert f(11) == 0.0
    assert anneal_to_zero(0.3, 10, kind="linear")(4) == pytest.approx(0.18)


def test_anneal_to_zero_cosine() -> None:
    f = anneal_to_zero(0.4, 10, kind="cosine")
    assert f(-2) == pytest.approx(0.4)
    assert f(0) == pytest.approx(0.4)
    assert f(5) == pytest.approx(0.2)
    assert f(3) == pytest.approx(0.2 * (1 + math.cos(math.pi * 0.3)))
    assert f(10) == pytest.approx(0.0, abs=1e-15)
    assert f(100) == pytest.approx(0.0, abs=1e-15)
    # Above the linear anneal in the first half.
    assert f(3) > anneal_to_zero(0.4, 10)(3)


def test_schedules_never_negative_on_a_range() -> None:
    for f in (
        anneal_to_zero(0.3, 7),
        anneal_to_zero(0.3, 7, kind="cosine"),
        cosine(0.0, 1.0, 3),
        linear(1.0, 0.0, 9),
    ):
        assert all(f(s) >= 0.0 for s in range(-3, 20))


@pytest.mark.parametrize("steps", [0, -1, 2.5])
@pytest.mark.parametrize("factory", [linear, cosine])
def test_bad_steps(factory: object, steps: float) -> None:
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        factory(0.0, 1.0, steps)  # type: ignore[operator]


@pytest.mark.parametrize("steps", [0, -3])
def test_bad_steps_in_wrappers(steps: int) -> None:
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        warmup(0.2, steps)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        anneal_to_zero(0.2, steps)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_bad_values(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number >= 0"):
        constant(bad)
    with pytest.raises(ValueError, match="start must be"):
        linear(bad, 1.0, 10)
    with pytest.raises(ValueError, match="end must be"):
        cosine(1.0, bad, 10)
    with pytest.raises(ValueError, match="start must be"):
        warmup(0.2, 10, start=bad)
    with pytest.raises(ValueError, match="start must be"):
        anneal_to_zero(bad, 10)
    with pytest.raises(ValueError, match="each value must be"):
        piecewise_constant([1.0, bad], [5])


def test_piecewise_constant_argument_errors() -> None:
    with pytest.raises(ValueError, match="one more value than boundaries, got 2 values and 2"):
        piecewise_constant([1.0, 0.5], [1, 2])
    with pytest.raises(ValueError, match="one more value"):
        piecewise_constant([1.0, 0.5, 0.2, 0.1], [1, 2])
    with pytest.raises(ValueError, match=r"increasing steps >= 0, got \[5, 2\]"):
        piecewise_constant([1.0, 0.5, 0.0], [5, 2])
    with pytest.raises(ValueError, match="increasing steps >= 0"):
        piecewise_constant([1.0, 0.5], [-1])


def test_anneal_to_zero_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'exp'; use 'linear' or 'cosine'"):
        anneal_to_zero(0.3, 10, kind="exp")
