"""A study's results as plain records: the tidy table and each run's curves.

:class:`StudyRecords` is what the report, the CSV and the recommendation read. It holds data
only, so it knows nothing of Optuna or of :class:`~auxlab.study.Study`, which builds it with
:func:`records_from_trials`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auxlab.study._recommend import Recommendation, recommend_from_rows
from auxlab.study._settings import Setting

__all__ = ["StudyRecords", "records_from_trials"]


@dataclass
class StudyRecords:
    """What a study found, as plain data.

    Attributes:
        name: The study's name.
        metric: The optimised metric (the main task's validation metric, or ``"loss"``).
        direction: ``"maximize"`` or ``"minimize"``.
        settings: The settings studied, in words (their labels).
        seeds: The seeds.
        epochs: Epochs per run.
        description: What is studied, in words.
        runs: One dict per finished run: ``row`` (its row of the tidy table, see
            :meth:`Study.results <auxlab.study.Study.results>`), ``epochs`` (the epoch
            records), ``probes`` (the diagnostics' probed steps), ``flow`` (gradient norm per
            task and layer), ``monitor`` (the epoch record's key of the metric), ``main``
            (the main task) and ``shared_layers`` (the layers of the shared block); the last
            two are ``None`` in studies stored before they were recorded.
        pruner: The pruner the runs ran under (``"none"``: every run completes).
        unfinished: Rows of the runs still waiting or running when the records were read
            (another worker's): results with any are partial. :meth:`to_csv` writes them
            with their state (``WAITING``, ``RUNNING``) and no value.
    """

    name: str
    metric: str
    direction: str
    settings: list[str]
    seeds: list[int]
    epochs: int
    description: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    unfinished: list[dict[str, Any]] = field(default_factory=list)
    pruner: str = "none"

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The tidy table: one row per finished run."""
        return [r["row"] for r in self.runs]

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`rows` as CSV (columns: the union over rows, in first-seen order)."""
        rows = self.rows + self.unfinished
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

    def recommend(self, level: float = 0.95) -> Recommendation:
        """The recommendation from :attr:`rows` (see :func:`~auxlab.study.recommend_from_rows`).

        Raises:
            ValueError: If no run completed with a finite metric.
        """
        return recommend_from_rows(self.rows, self.metric, self.direction, level)


def _label(s: Setting | None, sid: str, weight: float | None) -> str:
    if s is not None and s.kind == "search" and weight is not None:
        return f"w={weight:.4g} (search)"
    return s.label if s is not None else sid


def records_from_trials(
    trials: Iterable[Any], by_id: Mapping[str, Setting], retry_from: int = 0, **about: Any
) -> StudyRecords:
    """The records of a study's finished runs, from its Optuna trials.

    Args:
        trials: The study's (frozen) trials; bookkeeping trials, interrupted runs and failed
            runs that were run again (numbered below ``retry_from``) are left out; waiting
            and running ones go to :attr:`StudyRecords.unfinished`.
        by_id: The study's settings by id.
        retry_from: Failed trials numbered below it were run again.
        **about: The other :class:`StudyRecords` fields (``name``, ``metric``, ...).
    """
    runs = []
    unfinished = []
    for ft in trials:
        ua = ft.user_attrs
        if ua.get("duplicate_of") is not None or "setting" not in ua:
            continue
        state = ft.state.name
        if state == "FAIL" and (ua.get("interrupted") or ft.number < retry_from):
            continue
        if state in ("WAITING", "RUNNING"):
            s = by_id.get(ua["setting"])
            weight = ua.get("weight", s.weight if s is not None else None)
            where = f" in {ua['worker']}" if ua.get("worker") else ""
            unfinished.append(
                {
                    "trial": ft.number,
                    "state": state,
                    "setting": ua["setting"],
                    "label": _label(s, ua["setting"], weight),
                    "kind": s.kind if s is not None else "",
                    "weight": math.nan if weight is None else float(weight),
                    "seed": int(ua["seed"]),
                    "value": math.nan,
                    "error": f"not finished{where} when these results were written (partial)",
                }
            )
            continue
        if state not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        s = by_id.get(ua["setting"])
        weight = ua.get("weight", s.weight if s is not None else None)
        value = ft.value
        if value is None and ft.intermediate_values:
            value = ft.intermediate_values[max(ft.intermediate_values)]
        error = ua.get("error", "")
        if state == "FAIL" and not error:
            error = f"the worker {ua.get('died') or ua.get('worker')} died during the run"
        row: dict[str, Any] = {
            "trial": ft.number,
            "state": state,
            "setting": ua["setting"],
            "label": _label(s, ua["setting"], weight),
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
        runs.append(
            {
                "row": row,
                "epochs": ua.get("epochs", []),
                "probes": ua.get("probes", []),
                "flow": ua.get("flow", {}),
                "monitor": ua.get("monitor"),
                "main": ua.get("main"),
                "shared_layers": ua.get("shared_layers"),
            }
        )
    return StudyRecords(runs=runs, unfinished=unfinished, **about)
