"""Studies: sweeps of auxiliary weights and strategies over seeds, on Optuna.

:class:`Study` runs each setting (fixed weights on a log grid that includes 0, schedules,
any registered strategy, or a search over the weight) with each seed, prunes hopeless runs,
stores everything in an Optuna storage (memory, a SQLite or journal file, PostgreSQL), and
turns the results (:class:`StudyRecords`: the tidy table and each run's curves) into a
:class:`Recommendation` with its evidence and an HTML report. It sets torch's intra-op threads
as configured (``threads``; else ``OMP_NUM_THREADS``; else 1), in this process and in every
worker. ``auxlab study CONFIG.toml`` is the same on the command line. Needs the ``study``
extra (``pip install "auxlab[study]"``).
"""

from auxlab.study._config import ConfigError, StudyConfig, load_config, parse_config
from auxlab.study._errors import MetricError, StudyError
from auxlab.study._groups import Group, group_rows
from auxlab.study._problem import Problem, resolve_builder
from auxlab.study._recommend import Recommendation, recommend_from_rows
from auxlab.study._results import StudyRecords
from auxlab.study._settings import Setting, expand, log_grid
from auxlab.study._stats import t_cdf, t_quantile
from auxlab.study._storage import StorageError, open_storage
from auxlab.study._study import Study

__all__ = [
    "ConfigError",
    "Group",
    "MetricError",
    "Problem",
    "Recommendation",
    "Setting",
    "StorageError",
    "Study",
    "StudyConfig",
    "StudyError",
    "StudyRecords",
    "expand",
    "group_rows",
    "load_config",
    "log_grid",
    "open_storage",
    "parse_config",
    "recommend_from_rows",
    "resolve_builder",
    "t_cdf",
    "t_quantile",
]
