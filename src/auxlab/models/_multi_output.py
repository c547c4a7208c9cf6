"""Multi-output regression and classification: one shared MLP, one named head per target.

Every target is a task. :class:`MultiOutputMLP` returns ``{target: output}``; its
:meth:`~MultiOutputMLP.objective` builds the matching :class:`~auxlab.Objective` with one
target as the main task and the others auxiliary, or all equal (the main task then only
names the task that early stopping and reports follow).

Missing targets are masked per task. A target value that is NaN (or a negative class id for
a ``"multiclass"`` target) is *missing*: :func:`masked` losses average over the observed
values only, and a task with no observed value in a batch contributes a zero that is still
part of the graph (``0 · Σ outputs``), so it adds nothing to the gradient and never makes the
total NaN. :func:`masked_metric` does the same for metrics. A batch mean over the observed
values weighs a batch with one observed value as much as a full one, as PyTorch's
``ignore_index`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from auxlab._checks import check_fraction, check_int
from auxlab.models._masked import masked, masked_metric, multilabel_scores
from auxlab.objective import LossFn, MetricFn, Objective, resolve_loss

__all__ = [
    "MultiOutputMLP",
    "Target",
    "masked",
    "masked_metric",
    "multilabel_scores",
]

Kind = Literal["regression", "binary", "multiclass", "multilabel"]
_KINDS = ("regression", "binary", "multiclass", "multilabel")
_DEFAULT_LOSS = {
    "regression": "mse",
    "binary": "bce_logits",
    "multiclass": "ce",
    "multilabel": "bce_logits",
}
_DEFAULT_METRICS = {
    "regression": ("mae", "r2"),
    "binary": ("accuracy",),
    "multiclass": ("accuracy",),
    "multilabel": ("accuracy",),
}


@dataclass(frozen=True)
class Target:
    """One target of a :class:`MultiOutputMLP`.

    Attributes:
        kind: ``"regression"`` (``size`` values, default 1), ``"binary"`` (one logit),
            ``"multiclass"`` (``size`` class logits) or ``"multilabel"`` (``size``
            independent logits).
        size: Number of output units: values, classes or labels.
    """

    kind: Kind
    size: int = 1

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}; kinds are {list(_KINDS)}")
        check_int("size", self.size)
        if self.kind == "binary" and self.size != 1:
            raise ValueError("a 'binary' target has one logit; use 'multilabel' for several")
        if self.kind == "multiclass" and self.size < 2:
            raise ValueError("a 'multiclass' target needs size >= 2 classes")

    @property
    def loss(self) -> str:
        """The auxlab loss name for this kind of target."""
        return _DEFAULT_LOSS[self.kind]

    @classmethod
    def parse(cls, spec: Target | str | tuple[str, int]) -> Target:
        """``"regression"``, ``("multiclass", 3)`` or a :class:`Target`."""
        if isinstance(spec, Target):
            return spec
        if isinstance(spec, str):
            return cls(spec)  # type: ignore[arg-type]
        if isinstance(spec, tuple) and len(spec) == 2:
            return cls(spec[0], check_int("the size of a target", spec[1]))  # type: ignore[arg-type]
        raise TypeError(
            f"a target is 'regression', 'binary', ('multiclass', n), ('multilabel', n), "
            f"('regression', n) or a Target; got {spec!r}"
        )


# ---------------------------------------------------------------------------------------------
# Masked losses and metrics.


class MultiOutputMLP(nn.Module):
    """A shared MLP trunk with one head per named target; forward returns ``{target: output}``.

    Regression heads return values (shape ``(batch,)`` for one value, ``(batch, size)`` for
    several); ``"binary"`` heads one logit ``(batch,)``; ``"multiclass"`` heads class logits
    ``(batch, size)``; ``"multilabel"`` heads ``size`` logits. With ``hidden=()`` every head
    is a linear model of the inputs.

    Args:
        in_features: Number of input features.
        targets: ``{name: spec}`` in output order; a spec is ``"regression"``, ``"binary"``,
            ``("multiclass", n_classes)``, ``("multilabel", n_labels)``,
            ``("regression", n_values)`` or a :class:`Target`.
        hidden: Widths of the shared hidden layers (ReLU).
        dropout: Dropout after each hidden layer.
        main: The main target; the others are auxiliary. ``None``: all targets are equal
            (see :meth:`objective`).
        init: ``"he_uniform"`` (Keras' ``kernel_initializer='he_uniform'``, zero biases) or
            ``"torch"`` (PyTorch's defaults).
        seed: Seed for the initialisation (a local generator; nothing is seeded globally).

    Example:
        >>> model = MultiOutputMLP(10, {"y1": "regression", "y2": ("multiclass", 3)}, seed=0)
        >>> {k: tuple(v.shape) for k, v in model(torch.zeros(4, 10)).items()}
        {'y1': (4,), 'y2': (4, 3)}
        >>> model.objective().loss_names
        {'y1': 'mse', 'y2': 'ce'}
    """

    def __init__(
        self,
        in_features: int,
        targets: Mapping[str, Target | str | tuple[str, int]],
        hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
        main: str | None = None,
        init: Literal["he_uniform", "torch"] = "he_uniform",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_int("in_features", in_features)
        if not isinstance(targets, Mapping) or not targets:
            raise TypeError("targets must be a non-empty dict {name: kind}")
        bad = [t for t in targets if not isinstance(t, str) or not t]
        if bad:
            raise TypeError(f"target names must be non-empty strings, got {bad!r}")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a list of layer widths (e.g. (64,)), got {hidden!r}")
        for i, h in enumerate(hidden):
            check_int(f"hidden[{i}]", h)
        if main is not None and main not in targets:
            raise ValueError(f"main target {main!r} is not one of the targets {list(targets)}")
        check_fraction("dropout", dropout)
        if init not in ("he_uniform", "torch"):
            raise ValueError(f"init must be 'he_uniform' or 'torch', got {init!r}")
        self.targets = {name: Target.parse(spec) for name, spec in targets.items()}
        self.output_names = tuple(self.targets)
        self.in_features = int(in_features)
        self.main = main
        # Built under a forked, seeded generator when a seed is given, so PyTorch's own
        # initialisation in the constructors does not draw from the caller's generator.
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            layers: list[nn.Module] = []
            width = in_features
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                width = h
            self.trunk = nn.Sequential(*layers)
            self.heads = nn.ModuleDict(
                {name: nn.Linear(width, t.size) for name, t in self.targets.items()}
            )
        if init == "he_uniform":
            self._he_uniform(seed)

    def _he_uniform(self, seed: int | None) -> None:
        g = torch.Generator()
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        g.manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    limit = math.sqrt(6.0 / m.in_features)
                    m.weight.uniform_(-limit, limit, generator=g)
                    m.bias.zero_()

    @property
    def shared(self) -> nn.Sequential:
        """The trunk that every head shares (for gradient-based strategies)."""
        return self.trunk

    @property
    def losses(self) -> dict[str, str]:
        """``{target: loss name}``: ``mse`` / ``bce_logits`` / ``ce`` by kind."""
        return {name: t.loss for name, t in self.targets.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{target: output}`` for inputs ``(batch, in_features)``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"MultiOutputMLP takes inputs of shape (batch, {self.in_features}), got {got}"
            )
        z = self.trunk(x)
        out = {}
        for name, head in self.heads.items():
            y = head(z)
            out[name] = y.squeeze(-1) if self.targets[name].size == 1 else y
        return out

    def objective(
        self,
        losses: Mapping[str, str] | None = None,
        metrics: Mapping[str, Sequence[str]] | None = None,
        main: str | None = None,
        mask_missing: bool = True,
    ) -> Objective:
        """The :class:`~auxlab.Objective` for these targets.

        Args:
            losses: Override the loss of some targets (e.g. ``{"count": "mae"}``).
            metrics: ``{target: [metric names]}``; default MAE and R² for regression,
                accuracy for classification.
            main: The main task; default the model's ``main``, else the first target (all
                targets equal: train with ``"equal"`` weights).
            mask_missing: Use :func:`masked` losses and metrics, so NaN targets (and negative
                class ids) are skipped per task.
        """
        names = dict(self.losses)
        for task, spec in (losses or {}).items():
            if task not in names:
                raise ValueError(f"losses name {task!r}, which is not a target {list(names)}")
            names[task] = resolve_loss(spec)[0]
        chosen = metrics or {n: _DEFAULT_METRICS[t.kind] for n, t in self.targets.items()}
        if mask_missing:
            loss_fns: dict[str, str | LossFn] = {t: masked(n) for t, n in names.items()}
            metric_fns: dict[str, list[str | MetricFn]] = {
                t: [masked_metric(m, names[t]) for m in ms] for t, ms in chosen.items()
            }
        else:
            loss_fns = dict(names)
            metric_fns = {t: list(ms) for t, ms in chosen.items()}
        return Objective(
            loss_fns,
            main=main or self.main or self.output_names[0],
            outputs=self.output_names,
            metrics=metric_fns,
        )
