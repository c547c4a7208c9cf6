"""The study's queue of runs: every (setting, seed) run exactly once, over any storage.

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
* Searches start with a grid (:meth:`Setting.grid`: up to ``GRID_MAX`` weights from low to
  high, log-spaced, the same for every seed), enqueued like the fixed weights; the weights
  after it come from Optuna's TPE sampler, which models the grid's results, and each is
  enqueued for the other seeds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from auxlab.study._errors import StudyError
from auxlab.study._settings import Setting

__all__ = ["RETRY_ATTR", "Key", "RunQueue", "worker_id"]

#: The study's user attribute: failed runs in trials numbered below it are run again.
RETRY_ATTR = "auxlab_retry_from"

#: A run's identity: setting id, seed, and the weight for a search (else ``None``).
Key = tuple[str, int, float | None]


def worker_id() -> str:
    """This process, as recorded on the trials it runs: ``host:pid``."""
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


class RunQueue:
    """The runs of one Optuna study: what is wanted, taken, done, and what to run next.

    Args:
        optuna: The ``optuna`` module.
        study: The Optuna study.
        storage: Its storage.
        settings: The study's settings.
        seeds: The study's seeds.
    """

    def __init__(
        self, optuna: Any, study: Any, storage: Any, settings: Sequence[Setting], seeds: list[int]
    ) -> None:
        self._optuna = optuna
        self._study = study
        self._storage = storage
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self.settings = list(settings)
        self.by_id = {s.id: s for s in self.settings}
        self.seeds = list(seeds)
        #: The trial this process is running (its own RUNNING trial is not dead).
        self.current: int | None = None

    def retry_from(self) -> int:
        """Failed runs in trials numbered below this are run again (see :meth:`retry_failed`)."""
        return int(self._study.user_attrs.get(RETRY_ATTR, 0))

    def superseded(self, ft: Any, retry_from: int | None = None) -> bool:
        """Whether ``ft`` is a failed run that a later one replaces (or was interrupted).

        ``retry_from``: :meth:`retry_from`, when the caller has read it already.
        """
        if ft.state != self._optuna.trial.TrialState.FAIL:
            return False
        if ft.user_attrs.get("interrupted"):
            return True
        return ft.number < (self.retry_from() if retry_from is None else retry_from)

    def retry_failed(self) -> int:
        """Run every failed run again (a corrected builder or config); how many there are.

        Failed trials are finished and cannot change, so the study records the number from
        which trials count: failed ones below it are superseded and their runs requeued.
        """
        ts = self._optuna.trial.TrialState
        trials = self._study.get_trials(deepcopy=False)
        rf = self.retry_from()
        failed = [
            ft
            for ft in trials
            if ft.state == ts.FAIL
            and "error" in ft.user_attrs
            and ft.user_attrs.get("duplicate_of") is None
            and not self.superseded(ft, rf)
        ]
        if failed:
            self._study.set_user_attr(RETRY_ATTR, max(ft.number for ft in trials) + 1)
        return len(failed)

    def unfinished(self) -> list[Any]:
        """The runs still waiting or running (in this or another process), as frozen trials."""
        ts = self._optuna.trial.TrialState
        return [
            ft
            for ft in self._study.get_trials(deepcopy=False, states=(ts.WAITING, ts.RUNNING))
            if ft.user_attrs.get("duplicate_of") is None and self.key(ft.user_attrs) is not None
        ]

    def key(self, attrs: Mapping[str, Any]) -> Key | None:
        """A trial's identity from its user attributes (``None``: not a run)."""
        sid = attrs.get("setting")
        if sid is None or "seed" not in attrs:
            return None
        s = self.by_id.get(sid)
        weight = attrs.get("weight") if s is not None and s.kind == "search" else None
        return (str(sid), int(attrs["seed"]), None if weight is None else float(weight))

    def trial_id(self, number: int) -> int:
        """The storage's id of trial ``number``."""
        return int(self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number))

    def _is_dead(self, ft: Any) -> bool:
        worker = ft.user_attrs.get("worker")
        if not worker:
            return False
        host, _, pid = str(worker).rpartition(":")
        if host != socket.gethostname():
            return False
        if int(pid) == os.getpid():
            return ft.number != self.current
        return _process_dead(int(pid))

    def maintain(self) -> None:
        """Fail trials of dead workers; enqueue every identity that is not taken."""
        ts = self._optuna.trial.TrialState
        if self._storage.__class__.__name__ == "RDBStorage":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
                self._optuna.storages.fail_stale_trials(self._study)
        taken: set[Key] = set()
        searched: dict[str, set[float]] = {}
        rf = self.retry_from()
        for ft in self._study.get_trials(deepcopy=False):
            if ft.user_attrs.get("duplicate_of") is not None or self.superseded(ft, rf):
                continue
            key = self.key(ft.user_attrs)
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
                self.enqueue(key)

    def _wanted(self, searched: Mapping[str, set[float]]) -> list[Key]:
        out: list[Key] = []
        for s in self.settings:
            if s.kind == "search":
                # The start-up grid first (the same for every seed), then what TPE proposed;
                # a study searched before the grid existed keeps to its budget of weights.
                done = set(searched.get(s.id, ()))
                grid = s.grid()
                room = max(0, s.trials - len(done - set(grid)))
                for w in sorted(done | set(grid[:room])):
                    out += [(s.id, seed, w) for seed in self.seeds]
            else:
                out += [(s.id, seed, None) for seed in self.seeds]
        return out

    def enqueue(self, key: Key) -> None:
        """Add the run ``key`` to the queue as a waiting trial."""
        sid, seed, weight = key
        attrs: dict[str, Any] = {"setting": sid, "seed": seed}
        params: dict[str, Any] = {}
        if weight is not None:
            attrs["weight"] = weight
            params[self.by_id[sid].param] = weight
        self._study.enqueue_trial(params, user_attrs=attrs)

    def _fail_dead(self, ft: Any) -> None:
        tid = self.trial_id(ft.number)
        # Another worker may fail the same dead trial first; the storage then refuses the
        # update of a finished trial, which is fine.
        with contextlib.suppress(Exception):
            self._storage.set_trial_user_attr(tid, "died", str(ft.user_attrs.get("worker")))
            self._storage.set_trial_state_values(tid, self._optuna.trial.TrialState.FAIL)

    def search_budget(self) -> Setting | None:
        """A search setting that may still sample a weight, if any."""
        counts: dict[str, set[float]] = {}
        rf = self.retry_from()
        for ft in self._study.get_trials(deepcopy=False):
            if self.superseded(ft, rf):
                continue
            key = self.key(ft.user_attrs)
            if key is not None and key[2] is not None and not ft.user_attrs.get("duplicate_of"):
                counts.setdefault(key[0], set()).add(key[2])
        for s in self.settings:
            if s.kind == "search" and len(counts.get(s.id, ())) < s.trials:
                return s
        return None

    def has_work(self) -> bool:
        """Whether a run is waiting, or a search may still sample a weight."""
        ts = self._optuna.trial.TrialState
        waiting = self._study.get_trials(deepcopy=False, states=(ts.WAITING,))
        return bool(waiting) or self.search_budget() is not None

    def identity(self, trial: Any) -> tuple[Setting, int, float | None] | None:
        """The run a trial just taken from the queue is: its setting, seed and weight.

        A trial with no identity yet asks the search for a weight (and enqueues that weight
        for the other seeds); ``None`` when there is nothing left to search.

        Raises:
            StudyError: The trial names a setting this study does not have.
        """
        attrs = trial.user_attrs
        if "setting" in attrs:
            s = self.by_id.get(attrs["setting"])
            if s is None:
                raise StudyError(f"trial {trial.number} has an unknown setting {attrs['setting']}")
            w = None
            if s.kind == "search":
                w = trial.suggest_float(s.param, s.low, s.high, log=s.log)
            return s, int(attrs["seed"]), w
        search = self.search_budget()
        if search is None:
            return None
        w = trial.suggest_float(search.param, search.low, search.high, log=search.log)
        seed = self.seeds[0]
        trial.set_user_attr("setting", search.id)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("weight", w)
        for other in self.seeds[1:]:
            self.enqueue((search.id, other, w))
        return search, seed, w

    def duplicate_of(self, trial: Any, key: Key) -> int | None:
        """The number of a trial that already ran (or is running) ``key``, if any."""
        ts = self._optuna.trial.TrialState
        rf = self.retry_from()
        for ft in self._study.get_trials(deepcopy=False):
            if ft.number == trial.number or ft.user_attrs.get("duplicate_of") is not None:
                continue
            if self.superseded(ft, rf):
                continue
            if self.key(ft.user_attrs) != key:
                continue
            finished = ft.state in (ts.COMPLETE, ts.PRUNED) or (
                ft.state == ts.FAIL and "error" in ft.user_attrs
            )
            if finished or (ft.state == ts.RUNNING and ft.number < trial.number):
                return int(ft.number)
        return None
