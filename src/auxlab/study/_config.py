"""The study configuration: a dataclass, read from TOML with errors that name key and line.

Example ``study.toml``::

    [study]
    name = "headline"
    builder = "study_builders:headline"   # module:function, next to this file or importable
    seeds = [0, 1, 2]
    epochs = 4
    metric = "auc"                        # the main task's validation metric ("loss" too)

    [builder_args]                        # keyword arguments of the builder
    limit = 3000

    [pruning]
    pruner = "none"                       # the default: every run completes

    [[strategies]]
    kind = "log_grid"                     # 0 and a log grid of weights
    low = 0.01
    high = 1.0
    num = 3

    [[strategies]]
    kind = "strategy"                     # any registered strategy, by name
    name = "relative"
    args = { shares = { aux = 0.2 } }
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "StudyConfig", "load_config", "parse_config"]


class ConfigError(ValueError):
    """A study configuration with an unknown key, a wrong type or a bad value."""


# Expected types: "int", "float" (an int is accepted), "str", "bool", "table",
# "list[int]", "list[float]", "int?" (optional: may be absent).
_STUDY_KEYS: dict[str, str] = {
    "name": "str",
    "builder": "str",
    "seeds": "list[int]",
    "epochs": "int",
    "metric": "str",
    "direction": "str",
    "storage": "str",
    "workers": "int",
    "max_trials": "int",
    "timeout": "float",
    "sampler_seed": "int",
    "every": "int",
    "optimizer": "str",
    "lr": "float",
    "threads": "int",
    "description": "str",
}
_PRUNING_KEYS = {
    "pruner": "str",
    "startup_trials": "int",
    "warmup_epochs": "int",
    "percentile": "float",
}
_STRATEGY_KEYS: dict[str, dict[str, str]] = {
    "fixed": {"kind": "str", "weights": "list[float]", "aux": "list[str]", "label": "str"},
    "log_grid": {
        "kind": "str",
        "low": "float",
        "high": "float",
        "num": "int",
        "zero": "bool",
        "aux": "list[str]",
        "label": "str",
    },
    "schedule": {
        "kind": "str",
        "schedule": "str",
        "args": "table",
        "aux": "list[str]",
        "label": "str",
    },
    "strategy": {"kind": "str", "name": "str", "args": "table", "label": "str"},
    "search": {
        "kind": "str",
        "low": "float",
        "high": "float",
        "trials": "int",
        "log": "bool",
        "aux": "list[str]",
        "label": "str",
    },
}
_TOP_KEYS = {"study", "builder_args", "pruning", "strategies"}


@dataclass
class StudyConfig:
    """Everything a study needs; what ``auxlab study CONFIG.toml`` reads.

    Attributes:
        builder: ``"module:function"`` (or the callable itself, in Python): called as
            ``builder(seed, **builder_args)``, it returns a :class:`~auxlab.study.Problem`
            (model, objective, data) built with that seed.
        strategies: Strategy specs (dicts, as the ``[[strategies]]`` tables): ``kind`` is
            ``"fixed"`` (``weights``), ``"log_grid"`` (``low``, ``high``, ``num``; 0 is
            included unless ``zero = false``), ``"schedule"`` (``schedule`` from
            :mod:`auxlab.schedules` and its ``args``), ``"strategy"`` (a registered
            ``name`` and its ``args``) or ``"search"`` (``low``, ``high``, ``trials``,
            ``log``: weights chosen by Optuna's TPE sampler).
        seeds: Seeds of each setting.
        epochs: Epochs per run.
        metric: The main task's validation metric to optimise (``"loss"``: its loss).
        direction: ``"maximize"`` or ``"minimize"``; default from the metric.
        name: The study's name in the storage.
        storage: ``None`` (in memory), a file (``.db``/``.sqlite``: SQLite; other names: an
            Optuna journal file) or a URL (``sqlite:///...``, ``postgresql://...``).
        workers: Worker processes (file or URL storage only).
        max_trials: At most this many trials per process and run (``None``: all).
        timeout: Stop starting trials after this many seconds (``None``: no limit).
        sampler_seed: Seed of the sampler that searches weights.
        every: Diagnostics every ``every`` steps.
        optimizer: Overrides the problem's optimizer name.
        lr: Overrides the problem's learning rate.
        threads: torch's intra-op threads, in this process and in every worker process
            (``None``: ``OMP_NUM_THREADS`` if set, else 1; see :mod:`auxlab._threads`).
        description: What is studied, in words, shown at the top of the report.
        builder_args: Keyword arguments of the builder.
        pruning: ``pruner`` (``"none"``, the default, ``"median"``, ``"percentile"``,
            ``"hyperband"``, ``"successive_halving"``), ``startup_trials``,
            ``warmup_epochs``, ``percentile``. The default prunes nothing: Optuna's pruners
            compare a run with runs of other seeds too, so they stop unlucky seeds rather
            than worse settings, and the paired comparison loses the pruned seed.
        base_dir: Folder added to ``sys.path`` to import the builder (the TOML's folder).
    """

    builder: Any
    strategies: list[dict[str, Any]] = field(
        default_factory=lambda: [{"kind": "log_grid", "low": 0.01, "high": 1.0, "num": 3}]
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 5
    metric: str = "loss"
    direction: str | None = None
    name: str = "auxlab-study"
    storage: str | None = None
    workers: int = 1
    max_trials: int | None = None
    timeout: float | None = None
    sampler_seed: int = 0
    every: int = 50
    optimizer: str | None = None
    lr: float | None = None
    threads: int | None = None
    description: str = ""
    builder_args: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] = field(default_factory=lambda: {"pruner": "none"})
    base_dir: str | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Check values (types are checked when reading TOML).

        Raises:
            ConfigError: Naming the field and the problem.
        """
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct ints: {self.seeds}")
        for name in ("epochs", "workers", "every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ConfigError(
                f"threads must be an integer >= 1, got {t!r}; leave it out to use "
                "OMP_NUM_THREADS if set, else 1"
            )
        mt = self.max_trials
        if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
            raise ConfigError(f"max_trials must be an integer >= 1, got {mt!r}")
        for name in ("timeout", "lr"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {v!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        if self.direction not in (None, "maximize", "minimize"):
            raise ConfigError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if not self.strategies:
            raise ConfigError("strategies is empty: give at least one [[strategies]] table")
        for i, spec in enumerate(self.strategies):
            kind = spec.get("kind")
            if kind not in _STRATEGY_KEYS:
                raise ConfigError(
                    f"strategies[{i}]: kind must be one of {sorted(_STRATEGY_KEYS)}, got {kind!r}"
                )
        pruner = self.pruning.get("pruner", "none")
        if pruner not in ("median", "percentile", "hyperband", "successive_halving", "none"):
            raise ConfigError(f"pruning.pruner: unknown pruner {pruner!r}")

    def builder_ref(self) -> str | None:
        """The builder as ``"module:function"``, or ``None`` if it cannot be imported by name."""
        if isinstance(self.builder, str):
            return self.builder
        mod = getattr(self.builder, "__module__", None)
        qual = getattr(self.builder, "__qualname__", "")
        if mod is None or "<" in qual or mod == "__main__":
            return None
        return f"{mod}:{qual}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-safe), with the builder as ``"module:function"`` or ``None``."""
        d = asdict(self)
        d["builder"] = self.builder_ref()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# TOML with line numbers.

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+)\s*\]\]?")


def _line_of(text: str, section: str, index: int | None, key: str) -> int | None:
    """The 1-based line of ``key`` in ``[section]`` (or the ``index``-th ``[[section]]``).

    tomllib reports no positions for values, so the text is scanned: a table header starts a
    section; ``key =`` (also inside an inline table) is looked for in it.
    """
    current, count = "", -1
    counts: dict[str, int] = {}
    pattern = re.compile(r"(^|[\s{,])\"?" + re.escape(key) + r"\"?\s*=")
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0]
        m = _HEADER.match(stripped)
        if m:
            name = m.group(2).strip("\"'")
            if m.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                current, count = name, counts[name]
            else:
                current, count = name, -1
            continue
        in_section = current == section and (index is None or count == index)
        if in_section and pattern.search(stripped):
            return no
    return None


def _section_line(text: str, section: str, index: int | None) -> int | None:
    counts: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line.split("#", 1)[0])
        if not m:
            continue
        name = m.group(2).strip("\"'")
        if m.group(1) == "[[":
            counts[name] = counts.get(name, -1) + 1
            if name == section and counts[name] == index:
                return no
        elif name == section and index is None:
            return no
    return None


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str)
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "table":
        return isinstance(value, dict)
    if expected.startswith("list["):
        inner = expected[5:-1]
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    raise AssertionError(expected)


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "table": "a table",
    "list[int]": "a list of integers",
    "list[float]": "a list of numbers",
    "list[str]": "a list of strings",
}


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )
    if isinstance(value, dict):
        kind = "a table"
    if isinstance(value, list):
        kind = "a list"
    return f"{value!r} ({kind})"


def _check_table(
    table: dict[str, Any],
    known: dict[str, str],
    where: str,
    text: str,
    section: str,
    index: int | None,
    source: str,
) -> None:
    for key, value in table.items():
        line = _line_of(text, section, index, key)
        at = f"{source}, line {line}" if line else source
        if key not in known:
            raise ConfigError(
                f"{at}: unknown key '{key}' in {where}. Known keys: {', '.join(sorted(known))}."
            )
        expected = known[key]
        if not _type_ok(value, expected):
            raise ConfigError(
                f"{at}: '{key}' in {where} must be {_TYPE_WORDS[expected]}, got {_describe(value)}."
            )


def parse_config(text: str, source: str = "<config>", base_dir: str | None = None) -> StudyConfig:
    """Read a study configuration from TOML text.

    Raises:
        ConfigError: On a TOML syntax error, an unknown key or a wrong type; the message
            names the key, the table and the line.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    for key, value in data.items():
        if key not in _TOP_KEYS:
            line = _line_of(text, "", None, key) or _section_line(text, key, None)
            if line is None:
                line = _section_line(text, key, 0)
            at = f"{source}, line {line}" if line else source
            raise ConfigError(
                f"{at}: unknown key or table '{key}'. Known: {', '.join(sorted(_TOP_KEYS))}."
            )
        if key == "strategies":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{source}: 'strategies' must be [[strategies]] tables")
        elif not isinstance(value, dict):
            line = _line_of(text, "", None, key)
            at = f"{source}, line {line}" if line else source
            raise ConfigError(f"{at}: '{key}' must be a table ([{key}]), got {_describe(value)}")
    study = data.get("study", {})
    _check_table(study, _STUDY_KEYS, "[study]", text, "study", None, source)
    if "builder" not in study:
        line = _section_line(text, "study", None)
        at = f"{source}, line {line}" if line else source
        raise ConfigError(f"{at}: [study] needs 'builder = \"module:function\"'.")
    _check_table(data.get("pruning", {}), _PRUNING_KEYS, "[pruning]", text, "pruning", None, source)
    strategies = data.get("strategies", [])
    for i, spec in enumerate(strategies):
        kind = spec.get("kind")
        where = f"[[strategies]] #{i + 1}"
        if kind not in _STRATEGY_KEYS:
            line = _line_of(text, "strategies", i, "kind") or _section_line(text, "strategies", i)
            at = f"{source}, line {line}" if line else source
            raise ConfigError(
                f"{at}: 'kind' in {where} must be one of {sorted(_STRATEGY_KEYS)}, got {kind!r}."
            )
        _check_table(spec, _STRATEGY_KEYS[kind], where, text, "strategies", i, source)
    kwargs: dict[str, Any] = dict(study)
    kwargs["builder_args"] = data.get("builder_args", {})
    kwargs["pruning"] = {"pruner": "none", **data.get("pruning", {})}
    if strategies:
        kwargs["strategies"] = strategies
    if "timeout" in kwargs:
        kwargs["timeout"] = float(kwargs["timeout"])
    if "lr" in kwargs:
        kwargs["lr"] = float(kwargs["lr"])
    kwargs["base_dir"] = base_dir
    try:
        return StudyConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> StudyConfig:
    """Read a study configuration from a TOML file (see :func:`parse_config`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the study configuration {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        kind = (
            "gzip-compressed"
            if path.read_bytes()[:2] == b"\x1f\x8b"
            else f"not UTF-8 text (byte {exc.start})"
        )
        raise ConfigError(
            f"the study configuration {path} is {kind}: give a TOML text file (UTF-8), "
            "e.g. examples/study_headline.toml"
        ) from None
    return parse_config(text, str(path), base_dir=str(path.resolve().parent))
