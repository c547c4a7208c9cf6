"""Where the Balancer's per-task signals come from: one interface, several exact ways.

:meth:`SignalSource.collect` is given one step's losses and what the strategy declares it
needs, and returns :class:`StepSignals`: the loss values, and, only when they are asked
for, the per-task gradients on the shared parameters, their Gramian, and the gradients on a
shared representation. Nothing the strategy did not declare is computed: a strategy that
reads losses only costs no per-task backward.

How the per-task gradients are computed is chosen here (``grad_mode``):

* ``"loop"`` or ``"batched"``: :class:`~auxlab.signals.GradientEngine`, one
  ``autograd.grad`` per task or one batched call;
* ``"layerwise"``: for strategies that read the Gramian but not the gradients, on a shared
  module, the Gramian layer by layer from its ``nn.Linear`` layers (:mod:`auxlab._layerwise`),
  with the per-task gradients as the exact fallback on steps it does not cover;
* ``"auto"``: the engine chooses loop or batched by timing; for Gramian-only strategies the
  layer-wise Gramian is also timed against the per-task gradients on early refresh steps
  (each after warm-up, with the inner way its engine settled on), and the faster is kept.

:class:`StepSignals` also carries what the shared block's update needs, so that the
Balancer can write ``Σ cᵢ·gᵢ`` there without another backward through the trunk
(:meth:`StepSignals.combine`).

``collect`` is the one place where per-task signals are produced: data-parallel training
plugs in by overriding the hooks it calls (:mod:`auxlab.distributed`): ``reduce_values``
(the loss values), ``_reduce_task_grads`` and ``_reduce_rep_grads`` (before the Gramian is
formed and before the strategy decides) and ``applied`` (the gradients the step wrote from
local losses). The Gramian is not linear in the gradients (the mean of the processes'
Gramians is not the Gramian of the mean gradient), so it is formed from reduced gradients;
the layer-wise way, which never forms them, is switched off there
(``allow_layerwise=False``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from auxlab._layerwise import LayerwiseGramian
from auxlab.signals import GradientEngine, Mode, TaskGrads, representation_grads
from auxlab.weighting import Need

__all__ = ["GradMode", "SignalSource", "StepSignals", "ValidationSource", "as_params"]

#: How per-task gradient signals are computed (see ``Balancer(grad_mode=...)``).
GradMode = Literal["auto", "loop", "batched", "layerwise"]

#: The layer-wise Gramian differentiates with respect to graph edges (``GradientEdge``
#: inputs to ``torch.autograd.grad``), which PyTorch accepts from 2.4 on.
_LAYERWISE_TORCH = torch.torch_version.TorchVersion(torch.__version__) >= "2.4"

#: What the per-task way gave: gradients, Gramian, and the data for the shared update.
_PerTask = tuple[
    torch.Tensor | None, torch.Tensor | None, TaskGrads | None, LayerwiseGramian | None
]

#: Timed refresh steps per way (layer-wise Gramian, per-task gradients), after warm-up and
#: with the inner way (loop or batched) each engine chose, before keeping the faster way.
_MEASURED_STEPS = 3

#: Frames between the warning in ``_missed`` and the user's ``Balancer.backward`` call:
#: _missed, _task_signals, collect, Balancer._refresh, Balancer._backward, Balancer.backward.
_USER_FRAME = 7


def as_params(shared: nn.Module | Iterable[torch.Tensor] | None) -> list[torch.Tensor]:
    """The parameters of ``shared`` (a module or an iterable) that require grad."""
    if shared is None:
        return []
    items: Iterable[torch.Tensor] = shared.parameters() if isinstance(shared, nn.Module) else shared
    return [p for p in items if p.requires_grad]


@dataclass(frozen=True)
class StepSignals:
    """The per-task signals of one step; what was not asked for is ``None``.

    Attributes:
        losses: Detached scalar loss per task, in task order.
        grads: ``(T, d)`` per-task gradients on the shared parameters (``Need.GRADS``).
        gramian: ``(T, T)`` Gramian of the per-task gradients (``Need.GRAMIAN``).
        rep_grads: ``(T, n)`` gradients on the shared representation (``Need.REP_GRADS``).
        params: The shared parameters, in order.
        task_grads: The per-task gradients, when they were computed at this step.
        layerwise: The layer-wise data, when it gave this step's Gramian.
    """

    losses: dict[str, torch.Tensor]
    grads: torch.Tensor | None = None
    gramian: torch.Tensor | None = None
    rep_grads: torch.Tensor | None = None
    params: Sequence[torch.Tensor] = ()
    task_grads: TaskGrads | None = None
    layerwise: LayerwiseGramian | None = None

    @property
    def sparse(self) -> set[int]:
        """Indices of the shared parameters whose gradient autograd gives in sparse form."""
        return self.task_grads.sparse if self.task_grads is not None else set()

    def combine(self, coef: Sequence[float]) -> list[torch.Tensor]:
        """``Σ_t coef[t]·g_t`` on each shared parameter: fresh tensors shaped like them.

        From the layer-wise data (one weight-gradient product per layer) or from the
        per-task gradients, whichever this step has.
        """
        if self.layerwise is not None:
            vec = torch.tensor(list(coef), dtype=self.params[0].dtype)
            combined = {id(p): g for p, g in self.layerwise.apply(vec)}
            # A shared parameter no loss reaches gets zeros, as from per-task gradients.
            return [
                torch.zeros_like(p) if id(p) not in combined else combined[id(p)].view_as(p)
                for p in self.params
            ]
        if self.task_grads is None:
            raise ValueError("no per-task signals on the shared block were computed this step")
        return self.task_grads.combine(coef)


class SignalSource:
    """Computes the per-task signals a strategy declares, in the cheapest exact way.

    Args:
        shared: The shared block (a module or its parameters), or ``None``.
        needs: What the strategy will ask for; decides whether the layer-wise Gramian is set
            up (Gramian-only strategies on a shared module).
        grad_mode: ``"auto"``, ``"loop"``, ``"batched"`` or ``"layerwise"`` (module docstring).
        allow_layerwise: Whether the layer-wise Gramian may be used at all (``False`` under
            data parallelism, where the Gramian must come from reduced gradients).

    Attributes:
        params: The shared parameters that require grad, in order.
    """

    def __init__(
        self,
        shared: nn.Module | Iterable[torch.Tensor] | None,
        needs: Iterable[Need] = (),
        grad_mode: GradMode = "auto",
        allow_layerwise: bool = True,
    ) -> None:
        if grad_mode not in ("auto", "loop", "batched", "layerwise"):
            raise ValueError(
                f"grad_mode must be 'auto', 'loop', 'batched' or 'layerwise', got {grad_mode!r}"
            )
        needs = frozenset(needs)
        self.params = as_params(shared)
        self.grad_mode = grad_mode
        engine_mode: Mode = "auto" if grad_mode == "layerwise" else grad_mode
        self._engine = GradientEngine(engine_mode)
        self._layerwise: LayerwiseGramian | None = None
        self._way: str | None = "jacobian"
        # Seconds of the measured refresh steps, with the inner way (loop or batched) used.
        self._way_times: dict[str, list[tuple[str, float]]] = {"layerwise": [], "jacobian": []}
        self._layerwise_misses = 0
        self._measured = 0
        # The way timed at the current step, its start, and its engine's call counts then.
        self._pending: tuple[str, float, dict[str, int]] | None = None
        if (
            allow_layerwise
            and grad_mode in ("auto", "layerwise")
            and Need.GRAMIAN in needs
            and Need.GRADS not in needs
            and isinstance(shared, nn.Module)
            and _LAYERWISE_TORCH
        ):
            layerwise = LayerwiseGramian(shared, self.params)
            if layerwise.modules:
                self._layerwise = layerwise
                self._way = "layerwise" if grad_mode == "layerwise" else None
            else:
                layerwise.close()

    @property
    def gramian_way(self) -> str | None:
        """How the Gramian is computed: ``"layerwise"``, ``"jacobian"``, or ``None`` (timing)."""
        return self._way

    @property
    def grad_way(self) -> str | None:
        """How per-task gradients are computed: ``"loop"``, ``"batched"``, or ``None`` (timing)."""
        return self._engine.chosen

    def collect(
        self,
        losses: Mapping[str, torch.Tensor],
        needs: Iterable[Need],
        representation: torch.Tensor | None = None,
    ) -> StepSignals:
        """The signals ``needs`` declares, for scalar ``losses`` keyed by task in task order.

        The forward graph is kept, so the weighted sum can be backpropagated afterwards.
        ``representation`` is required when ``needs`` has ``Need.REP_GRADS``.
        """
        needs = frozenset(needs)
        tasks = tuple(losses)
        ordered = list(losses.values())
        values = self._reduce_losses({t: loss.detach() for t, loss in losses.items()})
        self._pending = None
        grads = gram = rep = None
        task_grads = layerwise = None
        if needs & {Need.GRADS, Need.GRAMIAN}:
            grads, gram, task_grads, layerwise = self._task_signals(ordered, tasks, needs)
        if Need.REP_GRADS in needs:
            if representation is None:
                raise ValueError(
                    "gradients on the shared representation need the representation: pass "
                    "representation=<tensor> to backward()."
                )
            rep = self._reduce_rep_grads(representation_grads(ordered, representation))
        return StepSignals(values, grads, gram, rep, self.params, task_grads, layerwise)

    # -- hooks for data parallelism (identities here; see auxlab.distributed) --------------
    def reduce_values(self, values: torch.Tensor) -> torch.Tensor:
        """The step's loss values, ``(T,)`` float64, as the strategy and the record see them."""
        return values

    def _reduce_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return losses

    def _reduce_task_grads(self, task_grads: TaskGrads) -> TaskGrads:
        return task_grads

    def _reduce_rep_grads(self, rep_grads: torch.Tensor) -> torch.Tensor:
        return rep_grads

    def applied(self, total: torch.Tensor, shared_written: bool) -> None:
        """The step's gradients were written by backpropagating ``total``.

        ``shared_written``: the shared block's gradients were written from this step's
        per-task signals (not by the backward of ``total``).
        """

    def finish(self, strategy_seconds: float = 0.0) -> None:
        """The step was applied: under ``"auto"``, record its time.

        The strategy's own seconds are left out: they are the same whichever way gave its
        inputs, and a solver's vary from step to step.
        """
        if self._pending is not None:
            way, start, counts = self._pending
            self._timed(way, start + strategy_seconds, counts)
        self._pending = None

    def clear(self) -> None:
        """Forget what the shared layers recorded (after every step, applied or not)."""
        self._pending = None
        if self._layerwise is not None:
            self._layerwise.clear()

    # -- per-task gradients or the layer-wise Gramian --------------------------------------
    def _task_signals(
        self, ordered: list[torch.Tensor], tasks: tuple[str, ...], needs: frozenset[Need]
    ) -> _PerTask:
        way, start = self._next_way(needs), time.perf_counter()
        counts = {k: len(v) for k, v in self._inner_timings(way).items()}
        gram = None
        if way == "layerwise" and self._layerwise is not None:
            gram = self._layerwise.compute(ordered, self.params)
            if gram is None:
                if not self._layerwise.zero_row:
                    self._missed()
                way = "missed"
            else:
                self._pending = (way, start, counts)
                return None, gram, None, self._layerwise
        task_grads = self._reduce_task_grads(self._engine.task_grads(ordered, self.params, tasks))
        grads = task_grads.flat() if Need.GRADS in needs else None
        if Need.GRAMIAN in needs:
            gram = task_grads.gramian()
        if way == "jacobian":
            self._pending = (way, start, counts)
        return grads, gram, task_grads, None

    def _next_way(self, needs: frozenset[Need]) -> str:
        if self._layerwise is None or Need.GRADS in needs:
            return "jacobian"
        if self._way is not None:
            return self._way
        self._measured += 1
        return ("jacobian", "layerwise")[self._measured % 2]  # layer-wise first

    def _missed(self) -> None:
        """The layer-wise Gramian could not be used at this step (the fallback is exact)."""
        self._layerwise_misses += 1
        if self.grad_mode == "layerwise":
            if self._layerwise_misses == 1:
                reason = self._layerwise.reason if self._layerwise is not None else ""
                warnings.warn(
                    f"the layer-wise Gramian cannot be used at this step ({reason}); using "
                    "the per-task gradients (same result)",
                    RuntimeWarning,
                    stacklevel=_USER_FRAME,
                )
        elif self._layerwise_misses >= 2 and self._layerwise is not None:
            self._layerwise.close()
            self._layerwise = None
            self._way = "jacobian"

    # -- "auto": timing the layer-wise Gramian against the per-task gradients --------------
    def _inner_timings(self, way: str) -> dict[str, list[float]]:
        """The per-call timings of the engine behind ``way`` (which inner way ran)."""
        if way == "layerwise" and self._layerwise is not None:
            return self._layerwise.timings
        return self._engine.timings

    def _timed(self, way: str, start: float, before: dict[str, int]) -> None:
        """Record a measured step; once both ways are known, keep the faster."""
        if self._way is not None or self._layerwise is None:
            return
        if self.params[0].is_cuda:
            torch.cuda.synchronize(self.params[0].device)
        seconds = time.perf_counter() - start
        timings = self._inner_timings(way)
        # Which inner way (loop or batched) this step used; its first call includes warm-up.
        inner = next((k for k, v in timings.items() if len(v) > before.get(k, 0)), "")
        if inner and before.get(inner, 0) > 0:
            self._way_times[way].append((inner, seconds))
        chosen = {"layerwise": self._layerwise.chosen, "jacobian": self._engine.chosen}
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


class ValidationSource:
    """The main task's validation loss and its gradient, for validation-driven strategies.

    Each call of :meth:`grad_fn` makes a function that, at its first call, draws the next
    validation batch (starting ``val`` over when it is used up), computes the main task's
    loss on it with the model as it is, and returns its gradient on the shared parameters as
    a flat ``(d,)`` vector laid out like a row of the per-task gradients (zeros where the
    loss does not reach a parameter). Later calls return the same tensor, so a strategy that
    does not read it costs nothing and one that reads it twice pays once.

    Args:
        val: Validation batches (any re-iterable: a loader, a list), or ``None`` when
            ``val_loss`` draws its own batches.
        val_loss: ``val_loss(batch) -> scalar tensor``, the main task's loss on one batch
            with its autograd graph (``val_loss()`` when ``val`` is ``None``).
        params: The shared parameters.
    """

    def __init__(
        self,
        val: Iterable[Any] | None,
        val_loss: Callable[..., torch.Tensor],
        params: Sequence[torch.Tensor],
    ) -> None:
        if not callable(val_loss):
            raise TypeError(
                "val_loss must be a function of one validation batch that returns the main "
                f"task's loss (a scalar tensor), got {type(val_loss).__name__}"
            )
        if val is not None and not isinstance(val, Iterable):
            raise TypeError(
                f"val must be an iterable of validation batches, got {type(val).__name__}"
            )
        self.val = val
        self.val_loss = val_loss
        self.params = list(params)
        self._it: Iterator[Any] | None = None
        #: Validation batches drawn so far.
        self.batches = 0
        #: The main task's validation loss at the last computed gradient.
        self.last_loss: float | None = None

    def _next_batch(self) -> Any:
        assert self.val is not None
        for _ in range(2):
            if self._it is None:
                self._it = iter(self.val)
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                continue
            self.batches += 1
            return batch
        raise ValueError(
            "the validation batches (val=) gave no batch: validation-driven weighting needs "
            "at least one. If it is a generator, pass a re-iterable such as a list or loader."
        )

    def grad(self) -> torch.Tensor:
        """The main task's validation gradient on the next batch, flat ``(d,)``."""
        with torch.enable_grad():
            loss = self.val_loss(self._next_batch()) if self.val is not None else self.val_loss()
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                raise TypeError(
                    "val_loss must return the main task's validation loss as a scalar tensor, "
                    f"got {loss!r:.80}"
                )
            if not loss.requires_grad:
                raise ValueError(
                    "val_loss returned a loss without an autograd graph (computed under "
                    "torch.no_grad(), or detached?); its gradient drives the weights."
                )
            self.last_loss = float(loss.detach())
            parts = torch.autograd.grad(loss, self.params, allow_unused=True)
        flat = [
            torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
            if g is None
            else (g.to_dense() if g.is_sparse else g).reshape(-1)
            for p, g in zip(self.params, parts, strict=True)
        ]
        return torch.cat(flat) if flat else torch.zeros(0)

    def grad_fn(self) -> Callable[[], torch.Tensor]:
        """A function that computes :meth:`grad` at its first call and then returns it."""
        cache: list[torch.Tensor] = []

        def main_val_grad() -> torch.Tensor:
            if not cache:
                cache.append(self.grad())
            return cache[0]

        return main_val_grad
