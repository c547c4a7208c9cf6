"""Scoring and predicting with a trained model: :func:`evaluate` and :func:`predict`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from auxlab.objective import Objective
from auxlab.train._loader import ArrayLoader, Batch, call_model, device_of, to_device

__all__ = ["evaluate", "predict"]


def _name_outputs(out: tuple[Any, ...] | list[Any], names: Any) -> dict[Any, Any]:
    """A tuple of outputs keyed by the declared output names (by position without names)."""
    if not names:
        return dict(enumerate(out))
    names = tuple(names)
    if len(names) != len(out):
        raise ValueError(
            f"the model returned {len(out)} outputs but {len(names)} output names are declared "
            f"({list(names)})"
        )
    return dict(zip(names, out, strict=True))


def _check_data(name: str, data: Any) -> None:
    if data is None or isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            f"{name} must be batches (an ArrayLoader, a DataLoader, a list of batches), or for "
            f"predict a tensor or a dict of tensors; got {type(data).__name__}."
        )


@torch.no_grad()
def _collect(
    model: nn.Module,
    data: Iterable[Any],
    device: torch.device,
    with_targets: bool,
    names: tuple[str, ...] | None = None,
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
                if not isinstance(out, (tuple, list)):
                    raise TypeError(
                        "the model must return a tensor, a dict {task: tensor} or a tuple of "
                        f"tensors, got {type(out).__name__}"
                    )
                out = _name_outputs(out, names or getattr(model, "output_names", None))
            for k, v in out.items():
                if not isinstance(v, torch.Tensor):
                    raise TypeError(
                        f"the model's output '{k}' is a {type(v).__name__}, not a tensor"
                    )
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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an auxlab.Objective, got {type(objective).__name__}")
    _check_data("data", data)
    objective.bind(model)
    names = objective.tasks or None
    outputs, targets, _ = _collect(model, data, device_of(model), True, names)
    if not outputs:
        raise ValueError(
            "evaluate() got no batches: the data is empty, or an iterator (a generator) that "
            "an earlier pass used up; pass a re-iterable such as an ArrayLoader."
        )
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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(main, str):
        raise TypeError(f"main must be an output name (a string), got {main!r}")
    if isinstance(data, np.ndarray):
        raise TypeError(
            "predict takes torch tensors, got a numpy array; convert it with "
            "torch.as_tensor(x, dtype=torch.float32)."
        )
    if isinstance(data, (Mapping, torch.Tensor)):
        data = ((x, {}) for x, _ in ArrayLoader(data, None, batch_size=batch_size))
    else:
        _check_data("data", data)
    outputs, _, _ = _collect(model, data, device_of(model), with_targets=False)
    if not outputs:
        raise ValueError("predict() got no batches: the data is empty (or a used-up iterator)")
    if all_outputs:
        return outputs
    if main not in outputs:
        raise KeyError(f"the model has no output '{main}'; outputs are {list(outputs)}")
    return outputs[main]
