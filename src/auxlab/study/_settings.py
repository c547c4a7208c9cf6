"""Settings: the strategy specs of a study, expanded into runnable, named settings."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auxlab import schedules
from auxlab._errors import TaskMismatchError
from auxlab.study._config import ConfigError
from auxlab.weighting import FixedWeights, Strategy, create, scheduled

__all__ = ["Setting", "expand", "log_grid"]


def log_grid(low: float, high: float, num: int, zero: bool = True) -> list[float]:
    """``num`` weights spaced evenly in log scale from ``low`` to ``high``, with 0 first.

    Example:
        >>> log_grid(0.01, 1.0, 3)
        [0.0, 0.01, 0.1, 1.0]
    """
    if not (0 < low <= high) or not math.isfinite(high):
        raise ConfigError(f"a log grid needs 0 < low <= high, got low={low}, high={high}")
    if num < 1:
        raise ConfigError(f"a log grid needs num >= 1, got {num}")
    if num == 1:
        ws = [float(low)]
    else:
        a, b = math.log10(low), math.log10(high)
        ws = [float(f"{10 ** (a + (b - a) * i / (num - 1)):.6g}") for i in range(num)]
    return ([0.0] if zero else []) + ws


#: At most this many of a search's weights are a fixed grid before TPE proposes the rest.
GRID_MAX = 8


@dataclass(frozen=True)
class Setting:
    """One thing a study compares: a fixed weight, a schedule, a strategy, or a search.

    Attributes:
        id: Stable identity (with the seed, the identity of a trial).
        kind: ``"fixed"``, ``"schedule"``, ``"strategy"`` or ``"search"``.
        label: For tables and plots.
        weight: The auxiliary weight of a fixed setting.
        name: The schedule or strategy name.
        args: Its arguments.
        aux: The auxiliary tasks the weight or schedule applies to (``None``: all).
        low: Lower bound of a search.
        high: Upper bound of a search.
        log: Search in log scale.
        trials: Weights a search tries: the first ``min(trials, GRID_MAX)`` are the
            start-up grid (:meth:`grid`), the rest are proposed by Optuna's TPE sampler.
    """

    id: str
    kind: str
    label: str
    weight: float | None = None
    name: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    aux: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = True
    trials: int = 0

    def grid(self) -> list[float]:
        """A search's start-up weights: ``min(trials, GRID_MAX)`` points from ``low`` to ``high``.

        Log-spaced (evenly spaced when ``log`` is off), rounded to 6 significant digits,
        the same for every seed and every run of the study. One point is the middle.

        Example:
            >>> Setting("s", "search", "s", low=0.01, high=1.0, trials=3).grid()
            [0.01, 0.1, 1.0]
        """
        if self.kind != "search" or self.low is None or self.high is None:
            return []
        n = min(self.trials, GRID_MAX)
        lo, hi = self.low, self.high
        if n <= 0:
            return []
        if self.log:
            pts = (
                [math.sqrt(lo * hi)]
                if n == 1
                else [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
            )
        else:
            pts = [(lo + hi) / 2] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        return [float(f"{x:.6g}") for x in pts]

    @property
    def param(self) -> str:
        """The Optuna parameter name of a search's weight."""
        return f"weight[{self.id}]"

    def build(self, tasks: Sequence[str], main: str, weight: float | None = None) -> Strategy:
        """The strategy of this setting for these tasks (``weight``: a searched weight)."""
        aux = list(self.aux) if self.aux is not None else [t for t in tasks if t != main]
        unknown = [t for t in aux if t not in tasks]
        if unknown:
            raise TaskMismatchError(
                f"setting '{self.label}': aux tasks {unknown} are not in {list(tasks)}."
            )
        if self.kind in ("fixed", "search"):
            w = self.weight if weight is None else weight
            assert w is not None
            return FixedWeights({main: 1.0, **{t: float(w) for t in aux}})
        if self.kind == "schedule":
            assert self.name is not None
            factory = getattr(schedules, self.name)
            return scheduled({t: factory(**dict(self.args)) for t in aux})
        assert self.name is not None
        return create(self.name, **dict(self.args))


def _label(prefix: str, args: Mapping[str, Any]) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"{prefix}({inner})" if inner else prefix


def expand(specs: Sequence[Mapping[str, Any]]) -> list[Setting]:
    """Expand strategy specs into settings, checking names and values.

    Raises:
        ConfigError: For an unknown schedule or strategy, a bad grid, duplicate settings.
    """
    from auxlab.weighting import list_strategies

    out: list[Setting] = []
    n_search = 0
    for i, spec in enumerate(specs):
        kind = spec.get("kind")
        aux = tuple(spec["aux"]) if spec.get("aux") else None
        where = f"strategies[{i}]"
        if kind in ("fixed", "log_grid"):
            if kind == "fixed":
                weights = [float(w) for w in spec.get("weights", [])]
                if not weights:
                    raise ConfigError(f"{where}: 'weights' is empty")
            else:
                weights = log_grid(
                    float(spec.get("low", 0.01)),
                    float(spec.get("high", 1.0)),
                    int(spec.get("num", 3)),
                    bool(spec.get("zero", True)),
                )
            for w in weights:
                if not (math.isfinite(w) and w >= 0):
                    raise ConfigError(f"{where}: weights must be finite and >= 0, got {w}")
                suffix = f"@{','.join(aux)}" if aux else ""
                out.append(
                    Setting(
                        f"fixed:{w!r}{suffix}",
                        "fixed",
                        spec.get("label") or f"w={w:g}",
                        weight=w,
                        aux=aux,
                    )
                )
        elif kind == "schedule":
            name = spec.get("schedule")
            if (
                not isinstance(name, str)
                or name.startswith("_")
                or not callable(getattr(schedules, name, None))
            ):
                raise ConfigError(
                    f"{where}: unknown schedule {name!r}; known: {', '.join(schedules.__all__)}"
                )
            args = dict(spec.get("args", {}))
            try:
                getattr(schedules, name)(**args)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: schedule {name}({args}): {exc}") from None
            sid = f"schedule:{name}:{json.dumps(args, sort_keys=True)}"
            out.append(
                Setting(
                    sid,
                    "schedule",
                    spec.get("label") or _label(name, args),
                    name=name,
                    args=args,
                    aux=aux,
                )
            )
        elif kind == "strategy":
            name = spec.get("name")
            if name not in list_strategies():
                raise ConfigError(
                    f"{where}: unknown strategy {name!r}; registered: "
                    f"{', '.join(list_strategies())}"
                )
            args = dict(spec.get("args", {}))
            try:
                create(name, **args)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: strategy {name}({args}): {exc}") from None
            sid = f"strategy:{name}:{json.dumps(args, sort_keys=True)}"
            out.append(
                Setting(
                    sid, "strategy", spec.get("label") or _label(name, args), name=name, args=args
                )
            )
        elif kind == "search":
            low, high = float(spec.get("low", 0.001)), float(spec.get("high", 10.0))
            log = bool(spec.get("log", True))
            trials = int(spec.get("trials", 8))
            if not (0 <= low < high) or (log and low <= 0) or not math.isfinite(high):
                raise ConfigError(
                    f"{where}: a search needs 0 <= low < high (low > 0 in log scale), got "
                    f"low={low}, high={high}"
                )
            if trials < 1:
                raise ConfigError(f"{where}: trials must be >= 1, got {trials}")
            out.append(
                Setting(
                    f"search:{n_search}",
                    "search",
                    spec.get("label") or f"search [{low:g}, {high:g}]",
                    low=low,
                    high=high,
                    log=log,
                    trials=trials,
                    aux=aux,
                )
            )
            n_search += 1
        else:
            raise ConfigError(f"{where}: unknown kind {kind!r}")
    ids = [s.id for s in out]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise ConfigError(f"the same setting appears twice: {dups}")
    return out
