"""``auxlab demo``: what the auxiliary weight does to the Keras headline model on real tweets.

Trains the Keras functional-API guide's headline model (text -> LSTM -> auxiliary head; LSTM
output + side features -> dense layers -> main head) on Trump tweets, with the auxiliary
weight at 0 (no auxiliary loss), 0.2 (the guide's choice) and 1.0, over seeds, and writes
``report.html`` with PNG plots and a plain-language summary built from the measurements.

The task (see :func:`auxlab.datasets.tweets`): does a tweet get more likes than the median
tweet of its month? Both heads predict it; the auxiliary head sees the text only, the main
head sees the text and the side features (hour, weekend, source). Split in time order.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxlab.models import HeadlineModel
from auxlab.objective import Objective
from auxlab.train import ArrayLoader, evaluate, fit
from auxlab.weighting import FixedWeights

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Settings of the demo. ``quick()`` gives the under-a-minute variant.

    Attributes:
        weights: Auxiliary weights to compare (the main task weighs 1).
        seeds: Seeds per weight (model initialisation, shuffling).
        epochs: Passes over the training split.
        batch_size: Rows per step (Keras' default is 32; 128 keeps the default run within
            5 minutes on 2 CPU cores, since each step updates the 5.1M-parameter embedding).
        max_len: Tokens kept per tweet (the guide uses 100; tweets are shorter).
        num_words: Vocabulary size (the guide: 10,000).
        embed_dim: Embedding width (the guide: 512).
        limit: Keep only the last ``limit`` tweets in time (``None``: all 20,761).
        lr: RMSprop learning rate (Keras' default 1e-3).
        metric: The main task's metric reported and used to pick the best epoch.
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
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> DemoConfig:
        """A subset run that finishes in under a minute on 2 CPU cores."""
        return cls(epochs=2, batch_size=64, limit=4000, max_len=30, num_words=5000, embed_dim=128)


def _stats(values: list[float]) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.min()), float(arr.max())


def run_demo(
    out: str | Path = "auxlab-demo", config: DemoConfig | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run the demo and write ``report.html``, PNG plots, ``results.csv`` and ``results.json``.

    Returns:
        ``{"report": path, "rows": per-run results, "summary": [sentences]}``.
    """
    from tqdm.auto import tqdm

    from auxlab import report
    from auxlab.datasets import tweets

    cfg = config or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = tweets(max_len=cfg.max_len, num_words=cfg.num_words, limit=cfg.limit)
    train_x, train_y = data.train.inputs(), data.train.targets()
    val = ArrayLoader(data.val.inputs(), data.val.targets(), batch_size=512)
    test = ArrayLoader(data.test.inputs(), data.test.targets(), batch_size=512)
    # The gap is measured on a fixed sample of the training split of the validation's size.
    n_gap = min(len(data.train), len(data.val))
    gap_idx = torch.from_numpy(
        np.random.default_rng(0).choice(len(data.train), size=n_gap, replace=False)
    )
    train_eval = ArrayLoader(
        {k: v[gap_idx] for k, v in train_x.items()},
        {k: v[gap_idx] for k, v in train_y.items()},
        batch_size=512,
    )
    metric = cfg.metric
    key = f"main_{metric}"

    runs = [(w, s) for w in cfg.weights for s in cfg.seeds]
    rows: list[dict[str, Any]] = []
    histories: dict[tuple[float, int], Any] = {}
    bar = tqdm(
        total=len(runs) * cfg.epochs,
        desc="auxlab demo",
        unit="epoch",
        disable=not progress,
        dynamic_ncols=True,
    )
    for w, seed in runs:
        model = HeadlineModel(
            vocab_size=cfg.num_words,
            seq_len=cfg.max_len,
            embed_dim=cfg.embed_dim,
            num_side=len(data.side_names),
            task="binary",
            seed=seed,
        )
        objective = Objective(model.loss, metrics=[metric, "accuracy"]).bind(model)
        train = ArrayLoader(train_x, train_y, batch_size=cfg.batch_size, shuffle=True, seed=seed)

        def tick(ep: dict[str, Any], w: float = w, seed: int = seed) -> None:
            bar.update(1)
            bar.set_postfix_str(f"w={w:g} seed={seed} val {metric} {ep[f'val_{key}']:.3f}")

        start = time.perf_counter()
        history = fit(
            model,
            train,
            objective,
            FixedWeights({"main": 1.0, "aux": w}),
            epochs=cfg.epochs,
            optimizer="rmsprop",
            lr=cfg.lr,
            val=val,
            evaluate_train=train_eval,
            restore_best=True,
            progress=False,
            seed=seed,
            callbacks=[tick],
        )
        seconds = time.perf_counter() - start
        best = history.epochs[history.best_epoch or 0]
        test_scores = evaluate(model, test, objective, "test_")
        histories[(w, seed)] = history
        rows.append(
            {
                "weight": w,
                "seed": seed,
                "best_epoch": (history.best_epoch or 0) + 1,
                f"test_{key}": test_scores[f"test_{key}"],
                "test_main_accuracy": test_scores["test_main_accuracy"],
                f"test_aux_{metric}": test_scores[f"test_aux_{metric}"],
                f"val_{key}": best[f"val_{key}"],
                f"train_{key}": best[f"train_{key}"],
                "gap": best[f"train_{key}"] - best[f"val_{key}"],
                "test_loss_main": test_scores["test_loss_main"],
                "test_loss_aux": test_scores["test_loss_aux"],
                "seconds": seconds,
            }
        )
    bar.close()

    # ---- tables and plots -----------------------------------------------------------------
    by_w: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_w.setdefault(r["weight"], []).append(r)
    report.plot_metric_by_weight(
        {w: [r[f"test_{key}"] for r in rs] for w, rs in by_w.items()},
        f"test {metric.upper() if metric == 'auc' else metric} (main task)",
        out / "test_metric.png",
        f"Main task, test split: grey = one seed, blue = mean and range ({len(cfg.seeds)} seeds)",
    )
    steps_per_epoch = len(ArrayLoader(train_x, train_y, batch_size=cfg.batch_size))
    window = max(1, steps_per_epoch // 10)
    report.plot_learning_curves(
        {
            "main loss (train, unweighted)": {
                w: [histories[(w, s)]["loss_main"] for s in cfg.seeds] for w in cfg.weights
            },
            "auxiliary loss (train, unweighted)": {
                w: [histories[(w, s)]["loss_aux"] for s in cfg.seeds] for w in cfg.weights
            },
        },
        out / "train_curves.png",
        xlabel=f"step (moving average over {window})",
        window=window,
    )
    report.plot_learning_curves(
        {
            f"validation {metric} (main)": {
                w: [histories[(w, s)][f"val_{key}"] for s in cfg.seeds] for w in cfg.weights
            },
            f"train - validation {metric} gap (main)": {
                w: [
                    list(
                        np.subtract(
                            histories[(w, s)][f"train_{key}"], histories[(w, s)][f"val_{key}"]
                        )
                    )
                    for s in cfg.seeds
                ]
                for w in cfg.weights
            },
            "validation loss (main)": {
                w: [histories[(w, s)]["val_loss_main"] for s in cfg.seeds] for w in cfg.weights
            },
        },
        out / "val_curves.png",
        xlabel="epoch",
    )

    summary = summarize(rows, cfg.weights, metric)
    table = [["weight", f"test {metric} (mean)", "min", "max", "accuracy", "gap", "aux " + metric]]
    for w in sorted(by_w):
        rs = by_w[w]
        m, lo, hi = _stats([r[f"test_{key}"] for r in rs])
        table.append(
            [
                f"{w:g}",
                f"{m:.4f}",
                f"{lo:.4f}",
                f"{hi:.4f}",
                f"{np.mean([r['test_main_accuracy'] for r in rs]):.4f}",
                f"{np.mean([r['gap'] for r in rs]):+.4f}",
                f"{np.mean([r[f'test_aux_{metric}'] for r in rs]):.4f}",
            ]
        )
    elapsed = time.perf_counter() - t0
    meta = (
        f"{len(data.train):,} / {len(data.val):,} / {len(data.test):,} tweets "
        f"(train / validation / test, split in time order); {cfg.epochs} epochs, batch "
        f"{cfg.batch_size}, RMSprop lr {cfg.lr:g}, sequence length {cfg.max_len}, vocabulary "
        f"{cfg.num_words:,}, embedding {cfg.embed_dim}; seeds {list(cfg.seeds)}; "
        f"{elapsed:.0f} s on {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}."
    )
    sections: list[dict[str, Any]] = [
        {
            "title": "Main task, test split",
            "text": (
                "The question: does the tweet get more likes than the median tweet of its month? "
                f"Each run is scored at its best validation epoch. Higher {metric} is better."
            ),
            "image": "test_metric.png",
            "table": table,
        },
        {
            "title": "Training: main and auxiliary losses",
            "text": (
                "Unweighted training losses per step. With weight 0 the auxiliary head receives "
                "no gradient, so its loss shows what the text branch alone encodes by accident."
            ),
            "image": "train_curves.png",
        },
        {
            "title": "Validation and the train/validation gap",
            "text": (
                "The gap is the main task's metric on a fixed sample of the training split minus "
                "the same on the validation split: a larger gap means more over-fitting."
            ),
            "image": "val_curves.png",
        },
        {
            "title": "Runs",
            "table": [list(rows[0].keys())] + [[_fmt(v) for v in r.values()] for r in rows],
        },
    ]
    path = report.write_html(
        out / "report.html",
        "auxlab demo: the auxiliary loss weight in the Keras headline model, on real tweets",
        meta,
        summary,
        sections,
    )
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(
        json.dumps({"config": _jsonable(cfg), "rows": rows, "summary": summary}, indent=1)
    )
    return {"report": path, "rows": rows, "summary": summary}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _jsonable(cfg: DemoConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}


def summarize(rows: list[dict[str, Any]], weights: tuple[float, ...], metric: str) -> list[str]:
    """Plain-language statements built from the measured rows (no fixed conclusions)."""
    key = f"test_main_{metric}"
    by_w: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_w.setdefault(r["weight"], []).append(r)
    n_seeds = min(len(v) for v in by_w.values())
    lines = []
    means = {w: float(np.mean([r[key] for r in rs])) for w, rs in by_w.items()}
    spreads = {w: float(np.ptp([r[key] for r in rs])) for w, rs in by_w.items()}
    noise = max(spreads.values()) if n_seeds > 1 else math.nan
    base = 0.0 if 0.0 in by_w else None
    for w in sorted(by_w):
        m = means[w]
        lo, hi = min(r[key] for r in by_w[w]), max(r[key] for r in by_w[w])
        text = f"Weight {w:g}: main-task test {metric} {m:.4f} (seeds {lo:.4f} to {hi:.4f})"
        if base is not None and w != base:
            d = m - means[base]
            verdict = (
                "larger than the largest spread between seeds"
                if n_seeds > 1 and abs(d) > noise
                else "within the spread between seeds, so these runs cannot tell it apart from "
                "no auxiliary loss"
            )
            text += f", {d:+.4f} against no auxiliary loss: {verdict}."
        else:
            text += "."
        lines.append(text)
    best = max(means, key=lambda w: means[w])
    if base is not None:
        if best == base or means[best] - means[base] <= noise:
            lines.append(
                "No auxiliary weight beat no auxiliary loss by more than the noise between seeds "
                f"(largest seed spread {noise:.4f}). On this data the evidence favours weight 0 "
                "or says nothing; more seeds would narrow it down."
            )
        else:
            lines.append(
                f"Best mean: weight {best:g}, {means[best] - means[base]:+.4f} over no auxiliary "
                f"loss, more than the largest seed spread ({noise:.4f}). With {n_seeds} seeds "
                "this is weak evidence; sweep more weights and seeds before relying on it."
            )
    # What the weight did to training.
    gaps = {w: float(np.mean([r["gap"] for r in rs])) for w, rs in by_w.items()}
    aux = {w: float(np.mean([r["test_loss_aux"] for r in rs])) for w, rs in by_w.items()}
    ws = sorted(by_w)
    if len(ws) > 1:
        lines.append(
            "Auxiliary head, test loss: "
            + ", ".join(f"{aux[w]:.3f} at weight {w:g}" for w in ws)
            + ". With weight 0 the auxiliary head is never trained; a larger weight makes the "
            "text branch (embedding and LSTM) learn to predict the target from the words alone."
        )
        gap_noise = max(float(np.ptp([r["gap"] for r in by_w[w]])) for w in ws)
        change = gaps[ws[-1]] - gaps[ws[0]]
        if n_seeds > 1 and abs(change) <= gap_noise:
            verdict = (
                f"a change of {change:+.4f}, within the spread between seeds ({gap_noise:.4f}): "
                "no regularising effect can be read from these runs."
            )
        elif change < 0:
            verdict = f"it shrank by {-change:.4f}: the auxiliary loss acted as a regulariser here."
        else:
            verdict = f"it grew by {change:.4f}: no regularising effect showed up here."
        lines.append(
            f"Train/validation gap of the main task ({metric}, at the best epoch): "
            + ", ".join(f"{gaps[w]:+.4f} at weight {w:g}" for w in ws)
            + f". From weight {ws[0]:g} to {ws[-1]:g}: {verdict}"
        )
    return lines
