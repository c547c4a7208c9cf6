"""Project conflicting auxiliary gradients off the main one; never touch the main gradient."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Decision, Signals, Strategy
from auxlab.weighting._main_first_common import _GRAMIAN_ONLY, _check_weights_arg, _gram, _resolve
from auxlab.weighting._registry import register

__all__ = ["PriorityPCGrad", "PriorityPCGradState"]


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

    family = "main-first"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "Jiang et al., NeurIPS 2023"

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
