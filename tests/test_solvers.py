"""Tests for the small exact solvers of the gradient-based strategies (auxlab.weighting._solvers).

Each solver is checked against an independent reference: SciPy (skipped when SciPy is not
installed), a brute-force grid, or the optimality conditions written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from auxlab.weighting._cagrad_solver import cagrad_weights
from auxlab.weighting._solvers import (
    dual_cone_weights,
    min_norm_weights,
    nash_weights,
    nnls,
    psd_factor,
    tie_identical,
)


def _random_gramian(rng: np.random.Generator, t: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    j = 0.5 * rng.standard_normal(d) + rng.standard_normal((t, d))
    return j, j @ j.T


# ------------------------------------------------------------------------------------ NNLS


def test_nnls_matches_scipy_including_rank_deficient() -> None:
    so = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for trial in range(150):
        m, n = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        a = rng.standard_normal((m, n))
        if trial % 3 == 0 and n > 1:
            a[:, -1] = a[:, 0]  # duplicate column: the minimiser is not unique
        b = rng.standard_normal(m)
        x, ok = nnls(a, b)
        ref, res = so.nnls(a, b)
        assert ok
        assert np.all(x >= 0)
        assert np.linalg.norm(a @ x - b) == pytest.approx(res, abs=1e-9)
        if trial % 3 != 0 and m >= n:  # full column rank: unique
            np.testing.assert_allclose(x, ref, atol=1e-8)


def test_nnls_kkt_conditions() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4))
    b = rng.standard_normal(6)
    x, ok = nnls(a, b)
    dual = a.T @ (b - a @ x)
    assert ok
    assert np.all(dual <= 1e-10)  # no descent direction into the feasible set
    assert np.allclose(dual[x > 0], 0.0, atol=1e-10)  # complementary slackness


def test_psd_factor_reconstructs_singular_gramian() -> None:
    j = np.array([[1.0, 2.0], [2.0, 4.0], [0.0, 1.0]])
    g = j @ j.T  # rank 2
    r = psd_factor(g)
    assert r.shape == (2, 3)
    np.testing.assert_allclose(r.T @ r, g, atol=1e-12)
    assert psd_factor(np.zeros((3, 3))).shape == (0, 3)


# ------------------------------------------------------------------------------ min norm


def test_min_norm_two_tasks_closed_form() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        g1, g2 = rng.standard_normal(5), rng.standard_normal(5)
        j = np.stack([g1, g2])
        alpha, ok = min_norm_weights(j @ j.T)
        # The brief's closed form: the weight on g1 is clip(((g2-g1)·g2)/||g1-g2||², 0, 1).
        a = float(np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0.0, 1.0))
        assert ok
        np.testing.assert_allclose(alpha, [a, 1.0 - a], atol=1e-12)


def test_min_norm_matches_scipy_and_kkt() -> None:
    so = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    for _ in range(60):
        t, d = int(rng.integers(3, 8)), int(rng.integers(1, 10))
        _, g = _random_gramian(rng, t, d)
        alpha, ok = min_norm_weights(g)
        assert ok
        assert np.all(alpha >= 0)
        assert alpha.sum() == pytest.approx(1.0)
        # KKT: every gradient has at least the squared min norm along the min-norm point.
        assert np.all(g @ alpha >= alpha @ g @ alpha - 1e-9 * np.max(np.diag(g)))
        res = so.minimize(
            lambda x, g=g: x @ g @ x,
            np.full(t, 1.0 / t),
            bounds=[(0, 1)] * t,
            constraints={"type": "eq", "fun": lambda x: x.sum() - 1},
            method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 500},
        )
        assert alpha @ g @ alpha <= res.fun + 1e-9 * np.max(np.diag(g))


def test_min_norm_brute_force_grid_three_tasks() -> None:
    rng = np.random.default_rng(4)
    _, g = _random_gramian(rng, 3, 4)
    alpha, _ = min_norm_weights(g)
    n = 400
    a, b = np.meshgrid(np.arange(n + 1) / n, np.arange(n + 1) / n)
    keep = a + b <= 1
    w = np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)
    values = np.einsum("ni,ij,nj->n", w, g, w)
    assert alpha @ g @ alpha <= values.min() + 1e-12


def test_min_norm_degenerate_inputs() -> None:
    assert min_norm_weights(np.zeros((3, 3)))[0].tolist() == pytest.approx([1 / 3] * 3)
    assert min_norm_weights(np.array([[4.0]]))[0].tolist() == [1.0]
    # Identical gradients share their weight equally; the vector is the same either way.
    j = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    alpha, ok = min_norm_weights(j @ j.T)
    assert ok
    np.testing.assert_allclose(alpha, [0.5, 0.25, 0.25], atol=1e-12)


def test_tie_identical_keeps_the_vector() -> None:
    j = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, -1.0]])
    g = j @ j.T
    coef = np.array([0.7, 0.1, 0.2])
    tied = tie_identical(g, coef, 1e-12)
    np.testing.assert_allclose(tied, [0.4, 0.4, 0.2])
    np.testing.assert_allclose(tied @ j, coef @ j)


# ----------------------------------------------------------------------------- dual cone


def test_dual_cone_matches_brute_force_qp() -> None:
    so = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(5)
    for _ in range(60):
        t, d = int(rng.integers(2, 7)), int(rng.integers(1, 9))
        j, g = _random_gramian(rng, t, d)
        u = np.zeros(t)
        u[int(rng.integers(t))] = 0.1 + rng.random()
        v, ok = dual_cone_weights(g, u)
        assert ok
        assert np.all(v >= u - 1e-12)
        assert np.all(j @ (j.T @ v) >= -1e-9 * np.max(np.diag(g)))  # in the dual cone
        res = so.minimize(
            lambda x, g=g: x @ g @ x,
            u + 0.1,
            bounds=[(ui, None) for ui in u],
            method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 500},
        )
        assert v @ g @ v == pytest.approx(res.fun, rel=1e-6, abs=1e-10)


def test_dual_cone_without_conflict_is_identity() -> None:
    j = np.array([[1.0, 0.0], [1.0, 1.0]])  # g1·g2 > 0
    u = np.array([0.5, 0.0])
    v, ok = dual_cone_weights(j @ j.T, u)
    assert ok
    np.testing.assert_allclose(v, u, atol=1e-12)


# ---------------------------------------------------------------------------------- Nash


def test_nash_solution_satisfies_the_fixed_point() -> None:
    rng = np.random.default_rng(6)
    for _ in range(60):
        t = int(rng.integers(1, 7))
        _, g = _random_gramian(rng, t, t + int(rng.integers(0, 6)))
        g /= np.linalg.norm(g)
        alpha, ok = nash_weights(g)
        assert ok
        assert np.all(alpha > 0)
        np.testing.assert_allclose(g @ alpha, 1.0 / alpha, rtol=1e-8)


def test_nash_reports_when_no_solution_exists() -> None:
    j = np.array([[1.0, 0.0], [-1.0, 0.0]])  # 0 = ½g₁ + ½g₂: no bargaining solution
    alpha, ok = nash_weights(j @ j.T)
    assert not ok
    assert np.all(np.isfinite(alpha))


# -------------------------------------------------------------------------------- CAGrad


def _cagrad_dual(j: np.ndarray, c: float, w: np.ndarray) -> np.ndarray:
    """The CAGrad dual ``F(w) = g_w·g₀ + c·||g₀||·||g_w||`` for one or many ``w`` (rows)."""
    g0 = j.mean(axis=0)
    gw = np.atleast_2d(w) @ j
    return gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)


def _simplex_grid(t: int, n: int) -> np.ndarray:
    if t == 2:
        a = np.linspace(0.0, 1.0, n + 1)
        return np.stack([a, 1 - a], axis=1)
    a, b = np.meshgrid(np.arange(n + 1) / n, np.arange(n + 1) / n)
    keep = a + b <= 1
    return np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)


def _check_cagrad_certificate(j: np.ndarray, c: float, coef: np.ndarray) -> float:
    """Check optimality by duality; return the optimal value.

    ``d = Σ coefᵢ gᵢ`` must be primal feasible (``||d - g₀|| <= c||g₀||``); the simplex
    weights ``w ∝ coef - 1/T`` are dual feasible; weak duality gives
    ``minᵢ gᵢ·d <= F(w)``, so equality proves both optimal.
    """
    t = j.shape[0]
    g0 = j.mean(axis=0)
    d = coef @ j
    assert np.linalg.norm(d - g0) <= c * np.linalg.norm(g0) * (1 + 1e-9)
    excess = coef - 1.0 / t
    w = excess / excess.sum()
    assert np.all(w >= -1e-12)
    primal = float(min(j @ d))
    dual = float(_cagrad_dual(j, c, w)[0])
    assert primal == pytest.approx(dual, rel=1e-9, abs=1e-12)
    return dual


def test_cagrad_two_dimensional_toy_matches_grid() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        j = rng.standard_normal((2, 2))  # two tasks in R²
        c = float(rng.uniform(0.1, 0.9))
        coef, ok = cagrad_weights(j @ j.T, c)
        assert ok
        value = _check_cagrad_certificate(j, c, coef)
        # Brute force over the simplex: nothing on a fine grid beats our dual value, and the
        # grid's best point gives the same direction to grid precision.
        grid = _simplex_grid(2, 200_000)
        f = _cagrad_dual(j, c, grid)
        assert value <= f.min() + 1e-12
        g0 = j.mean(axis=0)
        gw = grid[int(np.argmin(f))] @ j
        d_grid = g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw) * gw
        np.testing.assert_allclose(coef @ j, d_grid, atol=1e-3 * np.linalg.norm(d_grid))


def test_cagrad_three_tasks_matches_grid_and_scipy() -> None:
    rng = np.random.default_rng(8)
    j = 0.3 * rng.standard_normal(5) + rng.standard_normal((3, 5))
    c = 0.5
    coef, ok = cagrad_weights(j @ j.T, c)
    assert ok
    value = _check_cagrad_certificate(j, c, coef)
    assert value <= _cagrad_dual(j, c, _simplex_grid(3, 600)).min() + 1e-12
    so = pytest.importorskip("scipy.optimize")
    res = so.minimize(
        lambda w: float(_cagrad_dual(j, c, w)[0]),
        np.full(3, 1 / 3),
        bounds=[(0, 1)] * 3,
        constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert value == pytest.approx(res.fun, rel=1e-7, abs=1e-9)


def test_cagrad_many_random_problems_are_certified() -> None:
    rng = np.random.default_rng(10)
    for _ in range(40):
        t, d = int(rng.integers(2, 7)), int(rng.integers(1, 8))
        j, g = _random_gramian(rng, t, d)
        c = float(rng.uniform(0.05, 0.95))
        coef, ok = cagrad_weights(g, c)
        assert ok
        if np.linalg.norm(j.mean(axis=0)) > 1e-6 and not np.allclose(coef, 1.0 / t):
            _check_cagrad_certificate(j, c, coef)


def test_cagrad_degenerate_cases() -> None:
    j = np.array([[1.0, 0.0], [-1.0, 0.0]])  # mean gradient zero: d = g₀ = 0
    coef, ok = cagrad_weights(j @ j.T, 0.5)
    assert ok
    np.testing.assert_allclose(coef, [0.5, 0.5])
    coef, ok = cagrad_weights(np.zeros((3, 3)), 0.5)
    assert ok
    np.testing.assert_allclose(coef, [1 / 3] * 3)
    # c = 0: the mean gradient.
    j = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(cagrad_weights(j @ j.T, 0.0)[0], [0.5, 0.5])


def test_cagrad_origin_in_hull_is_not_mistaken_for_the_root() -> None:
    # One-dimensional gradients of both signs: the hull holds the origin, so the dual's
    # stationarity equation also holds at s = 0, which is not the optimum.
    j = np.array([[1.0], [-0.4], [2.0], [-1.5]])
    c = 0.5
    coef, ok = cagrad_weights(j @ j.T, c)
    assert ok
    # The dual depends on w only through g_w, which ranges over [min gᵢ, max gᵢ] here.
    gw = np.linspace(j.min(), j.max(), 100_001)
    g0 = float(j.mean())
    best = float(np.min(gw * g0 + c * abs(g0) * np.abs(gw)))
    assert _check_cagrad_certificate(j, c, coef) == pytest.approx(best, abs=1e-9)


def test_dual_cone_weights_with_a_shared_factor_equal_the_one_off_solves():
    from auxlab.weighting._solvers import dual_cone_factor, dual_cone_weights

    rng = np.random.default_rng(3)
    jac = rng.normal(size=(5, 12))
    jac[1] = -0.7 * jac[0] + 0.2 * jac[1]  # a conflicting pair, so some projections bind
    gram = jac @ jac.T
    factor = dual_cone_factor(gram)
    for i in range(5):
        u = np.zeros(5)
        u[i] = 0.2
        v_alone, ok_alone = dual_cone_weights(gram, u)
        v_shared, ok_shared = dual_cone_weights(gram, u, factor)
        assert ok_alone
        assert ok_shared
        np.testing.assert_array_equal(v_shared, v_alone)
        assert np.all(gram @ v_shared >= -1e-9)  # in the dual cone
