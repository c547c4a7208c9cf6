"""``Study``: sweeps of auxiliary weights and strategies over seeds, on Optuna.

The study creates (or joins) an Optuna study, sets torch's threads, and runs the queue
(:mod:`auxlab.study._queue`: every run exactly once) with a :class:`~auxlab.study._trial.
TrialRunner`, here and in worker processes. What it found is read as plain
:class:`~auxlab.study.StudyRecords`, which the report, the CSV and the recommendation use.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from auxlab._optional import require
from auxlab._threads import configure_threads
from auxlab.objective import HIGHER_IS_BETTER
from auxlab.study._config import StudyConfig, load_config
from auxlab.study._errors import StudyError
from auxlab.study._queue import RunQueue
from auxlab.study._recommend import Recommendation
from auxlab.study._report import write_report
from auxlab.study._results import StudyRecords, records_from_trials
from auxlab.study._settings import Setting, expand
from auxlab.study._spawn import spawn_workers
from auxlab.study._storage import describe, jsonable, open_storage, storage_url
from auxlab.study._trial import TrialRunner

__all__ = ["Study"]

_ATTR_CONFIG = "auxlab_config"
#: What a resumed study must share with the one stored, once some run has finished: the runs
#: of both are compared in one table.
#: (``builder_args`` may change: they may hold how a run is done, not what it measures.)
_CHECKED = ("strategies", "seeds", "metric", "epochs", "builder")
#: The builder's task names (and the builder_args they were read with), once checked.
_ATTR_TASKS = "auxlab_tasks"


def _stored_pruner(stored: Mapping[str, Any]) -> str:
    """The pruner a stored configuration ran with.

    Before ``"none"`` became the default it was ``"median"``, which every configuration
    auxlab wrote stored explicitly; one without it is read as that old default.
    """
    pruning = stored.get("pruning")
    if not isinstance(pruning, Mapping):
        return "median"
    return str(pruning.get("pruner", "median"))


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
        **kwargs: Other :class:`StudyConfig` fields (``seeds``, ``epochs``, ``metric``,
            ``threads``, ...).

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
        self.settings: list[Setting] = expand(config.strategies)
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
        self._queue = RunQueue(
            self._optuna, self._study, self._storage, self.settings, config.seeds
        )
        self._runner = TrialRunner(
            self._optuna, self._study, self._storage, self._queue, config, progress
        )

    @property
    def progress(self) -> bool:
        """Whether one line per finished run is printed to stderr."""
        return self._runner.progress

    @progress.setter
    def progress(self, value: bool) -> None:
        self._runner.progress = value

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
        url = storage_url(storage) if storage != ":memory:" else ""
        local = Path(url.split(":///", 1)[1]) if url and url.startswith("sqlite:///") else None
        if url is None:
            local = Path(storage)
        if storage == ":memory:" or (local is not None and not local.exists()):
            raise StudyError(
                f"there is no study storage at {describe(storage)}: start the study first with "
                f"`auxlab study CONFIG.toml --storage {storage}`, or check the path"
            )
        store = open_storage(storage)
        summaries = optuna.get_all_study_summaries(store)
        names = [s.study_name for s in summaries]
        if not names:
            raise StudyError(
                f"{describe(storage)} holds no study yet: start one with `auxlab study "
                f"CONFIG.toml --storage {storage}`, then add workers"
            )
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
        kind = p.get("pruner", "none")
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
        # Searches spend their start-up on a grid (enqueued by the queue); TPE models after it.
        sampler = optuna.samplers.TPESampler(seed=self.config.sampler_seed, n_startup_trials=1)
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
            study.set_user_attr(_ATTR_CONFIG, jsonable(mine))
        else:
            stored = study.user_attrs.get(_ATTR_CONFIG)
            ts = optuna.trial.TrialState
            finished = study.get_trials(deepcopy=False, states=(ts.COMPLETE, ts.PRUNED))
            if stored is not None and not finished:
                # Nothing finished with the stored configuration (every run failed, or none
                # ran yet): a corrected configuration replaces it, and the failed runs run again.
                study.set_user_attr(_ATTR_CONFIG, jsonable(mine))
            elif stored is not None:
                for key in _CHECKED:
                    if jsonable(mine[key]) != stored.get(key) and mine[key] is not None:
                        raise StudyError(
                            f"study '{name}' in {describe(self.config.storage)} was created with "
                            f"{key} = {stored.get(key)!r}, not {mine[key]!r}; resume it with the "
                            "same configuration, or give the study another name"
                        )
                self._check_pruner(study, stored, finished, mine)
            if study.direction.name.lower() != self.direction:
                raise StudyError(
                    f"study '{name}' optimises in direction {study.direction.name.lower()}, "
                    f"this configuration in {self.direction}"
                )
        return study

    def _check_pruner(
        self, study: Any, stored: Mapping[str, Any], finished: Sequence[Any], mine: dict[str, Any]
    ) -> None:
        """Resume under another pruner only if no run was pruned; else say what to do.

        A study stored with the old default (``"median"``, which compares a run with other
        seeds' runs) may hold pruned runs; resumed with ``"none"``, the runs left would
        complete, and one table would mix seeds stopped early with seeds that were not.
        """
        before, now = _stored_pruner(stored), str(self.config.pruning.get("pruner", "none"))
        if before == now:
            return
        ts = self._optuna.trial.TrialState
        pruned = sum(ft.state == ts.PRUNED for ft in finished)
        if pruned:
            name, where = self.config.name, describe(self.config.storage)
            raise StudyError(
                f"study '{name}' in {where} ran with pruner = {before!r}, which stopped "
                f"{pruned} of its {len(finished)} finished runs early (it compares a run with "
                f"the runs of other seeds); this configuration has pruner = {now!r}. Resuming "
                "would mix pruned and unpruned runs in one comparison. To keep the stored runs, "
                f'resume with [pruning] pruner = "{before}"; to compare every seed in full, start '
                "the study afresh under another name (--name) or in another storage"
            )
        # No run was pruned: every finished run is complete whatever the pruner, so the runs
        # left may run under the new one; workers that join read it from the storage.
        updated = dict(stored)
        updated["pruning"] = mine["pruning"]
        study.set_user_attr(_ATTR_CONFIG, jsonable(updated))

    def check_tasks(self) -> tuple[str, ...] | None:
        """Check every setting's task names against the builder's objective, before any run.

        Builds the problem once for the first seed (unless the storage holds the task names
        read with the same ``builder_args``; the first run of that seed in this process then
        trains that problem instead of building it again) and resolves each setting's
        strategy for its tasks, so that ``shares = {aux = 0.2}`` for a model whose auxiliary
        task is called ``spam`` stops the study at once instead of failing every run. A
        builder that fails is left to the runs, which record its error.

        Returns:
            The task names, or ``None`` when the builder could not be built.

        Raises:
            ConfigError: Naming the setting, the unknown task, the known ones and the fix.
        """
        from auxlab._errors import TaskMismatchError
        from auxlab.study._config import ConfigError
        from auxlab.study._problem import as_problem, resolve_builder

        args = jsonable(self.config.builder_args)
        built: Any = None
        known = self._study.user_attrs.get(_ATTR_TASKS)
        if isinstance(known, Mapping) and known.get("builder_args") == args:
            tasks, main = tuple(known["tasks"]), str(known["main"])
        else:
            try:
                builder = resolve_builder(self.config.builder, self.config.base_dir)
                problem = as_problem(builder(self.config.seeds[0], **self.config.builder_args))
                objective = problem.objective.bind(problem.model)
                tasks, main = tuple(objective.tasks), str(objective.main)
                built = problem
            except Exception:  # the runs record the builder's error, run by run
                return None
            if not tasks:
                return None
            self._study.set_user_attr(
                _ATTR_TASKS, {"tasks": list(tasks), "main": main, "builder_args": args}
            )
        aux = [t for t in tasks if t != main]
        for s in self.settings:
            try:
                strategy = s.build(tasks, main, s.low if s.kind == "search" else None)
                strategy.init(tasks, main)
            except TaskMismatchError as exc:
                example = ", ".join(f"{t} = 0.2" for t in aux) or "..."
                raise ConfigError(
                    f"setting '{s.label}' does not fit the builder's tasks: {exc} The builder's "
                    f"objective has the tasks {list(tasks)} (main '{main}', auxiliary {aux}); "
                    f"name those in the [[strategies]] entry (e.g. shares = {{ {example} }}, or "
                    "aux = [...] for the tasks a weight applies to)"
                ) from None
        if built is not None:
            self._runner.spare = (self.config.seeds[0], built)  # the first run takes it
        return tasks

    # -- running -----------------------------------------------------------------------------

    def prepare(self) -> Study:
        """Enqueue the runs that are not done or queued yet (idempotent)."""
        self._queue.maintain()
        return self

    def run(
        self, workers: int | None = None, threads: int | None = None, wait: float = 0.0
    ) -> Study:
        """Run the study until every run is done (or the budget is spent); return ``self``.

        Runs that failed in an earlier call (an error in the builder, a metric that is NaN)
        are run again, once per call: fix the cause and call again.

        Args:
            workers: Worker processes (default: the config's). With more than one, the
                storage must be a file or a URL and the builder importable by name; each
                worker is ``python -m auxlab.study._worker``. This process then runs what
                is left (runs of a worker that died).
            threads: torch's intra-op threads, here and in each worker (default: the
                config's; else ``OMP_NUM_THREADS`` if set, else 1). This process's thread
                count is restored when the study returns.
            wait: Seconds to wait, when the queue is empty, for runs that other processes
                are still running (and to take over those of workers that die meanwhile).
                What is still unfinished then is in :meth:`unfinished`, and the records mark
                it (the results are partial).

        Raises:
            StudyError: For several workers with in-memory storage or an unnamed builder.
            ValueError: If ``threads`` is not a positive integer.
        """
        n = self.config.workers if workers is None else workers
        if n < 1:
            raise StudyError(f"workers must be >= 1, got {n}")
        before = torch.get_num_threads()
        choice = configure_threads(self.config.threads if threads is None else threads)
        try:
            self._queue.retry_failed()
            self.check_tasks()
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
                self.spawn_workers(n, threads=choice.threads)
            self.work()
            deadline = time.monotonic() + wait
            budget = self.config.max_trials is not None or self.config.timeout is not None
            while time.monotonic() < deadline and any(
                r["state"] == "RUNNING" for r in self.unfinished()
            ):
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                if not budget:
                    self.work()  # takes over the runs of workers that died meanwhile
            return self
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def spawn_workers(self, n: int, threads: int | None = None) -> list[int]:
        """Start ``n`` worker processes on this study and wait for them; their exit codes.

        Args:
            n: How many.
            threads: torch threads in each (default: the config's, else this process's).
        """
        if self.config.storage is None:
            raise StudyError("worker processes need a file or URL storage, not memory")
        if threads is None:
            threads = self.config.threads or torch.get_num_threads()
        return spawn_workers(self.config.storage, self.config.name, n, threads, self.progress)

    def work(self) -> Study:
        """Take runs from the queue and run them until none is left; return ``self``.

        Runs with torch's thread count as it is: :meth:`run` and the workers set it.
        """
        start = time.monotonic()
        ran = 0
        while True:
            if self.config.max_trials is not None and ran >= self.config.max_trials:
                break
            if self.config.timeout is not None and time.monotonic() - start > self.config.timeout:
                break
            self._queue.maintain()
            if not self._queue.has_work():
                break
            with warnings.catch_warnings():
                # The runner records heartbeats itself, as optimize() would.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self._study.ask()
            self._queue.current = trial.number
            try:
                self._runner.run(trial)
            finally:
                self._queue.current = None
            ran += 1
        return self

    def unfinished(self) -> list[dict[str, Any]]:
        """The runs still waiting or running (in other processes); ``[]`` when all finished."""
        return self.records().unfinished

    def failed(self) -> list[dict[str, Any]]:
        """The rows of the runs whose last attempt failed (state ``FAIL``), with its ``error``.

        A run whose worker died and which ran again afterwards is not among them.
        """
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for r in sorted(self.records().rows, key=lambda r: r["trial"]):
            latest[(r["label"], r["seed"])] = r
        return [r for r in latest.values() if r["state"] == "FAIL"]

    # -- results -----------------------------------------------------------------------------

    def records(self) -> StudyRecords:
        """What the study found so far, as plain data (what the report and the CSV read)."""
        return records_from_trials(
            self._study.get_trials(deepcopy=False),
            self._queue.by_id,
            retry_from=self._queue.retry_from(),
            name=self.config.name,
            metric=self.config.metric,
            direction=self.direction,
            settings=[s.label for s in self.settings],
            seeds=list(self.config.seeds),
            epochs=self.config.epochs,
            description=self.config.description,
            pruner=str(self.config.pruning.get("pruner", "none")),
        )

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
        return self.records().rows

    def curves(self) -> list[dict[str, Any]]:
        """Per finished run: ``row`` (its results row), ``epochs``, ``probes`` and ``flow``."""
        return self.records().runs

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`results` as CSV (columns: the union over rows, in first-seen order)."""
        return self.records().to_csv(path)

    @property
    def metric_name(self) -> str:
        """The optimised metric, in words (``"validation auc of the main task"``)."""
        return f"validation {self.config.metric} of the main task"

    def recommend(self, level: float = 0.95) -> Recommendation:
        """The best setting with its confidence interval over seeds, and why.

        See :func:`~auxlab.study.recommend_from_rows` for the rule.
        """
        return self.records().recommend(level)

    def report(self, out: str | Path, level: float = 0.95) -> Path:
        """Write ``report.html``, its PNG plots and ``results.csv`` into ``out``."""
        return write_report(self.records(), Path(out), level)

    def __repr__(self) -> str:
        return (
            f"Study(name={self.config.name!r}, storage={describe(self.config.storage)!r}, "
            f"{len(self.settings)} settings x {len(self.config.seeds)} seeds)"
        )
