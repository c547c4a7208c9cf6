"""Per-task gradients on the shared parameters, and the forms they are kept in.

Two exact ways compute them: a loop of ``torch.autograd.grad`` (one call per task, works for
every model) and one batched call (``is_grads_batched=True``: ``vmap`` over the backward).
:class:`TaskGrads` keeps them in whichever form the way gave, and makes the Gramian and the
combination ``Σ_t c_t g_t`` from it without a further copy. :class:`auxlab.signals.GradientEngine`
chooses between the two ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from auxlab._linalg import gramian

__all__ = [
    "DOTS_MAX_TASKS",
    "NeedsLoop",
    "TaskGrads",
    "batched_grads",
    "loop_grads",
    "per_task_grads",
]


#: Up to this many tasks the loop keeps the gradients as autograd returned them and the
#: Gramian is a sum of dot products; above it, one ``(T, d)`` matrix filled as the
#: gradients come and its Gramian in column blocks are cheaper (and hold less memory).
DOTS_MAX_TASKS = 3


def _check_reached(reached: Sequence[bool], tasks: Sequence[str] | None) -> None:
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
    return loop_grads(losses, params, retain_graph, tasks, keep_rows=False).flat()


def loop_grads(
    losses: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    retain_graph: bool,
    tasks: Sequence[str] | None,
    keep_rows: bool | None = None,
) -> TaskGrads:
    """The loop of ``autograd.grad``, one call per task.

    ``keep_rows`` (default: up to DOTS_MAX_TASKS tasks) keeps each task's gradients as
    returned; otherwise they are copied into one ``(T, d)`` matrix as they come, so that at
    most one task's gradients exist twice.
    """
    if not params:
        raise ValueError("no shared parameters: give the Balancer shared=module or a list")
    if keep_rows is None:
        keep_rows = len(losses) <= DOTS_MAX_TASKS
    rows: list[list[torch.Tensor | None]] = []
    flat = None
    if not keep_rows:
        d = sum(p.numel() for p in params)
        flat = torch.empty(len(losses), d, dtype=params[0].dtype, device=params[0].device)
    reached = []
    sparse: set[int] = set()
    for i, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        reached.append(any(g is not None for g in grads))
        if any(g is not None and g.is_sparse for g in grads):
            # An nn.Embedding(sparse=True): its gradient is densified for the Gramian and
            # the combination; the Balancer hands the update back in sparse form.
            sparse.update(k for k, g in enumerate(grads) if g is not None and g.is_sparse)
            grads = tuple(g.to_dense() if g is not None and g.is_sparse else g for g in grads)
        if flat is None:
            rows.append(list(grads))
        else:
            _copy_row(flat[i], grads, params)
    _check_reached(reached, tasks)
    out = TaskGrads(params, flat=flat) if flat is not None else TaskGrads(params, rows=rows)
    out.sparse = sparse
    return out


def _copy_row(
    target: torch.Tensor,
    grads: Sequence[torch.Tensor | None],
    params: Sequence[torch.Tensor],
) -> None:
    """Write one task's per-parameter gradients into its row of the flat matrix."""
    offset = 0
    for g, p in zip(grads, params, strict=True):
        n = p.numel()
        if g is None:
            target[offset : offset + n].zero_()
        else:
            target[offset : offset + n].copy_(g.reshape(-1))
        offset += n


def batched_grads(
    losses: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    retain_graph: bool,
    tasks: Sequence[str] | None,
) -> TaskGrads:
    """One batched ``autograd.grad`` call for every task (``vmap`` over the backward).

    Raises :class:`NeedsLoop` when a task's rows are all zero: only the loop can tell a true
    zero gradient from a loss that reaches no shared parameter (and name the task).
    """
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
    # A task that reaches none of the parameters shows up as all-zero rows here; a row of
    # zeros can also be a true zero gradient, so the exact loop decides.
    task_grads = TaskGrads(params, blocks=list(grads))
    if any(g is None for g in grads) or not all(task_grads.nonzero_rows()):
        raise NeedsLoop()
    return task_grads


class NeedsLoop(Exception):
    """The batched way cannot decide this step; the loop gives the exact answer."""


class TaskGrads:
    """The per-task gradients of one step on the shared parameters.

    Three forms, whichever the way that computed them gives without a further copy:

    * ``rows[t][k]``: task ``t``'s gradient on parameter ``k`` as autograd returned it
      (``None`` where the loss does not reach it), from the loop with few tasks;
    * ``blocks[k]``: every task's gradient on parameter ``k``, shape ``(T, *p.shape)``,
      from one batched call;
    * ``flat``: the ``(T, d)`` matrix, parameters in order, which the loop fills as it goes
      when the tasks are many (one task's gradients exist twice at most).

    A method that needs only the Gramian and the combination ``Σ_t c_t g_t`` never makes
    the flat matrix from rows or blocks; :meth:`flat` makes it (once, then the other form
    is dropped) for the methods that need the gradients themselves.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        *,
        rows: list[list[torch.Tensor | None]] | None = None,
        blocks: list[torch.Tensor | None] | None = None,
        flat: torch.Tensor | None = None,
    ) -> None:
        if sum(x is not None for x in (rows, blocks, flat)) != 1:
            raise ValueError("give exactly one of rows=, blocks= and flat=")
        self.params = list(params)
        #: Indices of the parameters whose gradients autograd gave in sparse form.
        self.sparse: set[int] = set()
        self._rows = rows
        self._blocks = blocks
        self._flat = flat
        if flat is not None:
            self.num_tasks = flat.shape[0]
        elif blocks is not None:
            found = next((b for b in blocks if b is not None), None)
            self.num_tasks = 0 if found is None else found.shape[0]
        else:
            assert rows is not None
            self.num_tasks = len(rows)

    def flat(self) -> torch.Tensor:
        """The ``(T, d)`` matrix, parameters in order (made at the first call)."""
        if self._flat is None:
            p0 = self.params[0]
            d = sum(p.numel() for p in self.params)
            out = torch.empty(self.num_tasks, d, dtype=p0.dtype, device=p0.device)
            if self._blocks is not None:
                offset = 0
                for p, b in zip(self.params, self._blocks, strict=True):
                    n = p.numel()
                    if b is None:
                        out[:, offset : offset + n].zero_()
                    else:
                        out[:, offset : offset + n].copy_(b.reshape(self.num_tasks, n))
                    offset += n
            else:
                assert self._rows is not None
                for t, row in enumerate(self._rows):
                    _copy_row(out[t], row, self.params)
            self._flat, self._rows, self._blocks = out, None, None
        return self._flat

    def nonzero_rows(self) -> list[bool]:
        """Whether each task's gradient has a non-zero entry (one pass over the gradients)."""
        if self._flat is not None:
            return [bool(v) for v in (self._flat != 0).any(dim=1).tolist()]
        if self._blocks is not None:
            found = [False] * self.num_tasks
            for b in self._blocks:
                if b is not None:
                    hits = (b.reshape(self.num_tasks, -1) != 0).any(dim=1).tolist()
                    found = [f or h for f, h in zip(found, hits, strict=True)]
            return found
        assert self._rows is not None
        return [any(bool((g != 0).any()) for g in row if g is not None) for row in self._rows]

    def gramian(self) -> torch.Tensor:
        """``G Gᵀ``, ``(T, T)``."""
        if self._flat is not None:
            return gramian(self._flat)
        p0 = self.params[0]
        if self._blocks is not None:
            total = torch.zeros(self.num_tasks, self.num_tasks, dtype=p0.dtype, device=p0.device)
            for b in self._blocks:
                if b is not None:
                    total += gramian(b.reshape(self.num_tasks, -1))
            return total
        assert self._rows is not None
        # Dot products of the gradients as they are: T(T+1)/2 per parameter, no copy.
        vectors = [[None if g is None else g.reshape(-1) for g in row] for row in self._rows]
        t = self.num_tasks
        pairs = [(i, j) for i in range(t) for j in range(i, t)]
        entries = []
        zero = torch.zeros((), dtype=p0.dtype, device=p0.device)
        for i, j in pairs:
            terms = [
                torch.dot(a, b)
                for a, b in zip(vectors[i], vectors[j], strict=True)
                if a is not None and b is not None
            ]
            entries.append(torch.stack(terms).sum() if terms else zero)
        values = torch.stack(entries)
        out = torch.empty(t, t, dtype=values.dtype, device=values.device)
        rows = torch.tensor([i for i, _ in pairs], device=values.device)
        cols = torch.tensor([j for _, j in pairs], device=values.device)
        out[rows, cols] = values
        out[cols, rows] = values
        return out

    def combine(self, coef: Sequence[float]) -> list[torch.Tensor]:
        """``Σ_t coef[t]·g_t`` on each parameter: fresh tensors shaped like the parameters."""
        if len(coef) != self.num_tasks:
            raise ValueError(f"{len(coef)} coefficients for {self.num_tasks} tasks")
        out: list[torch.Tensor] = []
        if self._flat is not None:
            vec = torch.tensor(list(coef), dtype=self._flat.dtype, device=self._flat.device)
            combined = vec @ self._flat
            offset = 0
            for p in self.params:
                out.append(combined[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            return out
        if self._blocks is not None:
            for p, b in zip(self.params, self._blocks, strict=True):
                if b is None:
                    out.append(torch.zeros_like(p))
                else:
                    vec = torch.tensor(list(coef), dtype=b.dtype, device=b.device)
                    out.append((vec @ b.reshape(self.num_tasks, -1)).view_as(p))
            return out
        assert self._rows is not None
        for k, p in enumerate(self.params):
            acc: torch.Tensor | None = None
            for row, c in zip(self._rows, coef, strict=True):
                g = row[k]
                if g is None:
                    continue
                acc = g * float(c) if acc is None else acc.add_(g, alpha=float(c))
            out.append(torch.zeros_like(p) if acc is None else acc)
        return out
