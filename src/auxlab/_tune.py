"""``auxlab.tune``: learn the auxiliary weights in one call, and train weight 0 beside it.

Given a builder (``builder(seed, **args) -> Problem``), a :class:`~auxlab.study.Problem` or a
study TOML, :func:`tune` learns the weights on the validation split within about two runs'
time (by default ``halving``: weight 0 raced against weight 3, the better one on validation
finishing the run; or a method that moves the weights during one run), trains weight 0 with
the same seed for comparison, and returns a :class:`TuneResult`: the learned weights as fixed
weights and as ``RelativeWeights`` shares, their trajectory, the validation (and test)
metric of both runs, and their times. ``verify=N`` then trains ``N``
fresh seeds at weight 0 and at the learned weights held fixed, and compares them seed by seed.

Validation drives the weights and picks the best epoch; the test split, when the problem has
one, is scored once per run and never used to choose.
"""

from __future__ import annotations

import copy
import difflib
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "TuneError",
    "TuneResult",
    "Verify",
    "learn_weights",
    "paired_comparison",
    "tune",
]


#: Methods, with their cost class (a multiple of one fixed-weight run).
METHODS: dict[str, str] = {
    "lookahead-val": "about 1.0-1.9x one fixed run: per-task gradients and a validation "
    "backward every 5th step (Balancer(every=5))",
    "auxilearn": "about 1.3-2.2x one fixed run: an implicit hypergradient every 10th step",
    "ol-aux": "about 1.3-2x one fixed run: per-task gradients on the shared block each step",
    "forkmerge": "2 branches x one fixed run, plus 6 validation passes per merge (2 merges "
    "per epoch): about 2.5-4.5x",
    "halving": "successive halving over fixed weights, by default 0 and 3 (both trained to "
    "4E/5, the better on validation on to E): 1.8 fixed runs' epochs, about 1.7-2x",
}

#: The method :func:`tune` uses unless told otherwise (chosen by measurement: docs/tune.md).
DEFAULT_METHOD = "halving"

#: Training batches on which the gradient norms behind the shares are measured.
SHARE_BATCHES = 8


class TuneError(ValueError):
    """A target, method or setting that :func:`tune` cannot use; the message says why."""


@dataclass
class Verify:
    """The paired comparison of ``verify=N``: N seeds at weight 0 and at the learned weights.

    Attributes:
        seeds: The seeds (fresh: not the seed the weights were learned with).
        split: ``"test"`` when the problem has a test split, else ``"val"``.
        zero: The metric at weight 0, per seed.
        learned: The metric at the learned weights (fixed), per seed.
        diffs: ``learned − zero`` per seed.
        mean: Their mean.
        low: The 95 % t-interval's lower end (NaN with one seed).
        high: Its upper end.
        higher_is_better: Whether a larger metric is better.
    """

    seeds: list[int]
    split: str
    zero: list[float]
    learned: list[float]
    diffs: list[float]
    mean: float
    low: float
    high: float
    higher_is_better: bool

    @property
    def verdict(self) -> str:
        """``"better"``, ``"worse"`` or ``"within noise"`` (the interval against 0)."""
        if math.isnan(self.low):
            return "one seed: no interval"
        sign = 1.0 if self.higher_is_better else -1.0
        lo, hi = sorted((sign * self.low, sign * self.high))
        if lo > 0:
            return "better than weight 0 beyond the seed noise"
        if hi < 0:
            return "worse than weight 0 beyond the seed noise"
        return "within the seed noise of weight 0"


def paired_comparison(
    zero: Sequence[float], learned: Sequence[float], confidence: float = 0.95
) -> tuple[list[float], float, float, float]:
    """Seed-by-seed differences ``learned − zero``, their mean and its t-interval.

    The interval is ``mean ± t_{(1+c)/2, n−1}·sd/√n`` (Student's t from scipy, ``sd`` with
    ``n − 1``); with one seed it is ``(nan, nan)``.

    Example:
        >>> d, m, lo, hi = paired_comparison([0.80, 0.81, 0.79], [0.82, 0.82, 0.80])
        >>> round(m, 4), round(lo, 4), round(hi, 4)
        (0.0133, -0.001, 0.0277)
    """
    if len(zero) != len(learned) or not zero:
        raise ValueError(f"need paired values: {len(zero)} at weight 0, {len(learned)} learned")
    from auxlab.study._stats import mean_interval

    diffs = [float(b) - float(a) for a, b in zip(zero, learned, strict=True)]
    return (diffs, *mean_interval(diffs, confidence))


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        method: The method that learned the weights.
        weights: The learned weights as fixed weights, ``{task: weight}`` with the main task
            at 1: the mean weight in force during the best validation epoch, whose model is
            kept (ForkMerge: the mean effective weight of that epoch's merges), ready for
            ``FixedWeights(result.weights)``.
        shares: The same as ``RelativeWeights`` shares per auxiliary task,
            ``w·mean‖g_aux‖/mean‖g_main‖`` on the shared layers at the learned model (``None``
            where the main gradient is 0).
        trajectory: Per epoch, ``{aux: weight}`` (the epoch's mean weight).
        metric: The epoch key compared (``val_<main>_<metric>`` or ``val_loss_<main>``).
        higher_is_better: Whether a larger metric is better.
        val_metric: The validation metric at the best epoch, with the learned weights.
        val_metric_zero: The same at weight 0, trained in the same call with the same seed.
        test_metric: The test metric of the learned run (``None`` without a test split).
        test_metric_zero: The same at weight 0.
        seconds: The learning run's wall time.
        seconds_zero: The weight-0 run's wall time.
        seed: The seed of both runs.
        epochs: Epochs per run.
        best_epoch: The learned run's best validation epoch.
        best_epoch_zero: The weight-0 run's.
        main: The main task.
        target: What was tuned, in words.
        verify: The paired comparison of ``verify=N`` (``None`` without it).
        details: Method-specific extras (ForkMerge: its merges).
    """

    method: str
    weights: dict[str, float]
    shares: dict[str, float] | None
    trajectory: list[dict[str, float]]
    metric: str
    higher_is_better: bool
    val_metric: float
    val_metric_zero: float
    test_metric: float | None
    test_metric_zero: float | None
    seconds: float
    seconds_zero: float
    seed: int
    epochs: int
    best_epoch: int
    best_epoch_zero: int
    main: str
    target: str = ""
    verify: Verify | None = None
    details: dict[str, Any] = field(default_factory=dict)
    verify_note: str | None = None

    @property
    def cost(self) -> float:
        """The learning run's wall time as a multiple of the weight-0 run's."""
        return self.seconds / self.seconds_zero if self.seconds_zero > 0 else math.nan

    @property
    def aux_weights(self) -> dict[str, float]:
        """The learned weights of the auxiliary tasks only."""
        return {t: w for t, w in self.weights.items() if t != self.main}

    def summary(self) -> str:
        """The result in words: what ``auxlab tune`` prints."""
        name = self.metric[len("val_") :] if self.metric.startswith("val_") else self.metric
        lines = [
            f"auxlab tune: {self.target or 'the problem'}, method {self.method}, seed "
            f"{self.seed}, {self.epochs} epoch(s)",
            f"Learned weight, as a fixed weight: FixedWeights({{{_fmt_dict(self.weights)}}})",
        ]
        if self.shares:
            lines.append(
                f"As a share of the main gradient: RelativeWeights({{{_fmt_dict(self.shares)}}}) "
                f"(w·mean‖g_aux‖/mean‖g_main‖ on the shared layers, {SHARE_BATCHES} training "
                "batches at the learned model; it stays valid if the auxiliary loss is rescaled)"
            )
        lines.append("Trajectory (mean weight per epoch):")
        for t in self.aux_weights:
            traj = " ".join(f"{ep.get(t, math.nan):.3g}" for ep in self.trajectory)
            lines.append(f"  {t}: {traj}")
        diff = self.val_metric - self.val_metric_zero
        lines.append(
            f"Validation {name}: {self.val_metric:.4f} with the learned weights (best epoch "
            f"{self.best_epoch}) vs {self.val_metric_zero:.4f} at weight 0 (best epoch "
            f"{self.best_epoch_zero}), {diff:+.4f}; both trained in this call with seed "
            f"{self.seed}. One seed says nothing about the noise between seeds: --verify N "
            "(verify=N) compares N fresh seeds."
        )
        if self.test_metric is not None and self.test_metric_zero is not None:
            lines.append(
                f"Test {name} (scored once, never used to choose): {self.test_metric:.4f} vs "
                f"{self.test_metric_zero:.4f} at weight 0 "
                f"({self.test_metric - self.test_metric_zero:+.4f})"
            )
        lines.append(
            f"Time: {self.seconds:.1f} s to learn vs {self.seconds_zero:.1f} s for the weight-0 "
            f"run ({self.cost:.2f}x one fixed-weight run)"
        )
        v = self.verify
        if v is not None:
            per = ", ".join(
                f"seed {s}: {a:.4f} -> {b:.4f}"
                for s, a, b in zip(v.seeds, v.zero, v.learned, strict=True)
            )
            interval = (
                f"95 % t-interval [{v.low:+.4f}, {v.high:+.4f}]"
                if not math.isnan(v.low)
                else "no interval"
            )
            lines.append(
                f"Verify ({len(v.seeds)} fresh seeds, weights fixed, {v.split} {name}): learned "
                f"− weight 0 = {v.mean:+.4f}, {interval}: {v.verdict}."
            )
            lines.append(f"  {per}")
        if self.verify_note:
            lines.append(self.verify_note)
        return "\n".join(lines)

    def records(self) -> list[dict[str, Any]]:
        """Flat records, one per run (and one per epoch of the trajectory), for ``--json``."""
        auxes = list(self.aux_weights)
        one = auxes[0] if len(auxes) == 1 else None
        base = {"method": self.method, "metric": self.metric}

        def weight_fields(w: Mapping[str, float]) -> dict[str, float]:
            out = {f"weight_{t}": float(w.get(t, 0.0)) for t in auxes}
            if one is not None:
                out["weight"] = float(w.get(one, 0.0))
            return out

        zero = dict.fromkeys(auxes, 0.0)
        recs: list[dict[str, Any]] = [
            {
                **base,
                "kind": "learned",
                "seed": self.seed,
                **weight_fields(self.weights),
                **{f"share_{t}": v for t, v in (self.shares or {}).items()},
                "val_metric": self.val_metric,
                "test_metric": self.test_metric,
                "best_epoch": self.best_epoch,
                "seconds": self.seconds,
                "cost": self.cost,
            },
            {
                **base,
                "kind": "zero",
                "seed": self.seed,
                **weight_fields(zero),
                "val_metric": self.val_metric_zero,
                "test_metric": self.test_metric_zero,
                "best_epoch": self.best_epoch_zero,
                "seconds": self.seconds_zero,
            },
        ]
        for i, ep in enumerate(self.trajectory, 1):
            recs.append(
                {**base, "kind": "trajectory", "seed": self.seed, "epoch": i, **weight_fields(ep)}
            )
        v = self.verify
        if v is not None:
            for s, a, b, d in zip(v.seeds, v.zero, v.learned, v.diffs, strict=True):
                recs.append(
                    {
                        **base,
                        "kind": "verify",
                        "seed": s,
                        "split": v.split,
                        **weight_fields(self.weights),
                        "metric_zero": a,
                        "metric_learned": b,
                        "diff_vs_zero": d,
                    }
                )
            recs.append(
                {
                    **base,
                    "kind": "verify_summary",
                    "split": v.split,
                    "seeds": len(v.seeds),
                    "diff_vs_zero": v.mean,
                    "low": v.low,
                    "high": v.high,
                    "verdict": v.verdict,
                }
            )
        return recs


def _fmt_dict(d: Mapping[str, float]) -> str:
    return ", ".join(f"'{t}': {v:.3g}" for t, v in d.items())


# ---------------------------------------------------------------------------------------------
# What is tuned.


@dataclass
class _Target:
    """A resolved target: how to get a fresh problem for a seed, and the run's settings."""

    make: Callable[[int], Any]  # seed -> Problem
    label: str
    epochs: int | None = None
    metric: str | None = None
    lr: float | None = None
    optimizer: str | None = None
    threads: int | None = None
    seeded: bool = True  # False for a Problem given as is: other seeds cannot be built


def _is_problem(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("model", "objective", "train", "val"))


def _resolve_target(target: Any, builder_args: Mapping[str, Any] | None) -> _Target:
    from auxlab.study._problem import as_problem, resolve_builder

    args = dict(builder_args or {})
    if _is_problem(target):
        if args:
            raise TuneError("builder_args apply to a builder, not to a Problem given as is")
        pristine = copy.deepcopy(target)  # every run starts from the same parameters and order

        def from_problem(seed: int) -> Any:
            return as_problem(copy.deepcopy(pristine))

        return _Target(from_problem, f"a {type(target.model).__name__} problem", seeded=False)
    if isinstance(target, Path) or (
        isinstance(target, str) and (target.endswith(".toml") or Path(target).is_file())
    ):
        from auxlab.study import ConfigError, load_config

        if not Path(target).is_file():
            raise TuneError(f"the study TOML {target} does not exist (or is not a file)")
        try:
            cfg = load_config(target)
        except ConfigError as exc:
            raise TuneError(str(exc)) from None
        builder = resolve_builder(cfg.builder, cfg.base_dir)
        merged = {**cfg.builder_args, **args}

        def from_toml(seed: int) -> Any:
            return as_problem(builder(seed, **merged))

        return _Target(
            from_toml,
            f"{Path(target).name} ({cfg.builder})",
            epochs=cfg.epochs,
            metric=cfg.metric,
            lr=cfg.lr,
            optimizer=cfg.optimizer,
            threads=cfg.threads,
        )
    if not callable(target) and not isinstance(target, str):
        raise TuneError(
            "target must be a builder (a callable or 'module:function'), a Problem, or a study "
            f"TOML path; got {type(target).__name__}"
        )
    try:
        # A "module:function" is looked for in the working directory too, as `python -m` does.
        builder = resolve_builder(target, str(Path.cwd()))
    except ValueError as exc:
        raise TuneError(str(exc)) from None
    label = target if isinstance(target, str) else getattr(target, "__qualname__", "builder")

    def from_builder(seed: int) -> Any:
        return as_problem(builder(seed, **args))

    return _Target(from_builder, str(label), epochs=_case_epochs(builder))


def _case_epochs(builder: Callable[..., Any]) -> int | None:
    """The epoch budget of a case of :mod:`auxlab.cases` whose builder this is, else None."""
    from auxlab.cases import CASES

    return next((c.epochs for c in CASES.values() if c.builder is builder), None)


# ---------------------------------------------------------------------------------------------
# The runs.


@dataclass
class _Run:
    weights: dict[str, float]  # learned (or fixed) auxiliary weights
    trajectory: list[dict[str, float]]
    val: float
    test: float | None
    best_epoch: int
    seconds: float
    model: nn.Module
    details: dict[str, Any] = field(default_factory=dict)


def _settings(problem: Any, target: _Target, monitor: str | None) -> tuple[str, float | None, str]:
    from auxlab.study._trial import monitor_key
    from auxlab.train._checkpoint import default_monitor

    objective = problem.objective.bind(problem.model)
    if not objective.tasks:
        raise TuneError("the objective knows no tasks: give the model output_names")
    if len(objective.tasks) < 2:
        raise TuneError(f"there is no auxiliary task to weigh: the tasks are {objective.tasks}")
    if monitor is None:
        metric = target.metric
        monitor = monitor_key(metric, objective.main) if metric else default_monitor(objective)
    optimizer = target.optimizer or problem.optimizer
    lr = target.lr if target.lr is not None else problem.lr
    return optimizer, lr, monitor


def _test_score(problem: Any, model: nn.Module, monitor: str) -> float | None:
    from auxlab.train import evaluate

    if problem.test is None:
        return None
    return float(
        evaluate(model, problem.test, problem.objective, "test_")["test_" + monitor[len("val_") :]]
    )


def _aux_tasks(problem: Any) -> list[str]:
    main = problem.objective.main
    return [t for t in problem.objective.tasks if t != main]


def _timed_fit(
    problem: Any,
    strategy: Any,
    epochs: int,
    seed: int,
    optimizer: str,
    lr: float | None,
    monitor: str,
    shared: Any = None,
) -> tuple[Any, float, int]:
    """``fit`` on the problem keeping its best validation epoch: (history, seconds, best)."""
    from auxlab.train import fit

    start = time.perf_counter()
    history = fit(
        problem.model,
        problem.train,
        problem.objective,
        strategy,
        epochs=epochs,
        optimizer=optimizer,
        lr=lr,
        val=problem.val,
        monitor=monitor,
        shared=shared,
        restore_best=True,
        progress=False,
        seed=seed,
    )
    seconds = time.perf_counter() - start
    return history, seconds, history.best_epoch or len(history.epochs)


def _fixed_run(
    problem: Any,
    target: _Target,
    weights: Mapping[str, float],
    epochs: int,
    seed: int,
    monitor: str | None,
) -> _Run:
    from auxlab.weighting import FixedWeights

    optimizer, lr, monitor = _settings(problem, target, monitor)
    auxes = _aux_tasks(problem)
    fixed = {t: float(weights.get(t, 0.0)) for t in auxes}
    history, seconds, best = _timed_fit(
        problem,
        FixedWeights({problem.objective.main: 1.0, **fixed}),
        epochs,
        seed,
        optimizer,
        lr,
        monitor,
    )
    return _Run(
        fixed,
        [dict(fixed) for _ in history.epochs],
        float(history.epochs[best - 1][monitor]),
        _test_score(problem, problem.model, monitor),
        best,
        seconds,
        problem.model,
    )


def _strategy_run(
    problem: Any,
    target: _Target,
    method: str,
    epochs: int,
    seed: int,
    monitor: str | None,
    options: Mapping[str, Any],
) -> _Run:
    from auxlab.balancer import Balancer
    from auxlab.weighting import create

    optimizer, lr, monitor = _settings(problem, target, monitor)
    auxes = _aux_tasks(problem)

    args = dict(_STRATEGY_DEFAULTS.get(method, {}))
    args.update(options)
    every = int(args.pop("every", _BALANCER_EVERY.get(method, 1)))
    if "lr" not in args and method in _SPAN_UPDATES:
        # A step in weight units per update, sized so that updates that all agree can move a
        # weight across WEIGHT_SPAN within the run, however long the run is.
        steps = len(problem.train) * epochs if isinstance(problem.train, Sized) else 0
        per = args.get("every", 1) if method == "auxilearn" else every
        if steps:
            updates = max(1, steps // max(1, int(per)))
            args["lr"] = max(_SPAN_UPDATES[method], WEIGHT_SPAN / updates)
    strategy = create(method, **args)
    balancer = Balancer(
        strategy,
        shared=problem.shared,
        main=problem.objective.main,
        tasks=problem.objective.tasks,
        every=every,
    )
    history, seconds, best = _timed_fit(
        problem, balancer, epochs, seed, optimizer, lr, monitor, shared=problem.shared
    )
    done = [s for s in history.steps if s["epoch"] == best and not s.get("skipped")]
    weights = {
        t: sum(float(s.get(f"weight_{t}", 0.0)) for s in done) / max(len(done), 1) for t in auxes
    }
    trajectory = [
        {t: float(ep.get(f"weight_{t}", math.nan)) for t in auxes} for ep in history.epochs
    ]
    return _Run(
        weights,
        trajectory,
        float(history.epochs[best - 1][monitor]),
        _test_score(problem, problem.model, monitor),
        best,
        seconds,
        problem.model,
    )


def _forkmerge_run(
    problem: Any,
    target: _Target,
    epochs: int,
    seed: int,
    monitor: str | None,
    options: Mapping[str, Any],
) -> _Run:
    from auxlab.train import forkmerge

    optimizer, lr, monitor = _settings(problem, target, monitor)
    start = time.perf_counter()
    out = forkmerge(
        problem,
        epochs=epochs,
        optimizer=optimizer,
        lr=lr,
        monitor=monitor,
        seed=seed,
        **options,
    )
    seconds = time.perf_counter() - start
    best = out.best_epoch
    merges = [
        {"step": m.step, "epoch": m.epoch, "lambdas": m.lambdas, "weights": m.weights}
        for m in out.merges
    ]
    return _Run(
        dict(out.effective_weight),
        out.trajectory,
        float(out.history.epochs[best - 1][monitor]),
        _test_score(problem, problem.model, monitor),
        best,
        seconds,
        problem.model,
        {"merges": merges, "evaluations": out.evaluations},
    )


#: The arms of ``halving``: weight 0 (so that an auxiliary loss that hurts loses to it) and 3
#: (chosen leave-one-case-out on the oracle tables of the known-answer cases: docs/tune.md).
#: ``options={"weights": (0, 0.3, 1, 3)}`` races more weights, with earlier rounds.
HALVING_WEIGHTS: tuple[float, ...] = (0.0, 3.0)
#: The epochs ``halving`` trains, as a multiple of one run's (the arms' epochs summed).
HALVING_BUDGET = 1.8


def halving_schedule(arms: int, epochs: int, budget: float = HALVING_BUDGET) -> list[int]:
    """The epochs after which successive halving keeps the better half of its arms.

    ``arms`` arms train from the same start to the first milestone ``m``, the better half to
    ``2m``, then ``4m``, ... (the epochs reached double each round, as in Jamieson and
    Talwalkar's successive halving), and the last arm to ``epochs``. ``m`` is the largest
    integer for which the arms' epochs, summed, stay within ``budget`` x ``epochs``: 2 arms and
    1.8 give ``[4E/5]`` (``2·4E/5 + E/5 = 1.8E``), 4 arms ``[E/5, 2E/5]``
    (``4·E/5 + 2·E/5 + 3E/5 = 1.8E``).

    Example:
        >>> halving_schedule(2, 150)
        [120]
        >>> halving_schedule(4, 150)
        [30, 60]
    """
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 1:
        raise TuneError(f"halving needs at least one arm, got {arms!r}")
    alive = [arms]
    while alive[-1] > 1:
        alive.append(math.ceil(alive[-1] / 2))
    rounds = len(alive) - 1  # milestones
    if rounds == 0:
        return []

    def total(m: int) -> int:
        marks = [m * 2**k for k in range(rounds)] + [epochs]
        done, last = 0, 0
        for n, mark in zip(alive, marks, strict=True):
            done += n * (mark - last)
            last = mark
        return done

    m = 0
    while (m + 1) * 2 ** (rounds - 1) < epochs and total(m + 1) <= budget * epochs + 1e-9:
        m += 1
    if m < 1:
        raise TuneError(
            f"halving over {arms} weights needs more epochs within {budget:g}x one run: "
            f"{epochs} epoch(s) leave no room for a first round; give more epochs, fewer "
            "weights (options={'weights': [...]}) or a larger options={'budget': ...}"
        )
    return [m * 2**k for k in range(rounds)]


@dataclass
class _Arm:
    """One arm of ``halving``: a fixed weight, its copy of the problem and its best epoch."""

    weight: float
    problem: Any
    opt: torch.optim.Optimizer
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best: tuple[float, float] = (-math.inf, -math.inf)  # larger is better
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None


def _halving_run(
    problem: Any,
    target: _Target,
    epochs: int,
    seed: int,
    monitor: str | None,
    options: Mapping[str, Any],
) -> _Run:
    """Successive halving over fixed weights, every arm from the same start and data order.

    Every arm is a copy of the problem (parameters, loader state), trained with its fixed
    weight and its own optimizer; at each milestone of :func:`halving_schedule` the arms are
    ranked by their best validation ``monitor`` so far (its first best epoch, as ``fit``
    picks it; ties between arms: the lower main validation loss at that epoch), and the
    better half continues where it stopped. The survivor's best epoch over its whole run is
    kept.
    """
    from auxlab.train import fit, make_optimizer
    from auxlab.train._checkpoint import higher_is_better
    from auxlab.weighting import FixedWeights

    unknown = set(options) - {"weights", "budget"}
    if unknown:
        raise TuneError(f"halving takes options 'weights' and 'budget', not {sorted(unknown)}")
    optimizer, lr, monitor = _settings(problem, target, monitor)
    main = problem.objective.main
    auxes = _aux_tasks(problem)
    grid = options.get("weights", HALVING_WEIGHTS)
    if isinstance(grid, (int, float)) or not grid:
        raise TuneError(f"halving's weights must be a non-empty list of weights, got {grid!r}")
    arms_w = [float(w) for w in grid]
    if any(not math.isfinite(w) or w < 0 for w in arms_w):
        raise TuneError(f"halving's weights must be finite and >= 0, got {list(grid)}")
    budget = float(options.get("budget", HALVING_BUDGET))
    try:
        marks = [*halving_schedule(len(arms_w), epochs, budget), epochs]
    except TuneError as exc:
        # Too few epochs for a round within the budget (the default's 2 arms: 1 epoch): race
        # every arm to the end instead; said when that costs more than 2 runs.
        if len(arms_w) > 2:
            import warnings

            warnings.warn(
                f"{exc}; training every weight for all {epochs} epoch(s) instead and keeping "
                f"the best on validation ({len(arms_w)}x one run)",
                stacklevel=4,
            )
        marks = [epochs]
    higher = higher_is_better(monitor)
    loss_key = f"val_loss_{main}"

    def key(ep: Mapping[str, Any]) -> tuple[float, float]:
        v = float(ep.get(monitor, math.nan))
        loss = float(ep.get(loss_key, math.nan))
        v = v if higher else -v
        return (v if math.isfinite(v) else -math.inf, -loss if math.isfinite(loss) else -math.inf)

    start = time.perf_counter()
    arms = []
    for w in arms_w:
        p = copy.deepcopy(problem)  # the same parameters and data order for every arm
        arms.append(_Arm(w, p, make_optimizer(optimizer, p.model.parameters(), lr)))
    rounds: list[dict[str, Any]] = []
    done = 0
    for mark in marks:
        for arm in arms:

            def keep(ep: dict[str, Any], arm: _Arm = arm) -> None:
                arm.epochs.append(ep)
                k = key(ep)
                # The best epoch as fit picks it (the first of equal values); the loss only
                # breaks ties between arms.
                if arm.best_state is None or k[0] > arm.best[0]:
                    arm.best, arm.best_epoch = k, len(arm.epochs)
                    arm.best_state = copy.deepcopy(arm.problem.model.state_dict())

            fit(
                arm.problem.model,
                arm.problem.train,
                arm.problem.objective,
                FixedWeights({main: 1.0, **dict.fromkeys(auxes, arm.weight)}),
                epochs=mark - done,
                optimizer=arm.opt,
                val=arm.problem.val,
                monitor=monitor,
                restore_best=False,
                progress=False,
                seed=seed + done,
                callbacks=[keep],
            )
        done = mark
        ranked = sorted(arms, key=lambda a: a.best, reverse=True)
        kept = ranked[:1] if mark == epochs else ranked[: math.ceil(len(arms) / 2)]
        rounds.append(
            {
                "epoch": mark,
                "scores": {a.weight: a.best[0] if higher else -a.best[0] for a in arms},
                "kept": [a.weight for a in kept],
            }
        )
        arms = kept
    seconds = time.perf_counter() - start
    (arm,) = arms
    assert arm.best_state is not None
    problem.model.load_state_dict(arm.best_state)
    weights = dict.fromkeys(auxes, arm.weight)
    return _Run(
        weights,
        [dict(weights) for _ in arm.epochs],
        float(arm.epochs[arm.best_epoch - 1][monitor]),
        _test_score(problem, problem.model, monitor),
        arm.best_epoch,
        seconds,
        problem.model,
        {"rounds": rounds, "schedule": marks[:-1], "arms": arms_w},
    )


#: Arguments tune gives a strategy method unless the caller's ``options`` say otherwise.
#: OL-AUX starts from weight 0 here, so a weight that never pays stays at 0.
_STRATEGY_DEFAULTS: dict[str, dict[str, Any]] = {
    "ol-aux": {"weights": 0.0},
    "lookahead-val": {"weights": 0.0},
    "auxilearn": {"weights": 0.0},
}
#: Balancer(every=k) per method: signals (and weight updates) every k-th step.
_BALANCER_EVERY: dict[str, int] = {"lookahead-val": 5}
#: Methods whose ``lr`` is a step in weight units; tune sizes it (see WEIGHT_SPAN), at least this.
_SPAN_UPDATES: dict[str, float] = {"lookahead-val": 0.01, "auxilearn": 0.01}
#: The distance a weight can travel over a run when every update agrees (tune's default step).
WEIGHT_SPAN = 3.0


def _grad_norms(problem: Any, model: nn.Module) -> dict[str, float] | None:
    """Mean per-task gradient norm on the shared block over the first training batches."""
    from auxlab.train._loader import call_model, device_of, to_device

    objective = problem.objective.bind(model)
    shared = problem.shared
    if shared is None:
        params = [p for p in model.parameters() if p.requires_grad]
    elif isinstance(shared, nn.Module):
        params = [p for p in shared.parameters() if p.requires_grad]
    else:
        params = [p for p in shared if p.requires_grad]
    if not params:
        return None
    sums = dict.fromkeys(objective.tasks, 0.0)
    n = 0
    device = device_of(model)
    was = model.training
    model.train()
    try:
        for i, batch in enumerate(problem.train):
            if i >= SHARE_BATCHES:
                break
            inputs, targets = to_device(batch, device)
            losses = objective(call_model(model, inputs), targets)
            for t, loss in losses.items():
                grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                sums[t] += math.sqrt(sum(float((g**2).sum()) for g in grads if g is not None))
            n += 1
    finally:
        model.train(was)
        model.zero_grad(set_to_none=True)
    if n == 0:
        return None
    return {t: v / n for t, v in sums.items()}


def _shares(
    problem: Any, model: nn.Module, weights: Mapping[str, float]
) -> dict[str, float] | None:
    """The learned weights as ``RelativeWeights`` shares (gradient norms, shared block)."""
    from auxlab.weighting import relative_share

    norms = _grad_norms(problem, model)
    main = problem.objective.main
    if norms is None or not (math.isfinite(norms[main]) and norms[main] > 0):
        return None
    return {
        t: relative_share(w, norms[main], norms[t])
        for t, w in weights.items()
        if math.isfinite(norms[t])
    }


def _check_method(method: str) -> None:
    if method in METHODS:
        return
    close = difflib.get_close_matches(str(method).lower(), list(METHODS), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise TuneError(f"unknown method {method!r}.{hint} Methods: {', '.join(METHODS)}.")


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[auxlab tune] {text}", file=sys.stderr, flush=True)


def tune(
    target: Any,
    *,
    seed: int = 0,
    builder_args: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    method: str = DEFAULT_METHOD,
    verify: int = 0,
    threads: int | None = None,
    progress: bool = False,
    monitor: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Learn the auxiliary weights in one call, and train weight 0 with the same seed beside it.

    Args:
        target: A builder (a callable ``builder(seed, **builder_args) -> Problem`` or
            ``"module:function"``), an :class:`auxlab.study.Problem` (trained as is: copies
            of it start every run, so ``verify`` is not available), or the path of a study
            TOML (its builder, ``builder_args``, ``epochs``, ``metric``, ``lr``,
            ``optimizer`` and ``threads``; the strategies and seeds are not used).
        seed: The seed of the learning run and of the weight-0 run.
        builder_args: Keyword arguments of the builder (over a TOML's ``[builder_args]``).
        epochs: Epochs per run (default: the TOML's; for a builder of :mod:`auxlab.cases`, its
            epoch budget; else 5).
        method: How the weights are learned: a name of :data:`METHODS`
            (``"halving"``, the default; ``"lookahead-val"``, ``"forkmerge"``, ...).
        verify: Train this many fresh seeds (``seed + 1``, ...) at weight 0 and at the
            learned weights held fixed, and compare them seed by seed (0: no verification).
        threads: torch's intra-op threads during the call (``None``: the TOML's, else
            ``OMP_NUM_THREADS`` if set, else 1); the caller's count is restored afterwards.
        progress: Print a line per run to stderr.
        monitor: The validation key that picks the best epoch and is compared (default: the
            TOML's metric, else the main task's first metric, else its loss).
        options: Keyword arguments of the method (``halving``'s ``weights`` and ``budget``;
            ForkMerge's ``weights``, ``merge_every``, ``grid``; a strategy's constructor
            arguments).

    Returns:
        A :class:`TuneResult`; :meth:`TuneResult.summary` says it in words.

    Raises:
        TuneError: For an unknown method (with close names), a target that is not a builder,
            Problem or TOML, a bad TOML (its line), ``verify`` with a Problem, or bad numbers.

    Example:
        ``docs/tune.md`` has one that runs in seconds (a builder where the auxiliary loss
        helps: the learned weight rises above 0).
    """
    from auxlab._threads import configure_threads

    _check_method(method)
    for name, v, low in (("seed", seed, 0), ("verify", verify, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise TuneError(f"{name} must be an integer >= {low}, got {v!r}")
    bad_epochs = isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
    if epochs is not None and bad_epochs:
        raise TuneError(f"epochs must be an integer >= 1, got {epochs!r}")
    tgt = _resolve_target(target, builder_args)
    if verify and not tgt.seeded:
        raise TuneError(
            "verify needs problems built for other seeds: give the builder (or a study TOML), "
            "not a Problem"
        )
    n_epochs = epochs or tgt.epochs or 5
    before = torch.get_num_threads()
    configure_threads(threads if threads is not None else tgt.threads)
    try:
        return _tune(tgt, seed, n_epochs, method, verify, progress, monitor, dict(options or {}))
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _learn(
    tgt: _Target,
    seed: int,
    epochs: int,
    method: str,
    progress: bool,
    monitor: str | None,
    options: dict[str, Any],
) -> tuple[_Run, dict[str, float] | None, str, str]:
    """The learning run: ``(run, shares, monitor, main task)``."""
    from auxlab.train import make_optimizer

    problem = tgt.make(seed)
    optimizer, lr, monitor = _settings(problem, tgt, monitor)
    # torch imports its compiler stack when the first optimizer is built (seconds): pay it
    # here, outside the timed runs, so that the cost multiple compares training with training.
    make_optimizer(optimizer, [torch.zeros(1, requires_grad=True)], lr)
    _say(progress, f"learning the weights with {method}, seed {seed}, {epochs} epoch(s)")
    if method == "forkmerge":
        run = _forkmerge_run(problem, tgt, epochs, seed, monitor, options)
    elif method == "halving":
        run = _halving_run(problem, tgt, epochs, seed, monitor, options)
    else:
        run = _strategy_run(problem, tgt, method, epochs, seed, monitor, options)
    shares = _shares(problem, run.model, run.weights)
    return run, shares, monitor, problem.objective.main


def learn_weights(
    target: Any,
    *,
    seed: int = 0,
    builder_args: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    method: str = DEFAULT_METHOD,
    monitor: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Only the learning run of :func:`tune` (no weight-0 run): for callers that have one.

    ``auxlab demo`` uses it: its grid already trained weight 0 with the same seed.

    Returns:
        ``{"weights": {task: w}, "shares", "trajectory", "val_metric", "test_metric",
        "seconds", "best_epoch", "metric", "method", "details"}`` (``details``: the method's
        extras, as in :attr:`TuneResult.details`).
    """
    _check_method(method)
    tgt = _resolve_target(target, builder_args)
    n_epochs = epochs or tgt.epochs or 5
    run, shares, monitor, main = _learn(
        tgt, seed, n_epochs, method, False, monitor, dict(options or {})
    )
    return {
        "weights": {main: 1.0, **run.weights},
        "shares": shares,
        "trajectory": run.trajectory,
        "val_metric": run.val,
        "test_metric": run.test,
        "seconds": run.seconds,
        "best_epoch": run.best_epoch,
        "metric": monitor,
        "method": method,
        "details": run.details,
    }


def _tune(
    tgt: _Target,
    seed: int,
    epochs: int,
    method: str,
    verify: int,
    progress: bool,
    monitor: str | None,
    options: dict[str, Any],
) -> TuneResult:
    from auxlab.train._checkpoint import higher_is_better

    run, shares, monitor, main = _learn(tgt, seed, epochs, method, progress, monitor, options)
    _say(progress, f"learned {_fmt_dict(run.weights)} in {run.seconds:.1f} s; now weight 0")
    zero_problem = tgt.make(seed)
    zero = _fixed_run(zero_problem, tgt, {}, epochs, seed, monitor)
    _say(progress, f"weight 0 in {zero.seconds:.1f} s")
    higher = higher_is_better(monitor)
    result = TuneResult(
        method=method,
        weights={main: 1.0, **run.weights},
        shares=shares,
        trajectory=run.trajectory,
        metric=monitor,
        higher_is_better=higher,
        val_metric=run.val,
        val_metric_zero=zero.val,
        test_metric=run.test,
        test_metric_zero=zero.test,
        seconds=run.seconds,
        seconds_zero=zero.seconds,
        seed=seed,
        epochs=epochs,
        best_epoch=run.best_epoch,
        best_epoch_zero=zero.best_epoch,
        main=main,
        target=tgt.label,
        details=run.details,
    )
    if verify and all(w == 0.0 for w in run.weights.values()):
        # Weight 0 fixed is the weight-0 run itself: N seeds of each would be equal pairs.
        result.verify_note = (
            f"Verify: not run (asked for {verify} seed(s)): the learned weight is 0, the weight-0 "
            "run itself, so every pair would be equal. Keep the auxiliary loss out, or compare "
            "weights of your choosing with a study (auxlab study)."
        )
    elif verify:
        result.verify = _verify(tgt, run.weights, seed, epochs, verify, monitor, higher, progress)
    return result


def _verify(
    tgt: _Target,
    weights: Mapping[str, float],
    seed: int,
    epochs: int,
    n: int,
    monitor: str,
    higher: bool,
    progress: bool,
) -> Verify:
    seeds = [seed + 1 + i for i in range(n)]
    zero: list[float] = []
    learned: list[float] = []
    split = "val"
    for s in seeds:
        a = _fixed_run(tgt.make(s), tgt, {}, epochs, s, monitor)
        b = _fixed_run(tgt.make(s), tgt, weights, epochs, s, monitor)
        if a.test is not None and b.test is not None:
            split = "test"
            zero.append(a.test)
            learned.append(b.test)
        else:
            zero.append(a.val)
            learned.append(b.val)
        _say(progress, f"verify seed {s}: {zero[-1]:.4f} at weight 0, {learned[-1]:.4f} learned")
    diffs, mean, low, high = paired_comparison(zero, learned)
    return Verify(seeds, split, zero, learned, diffs, mean, low, high, higher)
