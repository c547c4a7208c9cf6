"""Mathematical properties of gradient aggregators, as executable checks.

A Gramian-based strategy is an *aggregator* ``A``: from the matrix ``J`` whose rows are the
task gradients it makes the shared update ``A(J) = Σᵢ cᵢ gᵢ``. TorchJD's test suite (Quinton &
Rey, 2024) states five properties such an aggregator may have; each is a check here, run on a
matrix:

* **expected structure**: ``A(J)`` is a finite vector with one entry per column of ``J``
  (the strategy does not raise), whatever ``J``: zero, rank deficient, badly scaled.
* **non-conflicting**: ``gᵢ·A(J) >= 0`` for every task: no task's loss goes up to first
  order. Checked as ``cos(gᵢ, A(J)) >= -tol`` (``tol`` = ``√ε`` of the matrix's dtype,
  3.5e-4 in float32, TorchJD's 4e-4).
* **permutation-invariant**: listing the tasks in another order (each task keeping its
  gradient) does not change ``A(J)``.
* **linear under scaling**: ``c ↦ A(diag(c) J)`` is linear on ``c >= 0``:
  ``A(diag(a·c₁ + b·c₂) J) = a·A(diag(c₁) J) + b·A(diag(c₂) J)`` for ``a, b >= 0``.
* **strongly stationary**: ``A(J) = 0`` only if ``J`` is strongly stationary (some
  strictly positive ``w`` has ``Jᵀw = 0``); checked on matrices that are not, where
  ``A(J)`` must be away from zero.

A strategy claims its properties in the class attribute ``properties``;
:func:`check_properties` tests the claims on :func:`property_matrices` (typical,
rank-deficient, nearly dependent, conflicting, zero rows, all zero, rows whose norms are
``1e-4`` to ``1e4`` apart, scaled by ``1e±10``) and :func:`non_strong_matrices`, in float32
and float64.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch

from auxlab.checks._signals import realised_update
from auxlab.weighting._base import Need, Signals, Strategy, as_decision
from auxlab.weighting._solvers import SolverWarning

__all__ = [
    "PROPERTIES",
    "aggregate",
    "check_expected_structure",
    "check_linear_under_scaling",
    "check_non_conflicting",
    "check_permutation_invariant",
    "check_properties",
    "check_strongly_stationary",
    "format_property_table",
    "gramian_strategies",
    "non_strong_matrices",
    "property_matrices",
]


def _require(condition: object, message: str) -> None:
    # Not `assert`: the checks must also fail under `python -O`.
    if not condition:
        raise AssertionError(message)


def _tasks(order: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"task{i}" for i in order)


def aggregate(
    strategy: Strategy, matrix: torch.Tensor, order: Sequence[int] | None = None
) -> torch.Tensor:
    """``A(J)``: the shared update a fresh copy of ``strategy`` makes from the rows of ``J``.

    Task ``i`` is named ``task{i}`` (``task0`` is the main task) and has loss 1. ``order``
    lists the tasks in another order (row ``k`` of the matrix handed over is ``J[order[k]]``);
    the update does not depend on the listing for a permutation-invariant strategy.
    :class:`~auxlab.weighting.SolverWarning` fallbacks are allowed (the output is judged).
    """
    rows = list(range(matrix.shape[0])) if order is None else list(order)
    j = matrix[rows]
    tasks = _tasks(rows)
    s = strategy.clone()
    state = s.init(list(tasks), "task0")
    losses = {t: torch.ones((), dtype=matrix.dtype) for t in tasks}
    needs = s.needs
    sig = Signals(
        step=0,
        tasks=tasks,
        main="task0",
        losses=losses,
        grads=j,
        gramian=j @ j.T if Need.GRAMIAN in needs else None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverWarning)
        value, _ = s.update(sig, state)
    return realised_update(as_decision(value), sig)


def _eps(matrix: torch.Tensor) -> float:
    return float(torch.finfo(matrix.dtype).eps)


def _name(strategy: Strategy) -> str:
    return repr(strategy)


def _floor(matrix: torch.Tensor) -> float:
    """Updates shorter than this are zero to the solvers' accuracy: ``30·√ε·max ||gᵢ||``.

    An exact solver on a rank-deficient Gramian settles ``||A(J)||²`` to ``ε`` relative
    accuracy, so ``||A(J)||`` itself only to ``√ε``: a strongly stationary matrix gives an
    update of that size pointing anywhere.
    """
    if matrix.numel() == 0:
        return 0.0
    return 30.0 * math.sqrt(_eps(matrix)) * float(matrix.double().norm(dim=1).max())


def check_expected_structure(strategy: Strategy, matrix: torch.Tensor) -> None:
    """``A(J)`` is a finite vector with one entry per column of ``J``."""
    out = aggregate(strategy, matrix)
    _require(
        out.shape == matrix.shape[1:],
        f"{_name(strategy)} returned an update of shape {tuple(out.shape)} for a "
        f"{tuple(matrix.shape)} matrix",
    )
    _require(bool(torch.isfinite(out).all()), f"{_name(strategy)} returned a non-finite update")


def check_non_conflicting(
    strategy: Strategy, matrix: torch.Tensor, tol: float | None = None
) -> None:
    """``cos(gᵢ, A(J)) >= -tol`` for every non-zero row ``gᵢ`` (``tol``: ``√ε`` of the dtype)."""
    tol = math.sqrt(_eps(matrix)) if tol is None else tol
    out = aggregate(strategy, matrix).double()
    j = matrix.double()
    norm = float(out.norm())
    if norm <= _floor(matrix):
        return  # zero to the solvers' accuracy, which conflicts with nothing
    rows = j.norm(dim=1)
    cos = (j @ out) / (rows.clamp_min(1e-300) * norm)
    worst = int(torch.argmin(torch.where(rows > 0, cos, torch.zeros_like(cos))))
    _require(
        float(cos[worst]) >= -tol or float(rows[worst]) == 0.0,
        f"{_name(strategy)} conflicts with task {worst}: cos(g, update) = "
        f"{float(cos[worst]):.3g} < -{tol:.3g} ({matrix.dtype})",
    )


def check_permutation_invariant(
    strategy: Strategy, matrix: torch.Tensor, seed: int = 0, rtol: float | None = None
) -> None:
    """Listing the tasks in another order (each keeping its gradient) keeps ``A(J)``."""
    rtol = math.sqrt(_eps(matrix)) if rtol is None else rtol
    ref = aggregate(strategy, matrix).double()
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        order = torch.randperm(matrix.shape[0], generator=g).tolist()
        out = aggregate(strategy, matrix, order).double()
        gap = float((out - ref).norm())
        _require(
            gap <= rtol * float(ref.norm()) + _floor(matrix),
            f"{_name(strategy)} is not permutation-invariant: listing the tasks as {order} "
            f"moves the update by {gap:.3g} (its norm {float(ref.norm()):.3g}, {matrix.dtype})",
        )


def check_linear_under_scaling(
    strategy: Strategy, matrix: torch.Tensor, seed: int = 0, rtol: float | None = None
) -> None:
    """``A(diag(a·c₁ + b·c₂) J) = a·A(diag(c₁) J) + b·A(diag(c₂) J)`` for ``c, a, b >= 0``."""
    rtol = 10.0 * math.sqrt(_eps(matrix)) if rtol is None else rtol
    g = torch.Generator().manual_seed(seed)
    t = matrix.shape[0]
    for _ in range(3):
        c1, c2 = (0.1 + torch.rand(t, generator=g, dtype=torch.float64) for _ in range(2))
        a, b = (float(x) for x in 0.1 + torch.rand(2, generator=g, dtype=torch.float64))

        def scaled(c: torch.Tensor) -> torch.Tensor:
            return (c.to(matrix.dtype)[:, None] * matrix).contiguous()

        x1 = aggregate(strategy, scaled(c1)).double()
        x2 = aggregate(strategy, scaled(c2)).double()
        x = aggregate(strategy, scaled(a * c1 + b * c2)).double()
        expected = a * x1 + b * x2
        size = float((a * x1).norm() + (b * x2).norm())
        gap = float((x - expected).norm())
        noise = _floor(scaled(c1)) * a + _floor(scaled(c2)) * b + _floor(scaled(a * c1 + b * c2))
        _require(
            gap <= rtol * size + noise,
            f"{_name(strategy)} is not linear under scaling: A(diag(a·c₁+b·c₂)J) is "
            f"{gap:.3g} away from a·A(diag(c₁)J) + b·A(diag(c₂)J) (size {size:.3g}, "
            f"{matrix.dtype})",
        )


def check_strongly_stationary(
    strategy: Strategy, matrix: torch.Tensor, threshold: float = 1e-3
) -> None:
    """On a matrix that is not strongly stationary, ``||A(J)|| > threshold·max ||gᵢ||``.

    Pass only matrices with no strictly positive ``w`` such that ``Jᵀw = 0`` (see
    :func:`non_strong_matrices`).
    """
    out = aggregate(strategy, matrix).double()
    top = float(matrix.double().norm(dim=1).max())
    _require(
        float(out.norm()) > threshold * top,
        f"{_name(strategy)} is not strongly stationary: it stops (update norm "
        f"{float(out.norm()):.3g}) on a matrix that is not strongly stationary "
        f"({matrix.dtype})",
    )


def _random(shape: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)


def property_matrices(dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Named gradient matrices ``J`` (rows: tasks) the property checks run on.

    Typical and rank-deficient (five rows of rank 3) matrices; nearly dependent rows
    (``g₁ = -g₀ + 0.1·g₂``, four rows of rank 2, made in float32: its float32 Gramian is
    indefinite by rounding); a sharp conflict; a zero row; all zero; row norms ``1e-4``,
    ``1`` and ``1e4``; and (for the structure check) a typical matrix scaled by ``1e-10``
    and ``1e10``.
    """
    g = torch.Generator().manual_seed(seed)
    typical = _random((4, 6), g)
    # Five rows of rank 3, all with a positive component along one direction (so the update
    # is not zero: a strongly stationary matrix would make every aggregator stop).
    basis = torch.linalg.qr(_random((7, 3), g))[0].T
    low_rank = _random((5, 2), g) @ basis[:2] + (1.0 + torch.rand(5, 1, generator=g)) * basis[2]
    # Issue 15's example, made in float32 as there: UPGrad's solver used to give up on it.
    g32 = torch.Generator().manual_seed(seed)
    dependent = torch.randn(4, 2, generator=g32) @ torch.randn(2, 3, generator=g32)
    dependent[1] = -dependent[0] + 0.1 * dependent[2]
    dependent = dependent.double()
    conflict = _random((3, 5), g)
    conflict[1] = -0.9 * conflict[0] + 0.2 * conflict[1]
    zero_row = _random((3, 5), g)
    zero_row[1] = 0.0
    scaled = _random((3, 6), g)
    scaled = scaled / scaled.norm(dim=1, keepdim=True)
    scaled[1] = scaled[1] - 1.5 * (scaled[1] @ scaled[0]).abs() * scaled[0]  # some conflict
    scaled = scaled * torch.tensor([[1e4], [1.0], [1e-4]], dtype=torch.float64)
    out = {
        "typical": typical,
        "low_rank": low_rank,
        "nearly_dependent": dependent,
        "conflicting": conflict,
        "zero_row": zero_row,
        "all_zero": torch.zeros(3, 4, dtype=torch.float64),
        "rows_1e-4_to_1e4": scaled,
    }
    return {k: v.to(dtype) for k, v in out.items()}


def _extreme(dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    typical = property_matrices(torch.float64, seed)["typical"]
    return {"times_1e-10": (typical * 1e-10).to(dtype), "times_1e10": (typical * 1e10).to(dtype)}


def non_strong_matrices(
    dtype: torch.dtype = torch.float64, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Matrices that are not strongly stationary (no ``w > 0`` with ``Jᵀw = 0``).

    ``not_weak``: every row has a positive inner product with one direction, so no
    non-zero ``w >= 0`` combines the rows to zero; ``opposite_pair``: ``g₁ = -g₀`` and
    ``g₂`` independent of them (``w = (1, 1, 0)`` gives zero, no ``w > 0`` does);
    ``zero_row``: a zero row beside two independent rows (``w = e₁``).
    """
    g = torch.Generator().manual_seed(seed + 101)
    x = _random((1, 6), g)
    x = x / x.norm()
    not_weak = _random((4, 6), g)
    not_weak = (
        not_weak
        - (not_weak @ x.T) * x
        + (0.5 + torch.rand(4, 1, generator=g, dtype=torch.float64)) * x
    )
    pair = _random((3, 5), g)
    pair[1] = -pair[0]
    zero_row = _random((3, 5), g)
    zero_row[1] = 0.0
    out = {"not_weak": not_weak, "opposite_pair": pair, "zero_row": zero_row}
    return {k: v.to(dtype) for k, v in out.items()}


PROPERTIES: dict[str, Callable[..., None]] = {
    "expected_structure": check_expected_structure,
    "non_conflicting": check_non_conflicting,
    "permutation_invariant": check_permutation_invariant,
    "linear_under_scaling": check_linear_under_scaling,
    "strongly_stationary": check_strongly_stationary,
}


def check_properties(
    strategy: Strategy,
    properties: Sequence[str] | None = None,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    seed: int = 0,
) -> list[str]:
    """Test the properties ``strategy`` claims (its ``properties``) on every matrix.

    Args:
        strategy: A strategy that reads the Gramian (or the gradients) of the tasks.
        properties: The properties to test; default, those the strategy claims.
        dtypes: The dtypes of the matrices (float32 is the training case).
        seed: Seed of the random matrices.

    Returns:
        The names of the properties tested.

    Raises:
        AssertionError: At the first property that does not hold, naming it and the matrix.
        ValueError: If a property name is unknown.
    """
    names = sorted(strategy.properties) if properties is None else list(properties)
    unknown = set(names) - set(PROPERTIES)
    if unknown:
        raise ValueError(
            f"unknown properties {sorted(unknown)}; properties are {sorted(PROPERTIES)}"
        )
    for name in names:
        check = PROPERTIES[name]
        for dtype in dtypes:
            if name == "strongly_stationary":
                matrices = non_strong_matrices(dtype, seed)
            elif name == "expected_structure":
                matrices = {**property_matrices(dtype, seed), **_extreme(dtype, seed)}
            else:
                matrices = property_matrices(dtype, seed)
            for label, matrix in matrices.items():
                try:
                    check(strategy, matrix)
                except AssertionError as exc:
                    raise AssertionError(f"{name} on the {label!r} matrix: {exc}") from None
    return names


def gramian_strategies() -> list[tuple[str, Strategy]]:
    """``(name, strategy)`` for every registered strategy that reads the Gramian.

    Each is built with no arguments; the combinators, which need a strategy, are left out.
    """
    from auxlab.weighting._registry import create, list_strategies

    out = []
    for name in list_strategies():
        try:
            strategy = create(name)
        except (TypeError, ValueError):
            continue  # a combinator or fixed weights: needs arguments
        if Need.GRAMIAN in strategy.needs:
            out.append((name, strategy))
    return out


def format_property_table(strategies: Sequence[tuple[str, Strategy]]) -> str:
    """The Markdown table of the properties each strategy claims (docs/reliability.md)."""
    names = list(PROPERTIES)
    head = "| strategy | " + " | ".join(n.replace("_", " ") for n in names) + " |"
    rule = "|---|" + "---|" * len(names)
    rows = [
        f"| `{label}` | " + " | ".join("yes" if n in s.properties else "no" for n in names) + " |"
        for label, s in strategies
    ]
    return "\n".join([head, rule, *rows])
