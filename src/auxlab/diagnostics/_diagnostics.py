"""Diagnostics: run the probes every n steps, in your own loop or in ``fit``.

The call order matters. Per-layer, per-task gradient norms need each task's gradient on every
layer, which only exists while the autograd graph does; the Balancer's backward frees it. So
on probe steps the gradients are taken *before* that backward, with ``torch.autograd.grad``
and ``retain_graph=True`` (they are not written to ``.grad``), and combined with the weights
the strategy chose *after* it::

    diag = Diagnostics(model, shared=model.trunk, every=50, lr=1e-3)
    for inputs, targets in loader:
        optimizer.zero_grad()
        losses = objective(model(**inputs), targets)
        diag.capture(losses)                 # 1. before the backward (probe steps only)
        record = balancer.backward(losses)   # 2. the strategy decides, one backward
        diag.update(record)                  # 3. probes read the weights; row into record
        optimizer.step()

``record = diag.backward(balancer, losses)`` does the three in one call. With ``fit``, use
``diag.balancer(strategy)`` as the strategy and ``diag.on_epoch`` as a callback: the probe
values then land in ``history.steps`` (every ``every`` steps) and their epoch means and the
train/validation gap in ``history.epochs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from auxlab.balancer import Balancer, StepRecord
from auxlab.diagnostics._probes import Generalisation, Observation, Probe, default_probes
from auxlab.weighting import Strategy

__all__ = ["Diagnostics", "ProbedBalancer", "layer_groups"]

#: Above this many parameter-owning modules, layers are the model's top-level children.
MAX_LAYERS = 48


def layer_groups(
    model: nn.Module, layers: Iterable[str] | Mapping[str, nn.Module] | None = None
) -> dict[str, list[torch.Tensor]]:
    """The model's layers as ``{name: parameters}``.

    Args:
        model: The model.
        layers: Module names (as in ``model.named_modules()``), or ``{label: module}``.
            Default: every module that owns parameters directly, named by its qualified
            name (``"encoder.0"``); if there are more than 48, the top-level children.

    Raises:
        KeyError: For a name that is not a module of the model; the message lists them.
    """
    modules = dict(model.named_modules())
    direct = False  # True: each layer is a module's own parameters, not its children's
    if isinstance(layers, Mapping):
        chosen = dict(layers)
    elif layers is not None:
        missing = [n for n in layers if n not in modules]
        if missing:
            raise KeyError(f"no module named {missing} in the model; modules: {list(modules)}")
        chosen = {n: modules[n] for n in layers}
    else:
        chosen = {
            (n or "(root)"): m
            for n, m in modules.items()
            if any(p.requires_grad for p in m.parameters(recurse=False))
        }
        direct = True
        if len(chosen) > MAX_LAYERS:
            chosen, direct = dict(model.named_children()), False
    groups: dict[str, list[torch.Tensor]] = {}
    for name, m in chosen.items():
        ps = [p for p in m.parameters(recurse=not direct) if p.requires_grad]
        if ps:
            groups[name] = ps
    return groups


class Diagnostics:
    """Probes every ``every`` steps, recorded into the step records and the History.

    Args:
        model: The model (its layers are probed).
        shared: The shared block (a module or its parameters) on which alignment and
            influence are measured. Default: all the model's parameters (a head's
            parameters then count with a zero gradient from the other tasks).
        every: Capture per-task gradients every ``every`` steps (from step 0).
        layers: Which layers to report (see :func:`layer_groups`).
        lr: Learning rate of the first-order change of the main loss (``dmain/<aux>``).
            ``None``: reported per unit of learning rate.
        main: The main task. Default: the ``main`` attribute of the losses (set by
            :class:`~auxlab.Objective`), else ``"main"``.
        metric: The main task's metric whose train/validation gap ``on_epoch`` reports
            (default: every metric found in the epoch record).
        probes: The step probes (default: gradient flow, alignment, influence, weights).

    Cost: on a probe step, one extra backward pass per task through the layers each loss
    reaches (``autograd.grad`` with ``retain_graph=True``) and ``T`` copies of the probed
    gradients in memory; nothing on other steps but reading the weights. At ``every=50``
    that is about ``T/50`` of a backward per step (see ``benchmarks/diagnostics_overhead.py``).

    Attributes:
        rows: One dict per probe step: ``step`` and the probes' values.
        epochs: One dict per epoch seen by :meth:`on_epoch`: gaps and the probes' means.
        step: Steps seen so far.
    """

    def __init__(
        self,
        model: nn.Module,
        shared: nn.Module | Iterable[torch.Tensor] | None = None,
        every: int = 50,
        layers: Iterable[str] | Mapping[str, nn.Module] | None = None,
        lr: float | None = None,
        main: str | None = None,
        metric: str | None = None,
        probes: Sequence[Probe] | None = None,
    ) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if lr is not None and not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
        self.model = model
        self.every = int(every)
        self.lr = lr
        self.main = main
        self.metric = metric
        self.layers = layer_groups(model, layers)
        shared_params: list[torch.Tensor]
        if shared is None:
            shared_params = [p for p in model.parameters() if p.requires_grad]
        elif isinstance(shared, nn.Module):
            shared_params = [p for p in shared.parameters() if p.requires_grad]
        else:
            shared_params = [p for p in shared if p.requires_grad]
        if not shared_params:
            raise ValueError("the shared block has no trainable parameters")
        self.shared = shared_params
        ids = {id(p) for p in shared_params}
        self.shared_layers = frozenset(
            n for n, ps in self.layers.items() if all(id(p) in ids for p in ps)
        )
        self.probes: list[Probe] = list(probes) if probes is not None else list(default_probes())
        self.rows: list[dict[str, Any]] = []
        self.epochs: list[dict[str, float]] = []
        self.step = 0
        self._gen: Generalisation | None = None
        self._pending: tuple[int, dict[str, dict[str, float]], torch.Tensor] | None = None
        self._tasks: tuple[str, ...] | None = None
        # Every probed parameter once, in a fixed order.
        seen: dict[int, torch.Tensor] = {}
        for ps in self.layers.values():
            for p in ps:
                seen.setdefault(id(p), p)
        for p in shared_params:
            seen.setdefault(id(p), p)
        self._params = list(seen.values())
        self._index = {pid: i for i, pid in enumerate(seen)}

    # -- the three steps ---------------------------------------------------------------------

    def is_probe_step(self) -> bool:
        """Whether the current step captures gradients."""
        return self.step % self.every == 0

    def capture(self, losses: Mapping[str, torch.Tensor]) -> bool:
        """Take per-task gradients on the probed layers, before the Balancer's backward.

        Does nothing except on probe steps. Uses ``torch.autograd.grad`` with
        ``retain_graph=True``: ``.grad`` is untouched and the graph survives for the
        backward that follows.

        Returns:
            Whether gradients were captured at this step.
        """
        if self.main is None:
            self.main = getattr(losses, "main", None) or ("main" if "main" in losses else None)
        self._tasks = tuple(losses)
        if not self.is_probe_step():
            return False
        finite = all(math.isfinite(float(v.detach())) for v in losses.values())
        if not finite:
            return False
        tasks = list(losses)
        per_task: list[Sequence[torch.Tensor | None]] = []
        for loss in losses.values():
            grads: Sequence[torch.Tensor | None] = (None,) * len(self._params)
            if loss.requires_grad:
                grads = torch.autograd.grad(
                    loss, self._params, retain_graph=True, allow_unused=True
                )
            per_task.append(grads)
        # Per parameter: the T x T block of dot products between the tasks' gradients, in the
        # parameters' own dtype and without flattening every gradient into one long copy
        # (that copy, in float64, was most of a probe step's cost). Its diagonal gives each
        # task's squared norm on that parameter; the blocks of the shared parameters add up to
        # the Gramian. One device-to-host read at the end.
        n_tasks = len(tasks)
        blocks = []
        for j, p in enumerate(self._params):
            rows = []
            for g in per_task:
                gj = g[j]
                rows.append(gj.detach().reshape(-1) if gj is not None else p.new_zeros(p.numel()))
            m = torch.stack(rows)
            blocks.append((m @ m.T).to(torch.float64))
        all_blocks = torch.stack(blocks).cpu()  # (P, T, T)
        sq = all_blocks.diagonal(dim1=1, dim2=2)  # (P, T)
        shared_idx = [self._index[id(p)] for p in self.shared]
        gram = all_blocks[shared_idx].sum(0)
        sq_list = sq.tolist()
        layer_sq: dict[str, dict[str, float]] = {}
        for i, task in enumerate(tasks):
            layer_sq[task] = {
                name: sum(sq_list[self._index[id(p)]][i] for p in ps)
                for name, ps in self.layers.items()
            }
        assert gram.shape == (n_tasks, n_tasks)
        self._pending = (self.step, layer_sq, gram)
        return True

    def update(self, record: StepRecord) -> dict[str, float]:
        """Feed the probes the step's weights (and the captured gradients); advance a step.

        The values of a probe step are also written into ``record.extra``, so that ``fit``
        puts them into ``history.steps``.

        Returns:
            The probe values of this step (empty on steps that are not probe steps).
        """
        pending, self._pending = self._pending, None
        step = self.step
        self.step += 1
        if record.skipped or not record.weights:
            return {}
        tasks = tuple(record.weights)
        main = self.main if self.main in tasks else ("main" if "main" in tasks else tasks[0])
        obs = Observation(
            step=step,
            tasks=tasks,
            main=main,
            weights=record.weights,
            shared_weights=record.shared_weights,
            shared_layers=self.shared_layers,
            lr=self.lr if self.lr is not None else 1.0,
        )
        if pending is not None and pending[0] == step:
            _, layer_sq, gram = pending
            order = list(layer_sq)
            idx = [order.index(t) for t in tasks]
            obs.layer_sq = layer_sq
            obs.gram = gram[idx][:, idx]
        row: dict[str, float] = {}
        for probe in self.probes:
            if probe.every_step or obs.gram is not None:
                vals = probe.update(obs)
                if obs.gram is not None:
                    row.update(vals)
        if obs.gram is None:
            return {}
        record.extra.update(row)
        self.rows.append({"step": step, **row})
        return row

    def backward(
        self, balancer: Balancer, losses: Mapping[str, torch.Tensor], **kwargs: Any
    ) -> StepRecord:
        """``capture``, ``balancer.backward(losses, **kwargs)``, ``update``: one call."""
        self.capture(losses)
        record = balancer.backward(losses, **kwargs)
        self.update(record)
        return record

    # -- fit integration ---------------------------------------------------------------------

    def balancer(self, strategy: Strategy | str | Mapping[str, float], **kwargs: Any) -> Balancer:
        """A :class:`~auxlab.Balancer` that runs these diagnostics; give it to ``fit``.

        Args:
            strategy: As for the Balancer.
            **kwargs: The Balancer's other arguments (``shared``, ``main``, ``every``, ...).
        """
        return ProbedBalancer(self, strategy, **kwargs)

    def on_epoch(self, epoch: dict[str, Any]) -> None:
        """A ``fit`` callback: add the gaps and the probes' epoch means to the epoch record.

        Then resets the probes, so each epoch record holds that epoch's means.
        """
        main = self.main or "main"
        if self._gen is None:
            self._gen = Generalisation(main, self.metric)
        summary: dict[str, float] = dict(self._gen.update(epoch))
        for probe in self.probes:
            summary.update(probe.compute())
            probe.reset()
        epoch.update(summary)
        self.epochs.append(summary)

    def summary(self) -> dict[str, float]:
        """Means over all probe rows of the run (NaN-free where possible)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for row in self.rows:
            for k, v in row.items():
                if k == "step":
                    continue
                counts.setdefault(k, 0)
                sums.setdefault(k, 0.0)
                if isinstance(v, float) and math.isnan(v):
                    continue
                sums[k] += float(v)
                counts[k] += 1
        return {k: (sums[k] / n if n else math.nan) for k, n in counts.items()}

    def reset(self) -> None:
        """Forget every row, epoch and probe state (the layers and settings stay)."""
        for probe in self.probes:
            probe.reset()
        self.rows, self.epochs, self.step = [], [], 0
        self._gen, self._pending = None, None

    def __repr__(self) -> str:
        return (
            f"Diagnostics(every={self.every}, layers={list(self.layers)}, "
            f"probes={[type(p).__name__ for p in self.probes]})"
        )


class ProbedBalancer(Balancer):
    """A :class:`~auxlab.Balancer` whose ``backward`` runs :class:`Diagnostics` around it.

    Build it with :meth:`Diagnostics.balancer`. ``fit`` accepts it as its ``strategy``.
    """

    def __init__(self, diagnostics: Diagnostics, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.diagnostics = diagnostics

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None = None,
        val_losses: Mapping[str, float] | None = None,
        *,
        backward: Callable[..., None] | None = None,
    ) -> StepRecord:
        """Capture on probe steps, then the Balancer's backward, then feed the probes."""
        self.diagnostics.capture(losses)
        record = super().backward(losses, representation, val_losses, backward=backward)
        self.diagnostics.update(record)
        return record
