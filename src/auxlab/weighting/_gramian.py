"""Gradient-based strategies that read only the Gramian ``G = J Jᵀ`` of the task gradients.

Each of them decides coefficients ``cᵢ`` from the ``T x T`` Gramian (``T`` tasks) and
returns ``Decision(weights=1.0 for every task, shared_weights=c)``: the shared parameters get
``Σᵢ cᵢ·gᵢ`` while every head keeps its own task's plain gradient, as in LibMTL and TorchJD.
GradNorm is the exception: it learns loss weights, which weigh the heads too, as published.

Because the result is a combination of the per-task gradients, these strategies need no
``(T, d)`` matrix of their own: the Balancer combines the gradients it already computed, and
when it reuses a decision between refreshes (``Balancer(every=k)``) it recombines the new
gradients with the same coefficients. PCGrad and GradVac belong here too: their projections
are linear in the gradients, with coefficients that depend only on inner products, so they
are computed on the Gramian (as TorchJD does for GradVac).

Scale reactions (``scale_reaction``) describe what happens when one task's loss is
multiplied by ``k > 0`` (its gradient by ``k``): ``"invariant"`` means the direction of the
shared update does not change; ``"inverse"`` (plain loss weights) that the task's weight is
divided by ``k`` and the others do not change; ``"adaptive"`` that the weights change and
adapt over steps; ``"none"`` that there is no such guarantee.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch

from auxlab._linalg import gramian
from auxlab.objective import match_to_tasks
from auxlab.weighting._base import Decision, Need, NoState, Signals, Strategy, Weights
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import (
    Array,
    SolverWarning,
    cagrad_weights,
    dual_cone_factor,
    dual_cone_weights,
    gramian64,
    input_eps,
    min_norm_weights,
    nash_weights,
    tie_identical,
)

__all__ = [
    "IMTL",
    "MGDA",
    "MGDAUB",
    "AlignedMTL",
    "AlignedMTLState",
    "CAGrad",
    "GradNorm",
    "GradNormState",
    "GradVac",
    "GradVacState",
    "NashMTL",
    "NashMTLState",
    "PCGrad",
    "PCGradState",
    "SolverWarning",
    "UPGrad",
    "UPGradState",
]

Preference = Mapping[str, float] | Sequence[float]


# --------------------------------------------------------------------------------- helpers


def _gramian(signals: Signals, who: str) -> tuple[Array, float]:
    """The float64 Gramian of the shared-parameter gradients and the inputs' epsilon."""
    if signals.gramian is not None:
        gram, eps = gramian64(signals.gramian), input_eps(signals.gramian)
    elif signals.grads is not None:  # also accept the raw gradients
        gram, eps = gramian64(gramian(signals.grads)), input_eps(signals.grads)
    else:
        raise ValueError(f"{who} needs the Gramian of the per-task gradients (Need.GRAMIAN).")
    return _finite(gram, who, signals.step), eps


def _finite(gram: Array, who: str, step: int) -> Array:
    if not np.all(np.isfinite(gram)):
        raise FloatingPointError(
            f"{who} got a Gramian with NaN or inf at step {step}: the per-task gradients are "
            "not finite, or their inner products overflow the gradients' dtype."
        )
    return gram


def _tie_rtol(eps: float) -> float:
    """Tolerance under which two Gramian rows count as the same gradient (see tie_identical)."""
    return max(8.0 * eps, 1e-13)


def _losses64(signals: Signals) -> Array:
    return np.array([float(signals.losses[t]) for t in signals.tasks], dtype=np.float64)


def _ones(tasks: Sequence[str]) -> dict[str, float]:
    return dict.fromkeys(tasks, 1.0)


def _shared(tasks: Sequence[str], coef: Array) -> Decision:
    """Heads get their own gradient (weight 1); the shared block gets ``Σ cᵢ gᵢ``."""
    shared = {t: float(c) for t, c in zip(tasks, coef, strict=True)}
    bad = [t for t, c in shared.items() if not math.isfinite(c)]
    if bad:  # a bug, never an expected outcome: the solvers fall back before this
        raise FloatingPointError(f"non-finite shared coefficients for tasks {bad}")
    return Decision(weights=_ones(tasks), shared_weights=shared)


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_tasks(tasks: Sequence[str], main: str) -> None:
    if not tasks:
        raise ValueError("a strategy needs at least one task")
    if main not in tasks:
        raise ValueError(f"main task '{main}' is not one of the tasks {list(tasks)}")


def _check_preference(pref: Preference | None) -> Preference | None:
    if pref is None:
        return None
    items = list(pref.items()) if isinstance(pref, Mapping) else list(enumerate(pref))
    if isinstance(pref, str) or not items:
        raise TypeError("pref_vector must be a non-empty dict {task: weight} or a list")
    for key, value in items:
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"pref_vector entry {key!r} is {value!r}; it must be finite and >= 0")
    if not any(float(v) > 0 for _, v in items):
        raise ValueError("pref_vector must have at least one positive entry")
    return dict(pref) if isinstance(pref, Mapping) else list(pref)


def _resolve_preference(
    pref: Preference | None, tasks: Sequence[str], default: float | None
) -> torch.Tensor:
    """The preference vector in task order; ``default`` per task (``None``: ``1/T``)."""
    if pref is None:
        value = 1.0 / len(tasks) if default is None else default
        return torch.full((len(tasks),), value, dtype=torch.float64)
    resolved = match_to_tasks(pref, list(tasks), "pref_vector")
    return torch.tensor([float(resolved[t]) for t in tasks], dtype=torch.float64)


def _rng_state(seed: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(seed)
    return g.get_state()


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _visit_orders(tasks: Sequence[str], rng: torch.Tensor) -> tuple[list[list[int]], torch.Tensor]:
    """For each task, the other tasks in a random order; and the generator's next state.

    The draw is a ``T x T`` matrix of uniforms indexed by the tasks sorted by name, so the
    orders depend on the seed and the step, not on the order in which the tasks are listed:
    permuting the tasks permutes the result exactly.
    """
    g = torch.Generator()
    g.set_state(rng)
    t = len(tasks)
    u = torch.rand((t, t), generator=g, dtype=torch.float64).tolist()
    rank = {i: r for r, i in enumerate(sorted(range(t), key=tasks.__getitem__))}
    orders = []
    for i in range(t):
        row = u[rank[i]]
        orders.append(sorted((j for j in range(t) if j != i), key=lambda j: row[rank[j]]))
    return orders, g.get_state()


# ------------------------------------------------------------------------------- GradNorm


class GradNormState(NamedTuple):
    """State of :class:`GradNorm`.

    Attributes:
        weights: ``(T,)`` float64 weights to use at the next step, in task order; sum ``T``.
        initial_losses: ``(T,)`` float64 losses at the first update, ``Lᵢ(0)`` (zeros before).
        updates: Updates so far.
    """

    weights: torch.Tensor
    initial_losses: torch.Tensor
    updates: int


_GRADNORM_FLOOR = 1e-6  # weights are kept positive so that renormalising cannot flip signs


@register("gradnorm")
class GradNorm(Strategy):
    """Learn loss weights that equalise the tasks' gradient norms (GradNorm).

    Rule (Chen et al., 2018, eqs. 1-2). With weights ``wᵢ``, gradient norms ``nᵢ = ||gᵢ||`` on
    the shared parameters, ``Gᵢ = wᵢ·nᵢ`` (``= ||∇(wᵢ Lᵢ)||``), ``Ḡ = meanᵢ Gᵢ``, loss ratios
    ``L̃ᵢ = Lᵢ(t)/Lᵢ(0)`` and relative inverse training rates ``rᵢ = L̃ᵢ / meanⱼ L̃ⱼ``, the
    GradNorm loss is ``L_grad = Σᵢ |Gᵢ - Ḡ·rᵢ^α|`` with the target ``Ḡ·rᵢ^α`` held constant.
    Its gradient is written by hand: ``∂L_grad/∂wᵢ = sign(Gᵢ - Ḡ rᵢ^α)·nᵢ``. Each update
    returns the current weights (used for this step's loss ``Σ wᵢ Lᵢ``, heads included, as
    published) and stores ``w ← w - lr·∂L_grad/∂w``, floored at 1e-6 and renormalised to
    ``Σ wᵢ = T``.

    The paper measures the norms on the last shared layer. The Balancer measures them on the
    ``shared=`` parameters it is given, so ``Balancer(GradNorm(), shared=model.trunk[-1])``
    is the published variant (and the cheapest); passing the whole trunk gives LibMTL's.

    Args:
        alpha: Asymmetry ``α >= 0``: how strongly tasks that train slowly get larger
            gradients (0: equal norms). The paper's default 1.5.
        lr: Step size ``> 0`` of plain gradient descent on the weights. The GradNorm loss
            has the units of a gradient norm, so choose it relative to the norms on the
            shared layer (the paper trains ``w`` with the network's optimiser).

    Cost: ``T`` backward passes through the shared parameters per update (only the last
    layer for the published variant) and ``T x T`` memory; the weight step is ``O(T)``.

    Reaction to scaling one loss by ``k``: ``"adaptive"``: its weight is unchanged at that
    step (the loss ratios ``L̃`` are scale free) and then moves to bring ``k·wᵢ·nᵢ`` back to
    the target.

    Reference: Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
    Compared with LibMTL's ``GradNorm`` (which parametrises ``w = T·softmax(s)``, uses the
    network's optimiser, and skips the first epoch).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> s = GradNorm(alpha=1.5, lr=0.1)
        >>> state = s.init(["main", "aux"], "main")
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # norms 1 and 3
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> w, state = s.update(sig, state)
        >>> w, [round(x, 2) for x in state.weights.tolist()]
        ({'main': 1.0, 'aux': 1.0}, [1.22, 0.78])
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "adaptive"

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be finite and > 0, got {lr!r}")
        self.alpha = float(alpha)
        self.lr = float(lr)

    def init(self, tasks: Sequence[str], main: str) -> GradNormState:
        _check_tasks(tasks, main)
        t = len(tasks)
        return GradNormState(
            torch.ones(t, dtype=torch.float64), torch.zeros(t, dtype=torch.float64), 0
        )

    def update(self, signals: Signals, state: GradNormState) -> tuple[Weights, GradNormState]:
        gram, _ = _gramian(signals, "GradNorm")
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        losses = _losses64(signals)
        initial = losses.copy() if state.updates == 0 else state.initial_losses.numpy().copy()
        w = state.weights.numpy().copy()
        t = len(w)
        # Loss ratios; a task whose initial loss was not positive has no training rate: 1.
        safe0 = np.where(initial > 0, initial, 1.0)
        ratio = np.where(initial > 0, np.clip(losses, 0.0, None) / safe0, 1.0)
        mean_ratio = float(ratio.mean())
        rate = ratio / mean_ratio if mean_ratio > 0 and math.isfinite(mean_ratio) else np.ones(t)
        g_w = w * norms
        target = float(g_w.mean()) * rate**self.alpha
        grad = np.sign(g_w - target) * norms
        new = np.clip(w - self.lr * grad, _GRADNORM_FLOOR, None)
        new = t * new / new.sum()
        if not np.all(np.isfinite(new)):  # lr·norm overflowed: keep the weights
            new = w
        weights = {task: float(v) for task, v in zip(signals.tasks, w, strict=True)}
        new_state = GradNormState(
            torch.from_numpy(new),
            torch.from_numpy(np.asarray(initial, dtype=np.float64)),
            state.updates + 1,
        )
        return weights, new_state


# ----------------------------------------------------------------------------------- MGDA

Normalization = Literal["none", "l2", "loss", "loss+"]


class _MinNormBase(Strategy):
    """Shared machinery of :class:`MGDA` and :class:`MGDAUB`: normalise, solve, unscale."""

    scale_reaction: ClassVar[str] = "none"
    #: The reaction with a scale-free normalisation ("l2" or "loss"), set per instance.
    _normalized_reaction: ClassVar[str] = "invariant"

    def __init__(self, normalization: Normalization = "none") -> None:
        _check_choice("normalization", normalization, ("none", "l2", "loss", "loss+"))
        self.normalization = normalization
        if normalization in ("l2", "loss"):
            self.scale_reaction = self._normalized_reaction  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def _matrix(self, signals: Signals) -> tuple[Array, float]:
        return _gramian(signals, type(self).__name__)

    def _coefficients(self, signals: Signals) -> Array:
        gram, eps = self._matrix(signals)
        t = gram.shape[0]
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        if self.normalization == "none":
            scale = np.ones(t)
        elif self.normalization == "l2":
            scale = norms
        else:
            losses = _losses64(signals)
            bad = [task for task, v in zip(signals.tasks, losses, strict=True) if not v > 0]
            if bad:
                raise ValueError(
                    f"MGDA(normalization={self.normalization!r}) divides by the losses, which "
                    f"must be positive; tasks {bad} have losses "
                    f"{[float(signals.losses[b]) for b in bad]}."
                )
            scale = losses if self.normalization == "loss" else losses * norms
        live = scale > 0
        inv = np.where(live, 1.0 / np.where(live, scale, 1.0), 0.0)
        normed = gram * np.outer(inv, inv)
        alpha, ok = min_norm_weights(normed, _tie_rtol(eps))
        if not ok:
            warnings.warn(
                "MGDA's minimum-norm solver did not converge; using equal weights 1/T on the "
                "normalised gradients for this step.",
                SolverWarning,
                stacklevel=3,
            )
            alpha = np.full(t, 1.0 / t)
        return alpha * inv


@register("mgda")
class MGDA(_MinNormBase):
    """The minimum-norm point of the convex hull of the task gradients (MGDA).

    Rule: with normalised gradients ``ĝᵢ = gᵢ/nᵢ``, find ``α`` on the simplex minimising
    ``||Σᵢ αᵢ ĝᵢ||`` (Désidéri's common descent direction); the shared parameters get
    ``Σᵢ αᵢ ĝᵢ``, i.e. ``shared_weights cᵢ = αᵢ/nᵢ``, and every head its own gradient
    (weight 1). Solved exactly: the closed form ``α₁ = clip(((g₂-g₁)·g₂)/||g₁-g₂||², 0, 1)``
    for two tasks, Lawson–Hanson NNLS otherwise (Sener & Koltun use Frank–Wolfe to a
    tolerance). Identical gradients share their weight equally.

    Normalisers ``nᵢ`` (Sener & Koltun's ``normalization_type``): ``"none"``: 1;
    ``"l2"``: ``||gᵢ||``; ``"loss"``: ``Lᵢ``; ``"loss+"``: ``Lᵢ·||gᵢ||``. A zero normalised
    gradient (``||gᵢ|| = 0``) stays zero: then the minimum norm is 0 and the shared update is
    zero (the point is Pareto-stationary). ``"loss"`` and ``"loss+"`` need positive losses.

    Heads and normalisation, compared: Sener & Koltun's code uses the ``α`` found on the
    normalised gradients as weights of the raw losses (``Σ αᵢ Lᵢ``, heads weighted too);
    LibMTL applies ``α`` to the normalised gradients on the shared parameters and leaves the
    heads unweighted. We follow LibMTL, so that with ``"l2"`` or ``"loss"`` the update is
    exactly invariant to the scale of each loss.

    Args:
        normalization: ``"none"`` (default, as LibMTL and TorchJD), ``"l2"``, ``"loss"`` or
            ``"loss+"``.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, and an NNLS
    on ``T`` variables (finite, ``O(T⁴)`` at worst).

    Reaction to scaling one loss by ``k``: ``"none"`` with ``"none"`` or ``"loss+"``
    normalisation; ``"invariant"`` with ``"l2"`` or ``"loss"`` (the normalised gradients, so
    the update itself, do not change). ``scale_reaction`` is set per instance accordingly.

    References: J.-A. Désidéri, "Multiple-gradient descent algorithm (MGDA) for
    multiobjective optimization", Comptes Rendus Mathématique, 2012; O. Sener, V. Koltun,
    "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018. Compared with
    LibMTL's ``MGDA`` and TorchJD's ``MGDAWeighting``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> s = MGDA()
        >>> decision, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in decision.shared_weights.items()}
        {'main': 0.8, 'aux': 0.2}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRAMIAN})

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        return _shared(signals.tasks, self._coefficients(signals)), state


@register("mgda-ub")
class MGDAUB(_MinNormBase):
    """MGDA on the gradients of a shared representation (MGDA-UB), one backward in all.

    Rule: as :class:`MGDA`, on the ``(T, n)`` gradients of the losses with respect to the
    shared representation ``z`` (the ``representation=`` tensor given to
    ``Balancer.backward``), which bounds the MGDA objective from above (Sener & Koltun,
    Theorem 1). The weights ``αᵢ/nᵢ`` are returned as plain loss weights, as in Sener &
    Koltun's code (``Σ αᵢ Lᵢ``, heads weighted too): that keeps MGDA-UB's point, one
    backward through the encoder, whereas coefficients on shared parameters would cost
    another one. The Balancer needs no ``shared=`` for it.

    Args:
        normalization: As for :class:`MGDA` (norms are those of the representation
            gradients).

    Cost: ``T`` backward passes from the losses to ``z`` (heads only), one full backward,
    ``T x n`` memory.

    Reaction to scaling one loss by ``k``: ``"none"`` with ``"none"``/``"loss+"``;
    ``"inverse"`` with ``"l2"``/``"loss"``: that task's weight scales by exactly ``1/k`` and
    the others are unchanged, so every gradient, heads included, is unchanged.
    ``scale_reaction`` is set per instance accordingly.

    Reference: O. Sener, V. Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018 (MGDA-UB).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # gradients on the representation
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = MGDAUB()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, rep_grads=z)
        >>> w, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(v, 3) for t, v in w.items()}
        {'main': 0.8, 'aux': 0.2}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.REP_GRADS})
    _normalized_reaction: ClassVar[str] = "inverse"

    def _matrix(self, signals: Signals) -> tuple[Array, float]:
        if signals.rep_grads is None:
            raise ValueError("MGDAUB needs the representation gradients (Need.REP_GRADS).")
        z = signals.rep_grads.reshape(len(signals.tasks), -1)
        return _finite(gramian64(gramian(z)), "MGDAUB", signals.step), input_eps(z)

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        coef = self._coefficients(signals)
        return {t: float(c) for t, c in zip(signals.tasks, coef, strict=True)}, state


# ---------------------------------------------------------------------------------- PCGrad


class PCGradState(NamedTuple):
    """State of :class:`PCGrad`.

    Attributes:
        rng: The state of the CPU generator that draws the projection orders.
    """

    rng: torch.Tensor


@register("pcgrad")
class PCGrad(Strategy):
    """Project each task gradient off the gradients it conflicts with (PCGrad).

    Rule (Yu et al., 2020, Algorithm 1): for each task ``i``, start from ``gᵢᴾᶜ = gᵢ`` and,
    for the other tasks ``j`` in a random order, if ``gᵢᴾᶜ·gⱼ < 0`` set
    ``gᵢᴾᶜ ← gᵢᴾᶜ - (gᵢᴾᶜ·gⱼ / ||gⱼ||²) gⱼ``, always projecting on the *original* ``gⱼ``. The
    shared parameters get ``Σᵢ gᵢᴾᶜ``; heads their own gradients. Every ``gᵢᴾᶜ`` is a
    combination of the original gradients whose coefficients depend only on inner products,
    so the loop runs on the Gramian (``T x T``) and the result is returned as
    ``shared_weights``; with float64 inputs it matches the loop on vectors to rounding.

    Randomness: at each update one ``T x T`` matrix of uniforms is drawn, indexed by the task
    names in sorted order, and task ``i`` visits the others in increasing order of its row.
    The same seed gives the same orders, and permuting the tasks permutes the result.

    Args:
        seed: Seed of the projection orders.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory,
    ``O(T³)`` arithmetic.

    Reaction to scaling one loss by ``k``: ``"none"``. (Exactly: conflicts are tested by
    signs and projections are off directions, so task ``k``'s projected gradient is scaled by
    ``k`` and the others are unchanged; nothing compensates the scale.)

    Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient Surgery
    for Multi-Task Learning", NeurIPS 2020. Compared with LibMTL's ``PCGrad`` (whose inner
    loop also visits ``j = i``).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # conflicting
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = PCGrad(seed=0)
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 2.0, 'aux': 1.5}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, seed: int = 0) -> None:
        _check_seed(seed)
        self.seed = seed

    def init(self, tasks: Sequence[str], main: str) -> PCGradState:
        _check_tasks(tasks, main)
        return PCGradState(_rng_state(self.seed))

    def update(self, signals: Signals, state: PCGradState) -> tuple[Decision, PCGradState]:
        gram, _ = _gramian(signals, "PCGrad")
        orders, rng = _visit_orders(signals.tasks, state.rng)
        t = gram.shape[0]
        coef = np.eye(t)
        for i in range(t):
            for j in orders[i]:
                dot = float(coef[i] @ gram[:, j])
                if dot < 0 and gram[j, j] > 0:
                    coef[i, j] -= dot / gram[j, j]
        return _shared(signals.tasks, coef.sum(axis=0)), PCGradState(rng)


# --------------------------------------------------------------------------------- GradVac


class GradVacState(NamedTuple):
    """State of :class:`GradVac`.

    Attributes:
        targets: ``(T, T)`` float64 EMA targets ``φ̂ᵢⱼ`` of the cosine between task ``i``'s
            (corrected) gradient and task ``j``'s, in task order; zeros at first.
        rng: The state of the CPU generator that draws the visiting orders.
    """

    targets: torch.Tensor
    rng: torch.Tensor


@register("gradvac")
class GradVac(Strategy):
    """Raise the cosine between task gradients to an EMA target (Gradient Vaccine).

    Rule (Wang et al., 2021, Algorithm 1, whole-model granularity): for each task ``i``,
    start from ``gᵢ'= gᵢ`` and, for the other tasks ``j`` in a random order, compute
    ``φᵢⱼ = cos(gᵢ', gⱼ)``. If ``φᵢⱼ < φ̂ᵢⱼ``, add ``w·gⱼ`` with
    ``w = ||gᵢ'||(φ̂ᵢⱼ√(1-φᵢⱼ²) - φᵢⱼ√(1-φ̂ᵢⱼ²)) / (||gⱼ||√(1-φ̂ᵢⱼ²))`` so that the cosine
    becomes ``φ̂ᵢⱼ``; then ``φ̂ᵢⱼ ← (1-β) φ̂ᵢⱼ + β φᵢⱼ``. The shared parameters get
    ``Σᵢ gᵢ'``, returned as ``shared_weights`` (computed on the Gramian, as TorchJD does);
    heads their own gradients. Orders are drawn as in :class:`PCGrad`.

    Where a cosine is undefined (a zero gradient) nothing is added and the target is left
    as it was (the peers add ``1e-8`` to the denominators instead and pull the target to 0).
    ``√(1-φ̂²)`` is floored at ``1e-8``, since a target of exactly 1 asks for an infinite
    correction.

    Args:
        beta: EMA rate ``β`` in ``[0, 1]`` (0.5 as LibMTL and TorchJD).
        seed: Seed of the visiting orders.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory and state,
    ``O(T³)`` arithmetic. Per-layer granularity is not provided (whole model only).

    Reaction to scaling one loss by ``k``: ``"none"`` (cosines are scale free, so task
    ``k``'s corrected gradient scales by ``k`` and nothing compensates).

    Reference: Z. Wang, Y. Tsvetkov, O. Firat, Y. Cao, "Gradient Vaccine: Investigating and
    Improving Multi-task Optimization in Massively Multilingual Models", ICLR 2021. Compared
    with LibMTL's ``GradVac`` and TorchJD's ``GradVacWeighting``.

    Example:
        >>> s = GradVac(beta=0.5)
        >>> s.init(["main", "aux"], "main").targets
        tensor([[0., 0.],
                [0., 0.]], dtype=torch.float64)
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, beta: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        _check_seed(seed)
        self.beta = float(beta)
        self.seed = seed

    def init(self, tasks: Sequence[str], main: str) -> GradVacState:
        _check_tasks(tasks, main)
        t = len(tasks)
        return GradVacState(torch.zeros((t, t), dtype=torch.float64), _rng_state(self.seed))

    def update(self, signals: Signals, state: GradVacState) -> tuple[Decision, GradVacState]:
        gram, _ = _gramian(signals, "GradVac")
        orders, rng = _visit_orders(signals.tasks, state.rng)
        targets = state.targets.numpy().copy()
        t = gram.shape[0]
        coef = np.eye(t)
        for i in range(t):
            for j in orders[i]:
                dots = coef[i] @ gram
                norm_i = math.sqrt(max(float(dots @ coef[i]), 0.0))
                norm_j = math.sqrt(max(float(gram[j, j]), 0.0))
                if norm_i == 0.0 or norm_j == 0.0:
                    continue
                phi = min(max(float(dots[j]) / (norm_i * norm_j), -1.0), 1.0)
                target = float(targets[i, j])
                if phi < target:
                    sin_target = max(math.sqrt(max(1.0 - target * target, 0.0)), 1e-8)
                    sin_phi = math.sqrt(max(1.0 - phi * phi, 0.0))
                    coef[i, j] += (
                        norm_i * (target * sin_phi - phi * sin_target) / (norm_j * sin_target)
                    )
                targets[i, j] = (1.0 - self.beta) * target + self.beta * phi
        new_state = GradVacState(torch.from_numpy(targets), rng)
        return _shared(signals.tasks, coef.sum(axis=0)), new_state


# ------------------------------------------------------------------------------------ IMTL


@register("imtl")
class IMTL(Strategy):
    """Impartial gradient: equal projections on every task's unit gradient (IMTL-G).

    Rule (Liu et al., 2021, eq. 5, generalised to dependent gradients as in TorchJD): find
    ``d = Σᵢ αᵢ gᵢ`` with ``d·uᵢ`` equal for all tasks (``uᵢ = gᵢ/||gᵢ||``) and ``Σ αᵢ = 1``:
    ``v = G⁺ n`` with ``nᵢ = ||gᵢ||`` (the pseudo-inverse cuts eigenvalues below ``T·ε`` of
    the largest, ``ε`` the inputs' precision), then ``α = v / Σv``. ``Jᵀv`` has projection 1
    on every ``uᵢ``. The shared parameters get ``Σ αᵢ gᵢ``; heads their own gradients.

    Deviation, documented: for three or more tasks ``Σv`` can be small or negative, and the
    published normalisation then makes ``d`` huge or points it against every task. We divide
    by ``max(Σv, Σ|v|/T)`` instead, which is the published rule whenever ``Σv >= Σ|v|/T``
    (always when ``v >= 0``, always for two tasks) and otherwise keeps ``d`` a positive
    multiple of ``Jᵀv`` with ``Σ|αᵢ| <= T``. If ``Jᵀv`` vanishes (e.g. ``g₂ = -g₁``, or all
    gradients zero) no direction has equal positive projections; the weights are ``1/T``.

    IMTL-L, the loss-scale half of IMTL (learnable ``e^{sᵢ} Lᵢ - sᵢ``), is not included: it
    is a loss-based strategy and can be combined with this one.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, one
    ``T x T`` eigendecomposition.

    Reaction to scaling one loss by ``k``: ``"invariant"``: the direction of the shared
    update is unchanged (its length changes, through ``Σv``) whenever the gradients are
    linearly independent (more generally, whenever equal projections are attainable).

    Reference: L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang,
    "Towards Impartial Multi-task Learning", ICLR 2021. Compared with TorchJD's
    ``IMTLGWeighting`` and LibMTL's ``IMTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = IMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 0.75, 'aux': 0.25}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "invariant"

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        gram, eps = _gramian(signals, "IMTL")
        t = gram.shape[0]
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        top = float(norms.max()) if t else 0.0
        coef = np.full(t, 1.0 / t)
        if top > 0 and math.isfinite(top):
            # Work with G/max||g||² and n/max||g||: v scales as 1/||g||, α = v/Σv does not.
            g = gram / top**2
            lam, vec = np.linalg.eigh(g)
            keep = lam > t * eps * float(lam.max())
            pinv = (vec[:, keep] / lam[keep]) @ vec[:, keep].T
            v = pinv @ (norms / top)
            d_sq = float(v @ g @ v)  # ||Jᵀv||², 0 when no direction has equal projections
            total, mass = float(v.sum()), float(np.abs(v).sum())
            if mass > 0 and d_sq > 1e-12 * max(mass, 1.0) ** 2:
                coef = v / max(total, mass / t)
        return _shared(signals.tasks, coef), state


# ---------------------------------------------------------------------------------- CAGrad


@register("cagrad")
class CAGrad(Strategy):
    """Conflict-averse gradient: the best worst-case improvement near the mean gradient.

    Rule (Liu et al., 2021, eq. 3-4): ``max_d minᵢ gᵢ·d`` subject to
    ``||d - g₀|| <= c·||g₀||`` with ``g₀ = meanᵢ gᵢ``. Its dual is
    ``min_{w ∈ simplex} g_w·g₀ + c·||g₀||·||g_w||`` with ``g_w = Σ wᵢ gᵢ``, and
    ``d = g₀ + (c·||g₀|| / ||g_w||)·g_w``: a combination of the task gradients, returned as
    ``shared_weights`` (divided by ``1 + c²`` with ``rescale=1``, ``1 + c`` with
    ``rescale=2``); heads get their own gradients. The dual is solved exactly by a root
    search over a scalar whose every evaluation is an exact minimum-norm problem (the
    authors and LibMTL use SciPy's SLSQP). Where ``g_w = 0`` (the gradients' hull holds the
    origin at the optimum) or ``g₀ = 0``, ``d = g₀``.

    Args:
        c: Radius ``c`` in ``[0, 1)`` of the ball around ``g₀``, in units of ``||g₀||`` (0
            gives the mean gradient; 0.5 by default, as LibMTL; the paper's convergence
            result needs ``c < 1``). The brief's ``√c·||g₀||`` is the paper's ``√φ`` with
            ``φ = c²||g₀||²``.
        rescale: 0 (none), 1 (divide by ``1 + c²``, default, as the authors' code) or 2
            (divide by ``1 + c``).

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, a few tens
    of ``T``-variable NNLS solves.

    Reaction to scaling one loss by ``k``: ``"none"`` (``g₀`` and the ball move).

    Reference: B. Liu, X. Liu, X. Jin, P. Stone, Q. Liu, "Conflict-Averse Gradient Descent
    for Multi-task Learning", NeurIPS 2021. Compared with the authors' ``Cranial-XIX/CAGrad``
    code via LibMTL's ``CAGrad``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = CAGrad(c=0.0)  # c = 0: the mean gradient
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> d.shared_weights
        {'main': 0.5, 'aux': 0.5}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, c: float = 0.5, rescale: Literal[0, 1, 2] = 1) -> None:
        if not (math.isfinite(c) and 0.0 <= c < 1.0):
            raise ValueError(f"c must be in [0, 1), got {c!r}")
        _check_choice("rescale", rescale, (0, 1, 2))
        self.c = float(c)
        self.rescale = rescale

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        gram, eps = _gramian(signals, "CAGrad")
        t = gram.shape[0]
        coef, ok = cagrad_weights(gram, self.c, _tie_rtol(eps))
        if not ok:
            warnings.warn(
                "CAGrad's dual solver did not converge; using the mean gradient for this step.",
                SolverWarning,
                stacklevel=2,
            )
            coef = np.full(t, 1.0 / t)
        if self.rescale == 1:
            coef = coef / (1.0 + self.c**2)
        elif self.rescale == 2:
            coef = coef / (1.0 + self.c)
        return _shared(signals.tasks, coef), state


# -------------------------------------------------------------------------------- Nash-MTL


class NashMTLState(NamedTuple):
    """State of :class:`NashMTL`.

    Attributes:
        alpha: ``(T,)`` float64 last bargaining solution (before clipping), in task order;
            ones before the first solve.
        updates: Updates so far.
    """

    alpha: torch.Tensor
    updates: int


@register("nash-mtl")
class NashMTL(Strategy):
    """The Nash bargaining solution between the tasks (Nash-MTL).

    Rule (Navon et al., 2022, eq. 2 and Algorithm 1): find ``α > 0`` with
    ``(G̃ α)ᵢ = 1/αᵢ`` for every task, where ``G̃ = G / ||G||_F`` as in the authors' code
    (the normalisation makes the update proportional to the gradients' size); the shared
    parameters get ``Σ αᵢ gᵢ``, heads their own gradients. Solved exactly by damped Newton
    on the convex potential ``½αᵀG̃α - Σ log αᵢ`` (the authors use a sequence of convex
    approximations with cvxpy/ECOS, at most 20). With ``update_every = k`` the solution is
    recomputed every ``k``-th update and reused in between. ``max_norm`` scales the shared
    update down to that norm when it is longer (the authors clip the shared gradient at 1.0).

    Fallbacks: a task with a zero gradient gets ``α = 0`` (the bargaining problem has no
    solution with it; its gradient contributes nothing anyway) and the rest bargain; all
    gradients zero gives ``α = 1``. When no solution exists (a convex combination of the
    gradients is zero: the point is Pareto-stationary) or Newton does not converge, a
    :class:`SolverWarning` is issued and the previous ``α`` is reused (initially all ones),
    as the authors' code does when its solver fails.

    Heads: the authors' code and LibMTL weight the whole loss ``Σ αᵢ Lᵢ``, heads included;
    we follow the paper's update of the shared parameters and leave each head its own
    gradient.

    Args:
        update_every: Recompute ``α`` every this many updates (>= 1; the paper's speed-up
            option). ``Balancer(every=k)`` saves the gradient computations too.
        max_norm: If set (> 0), the largest norm of the shared update.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, about ten
    Newton steps on ``T x T`` systems.

    Reaction to scaling one loss by ``k``: ``"invariant"``: ``α`` of that task scales by
    ``1/k`` relative to the others, so the direction of the shared update is unchanged (its
    length changes with ``||G||_F``). Without the ``||G||_F`` normalisation the update
    itself would be unchanged.

    Reference: A. Navon, A. Shamsian, I. Achituve, H. Maron, K. Kawaguchi, G. Chechik,
    E. Fetaya, "Multi-Task Learning as a Bargaining Game", ICML 2022. Compared with the
    authors' ``AvivNavon/nash-mtl`` code and LibMTL's ``Nash_MTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # orthogonal: αᵢ·||gᵢ|| all equal
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = NashMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> a = d.shared_weights
        >>> round(a["main"] * 3.0, 4), round(a["aux"] * 4.0, 4)
        (4.2846, 4.2846)
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(self, update_every: int = 1, max_norm: float | None = None) -> None:
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be None or a positive number, got {max_norm!r}")
        self.update_every = update_every
        self.max_norm = None if max_norm is None else float(max_norm)

    def init(self, tasks: Sequence[str], main: str) -> NashMTLState:
        _check_tasks(tasks, main)
        return NashMTLState(torch.ones(len(tasks), dtype=torch.float64), 0)

    def _solve(self, gram: Array, eps: float, previous: Array) -> Array:
        t = gram.shape[0]
        frob = float(np.linalg.norm(gram))
        if not (frob > 0 and math.isfinite(frob)):
            return np.ones(t)
        g = gram / frob
        diag = np.diag(g)
        live = diag > eps * eps * float(diag.max())
        alpha = np.zeros(t)
        sub, ok = nash_weights(g[np.ix_(live, live)])
        if ok:
            alpha[live] = sub
            return alpha
        warnings.warn(
            "Nash-MTL found no bargaining solution (a convex combination of the task "
            "gradients is zero, or Newton did not converge); reusing the previous weights.",
            SolverWarning,
            stacklevel=3,
        )
        return previous.copy()

    def update(self, signals: Signals, state: NashMTLState) -> tuple[Decision, NashMTLState]:
        gram, eps = _gramian(signals, "NashMTL")
        if state.updates % self.update_every == 0:
            alpha = self._solve(gram, eps, state.alpha.numpy())
        else:
            alpha = state.alpha.numpy().copy()
        coef = alpha
        if self.max_norm is not None:
            norm = math.sqrt(max(float(alpha @ gram @ alpha), 0.0))
            if norm > self.max_norm:
                coef = alpha * (self.max_norm / norm)
        new_state = NashMTLState(torch.from_numpy(alpha), state.updates + 1)
        return _shared(signals.tasks, coef), new_state


# ----------------------------------------------------------------------------- Aligned-MTL


class AlignedMTLState(NamedTuple):
    """State of :class:`AlignedMTL`.

    Attributes:
        pref: ``(T,)`` float64 task preferences ``w`` in task order.
    """

    pref: torch.Tensor


@register("aligned-mtl")
class AlignedMTL(Strategy):
    """Align the principal components of the task gradients (Aligned-MTL).

    Rule (Senushkin et al., 2023, Algorithm 1): with ``G = V Λ Vᵀ`` (eigenvalues above
    ``λ_max·T·ε`` kept, ``ε`` the inputs' precision), the balance transformation is
    ``B = √λ_s · V Λ^{-1/2} Vᵀ`` with ``λ_s`` the smallest kept eigenvalue; ``JᵀB`` has
    orthogonal rows of equal norm ``√λ_s`` (condition number one). The shared parameters
    get ``Σᵢ αᵢ gᵢ`` with ``α = B w``; heads their own gradients. A zero Gramian gives
    ``α = w``.

    Args:
        pref_vector: Task preferences ``w`` (the paper's task weights; its main-task-aware
            use): a dict ``{task: weight}`` covering every task, or a list in task order.
            Default: ones (the sum of the aligned gradients, as the authors' code via
            LibMTL; TorchJD defaults to ``1/T``).
        scale_mode: ``"min"`` (the paper: the smallest eigenvalue), ``"median"`` or
            ``"rmse"`` (their mean, as in the authors' repository), as TorchJD offers.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, one
    ``T x T`` eigendecomposition. Aligned-MTL-UB (on representation gradients) is not
    provided.

    Reaction to scaling one loss by ``k``: ``"none"``. Only when the gradients are
    orthogonal is the direction unchanged: in general the eigenvectors of ``G`` change with
    the scale of one row (checked numerically: a factor 10 on one of three random gradients
    turns the update by about 20 degrees).

    Reference: D. Senushkin, N. Patakin, A. Kuznetsov, A. Konushin, "Independent Component
    Alignment for Multi-Task Learning", CVPR 2023. Compared with TorchJD's
    ``AlignedMTLWeighting`` and LibMTL's ``Aligned_MTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # orthogonal: scaled to the smallest
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = AlignedMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 1.0, 'aux': 0.5}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(
        self,
        pref_vector: Preference | None = None,
        scale_mode: Literal["min", "median", "rmse"] = "min",
    ) -> None:
        _check_choice("scale_mode", scale_mode, ("min", "median", "rmse"))
        self.pref_vector = _check_preference(pref_vector)
        self.scale_mode = scale_mode

    def init(self, tasks: Sequence[str], main: str) -> AlignedMTLState:
        _check_tasks(tasks, main)
        return AlignedMTLState(_resolve_preference(self.pref_vector, tasks, default=1.0))

    def update(self, signals: Signals, state: AlignedMTLState) -> tuple[Decision, AlignedMTLState]:
        gram, eps = _gramian(signals, "AlignedMTL")
        t = gram.shape[0]
        w = state.pref.numpy()
        lam, vec = np.linalg.eigh(gram)
        top = float(lam.max()) if t else 0.0
        keep = lam > top * t * eps if top > 0 and math.isfinite(top) else np.zeros(t, dtype=bool)
        if not keep.any():
            return _shared(signals.tasks, w.copy()), state
        lam_k, vec_k = lam[keep], vec[:, keep]
        if self.scale_mode == "min":
            level = float(lam_k.min())
        elif self.scale_mode == "median":
            level = float(np.median(lam_k))
        else:
            level = float(lam_k.mean())
        balance = math.sqrt(level) * (vec_k / np.sqrt(lam_k)) @ vec_k.T
        return _shared(signals.tasks, balance @ w), state


# ---------------------------------------------------------------------------------- UPGrad


class UPGradState(NamedTuple):
    """State of :class:`UPGrad`.

    Attributes:
        pref: ``(T,)`` float64 task preferences ``u`` in task order.
    """

    pref: torch.Tensor


@register("upgrad")
class UPGrad(Strategy):
    """Project every task gradient onto the dual cone of all of them, and combine (UPGrad).

    Rule (Quinton & Rey, 2024, eq. 5 and Proposition 1): for each task ``i``, project
    ``uᵢ·gᵢ`` onto the dual cone ``{x : gⱼ·x >= 0 for every j}``; the projection is
    ``Jᵀvᵢ`` with ``vᵢ = argmin vᵀGv`` subject to ``v >= uᵢ eᵢ``. The shared parameters get
    ``Σᵢ Jᵀvᵢ``, i.e. ``shared_weights = Σᵢ vᵢ``, which has a non-negative inner product with
    every task gradient; heads their own gradients. Each small QP is solved exactly as an
    NNLS problem (TorchJD uses quadprog on a slightly regularised Gramian); identical
    gradients share their weight equally.

    Args:
        pref_vector: Preferences ``u`` (TorchJD's ``pref_vector``, its only built-in
            priority hook): a dict ``{task: weight}`` covering every task, or a list in task
            order. Default ``1/T`` each (TorchJD's mean), so that without conflict the
            update is the mean gradient.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, ``T``
    NNLS solves on ``T`` variables.

    Reaction to scaling one loss by ``k``: ``"none"``. (Exactly: the dual cone does not
    depend on the gradients' lengths, so task ``k``'s projected gradient scales by ``k`` and
    the others are unchanged; nothing compensates the scale.)

    Reference: P. Quinton, V. Rey, "Jacobian Descent for Multi-Objective Optimization",
    arXiv:2406.16232, 2024. Compared with TorchJD's ``UPGradWeighting``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # no conflict: the mean
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = UPGrad()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> d.shared_weights
        {'main': 0.5, 'aux': 0.5}
    """

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, pref_vector: Preference | None = None) -> None:
        self.pref_vector = _check_preference(pref_vector)

    def init(self, tasks: Sequence[str], main: str) -> UPGradState:
        _check_tasks(tasks, main)
        return UPGradState(_resolve_preference(self.pref_vector, tasks, default=None))

    def update(self, signals: Signals, state: UPGradState) -> tuple[Decision, UPGradState]:
        gram, eps = _gramian(signals, "UPGrad")
        pref = state.pref.numpy()
        t = gram.shape[0]
        total = np.zeros(t)
        failed = False
        factor = dual_cone_factor(gram)  # one factorisation for the T projections
        for i in range(t):
            u = np.zeros(t)
            u[i] = pref[i]
            v, ok = dual_cone_weights(gram, u, factor)
            failed |= not ok
            total += v
        if failed:
            warnings.warn(
                "UPGrad's projection solver did not converge; using the preference-weighted "
                "sum of the raw gradients for this step.",
                SolverWarning,
                stacklevel=2,
            )
            total = pref.copy()
        return _shared(signals.tasks, tie_identical(gram, total, _tie_rtol(eps))), state
