"""The Gramian of the per-task gradients, layer by layer, without the ``(T, d)`` Jacobian.

For an ``nn.Linear`` with input ``X`` (``N x in``, all leading dimensions flattened) and the
gradients ``D_t = ∂L_t/∂Y`` of each task's loss with respect to its output (``N x out``),
task ``t``'s weight gradient is ``D_tᵀ X`` and its bias gradient ``1ᵀ D_t``, so

    <g_s, g_t> = tr(D_sᵀ (X Xᵀ) D_t) + (1ᵀ D_s)(1ᵀ D_t)ᵀ,

summed over the shared layers. The ``D_t`` of every recorded layer come from one backward
per task (or one batched backward) that stops at the layer outputs: it skips the
weight-gradient products that the full per-task gradients cost. Each layer's term is then
computed in whichever of two exact forms takes fewer multiplications: through the per-task
weight gradients ``X^T D`` (``T·N·in·out``), or through the ``N x N`` kernel ``X Xᵀ``
(``N²·in + T·N²·out``), which is cheaper when the batch is smaller than the layer.

The same ``D_t`` give the shared block's update for coefficients ``c``:
``(Σ_t c_t D_t)ᵀ X``, one weight-gradient product per layer and no backward pass.

It is exact only when every use of every shared parameter in the graph of the losses is
inside a recorded call of a supported layer (``nn.Linear`` itself, not a subclass). This is
checked at every step by walking the graph; when it does not hold (another layer type, a
parameter used outside its module, a tied weight used directly, a parametrisation, an input
modified in place), :meth:`LayerwiseGramian.compute` returns ``None`` and the caller uses
the per-task gradients instead, with the same result.
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from auxlab.signals import choose_way, next_trial

__all__ = ["LayerwiseGramian"]

#: Calls of one layer kept between two backward passes. A forward that is never followed
#: by a Balancer step (an evaluation with gradients enabled) must not grow memory without
#: bound; past this many calls the records are dropped and that step uses the fallback.
MAX_CALLS = 256

#: Nodes a single ``nn.Linear`` call may add to the graph (addmm, views, transposes).
_MAX_NODES = 16


class _Record:
    """One call of a recorded layer: its input, its output's graph edge, its input's node."""

    __slots__ = ("edge", "module", "version", "x", "x_node")

    def __init__(self, module: nn.Module, x: torch.Tensor, edge: Any, x_node: Any) -> None:
        self.module = module
        self.x = x
        self.version = x._version
        self.edge = edge
        self.x_node = x_node


class _Hook:
    """The forward hook; holds its owner weakly, and copies or pickles as a no-op."""

    def __init__(self, owner: LayerwiseGramian | None) -> None:
        self.owner = weakref.ref(owner) if owner is not None else None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        owner = self.owner() if self.owner is not None else None
        if owner is not None:
            owner._record(module, args, output)

    def __deepcopy__(self, memo: dict[int, Any]) -> _Hook:
        return _Hook(None)

    def __reduce__(self) -> tuple[type, tuple[None]]:
        return (_Hook, (None,))


def _accumulate_var(node: Any) -> torch.Tensor | None:
    var = getattr(node, "variable", None)
    return var if isinstance(var, torch.Tensor) else None


class LayerwiseGramian:
    """Records the inputs of a module's ``nn.Linear`` layers and computes the Gramian from them.

    Args:
        module: The shared block; forward hooks are put on its ``nn.Linear`` submodules.
        params: The shared parameters (those that require grad), in the Balancer's order.

    Attributes:
        chosen: How the output gradients are computed: ``"loop"`` (one ``autograd.grad``
            per task) or ``"batched"`` (one call with ``is_grads_batched``); ``None`` while
            the first calls measure both.
        timings: Seconds of the measured calls, by way.
    """

    def __init__(self, module: nn.Module, params: Sequence[torch.Tensor]) -> None:
        self._param_ids = {id(p) for p in params}
        self._records: list[_Record] = []
        self._overflow = False
        self._calls: dict[int, int] = {}
        self._handles = []
        self.modules: list[nn.Linear] = []
        for m in module.modules():
            if type(m) is nn.Linear and any(
                p is not None and id(p) in self._param_ids
                for p in (m._parameters.get("weight"), m._parameters.get("bias"))
            ):
                self.modules.append(m)
                self._handles.append(m.register_forward_hook(_Hook(self)))
        self._module_ids = {id(m) for m in self.modules}
        self._finalizer = weakref.finalize(self, _remove, list(self._handles))
        self.chosen: str | None = None
        self.timings: dict[str, list[float]] = {"loop": [], "batched": []}
        self._batched_ok = True
        self._n = 0
        #: True when the last compute() declined because a task's Gramian row is zero.
        self.zero_row = False
        #: Why the last compute() declined ("" if it did not).
        self.reason = ""
        # What the last successful compute() left for apply().
        self._groups: list[tuple[torch.Tensor | None, torch.Tensor | None, Any, Any]] = []

    @property
    def active(self) -> bool:
        """True while the hooks are in place."""
        return self._finalizer.alive

    def close(self) -> None:
        """Remove the hooks and forget the records."""
        self._finalizer()
        self.clear()

    def clear(self) -> None:
        """Forget the recorded calls (the Balancer does this after every step)."""
        self._records = []
        self._calls = {}
        self._overflow = False
        self._groups = []

    # -- recording ---------------------------------------------------------------------
    def _record(self, module: nn.Module, args: Any, output: Any) -> None:
        if id(module) not in self._module_ids or not isinstance(output, torch.Tensor):
            return
        if not torch.is_grad_enabled() or output.grad_fn is None or not args:
            return
        x = args[0]
        if not isinstance(x, torch.Tensor):
            return
        n = self._calls.get(id(module), 0) + 1
        self._calls[id(module)] = n
        if n > MAX_CALLS:
            self._overflow = True
            self._records = []
            return
        if self._overflow:
            return
        edge = torch.autograd.graph.get_gradient_edge(output)
        x_node = torch.autograd.graph.get_gradient_edge(x).node if x.requires_grad else None
        self._records.append(_Record(module, x.detach(), edge, x_node))

    # -- the check -------------------------------------------------------------------------
    def _covered_uses(self, records: Sequence[_Record]) -> set[tuple[Any, int]] | None:
        """``(node, id(param))`` for every use of a shared parameter inside a recorded call.

        The walk goes from the call's output down to its input (or to leaves): the nodes in
        between are the call's own (addmm, views, the weight's transpose). ``None`` if a
        call cannot be read (too many nodes, an input modified in place since the forward).
        """
        covered: set[tuple[Any, int]] = set()
        for r in records:
            if r.x._version != r.version:
                return None
            own = {
                id(p)
                for p in (r.module._parameters.get("weight"), r.module._parameters.get("bias"))
                if p is not None
            }
            seen: set[Any] = set()
            stack = [r.edge.node]
            while stack:
                node = stack.pop()
                if node in seen or (r.x_node is not None and node is r.x_node):
                    continue
                seen.add(node)
                if len(seen) > _MAX_NODES:
                    return None
                for nxt, _ in node.next_functions:
                    if nxt is None or (r.x_node is not None and nxt is r.x_node):
                        continue
                    var = _accumulate_var(nxt)
                    if var is None:
                        stack.append(nxt)
                    elif id(var) in own:
                        covered.add((node, id(var)))
        return covered

    # -- the Gramian -------------------------------------------------------------------
    def compute(
        self, losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]
    ) -> torch.Tensor | None:
        """The ``(T, T)`` Gramian on ``params``, or ``None`` when this step is not covered."""
        self._groups = []
        self.zero_row = False
        self.reason = ""
        records = self._records
        if self._overflow or not records:
            self.reason = "no recorded forward of the shared nn.Linear layers"
            return None
        covered = self._covered_uses(records)
        if covered is None:
            self.reason = "a recorded layer's graph could not be read"
            return None
        shared = {id(p) for p in params}
        if not _shared_uses(losses, shared) <= covered:
            self.reason = (
                "a shared parameter is used outside the shared nn.Linear layers (only "
                "nn.Linear itself is supported)"
            )
            return None
        # The output gradients take T·N·out values per call; well past the size of the
        # per-task gradients (T·d) the layer-wise way costs more memory than it replaces
        # (and more time: the per-task weight gradients are cheaper than such large kernels).
        if _too_big(records, params):
            self.reason = "the layers' outputs are larger than their parameters"
            return None
        edges = [r.edge for r in records]
        d_list = self._output_grads(losses, edges)
        t = len(losses)
        dtype, device = params[0].dtype, params[0].device
        gram = torch.zeros(t, t, dtype=dtype, device=device)
        # Group the calls by parameter: a weight used by several calls (or several modules
        # holding the same Parameter) has one gradient, the sum over its calls.
        weight_groups: dict[int, tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = {}
        bias_groups: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = {}
        for r, d in zip(records, d_list, strict=True):
            if d is None:  # this call's output is not used by any loss
                continue
            out = d.shape[-1]
            d2 = d.reshape(-1, t, out)  # (N, T, out)
            w = r.module._parameters.get("weight")
            b = r.module._parameters.get("bias")
            if w is not None and id(w) in shared:
                x2 = r.x.reshape(-1, r.x.shape[-1])
                entry = weight_groups.setdefault(id(w), (w, [], []))
                entry[1].append(x2)
                entry[2].append(d2)
            if b is not None and id(b) in shared:
                bias_groups.setdefault(id(b), (b, []))[1].append(d2)
        for weight, xs, ds in weight_groups.values():
            x = (xs[0] if len(xs) == 1 else torch.cat(xs)).to(dtype)
            d = (ds[0] if len(ds) == 1 else torch.cat(ds)).to(dtype)
            gram += _weight_gram(x, d)
            self._groups.append((weight, None, x, d))
        for bias, ds in bias_groups.values():
            d = (ds[0] if len(ds) == 1 else torch.cat(ds)).to(dtype)
            s = d.sum(0)  # (T, out)
            gram += s @ s.T
            self._groups.append((None, bias, None, d))
        if not bool((gram.diagonal() > 0).all()):
            # A task whose gradient is zero on the shared block: let the exact per-task
            # gradients decide (they name a task that reaches no shared parameter).
            self._groups = []
            self.zero_row = True
            return None
        return gram

    def _output_grads(
        self, losses: Sequence[torch.Tensor], edges: list[Any]
    ) -> list[torch.Tensor | None]:
        """Per recorded call, ``∂L_t/∂Y`` for every task as an ``(N, T, out)`` tensor."""
        self._n += 1
        way = self.chosen
        if way is None:
            way = next_trial(self._n)
        if way == "batched" and self._batched_ok:
            start = time.perf_counter()
            got = self._batched(losses, edges)
            if got is not None:
                self.timings["batched"].append(time.perf_counter() - start)
                self._decide()
                return got
            self._batched_ok = False
            self.chosen = "loop"
        start = time.perf_counter()
        out = self._loop(losses, edges)
        self.timings["loop"].append(time.perf_counter() - start)
        self._decide()
        return out

    def _decide(self) -> None:
        if self.chosen is None:
            self.chosen = choose_way(self.timings, self._batched_ok)

    def _loop(self, losses: Sequence[torch.Tensor], edges: list[Any]) -> list[torch.Tensor | None]:
        per_task = [
            torch.autograd.grad(loss, edges, retain_graph=True, allow_unused=True)
            for loss in losses
        ]
        out: list[torch.Tensor | None] = []
        for i in range(len(edges)):
            gs = [g[i] for g in per_task]
            ref = next((g for g in gs if g is not None), None)
            if ref is None:
                out.append(None)
                continue
            gs = [torch.zeros_like(ref) if g is None else g for g in gs]
            # Stacked on the last-but-one axis: (..., T, out), the layout the products use.
            out.append(torch.stack(gs, dim=-2))
        return out

    def _batched(
        self, losses: Sequence[torch.Tensor], edges: list[Any]
    ) -> list[torch.Tensor | None] | None:
        stacked = torch.stack(list(losses))
        eye = torch.eye(len(losses), dtype=stacked.dtype, device=stacked.device)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                grads = torch.autograd.grad(
                    stacked,
                    edges,
                    grad_outputs=eye,
                    retain_graph=True,
                    is_grads_batched=True,
                    allow_unused=True,
                )
        except (RuntimeError, NotImplementedError):
            return None
        if any("batching rule" in str(w.message) for w in caught):
            self._batched_ok = False
        return [None if g is None else g.movedim(0, -2) for g in grads]

    # -- applying coefficients ---------------------------------------------------------
    def apply(self, coef: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(param, Σ_t c_t g_t)`` for every shared parameter, from the last compute()."""
        out = []
        for w, b, x, d in self._groups:
            c = coef.to(dtype=d.dtype, device=d.device)
            combo = torch.matmul(c, d)  # (N, out): Σ_t c_t D_t
            if w is not None:
                out.append((w, combo.T @ x))
            else:
                assert b is not None
                out.append((b, combo.sum(0)))
        return out


def _remove(handles: list[Any]) -> None:
    for h in handles:
        h.remove()


def _shared_uses(losses: Sequence[torch.Tensor], shared: set[int]) -> set[tuple[Any, int]]:
    """``(node, id(param))`` for every edge of the losses' graph into a shared parameter."""
    uses: set[tuple[Any, int]] = set()
    seen: set[Any] = set()
    stack = [loss.grad_fn for loss in losses if loss.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            var = _accumulate_var(nxt)
            if var is None:
                stack.append(nxt)
            elif id(var) in shared:
                uses.add((node, id(var)))
    return uses


#: How many times the shared parameters' size the recorded outputs may have.
_MAX_OUTPUT_RATIO = 4


def _too_big(records: Sequence[_Record], params: Sequence[torch.Tensor]) -> bool:
    """True if the recorded outputs are far larger than the shared parameters."""
    outputs = 0
    for r in records:
        out: int = getattr(r.module, "out_features", 0)
        outputs += (r.x.numel() // max(r.x.shape[-1], 1)) * out
    return outputs > _MAX_OUTPUT_RATIO * sum(p.numel() for p in params)


def _weight_gram(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``G_st = <D_sᵀ X, D_tᵀ X>`` for ``x`` ``(N, in)`` and ``d`` ``(N, T, out)``."""
    n, t, out = d.shape
    inp = x.shape[1]
    via_weights = t * n * out * inp
    via_kernel = n * n * inp + t * n * n * out
    d2 = d.reshape(n, t * out)
    if via_weights <= via_kernel:
        jt = (x.T @ d2).view(inp, t, out)  # per-task weight gradients, transposed
        return torch.bmm(jt, jt.transpose(1, 2)).sum(0)
    kd = (x @ x.T) @ d2  # (N, T·out)
    return torch.bmm(d, kd.view(n, t, out).transpose(1, 2)).sum(0)
