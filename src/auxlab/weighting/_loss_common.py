"""What the loss-based strategies share (each strategy has its own module).

Every loss-based strategy declares ``needs = {Need.LOSSES}``: it costs one backward pass of
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

import torch

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Signals

__all__ = []


# Ratios above this saturate any softmax; the cap keeps inf (a loss rising from exactly 0)
# out of the softmax, where inf - inf would give NaN.
_MAX_RATIO = 1e12


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
