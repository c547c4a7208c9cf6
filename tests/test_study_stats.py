"""Student's t from scipy.stats, through the two calls the study and the RL comparison use."""

from __future__ import annotations

import math

import pytest

from auxlab.study import t_cdf, t_quantile


# Two-sided critical values of Student's t, as printed in statistics tables (e.g. NIST/SEMATECH
# e-Handbook of Statistical Methods, table 1.3.6.7.2), to the 3 decimals they give.
@pytest.mark.parametrize(
    ("q", "df", "expected"),
    [
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 4, 2.776),
        (0.975, 10, 2.228),
        (0.975, 30, 2.042),
        (0.95, 5, 2.015),
        (0.995, 4, 4.604),
        (0.90, 7, 1.415),
    ],
)
def test_t_quantile_matches_the_tables(q: float, df: int, expected: float) -> None:
    assert t_quantile(q, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(1 - q, df) == pytest.approx(-expected, abs=5e-4)  # symmetric


def test_t_cdf_exact_values_and_inverse() -> None:
    # df = 1 is the Cauchy distribution: cdf(t) = 1/2 + atan(t)/pi.
    for t in (-3.0, -1.0, 0.0, 0.5, 1.0, 10.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, rel=1e-12)
    # df = 2 has a closed form: cdf(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-2.0, 0.3, 4.0):
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), rel=1e-12)
    for df in (3, 12, 7.5):  # a Welch test's df need not be an integer
        for q in (0.9, 0.975, 0.995):
            assert t_cdf(t_quantile(q, df), df) == pytest.approx(q, rel=1e-10)


@pytest.mark.parametrize("df", [0, -1, math.nan, "3", True])
def test_bad_degrees_of_freedom_are_named(df: object) -> None:
    with pytest.raises(ValueError, match="df \\(degrees of freedom\\) must be a positive number"):
        t_quantile(0.975, df)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_cdf(1.0, df)  # type: ignore[arg-type]


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, math.nan])
def test_bad_probability_is_named(q: float) -> None:
    with pytest.raises(ValueError, match="q must be a probability strictly between 0 and 1"):
        t_quantile(q, 3)
