"""Data-parallel training with a Balancer: N processes take the step one process would take.

Under ``torch.nn.parallel.DistributedDataParallel`` (DDP) each process holds a copy of the
model and its own share of the global batch, and DDP averages the gradients of one
``loss.backward()``. A Balancer does more than one backward: per-task gradients come from
``torch.autograd.grad``, which never fires DDP's hooks, and the strategy decides from the
losses and per-task gradients *before* the backward. So with ``Balancer(...,
distributed=ddp_model)`` (or a process group) the Balancer does the communication itself,
in the order that makes every process take the step of one process on the global batch:

1. the loss values are averaged across processes (one all-reduce of ``T`` numbers), so the
   strategy, the NaN check and the step's record see the losses of the global batch;
2. the ``(T, d)`` per-task gradients on the shared block are averaged (one all-reduce of
   ``T·d`` numbers) and only then is the Gramian formed: the mean of the processes'
   Gramians is not the Gramian of the mean gradients (it misses the cross terms
   ``g_r·g_s``), so the layer-wise Gramian, which never forms the gradients, is not used;
3. gradients on a shared representation (MGDA-UB) are gathered: the global batch's
   representation is the processes' rows side by side, each scaled by ``1/N``;
4. the strategy decides from identical inputs on every process, so its state, its own
   seeded random draws (RLW, GradDrop) and its decision are identical;
5. the rest of the step's gradients (heads; the shared block on loss-only steps; a
   strategy's own parameters, e.g. uncertainty weighting's log-variances) are averaged
   after the backward, so every process holds the same ``.grad``.

Strategies that read losses only keep DDP's own gradient averaging (overlapped with the
backward) and add steps 1 and 5 for the strategy's own parameters. For the others the
model's DDP synchronisation is switched off for good (``require_backward_grad_sync =
False``, what ``no_sync()`` does for one step), since the Balancer reduces every gradient.

Equivalence assumes what DDP assumes: every process has the same number of samples and the
losses are means over the batch, so the global loss is the mean of the processes' losses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

from auxlab._source import GradMode, SignalSource
from auxlab._taskgrads import TaskGrads
from auxlab.signals import graph_leaves
from auxlab.weighting import Need, Strategy

__all__ = ["DistributedSource", "resolve", "signal_source"]

#: What a DDP model is, without importing it at module level in every process.
_DDP = torch.nn.parallel.DistributedDataParallel


def resolve(distributed: Any) -> tuple[Any, nn.Module | None] | None:
    """``(process group, DDP model or None)`` for a ``distributed=`` value, or ``None`` (off).

    ``None`` detects: on when ``torch.distributed`` is initialised with more than one process.
    """
    if distributed is False:
        return None
    if not (
        distributed is None
        or distributed is True
        or isinstance(distributed, _DDP)
        or (dist.is_available() and isinstance(distributed, dist.ProcessGroup))
    ):
        raise TypeError(
            "distributed must be a DistributedDataParallel model, a process group, True, "
            f"False or None, got {type(distributed).__name__}"
        )
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is None:
        if not initialised or dist.get_world_size() < 2:
            return None
        return None, None
    if not initialised:
        raise ValueError(
            "distributed training needs torch.distributed to be initialised: call "
            "torch.distributed.init_process_group(...) in every process before building "
            "the Balancer (or pass distributed=False)."
        )
    if isinstance(distributed, _DDP):
        return distributed.process_group, distributed
    return (None if distributed is True else distributed), None


def signal_source(
    shared: nn.Module | Iterable[torch.Tensor] | None,
    strategy: Strategy,
    grad_mode: GradMode,
    distributed: Any,
) -> SignalSource:
    """The Balancer's signal source: a :class:`DistributedSource` when data-parallel."""
    found = resolve(distributed)
    if found is None:
        return SignalSource(shared, strategy.needs, grad_mode)
    # A strategy that cannot take the global batch's step from averaged signals says why.
    refusal = getattr(strategy, "distributed_refusal", None)
    if refusal:
        raise ValueError(
            f"{type(strategy).__name__} cannot be used in data-parallel training: {refusal}"
        )
    group, ddp = found
    return DistributedSource(shared, strategy.needs, grad_mode, group=group, ddp=ddp)


class DistributedSource(SignalSource):
    """A :class:`~auxlab._source.SignalSource` that averages across processes.

    Args:
        shared: The shared block, as for :class:`~auxlab._source.SignalSource`.
        needs: What the strategy needs.
        grad_mode: ``"auto"``, ``"loop"`` or ``"batched"`` (``"layerwise"`` is refused).
        group: The process group (``None``: the default one).
        ddp: The DDP model, if any. For strategies that read per-task gradients its own
            synchronisation is switched off; for loss-only ones it is kept.

    Attributes:
        world: The number of processes.
        bytes_reduced: Bytes of the tensors this process has reduced or gathered so far
            (the payload, a counter for measuring the cost; DDP's own averaging is not
            counted).
        seconds_reducing: Seconds spent in those collectives so far.
    """

    def __init__(
        self,
        shared: nn.Module | Iterable[torch.Tensor] | None,
        needs: Iterable[Need],
        grad_mode: GradMode = "auto",
        *,
        group: Any = None,
        ddp: nn.Module | None = None,
    ) -> None:
        if grad_mode == "layerwise":
            raise ValueError(
                "grad_mode='layerwise' cannot be used data-parallel: it forms the Gramian "
                "from each process's own activations, and the mean of the processes' "
                "Gramians is not the Gramian of the mean gradients. Use grad_mode='auto' "
                "(the per-task gradients are averaged, then the Gramian is formed)."
            )
        needs = frozenset(needs)
        super().__init__(shared, needs, grad_mode, allow_layerwise=False)
        self.group = group
        self.world = dist.get_world_size(group)
        self.bytes_reduced = 0
        self.seconds_reducing = 0.0
        self._values: torch.Tensor | None = None
        # Loss-only strategies: DDP's own averaging of the backward stays on.
        self._ddp_params: set[int] = set()
        if ddp is not None:
            if needs & {Need.GRADS, Need.GRAMIAN}:
                ddp.require_backward_grad_sync = False  # type: ignore[assignment]
            else:
                self._ddp_params = {id(p) for p in ddp.parameters()}

    # -- the hooks of SignalSource ---------------------------------------------------------
    def reduce_values(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of the processes' loss values (kept for this step's ``collect``)."""
        self._values = self._mean([values.clone()])[0]
        return self._values

    def _reduce_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values = self._values
        if values is None:
            values = self.reduce_values(torch.stack([v.to(torch.float64) for v in losses.values()]))
        return {t: values[i].to(v.dtype) for i, (t, v) in enumerate(losses.items())}

    def _reduce_task_grads(self, task_grads: TaskGrads) -> TaskGrads:
        flat = task_grads.flat().contiguous()
        self._mean([flat])
        out = TaskGrads(task_grads.params, flat=flat)
        out.sparse = set(task_grads.sparse)
        return out

    def _reduce_rep_grads(self, rep_grads: torch.Tensor) -> torch.Tensor:
        # The global batch's representation is every process's rows; its loss is the mean
        # of the processes' losses, so each process's gradient there is scaled by 1/N.
        t = rep_grads.shape[0]
        size = torch.tensor([rep_grads.shape[1]], dtype=torch.int64)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        start = time.perf_counter()
        dist.all_gather(sizes, size, group=self.group)
        most = int(max(int(s) for s in sizes))
        padded = torch.zeros(t, most, dtype=rep_grads.dtype, device=rep_grads.device)
        padded[:, : rep_grads.shape[1]] = rep_grads
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded, group=self.group)
        self.bytes_reduced += padded.numel() * padded.element_size() * self.world
        self.seconds_reducing += time.perf_counter() - start
        pieces = [p[:, : int(n)] for p, n in zip(parts, sizes, strict=True)]
        return torch.cat(pieces, dim=1) / self.world

    def applied(self, total: torch.Tensor, shared_written: bool) -> None:
        """Average the gradients the backward of ``total`` wrote from local losses."""
        skip = set(self._ddp_params)
        if shared_written:
            skip |= {id(p) for p in self.params}
        params = [p for p in graph_leaves(total) if id(p) not in skip and p.grad is not None]
        if not params:
            return
        grads = []
        for p in params:
            assert p.grad is not None
            grads.append((p.grad.to_dense() if p.grad.is_sparse else p.grad).detach().clone())
        reduced = self._mean(grads)
        for p, g in zip(params, reduced, strict=True):
            assert p.grad is not None
            p.grad = g.to_sparse(sparse_dim=p.grad.sparse_dim()) if p.grad.is_sparse else g

    def clear(self) -> None:
        """Forget this step's loss values (and the layer-wise records)."""
        self._values = None
        super().clear()

    # -- communication ---------------------------------------------------------------------
    def _mean(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Average ``tensors`` in place across processes, one all-reduce per dtype and device."""
        groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
        for i, x in enumerate(tensors):
            groups.setdefault((x.dtype, x.device), []).append(i)
        for idx in groups.values():
            if len(idx) == 1:
                buf = tensors[idx[0]]
                flat = buf if buf.is_contiguous() else buf.contiguous()
            else:
                flat = torch.cat([tensors[i].reshape(-1) for i in idx])
            start = time.perf_counter()
            dist.all_reduce(flat, group=self.group)
            self.seconds_reducing += time.perf_counter() - start
            flat.div_(self.world)
            self.bytes_reduced += flat.numel() * flat.element_size()
            if len(idx) == 1:
                if flat is not tensors[idx[0]]:
                    tensors[idx[0]].copy_(flat)
                continue
            offset = 0
            for i in idx:
                n = tensors[i].numel()
                tensors[i].copy_(flat[offset : offset + n].view_as(tensors[i]))
                offset += n
        return list(tensors)
