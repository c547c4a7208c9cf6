"""The CAGrad dual, solved exactly on a ``T x T`` Gramian (see :mod:`auxlab.weighting._solvers`).

A one-dimensional root search whose every evaluation is an exact minimum-norm problem; where
the update is undetermined (a zero-gradient task), the projection of the mean gradient onto the
non-conflicting set, when it lies inside the allowed ball.
"""

from __future__ import annotations

import math

import numpy as np

from auxlab.weighting._solvers import (
    _EPS64,
    Array,
    _scale,
    dual_cone_weights,
    min_norm_weights,
    normalized_gramian,
)

__all__ = ["cagrad_weights"]


def cagrad_weights(
    gram: Array, c: float, rtol: float = 1e-12, eps: float = _EPS64
) -> tuple[Array, bool]:
    """Coefficients of the CAGrad direction ``d = g₀ + (c·||g₀|| / ||g_w||) g_w``.

    ``g₀ = Σᵢ gᵢ / T`` and ``g_w = Σᵢ wᵢ gᵢ`` where ``w`` minimises, over the simplex, the dual
    ``F(w) = g_w·g₀ + c·||g₀||·||g_w||`` (Liu et al., 2021, eq. 4 with ``√φ = c·||g₀||``).

    Solved exactly: with ``φ' = c·||g₀||`` and ``||g_w|| = min_{s>0} ||g_w||²/(2s) + s/2``,
    the inner problem at fixed ``s`` is the minimum-norm point of the hull of
    ``{gᵢ + (s/φ') g₀}``, and the outer function of ``s`` is convex with derivative of the sign
    of ``s - ||g_{w(s)}||``; its root is found by a safeguarded Illinois (regula falsi)
    search on ``[0, max_i ||gᵢ||]``.

    A task with a zero gradient is indifferent to ``d`` and is left out of the worst case (it
    still counts in ``g₀``). Where the dual's optimum has ``g_w = 0`` (the hull holding the
    origin) the formula leaves ``d`` undetermined and every point of the ball that conflicts
    with no task is optimal; so whenever the recovered ``d`` conflicts with a task, the
    projection of ``g₀`` onto the dual cone ``{x : J x >= 0}`` is taken instead if it lies
    in the ball (it is then the optimum closest to ``g₀``; LibMTL's SLSQP finds such a
    point by its ``1e-8`` regularisation).

    Returns:
        The coefficients ``b`` of ``d = Σ bᵢ gᵢ`` (before any rescaling) and whether the
        search converged. With ``c = 0`` or ``g₀ = 0`` the coefficients are ``1/T`` each.
    """
    t = gram.shape[0]
    mean = np.full(t, 1.0 / t)
    scale = _scale(gram)
    if scale == 0.0 or c == 0.0:
        return mean, True
    g = gram / scale  # the coefficients do not depend on a positive scale of G
    g_mean = g @ mean
    g0_sq = float(mean @ g_mean)
    if g0_sq <= 1e-14:
        return mean, True  # the mean gradient vanishes: d = g₀ = 0
    phi = c * math.sqrt(g0_sq)
    # A task with a zero gradient is indifferent to every d (gᵢ·d = 0): it leaves the worst
    # case, which is taken over the other tasks; g₀ stays the mean over all T tasks.
    live = normalized_gramian(gram, eps)[1]
    gl, gml = g[np.ix_(live, live)], g_mean[live]

    def inner(s: float) -> tuple[Array, float, bool]:
        beta = s / phi
        shifted = gl + beta * (gml[:, None] + gml[None, :]) + beta * beta * g0_sq
        w, ok = min_norm_weights(shifted, rtol, eps)
        return w, math.sqrt(max(float(w @ gl @ w), 0.0)), ok

    # ||g_w||² is settled to ε, so ||g_w|| only to √ε: below that, f(s) = s - ||g_w(s)|| has
    # the sign of rounding noise, so the bracket starts above it. (s = 0 is never the answer
    # sought anyway: when the hull holds the origin f(0) = 0, while the root of the convex
    # outer problem lies at some s > 0, f < 0 just right of 0 for c < 1.) Closeness to the
    # root is measured by |f(s)|/s, which tends to 1/c - 1, not 0, as s -> 0.
    noise = 10.0 * math.sqrt(max(eps, _EPS64))
    hi = math.sqrt(float(np.max(np.diag(gl))))
    lo = min(noise, 0.5 * hi)
    _, rho_lo, ok_lo = inner(lo)
    w_hi, rho_hi, ok_hi = inner(hi)
    all_ok = ok_lo and ok_hi
    f_lo, f_hi = lo - rho_lo, hi - rho_hi  # f_hi >= 0
    best_w, best_rho, best_score = w_hi, rho_hi, abs(f_hi) / hi if hi > 0 else math.inf
    side = 0
    converged = f_lo >= 0  # the root is below the noise: g_w = 0 at the optimum
    if converged:
        best_rho = 0.0
    for _ in range(0 if converged else 200):
        # Units: G was scaled so that max ||gᵢ|| = 1, hence s and f are O(1).
        if hi - lo <= 1e-13 or best_score <= 1e-12:
            converged = True
            break
        width = hi - lo
        s = hi - f_hi * width / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        if not lo < s < hi:
            s = 0.5 * (lo + hi)
        w, rho, ok = inner(s)
        all_ok = all_ok and ok
        f = s - rho
        if abs(f) / s < best_score:
            best_w, best_rho, best_score = w, rho, abs(f) / s
        if f > 0:
            hi, f_hi = s, f
            if side == 1:
                f_lo *= 0.5  # Illinois: damp the stale end so the bracket keeps shrinking
            side = 1
        else:
            lo, f_lo = s, f
            if side == -1:
                f_hi *= 0.5
            side = -1
    ok = converged and all_ok
    # ||g_w||² is settled to ε, so ||g_w|| only to √ε: below that the direction of g_w is
    # rounding noise (and the coefficients φ/||g_w||·w huge); the hull touches the origin.
    if best_rho <= noise:
        # No conflict-averse correction from the formula (the hull touches the origin).
        coef = mean
    else:
        full = np.zeros(t)
        full[live] = best_w
        coef = mean + (phi / best_rho) * full
    return _non_conflicting_in_ball(gram, g, coef, mean, c * c * g0_sq, eps), ok


def _non_conflicting_in_ball(
    gram: Array, g: Array, coef: Array, mean: Array, radius_sq: float, eps: float
) -> Array:
    """``coef``, or the dual-cone projection of ``g₀`` when ``coef`` conflicts and it fits.

    ``g`` is the Gramian over its scale (largest squared norm 1); ``radius_sq`` the squared
    radius of CAGrad's ball in those units.
    """
    norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
    d_norm = math.sqrt(max(float(coef @ g @ coef), 0.0))
    tol = 64.0 * max(eps, _EPS64) * d_norm
    if np.all(g @ coef >= -tol * norms):
        return coef
    proj, ok = dual_cone_weights(gram, mean, eps=eps)
    step = proj - mean
    if ok and float(step @ g @ step) <= radius_sq * (1.0 + 1e-9) + 1e-24:
        return proj
    return coef
