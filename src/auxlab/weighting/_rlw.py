"""Draw fresh random weights at every step (RLW, Lin et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._loss_common import _positive
from auxlab.weighting._registry import register

__all__ = ["RandomLossWeighting", "RandomLossWeightingState"]


class RandomLossWeightingState(NamedTuple):
    """State of :class:`RandomLossWeighting`.

    Attributes:
        tasks: The tasks.
        rng_state: The state of the CPU ``torch.Generator`` the draws come from
            (``Generator.get_state()``), so a copy of the state replays the same weights.
    """

    tasks: tuple[str, ...]
    rng_state: torch.Tensor


@register("rlw")
class RandomLossWeighting(Strategy):
    """Draw fresh random weights at every step (RLW, Lin et al.).

    Rule: ``w = softmax(z)`` with ``zᵢ ~ N(0, 1)`` independently at every update
    (``distribution="normal"``, the paper's main choice and LibMTL's), or
    ``w ~ Dirichlet(concentration·1)`` (``distribution="dirichlet"``). The weights sum to 1,
    as in the paper (so their mean is ``1/T``, not 1 as for ``EqualWeighting``).

    The draws are made in the sorted order of the task names, so a task gets the same weight
    whatever order the tasks are listed in. Identical tasks do not get identical weights:
    the strategy is ``randomized``.

    Cost: one backward; the generator state (about 5 KB).

    Scale reaction (``"independent"``): the weights do not depend on the losses.

    Args:
        distribution: ``"normal"`` or ``"dirichlet"``.
        concentration: Dirichlet concentration ``> 0`` (1 is uniform on the simplex); unused
            for ``"normal"``.
        seed: Seed of the generator; the same seed gives the same sequence of weights.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> rlw = RandomLossWeighting(seed=0)
        >>> state = rlw.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> w, state = rlw.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> round(sum(w.values()), 6)
        1.0

    Reference: Lin et al., "Reasonable Effectiveness of Random Weighting:
    A Litmus Test for Multi-Task Learning", TMLR 2022. Compared against LibMTL ``RLW.py``.
    """

    family = "loss-based"
    paper = "Lin et al., TMLR 2022"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "independent"
    #: Tells the conformance suite to skip the permutation and identical-task checks.
    randomized: ClassVar[bool] = True

    def __init__(
        self,
        distribution: Literal["normal", "dirichlet"] = "normal",
        concentration: float = 1.0,
        seed: int = 0,
    ) -> None:
        if distribution not in ("normal", "dirichlet"):
            raise ValueError(f"distribution must be 'normal' or 'dirichlet', got {distribution!r}")
        if isinstance(seed, bool) or int(seed) != seed:
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.distribution = distribution
        self.concentration = _positive("concentration", concentration)
        self.seed = int(seed)

    def init(self, tasks: Sequence[str], main: str) -> RandomLossWeightingState:
        """A generator seeded with ``seed``."""
        g = torch.Generator()
        g.manual_seed(self.seed)
        return RandomLossWeightingState(tuple(tasks), g.get_state())

    def update(
        self, signals: Signals, state: RandomLossWeightingState
    ) -> tuple[Weights, RandomLossWeightingState]:
        """Draw this step's weights."""
        check_same_tasks(state.tasks, signals.tasks, "the tasks from init", "the signals' tasks")
        g = torch.Generator()
        g.set_state(state.rng_state)
        order = sorted(state.tasks)
        if self.distribution == "normal":
            w = torch.softmax(torch.randn(len(order), generator=g, dtype=torch.float64), dim=0)
            values = w.tolist()
        else:
            # torch's Dirichlet sampler takes no generator; seed numpy's from ours instead, so
            # the torch generator state remains the only randomness to carry.
            sub_seed = int(torch.randint(0, 2**62, (1,), generator=g))
            draw = np.random.default_rng(sub_seed).dirichlet(
                np.full(len(order), self.concentration)
            )
            values = [float(v) for v in draw]
        by_task = dict(zip(order, values, strict=True))
        weights = {t: float(by_task[t]) for t in signals.tasks}
        return weights, RandomLossWeightingState(state.tasks, g.get_state())
