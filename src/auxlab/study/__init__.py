"""Studies: sweeps of auxiliary weights and strategies over seeds, on Optuna.

:class:`Study` runs each setting (fixed weights on a log grid that includes 0, schedules,
any registered strategy, or a search over the weight) with each seed, prunes hopeless runs,
stores everything in an Optuna storage (memory, a SQLite or journal file, PostgreSQL), and
turns the tidy table of results into a :class:`Recommendation` with its evidence and an HTML
report. ``auxlab study CONFIG.toml`` is the same on the command line. Needs the ``study``
extra (``pip install "auxlab[study]"``).
"""

from auxlab.study._config import ConfigError, StudyConfig, load_config, parse_config
from auxlab.study._recommend import Group, Recommendation, group_rows, recommend_from_rows
from auxlab.study._settings import Setting, expand, log_grid
from auxlab.study._stats import t_cdf, t_quantile
from auxlab.study._storage import StorageError, open_storage
from auxlab.study._study import MetricError, Problem, Study, StudyError, resolve_builder

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
