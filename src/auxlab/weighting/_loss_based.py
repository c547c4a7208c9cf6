"""Loss-based weighting: strategies that read only the loss values (one backward each).

Every strategy here declares ``needs = {Need.LOSSES}``: it costs one backward pass of
``Σ wᵢ·Lᵢ`` (plus, for :class:`UncertaintyWeighting`, a regulariser) and ``O(T)`` memory for
``T`` tasks. The small computations run in float64 on the device of the losses (float32 on
devices without float64), and the weights come back as Python floats, except for
:class:`UncertaintyWeighting`, whose weights are learnable tensors.

Each class documents, in ``scale_reaction``, what happens to the weights when one task's
loss is multiplied by a constant ``c`` from the start of training (the conformance suite,
:func:`auxlab.checks.check_scale_reaction`, checks the claim):

* ``"invariant"``: the weights do not change;
* ``"inverse"``: that task's weight is divided by ``c``, the others do not change, so its
  weighted loss ``wᵢ·Lᵢ`` is unchanged;
* ``"independent"``: the weights do not depend on the losses;
* ``"adaptive"``: the weights adapt over training (learned), not at once;
* ``"none"``: none of the above holds exactly; the docstring says what happens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from auxlab.objective import check_same_tasks
from auxlab.weighting._base import Decision, Need, NoState, Signals, Strategy, Weights
from auxlab.weighting._registry import register

__all__ = [
    "FAMO",
    "STCH",
    "DynamicWeightAverage",
    "DynamicWeightAverageState",
    "FAMOState",
    "GeometricLossStrategy",
    "RandomLossWeighting",
    "RandomLossWeightingState",
    "STCHState",
    "ScaleInvariantWeighting",
    "UncertaintyWeighting",
    "UncertaintyWeightingState",
]

# Ratios above this saturate any softmax; the cap keeps inf (a loss rising from exactly 0)
# out of the softmax, where inf - inf would give NaN.
_MAX_RATIO = 1e12


# ---------------------------------------------------------------------------------------------
# Helpers shared by the strategies.


def _work_dtype(device: torch.device) -> torch.dtype:
    # Apple's MPS has no float64; everywhere else the T-sized arithmetic is done in float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _loss_vector(signals: Signals, tasks: Sequence[str]) -> torch.Tensor:
    """The detached losses in ``tasks`` order, as one vector on the losses' device."""
    check_same_tasks(tasks, signals.tasks, "the strategy's tasks (from init)", "the signals' tasks")
    first = signals.losses[tasks[0]]
    device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
    dtype = _work_dtype(device)
    return torch.stack(
        [torch.as_tensor(signals.losses[t]).detach().to(device=device, dtype=dtype) for t in tasks]
    ).reshape(len(tasks))


def _check_at_least(
    values: torch.Tensor, bound: torch.Tensor | float, tasks: Sequence[str], step: int, who: str
) -> None:
    """Raise if a loss is below its lower bound (log- and ratio-based rules need it)."""
    low = values < bound
    if bool(low.any()):
        i = int(low.nonzero()[0, 0])
        b = float(bound[i]) if isinstance(bound, torch.Tensor) else float(bound)
        raise ValueError(
            f"{who} needs every loss to be >= {b:g}, but the loss of task '{tasks[i]}' is "
            f"{float(values[i]):g} at step {step}. Shift that loss by a known lower bound so "
            "that it cannot go below it (for FAMO, pass that bound as min_loss)."
        )


def _as_weights(tasks: Sequence[str], order: Sequence[str], w: torch.Tensor) -> dict[str, float]:
    """``{task: float}`` in the signals' order from a vector in the state's order."""
    values = dict(zip(order, w.tolist(), strict=True))
    return {t: float(values[t]) for t in tasks}


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _per_task(
    given: float | Mapping[str, float], tasks: Sequence[str], default: float, what: str
) -> torch.Tensor:
    """A float64 vector in task order from a number or a ``{task: value}`` dict."""
    if isinstance(given, Mapping):
        unknown = [t for t in given if t not in tasks]
        if unknown:
            check_same_tasks(list(tasks), list(given), "the tasks", what)
        return torch.tensor([float(given.get(t, default)) for t in tasks], dtype=torch.float64)
    return torch.full((len(tasks),), float(given), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Uncertainty weighting.

_UW_FORMS = {
    # form: (factor on exp(-s) in the weight, factor on the regulariser)
    "standard": (1.0, 1.0),
    "regression": (0.5, 0.5),
    "classification": (1.0, 0.5),
}


class UncertaintyWeightingState(NamedTuple):
    """State of :class:`UncertaintyWeighting`.

    The learnable log-variances live in the strategy (``nn.Parameter`` objects that the
    optimizer updates), not here.

    Attributes:
        tasks: The tasks, in the order given to ``init``.
    """

    tasks: tuple[str, ...]


@register("uncertainty")
class UncertaintyWeighting(Strategy):
    r"""Learn each task's weight as a homoscedastic uncertainty (Kendall et al.).

    Each task has a learnable log-variance ``sᵢ = log σᵢ²`` and the objective is

    ``L = Σᵢ a·exp(−sᵢ)·Lᵢ + b·R(sᵢ)``,  with ``R(s) = s`` (``regulariser="log"``) or
    ``R(s) = log(1 + eˢ)`` (``regulariser="softplus"``),

    where ``(a, b)`` depend on ``form``: ``"standard"`` ``(1, 1)`` (the form most
    implementations use; at the optimum ``sᵢ = log Lᵢ`` so the weight is ``1/Lᵢ``),
    ``"regression"`` ``(½, ½)`` (the paper's Gaussian likelihood, as LibMTL and TorchJD;
    optimum weight ``1/(2Lᵢ)``) and ``"classification"`` ``(1, ½)`` (the paper's softmax
    approximation). ``update`` returns a :class:`~auxlab.weighting.Decision` whose weights are
    the tensors ``a·exp(−sᵢ)`` and whose ``extra_loss`` is ``Σᵢ b·R(sᵢ)``; the log-variances
    are learned by *your* optimizer, so pass :meth:`parameters` to it.

    The log-variances are created by ``init`` (when the tasks are known), or at once if you
    pass ``tasks``; create the optimizer after that, or add them later with
    ``optimizer.add_param_group({"params": strategy.parameters()})``. Calling ``init`` again
    keeps the log-variances already learned for those tasks; :meth:`clone` gives a strategy
    with new, independent ones. They live on the CPU; the weights are moved to the losses'
    device inside the graph, so gradients still reach them (move them yourself with
    ``p.data = p.data.to(device)`` before creating the optimizer if you prefer).

    **Negative total loss.** With ``regulariser="log"`` the objective is negative whenever
    some ``sᵢ < 0`` (a loss below 1 at the optimum): this is expected, not a bug.
    ``regulariser="softplus"`` (the positive regulariser ``log(1 + σ²)`` of Liebel & Körner,
    "Auxiliary Tasks in Multi-task Learning", arXiv 1805.06334, 2018) keeps the regulariser,
    hence the total, non-negative for non-negative losses.

    **Negative losses** (e.g. a Gaussian negative log-likelihood). For ``Lᵢ < 0`` the term
    ``a·exp(−sᵢ)·Lᵢ`` decreases without bound as ``sᵢ → −∞``: the gradient on ``sᵢ`` always
    pushes it down, the weight grows exponentially and training diverges. Neither
    regulariser stops it: the log one falls linearly too and the softplus one only tends to 0,
    while the loss term falls exponentially. Either shift the loss by a
    known lower bound so it stays ``>= 0``, or pass ``min_log_var``: ``sᵢ`` is clamped at that
    value in the forward pass, so the weight never exceeds ``a·exp(−min_log_var)`` and ``sᵢ``
    stops receiving gradient below it.

    Cost: one backward; ``T`` scalar parameters.

    Scale reaction (``"adaptive"``): multiplying a loss by ``c`` does not change this step's
    weights (they depend only on ``sᵢ``); the learned optimum ``sᵢ = log Lᵢ`` moves by
    ``log c``, so the weight adapts to ``1/c`` times its value over training.

    Args:
        form: ``"standard"``, ``"regression"`` or ``"classification"``, see above.
        regulariser: ``"log"`` (``R(s) = s``, the paper) or ``"softplus"``
            (``R(s) = log(1 + eˢ)``).
        init_log_var: Initial ``sᵢ`` for every task (``0`` gives weight ``a``); LibMTL
            uses ``-0.5``.
        min_log_var: Optional lower clamp on ``sᵢ`` (see negative losses), e.g. ``-5``
            caps the weight at ``a·e⁵ ≈ 148·a``.
        tasks: Optional task names, to create the log-variances now rather than in ``init``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> uw = UncertaintyWeighting()
        >>> state = uw.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(2.0), "aux": torch.tensor(0.5)}
        >>> decision, state = uw.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(float(w.detach()), 3) for t, w in decision.weights.items()}
        {'main': 1.0, 'aux': 1.0}
        >>> len(uw.parameters()), float(decision.extra_loss.detach())
        (2, 0.0)

    Reference: Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
    for Scene Geometry and Semantics", CVPR 2018. Compared against LibMTL ``UW.py`` and
    TorchJD ``scalarization/_uw.py`` (both the ``"regression"`` form).
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "adaptive"

    def __init__(
        self,
        form: Literal["standard", "regression", "classification"] = "standard",
        regulariser: Literal["log", "softplus"] = "log",
        init_log_var: float = 0.0,
        min_log_var: float | None = None,
        tasks: Sequence[str] | None = None,
    ) -> None:
        if form not in _UW_FORMS:
            raise ValueError(f"form must be one of {sorted(_UW_FORMS)}, got {form!r}")
        if regulariser not in ("log", "softplus"):
            raise ValueError(f"regulariser must be 'log' or 'softplus', got {regulariser!r}")
        if not math.isfinite(float(init_log_var)):
            raise ValueError(f"init_log_var must be finite, got {init_log_var!r}")
        if min_log_var is not None:
            if not math.isfinite(float(min_log_var)):
                raise ValueError(f"min_log_var must be finite or None, got {min_log_var!r}")
            if float(init_log_var) < float(min_log_var):
                raise ValueError(
                    f"init_log_var ({init_log_var}) is below min_log_var ({min_log_var}); the "
                    "clamp would stop it from ever being learned"
                )
        if tasks is not None and (isinstance(tasks, str) or len(set(tasks)) != len(tasks)):
            raise ValueError(f"tasks must be a list of distinct task names, got {tasks!r}")
        self.form = form
        self.regulariser = regulariser
        self.init_log_var = float(init_log_var)
        self.min_log_var = None if min_log_var is None else float(min_log_var)
        self.tasks = None if tasks is None else list(tasks)
        # The learnable log-variances, by task; created here or by init, never replaced, so
        # an optimizer that holds them keeps updating the ones the weights are computed from.
        self._log_vars: dict[str, nn.Parameter] = {}
        if self.tasks is not None:
            self._create(self.tasks)

    def _create(self, tasks: Sequence[str]) -> None:
        for t in tasks:
            if t not in self._log_vars:
                self._log_vars[t] = nn.Parameter(torch.tensor(self.init_log_var))

    def init(self, tasks: Sequence[str], main: str) -> UncertaintyWeightingState:
        """Create the log-variances of tasks that have none yet; return the state."""
        if self.tasks is not None:
            check_same_tasks(self.tasks, tasks, "the tasks given to UncertaintyWeighting", "tasks")
        self._create(tasks)
        return UncertaintyWeightingState(tuple(tasks))

    def update(
        self, signals: Signals, state: UncertaintyWeightingState
    ) -> tuple[Decision, UncertaintyWeightingState]:
        """Return the weights ``a·exp(−sᵢ)`` and the regulariser as ``extra_loss``."""
        check_same_tasks(state.tasks, signals.tasks, "the tasks from init", "the signals' tasks")
        missing = [t for t in signals.tasks if t not in self._log_vars]
        if missing:
            raise ValueError(f"no log-variance for tasks {missing}: call init(tasks, main) first")
        first = signals.losses[signals.tasks[0]]
        device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
        a, b = _UW_FORMS[self.form]
        weights: dict[str, float | torch.Tensor] = {}
        reg: torch.Tensor | None = None
        for t in signals.tasks:
            s: torch.Tensor = self._log_vars[t]
            if self.min_log_var is not None:
                s = s.clamp(min=self.min_log_var)
            weights[t] = (a * torch.exp(-s)).to(device)
            r = s if self.regulariser == "log" else nn.functional.softplus(s)
            reg = r if reg is None else reg + r
        assert reg is not None
        return Decision(weights=weights, extra_loss=(b * reg).to(device)), state

    def parameters(self) -> list[nn.Parameter]:
        """The log-variances ``sᵢ`` (one scalar per task), for the optimizer."""
        return list(self._log_vars.values())

    def log_variances(self) -> dict[str, float]:
        """The current ``sᵢ = log σᵢ²`` by task (for logging)."""
        return {t: float(p.detach()) for t, p in self._log_vars.items()}


# ---------------------------------------------------------------------------------------------
# Dynamic weight average.


class DynamicWeightAverageState(NamedTuple):
    """State of :class:`DynamicWeightAverage`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        window_sum: ``(T,)`` sum of the losses seen in the current (incomplete) window.
        window_count: Number of updates in the current window, ``0 .. period-1``.
        means: ``(2, T)`` mean losses of the last two complete windows, older first.
        num_windows: Number of complete windows so far.
    """

    tasks: tuple[str, ...]
    window_sum: torch.Tensor
    window_count: int
    means: torch.Tensor
    num_windows: int


@register("dwa")
class DynamicWeightAverage(Strategy):
    """Weigh each task by how slowly its loss has been falling (DWA, Liu et al.).

    Rule: ``wᵢ = T · softmax(rᵢ / temperature)``, ``rᵢ = L̄ᵢ(k−1) / L̄ᵢ(k−2)``, where
    ``L̄ᵢ(k)`` is task ``i``'s mean loss over window ``k`` of ``period`` updates. A task whose
    loss fell less than the others' gets more weight; the weights sum to ``T``. Until two
    windows are complete every weight is 1. The weights change when a window completes
    (the update that completes it already uses it) and are constant within a window.

    The paper averages over epochs; a strategy sees steps, not epochs, so the window is
    ``period`` updates (calls to ``update``; with ``Balancer(every=k)`` that is ``k·period``
    steps). Set ``period`` to the number of batches per epoch to follow the paper.

    Cost: one backward; ``O(T)`` memory.

    Scale reaction (``"invariant"``): multiplying a loss by ``c`` leaves every ratio, hence
    every weight, unchanged.

    Args:
        temperature: Softmax temperature ``> 0``; the paper uses 2. Larger is closer to equal
            weights.
        period: Window length in updates, ``>= 1``.

    Raises:
        ValueError: From ``update``, if a loss is negative (the ratio is then meaningless).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> dwa = DynamicWeightAverage(period=1)
        >>> state = dwa.init(["main", "aux"], "main")
        >>> for step, (m, a) in enumerate([(1.0, 1.0), (0.5, 1.0)]):
        ...     losses = {"main": torch.tensor(m), "aux": torch.tensor(a)}
        ...     w, state = dwa.update(Signals(step, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.8756, 'aux': 1.1244}

    Reference: Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR
    2019. Compared against LibMTL ``DWA.py`` (epoch windows, temperature 2).
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(self, temperature: float = 2.0, period: int = 100) -> None:
        self.temperature = _positive("temperature", temperature)
        self.period = _positive_int("period", period)

    def init(self, tasks: Sequence[str], main: str) -> DynamicWeightAverageState:
        """Empty windows; equal weights until two windows are complete."""
        t = len(tasks)
        return DynamicWeightAverageState(
            tuple(tasks),
            torch.zeros(t, dtype=torch.float64),
            0,
            torch.ones(2, t, dtype=torch.float64),
            0,
        )

    def update(
        self, signals: Signals, state: DynamicWeightAverageState
    ) -> tuple[Weights, DynamicWeightAverageState]:
        """Add this step's losses to the window; return the weights."""
        losses = _loss_vector(signals, state.tasks)
        _check_at_least(losses, 0.0, state.tasks, signals.step, "DynamicWeightAverage")
        window_sum = state.window_sum.to(losses) + losses
        count = state.window_count + 1
        means = state.means.to(losses)
        num = state.num_windows
        if count == self.period:
            means = torch.stack([means[1], window_sum / self.period])
            window_sum = torch.zeros_like(window_sum)
            count = 0
            num += 1
        new_state = DynamicWeightAverageState(state.tasks, window_sum, count, means, num)
        if num < 2:
            return dict.fromkeys(signals.tasks, 1.0), new_state
        older, newer = means[0], means[1]
        # 0/0 (a loss that stayed exactly 0) counts as "no change"; x/0 as a large ratio.
        ratio = torch.where(
            older > 0,
            newer / older.clamp_min(torch.finfo(older.dtype).tiny),
            torch.where(newer > 0, _MAX_RATIO, 1.0),
        ).clamp(max=_MAX_RATIO)
        w = len(state.tasks) * torch.softmax(ratio / self.temperature, dim=0)
        return _as_weights(signals.tasks, state.tasks, w), new_state


# ---------------------------------------------------------------------------------------------
# Random loss weighting.


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


# ---------------------------------------------------------------------------------------------
# Geometric mean and sum of logs.


@register("gls")
class GeometricLossStrategy(Strategy):
    """Minimise the geometric mean of the losses (GLS, Chennupati et al.).

    Objective: ``(Πⱼ Lⱼ)^(1/T)``. Its gradient is ``Σᵢ wᵢ ∇Lᵢ`` with

    ``wᵢ = (Πⱼ Dⱼ)^(1/T) / (T · Dᵢ)``,  ``Dᵢ = Lᵢ + eps``,

    computed in log space (``exp(mean(log D) − log Dᵢ) / T``) so that it stays finite for
    losses from 1e-10 to 1e15. Every task contributes the same ``wᵢ·Lᵢ`` (the geometric mean
    over ``T``), so a task's weight is inversely proportional to its loss.

    Cost: one backward; no memory.

    Scale reaction (``"none"``): multiplying task ``k``'s loss by ``c`` divides its weight
    *relative to the others* by ``c`` (``wᵢ·Lᵢ`` stays equal across tasks), but the geometric
    mean itself grows by ``c^(1/T)``, so every weight is also multiplied by ``c^(1/T)``:
    ``wₖ → c^(1/T − 1)·wₖ`` and ``wⱼ → c^(1/T)·wⱼ``. That is "inverse up to a common factor",
    not the exact ``"inverse"`` contract.

    Args:
        eps: Added to every loss, ``> 0``, so that a zero loss gives a finite weight.

    Raises:
        ValueError: From ``update``, if a loss is negative (the geometric mean is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> gls = GeometricLossStrategy()
        >>> losses = {"main": torch.tensor(4.0), "aux": torch.tensor(1.0)}
        >>> state = gls.init(["main", "aux"], "main")
        >>> w, _ = gls.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 6) for t, v in w.items()}
        {'main': 0.25, 'aux': 1.0}

    Reference: Chennupati, Sistu, Yogamani, Rawashdeh, "MultiNet++: Multi-Stream Feature
    Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019.
    Compared against LibMTL ``GLS.py``.
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        """No state."""
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        """The gradient weights of the geometric mean at these losses."""
        tasks = signals.tasks
        losses = _loss_vector(signals, tasks)
        _check_at_least(losses, 0.0, tasks, signals.step, "GeometricLossStrategy")
        log_d = torch.log(losses + self.eps)
        w = torch.exp(log_d.mean() - log_d) / len(tasks)
        return _as_weights(tasks, tasks, w), state


@register("scale-invariant")
class ScaleInvariantWeighting(Strategy):
    """Minimise the sum of the log-losses: every loss counts relative to its own size.

    Objective: ``Σᵢ log(Lᵢ + eps)``; its gradient is ``Σᵢ wᵢ ∇Lᵢ`` with
    ``wᵢ = 1 / (Lᵢ + eps)``. Each task's update is its *relative* loss decrease, whatever its
    units, so a loss 1000 times larger does not dominate.

    Cost: one backward; no memory.

    Scale reaction (``"inverse"``): multiplying task ``k``'s loss by ``c`` divides its weight
    by ``c`` (for losses well above ``eps``) and leaves the others unchanged; ``wₖ·Lₖ`` is
    invariant.

    Args:
        eps: Added to every loss, ``> 0``; losses much smaller than ``eps`` get weight about
            ``1/eps`` instead of ``1/L``.

    Raises:
        ValueError: From ``update``, if a loss is negative (its log is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> si = ScaleInvariantWeighting()
        >>> losses = {"main": torch.tensor(4.0), "aux": torch.tensor(0.5)}
        >>> state = si.init(["main", "aux"], "main")
        >>> w, _ = si.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 6) for t, v in w.items()}
        {'main': 0.25, 'aux': 2.0}

    Reference: the log-scalarisation baseline ("scale-invariant linear scalarization") of
    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022 (its code,
    ``AvivNavon/nash-mtl``, ``ScaleInvariantLinearScalarization``); also the warm-up rule of
    STCH's code and the log-losses of DB-MTL (Lin et al., arXiv 2308.12029).
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "inverse"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        """No state."""
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        """Weights ``1 / (Lᵢ + eps)``."""
        tasks = signals.tasks
        losses = _loss_vector(signals, tasks)
        _check_at_least(losses, 0.0, tasks, signals.step, "ScaleInvariantWeighting")
        return _as_weights(tasks, tasks, 1.0 / (losses + self.eps)), state


# ---------------------------------------------------------------------------------------------
# FAMO.


class FAMOState(NamedTuple):
    """State of :class:`FAMO`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        min_loss: ``(T,)`` the lower bounds ``bᵢ``.
        logits: ``(T,)`` the task logits ``ξ``; the weights' simplex part is ``softmax(ξ)``.
        exp_avg: ``(T,)`` Adam's first moment of the logits' gradient.
        exp_avg_sq: ``(T,)`` Adam's second moment.
        adam_step: Number of Adam steps taken on the logits.
        prev_log_loss: ``(T,)`` ``log(Lᵢ − bᵢ + eps)`` at the previous update.
        num_updates: Number of updates so far (the first has no previous loss).
    """

    tasks: tuple[str, ...]
    min_loss: torch.Tensor
    logits: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    adam_step: int
    prev_log_loss: torch.Tensor
    num_updates: int


@register("famo")
class FAMO(Strategy):
    """Fast adaptive multitask optimisation: balance the rates at which the log-losses fall.

    With ``z = softmax(ξ)`` and ``Dᵢ = Lᵢ − bᵢ + eps``, the update direction is that of
    ``Σᵢ zᵢ log Dᵢ`` scaled by ``c = (Σⱼ zⱼ/Dⱼ)⁻¹``, i.e. the weights on the raw losses are

    ``wᵢ = c · zᵢ / Dᵢ``  (they sum to 1).

    The logits learn from how much each log-loss fell: with
    ``δᵢ = log Dᵢ(t−1) − log Dᵢ(t)``, ``ξ`` takes one Adam step on the gradient
    ``J_softmax(ξ)ᵀ δ + γ ξ`` (Adam with coupled weight decay ``γ``, learning rate ``lr``),
    which lowers the weight of the tasks that improved most. ``update`` does this step
    first, then returns the weights for this step.

    Deviation from the paper and its code: they measure ``δ`` on the *same batch* before and
    after the model step, which costs a second forward pass after ``optimizer.step()``; a
    strategy only sees the losses the Balancer gives it, so here ``δ`` is the change between
    consecutive updates (different batches). It is noisier, but costs nothing extra. The
    official code also clips the model's gradient norm (``max_norm=1``); do that in your loop
    if you want it.

    Cost: one backward (no extra forward); ``O(T)`` memory.

    Scale reaction (``"none"``): ``δ``, hence ``z``, is unchanged when a loss is multiplied by
    ``c`` (with ``min_loss`` scaled alike), so the direction ``Σ zᵢ ∇log Lᵢ`` is scale
    invariant; on the raw losses this means task ``k``'s weight falls by ``c`` *relative to
    the others*, and the normalisation ``c`` (weights summing to 1) then changes every weight.
    That is "inverse up to a common factor", not the exact ``"inverse"`` contract.

    Args:
        lr: Adam learning rate of the logits, ``> 0`` (the official code's ``w_lr``).
        gamma: Weight decay (regularisation) of the logits, ``>= 0`` (the paper's ``γ``).
        min_loss: Lower bound ``bᵢ`` of each loss: a number for all tasks or ``{task: b}``
            (missing tasks 0). A loss below its bound raises an error.
        eps: Added to ``Lᵢ − bᵢ`` before the log, ``> 0``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> famo = FAMO()
        >>> state = famo.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(3.0), "aux": torch.tensor(1.0)}
        >>> w, state = famo.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.25, 'aux': 0.75}

    Reference: Liu, Feng, Stone, Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS
    2023. Compared against ``Cranial-XIX/FAMO`` ``famo.py`` and TorchJD
    ``scalarization/_famo.py``.
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "none"

    _BETAS = (0.9, 0.999)
    _ADAM_EPS = 1e-8

    def __init__(
        self,
        lr: float = 0.025,
        gamma: float = 0.01,
        min_loss: float | Mapping[str, float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.lr = _positive("lr", lr)
        if not math.isfinite(float(gamma)) or gamma < 0:
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        values = min_loss.values() if isinstance(min_loss, Mapping) else [min_loss]
        for v in values:
            if not math.isfinite(float(v)):
                raise ValueError(f"min_loss must be finite, got {min_loss!r}")
        self.min_loss = dict(min_loss) if isinstance(min_loss, Mapping) else float(min_loss)
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> FAMOState:
        """Equal logits, zero Adam moments, no previous loss."""
        t = len(tasks)
        zeros = torch.zeros(t, dtype=torch.float64)
        return FAMOState(
            tuple(tasks),
            _per_task(self.min_loss, tasks, 0.0, "the tasks of min_loss"),
            zeros,
            zeros,
            zeros,
            0,
            zeros,
            0,
        )

    def update(self, signals: Signals, state: FAMOState) -> tuple[Weights, FAMOState]:
        """Step the logits on the last change of the log-losses; return this step's weights."""
        losses = _loss_vector(signals, state.tasks)
        bound = state.min_loss.to(losses)
        _check_at_least(losses, bound, state.tasks, signals.step, "FAMO")
        log_d = torch.log(losses - bound + self.eps)
        logits = state.logits.to(losses)
        m, v, k = state.exp_avg.to(losses), state.exp_avg_sq.to(losses), state.adam_step
        if state.num_updates > 0:
            delta = state.prev_log_loss.to(losses) - log_d
            z = torch.softmax(logits, dim=0)
            # Vector-Jacobian product of the softmax: Jᵀδ = z ⊙ (δ − zᵀδ).
            grad = z * (delta - (z * delta).sum()) + self.gamma * logits
            b1, b2 = self._BETAS
            k += 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            m_hat = m / (1 - b1**k)
            v_hat = v / (1 - b2**k)
            logits = logits - self.lr * m_hat / (v_hat.sqrt() + self._ADAM_EPS)
        z = torch.softmax(logits, dim=0)
        # Divide by the largest z/D before normalising so that 1/D cannot overflow.
        ratio = torch.exp(torch.log(z) - log_d - (torch.log(z) - log_d).max())
        w = ratio / ratio.sum()
        new_state = FAMOState(
            state.tasks, state.min_loss, logits, m, v, k, log_d, state.num_updates + 1
        )
        return _as_weights(signals.tasks, state.tasks, w), new_state


# ---------------------------------------------------------------------------------------------
# Smooth Tchebycheff.


class STCHState(NamedTuple):
    """State of :class:`STCH`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        preference: ``(T,)`` the preference ``pᵢ``.
        loss_sum: ``(T,)`` sum of the losses seen during the warm-up.
        warmup_seen: Number of warm-up updates so far (``warmup_steps`` once it is over).
    """

    tasks: tuple[str, ...]
    preference: torch.Tensor
    loss_sum: torch.Tensor
    warmup_seen: int


@register("stch")
class STCH(Strategy):
    """Smooth Tchebycheff scalarisation of the normalised log-losses (Lin et al.).

    After a warm-up, the objective is the smooth maximum

    ``T · μ · log Σᵢ exp(pᵢ·zᵢ / μ)``,  ``zᵢ = log(Dᵢ / nᵢ)``, ``Dᵢ = Lᵢ + eps``,

    whose gradient weights are ``wᵢ = T · softmax(p⊙z/μ)ᵢ · pᵢ / Dᵢ``: the task furthest
    above its reference point (in log scale, times its preference) gets most of the weight;
    ``μ → 0`` approaches the (non-smooth) Tchebycheff maximum and a large ``μ`` approaches the
    sum of the log-losses. ``nᵢ`` is the mean loss of task ``i`` over the ``warmup_steps``
    warm-up updates (the "nadir" point of the official code), held fixed afterwards. During
    the warm-up the objective is ``Σᵢ log Dᵢ``, i.e. ``wᵢ = 1/Dᵢ``.

    Choices, as in the official multi-task code (used by LibMTL ``STCH.py``): the values
    scalarised are the log-losses normalised by the nadir (not the raw ``Lᵢ − zᵢ*`` of the
    paper's general formulation, which would make the rule depend on each loss's units); the
    nadir is averaged over the warm-up (the code averages over the last warm-up epoch; here
    over all ``warmup_steps`` updates); the factor ``T`` keeps ``Σ wᵢ·Lᵢ ≈ T`` (with unit
    preferences), as in the code.
    ``preference`` is the paper's ``λ`` (default 1 for every task, as the code).

    Cost: one backward; ``O(T)`` memory.

    Scale reaction (``"inverse"``): multiplying task ``k``'s loss by ``c`` from the start
    multiplies its nadir by ``c`` too, so every ``zᵢ`` and the softmax are unchanged, and
    ``wₖ`` is divided by ``c`` (the others unchanged); the warm-up weights ``1/Dᵢ`` react the
    same way. (Scaling a loss only after the warm-up shifts its ``zₖ`` by ``log c``.)

    Args:
        mu: Smoothing ``μ > 0`` (LibMTL's default 1; the paper tries 0.01 to 1).
        warmup_steps: Number of warm-up updates used to estimate the nadir, ``>= 1``.
        preference: Optional ``{task: pᵢ > 0}``; missing tasks get 1.
        eps: Added to every loss, ``> 0``.

    Raises:
        ValueError: From ``update``, if a loss is negative (its log is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> stch = STCH(warmup_steps=1)
        >>> state = stch.init(["main", "aux"], "main")
        >>> for step, (m, a) in enumerate([(2.0, 1.0), (2.0, 0.5)]):
        ...     losses = {"main": torch.tensor(m), "aux": torch.tensor(a)}
        ...     w, state = stch.update(Signals(step, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.6667, 'aux': 1.3333}

    Reference: Lin et al., "Smooth Tchebycheff Scalarization for Multi-Objective
    Optimization", ICML 2024 (official code ``Xi-L/STCH``, ``STCH_MTL``). Compared against
    LibMTL ``STCH.py`` and TorchJD ``scalarization/_stch.py``.
    """

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "inverse"

    def __init__(
        self,
        mu: float = 1.0,
        warmup_steps: int = 100,
        preference: Mapping[str, float] | None = None,
        eps: float = 1e-8,
    ) -> None:
        self.mu = _positive("mu", mu)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        if preference is not None:
            if not isinstance(preference, Mapping):
                raise TypeError("preference must be a dict {task: weight > 0} or None")
            for t, p in preference.items():
                _positive(f"the preference of task '{t}'", p)
            preference = dict(preference)
        self.preference = preference
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> STCHState:
        """Start the warm-up."""
        pref = _per_task(self.preference or {}, tasks, 1.0, "the tasks of preference")
        zeros = torch.zeros(len(tasks), dtype=torch.float64)
        return STCHState(tuple(tasks), pref, zeros, 0)

    def update(self, signals: Signals, state: STCHState) -> tuple[Weights, STCHState]:
        """Warm-up: weights ``1/Dᵢ`` and accumulate the nadir; then the STCH weights."""
        losses = _loss_vector(signals, state.tasks)
        _check_at_least(losses, 0.0, state.tasks, signals.step, "STCH")
        d = losses + self.eps
        loss_sum = state.loss_sum.to(losses)
        if state.warmup_seen < self.warmup_steps:
            new_state = STCHState(
                state.tasks, state.preference, loss_sum + losses, state.warmup_seen + 1
            )
            return _as_weights(signals.tasks, state.tasks, 1.0 / d), new_state
        nadir = loss_sum / self.warmup_steps
        pref = state.preference.to(losses)
        z = torch.log(d) - torch.log(nadir + self.eps)
        soft = torch.softmax(pref * z / self.mu, dim=0)
        w = len(state.tasks) * soft * pref / d
        return _as_weights(signals.tasks, state.tasks, w), state._replace(loss_sum=loss_sum)
