"""Losses and metrics by name: the ``"bce"``, ``"ce"``, ``"mse"``, ... of :class:`Objective`.

A loss maps ``(output, target)`` to a scalar tensor; a metric maps the whole set of
predictions and targets to a float. :mod:`auxlab.objective` re-exports the public names.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from auxlab._metrics import roc_auc

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]

__all__ = [
    "HIGHER_IS_BETTER",
    "LOSSES",
    "METRICS",
    "LossFn",
    "LossInputError",
    "MetricFn",
    "resolve_loss",
]


class LossInputError(ValueError):
    """An output or target that a built-in loss cannot take (wrong range, shape or class id).

    Raised without the task's name; :class:`~auxlab.Objective` adds it.
    """


def _squeezed(shape: torch.Size) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def check_same_shape(pred: torch.Tensor, target: torch.Tensor, what: str = "target") -> None:
    """Raise :class:`LossInputError` unless ``target`` has ``pred``'s shape up to size-1 dims.

    Equal element counts are not enough: a ``(3, 4)`` target for ``(4, 3)`` outputs, or a
    flat ``(12,)`` one, would be reshaped into the wrong rows without a word.
    """
    if target.shape != pred.shape and _squeezed(target.shape) != _squeezed(pred.shape):
        raise LossInputError(
            f"the output has shape {tuple(pred.shape)} but the {what} has shape "
            f"{tuple(target.shape)}; they must match (up to dimensions of size 1)."
        )


def align_target(pred: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Reshape ``target`` to ``pred``'s shape when only singleton dimensions differ."""
    if target.shape == pred.shape:
        return target.to(pred.dtype)
    try:
        check_same_shape(pred, target, "target")
    except LossInputError as e:
        raise LossInputError(f"task '{task}': {e}") from None
    return target.reshape(pred.shape).to(pred.dtype)


def _range(x: torch.Tensor) -> tuple[float, float, bool, bool]:
    """``(min, max)`` of the finite values of ``x``, whether it holds ±inf, and NaN.

    One read from the device (NaN marks a missing value for masked losses). Without a finite
    value, ``(0, 0)``.
    """
    x = x.detach().reshape(-1)
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.numel() == 0:
        return 0.0, 0.0, False, False
    # The common case first: min and max are finite (NaN and inf would show in them).
    lo, hi = torch.aminmax(x)
    stats = torch.stack([lo, hi]).tolist()
    if not x.dtype.is_floating_point or all(math.isfinite(v) for v in stats):
        return float(stats[0]), float(stats[1]), False, False
    finite = torch.isfinite(x)
    nan = torch.isnan(x)
    inf = ~finite & ~nan
    lo = torch.where(finite, x, torch.full_like(x, math.inf)).min()
    hi = torch.where(finite, x, torch.full_like(x, -math.inf)).max()
    flags = [inf.any(), nan.any(), finite.any()]
    values = torch.stack([lo.double(), hi.double(), *(f.double() for f in flags)]).tolist()
    if not values[4]:  # no finite value
        return 0.0, 0.0, bool(values[2]), bool(values[3])
    return values[0], values[1], bool(values[2]), bool(values[3])


def check_binary_target(target: torch.Tensor, loss: str) -> None:
    """Targets of ``bce`` / ``bce_logits`` must lie in [0, 1] (NaN, a missing value, aside)."""
    lo, hi, inf, _ = _range(target)
    if inf:
        raise LossInputError(f"'{loss}' needs targets in [0, 1], got inf")
    if lo < 0.0 or hi > 1.0:
        raise LossInputError(
            f"'{loss}' needs targets in [0, 1] (labels 0/1 or probabilities), got values in "
            f"[{lo:g}, {hi:g}]. Map the labels to 0/1 (e.g. y == positive_label), or use 'ce' "
            "for class ids."
        )


def check_probabilities(pred: torch.Tensor) -> None:
    """Outputs of ``bce`` must be probabilities; logits there are clipped to 0/1 silently."""
    lo, hi, _, _ = _range(pred)
    if lo < 0.0 or hi > 1.0:
        raise LossInputError(
            f"'bce' takes probabilities in [0, 1] but the outputs range over [{lo:g}, {hi:g}]; "
            "for logits (no sigmoid in the model) use 'bce_logits'."
        )


def check_class_ids(pred: torch.Tensor, ids: torch.Tensor, allow_missing: bool = False) -> None:
    """Class ids of ``ce`` must be integers in ``[0, C)`` (negative: missing, when masked)."""
    n_classes = pred.shape[-1] if pred.ndim >= 1 else 1
    rows = pred.shape[0] if pred.ndim >= 2 else 1
    if ids.numel() != rows:
        raise LossInputError(
            f"'ce' needs one class id per row: the output has shape {tuple(pred.shape)} "
            f"({rows} rows of {n_classes} class logits) but the target has shape "
            f"{tuple(ids.shape)}."
        )
    t = ids.detach()
    lo, hi, inf, nan = _range(t)
    if t.dtype.is_floating_point:
        if inf or (nan and not allow_missing):
            raise LossInputError("'ce' class ids must be finite; got NaN or inf.")
        if bool((t != t.round()).any()):  # NaN != NaN: only with allow_missing, checked below
            finite = t[torch.isfinite(t)]
            if bool((finite != finite.round()).any()):
                raise LossInputError(
                    "'ce' takes integer class ids (or class probabilities shaped like the "
                    "outputs); the targets hold fractions, which would be truncated."
                )
    if allow_missing:
        lo = max(lo, 0.0)  # negative ids are missing values
    if t.numel() and (hi >= n_classes or lo < 0):
        kind = "Negative class ids are allowed only with masked('ce'), as missing values. "
        raise LossInputError(
            f"'ce' class ids must be in [0, {n_classes - 1}] for {n_classes} class logits, got "
            f"ids in [{lo:g}, {hi:g}]. " + (kind if lo < 0 else "") + "Check the number of "
            "classes of the output layer and the labels' encoding."
        )


def _bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    check_probabilities(pred)
    check_binary_target(target, "bce")
    # Probabilities are clipped to [1e-7, 1 - 1e-7], as Keras' binary_crossentropy does.
    p = pred.clamp(1e-7, 1.0 - 1e-7)
    return F.binary_cross_entropy(p, target)


def _bce_logits(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    check_binary_target(target, "bce_logits")
    return F.binary_cross_entropy_with_logits(pred, target)


def _ce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Integer class ids, or class probabilities of the same shape as the logits.
    if target.dtype.is_floating_point and target.shape == pred.shape:
        return F.cross_entropy(pred, target)
    check_class_ids(pred, target)
    return F.cross_entropy(pred, target.reshape(-1).long())


#: Built-in losses by name. ``bce`` takes probabilities, ``bce_logits`` and ``ce`` take logits.
LOSSES: dict[str, LossFn] = {
    "bce": _bce,
    "bce_logits": _bce_logits,
    "ce": _ce,
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
}

#: Keras spellings accepted as aliases.
_ALIASES = {
    "binary_crossentropy": "bce",
    "sparse_categorical_crossentropy": "ce",
    "categorical_crossentropy": "ce",
    "cross_entropy": "ce",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "l1": "mae",
    "smooth_l1": "huber",
}

NEEDS_ALIGN = {"bce", "bce_logits", "mse", "mae", "huber"}


def resolve_loss(spec: str | LossFn) -> tuple[str, LossFn]:
    """Return ``(name, function)`` for a loss given by name or as a callable.

    Raises:
        ValueError: For an unknown name; the message lists the known names.
        TypeError: For anything that is neither a string nor a callable.
    """
    if isinstance(spec, str):
        name = _ALIASES.get(spec, spec)
        if name not in LOSSES:
            known = ", ".join(sorted(LOSSES)) + "; aliases: " + ", ".join(sorted(_ALIASES))
            raise ValueError(f"unknown loss '{spec}'. Known losses: {known}.")
        return name, LOSSES[name]
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__), spec
    raise TypeError(f"a loss must be a name or a callable, got {type(spec).__name__}")


# ---------------------------------------------------------------------------------------------
# Metrics: functions of the whole set of predictions and targets, returning a float.


def _binary_scores(pred: torch.Tensor, loss_name: str) -> torch.Tensor:
    """Probability-like scores for binary accuracy; logits for ``bce_logits``."""
    return torch.sigmoid(pred) if loss_name == "bce_logits" else pred


def _accuracy(loss_name: str) -> MetricFn:
    def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
        if loss_name == "ce":
            if target.dtype.is_floating_point and target.shape == pred.shape:
                target = target.argmax(-1)  # class probabilities: categorical accuracy
            return (pred.argmax(-1) == target.reshape(-1).long()).double().mean().item()
        p = _binary_scores(pred, loss_name).reshape(-1)
        return ((p > 0.5).double() == (target.reshape(-1) > 0.5).double()).double().mean().item()

    return accuracy


def _auc(loss_name: str) -> MetricFn:
    def auc(pred: torch.Tensor, target: torch.Tensor) -> float:
        return roc_auc(target.reshape(-1).cpu().numpy(), pred.reshape(-1).double().cpu().numpy())

    return auc


def _regression(kind: str) -> Callable[[str], MetricFn]:
    def build(loss_name: str) -> MetricFn:
        def metric(pred: torch.Tensor, target: torch.Tensor) -> float:
            p = pred.reshape(-1).double()
            t = target.reshape(-1).double()
            if kind == "mse":
                return ((p - t) ** 2).mean().item()
            if kind == "mae":
                return (p - t).abs().mean().item()
            ss_res = ((p - t) ** 2).sum()
            ss_tot = ((t - t.mean()) ** 2).sum()
            return (1.0 - ss_res / ss_tot).item() if ss_tot > 0 else float("nan")

        metric.__name__ = kind
        return metric

    return build


#: Built-in metrics by name. Each is resolved per task from the task's loss (as Keras resolves
#: ``"accuracy"``): binary accuracy thresholds probabilities at 0.5 and logits at 0.
METRICS: dict[str, Callable[[str], MetricFn]] = {
    "accuracy": _accuracy,
    "auc": _auc,
    "mse": _regression("mse"),
    "mae": _regression("mae"),
    "r2": _regression("r2"),
}

#: Whether a larger value of the metric is better.
HIGHER_IS_BETTER = {"accuracy": True, "auc": True, "mse": False, "mae": False, "r2": True}
