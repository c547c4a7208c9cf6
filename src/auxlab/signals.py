"""Per-task signals on the shared block: gradients, their Gramian, representation gradients.

Exact per-task gradients on a shared trunk cost one backward through the trunk per task.
:class:`GradientEngine` computes them on the shared parameters only, keeps the forward graph
between tasks, and picks the cheaper of two exact ways:

* ``"loop"``: one ``torch.autograd.grad`` call per task (works for every model);
* ``"batched"``: one call with ``is_grads_batched=True`` (``vmap`` over the backward), often
  faster for MLPs and convolutions, unsupported by some operators (e.g. recurrent kernels);
* ``"auto"`` (default): times both on early steps and keeps the faster; falls back to the
  loop, with the same result, whenever the batched call fails or PyTorch reports that it
  lacks a batching rule.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Literal

import torch

from auxlab._linalg import gramian
from auxlab._taskgrads import (
    DOTS_MAX_TASKS,
    NeedsLoop,
    TaskGrads,
    batched_grads,
    loop_grads,
    per_task_grads,
)

__all__ = [
    "DOTS_MAX_TASKS",
    "GradientEngine",
    "Mode",
    "TaskGrads",
    "gramian",
    "graph_leaves",
    "per_task_grads",
    "representation_grads",
]

Mode = Literal["auto", "loop", "batched"]

#: The order in which ``"auto"`` tries the two ways on its first calls: each way three
#: times, interleaved, so that a slow moment of the machine does not decide alone.
TRIAL_ORDER = ("loop", "batched", "batched", "loop", "loop", "batched")


def next_trial(calls: int) -> str:
    """The way to time at the ``calls``-th call (1-based) while ``"auto"`` is measuring."""
    return TRIAL_ORDER[min(calls, len(TRIAL_ORDER)) - 1]


def choose_way(timings: dict[str, list[float]], batched_ok: bool) -> str | None:
    """The faster of ``"loop"`` and ``"batched"`` once each has three timings, else None.

    ``"loop"`` at once when the batched way failed. The first measurement of each way
    includes warm-up and is ignored; of the others, the fastest of each way is compared
    (the minimum is the timing least disturbed by other work on the machine).
    """
    if not batched_ok:
        return "loop"
    per_way = TRIAL_ORDER.count("loop")
    if len(timings["loop"]) >= per_way and len(timings["batched"]) >= per_way:
        loop, batched = min(timings["loop"][1:]), min(timings["batched"][1:])
        return "batched" if batched < loop else "loop"
    return None


class GradientEngine:
    """Computes per-task gradients on the shared parameters, choosing the cheaper exact way.

    Args:
        mode: ``"auto"``, ``"loop"`` or ``"batched"`` (see the module docstring).

    Attributes:
        chosen: The way in use (``"loop"`` or ``"batched"``), or ``None`` while ``"auto"``
            is still measuring.
        timings: Seconds of the measured calls, by way.
    """

    def __init__(self, mode: Mode = "auto") -> None:
        if mode not in ("auto", "loop", "batched"):
            raise ValueError(f"mode must be 'auto', 'loop' or 'batched', got {mode!r}")
        self.mode = mode
        self.chosen: str | None = None if mode == "auto" else mode
        self.timings: dict[str, list[float]] = {"loop": [], "batched": []}
        self._batched_ok = True
        self._calls = 0

    def _try_batched(
        self,
        losses: Sequence[torch.Tensor],
        params: Sequence[torch.Tensor],
        tasks: Sequence[str] | None,
    ) -> TaskGrads | None:
        if not self._batched_ok:
            return None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = batched_grads(losses, params, True, tasks)
        except (RuntimeError, NotImplementedError, NeedsLoop):
            self._batched_ok = False
            return None
        if any("batching rule" in str(w.message) for w in caught):
            # PyTorch fell back to a slow per-sample loop inside vmap: correct but slower
            # than our own loop, so never choose it.
            self._batched_ok = False
        return out

    def __call__(
        self,
        losses: Sequence[torch.Tensor],
        params: Sequence[torch.Tensor],
        tasks: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """``(T, d)`` gradients of ``losses`` on ``params``; the graph is kept."""
        return self.task_grads(losses, params, tasks).flat()

    def task_grads(
        self,
        losses: Sequence[torch.Tensor],
        params: Sequence[torch.Tensor],
        tasks: Sequence[str] | None = None,
    ) -> TaskGrads:
        """The per-task gradients as :class:`TaskGrads` (no flat copy); the graph is kept."""
        if not params:
            raise ValueError("no shared parameters: give the Balancer shared=module or a list")
        self._calls += 1
        way = self.chosen
        if way is None:  # auto: each way three times (TRIAL_ORDER), then keep the faster
            way = next_trial(self._calls)
        if way == "batched":
            start = time.perf_counter()
            out = self._try_batched(losses, params, tasks)
            if out is not None:
                self.timings["batched"].append(time.perf_counter() - start)
                self._decide()
                return out
            if self.mode == "batched":
                warnings.warn(
                    "batched per-task gradients are not supported by this model; using the "
                    "loop of autograd.grad (same result)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self.chosen = "loop"
        start = time.perf_counter()
        out = loop_grads(losses, params, True, tasks)
        self.timings["loop"].append(time.perf_counter() - start)
        self._decide()
        return out

    def _decide(self) -> None:
        if self.chosen is None:
            self.chosen = choose_way(self.timings, self._batched_ok)


def representation_grads(
    losses: Sequence[torch.Tensor], representation: torch.Tensor, retain_graph: bool = True
) -> torch.Tensor:
    """Gradients of each loss with respect to a shared representation, ``(T, n)`` (MGDA-UB).

    Cheaper than per-parameter gradients: each backward stops at the representation, so only
    the heads are traversed.
    """
    rows = []
    for loss in losses:
        (g,) = torch.autograd.grad(
            loss, representation, retain_graph=retain_graph, allow_unused=True
        )
        rows.append(torch.zeros_like(representation).reshape(-1) if g is None else g.reshape(-1))
    return torch.stack(rows)


def graph_leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors that require grad and that ``tensors`` depend on (their parameters).

    Walks the autograd graph once. The Balancer uses it to backpropagate the weighted sum
    into the task-specific parameters only, without traversing the shared trunk again.
    """
    seen: set[object] = set()
    found: dict[int, torch.Tensor] = {}
    stack: list[object] = [t.grad_fn for t in tensors if t.grad_fn is not None]
    for t in tensors:
        if t.grad_fn is None and t.requires_grad:
            found[id(t)] = t
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if isinstance(var, torch.Tensor):
            found[id(var)] = var
            continue
        stack.extend(next_fn for next_fn, _ in getattr(fn, "next_functions", ()))
    return list(found.values())
