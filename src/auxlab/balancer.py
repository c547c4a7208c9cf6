"""The Balancer: compute the signals a strategy needs, let it decide, apply the weights.

Use it in your own loop in place of ``loss.backward()``::

    balancer = Balancer(FixedWeights({"aux": 0.2}), shared=model.encoder)
    for inputs, targets in loader:
        optimizer.zero_grad()
        record = balancer.backward(objective(model(**inputs), targets))
        optimizer.step()
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from auxlab._errors import NonFiniteLossError, TaskMismatchError
from auxlab._layerwise import LayerwiseGramian
from auxlab.objective import check_same_tasks
from auxlab.signals import GradientEngine, Mode, graph_leaves, representation_grads
from auxlab.weighting import (
    Decision,
    FixedWeights,
    Need,
    Signals,
    Strategy,
    as_decision,
    create,
)
from auxlab.weighting._base import check_weight

__all__ = ["Balancer", "GradMode", "StepRecord"]

#: How the Balancer computes per-task gradient signals (see ``Balancer(grad_mode=...)``).
GradMode = Literal["auto", "loop", "batched", "layerwise"]

#: The layer-wise Gramian differentiates with respect to graph edges (``GradientEdge``
#: inputs to ``torch.autograd.grad``), which PyTorch accepts from 2.4 on.
_LAYERWISE_TORCH = torch.torch_version.TorchVersion(torch.__version__) >= "2.4"

#: Timed refresh steps per way (layer-wise Gramian, per-task gradients), after warm-up and
#: with the inner way (loop or batched) each engine chose, before keeping the faster way.
_MEASURED_STEPS = 3


@dataclass
class StepRecord:
    """What happened at one Balancer step; probes and the History read it.

    Attributes:
        step: The step counter, from 0.
        losses: Unweighted loss per task.
        weights: Weight per task used at this step.
        total: The weighted total ``Σ wᵢ·Lᵢ`` (plus a strategy's extra term, if any).
        skipped: True if the step was skipped because a loss was not finite.
        grad_norms: Per-task gradient norm on the shared parameters, when computed.
        cosines: Cosine between the main task's gradient and each task's, when computed.
        shared_weights: The coefficients applied to the per-task gradients on the shared
            block, when the strategy set them apart from the head weights (gates,
            projections, min-norm combinations).
    """

    step: int
    losses: dict[str, float]
    weights: dict[str, float]
    total: float
    skipped: bool = False
    grad_norms: dict[str, float] | None = None
    cosines: dict[str, float] | None = None
    shared_weights: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A flat ``{name: value}`` dict: ``loss_<task>``, ``weight_<task>``, ``total``, ..."""
        out: dict[str, Any] = {"step": self.step, "total": self.total, "skipped": self.skipped}
        for t, v in self.losses.items():
            out[f"loss_{t}"] = v
        for t, v in self.weights.items():
            out[f"weight_{t}"] = v
        for name, d in (
            ("grad_norm", self.grad_norms),
            ("cosine", self.cosines),
            ("shared_weight", self.shared_weights),
        ):
            for t, v in (d or {}).items():
                out[f"{name}_{t}"] = v
        out.update(self.extra)
        return out


def _as_params(shared: nn.Module | Iterable[torch.Tensor] | None) -> list[torch.Tensor]:
    if shared is None:
        return []
    items: Iterable[torch.Tensor] = shared.parameters() if isinstance(shared, nn.Module) else shared
    return [p for p in items if p.requires_grad]


class Balancer:
    """Computes what a strategy needs, calls it, and applies its weights with one backward.

    Args:
        strategy: A :class:`~auxlab.weighting.Strategy`, a registered name (``"equal"``), or
            Keras-style weights (a dict or list) as a shortcut for ``FixedWeights``.
        shared: The shared block (a module or its parameters). Needed only by strategies
            that read per-task gradients.
        main: The main task. Defaults to the ``main`` attribute of the losses (set by
            :class:`~auxlab.Objective`), else a task named ``"main"``.
        every: Compute signals and update the strategy every ``every`` steps; in between,
            reuse the last weights (cheaper for gradient-based strategies).
        nan_policy: ``"raise"`` (default) raises :class:`~auxlab.NonFiniteLossError` naming
            the task and step when a loss is NaN or infinite; ``"skip"`` skips the backward
            for that step and counts it in :attr:`skipped_steps`.
        grad_mode: How per-task gradients are computed, for strategies that need them:
            ``"auto"`` (default: the fastest exact way, measured on early steps),
            ``"loop"`` or ``"batched"`` (see :class:`~auxlab.signals.GradientEngine`), or
            ``"layerwise"``. For strategies that need only the Gramian (``Need.GRAMIAN``
            without ``Need.GRADS``) and a ``shared`` module, ``"auto"`` and
            ``"layerwise"`` can compute it layer by layer from the inputs of the shared
            ``nn.Linear`` layers and the per-task gradients of their outputs, without the
            ``(T, d)`` per-task gradients, and apply the decision from the same data
            (``auxlab._layerwise``). It is used only on steps where every use of a shared
            parameter is inside such a layer, which is checked at each step; otherwise the
            per-task gradients give the same result. ``"auto"`` times it against the
            per-task gradients on early steps and keeps the faster.
        tasks: The task names, in output order. Optional: by default they are learned from
            the first losses. Give them (with ``main``) when the strategy has learnable
            parameters, so that :meth:`parameters` can be handed to the optimizer before
            the first step.

    Cost: loss-based strategies, one backward. Strategies that read per-task gradients on
    the shared block, one backward through the trunk per task (the heads' gradients come
    from one more backward that skips the trunk). Gradients on a shared representation:
    one backward through the heads per task, then one full backward.

    Attributes:
        state: The strategy's current state.
        step: Steps taken so far (skipped ones included).
        skipped_steps: Steps skipped under ``nan_policy="skip"``.
    """

    def __init__(
        self,
        strategy: Strategy | str | Mapping[str, float] | list[float],
        shared: nn.Module | Iterable[torch.Tensor] | None = None,
        main: str | None = None,
        every: int = 1,
        nan_policy: Literal["raise", "skip"] = "raise",
        grad_mode: GradMode = "auto",
        tasks: Iterable[str] | None = None,
    ) -> None:
        if isinstance(strategy, str):
            strategy = create(strategy)
        elif isinstance(strategy, (Mapping, list, tuple)):
            strategy = FixedWeights(strategy)
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, a name or weights, got {strategy!r}")
        if nan_policy not in ("raise", "skip"):
            raise ValueError(f"nan_policy must be 'raise' or 'skip', got {nan_policy!r}")
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.strategy = strategy
        self.shared = _as_params(shared)
        self.main = main
        self.every = int(every)
        self.nan_policy = nan_policy
        self.tasks: tuple[str, ...] | None = None
        self.state: Any = None
        self.step = 0
        self.skipped_steps = 0
        self._last: Any = None
        if grad_mode not in ("auto", "loop", "batched", "layerwise"):
            raise ValueError(
                f"grad_mode must be 'auto', 'loop', 'batched' or 'layerwise', got {grad_mode!r}"
            )
        self.grad_mode = grad_mode
        engine_mode: Mode = "auto" if grad_mode == "layerwise" else grad_mode
        self._engine = GradientEngine(engine_mode)
        needs = strategy.needs
        # The layer-wise Gramian: for Gramian-only strategies on a shared module.
        self._layerwise: LayerwiseGramian | None = None
        self._way: str | None = "jacobian"
        # Seconds of the measured refresh steps, with the inner way (loop or batched) used.
        self._way_times: dict[str, list[tuple[str, float]]] = {"layerwise": [], "jacobian": []}
        self._layerwise_misses = 0
        self._measured = 0
        if (
            grad_mode in ("auto", "layerwise")
            and Need.GRAMIAN in needs
            and Need.GRADS not in needs
            and isinstance(shared, nn.Module)
            and _LAYERWISE_TORCH
        ):
            layerwise = LayerwiseGramian(shared, self.shared)
            if layerwise.modules:
                self._layerwise = layerwise
                self._way = "layerwise" if grad_mode == "layerwise" else None
            else:
                layerwise.close()
        if needs & {Need.GRADS, Need.GRAMIAN} and not self.shared:
            raise ValueError(
                f"{type(strategy).__name__} needs per-task gradients on the shared parameters; "
                "pass shared=<the shared module or its parameters> to the Balancer."
            )
        if tasks is not None:
            self._start(dict.fromkeys(tasks))

    def _start(self, losses: Mapping[str, Any]) -> None:
        tasks = tuple(losses)
        main = self.main or getattr(losses, "main", None) or ("main" if "main" in tasks else None)
        if main is None:
            raise TaskMismatchError(
                f"which task is the main one? Tasks are {list(tasks)}; pass main=... to the "
                "Balancer (or name the main task 'main')."
            )
        if main not in tasks:
            raise TaskMismatchError(f"main task '{main}' is not one of the tasks {list(tasks)}")
        self.tasks, self.main = tasks, main
        self.state = self.strategy.init(tasks, main)

    def parameters(self) -> list[nn.Parameter]:
        """The strategy's learnable parameters, to give to the optimizer."""
        return self.strategy.parameters()

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None = None,
        val_losses: Mapping[str, float] | None = None,
    ) -> StepRecord:
        """Weigh the losses and backpropagate once; return the step's record.

        Args:
            losses: Scalar loss per task (what :class:`~auxlab.Objective` returns).
            representation: The shared representation, for strategies that need
                ``Need.REP_GRADS``.
            val_losses: Validation losses per task, for strategies that need them.
        """
        try:
            return self._backward(losses, representation, val_losses)
        finally:
            if self._layerwise is not None:
                self._layerwise.clear()

    @property
    def gramian_way(self) -> str | None:
        """How the Gramian is computed at refresh steps.

        ``"layerwise"``, ``"jacobian"`` (from the per-task gradients), or ``None`` while
        ``grad_mode="auto"`` is still timing both.
        """
        return self._way

    def _next_way(self) -> str:
        if self._layerwise is None:
            return "jacobian"
        if self._way is not None:
            return self._way
        self._measured += 1
        return ("jacobian", "layerwise")[self._measured % 2]  # layer-wise first

    def _layerwise_missed(self) -> None:
        """The layer-wise Gramian could not be used at this step (the fallback is exact)."""
        self._layerwise_misses += 1
        if self.grad_mode == "layerwise":
            if self._layerwise_misses == 1:
                reason = self._layerwise.reason if self._layerwise is not None else ""
                warnings.warn(
                    f"the layer-wise Gramian cannot be used at this step ({reason}); using "
                    "the per-task gradients (same result)",
                    RuntimeWarning,
                    stacklevel=4,
                )
        elif self._layerwise_misses >= 2 and self._layerwise is not None:
            self._layerwise.close()
            self._layerwise = None
            self._way = "jacobian"

    def _inner_timings(self, way: str) -> dict[str, list[float]]:
        """The per-call timings of the engine behind ``way`` (which inner way ran)."""
        if way == "layerwise" and self._layerwise is not None:
            return self._layerwise.timings
        return self._engine.timings

    def _timed(self, way: str, start: float, before: dict[str, int]) -> None:
        """Record a measured step; once both ways are known, keep the faster."""
        if self._way is not None or self._layerwise is None:
            return
        if self.shared[0].is_cuda:
            torch.cuda.synchronize(self.shared[0].device)
        seconds = time.perf_counter() - start
        timings = self._inner_timings(way)
        # Which inner way (loop or batched) this step used; its first call includes warm-up.
        inner = next((k for k, v in timings.items() if len(v) > before.get(k, 0)), "")
        if inner and before.get(inner, 0) > 0:
            self._way_times[way].append((inner, seconds))
        chosen = {
            "layerwise": self._layerwise.chosen,
            "jacobian": self._engine.chosen,
        }
        if chosen["layerwise"] is None or chosen["jacobian"] is None:
            return
        # Compare the steps each way took with the inner way its engine settled on.
        best = {}
        for w, got in self._way_times.items():
            times = [t for i, t in got if i == chosen[w]]
            if len(times) < _MEASURED_STEPS:
                return
            best[w] = min(times)
        if best["layerwise"] < best["jacobian"]:
            self._way = "layerwise"
        else:
            self._way = "jacobian"
            self._layerwise.close()
            self._layerwise = None

    def _backward(
        self,
        losses: Mapping[str, torch.Tensor],
        representation: torch.Tensor | None,
        val_losses: Mapping[str, float] | None,
    ) -> StepRecord:
        if self.tasks is None:
            self._start(losses)
        assert self.tasks is not None
        assert self.main is not None
        check_same_tasks(self.tasks, losses, "the Balancer's tasks", "the losses")
        values = {}
        for t in self.tasks:
            loss = losses[t]
            if loss.ndim != 0:
                raise ValueError(f"the loss of task '{t}' must be a scalar, got {loss.shape}")
            values[t] = loss.detach()
        # One device-to-host read for all the loss values (not one per task).
        as_list = torch.stack([v.to(torch.float64) for v in values.values()]).tolist()
        floats = dict(zip(values, as_list, strict=True))
        bad = next((t for t, v in floats.items() if not math.isfinite(v)), None)
        if bad is not None:
            if self.nan_policy == "raise":
                raise NonFiniteLossError(bad, self.step, floats[bad])
            self.skipped_steps += 1
            record = StepRecord(self.step, floats, {}, float("nan"), skipped=True)
            self.step += 1
            return record

        needs = self.strategy.needs
        refresh = self._last is None or self.step % self.every == 0
        grads = gram = rep = None
        task_grads = None  # the per-task gradients, when computed this step
        layerwise = None  # the LayerwiseGramian, when it computed this step's Gramian
        way, start = "", 0.0  # the way timed at this step, if any
        update_seconds = 0.0
        counts: dict[str, int] = {}
        if refresh:
            ordered = [losses[t] for t in self.tasks]
            if needs & {Need.GRADS, Need.GRAMIAN}:
                way, start = self._next_way(), time.perf_counter()
                counts = {k: len(v) for k, v in self._inner_timings(way).items()}
                if way == "layerwise" and self._layerwise is not None:
                    gram = self._layerwise.compute(ordered, self.shared)
                    if gram is None:
                        if not self._layerwise.zero_row:
                            self._layerwise_missed()
                        way = "missed"
                    else:
                        layerwise = self._layerwise
                if gram is None:
                    task_grads = self._engine.task_grads(ordered, self.shared, self.tasks)
                    if Need.GRADS in needs:
                        grads = task_grads.flat()
                    if Need.GRAMIAN in needs:
                        gram = task_grads.gramian()
            if Need.REP_GRADS in needs:
                if representation is None:
                    raise ValueError(
                        f"{type(self.strategy).__name__} needs gradients on the shared "
                        "representation: pass representation=<tensor> to backward()."
                    )
                rep = representation_grads(ordered, representation)
            if Need.VAL_LOSSES in needs and val_losses is None:
                raise ValueError(
                    f"{type(self.strategy).__name__} needs validation losses: pass "
                    "val_losses={task: value} to backward()."
                )
            signals = Signals(
                step=self.step,
                tasks=self.tasks,
                main=self.main,
                losses=values,
                grads=grads if Need.GRADS in needs else None,
                gramian=gram,
                rep_grads=rep,
                val_losses=val_losses,
            )
            update_start = time.perf_counter()
            out, self.state = self.strategy.update(signals, self.state)
            # The strategy's own time is the same whichever way gave its inputs, and a
            # solver's varies from step to step: it is left out of the ways' timings.
            update_seconds = time.perf_counter() - update_start
            self._last = as_decision(out)
            decision = self._last
        else:
            # Between refreshes the weights are reused. A gradient written by the strategy
            # (shared_grad) belongs to the batch it was computed on, so it is not reused:
            # those steps apply the strategy's weights with one plain backward.
            decision = self._last
            if decision.shared_grad is not None:
                decision = Decision(decision.weights, None, decision.extra_loss, None)
        check_same_tasks(self.tasks, decision.weights, "the tasks", "the strategy's weights")

        total: torch.Tensor | None = None
        weights: dict[str, float] = {}
        who = f"weight chosen by {type(self.strategy).__name__}"
        for t in self.tasks:
            w = decision.weights[t]
            value = float(w.detach()) if isinstance(w, torch.Tensor) else float(w)
            weights[t] = check_weight(t, value, who)
            term = losses[t] * w
            total = term if total is None else total + term
        assert total is not None
        if decision.extra_loss is not None:
            total = total + decision.extra_loss
        coef = decision.shared_weights
        if coef is not None:
            check_same_tasks(self.tasks, coef, "the tasks", "the strategy's shared weights")

        if (layerwise is not None and decision.shared_grad is None) or task_grads is not None:
            # The per-task signals on the shared block are known: write the combination
            # Σ cᵢ·gᵢ there (from the layer-wise data, one weight-gradient product per layer,
            # or from the per-task gradients), and backpropagate the weighted sum into
            # everything else only (heads, learnable weights), so the trunk is traversed T
            # times in all, not T + 1.
            c = coef if coef is not None else weights
            coefs = [float(c[t]) for t in self.tasks]
            parts: list[torch.Tensor] | None = None
            sparse: set[int] = set()
            if layerwise is not None:
                vec = torch.tensor(coefs, dtype=self.shared[0].dtype)
                combined = {id(p): g for p, g in layerwise.apply(vec)}
                # A shared parameter no loss reaches gets zeros, as from per-task gradients.
                parts = [
                    torch.zeros_like(p) if id(p) not in combined else combined[id(p)].view_as(p)
                    for p in self.shared
                ]
            else:
                assert task_grads is not None
                sparse = task_grads.sparse
                if decision.shared_grad is not None:
                    self._check_shared_grad(decision.shared_grad)
                else:
                    parts = task_grads.combine(coefs)
            self._backward_others(total)
            if parts is None:
                assert decision.shared_grad is not None
                self._write_shared(decision.shared_grad, [p.grad for p in self.shared], sparse)
            else:
                for k, (p, g) in enumerate(zip(self.shared, parts, strict=True)):
                    # Fresh tensors of our own combination: safe to hand over as they are
                    # (in sparse form where autograd gave the gradient so).
                    g = g.to(p.dtype)
                    if k in sparse:
                        g = g.to_sparse(sparse_dim=1)
                    p.grad = g if p.grad is None else p.grad + g
        elif decision.shared_grad is not None:
            self._check_shared_grad(decision.shared_grad)
            before = [p.grad.clone() if p.grad is not None else None for p in self.shared]
            total.backward()
            self._write_shared(decision.shared_grad, before)
        elif coef is not None and any(float(coef[t]) != weights[t] for t in self.tasks):
            # Reused shared weights that differ from the head weights: one backward for the
            # shared block with the shared coefficients, one for the rest with the weights.
            combo = torch.stack([losses[t] * float(coef[t]) for t in self.tasks]).sum()
            torch.autograd.backward(combo, inputs=self.shared, retain_graph=True)
            self._backward_others(total)
        else:
            total.backward()

        # The total from the values already read, so no further device synchronisation.
        total_value = sum(weights[t] * floats[t] for t in self.tasks)
        if decision.extra_loss is not None:
            total_value += float(decision.extra_loss.detach())
        record = StepRecord(self.step, floats, weights, total_value)
        if way in ("layerwise", "jacobian"):
            self._timed(way, start + update_seconds, counts)
        if coef is not None:
            record.shared_weights = {t: float(coef[t]) for t in self.tasks}
        if grads is not None or gram is not None:
            # From the Gramian when there is one: it is T x T, the gradients are T x d.
            i_main = self.tasks.index(self.main)
            if gram is not None:
                norms = gram.diagonal().clamp_min(0).sqrt()
                dots = gram[:, i_main]
            else:
                assert grads is not None
                norms = grads.norm(dim=1)
                dots = grads @ grads[i_main]
            record.grad_norms = {t: float(n) for t, n in zip(self.tasks, norms, strict=True)}
            cos = dots / (norms * norms[i_main]).clamp_min(1e-30)
            record.cosines = {t: float(c) for t, c in zip(self.tasks, cos, strict=True)}
        self.step += 1
        return record

    def _backward_others(self, total: torch.Tensor) -> None:
        """Backpropagate ``total`` into every parameter it reaches but the shared ones."""
        shared_ids = {id(p) for p in self.shared}
        others = [p for p in graph_leaves(total) if id(p) not in shared_ids]
        if others:
            torch.autograd.backward(total, inputs=others)

    def _check_shared_grad(self, flat: torch.Tensor) -> None:
        size = sum(p.numel() for p in self.shared)
        if flat.ndim != 1 or flat.numel() != size:
            raise ValueError(
                f"{type(self.strategy).__name__} returned a shared gradient of shape "
                f"{tuple(flat.shape)}; the shared parameters have {size} values, so it must be "
                f"a flat vector of length {size}."
            )

    def _write_shared(
        self,
        flat: torch.Tensor,
        before: Sequence[torch.Tensor | None],
        sparse: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        offset = 0
        for k, (p, prev) in enumerate(zip(self.shared, before, strict=True)):
            n = p.numel()
            g = flat[offset : offset + n].view_as(p).to(p.dtype)
            if k in sparse:  # autograd gave this parameter's gradient in sparse form
                g = g.to_sparse(sparse_dim=1)
            # A strategy's own vector is copied, since it may keep it in state.
            if prev is None:
                p.grad = g.clone()
            else:
                p.grad = prev + g
            offset += n

    def __repr__(self) -> str:
        return f"Balancer({self.strategy!r}, main={self.main!r}, every={self.every})"
