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

__all__ = [
    "GradientEngine",
    "Mode",
    "gramian",
    "graph_leaves",
    "per_task_grads",
    "representation_grads",
]

Mode = Literal["auto", "loop", "batched"]


def _flat(
    grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], batch: int | None
) -> torch.Tensor:
    parts = []
    for g, p in zip(grads, params, strict=True):
        if g is None:
            shape = (batch, p.numel()) if batch is not None else (p.numel(),)
            parts.append(torch.zeros(shape, dtype=p.dtype, device=p.device))
        else:
            parts.append(g.reshape(batch, -1) if batch is not None else g.reshape(-1))
    return torch.cat(parts, dim=-1)


def _check_reached(grads: torch.Tensor, reached: list[bool], tasks: Sequence[str] | None) -> None:
    for i, ok in enumerate(reached):
        if not ok:
            name = tasks[i] if tasks is not None else f"#{i}"
            raise ValueError(
                f"the loss of task '{name}' does not depend on any of the shared parameters, "
                "so it has no gradient there. Check that its head is attached to the shared "
                "block, or pass the parameters it does share as shared=..."
            )


def per_task_grads(
    losses: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    retain_graph: bool = True,
    tasks: Sequence[str] | None = None,
) -> torch.Tensor:
    """Gradients of each loss on ``params``, flattened into a ``(T, d)`` matrix (loop).

    Only the shared parameters are differentiated. A parameter that a loss does not reach
    contributes zeros (a head attached below part of the trunk); a loss that reaches none of
    them is an error naming the task.

    Cost: one backward through the shared block per loss; memory ``T·d`` floats.
    """
    if not params:
        raise ValueError("no shared parameters: give the Balancer shared=module or a list")
    # One preallocated (T, d) buffer: each task's gradients are copied into its row once
    # (no per-task flat vector followed by a stack, which would copy T·d floats twice).
    d = sum(p.numel() for p in params)
    out = torch.empty(len(losses), d, dtype=params[0].dtype, device=params[0].device)
    reached = []
    for i, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        reached.append(any(g is not None for g in grads))
        offset = 0
        for g, p in zip(grads, params, strict=True):
            n = p.numel()
            if g is None:
                out[i, offset : offset + n].zero_()
            else:
                out[i, offset : offset + n].copy_(g.reshape(-1))
            offset += n
    _check_reached(out, reached, tasks)
    return out


def _batched_grads(
    losses: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    retain_graph: bool,
    tasks: Sequence[str] | None,
) -> torch.Tensor:
    stacked = torch.stack(list(losses))
    eye = torch.eye(len(losses), dtype=stacked.dtype, device=stacked.device)
    grads = torch.autograd.grad(
        stacked,
        params,
        grad_outputs=eye,
        retain_graph=retain_graph,
        is_grads_batched=True,
        allow_unused=True,
    )
    out = _flat(grads, params, len(losses))
    # A row of zeros where every parameter was reached would be legitimate; a task that
    # reaches none of the parameters shows up as an all-zero row here.
    if any(g is None for g in grads) or not bool((out != 0).any(dim=1).all()):
        reached = [bool((row != 0).any()) for row in out]
        if not all(reached):
            # Zero rows can also be true zero gradients; let the exact loop decide.
            raise _NeedsLoop()
    return out


def choose_way(timings: dict[str, list[float]], batched_ok: bool) -> str | None:
    """The faster of ``"loop"`` and ``"batched"`` once each has two timings, else None.

    ``"loop"`` at once when the batched way failed. The second measurement of each way is
    compared: the first includes warm-up.
    """
    if not batched_ok:
        return "loop"
    if len(timings["loop"]) >= 2 and len(timings["batched"]) >= 2:
        return "batched" if timings["batched"][1] < timings["loop"][1] else "loop"
    return None


class _NeedsLoop(Exception):
    pass


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
    ) -> torch.Tensor | None:
        if not self._batched_ok:
            return None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = _batched_grads(losses, params, True, tasks)
        except (RuntimeError, NotImplementedError, _NeedsLoop):
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
        if not params:
            raise ValueError("no shared parameters: give the Balancer shared=module or a list")
        self._calls += 1
        way = self.chosen
        if way is None:  # auto: loop, batched, batched, loop; then keep the faster
            way = ("loop", "batched", "batched", "loop")[min(self._calls - 1, 3)]
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
        out = per_task_grads(losses, params, retain_graph=True, tasks=tasks)
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


def gramian(grads: torch.Tensor) -> torch.Tensor:
    """The Gramian ``G Gᵀ`` of a ``(T, d)`` gradient matrix."""
    return grads @ grads.T


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
