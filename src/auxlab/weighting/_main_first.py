"""Main-task-first strategies: the auxiliary losses serve the main one.

Every strategy here treats the main task asymmetrically: its gradient is never reduced, and
the auxiliary gradients are admitted, scaled or projected according to how they relate to
it. All read the per-task gradients on the shared parameters, through their Gramian
``G Gᵀ`` when that suffices (gradient norms are the square roots of its diagonal, cosines
follow from its entries), so they cost one backward through the shared block per task (the
Balancer's ``every=k`` spreads that cost over ``k`` steps).

Vocabulary used in each class's "Loss scaling" paragraph (``scale_reaction``): multiplying
one task's loss by ``c > 0`` multiplies its gradient by ``c``. ``"independent"``: the
weights do not change (so that task's contribution to the update is multiplied by ``c``);
``"inverse"``: that task's weight is divided by ``c`` and the others stay, so the whole
update is unchanged; ``"invariant"``: the weights, or for a strategy that combines the
gradients on the shared block, the direction of the shared update, do not change;
``"adaptive"`` / ``"none"``: no exact one-step statement.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch

from auxlab._errors import TaskMismatchError
from auxlab.weighting._base import Decision, Need, Signals, Strategy, Weights, check_weight
from auxlab.weighting._registry import register

__all__ = [
    "GradientCosine",
    "GradientCosineState",
    "MetaBalance",
    "MetaBalanceState",
    "NonFiniteSignalWarning",
    "OLAux",
    "OLAuxState",
    "PriorityPCGrad",
    "PriorityPCGradState",
    "RelativeWeights",
    "RelativeWeightsState",
    "relative_share",
]

_GRAMIAN_ONLY = frozenset({Need.LOSSES, Need.GRAMIAN})


class NonFiniteSignalWarning(UserWarning):
    """A gradient signal (Gramian entry, norm) was not finite; a documented fallback was used."""


# ------------------------------------------------------------------------------ helpers


def _gram(signals: Signals, who: Strategy) -> list[list[float]]:
    """The Gramian as nested Python floats (float64), for the small T x T arithmetic.

    One transfer of T² numbers to the host: cheaper than many tiny device operations and
    exact in float64 whatever the dtype and device of the gradients.
    """
    g = signals.gramian
    if g is None:
        if signals.grads is None:
            raise ValueError(
                f"{type(who).__name__} reads the Gramian of the per-task gradients, but the "
                "signals carry neither gramian nor grads (declare Need.GRAMIAN in needs)"
            )
        g = signals.grads @ signals.grads.T
    n = len(signals.tasks)
    if tuple(g.shape) != (n, n):
        raise ValueError(
            f"{type(who).__name__}: the Gramian has shape {tuple(g.shape)}, expected ({n}, {n}) "
            f"for the tasks {list(signals.tasks)}"
        )
    rows: list[list[float]] = g.detach().to(device="cpu", dtype=torch.float64).tolist()
    return rows


def _warn(who: Strategy, message: str) -> None:
    warnings.warn(f"{type(who).__name__}: {message}", NonFiniteSignalWarning, stacklevel=3)


def _norms(gram: list[list[float]], who: Strategy) -> list[float]:
    """Gradient norms ``sqrt(Gᵢᵢ)``; a non-finite entry becomes 0 with a warning."""
    out = []
    for i, row in enumerate(gram):
        v = row[i]
        if not math.isfinite(v):
            _warn(
                who,
                f"a squared gradient norm is {v} (the gradients overflow the dtype of the "
                "Gramian); that task is treated as having no gradient",
            )
            v = 0.0
        out.append(math.sqrt(max(v, 0.0)))
    return out


def _cosines(gram: list[list[float]], i_main: int, who: Strategy) -> list[float]:
    """``cos(g_main, gᵢ)`` for every task; 0 where either gradient is zero (or not finite)."""
    norms = _norms(gram, who)
    out = []
    for i, row in enumerate(gram):
        denom = norms[i] * norms[i_main]
        dot = row[i_main]
        if denom > 0.0 and math.isfinite(dot) and math.isfinite(denom):
            out.append(min(1.0, max(-1.0, dot / denom)))
        else:
            out.append(0.0)
    return out


def _resolve(
    given: Mapping[str, float] | float | None,
    tasks: Sequence[str],
    main: str,
    what: str,
    default: float = 1.0,
) -> dict[str, float]:
    """``{task: value}`` for every task.

    From a dict (missing tasks get ``default``, the main task 1.0), a number (every auxiliary
    task) or ``None`` (all ``default``, the main task 1.0).
    """
    out = {t: (1.0 if t == main else default) for t in tasks}
    if given is None:
        return out
    if isinstance(given, Mapping):
        unknown = [t for t in given if t not in tasks]
        if unknown:
            raise TaskMismatchError(
                f"{what} name tasks {unknown} that are not among the tasks {list(tasks)}"
            )
        out.update({t: check_weight(t, v, what) for t, v in given.items()})
        return out
    v = check_weight("every auxiliary task", given, what)
    out.update({t: v for t in tasks if t != main})
    return out


def _check_weights_arg(weights: Mapping[str, float] | float | None, what: str) -> Any:
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        for t, v in weights.items():
            check_weight(t, v, what)
        return dict(weights)
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        check_weight("every auxiliary task", weights, what)
        return float(weights)
    raise TypeError(f"{what} must be a dict {{task: value}}, a number or None, got {weights!r}")


def _check_fraction(name: str, value: float, *, closed_top: bool) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed_top else 0.0 <= v < 1.0
    if not ok:
        interval = "[0, 1]" if closed_top else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_max_weight(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not (v > 0 and not math.isnan(v)):
        raise ValueError(f"max_weight must be > 0 (or None for no cap), got {value!r}")
    return v


# ------------------------------------------------------------------------------ gradient cosine


class GradientCosineState(NamedTuple):
    """State of :class:`GradientCosine`.

    Attributes:
        weights: The resolved base weight of every task.
    """

    weights: dict[str, float]


@register("gradient-cosine")
class GradientCosine(Strategy):
    """Admit an auxiliary gradient on the shared block only while it agrees with the main one.

    Rule: with ``cₖ = cos(g_main, gₖ)`` on the shared parameters and base weights ``bᵢ``,
    the shared parameters receive ``b_main·g_main + Σₖ λₖ·bₖ·gₖ`` where
    ``λₖ = 1[cₖ > 0]`` (``mode="gate"``, the paper's unweighted version) or
    ``λₖ = max(0, cₖ)`` (``mode="weighted"``). Task-specific parameters (heads) get their own
    task's gradient times its base weight, ungated, as in the paper's algorithm, where the
    auxiliary head is always trained on its own loss. A zero gradient has cosine 0, so the
    gate closes.

    The decision is ``Decision(weights=b, shared_weights=b·λ)``: the Balancer's
    ``StepRecord.weights`` shows the base weights; the gate is in the shared weights.

    Cost: one backward through the shared block per task (``Need.GRAMIAN`` only: the cosines
    come from the Gramian); no state beyond the base weights.

    Loss scaling (``scale_reaction = "independent"``): cosines do not depend on the scale of a
    gradient, so multiplying any one loss by ``c > 0`` changes no weight and no gate; that
    task's contribution to the update is multiplied by ``c``.

    Args:
        mode: ``"gate"`` (``λ ∈ {0, 1}``) or ``"weighted"`` (``λ = max(0, cos)``).
        weights: Base weights: ``{task: weight >= 0}`` (tasks left out weigh 1.0), a number for
            every auxiliary task, or ``None`` (all 1.0, as in the paper).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
        >>> sig = Signals(0, ("main", "a", "b"), "main", {}, gramian=G @ G.T)
        >>> s = GradientCosine(weights={"a": 0.5, "b": 0.5})
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'a': 0.5, 'b': 0.0}

    Reference:
        Du, Czarnecki, Jayakumar, Farajtabar, Pascanu, Lakshminarayanan, "Adapting Auxiliary
        Losses Using Gradient Similarity", arXiv:1812.02224, 2018. Compared with ForkMerge's
        ``GCS.py`` (Jiang et al., NeurIPS 2023), which also leaves the heads ungated.
    """

    needs = _GRAMIAN_ONLY
    scale_reaction = "independent"

    def __init__(
        self,
        mode: Literal["gate", "weighted"] = "gate",
        weights: Mapping[str, float] | float | None = None,
    ) -> None:
        if mode not in ("gate", "weighted"):
            raise ValueError(f"mode must be 'gate' or 'weighted', got {mode!r}")
        self.mode = mode
        self.weights = _check_weights_arg(weights, "base weight")

    def init(self, tasks: Sequence[str], main: str) -> GradientCosineState:
        return GradientCosineState(_resolve(self.weights, tasks, main, "base weights"))

    def update(
        self, signals: Signals, state: GradientCosineState
    ) -> tuple[Decision, GradientCosineState]:
        gram = _gram(signals, self)
        cos = _cosines(gram, signals.tasks.index(signals.main), self)
        base = state.weights
        shared = {}
        for t, c in zip(signals.tasks, cos, strict=True):
            if t == signals.main:
                shared[t] = base[t]
            elif self.mode == "gate":
                shared[t] = base[t] if c > 0.0 else 0.0
            else:
                shared[t] = base[t] * max(0.0, c)
        weights = {t: base[t] for t in signals.tasks}
        return Decision(weights, shared_weights=shared), state


# ------------------------------------------------------------------------------ OL-AUX


class OLAuxState(NamedTuple):
    """State of :class:`OLAux`.

    Attributes:
        weights: The weights in force, ``{task: weight}`` (the main task's is 1.0).
        accumulator: ``Σ g_main·gₖ`` over the current horizon, per auxiliary task.
        updates: Updates seen so far (calls of ``update``).
    """

    weights: dict[str, float]
    accumulator: dict[str, float]
    updates: int


@register("ol-aux")
class OLAux(Strategy):
    """Online learning of auxiliary weights by a first-order look-ahead on the main loss.

    Rule: the weights ``w`` stay fixed over a horizon of ``N`` updates while
    ``Sₖ = Σⱼ g_main(θⱼ)·gₖ(θⱼ)`` accumulates. Since
    ``∂L_main(θ_{t+N})/∂wₖ ≈ −α·Sₖ`` (one-step approximation, ``α`` the model's learning rate),
    a gradient step on the weights at the end of the horizon is
    ``wₖ ← max(0, wₖ + lr·Sₖ)`` with ``lr`` = the paper's ``β·α``; then ``S`` is reset.
    The main weight stays 1. The new weights apply from the next update on. The weighted loss
    ``L_main + Σₖ wₖ·Lₖ`` is applied to every parameter, heads included, as in the paper.

    Cost: one backward through the shared block per task (``Need.GRAMIAN`` only: the dot
    products are its main column); state O(T) floats.

    Loss scaling (``scale_reaction = "none"``): the dot products, and so the weight steps,
    scale with the losses: multiplying an auxiliary loss by ``c`` multiplies its weight's step
    by ``c``. ``lr`` must be chosen for the gradients' scale (a step of ``lr·N·‖g_main‖·‖gₖ‖``
    at most per horizon).

    Args:
        lr: Step size of the weight update (``>= 0``), in weight per unit of ``g_main·gₖ``.
        horizon: Updates between weight steps (``N``, ``>= 1``). Counted in calls of
            ``update``: with ``Balancer(every=k)`` that is every ``k``-th training step.
        weights: Initial auxiliary weights: ``{task: weight}`` (tasks left out start at 1.0),
            a number for every auxiliary task, or ``None`` (all 1.0).
        max_weight: Optional upper bound on every auxiliary weight (``None``: none).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = OLAux(lr=0.1, horizon=1)
        >>> w, state = s.update(sig, s.init(sig.tasks, "main"))
        >>> w, state.weights
        ({'main': 1.0, 'aux': 1.0}, {'main': 1.0, 'aux': 1.05})

    Reference:
        Lin, Baweja, Kantor, Held, "Adaptive Auxiliary Task Weighting for Reinforcement
        Learning", NeurIPS 2019. ForkMerge's ``OLAUX.py`` accumulates cosines instead of dot
        products; this follows the paper's gradient.
    """

    needs = _GRAMIAN_ONLY
    scale_reaction = "none"

    def __init__(
        self,
        lr: float = 0.01,
        horizon: int = 10,
        weights: Mapping[str, float] | float | None = None,
        max_weight: float | None = None,
    ) -> None:
        self.lr = check_weight("lr", lr, "learning rate")
        self.horizon = _check_positive_int("horizon", horizon)
        self.weights = _check_weights_arg(weights, "initial weight")
        self.max_weight = _check_max_weight(max_weight)

    def init(self, tasks: Sequence[str], main: str) -> OLAuxState:
        weights = _resolve(self.weights, tasks, main, "initial weights")
        weights[main] = 1.0
        return OLAuxState(weights, {t: 0.0 for t in tasks if t != main}, 0)

    def update(self, signals: Signals, state: OLAuxState) -> tuple[Weights, OLAuxState]:
        gram = _gram(signals, self)
        i_main = signals.tasks.index(signals.main)
        acc = dict(state.accumulator)
        for i, t in enumerate(signals.tasks):
            if t != signals.main:
                dot = gram[i][i_main]
                if not math.isfinite(dot):
                    _warn(self, f"g_main·g_{t} is {dot}; it is left out of the accumulator")
                    dot = 0.0
                acc[t] = acc[t] + dot
        updates = state.updates + 1
        new_weights = state.weights
        if updates % self.horizon == 0:
            new_weights = dict(state.weights)
            for t, s in acc.items():
                w = max(0.0, state.weights[t] + self.lr * s)
                if self.max_weight is not None:
                    w = min(w, self.max_weight)
                if not math.isfinite(w):
                    _warn(self, f"the weight step of '{t}' overflowed; the weight is kept")
                    w = state.weights[t]
                new_weights[t] = w
            acc = dict.fromkeys(acc, 0.0)
        return dict(state.weights), OLAuxState(new_weights, acc, updates)


# ------------------------------------------------------------------------------ MetaBalance


class MetaBalanceState(NamedTuple):
    """State of :class:`MetaBalance`.

    Attributes:
        norms: Per task, the moving average of its gradient norm on each block of the shared
            parameters (a float64 tensor of one value per block; one block by default).
        updates: Updates seen so far.
    """

    norms: dict[str, torch.Tensor]
    updates: int


@register("metabalance")
class MetaBalance(Strategy):
    """Bring each auxiliary gradient's magnitude towards the main gradient's, on the shared block.

    Rule (per block of shared parameters): moving averages of the gradient norms
    ``mᵢ ← β·mᵢ + (1−β)·‖gᵢ‖`` for every task; each auxiliary gradient is rescaled to
    ``gₖ ← (r·m_main/mₖ + 1 − r)·gₖ`` and the shared parameters receive ``g_main + Σₖ gₖ``.
    ``r`` (the relax factor) sets how close the magnitudes are brought: 1 equalises them,
    0 leaves them. The paper's three strategies choose when to rescale: ``"reduce"`` only
    when the auxiliary gradient is the larger (``mₖ > m_main``), ``"enlarge"`` only when it is
    the smaller, ``"both"`` always. The comparison uses the same moving averages as the ratio,
    so ``"reduce"`` never enlarges and ``"enlarge"`` never reduces. The averages start at 0
    with no bias correction, as in the paper: a correction would cancel in ``m_main/mₖ``. An
    auxiliary task whose average is 0 (no gradient yet) keeps factor 1. Heads get their own
    task's plain gradient (weight 1).

    By default the whole shared block is one block, and the decision is linear in the task
    gradients: ``Decision(weights=1, shared_weights={main: 1, k: factorₖ})`` from the Gramian
    alone. The paper rescales per parameter tensor ("adaptively for each part of the
    network"); pass ``blocks`` (the sizes of the shared parameter tensors, in the Balancer's
    order, e.g. from :meth:`per_parameter`) for that; it then reads the gradients and returns
    the combined ``shared_grad``.

    Cost: one backward through the shared block per task. ``Need.GRAMIAN`` by default;
    ``Need.GRADS`` with ``blocks``; state T·(number of blocks) floats.

    Loss scaling (``scale_reaction``): with ``relax_factor=1`` and ``mode="both"`` every
    auxiliary contribution has norm ``m_main`` whatever its loss's scale, so multiplying one
    loss by ``c`` leaves the direction of the shared update unchanged (``"invariant"``); with
    ``relax_factor=0`` nothing is rescaled (``"independent"``); with ``0 < r < 1`` and
    ``"both"`` the magnitudes are partly re-balanced (``"adaptive"``); ``"reduce"`` and
    ``"enlarge"`` with ``r > 0`` give ``"none"``.

    Args:
        relax_factor: ``r`` in [0, 1]; 0.7 is the authors' default.
        beta: Moving-average coefficient in [0, 1); 0.9 is the authors' default.
        mode: ``"reduce"``, ``"enlarge"`` or ``"both"`` (the paper's strategies A, B, C).
        blocks: Sizes of consecutive blocks of the flattened shared parameters (summing to
            their number), each rescaled separately; ``None``: one block.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [0.0, 4.0]])  # ‖g_aux‖ = 4‖g_main‖
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = MetaBalance(relax_factor=0.5)
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'aux': 0.625}

    Reference:
        He, Feng, Cheng, Ji, Guo, Caverlee, "MetaBalance: Improving Multi-Task Recommendations
        via Adapting Gradient Magnitudes of Auxiliary Tasks", WWW 2022. Implemented from the
        paper (the authors' code is CC-BY-NC and was not used); the technique comes from
        MTAdam (Malkiel & Wolf).
    """

    needs = _GRAMIAN_ONLY

    def __init__(
        self,
        relax_factor: float = 0.7,
        beta: float = 0.9,
        mode: Literal["reduce", "enlarge", "both"] = "both",
        blocks: Sequence[int] | None = None,
    ) -> None:
        self.relax_factor = _check_fraction("relax_factor", relax_factor, closed_top=True)
        self.beta = _check_fraction("beta", beta, closed_top=False)
        if mode not in ("reduce", "enlarge", "both"):
            raise ValueError(f"mode must be 'reduce', 'enlarge' or 'both', got {mode!r}")
        self.mode = mode
        if blocks is not None:
            blocks = tuple(_check_positive_int("each block size", b) for b in blocks)
            if not blocks:
                raise ValueError("blocks must name at least one block (or be None)")
        self.blocks = blocks
        needs = frozenset({Need.LOSSES, Need.GRADS}) if blocks else _GRAMIAN_ONLY
        self.needs = needs  # type: ignore[misc]
        r = self.relax_factor
        if r == 0.0:
            reaction = "independent"
        elif mode != "both":
            reaction = "none"
        else:
            reaction = "invariant" if r == 1.0 else "adaptive"
        self.scale_reaction = reaction  # type: ignore[misc]

    @classmethod
    def per_parameter(cls, shared: torch.nn.Module, **kwargs: Any) -> MetaBalance:
        """MetaBalance per parameter tensor of ``shared`` (the module given to the Balancer)."""
        sizes = [p.numel() for p in shared.parameters() if p.requires_grad]
        return cls(blocks=sizes, **kwargs)

    def init(self, tasks: Sequence[str], main: str) -> MetaBalanceState:
        n = len(self.blocks) if self.blocks else 1
        return MetaBalanceState({t: torch.zeros(n, dtype=torch.float64) for t in tasks}, 0)

    def _factor(self, m_main: torch.Tensor, m_aux: torch.Tensor) -> torch.Tensor:
        r = self.relax_factor
        ratio = m_main / m_aux.clamp_min(torch.finfo(torch.float64).tiny)
        # No auxiliary gradient yet (or one so small that the ratio overflows): its
        # contribution is nil whatever the factor, so leave it at 1 rather than inf.
        ratio = torch.where((m_aux > 0) & torch.isfinite(ratio), ratio, 1.0)
        factor = r * ratio + (1.0 - r)
        if self.mode == "reduce":
            return factor.clamp_max(1.0)
        if self.mode == "enlarge":
            return factor.clamp_min(1.0)
        return factor

    def update(
        self, signals: Signals, state: MetaBalanceState
    ) -> tuple[Decision, MetaBalanceState]:
        tasks, main = signals.tasks, signals.main
        if self.blocks is None:
            norms = _norms(_gram(signals, self), self)
            current = {
                t: torch.tensor([n], dtype=torch.float64) for t, n in zip(tasks, norms, strict=True)
            }
        else:
            grads = signals.grads
            if grads is None:
                raise ValueError(
                    "MetaBalance with blocks reads the per-task gradients (Need.GRADS)"
                )
            if sum(self.blocks) != grads.shape[1]:
                raise ValueError(
                    f"MetaBalance: the blocks {list(self.blocks)} cover {sum(self.blocks)} values "
                    f"but the shared parameters have {grads.shape[1]}; pass the sizes of the "
                    "shared parameter tensors (MetaBalance.per_parameter(module))"
                )
            parts = torch.split(grads.detach().to(torch.float64), list(self.blocks), dim=1)
            per_block = torch.stack([p.norm(dim=1) for p in parts], dim=1).cpu()  # (T, B)
            if not torch.isfinite(per_block).all():
                _warn(self, "a gradient norm is not finite; that block is treated as zero")
                per_block = torch.nan_to_num(per_block, nan=0.0, posinf=0.0)
            current = {t: per_block[i] for i, t in enumerate(tasks)}
        b = self.beta
        ema = {t: b * state.norms[t] + (1.0 - b) * current[t] for t in tasks}
        factors = {t: self._factor(ema[main], ema[t]) for t in tasks if t != main}
        weights = dict.fromkeys(tasks, 1.0)
        new_state = MetaBalanceState(ema, state.updates + 1)
        if self.blocks is None:
            shared = {t: 1.0 if t == main else float(factors[t][0]) for t in tasks}
            return Decision(weights, shared_weights=shared), new_state
        assert signals.grads is not None
        g = signals.grads.detach()
        sizes = torch.tensor(self.blocks)
        out = g[tasks.index(main)].clone()
        for i, t in enumerate(tasks):
            if t != main:
                scale = torch.repeat_interleave(factors[t], sizes).to(
                    device=g.device, dtype=g.dtype
                )
                out = out + scale * g[i]
        return Decision(weights, shared_grad=out), new_state


# ------------------------------------------------------------------------- main-priority PCGrad


class PriorityPCGradState(NamedTuple):
    """State of :class:`PriorityPCGrad`.

    Attributes:
        weights: The resolved base weight of every task.
        rng: The state of the generator that orders the auxiliary-auxiliary projections
            (``torch.Generator.get_state()``); unused unless ``aux_conflicts``.
    """

    weights: dict[str, float]
    rng: torch.Tensor


@register("main-pcgrad")
class PriorityPCGrad(Strategy):
    """Project conflicting auxiliary gradients off the main one; never touch the main gradient.

    Rule: for each auxiliary task ``k`` with (base-weighted) gradient ``gₖ``, if
    ``gₖ·g_main < 0`` then ``gₖ ← gₖ − (gₖ·g_main / ‖g_main‖²)·g_main``; the shared parameters
    receive ``g_main + Σₖ gₖ``. Every projected auxiliary gradient then has a non-negative
    inner product with ``g_main``, so the update never opposes the main task to first order,
    and ``g_main`` itself is never changed. With ``aux_conflicts=True``, each auxiliary
    gradient is first projected, PCGrad-style, off each other auxiliary gradient it conflicts
    with (in an order drawn from ``seed``), then off the main one (last, so the guarantee
    holds). The result is a linear combination of the task gradients, computed from the
    Gramian: ``Decision(weights=b, shared_weights=c)``; heads get their own task's gradient
    times its base weight ``b``. A zero main gradient projects nothing.

    Cost: one backward through the shared block per task (``Need.GRAMIAN`` only); O(T²) (or
    O(T³) with ``aux_conflicts``) float operations.

    Loss scaling (``scale_reaction = "none"``): the projection of an auxiliary gradient does
    not depend on the main gradient's scale, and each task's projected contribution is
    multiplied by ``c`` when its loss is; the weights (heads) never change, but the shared
    coefficients and the direction of the shared update do.

    Args:
        weights: Base weights applied to the gradients before projection: ``{task: weight}``
            (tasks left out weigh 1.0), a number for every auxiliary task, or ``None``. Use
            this rather than chaining fixed weights: a projection is not linear in the weight.
        aux_conflicts: Also resolve conflicts between auxiliary gradients (default off).
        seed: Seed of the order of the auxiliary-auxiliary projections. The order is drawn
            over the task names sorted, so it does not depend on the order of the tasks.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # the auxiliary gradient conflicts
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = PriorityPCGrad()
        >>> c = s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        >>> c  # g_main + (g_aux + g_main) = 2·g_main + g_aux = [1, 1]
        {'main': 2.0, 'aux': 1.0}

    Reference:
        The main-priority PCGrad baseline of ForkMerge (Jiang et al., "ForkMerge:
        Mitigating Negative Transfer in Auxiliary-Task Learning", NeurIPS 2023; its
        ``PriPCGrad.py`` was compared), after PCGrad (Yu et al., "Gradient Surgery for
        Multi-Task Learning", NeurIPS 2020).
    """

    needs = _GRAMIAN_ONLY
    scale_reaction = "none"

    def __init__(
        self,
        weights: Mapping[str, float] | float | None = None,
        aux_conflicts: bool = False,
        seed: int = 0,
    ) -> None:
        self.weights = _check_weights_arg(weights, "base weight")
        self.aux_conflicts = bool(aux_conflicts)
        if isinstance(seed, bool) or int(seed) != seed:
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)

    def init(self, tasks: Sequence[str], main: str) -> PriorityPCGradState:
        weights = _resolve(self.weights, tasks, main, "base weights")
        return PriorityPCGradState(weights, torch.Generator().manual_seed(self.seed).get_state())

    def update(
        self, signals: Signals, state: PriorityPCGradState
    ) -> tuple[Decision, PriorityPCGradState]:
        tasks, main = signals.tasks, signals.main
        gram = _gram(signals, self)
        n = len(tasks)
        m = tasks.index(main)
        w = [state.weights[t] for t in tasks]
        # Row i of C expresses the modified gradient of task i in the original gradients:
        # ĝᵢ = Σⱼ C[i][j]·gⱼ, so every inner product follows from the Gramian.
        coef = [[w[i] if j == i else 0.0 for j in range(n)] for i in range(n)]

        def project_off(i: int, j: int) -> None:
            # Remove from ĝᵢ its component along the original gⱼ if they conflict. The
            # direction of gⱼ does not depend on its (positive) base weight.
            gjj = gram[j][j]
            if not (gjj > 0.0 and math.isfinite(gjj)):
                return
            dot = sum(coef[i][q] * gram[q][j] for q in range(n))
            step = dot / gjj
            if dot < 0.0 and math.isfinite(step):
                coef[i][j] -= step

        rng = state.rng
        aux = sorted(t for t in tasks if t != main)
        if self.aux_conflicts and len(aux) > 1:
            gen = torch.Generator()
            gen.set_state(state.rng)
            for name in aux:
                others = [o for o in aux if o != name]
                order = torch.randperm(len(others), generator=gen).tolist()
                for k in order:
                    j = tasks.index(others[k])
                    if w[j] > 0.0:
                        project_off(tasks.index(name), j)
            rng = gen.get_state()
        for name in aux:
            project_off(tasks.index(name), m)
        shared = {t: sum(coef[i][j] for i in range(n)) for j, t in enumerate(tasks)}
        weights = {t: state.weights[t] for t in tasks}
        return Decision(weights, shared_weights=shared), PriorityPCGradState(state.weights, rng)


# ------------------------------------------------------------------------------ relative weights


def relative_share(weight: float, norm_main: float, norm_aux: float) -> float:
    """The share of the main gradient that a fixed auxiliary ``weight`` amounts to.

    ``share = weight·‖g_aux‖ / ‖g_main‖``: the ratio ``‖w·g_aux‖ / ‖g_main‖`` on the shared
    parameters. State advice as a share and it means the same thing whatever the losses'
    scales; :class:`RelativeWeights` turns it back into a weight at every step.

    Args:
        weight: The fixed auxiliary weight (``>= 0``), relative to a main weight of 1.
        norm_main: ``‖g_main‖`` on the shared parameters (``> 0``), e.g. from
            ``StepRecord.grad_norms``.
        norm_aux: ``‖g_aux‖`` on the same parameters (``>= 0``).

    Raises:
        ValueError: For a negative or non-finite input, or a zero main gradient (a share of
            nothing is undefined).

    Example:
        >>> relative_share(0.2, norm_main=4.0, norm_aux=2.0)
        0.1
    """
    w = check_weight("aux", weight)
    for name, v in (("norm_main", norm_main), ("norm_aux", norm_aux)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite gradient norm >= 0, got {v!r}")
    if norm_main == 0:
        raise ValueError(
            "the main task's gradient norm is 0, so a share of it is undefined; measure it on "
            "a batch where the main loss has a gradient"
        )
    return w * float(norm_aux) / float(norm_main)


class RelativeWeightsState(NamedTuple):
    """State of :class:`RelativeWeights`.

    Attributes:
        norms: Per task, the (not bias-corrected) moving average of its gradient norm on the
            shared parameters; divide by ``1 − beta**measurements`` for the corrected average.
        measurements: Measurements taken so far.
        calls: Calls of ``update`` so far (measurements happen every ``every`` calls).
        weights: The weights in force.
    """

    norms: dict[str, float]
    measurements: int
    calls: int
    weights: dict[str, float]


@register("relative")
class RelativeWeights(Strategy):
    """Auxiliary weights stated as a share of the main gradient: ``{"aux": 0.2}`` means 20 %.

    Rule: with bias-corrected moving averages ``n̂ᵢ`` of the gradient norms ``‖gᵢ‖`` on the
    shared parameters (``nᵢ ← β·nᵢ + (1−β)·‖gᵢ‖``, ``n̂ᵢ = nᵢ/(1−βᵗ)``),
    ``w_main = 1`` and ``wₖ = shareₖ · n̂_main / n̂ₖ`` (capped at ``max_weight``), so that
    ``‖wₖ·gₖ‖ ≈ shareₖ·‖g_main‖``: exactly when the norms are steady or ``beta=0``. "0.2"
    then means the same thing whatever the scales of the losses, unlike a fixed weight 0.2.
    A task whose average norm is 0 (no gradient) gets weight 0, without any epsilon, so the
    statement holds at every scale of the losses. The weights apply to the whole loss, heads
    included (a plain weighted sum, one backward).

    Cost: one backward through the shared block per task for the measurement
    (``Need.GRAMIAN`` only: the norms are the square roots of its diagonal). To save it, pass
    ``every=k`` to the **Balancer**: it then measures every ``k`` steps and reuses the weights
    in between. This class's own ``every`` only decides which of the measurements it is given
    enter the average; it saves nothing, since the Balancer computes the gradients whenever
    it calls the strategy.

    Loss scaling (``scale_reaction = "inverse"``): multiplying an auxiliary loss by ``c``
    (from the start) divides its weight by ``c`` exactly at every step, whatever ``beta``, so
    ``wₖ·gₖ`` is unchanged. If the scale changes during training, the weight follows as the
    average forgets the old norms (at once with ``beta=0``). A ``max_weight`` cap can break
    this (``scale_reaction`` is then ``"none"``). Multiplying the *main* loss by ``c``
    multiplies every auxiliary weight by ``c``: the shares are of the main gradient.

    Args:
        shares: ``{aux_task: share >= 0}`` for every auxiliary task (the main task may appear
            with share 1), or one number for every auxiliary task.
        beta: Moving-average coefficient in [0, 1); 0 uses the current norms only.
        every: Take a measurement every ``every`` calls of ``update`` (``>= 1``); see Cost.
        max_weight: Optional cap on every auxiliary weight, against a vanishing auxiliary
            gradient (``None``: no cap).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[3.0, 4.0], [0.0, 100.0]])  # ‖g_main‖ = 5, ‖g_aux‖ = 100
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = RelativeWeights({"aux": 0.2})
        >>> s.update(sig, s.init(sig.tasks, "main"))[0]  # 0.01 · 100 = 0.2 · 5
        {'main': 1.0, 'aux': 0.01}

    Reference:
        auxlab's own formulation of the effective gradient ratio ``‖w·g_aux‖/‖g_main‖``
        (see the weighting reference notes); related to GradNorm (Chen et al., ICML 2018) and
        MetaBalance (He et al., WWW 2022), which balance magnitudes towards equality instead
        of a stated share.
    """

    needs = _GRAMIAN_ONLY

    def __init__(
        self,
        shares: Mapping[str, float] | float,
        beta: float = 0.9,
        every: int = 1,
        max_weight: float | None = None,
    ) -> None:
        if shares is None:
            raise TypeError("shares is required: e.g. RelativeWeights({'aux': 0.2})")
        self.shares = _check_weights_arg(shares, "share")
        self.beta = _check_fraction("beta", beta, closed_top=False)
        self.every = _check_positive_int("every", every)
        self.max_weight = _check_max_weight(max_weight)
        self.scale_reaction = "inverse" if self.max_weight is None else "none"  # type: ignore[misc]

    @classmethod
    def from_fixed(
        cls,
        weights: Mapping[str, float],
        grad_norms: Mapping[str, float],
        main: str = "main",
        **kwargs: Any,
    ) -> RelativeWeights:
        """The shares that fixed ``weights`` amounted to, given measured gradient norms.

        ``shareₖ = (wₖ/w_main)·‖gₖ‖/‖g_main‖`` (:func:`relative_share`). With the norms of one
        batch (``StepRecord.grad_norms``), the result first gives the same weights, then keeps
        the same *shares* as the losses' scales drift.

        Example:
            >>> s = RelativeWeights.from_fixed({"aux": 0.2}, {"main": 4.0, "aux": 2.0})
            >>> s.shares
            {'aux': 0.1}
        """
        w_main = check_weight(main, weights.get(main, 1.0))
        if w_main == 0:
            raise ValueError("the main task's weight is 0, so shares of it are undefined")
        missing = [t for t in [main, *weights] if t not in grad_norms]
        if missing:
            raise TaskMismatchError(
                f"grad_norms has no norm for {missing}; it has {sorted(grad_norms)}"
            )
        shares = {
            t: relative_share(check_weight(t, w) / w_main, grad_norms[main], grad_norms[t])
            for t, w in weights.items()
            if t != main
        }
        return cls(shares, **kwargs)

    def init(self, tasks: Sequence[str], main: str) -> RelativeWeightsState:
        shares = self._shares(tasks, main)
        zero = dict.fromkeys(tasks, 0.0)
        return RelativeWeightsState(zero, 0, 0, {t: 1.0 if t == main else 0.0 for t in shares})

    def _shares(self, tasks: Sequence[str], main: str) -> dict[str, float]:
        given = self.shares
        if isinstance(given, Mapping):
            if main in given and given[main] != 1.0:
                raise ValueError(
                    f"the main task '{main}' weighs 1 by definition (shares are of its "
                    f"gradient); got share {given[main]!r} for it"
                )
            unknown = [t for t in given if t not in tasks]
            missing = [t for t in tasks if t != main and t not in given]
            if unknown or missing:
                raise TaskMismatchError(
                    f"shares must name every auxiliary task of {list(tasks)} (main '{main}'). "
                    f"Missing: {missing}. Not a task: {unknown}."
                )
        return _resolve(given, tasks, main, "shares")

    def update(
        self, signals: Signals, state: RelativeWeightsState
    ) -> tuple[Weights, RelativeWeightsState]:
        if state.calls % self.every != 0:
            new = state._replace(calls=state.calls + 1)
            return dict(state.weights), new
        tasks, main = signals.tasks, signals.main
        shares = self._shares(tasks, main)
        norms = _norms(_gram(signals, self), self)
        b = self.beta
        ema = {t: b * state.norms[t] + (1.0 - b) * n for t, n in zip(tasks, norms, strict=True)}
        measurements = state.measurements + 1
        correction = 1.0 - b**measurements
        main_norm = ema[main] / correction
        weights = {}
        for t in tasks:
            if t == main:
                weights[t] = 1.0
                continue
            aux_norm = ema[t] / correction
            w = shares[t] * main_norm / aux_norm if aux_norm > 0.0 else 0.0
            if self.max_weight is not None:
                w = min(w, self.max_weight)
            if not math.isfinite(w):
                _warn(self, f"the weight of '{t}' overflows (its gradient is ~0); it is set to 0")
                w = 0.0
            weights[t] = w
        return dict(weights), RelativeWeightsState(ema, measurements, state.calls + 1, weights)
