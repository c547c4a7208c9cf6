"""Small exact solvers on ``T x T`` Gramians, shared by the gradient-based strategies.

Every problem here lives in the space of task coefficients (``T`` numbers, ``T`` = number of
tasks), never in parameter space: the strategies hand over the Gramian ``G = J Jᵀ`` of the
per-task gradients (the rows of ``J``) and get back coefficients ``c`` whose combination
``Jᵀc = Σᵢ cᵢ·gᵢ`` is the shared update. The solvers run in float64 NumPy on the CPU (the
problems are tiny), are exact to a tolerance, and report whether they converged so that the
caller can warn with :class:`SolverWarning` and take its documented fallback.

* :func:`nnls`: non-negative least squares by the Lawson–Hanson active-set method (finite).
* :func:`min_norm_weights`: the minimum-norm point of the convex hull of the gradients (MGDA),
  closed form for two tasks, otherwise an NNLS reformulation (exact, finite).
* :func:`dual_cone_weights`: the projection of ``Jᵀu`` onto the dual cone
  ``{x : J x >= 0}`` (UPGrad), as an NNLS problem.
* :func:`nash_weights`: the Nash bargaining solution ``G α = 1/α`` (Nash-MTL) by damped
  Newton on a self-concordant potential.
* ``cagrad_weights`` (in :mod:`auxlab.weighting._cagrad_solver`): the CAGrad dual by a
  one-dimensional root search whose every evaluation is an exact minimum-norm problem.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "DualConeFactor",
    "SolverWarning",
    "dual_cone_factor",
    "dual_cone_weights",
    "gramian64",
    "input_eps",
    "min_norm_weights",
    "nash_weights",
    "nnls",
    "normalized_gramian",
    "psd_factor",
    "tie_identical",
]

Array = npt.NDArray[np.float64]

_EPS64 = float(np.finfo(np.float64).eps)


class SolverWarning(UserWarning):
    """A small solver did not converge, and the strategy took its documented fallback."""


def gramian64(matrix: torch.Tensor) -> Array:
    """A detached float64 NumPy copy of a Gramian, symmetrised (float32 products are not)."""
    g = matrix.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(0.5 * (g + g.T), dtype=np.float64)


def input_eps(tensor: torch.Tensor) -> float:
    """The machine epsilon of a tensor's dtype (float64's for non-float dtypes)."""
    if tensor.is_floating_point():
        return float(torch.finfo(tensor.dtype).eps)
    return _EPS64


def _scale(gram: Array) -> float:
    """A positive scale of a Gramian (its largest diagonal entry), or 0 when it is zero."""
    if gram.size == 0:
        return 0.0
    s = float(np.max(np.diag(gram)))
    return s if math.isfinite(s) and s > 0 else 0.0


def psd_factor(gram: Array, rtol: float | None = None) -> Array:
    """A factor ``R`` (``r x T``) with ``RᵀR = G``, dropping eigenvalues ``<= rtol·λ_max``.

    Built from the eigendecomposition, so it exists for singular and (by rounding) slightly
    indefinite Gramians. Eigenvalues below ``rtol`` (default ``T·ε``, float64 rounding) of
    the largest are rounding noise and are dropped, negative ones included.
    """
    lam, vec = np.linalg.eigh(gram)
    top = float(lam.max()) if lam.size else 0.0
    if top <= 0:
        return np.zeros((0, gram.shape[0]))
    tol = gram.shape[0] * _EPS64 if rtol is None else max(rtol, 0.0)
    keep = lam > tol * top
    return np.asarray(np.sqrt(lam[keep])[:, None] * vec[:, keep].T, dtype=np.float64)


def nnls(a: Array, b: Array, max_iter: int | None = None) -> tuple[Array, bool]:
    """Solve ``min ||A x - b||`` subject to ``x >= 0`` (Lawson & Hanson, 1974, ch. 23).

    The active-set method terminates in finitely many steps; ``max_iter`` only guards against
    cycling through rounding in degenerate problems.

    Returns:
        The solution and whether the Karush–Kuhn–Tucker conditions were met to tolerance.
    """
    m, n = a.shape
    x = np.zeros(n)
    if n == 0:
        return x, True
    if m == 0:
        return x, True
    passive = np.zeros(n, dtype=bool)
    norm_a = float(np.abs(a).sum(axis=0).max())
    tol = 10.0 * max(m, n) * _EPS64 * max(norm_a, 1.0) * max(float(np.abs(b).max()), 1.0)
    limit = max_iter if max_iter is not None else 3 * n + 10
    it = 0
    while True:
        dual = a.T @ (b - a @ x)
        candidates = np.where(passive, -np.inf, dual)
        j = int(np.argmax(candidates))
        if passive.all() or candidates[j] <= tol:
            return x, True
        if it >= limit:
            return x, False
        passive[j] = True
        while True:
            it += 1
            idx = np.flatnonzero(passive)
            s = np.zeros(n)
            s[idx] = np.linalg.lstsq(a[:, idx], b, rcond=None)[0]
            if np.all(s[idx] > 0):
                x = s
                break
            # Step from x towards s until the first passive variable hits zero, then release
            # the variables that reached zero (the classic inner loop).
            blocking = passive & (s <= 0)
            ratios = x[blocking] / (x[blocking] - s[blocking])
            step = float(ratios.min()) if ratios.size else 0.0
            x = x + step * (s - x)
            passive &= x > tol
            x[~passive] = 0.0
            if it >= limit:
                return x, False


def tie_identical(gram: Array, coef: Array, rtol: float) -> Array:
    """Share out coefficients equally among tasks whose gradients are identical.

    Where several tasks have the same gradient, minimum-norm and projection problems have
    many optimal splits of their total coefficient, all giving the same vector; the active-set
    solver picks one by index order. Splitting equally gives the same vector, and makes the
    result symmetric (identical tasks get identical weights) and independent of task order.
    Two tasks count as identical when their Gramian rows agree to ``rtol`` times the largest
    squared gradient norm.
    """
    t = len(coef)
    scale = _scale(gram)
    if t < 2 or scale == 0.0:
        return coef
    out = coef.copy()
    seen = np.zeros(t, dtype=bool)
    for i in range(t):
        if seen[i]:
            continue
        same = np.all(np.abs(gram - gram[i]) <= rtol * scale, axis=1)
        same &= ~seen
        seen |= same
        if same.sum() > 1:
            out[same] = coef[same].mean()
    return out


def _min_norm_two(gram: Array) -> Array:
    """The closed form for two tasks: the weight on g₁ is clip(((g₂-g₁)·g₂)/||g₁-g₂||², 0, 1)."""
    g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
    denom = g11 + g22 - 2.0 * g12
    if denom <= 4.0 * _EPS64 * max(g11 + g22, 0.0):
        return np.array([0.5, 0.5])  # identical gradients: any split; take the symmetric one
    a = float(np.clip((g22 - g12) / denom, 0.0, 1.0))
    return np.array([a, 1.0 - a])


def min_norm_weights(gram: Array, rtol: float = 1e-12, eps: float = _EPS64) -> tuple[Array, bool]:
    """Weights ``α`` on the simplex minimising ``||Σᵢ αᵢ gᵢ||`` (the MGDA problem).

    For two tasks the closed form. Otherwise the problem is rewritten as the NNLS problem
    ``min_{x>=0} ||R x||² + (1ᵀx - 1)²`` with ``RᵀR = G``, whose solution ``x*`` gives
    ``α = x*/Σx*``: its optimality conditions are those of the minimum-norm problem with the
    multiplier ``||Jᵀα||² = (1 - Σx*)/Σx*`` (Lawson & Hanson's least-distance programming).

    Args:
        gram: The ``T x T`` Gramian (any positive scale; it is normalised first).
        rtol: Relative tolerance under which tasks count as identical (see
            :func:`tie_identical`).
        eps: The precision the Gramian was computed in: eigenvalues under ``T·ε`` of the
            largest are rounding noise (of either sign, in float32) and are dropped.

    Returns:
        ``α`` and whether the solver converged. A zero Gramian gives uniform weights.
    """
    t = gram.shape[0]
    if t == 1:
        return np.ones(1), True
    scale = _scale(gram)
    if scale == 0.0:
        return np.full(t, 1.0 / t), True
    g = gram / scale
    if t == 2:
        return _min_norm_two(g), True
    r = psd_factor(g, t * max(eps, _EPS64))
    a = np.vstack([r, np.ones((1, t))])
    b = np.zeros(a.shape[0])
    b[-1] = 1.0
    x, ok = nnls(a, b)
    total = float(x.sum())
    if not ok or total <= 0 or not math.isfinite(total):
        return np.full(t, 1.0 / t), False
    alpha = tie_identical(g, x / total, rtol)
    # Check optimality directly: every gradient's inner product with the min-norm point is
    # at least its squared norm (Gα >= αᵀGα), to a tolerance scaled to the problem.
    grad = r.T @ (r @ alpha)  # in the factor's metric, the one the solver certifies
    ok = bool(np.all(grad >= float(alpha @ grad) - max(1e-9, 10.0 * t * eps)))
    return alpha, ok


class DualConeFactor(NamedTuple):
    """One factorisation of a Gramian, shared by several projections onto its dual cone.

    Attributes:
        norms: ``(T,)`` gradient norms ``||gᵢ||``.
        live: ``(T,)`` which gradients are non-zero (a zero gradient constrains nothing).
        factor: ``R`` (``r x L``, ``L`` live tasks) with ``RᵀR`` the cosine matrix ``C`` of
            the live gradients, eigenvalues under the inputs' precision dropped.
    """

    norms: Array
    live: npt.NDArray[np.bool_]
    factor: Array


def normalized_gramian(
    gram: Array, eps: float = _EPS64
) -> tuple[Array, npt.NDArray[np.bool_], Array]:
    """``(norms, live, C)``: the gradients' norms, which are non-zero, and their cosines.

    ``C = D⁻¹ G D⁻¹`` on the live tasks (``D = diag(||gᵢ||)``) has a unit diagonal whatever
    the gradients' sizes, so a small task's direction survives every eigenvalue cut made on
    it; the cut on ``G`` itself, relative to its largest eigenvalue, loses a task ``10⁸``
    times smaller than another. A gradient counts as zero when its squared norm is zero or
    below the inputs' smallest normal number over ``ε`` (its inner products are then
    rounding noise).
    """
    diag = np.diag(gram).copy()
    low = np.float32 if eps >= float(np.finfo(np.float32).eps) else np.float64
    tiny = float(np.finfo(low).tiny)
    live = np.isfinite(diag) & (diag > tiny / eps)
    norms = np.where(live, np.sqrt(np.clip(diag, 0.0, None)), 0.0)
    n = norms[live]
    c = gram[np.ix_(live, live)] / np.outer(n, n)
    c = np.clip(0.5 * (c + c.T), -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return norms, live, np.asarray(c, dtype=np.float64)


def dual_cone_factor(gram: Array, eps: float = _EPS64) -> DualConeFactor:
    """The factorisation :func:`dual_cone_weights` works on, for sharing among projections.

    Eigenvalues of the cosine matrix under ``T·ε`` of the largest (``ε`` the precision the
    Gramian was computed in) are rounding noise: in float32 a Gramian of nearly dependent
    gradients has such eigenvalues of either sign, and keeping them makes the projection
    problem ill-posed. Dropping them moves every constraint by at most ``T²·ε`` in cosine
    units.
    """
    norms, live, c = normalized_gramian(gram, eps)
    rtol = max(c.shape[0] * eps, c.shape[0] * _EPS64)
    return DualConeFactor(norms, live, psd_factor(c, rtol) if c.size else np.zeros((0, 0)))


def dual_cone_weights(
    gram: Array, u: Array, factor: DualConeFactor | None = None, eps: float = _EPS64
) -> tuple[Array, bool]:
    """Weights ``v`` of the projection of ``Jᵀu`` onto the dual cone ``{x : J x >= 0}``.

    By Proposition 1 of Quinton & Rey (2024) the projection is ``Jᵀv`` with ``v`` solving
    ``min vᵀ G v`` subject to ``v >= u``. The cone does not change when a gradient is
    rescaled, so the problem is solved on unit gradients: with ``w = D v`` (``D`` the
    gradients' norms) it is ``min wᵀCw`` subject to ``w >= D u``, ``C`` the cosine matrix,
    which stays well scaled when the gradients' sizes are ``10⁸`` apart. Writing
    ``w = Du + z`` with ``z >= 0`` and ``C = RᵀR`` gives the NNLS problem
    ``min_{z>=0} ||R z + R D u||``. A zero gradient constrains nothing and gets ``vᵢ = uᵢ``.

    Args:
        gram: The Gramian ``G``.
        u: The lower bound.
        factor: From :func:`dual_cone_factor`, to share one factorisation among several
            projections with the same Gramian (UPGrad makes ``T`` of them).
        eps: The precision the Gramian was computed in (float32's for float32 gradients).

    Returns:
        ``v`` and whether the solver converged. A zero Gramian gives ``v = u``.
    """
    norms, live, r = dual_cone_factor(gram, eps) if factor is None else factor
    v = u.astype(np.float64).copy()
    if not live.any() or r.shape[0] == 0:
        return v, True
    n = norms[live]
    lower = n * u[live]
    z, ok = nnls(r, -(r @ lower))
    w = lower + z
    # The projected vector must have a non-negative inner product with every gradient (in
    # the factor's metric, which is the one the solver certifies).
    ok = ok and bool(np.all(r.T @ (r @ w) >= -1e-9 * max(1.0, float(np.abs(w).max()))))
    v[live] = w / n
    return v, ok


def nash_weights(
    gram: Array, max_iter: int = 100, tol: float = 1e-10, eps: float = _EPS64
) -> tuple[Array, bool]:
    """The Nash bargaining solution: ``α > 0`` with ``(G α)ᵢ = 1/αᵢ`` for every task.

    These are the stationarity conditions of the strictly convex, self-concordant potential
    ``½ αᵀGα - Σᵢ log αᵢ``, minimised here by damped Newton (Nesterov & Nemirovski): steps of
    length ``1/(1+λ)`` while the Newton decrement ``λ >= 1/4``, full steps after, which keeps
    ``α > 0`` and converges quadratically. The solution exists if and only if no convex
    combination of the gradients is zero (then the potential is unbounded below).

    Args:
        gram: The Gramian, with a positive diagonal (callers drop zero-gradient tasks).
        max_iter: Newton iterations before giving up.
        tol: Stop when ``max_i |αᵢ (Gα)ᵢ - 1| <= tol`` (scale free).
        eps: The precision the Gramian was computed in. A "solution" whose ``(Gα)ᵢ`` are
            within rounding of zero (``α`` grown without bound along a zero combination of
            the gradients) is reported as not converged.

    Returns:
        ``α`` and whether it converged.
    """
    d = np.diag(gram)
    alpha = 1.0 / np.sqrt(d)
    t = len(d)

    def solved(g_alpha: Array) -> bool:
        if float(np.max(np.abs(alpha * g_alpha - 1.0))) > tol:
            return False
        noise = 64.0 * t * max(eps, _EPS64) * (np.abs(gram) @ alpha)
        return bool(np.all(g_alpha > noise))

    for _ in range(max_iter):
        g_alpha = gram @ alpha
        if solved(g_alpha):
            return alpha, True
        grad = g_alpha - 1.0 / alpha
        hess = gram + np.diag(1.0 / alpha**2)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return alpha, False
        decrement = math.sqrt(max(float(grad @ step), 0.0))
        damping = 1.0 if decrement < 0.25 else 1.0 / (1.0 + decrement)
        new = alpha - damping * step
        if not np.all(np.isfinite(new)) or np.any(new <= 0):
            return alpha, False
        alpha = new
    return alpha, solved(gram @ alpha)
