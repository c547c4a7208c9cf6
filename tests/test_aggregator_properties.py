"""Aggregator properties (issue 15): the claims, the checks, and the float32 / badly scaled cases.

Every test marked "issue 15" failed on the code before the fix (checked against it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from auxlab.checks import (
    PROPERTIES,
    aggregate,
    check_linear_under_scaling,
    check_non_conflicting,
    check_permutation_invariant,
    check_properties,
    check_strongly_stationary,
    non_strong_matrices,
    property_matrices,
)
from auxlab.checks._properties import format_property_table, gramian_strategies
from auxlab.weighting import (
    IMTL,
    MGDA,
    AlignedMTL,
    CAGrad,
    Decision,
    EqualWeighting,
    NashMTL,
    Need,
    NoState,
    PCGrad,
    Signals,
    SolverWarning,
    Strategy,
    UPGrad,
)

ROOT = Path(__file__).resolve().parents[1]
GRAMIAN = dict(gramian_strategies())


def _issue_matrix(dtype: torch.dtype) -> torch.Tensor:
    # Issue 15's example: torch.manual_seed(0); J = randn(4, 2) @ randn(2, 3); J[1] = ...
    g = torch.Generator().manual_seed(0)
    j = torch.randn(4, 2, generator=g) @ torch.randn(2, 3, generator=g)
    j[1] = -j[0] + 0.1 * j[2]
    return j.to(dtype)


def _min_cos(j: torch.Tensor, update: torch.Tensor) -> float:
    j, update = j.double(), update.double()
    return float(((j @ update) / (j.norm(dim=1) * update.norm())).min())


# ------------------------------------------------------------------------------- the claims


@pytest.mark.parametrize("name", sorted(GRAMIAN))
def test_every_gramian_strategy_holds_its_claims_in_float32_and_float64(name: str) -> None:
    strategy = GRAMIAN[name]
    assert "expected_structure" in strategy.properties, name
    assert check_properties(strategy) == sorted(strategy.properties)


@pytest.mark.parametrize(
    "strategy",
    [MGDA(normalization="l2"), MGDA(normalization="loss"), CAGrad(c=0.9), CAGrad(rescale=0)],
    ids=repr,
)
def test_configured_strategies_hold_their_claims(strategy: Strategy) -> None:
    check_properties(strategy)


@pytest.mark.parametrize(
    ("strategy", "prop", "matrices"),
    [
        # MGDA: a zero gradient makes the minimum-norm point zero; J = [g₀; 0; g₂] is not
        # strongly stationary.
        (MGDA(), "strongly_stationary", non_strong_matrices),
        (MGDA(), "linear_under_scaling", property_matrices),
        # CAGrad with c < 1: the ball around the mean may hold no non-conflicting update.
        (CAGrad(), "non_conflicting", property_matrices),
        (IMTL(), "non_conflicting", property_matrices),
        (AlignedMTL(), "non_conflicting", property_matrices),
        (PCGrad(), "non_conflicting", property_matrices),
        # Nash-MTL falls back to the previous α (ones: the sum) where no solution exists.
        (NashMTL(), "non_conflicting", property_matrices),
        (UPGrad(pref_vector=[0.6, 0.3, 0.1]), "permutation_invariant", property_matrices),
    ],
    ids=lambda x: x if isinstance(x, str) else (repr(x) if isinstance(x, Strategy) else ""),
)
def test_properties_a_strategy_does_not_claim_fail_somewhere(strategy, prop, matrices) -> None:
    assert prop not in strategy.properties
    failures = 0
    for matrix in matrices(torch.float64).values():
        if prop == "permutation_invariant" and matrix.shape[0] != 3:
            continue  # the preference list has three entries
        try:
            PROPERTIES[prop](strategy, matrix)
        except AssertionError:
            failures += 1
    assert failures > 0


def test_the_property_table_in_the_docs_is_the_one_the_code_gives() -> None:
    docs = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert format_property_table(gramian_strategies()) in docs, (
        "docs/reliability.md's property table is out of date; regenerate it with "
        "auxlab.checks._properties.format_property_table(gramian_strategies())"
    )


# ------------------------------------------------------------------------------ the checks


class _MeanClaimsNonConflicting(Strategy):
    needs = frozenset({Need.GRAMIAN})
    scale_reaction = "none"
    properties = frozenset({"expected_structure", "non_conflicting"})

    def init(self, tasks, main):
        return NoState()

    def update(self, signals, state):
        t = len(signals.tasks)
        shared = dict.fromkeys(signals.tasks, 1.0 / t)
        return Decision(weights=dict.fromkeys(signals.tasks, 1.0), shared_weights=shared), state


def test_a_wrong_claim_is_caught_naming_the_property_and_matrix() -> None:
    with pytest.raises(AssertionError, match=r"non_conflicting on the '.*' matrix: _Mean"):
        check_properties(_MeanClaimsNonConflicting())


def test_check_properties_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown properties"):
        check_properties(UPGrad(), properties=["monotone"])


def test_the_mean_is_linear_permutation_invariant_and_strongly_stationary() -> None:
    # TorchJD's Mean has exactly these properties; EqualWeighting on the shared block is it.
    mean = EqualWeighting()
    for matrix in property_matrices(torch.float64).values():
        check_permutation_invariant(mean, matrix)
        check_linear_under_scaling(mean, matrix)
    for matrix in non_strong_matrices(torch.float64).values():
        check_strongly_stationary(mean, matrix)


def test_aggregate_is_the_combination_of_the_rows() -> None:
    j = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    np.testing.assert_allclose(aggregate(UPGrad(), j).numpy(), [0.5, 0.5])
    # Listing the tasks in another order keeps each task's gradient.
    np.testing.assert_allclose(aggregate(UPGrad(), j, [1, 0]).numpy(), [0.5, 0.5])


# ------------------------------------------------------------------- issue 15, one by one


def test_upgrad_float32_nearly_dependent_rows_is_non_conflicting() -> None:
    # Issue 15: the solver gave up (SolverWarning) and fell back to the mean:
    # min_i gᵢ·update = -0.27 in float32 (float64: -5e-16; the matrix is strongly stationary,
    # so the exact update is zero).
    j = _issue_matrix(torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        update = aggregate_strict(UPGrad(), j)
    assert float((j.double() @ update.double()).min()) >= -1e-5
    check_non_conflicting(UPGrad(), j)
    # The float64 answer, to float32 accuracy.
    ref = aggregate(UPGrad(), j.double())
    np.testing.assert_allclose(update.double().numpy(), ref.numpy(), atol=1e-5)


def test_upgrad_float32_conflicting_rows_is_non_conflicting() -> None:
    # The same in a case with a non-zero answer: a sharp conflict, nearly dependent rows.
    g = torch.Generator().manual_seed(3)
    j = torch.randn(4, 6, generator=g)
    j[1] = -j[0] + 1e-3 * j[1]
    j[3] = j[2] + 1e-3 * j[3]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        update = aggregate_strict(UPGrad(), j)
    assert float(update.norm()) > 0.1
    assert _min_cos(j, update) >= -1e-4


def aggregate_strict(strategy: Strategy, j: torch.Tensor) -> torch.Tensor:
    """``A(J)`` without hiding a SolverWarning (``aggregate`` allows the fallbacks)."""
    tasks = tuple(f"task{i}" for i in range(j.shape[0]))
    losses = {t: torch.ones(()) for t in tasks}
    sig = Signals(0, tasks, tasks[0], losses, grads=j, gramian=j @ j.T)
    d, _ = strategy.update(sig, strategy.init(list(tasks), tasks[0]))
    coef = torch.tensor([d.shared_weights[t] for t in tasks], dtype=j.dtype)  # type: ignore[index]
    return coef @ j


def _far_apart_pair(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    j = torch.randn(2, 5, generator=g, dtype=torch.float64)
    j = j / j.norm(dim=1, keepdim=True)
    j[1] = j[1] - 2.0 * (j[1] @ j[0]).abs() * j[0] - 0.3 * j[0]  # a real conflict
    return (j * torch.tensor([[1e4], [1e-4]], dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_upgrad_two_tasks_far_apart_match_the_closed_form(dtype: torch.dtype) -> None:
    # Issue 15: 10x off the closed form while the solver reported success. For two tasks with
    # g₀·g₁ < 0, projecting uᵢgᵢ onto the dual cone removes its component along the other:
    # c₀ = u₀ - u₁·G₀₁/G₀₀, c₁ = u₁ - u₀·G₀₁/G₁₁ (u = ½, ½).
    j = _far_apart_pair(dtype)
    g = (j.double() @ j.double().T).numpy()
    assert g[0, 1] < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        tasks = ("main", "aux")
        sig = Signals(0, tasks, "main", {t: torch.ones(()) for t in tasks}, gramian=j @ j.T)
        d, _ = UPGrad().update(sig, UPGrad().init(list(tasks), "main"))
    coef = np.array([d.shared_weights["main"], d.shared_weights["aux"]])  # type: ignore[index]
    closed = np.array([0.5 - 0.5 * g[0, 1] / g[0, 0], 0.5 - 0.5 * g[0, 1] / g[1, 1]])
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(coef, closed, rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_imtl_gives_equal_projections_on_unit_gradients_far_apart(dtype: torch.dtype) -> None:
    # Issue 15: projections [-7081, 21884] where they must be equal.
    g = torch.Generator().manual_seed(4)
    j = torch.randn(3, 6, generator=g, dtype=torch.float64)
    j = (j * torch.tensor([[1e4], [1.0], [1e-4]], dtype=torch.float64)).to(dtype)
    update = aggregate(IMTL(), j).double()
    j64 = j.double()
    proj = (j64 @ update) / j64.norm(dim=1)
    rtol = 1e-6 if dtype == torch.float64 else 1e-3
    np.testing.assert_allclose(proj.numpy(), float(proj[0]), rtol=rtol)
    assert float(proj[0]) > 0


def test_aligned_mtl_median_is_the_lower_median_as_the_references() -> None:
    # Issue 15: np.median averaged the two middle eigenvalues; the authors' code (SamsungLabs
    # MTL, ProcrustesSolver) and TorchJD take torch.median, the lower one. G = diag(1, 4):
    # level 1, B = diag(1, 1/2), α = B·1 (0.79 per coefficient of the second task before).
    j = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    tasks = ("main", "aux")
    sig = Signals(0, tasks, "main", {t: torch.ones(()) for t in tasks}, gramian=j @ j.T)
    s = AlignedMTL(scale_mode="median")
    d, _ = s.update(sig, s.init(list(tasks), "main"))
    assert d.shared_weights == pytest.approx({"main": 1.0, "aux": 0.5})
    # An odd count has one middle value: the median of (1, 4, 9) is 4.
    j3 = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    tasks3 = ("main", "a", "b")
    sig3 = Signals(0, tasks3, "main", {t: torch.ones(()) for t in tasks3}, gramian=j3 @ j3.T)
    d3, _ = s.update(sig3, s.init(list(tasks3), "main"))
    assert d3.shared_weights == pytest.approx({"main": 2.0, "a": 1.0, "b": 2.0 / 3.0})


def _cagrad_zero_task_case(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    j = torch.randn(3, 4, generator=g, dtype=torch.float64)
    j[1] = -0.3 * j[0] + 0.5 * j[1]
    j[2] = 0.0
    return j


def _cagrad_primal(j: np.ndarray, live: int, c: float) -> float:
    """max_d min_{i < live} gᵢ·d subject to ||d - g₀|| <= c||g₀||, by SLSQP."""
    so = pytest.importorskip("scipy.optimize")
    g0 = j.mean(axis=0)
    r = c * float(np.linalg.norm(g0))
    n = j.shape[1]
    cons = [{"type": "ineq", "fun": lambda x, i=i: j[i] @ x[:n] - x[n]} for i in range(live)]
    cons.append({"type": "ineq", "fun": lambda x: r**2 - np.sum((x[:n] - g0) ** 2)})
    res = so.minimize(
        lambda x: -x[n],
        np.r_[g0, -1.0],
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    return float(-res.fun)


@pytest.mark.parametrize("seed", range(8))
def test_cagrad_with_a_zero_gradient_task_is_optimal_over_the_others(seed: int) -> None:
    # Issue 15: with a zero-gradient task the mean gradient came back, conflicting with a task
    # in 2 of 8 cases where the ball around it holds non-conflicting updates (LibMTL finds
    # one). A zero gradient is indifferent to d: the worst case is over the other tasks.
    j = _cagrad_zero_task_case(seed)
    update = aggregate(CAGrad(c=0.5, rescale=0), j)
    worst = float((j[:2] @ update).min())
    best = _cagrad_primal(j.numpy(), live=2, c=0.5)
    assert worst == pytest.approx(best, rel=1e-5, abs=1e-9)
    if best > 0:
        assert worst > 0


def test_mgda_float32_rank_deficient_gramian_needs_no_fallback() -> None:
    # Found by the property checks: float32 rounding left eigenvalues of ±5e-8 in a rank-3
    # Gramian, the minimum-norm solver gave up and MGDA fell back to 1/T.
    j = property_matrices(torch.float32)["low_rank"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        update = aggregate_strict(MGDA(), j)
    assert _min_cos(j, update) >= -1e-4
