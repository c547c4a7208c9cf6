"""One run of a study: build the problem for a seed, train it, and record what happened."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from auxlab.study._config import StudyConfig
from auxlab.study._errors import MetricError
from auxlab.study._problem import Problem, as_problem, resolve_builder
from auxlab.study._queue import RunQueue, worker_id
from auxlab.study._settings import Setting
from auxlab.study._storage import jsonable

__all__ = ["TrialRunner", "monitor_key"]


def monitor_key(metric: str, main: str) -> str:
    """The epoch record's key of the optimised metric (``val_<main>_<metric>``)."""
    return f"val_loss_{main}" if metric == "loss" else f"val_{main}_{metric}"


class TrialRunner:
    """Runs the trials a worker takes from the queue, and records each in its trial.

    A failing run is recorded (its error and the end of its traceback) and the study goes
    on; a pruned run keeps the epochs it ran.

    Args:
        optuna: The ``optuna`` module.
        study: The Optuna study.
        storage: Its storage (for heartbeats).
        queue: The study's queue.
        config: The study's configuration.
        progress: Print one line per finished run to stderr.
    """

    def __init__(
        self,
        optuna: Any,
        study: Any,
        storage: Any,
        queue: RunQueue,
        config: StudyConfig,
        progress: bool = False,
    ) -> None:
        self._optuna = optuna
        self._study = study
        self._storage = storage
        self._queue = queue
        self.config = config
        self.progress = progress
        self._builder: Callable[..., Any] | None = None
        #: A problem built before the runs (to check task names) and not used yet, with its
        #: seed: the next run of that seed in this process takes it instead of building again.
        self.spare: tuple[int, Problem] | None = None

    def run(self, trial: Any) -> None:
        """Run the run that ``trial`` stands for, and tell the study how it ended."""
        ts = self._optuna.trial.TrialState
        ident = self._queue.identity(trial)
        if ident is None:
            trial.set_user_attr("duplicate_of", -1)  # a surplus trial from a race: nothing to do
            self._study.tell(trial, state=ts.FAIL)
            return
        setting, seed, weight = ident
        dup = self._queue.duplicate_of(trial, (setting.id, seed, weight))
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            self._study.tell(trial, state=ts.FAIL)
            return
        trial.set_user_attr("worker", worker_id())
        stop = threading.Event()
        beat = self._heartbeat(trial, stop)
        started = time.perf_counter()
        epochs: list[dict[str, Any]] = []
        diag_box: list[Any] = []
        test: dict[str, float] = {}
        try:
            value, best_epoch = self._train(trial, setting, seed, weight, epochs, diag_box, test)
        except self._optuna.TrialPruned:
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
        except KeyboardInterrupt:
            # Ctrl-C: the run is put back in the queue (an interrupted trial is not a result)
            # and the interrupt goes on to the command, which says what was kept.
            with contextlib.suppress(Exception):
                trial.set_user_attr("interrupted", True)
                self._study.tell(trial, state=ts.FAIL)
            raise
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
        tid = self._queue.trial_id(trial.number)

        def beat() -> None:
            while not stop.is_set():
                # A missed beat is retried at the next interval.
                with contextlib.suppress(Exception):
                    storage.record_heartbeat(tid)
                stop.wait(interval)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        return thread

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
        spare, self.spare = self.spare, None  # taken once, or dropped: never held long
        if spare is not None and spare[0] == seed:
            problem = spare[1]
        else:
            problem = as_problem(self._builder(seed, **self.config.builder_args))
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
        monitor = monitor_key(self.config.metric, main)
        trial.set_user_attr("monitor", monitor)
        trial.set_user_attr("main", main)
        trial.set_user_attr("shared_layers", sorted(diag.shared_layers))

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
        trial.set_user_attr("summary", jsonable(summary))
        trial.set_user_attr("flow", jsonable(flow))
        trial.set_user_attr("epochs", jsonable(epochs))
        trial.set_user_attr("probes", jsonable(probes))
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


def _compact(ep: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("epoch", "seconds")
    return {
        k: v
        for k, v in ep.items()
        if k in keep
        or k.startswith(("val_", "train_", "gap/", "cos/", "conflict/", "ratio/", "share/"))
        or k.startswith(("dmain/", "norm/", "eff_weight/"))
    }
