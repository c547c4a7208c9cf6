"""``Study``: sweeps of auxiliary weights and strategies over seeds, on Optuna.

One Optuna trial is one run: a setting (a fixed weight, a schedule, a strategy, or a weight
chosen by a search) with one seed. Identity is ``(setting, seed)`` (and the weight, for a
search), kept in the trial's user attributes.

How runs are scheduled, exactly once:

* The grid (every setting x seed) is *enqueued* as waiting trials. Optuna hands a waiting
  trial to exactly one worker (an atomic WAITING -> RUNNING transition in the storage), so
  several processes, or machines with PostgreSQL, share the queue. (Optuna's ``GridSampler``
  is not used for that reason: in parallel it may run a grid point twice.)
* Every worker, before taking a trial, tops the queue up: any identity that is neither
  waiting, running, nor finished (complete, pruned, or failed with an error) is enqueued.
  So a restart after a crash enqueues what is missing and nothing else.
* A trial left RUNNING by a dead worker (``kill -9``) is failed and its identity requeued:
  at once when the worker ran on this machine (its process is gone), and after the
  heartbeat's grace period for database storages otherwise.
* A worker that gets a trial whose identity is already done or running elsewhere (two
  workers topping up at the same moment) marks it ``duplicate_of`` and skips it; such
  bookkeeping trials never appear in the results.
* Searches ask Optuna's TPE sampler for a weight, then enqueue that weight for the other
  seeds.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab._optional import require
from auxlab.objective import HIGHER_IS_BETTER, Objective
from auxlab.study._config import ConfigError, StudyConfig, load_config
from auxlab.study._recommend import Recommendation, recommend_from_rows
from auxlab.study._settings import Setting, expand
from auxlab.study._storage import describe, open_storage

__all__ = ["Problem", "Study", "StudyError"]

_ATTR_CONFIG = "auxlab_config"


class StudyError(RuntimeError):
    """A study cannot run as configured (storage, workers, a changed configuration)."""


class MetricError(ValueError):
    """The optimised metric is missing or not finite in a run."""


@dataclass
class Problem:
    """What a builder returns: one model and its data, built from a seed.

    Attributes:
        model: The model, returning ``{task: output}``; initialised from the seed.
        objective: Its losses and metrics (the main task's validation metric is optimised).
        train: Training batches (e.g. a shuffled :class:`~auxlab.ArrayLoader` seeded with
            the seed).
        val: Validation batches.
        shared: The shared block, for gradient-based strategies and the diagnostics
            (default: all parameters, for the diagnostics).
        train_eval: Training batches evaluated after each epoch, for the train/validation
            gap (e.g. a fixed sample of the training set, not shuffled).
        optimizer: Optimizer name for :func:`~auxlab.fit`.
        lr: Its learning rate (``None``: the optimizer's default).
        test: Held-out batches, evaluated once after training with the weights of the best
            validation epoch. They are reported (``test`` and ``test_*`` columns), never used
            to choose: the study optimises the validation metric.
    """

    model: nn.Module
    objective: Objective
    train: Iterable[Any]
    val: Iterable[Any]
    shared: nn.Module | Iterable[torch.Tensor] | None = None
    train_eval: Iterable[Any] | None = None
    optimizer: str = "adam"
    lr: float | None = None
    test: Iterable[Any] | None = None


def _as_problem(built: Any) -> Problem:
    if isinstance(built, Problem):
        return built
    if isinstance(built, Mapping):
        try:
            return Problem(**built)
        except TypeError as exc:
            raise TypeError(f"the builder returned a dict that is not a Problem: {exc}") from None
    raise TypeError(f"the builder must return an auxlab.study.Problem, got {type(built).__name__}")


def resolve_builder(ref: Any, base_dir: str | None = None) -> Callable[..., Any]:
    """The builder callable from ``"module:function"`` (or the callable itself).

    Raises:
        ConfigError: If the reference is malformed, or the module or function is missing.
    """
    if callable(ref):
        return ref  # type: ignore[no-any-return,unused-ignore]
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ConfigError(f"builder must be 'module:function', got {ref!r}")
    mod_name, attr = ref.split(":")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"builder {ref!r}: cannot import module '{mod_name}': {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"builder {ref!r}: module '{mod_name}' has no '{attr}'")
    if not callable(obj):
        raise ConfigError(f"builder {ref!r} is not callable")
    return obj  # type: ignore[no-any-return,unused-ignore]


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_dead(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.exists() and Path("/proc/self").exists():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return True
        return fields[0] in ("Z", "X")  # a zombie has finished: it is dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


class Study:
    """A study of auxiliary weights and strategies, over seeds, on Optuna.

    Args:
        builder: ``builder(seed, **builder_args) -> Problem``, or ``"module:function"``
            (needed for worker processes, which import it by name).
        strategies: Strategy specs (see :class:`StudyConfig`), e.g.
            ``[{"kind": "log_grid", "low": 0.01, "high": 1, "num": 3}]``.
        storage: Overrides the config's storage (see :func:`open_storage`).
        config: A ready :class:`StudyConfig` instead of the keyword arguments.
        progress: Print one line per finished run to stderr.
        **kwargs: Other :class:`StudyConfig` fields (``seeds``, ``epochs``, ``metric``, ...).

    Example::

        study = Study("my_builders:build", [{"kind": "fixed", "weights": [0, 0.1, 1]}],
                      seeds=[0, 1, 2], epochs=5, metric="auc", storage="study.db")
        study.run(workers=2)
        print(study.recommend())
        study.report("report/")
    """

    def __init__(
        self,
        builder: Any = None,
        strategies: Sequence[Mapping[str, Any]] | None = None,
        *,
        storage: str | None = None,
        config: StudyConfig | None = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> None:
        if config is None:
            if builder is None:
                raise TypeError("Study needs a builder (or config=StudyConfig(...))")
            if strategies is not None:
                kwargs["strategies"] = [dict(s) for s in strategies]
            config = StudyConfig(builder=builder, **kwargs)
        elif builder is not None or strategies is not None or kwargs:
            raise TypeError("give either config=... or the settings as arguments, not both")
        if storage is not None:
            config.storage = storage
        self.config = config
        self.progress = progress
        self.settings: list[Setting] = expand(config.strategies)
        self._by_id = {s.id: s for s in self.settings}
        self.direction = config.direction or (
            "minimize"
            if config.metric == "loss"
            else "maximize"
            if HIGHER_IS_BETTER.get(config.metric, True)
            else "minimize"
        )
        self._optuna = require("optuna", extra="study", feature="auxlab studies")
        self._storage = open_storage(config.storage)
        self._study = self._create_or_load()
        self._study_id = self._storage.get_study_id_from_name(config.name)
        self._current: int | None = None
        self._builder: Callable[..., Any] | None = None

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path, storage: str | None = None, **kwargs: Any) -> Study:
        """A study from a TOML configuration file (see :mod:`auxlab.study._config`)."""
        return cls(config=load_config(path), storage=storage, **kwargs)

    @classmethod
    def load(cls, storage: str, name: str | None = None, **kwargs: Any) -> Study:
        """Join a study that exists in ``storage``, with the configuration stored there.

        Raises:
            StudyError: If there is no such study, several and no ``name``, or it was
                created in Python with a builder that cannot be imported by name.
        """
        optuna = require("optuna", extra="study", feature="auxlab studies")
        store = open_storage(storage)
        summaries = optuna.get_all_study_summaries(store)
        names = [s.study_name for s in summaries]
        if name is None:
            if len(names) != 1:
                raise StudyError(
                    f"{describe(storage)} holds {len(names)} studies ({names}); pass --name"
                )
            name = names[0]
        if name not in names:
            raise StudyError(f"no study named '{name}' in {describe(storage)}; it has {names}")
        sid = store.get_study_id_from_name(name)
        data = store.get_study_user_attrs(sid).get(_ATTR_CONFIG)
        if data is None:
            raise StudyError(
                f"study '{name}' in {describe(storage)} has no auxlab configuration; start it "
                "with `auxlab study CONFIG.toml --storage ...` first"
            )
        if data.get("builder") is None:
            raise StudyError(
                f"study '{name}' was created with a builder that cannot be imported by name; "
                "give the builder as 'module:function' to use worker processes"
            )
        data = dict(data)
        data["storage"] = storage
        return cls(config=StudyConfig.from_dict(data), **kwargs)

    def _pruner(self) -> Any:
        pr = self._optuna.pruners
        p = self.config.pruning
        kind = p.get("pruner", "median")
        startup = int(p.get("startup_trials", 4))
        warmup = int(p.get("warmup_epochs", 1))
        if kind == "none":
            return pr.NopPruner()
        if kind == "median":
            return pr.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
        if kind == "percentile":
            return pr.PercentilePruner(
                float(p.get("percentile", 25.0)), n_startup_trials=startup, n_warmup_steps=warmup
            )
        if kind == "hyperband":
            return pr.HyperbandPruner(min_resource=1, max_resource=self.config.epochs)
        return pr.SuccessiveHalvingPruner(min_resource=1)

    def _create_or_load(self) -> Any:
        optuna = self._optuna
        sampler = optuna.samplers.TPESampler(seed=self.config.sampler_seed)
        name = self.config.name
        try:
            study = optuna.create_study(
                storage=self._storage,
                study_name=name,
                direction=self.direction,
                sampler=sampler,
                pruner=self._pruner(),
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(
                study_name=name, storage=self._storage, sampler=sampler, pruner=self._pruner()
            )
            created = False
        mine = self.config.to_dict()
        mine["storage"] = None
        if created:
            study.set_user_attr(_ATTR_CONFIG, _jsonable(mine))
        else:
            stored = study.user_attrs.get(_ATTR_CONFIG)
            if stored is not None:
                for key in ("strategies", "seeds", "metric", "epochs", "builder"):
                    if _jsonable(mine[key]) != stored.get(key) and mine[key] is not None:
                        raise StudyError(
                            f"study '{name}' in {describe(self.config.storage)} was created with "
                            f"{key} = {stored.get(key)!r}, not {mine[key]!r}; resume it with the "
                            "same configuration, or give the study another name"
                        )
            if study.direction.name.lower() != self.direction:
                raise StudyError(
                    f"study '{name}' optimises in direction {study.direction.name.lower()}, "
                    f"this configuration in {self.direction}"
                )
        return study

    # -- the queue ---------------------------------------------------------------------------

    def _key(self, attrs: Mapping[str, Any]) -> tuple[str, int, float | None] | None:
        sid = attrs.get("setting")
        if sid is None or "seed" not in attrs:
            return None
        s = self._by_id.get(sid)
        weight = attrs.get("weight") if s is not None and s.kind == "search" else None
        return (str(sid), int(attrs["seed"]), None if weight is None else float(weight))

    def _trial_id(self, number: int) -> int:
        return int(self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number))

    def _is_dead(self, ft: Any) -> bool:
        worker = ft.user_attrs.get("worker")
        if not worker:
            return False
        host, _, pid = str(worker).rpartition(":")
        if host != socket.gethostname():
            return False
        if int(pid) == os.getpid():
            return ft.number != self._current
        return _process_dead(int(pid))

    def _maintain(self) -> None:
        """Fail trials of dead workers; enqueue every identity that is not taken."""
        ts = self._optuna.trial.TrialState
        if self._storage.__class__.__name__ == "RDBStorage":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
                self._optuna.storages.fail_stale_trials(self._study)
        taken: set[tuple[str, int, float | None]] = set()
        searched: dict[str, set[float]] = {}
        for ft in self._study.get_trials(deepcopy=False):
            if ft.user_attrs.get("duplicate_of") is not None:
                continue
            key = self._key(ft.user_attrs)
            if key is None:
                continue
            if ft.state == ts.RUNNING and self._is_dead(ft):
                self._fail_dead(ft)
                continue
            if key[2] is not None:
                searched.setdefault(key[0], set()).add(key[2])
            done = ft.state in (ts.WAITING, ts.RUNNING, ts.COMPLETE, ts.PRUNED) or (
                ft.state == ts.FAIL and "error" in ft.user_attrs
            )
            if done:
                taken.add(key)
        for key in self._wanted(searched):
            if key not in taken:
                self._enqueue(key)

    def _wanted(self, searched: Mapping[str, set[float]]) -> list[tuple[str, int, float | None]]:
        out: list[tuple[str, int, float | None]] = []
        for s in self.settings:
            if s.kind == "search":
                for w in sorted(searched.get(s.id, ())):
                    out += [(s.id, seed, w) for seed in self.config.seeds]
            else:
                out += [(s.id, seed, None) for seed in self.config.seeds]
        return out

    def _enqueue(self, key: tuple[str, int, float | None]) -> None:
        sid, seed, weight = key
        attrs: dict[str, Any] = {"setting": sid, "seed": seed}
        params: dict[str, Any] = {}
        if weight is not None:
            attrs["weight"] = weight
            params[self._by_id[sid].param] = weight
        self._study.enqueue_trial(params, user_attrs=attrs)

    def _fail_dead(self, ft: Any) -> None:
        tid = self._trial_id(ft.number)
        # Another worker may fail the same dead trial first; the storage then refuses the
        # update of a finished trial, which is fine.
        with contextlib.suppress(Exception):
            self._storage.set_trial_user_attr(tid, "died", str(ft.user_attrs.get("worker")))
            self._storage.set_trial_state_values(tid, self._optuna.trial.TrialState.FAIL)

    def _search_budget(self) -> Setting | None:
        """A search setting that may still sample a weight, if any."""
        counts: dict[str, set[float]] = {}
        for ft in self._study.get_trials(deepcopy=False):
            key = self._key(ft.user_attrs)
            if key is not None and key[2] is not None and not ft.user_attrs.get("duplicate_of"):
                counts.setdefault(key[0], set()).add(key[2])
        for s in self.settings:
            if s.kind == "search" and len(counts.get(s.id, ())) < s.trials:
                return s
        return None

    def _has_waiting(self) -> bool:
        ts = self._optuna.trial.TrialState
        return bool(self._study.get_trials(deepcopy=False, states=(ts.WAITING,)))

    # -- running -----------------------------------------------------------------------------

    def prepare(self) -> Study:
        """Enqueue the runs that are not done or queued yet (idempotent)."""
        self._maintain()
        return self

    def run(self, workers: int | None = None) -> Study:
        """Run the study until every run is done (or the budget is spent); return ``self``.

        Args:
            workers: Worker processes (default: the config's). With more than one, the
                storage must be a file or a URL and the builder importable by name; each
                worker is ``python -m auxlab.study._worker``. This process then runs what
                is left (runs of a worker that died).

        Raises:
            StudyError: For several workers with in-memory storage or an unnamed builder.
        """
        n = self.config.workers if workers is None else workers
        if n < 1:
            raise StudyError(f"workers must be >= 1, got {n}")
        self.prepare()
        if n > 1:
            if self.config.storage in (None, ":memory:"):
                raise StudyError(
                    "several workers need a shared storage: give --storage FILE (SQLite or "
                    "journal) or a database URL"
                )
            if self.config.builder_ref() is None:
                raise StudyError(
                    "worker processes import the builder by name: give it as 'module:function'"
                )
            self.spawn_workers(n)
        return self.work()

    def spawn_workers(self, n: int) -> list[int]:
        """Start ``n`` worker processes on this study and wait for them; their exit codes."""
        assert self.config.storage is not None
        cmd = [
            sys.executable,
            "-m",
            "auxlab.study._worker",
            "--storage",
            self.config.storage,
            "--name",
            self.config.name,
        ]
        if self.config.threads:
            cmd += ["--threads", str(self.config.threads)]
        procs = [subprocess.Popen(cmd) for _ in range(n)]
        return [p.wait() for p in procs]

    def work(self) -> Study:
        """Take runs from the queue and run them until none is left; return ``self``."""
        start = time.monotonic()
        ran = 0
        while True:
            if self.config.max_trials is not None and ran >= self.config.max_trials:
                break
            if self.config.timeout is not None and time.monotonic() - start > self.config.timeout:
                break
            self._maintain()
            if not self._has_waiting() and self._search_budget() is None:
                break
            with warnings.catch_warnings():
                # This loop records heartbeats itself (see _heartbeat), as optimize() would.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self._study.ask()
            self._current = trial.number
            try:
                self._run(trial)
            finally:
                self._current = None
            ran += 1
        return self

    def _identity(self, trial: Any) -> tuple[Setting, int, float | None] | None:
        attrs = trial.user_attrs
        if "setting" in attrs:
            s = self._by_id.get(attrs["setting"])
            if s is None:
                raise StudyError(f"trial {trial.number} has an unknown setting {attrs['setting']}")
            w = None
            if s.kind == "search":
                w = trial.suggest_float(s.param, s.low, s.high, log=s.log)
            return s, int(attrs["seed"]), w
        search = self._search_budget()
        if search is None:
            return None
        w = trial.suggest_float(search.param, search.low, search.high, log=search.log)
        seed = self.config.seeds[0]
        trial.set_user_attr("setting", search.id)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("weight", w)
        for other in self.config.seeds[1:]:
            self._enqueue((search.id, other, w))
        return search, seed, w

    def _duplicate_of(self, trial: Any, key: tuple[str, int, float | None]) -> int | None:
        ts = self._optuna.trial.TrialState
        for ft in self._study.get_trials(deepcopy=False):
            if ft.number == trial.number or ft.user_attrs.get("duplicate_of") is not None:
                continue
            if self._key(ft.user_attrs) != key:
                continue
            finished = ft.state in (ts.COMPLETE, ts.PRUNED) or (
                ft.state == ts.FAIL and "error" in ft.user_attrs
            )
            if finished or (ft.state == ts.RUNNING and ft.number < trial.number):
                return int(ft.number)
        return None

    def _run(self, trial: Any) -> None:
        optuna = self._optuna
        ts = optuna.trial.TrialState
        ident = self._identity(trial)
        if ident is None:
            trial.set_user_attr("duplicate_of", -1)  # a surplus trial from a race: nothing to do
            self._study.tell(trial, state=ts.FAIL)
            return
        setting, seed, weight = ident
        key = (setting.id, seed, weight)
        dup = self._duplicate_of(trial, key)
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            self._study.tell(trial, state=ts.FAIL)
            return
        trial.set_user_attr("worker", _worker_id())
        stop = threading.Event()
        beat = self._heartbeat(trial, stop)
        started = time.perf_counter()
        epochs: list[dict[str, Any]] = []
        diag_box: list[Any] = []
        test: dict[str, float] = {}
        try:
            value, best_epoch = self._train(trial, setting, seed, weight, epochs, diag_box, test)
        except optuna.TrialPruned:
            self._save(trial, epochs, diag_box, started, None)
            self._study.tell(trial, state=ts.PRUNED)
            self._say(trial, setting, seed, weight, "PRUNED", epochs)
        except Exception as exc:  # a failing run is recorded, and the study goes on
            tb = traceback.format_exception(exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            trial.set_user_attr("traceback", "".join(tb[-6:])[-4000:])
            self._save(trial, epochs, diag_box, started, None)
            self._study.tell(trial, state=ts.FAIL)
            self._say(trial, setting, seed, weight, f"FAILED: {type(exc).__name__}: {exc}", epochs)
        else:
            self._save(trial, epochs, diag_box, started, best_epoch, test)
            self._study.tell(trial, value)
            self._say(trial, setting, seed, weight, f"{value:.4f}", epochs)
        finally:
            stop.set()
            if beat is not None:
                beat.join()

    def _heartbeat(self, trial: Any, stop: threading.Event) -> threading.Thread | None:
        storage = self._storage
        interval = getattr(storage, "heartbeat_interval", None)
        if not interval:
            return None
        tid = self._trial_id(trial.number)

        def beat() -> None:
            while not stop.is_set():
                # A missed beat is retried at the next interval.
                with contextlib.suppress(Exception):
                    storage.record_heartbeat(tid)
                stop.wait(interval)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        return thread

    def _monitor(self, main: str) -> str:
        m = self.config.metric
        return f"val_loss_{main}" if m == "loss" else f"val_{main}_{m}"

    def _train(
        self,
        trial: Any,
        setting: Setting,
        seed: int,
        weight: float | None,
        epochs: list[dict[str, Any]],
        diag_box: list[Any],
        test: dict[str, float],
    ) -> tuple[float, int]:
        from auxlab.diagnostics import Diagnostics
        from auxlab.train import evaluate, fit

        optuna = self._optuna
        if self._builder is None:
            self._builder = resolve_builder(self.config.builder, self.config.base_dir)
        problem = _as_problem(self._builder(seed, **self.config.builder_args))
        objective = problem.objective.bind(problem.model)
        tasks, main = objective.tasks, objective.main
        if not tasks:
            raise ValueError("the objective knows no tasks: give the model output_names")
        strategy = setting.build(tasks, main, weight)
        lr = self.config.lr if self.config.lr is not None else problem.lr
        optimizer = self.config.optimizer or problem.optimizer
        diag = Diagnostics(
            problem.model,
            shared=problem.shared,
            every=self.config.every,
            lr=lr,
            main=main,
            metric=None if self.config.metric == "loss" else self.config.metric,
        )
        diag_box.append(diag)
        balancer = diag.balancer(strategy, shared=problem.shared, main=main, tasks=tasks)
        monitor = self._monitor(main)
        trial.set_user_attr("monitor", monitor)

        def report(ep: dict[str, Any]) -> None:
            if monitor not in ep:
                raise MetricError(
                    f"the metric '{monitor}' is not in the epoch record (keys: "
                    f"{sorted(k for k in ep if k.startswith('val_'))}); add it to the "
                    "objective's metrics"
                )
            value = float(ep[monitor])
            epochs.append(_compact(ep))
            if not math.isfinite(value):
                raise MetricError(f"the metric '{monitor}' is {value} at epoch {ep['epoch']}")
            trial.report(value, int(ep["epoch"]) - 1)  # Optuna's steps count from 0
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {ep['epoch']}: {value:.4f}")

        history = fit(
            problem.model,
            problem.train,
            objective,
            balancer,
            epochs=self.config.epochs,
            optimizer=optimizer,
            lr=lr,
            val=problem.val,
            monitor=monitor,
            evaluate_train=problem.train_eval,
            restore_best=True,
            progress=False,
            seed=seed,
            callbacks=[diag.on_epoch, report],
        )
        best = history.best_epoch if history.best_epoch is not None else len(history.epochs)
        if problem.test is not None:
            # The model holds the best validation epoch's weights (restore_best).
            scores = evaluate(problem.model, problem.test, objective, "test_")
            test.update(scores)
            test["test"] = scores["test_" + monitor[len("val_") :]]
        return float(history.epochs[best - 1][monitor]), int(best)  # best counts from 1

    def _save(
        self,
        trial: Any,
        epochs: list[dict[str, Any]],
        diag_box: list[Any],
        started: float,
        best_epoch: int | None,
        test: Mapping[str, float] | None = None,
    ) -> None:
        summary: dict[str, float] = dict(test or {})
        flow: dict[str, float] = {}
        probes: list[dict[str, Any]] = []
        if diag_box:
            diag = diag_box[0]
            for k, v in diag.summary().items():
                (flow if k.startswith("flow/") else summary)[k] = v
            probes = [{k: v for k, v in r.items() if not k.startswith("flow/")} for r in diag.rows]
        if epochs:
            at = epochs[best_epoch - 1] if best_epoch is not None else epochs[-1]
            gaps = [k for k in at if k.startswith("gap/")]
            metric_gap = [k for k in gaps if not k.startswith("gap/loss_")]
            if metric_gap:
                summary["gap"] = at[metric_gap[0]]
            loss_gap = [k for k in gaps if k.startswith("gap/loss_")]
            if loss_gap:
                summary["gap_loss"] = at[loss_gap[0]]
                summary.setdefault("gap", at[loss_gap[0]])
        trial.set_user_attr("summary", _jsonable(summary))
        trial.set_user_attr("flow", _jsonable(flow))
        trial.set_user_attr("epochs", _jsonable(epochs))
        trial.set_user_attr("probes", _jsonable(probes))
        trial.set_user_attr("seconds", time.perf_counter() - started)
        if best_epoch is not None:
            trial.set_user_attr("best_epoch", best_epoch)

    def _say(
        self,
        trial: Any,
        setting: Setting,
        seed: int,
        weight: float | None,
        outcome: str,
        epochs: list[dict[str, Any]],
    ) -> None:
        if not self.progress:
            return
        label = setting.label if weight is None else f"w={weight:.4g} (search)"
        print(
            f"[auxlab study] trial {trial.number}: {label}, seed {seed}, "
            f"{len(epochs)} epoch(s): {outcome}",
            file=sys.stderr,
            flush=True,
        )

    # -- results -----------------------------------------------------------------------------

    def results(self) -> list[dict[str, Any]]:
        """The tidy table: one row per finished run (trial and seed).

        Columns: ``trial``, ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``), ``setting``,
        ``label``, ``kind``, ``weight``, ``seed``, ``value`` (the metric at the best epoch;
        for a pruned run, its last reported value), ``best_epoch``, ``epochs``, ``seconds``,
        ``error``, ``worker``, then measurements over the run: ``ratio/<aux>``,
        ``cos/<aux>``, ``conflict/<aux>``, ``share/<task>``, ``dmain/<aux>``,
        ``norm/<task>``, ``eff_weight/<task>``, ``gap`` (the main task's train/validation
        gap at the best epoch) and ``gap_loss``; with a :attr:`Problem.test` split, ``test``
        (the optimised metric on it, at the best validation epoch) and every ``test_*``
        loss and metric.
        """
        ts = self._optuna.trial.TrialState
        rows = []
        for ft in self._study.get_trials(deepcopy=False):
            ua = ft.user_attrs
            if ua.get("duplicate_of") is not None or "setting" not in ua:
                continue
            if ft.state not in (ts.COMPLETE, ts.PRUNED, ts.FAIL):
                continue
            s = self._by_id.get(ua["setting"])
            weight = ua.get("weight", s.weight if s is not None else None)
            value = ft.value
            if value is None and ft.intermediate_values:
                value = ft.intermediate_values[max(ft.intermediate_values)]
            error = ua.get("error", "")
            if ft.state == ts.FAIL and not error:
                error = f"the worker {ua.get('died') or ua.get('worker')} died during the run"
            row: dict[str, Any] = {
                "trial": ft.number,
                "state": ft.state.name,
                "setting": ua["setting"],
                "label": (
                    f"w={weight:.4g} (search)"
                    if s is not None and s.kind == "search" and weight is not None
                    else s.label
                    if s is not None
                    else ua["setting"]
                ),
                "kind": s.kind if s is not None else "",
                "weight": math.nan if weight is None else float(weight),
                "seed": int(ua["seed"]),
                "value": math.nan if value is None else float(value),
                "best_epoch": ua.get("best_epoch", ""),
                "epochs": len(ua.get("epochs", [])),
                "seconds": ua.get("seconds", math.nan),
                "error": error,
                "worker": ua.get("worker", ""),
            }
            row.update(ua.get("summary", {}))
            rows.append(row)
        return rows

    def curves(self) -> list[dict[str, Any]]:
        """Per finished run: ``row`` (its results row), ``epochs``, ``probes`` and ``flow``."""
        by_number = {ft.number: ft for ft in self._study.get_trials(deepcopy=False)}
        out = []
        for row in self.results():
            ua = by_number[row["trial"]].user_attrs
            out.append(
                {
                    "row": row,
                    "epochs": ua.get("epochs", []),
                    "probes": ua.get("probes", []),
                    "flow": ua.get("flow", {}),
                    "monitor": ua.get("monitor"),
                }
            )
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`results` as CSV (columns: the union over rows, in first-seen order)."""
        rows = self.results()
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=cols or ["trial"])
            writer.writeheader()
            writer.writerows(rows)
        return path

    @property
    def metric_name(self) -> str:
        """The optimised metric, in words (``"validation auc of the main task"``)."""
        return f"validation {self.config.metric} of the main task"

    def recommend(self, level: float = 0.95) -> Recommendation:
        """The best setting with its confidence interval over seeds, and why.

        See :func:`~auxlab.study.recommend_from_rows` for the rule.
        """
        return recommend_from_rows(self.results(), self.config.metric, self.direction, level)

    def report(self, out: str | Path, level: float = 0.95) -> Path:
        """Write ``report.html``, its PNG plots and ``results.csv`` into ``out``."""
        from auxlab.study._report import write_report

        return write_report(self, Path(out), level)

    def __repr__(self) -> str:
        return (
            f"Study(name={self.config.name!r}, storage={describe(self.config.storage)!r}, "
            f"{len(self.settings)} settings x {len(self.config.seeds)} seeds)"
        )


def _compact(ep: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("epoch", "seconds")
    return {
        k: v
        for k, v in ep.items()
        if k in keep
        or k.startswith(("val_", "train_", "gap/", "cos/", "conflict/", "ratio/", "share/"))
        or k.startswith(("dmain/", "norm/", "eff_weight/"))
    }
