"""Probes: what a weight does to training, measured from per-task gradients and records.

Each probe has the verbs ``update / compute / reset`` (as torchmetrics' metrics do) over a
functional core that turns one :class:`Observation` into named values:

* ``update(obs)`` reads one observation, accumulates it, and returns that observation's
  values (the row recorded into the History at that step);
* ``compute()`` returns the aggregate since the last ``reset()`` (means over the observed
  steps; for :class:`Alignment`, also the fraction of steps in conflict);
* ``reset()`` starts a new aggregate (the :class:`~auxlab.diagnostics.Diagnostics` resets
  at the end of each epoch, so epoch records hold epoch means).

Keys are ``"<quantity>/<task>"`` (``"cos/aux"``) or ``"flow/<task>/<layer>"``, never
starting with ``loss_`` or ``weight_``, so they do not mix with the History's own keys.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from auxlab.objective import HIGHER_IS_BETTER

__all__ = [
    "Alignment",
    "Generalisation",
    "GradientFlow",
    "Influence",
    "Observation",
    "Probe",
    "WeightTrace",
    "alignment_values",
    "flow_values",
    "gap_values",
    "influence_values",
]


@dataclass
class Observation:
    """What the probes read at one step.

    Gradient fields are ``None`` on steps where no gradients were captured (only
    :class:`WeightTrace` reads those steps).

    Attributes:
        step: The step counter, from 0.
        tasks: Task names, the order of ``gram``'s rows.
        main: The main task.
        weights: The weight applied to each task's loss at this step.
        shared_weights: The coefficients applied to the per-task gradients on the shared
            block, when the strategy set them apart from ``weights`` (else ``None``).
        layer_sq: ``{task: {layer: ‖∂L_task/∂θ_layer‖²}}``, unweighted.
        shared_layers: Layers whose parameters all belong to the shared block (their
            weighted gradient uses ``shared_weights`` when those are set).
        gram: ``(T, T)`` Gramian of the unweighted per-task gradients on the shared
            parameters, in float64.
        lr: Learning rate for the first-order change of the main loss (1.0: per unit of
            learning rate).
    """

    step: int
    tasks: tuple[str, ...]
    main: str
    weights: Mapping[str, float]
    shared_weights: Mapping[str, float] | None = None
    layer_sq: Mapping[str, Mapping[str, float]] | None = None
    shared_layers: frozenset[str] = frozenset()
    gram: torch.Tensor | None = None
    lr: float = 1.0

    @property
    def aux(self) -> tuple[str, ...]:
        """The auxiliary tasks, in order."""
        return tuple(t for t in self.tasks if t != self.main)

    def shared_coef(self, task: str) -> float:
        """The coefficient of ``task``'s gradient on the shared block."""
        if self.shared_weights is not None:
            return float(self.shared_weights[task])
        return float(self.weights[task])


# ---------------------------------------------------------------------------------------------
# Functional core: one observation -> named values.


def flow_values(obs: Observation) -> dict[str, float]:
    """Norm of each task's *weighted* gradient reaching each layer: ``flow/<task>/<layer>``.

    ``|cₜ|·‖∂Lₜ/∂θ_layer‖`` with ``cₜ`` the task's weight, or its shared coefficient for a
    layer of the shared block when the strategy set one.
    """
    if obs.layer_sq is None:
        return {}
    out: dict[str, float] = {}
    for t in obs.tasks:
        for layer, sq in obs.layer_sq[t].items():
            c = obs.shared_coef(t) if layer in obs.shared_layers else float(obs.weights[t])
            out[f"flow/{t}/{layer}"] = abs(c) * math.sqrt(max(sq, 0.0))
    return out


def _norms(gram: torch.Tensor) -> list[float]:
    return [math.sqrt(max(float(gram[i, i]), 0.0)) for i in range(gram.shape[0])]


def alignment_values(obs: Observation) -> dict[str, float]:
    """Cosine between the main and each auxiliary gradient on the shared parameters.

    ``cos/<aux>`` (NaN when either gradient is zero) and ``conflict/<aux>``: 1.0 when the
    cosine is negative, else 0.0 (its mean over steps is the fraction of steps in conflict).
    """
    if obs.gram is None:
        return {}
    g, norms = obs.gram, _norms(obs.gram)
    i = obs.tasks.index(obs.main)
    out: dict[str, float] = {}
    for k, t in enumerate(obs.tasks):
        if t == obs.main:
            continue
        denom = norms[i] * norms[k]
        cos = float(g[i, k]) / denom if denom > 0 else math.nan
        out[f"cos/{t}"] = cos
        out[f"conflict/{t}"] = math.nan if math.isnan(cos) else float(cos < 0)
    return out


def influence_values(obs: Observation) -> dict[str, float]:
    """How much each task moves the shared parameters, and what the auxiliary step does.

    With ``gₜ`` the unweighted gradients on the shared parameters, ``cₜ`` their
    coefficients and ``u = Σ cₜ·gₜ`` the shared update direction:

    * ``norm/<task>`` = ``‖gₜ‖`` (unweighted; with the weight, gives a ``RelativeWeights``
      share via :func:`~auxlab.weighting.relative_share`);
    * ``ratio/<aux>`` = ``‖c_aux·g_aux‖ / ‖c_main·g_main‖``, the effective gradient ratio;
    * ``share/<task>`` = ``cₜ·gₜ·u / ‖u‖²``, the task's part of the update along ``u``
      (the shares sum to 1; a negative share pulls against the update);
    * ``dmain/<aux>`` = ``−lr·g_main·(c_aux·g_aux)``, the first-order change of the main loss
      caused by the auxiliary part of an SGD step (negative: the auxiliary loss helps).
    """
    if obs.gram is None:
        return {}
    g, norms = obs.gram, _norms(obs.gram)
    tasks = obs.tasks
    i = tasks.index(obs.main)
    c = [obs.shared_coef(t) for t in tasks]
    n = len(tasks)
    u_dot = [sum(c[j] * float(g[j, k]) for j in range(n)) for k in range(n)]  # u·g_k
    u_sq = sum(c[k] * u_dot[k] for k in range(n))
    main_size = abs(c[i]) * norms[i]
    out: dict[str, float] = {}
    for k, t in enumerate(tasks):
        out[f"norm/{t}"] = norms[k]
        out[f"share/{t}"] = c[k] * u_dot[k] / u_sq if u_sq > 0 else math.nan
        if k == i:
            continue
        out[f"ratio/{t}"] = abs(c[k]) * norms[k] / main_size if main_size > 0 else math.nan
        out[f"dmain/{t}"] = -obs.lr * c[k] * float(g[i, k])
    return out


def gap_values(epoch: Mapping[str, Any], main: str, metric: str | None = None) -> dict[str, float]:
    """The main task's train/validation gap in one epoch record of ``fit``.

    ``gap/loss_<main>`` = validation loss − training loss (the loss measured after the epoch
    with ``evaluate_train``, else the running mean during the epoch), and
    ``gap/<main>_<metric>`` = train − validation for a higher-is-better metric (validation −
    train otherwise), when both are in the record. Positive: better on the training data,
    i.e. over-fitting.
    """
    out: dict[str, float] = {}
    val = epoch.get(f"val_loss_{main}")
    train = epoch.get(f"train_eval_loss_{main}", epoch.get(f"train_loss_{main}"))
    if val is not None and train is not None:
        out[f"gap/loss_{main}"] = float(val) - float(train)
    names = (
        [metric]
        if metric
        else sorted({k[len(f"val_{main}_") :] for k in epoch if k.startswith(f"val_{main}_")})
    )
    for m in names:
        v, tr = epoch.get(f"val_{main}_{m}"), epoch.get(f"train_{main}_{m}")
        if v is None or tr is None:
            continue
        sign = 1.0 if HIGHER_IS_BETTER.get(m, True) else -1.0
        out[f"gap/{main}_{m}"] = sign * (float(tr) - float(v))
    return out


# ---------------------------------------------------------------------------------------------
# Stateful probes.


class _Means:
    """Running means per key; NaN values are not counted."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                self.counts.setdefault(k, 0)
                self.sums.setdefault(k, 0.0)
                continue
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: (self.sums[k] / n if n else math.nan) for k, n in self.counts.items()}


class Probe(ABC):
    """A diagnostic with ``update / compute / reset``, keyed by task.

    Attributes:
        every_step: ``True`` if the probe reads every step (from the step's weights only);
            ``False`` if it reads the steps where gradients are captured.
    """

    every_step: ClassVar[bool] = False

    def __init__(self) -> None:
        self._means = _Means()

    @abstractmethod
    def values(self, obs: Observation) -> dict[str, float]:
        """The values of one observation (the functional core)."""

    def update(self, obs: Observation) -> dict[str, float]:
        """Accumulate one observation; return its values."""
        vals = self.values(obs)
        self._means.add(vals)
        return vals

    def compute(self) -> dict[str, float]:
        """Means over the observations since the last :meth:`reset`."""
        return self._means.means()

    def reset(self) -> None:
        """Forget the accumulated observations."""
        self._means = _Means()


class GradientFlow(Probe):
    """Norm of each task's weighted gradient reaching each layer (``flow/<task>/<layer>``).

    Answers "does the auxiliary loss help the gradient reach the lower layers?". See
    :func:`flow_values`.

    Example:
        >>> obs = Observation(0, ("main", "aux"), "main", {"main": 1.0, "aux": 0.5},
        ...                   layer_sq={"main": {"fc": 9.0}, "aux": {"fc": 16.0}})
        >>> GradientFlow().update(obs)
        {'flow/main/fc': 3.0, 'flow/aux/fc': 2.0}
    """

    def values(self, obs: Observation) -> dict[str, float]:
        """See :func:`flow_values`."""
        return flow_values(obs)


class Alignment(Probe):
    """Cosine of main and auxiliary gradients on the shared parameters; conflict fraction.

    ``compute()`` gives the mean cosine (``cos/<aux>``) and the fraction of observed steps
    where the gradients conflict, i.e. the cosine is negative (``conflict/<aux>``). See
    :func:`alignment_values`.

    Example:
        >>> gram = torch.tensor([[1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64)
        >>> obs = Observation(0, ("main", "aux"), "main", {"main": 1.0, "aux": 1.0}, gram=gram)
        >>> Alignment().update(obs)
        {'cos/aux': -0.5, 'conflict/aux': 1.0}
    """

    def values(self, obs: Observation) -> dict[str, float]:
        """See :func:`alignment_values`."""
        return alignment_values(obs)


class Influence(Probe):
    """Each task's share of the shared update and the auxiliary step's effect on the main loss.

    See :func:`influence_values` for the keys (``norm``, ``ratio``, ``share``, ``dmain``).
    """

    def values(self, obs: Observation) -> dict[str, float]:
        """See :func:`influence_values`."""
        return influence_values(obs)


class WeightTrace(Probe):
    """The effective weights over time (``eff_weight/<task>``, ``eff_shared/<task>``).

    Reads every step, so that adaptive strategies' weights are averaged over all steps.
    """

    every_step = True

    def values(self, obs: Observation) -> dict[str, float]:
        """The weights (and shared coefficients, when set apart) of one step."""
        out = {f"eff_weight/{t}": float(w) for t, w in obs.weights.items()}
        if obs.shared_weights is not None:
            out.update({f"eff_shared/{t}": float(w) for t, w in obs.shared_weights.items()})
        return out


@dataclass
class Generalisation:
    """The main task's train/validation gap per epoch (see :func:`gap_values`).

    Unlike the step probes, it reads epoch records: ``update(epoch_record)``.

    Attributes:
        main: The main task.
        metric: The metric whose gap is reported (default: every metric in the record).
    """

    main: str
    metric: str | None = None
    gaps: list[dict[str, float]] = field(default_factory=list)

    def update(self, epoch: Mapping[str, Any]) -> dict[str, float]:
        """Read one epoch record; return its gaps."""
        vals = gap_values(epoch, self.main, self.metric)
        self.gaps.append(vals)
        return vals

    def compute(self) -> dict[str, float]:
        """The gaps of the last epoch read (empty before any)."""
        return dict(self.gaps[-1]) if self.gaps else {}

    def reset(self) -> None:
        """Forget the epochs read."""
        self.gaps = []


def default_probes() -> Sequence[Probe]:
    """One of each step probe."""
    return (GradientFlow(), Alignment(), Influence(), WeightTrace())
