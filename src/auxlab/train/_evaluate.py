"""Scoring and predicting with a trained model: :func:`evaluate` and :func:`predict`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from auxlab.objective import Objective
from auxlab.train._loader import ArrayLoader, Batch, call_model, device_of, to_device

__all__ = ["evaluate", "predict"]


@torch.no_grad()
def _collect(
    model: nn.Module, data: Iterable[Any], device: torch.device, with_targets: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[int]]:
    outs: dict[str, list[torch.Tensor]] = {}
    tgts: dict[str, list[torch.Tensor]] = {}
    sizes: list[int] = []
    was_training = model.training
    model.eval()
    try:
        for batch in data:
            # A batch is (inputs, targets) when its second item is a dict of targets; a plain
            # tuple of tensors is positional inputs.
            pair = isinstance(batch, (tuple, list)) and len(batch) == 2
            if with_targets or (pair and isinstance(batch[1], Mapping)):
                inputs, targets = batch
            else:
                inputs, targets = batch, {}
            out = call_model(model, to_device(inputs, device))
            if isinstance(out, torch.Tensor):
                out = {"main": out}
            if not isinstance(out, Mapping):
                out = dict(enumerate(out))
            for k, v in out.items():
                outs.setdefault(k, []).append(v.detach())
            for k, v in (targets or {}).items():
                tgts.setdefault(k, []).append(to_device(v, device))
            sizes.append(len(next(iter(out.values()))))
    finally:
        model.train(was_training)
    return (
        {k: torch.cat(v) for k, v in outs.items()},
        {k: torch.cat(v) for k, v in tgts.items()},
        sizes,
    )


def evaluate(
    model: nn.Module, data: Iterable[Batch], objective: Objective, prefix: str = ""
) -> dict[str, float]:
    """Losses and metrics over a whole data set.

    Returns:
        ``{prefix + "loss_<task>": mean loss, prefix + "<task>_<metric>": value}``. Losses are
        computed on all predictions at once, so they equal the per-example mean for the
        built-in (mean-reduced) losses.
    """
    objective.bind(model)
    outputs, targets, _ = _collect(model, data, device_of(model), with_targets=True)
    if not outputs:
        raise ValueError("evaluate() got no batches")
    with torch.no_grad():
        losses = objective(outputs, targets)
    result = {f"{prefix}loss_{t}": float(v) for t, v in losses.items()}
    for k, v in objective.compute_metrics(outputs, targets).items():
        result[f"{prefix}{k}"] = v
    return result


def predict(
    model: nn.Module,
    data: Iterable[Any] | Mapping[str, torch.Tensor] | torch.Tensor,
    all_outputs: bool = False,
    main: str = "main",
    batch_size: int = 256,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Predict; return the main output only, unless ``all_outputs=True``.

    Args:
        model: A model returning ``{task: output}``.
        data: An iterable of batches (``inputs`` or ``(inputs, targets)``), or in-memory
            inputs (a dict of tensors or one tensor) that are batched by ``batch_size``.
        all_outputs: Return every output as a dict.
        main: Name of the main output.
        batch_size: Rows per batch for in-memory inputs.
    """
    if isinstance(data, (Mapping, torch.Tensor)):
        data = ((x, {}) for x, _ in ArrayLoader(data, None, batch_size=batch_size))
    outputs, _, _ = _collect(model, data, device_of(model), with_targets=False)
    if all_outputs:
        return outputs
    if main not in outputs:
        raise KeyError(f"the model has no output '{main}'; outputs are {list(outputs)}")
    return outputs[main]
