"""A Balancer in a PyTorch Lightning ``LightningModule``, with manual optimisation.

Lightning's automatic optimisation calls ``loss.backward()`` itself, on the one loss that
``training_step`` returns; a Balancer must make that backward (it writes the shared block's
gradient from the per-task gradients). So the module sets ``automatic_optimization = False``
and calls :func:`balanced_step` (or :func:`balanced_backward` and steps the optimizer
itself) in place of ``self.manual_backward(loss)``::

    class Model(lightning.pytorch.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.trunk, self.heads = ..., ...
            self.balancer = Balancer("pcgrad", shared=self.trunk, tasks=["main", "aux"])

        def training_step(self, batch, batch_idx):
            losses = ...  # {task: scalar loss}
            record = balanced_step(self, self.balancer, losses, accumulate=2)
            self.log("loss", record.total)

        def configure_optimizers(self):
            return torch.optim.SGD(list(self.parameters()) + self.balancer.parameters(), lr=0.1)

What Lightning keeps doing:

* **Precision.** The weighted total is backpropagated through ``self.manual_backward``, so
  the precision plugin scales it (``16-mixed``'s gradient scaler), and the
  ``on_before_backward`` / ``on_after_backward`` hooks run. ``bf16-mixed`` and ``16-mixed``
  autocast the forward as usual. Strategies that read per-task gradients compute them with
  :func:`torch.autograd.grad` and write the shared block's gradient themselves, outside the
  gradient scaler: with a scaler (``16-mixed``) they are refused with an error; use
  ``bf16-mixed`` (no scaler) or ``32``.
* **Accumulation.** Lightning does not accumulate for a manually optimised module
  (``Trainer(accumulate_grad_batches=...)`` is refused); ``accumulate=k`` steps the
  optimizer every ``k`` batches and on the epoch's last batch, and the gradients of the ``k``
  batches add up (as ``k`` backward calls do; divide the learning rate by ``k`` for their
  mean). Under DDP the batches in between skip the gradient all-reduce
  (``strategy.block_backward_sync``).
* **The optimizer step** goes through Lightning's optimizer wrapper (``self.optimizers()``),
  so the precision plugin's step (unscaling, skipping non-finite steps) and the step
  counters (``trainer.global_step``, ``max_steps``) work.

Data parallelism (``Trainer(strategy="ddp")``): loss-based strategies run as under plain
DDP (each process weighs its own batch's losses; the gradients are averaged by DDP).
Strategies that read per-task gradients are refused there for now: the data-parallel
Balancer (``docs/distributed.md``) is tested in plain torch loops, not yet under Lightning's
reducer. See ``docs/lightning.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from auxlab.balancer import Balancer, StepRecord
from auxlab.weighting import Need

__all__ = ["balanced_backward", "balanced_step"]

_PER_TASK_GRADS = frozenset({Need.GRADS, Need.GRAMIAN})


def balanced_backward(
    module: Any,
    balancer: Balancer,
    losses: Mapping[str, torch.Tensor],
    representation: torch.Tensor | None = None,
    val_losses: Mapping[str, float] | None = None,
) -> StepRecord:
    """``balancer.backward(losses)`` with the weighted total backpropagated by Lightning.

    The replacement for ``self.manual_backward(loss)`` in a ``LightningModule`` with
    ``automatic_optimization = False``: the Balancer decides the weights, and the backward
    of the weighted sum goes through ``module.manual_backward`` (precision plugin, hooks).

    Args:
        module: The ``LightningModule`` (attached to a ``Trainer``).
        balancer: The module's Balancer.
        losses: Scalar loss per task.
        representation: The shared representation, for strategies that need it.
        val_losses: Validation losses per task, for strategies that need them.

    Returns:
        The Balancer's record of the step.

    Raises:
        ValueError: If the module is automatically optimised, or the Balancer's strategy
            reads per-task gradients under a gradient scaler (``precision="16-mixed"``) or
            under DDP without a distributed Balancer.
    """
    _check(module, balancer)
    return balancer.backward(losses, representation, val_losses, backward=_manual_backward(module))


def balanced_step(
    module: Any,
    balancer: Balancer,
    losses: Mapping[str, torch.Tensor],
    representation: torch.Tensor | None = None,
    val_losses: Mapping[str, float] | None = None,
    *,
    accumulate: int = 1,
    optimizer: Any = None,
) -> StepRecord:
    """One training step: :func:`balanced_backward`, then the optimizer every ``accumulate``.

    Call it once per batch from ``training_step``. The optimizer steps (and zeroes the
    gradients) after every ``accumulate``-th call and on the epoch's last batch; the
    gradients of the batches in between add up.

    Args:
        module: The ``LightningModule`` (attached to a ``Trainer``).
        balancer: The module's Balancer.
        losses: Scalar loss per task.
        representation: The shared representation, for strategies that need it.
        val_losses: Validation losses per task, for strategies that need them.
        accumulate: Batches per optimizer step (a positive integer).
        optimizer: The optimizer to step, one of ``module.optimizers()`` (Lightning's
            wrappers, whose step goes through the precision plugin); default
            ``module.optimizers()``, which must then be a single one. With several, pass
            one: it is toggled (``module.toggled_optimizer``) around the backward, as
            Lightning advises.

    Returns:
        The Balancer's record of the step.
    """
    if isinstance(accumulate, bool) or int(accumulate) != accumulate or accumulate < 1:
        raise ValueError(f"accumulate must be a positive integer, got {accumulate!r}")
    _check(module, balancer)
    trainer = module.trainer
    if optimizer is None:
        optimizer = module.optimizers()
        if isinstance(optimizer, list):
            raise ValueError(
                f"the module has {len(optimizer)} optimizers; pass optimizer=... to "
                "balanced_step to say which one the Balancer's step uses."
            )
        toggle: Any = contextlib.nullcontext()
    else:
        toggle = module.toggled_optimizer(optimizer)
    calls = getattr(module, "_auxlab_balanced_calls", 0) + 1
    module._auxlab_balanced_calls = calls
    stepping = calls % accumulate == 0 or bool(getattr(trainer, "is_last_batch", False))
    # Between optimizer steps, DDP need not all-reduce: the gradients accumulate locally.
    block = getattr(trainer.strategy, "block_backward_sync", None)
    sync = block() if (not stepping and block is not None) else contextlib.nullcontext()
    with toggle:
        with sync:
            record = balanced_backward(module, balancer, losses, representation, val_losses)
        if stepping:
            optimizer.step()
            optimizer.zero_grad()
            module._auxlab_balanced_calls = 0
    return record


def _manual_backward(module: Any) -> Any:
    def run(tensor: torch.Tensor, **kwargs: Any) -> None:
        module.manual_backward(tensor, **kwargs)

    return run


def _check(module: Any, balancer: Balancer) -> None:
    if getattr(module, "automatic_optimization", False):
        raise ValueError(
            f"{type(module).__name__} uses automatic optimisation, in which Lightning makes "
            "the backward; the Balancer must make it. Set self.automatic_optimization = False "
            "in __init__ and call balanced_step(self, balancer, losses) in training_step."
        )
    if not balancer.strategy.needs & _PER_TASK_GRADS:
        return
    name = type(balancer.strategy).__name__
    trainer = module.trainer
    if getattr(trainer.precision_plugin, "scaler", None) is not None:
        raise ValueError(
            f"{name} computes per-task gradients with torch.autograd.grad, outside Lightning's "
            f"gradient scaler (precision={trainer.precision!r}), so its shared gradient would "
            "not be scaled like the others. Use precision='bf16-mixed' or '32', or a "
            "loss-based strategy."
        )
    if trainer.world_size > 1:
        raise ValueError(
            f"{name} reads per-task gradients, which torch.autograd.grad computes without "
            f"DDP's all-reduce: on {trainer.world_size} processes each would decide on its own "
            "batch. auxlab's data-parallel Balancer (Balancer(distributed=ddp_model), "
            "docs/distributed.md) handles this in a plain torch loop, but it is not yet tested "
            "under Lightning's DDP strategy, whose manual_backward prepares DDP's reducer for "
            "every parameter. Under Lightning's DDP use a loss-based strategy; for gradient "
            "strategies on several processes use a plain loop with Balancer(distributed=...)."
        )
