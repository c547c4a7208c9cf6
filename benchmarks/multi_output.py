"""Multi-output regression and multi-label classification on real data, against scikit-learn.

Four parts, each a list of flat records in ``--json``:

* ``solar_flare`` (river, 1,066 x 23 -> 3 flare counts) and ``cars`` (vega, 406 x 7 ->
  miles per gallon, acceleration, horsepower; 8 + 6 targets missing, masked per task):
  repeated k-fold (``--folds 5 --repeats 2``, folds from ``RepeatedKFold(random_state=0)``).
  Models: the training mean; ``LinearRegression``; ``RidgeCV`` (alphas 1e-3 ... 1e3);
  ``MultiOutputRegressor(RandomForestRegressor(100 trees, min_samples_leaf 3))``; and
  :class:`auxlab.models.MultiOutputMLP` three ways: ``mlp_joint`` (one network, every
  target a task, equal weights, masked MSE on standardised targets), ``mlp_per_target``
  (one network per target) and ``mlp_main_aux`` (the first target main, the others
  auxiliary with weight 0.3; only the main target is scored). scikit-learn models fit each
  target on the rows where it is observed (for these per-target models that is what
  ``MultiOutputRegressor`` does, minus the rows it could not use). Networks: inputs and
  targets standardised on the training fold, one hidden layer of 64 ReLU units, Adam 1e-3,
  batch 32, at most 200 epochs with early stopping (patience 10, best epoch restored) on
  the summed validation loss of a 15 % inner split. Scores in the targets' own units, per
  target, on the observed test values: MAE, RMSE, R².
* ``yeast`` (river, 2,417 x 103 -> 14 labels): the same k-fold; Hamming loss, micro and
  macro F1, subset accuracy. Models: ``prevalence`` (predict every label whose training
  frequency is above one half), ``MultiOutputClassifier(LogisticRegression)``,
  ``ClassifierChain(LogisticRegression, order="random")``, and ``mlp_joint`` (14 named
  binary tasks, masked BCE with logits, equal weights; hidden 128, dropout 0.2).
* ``mlm`` (Machine Learning Mastery, "Deep Learning Models for Multi-Output Regression"):
  ``make_regression(1000, 10, n_informative=5, n_targets=3, random_state=2)``,
  ``RepeatedKFold(10, 3, random_state=1)`` (30 folds), a 20-unit network with He-uniform
  initialisation trained with MAE for 100 epochs (Adam, batch 32, no early stopping), and
  ``LinearRegression``, which is exact here because the data are linear without noise.

Reproduce::

    python benchmarks/multi_output.py --json multi_output.json          # all parts
    python benchmarks/multi_output.py --quick --json /tmp/mo_quick.json  # ~1-2 minutes

Needs the ``data`` extra's packages (river, vega_datasets) and scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxlab import ArrayLoader, FixedWeights, fit
from auxlab.datasets._multi_output import MultiOutputData, cars, solar_flare, yeast
from auxlab.models._multi_output import MultiOutputMLP, multilabel_scores

NAN = float("nan")


def _sklearn() -> Any:
    import sklearn  # fail early with a clear message

    return sklearn


# ---------------------------------------------------------------------------------------------
# Networks.


def _standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = np.nanmean(train, axis=0)
    sd = np.nanstd(train, axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mu) / sd for a in (train, *others)]


def _inner_split(n: int, seed: int, frac: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, round(frac * n))
    return order[k:], order[:k]


def train_mlp(
    x: np.ndarray,
    targets: dict[str, np.ndarray],
    specs: dict[str, Any],
    seed: int,
    weights: dict[str, float] | None = None,
    main: str | None = None,
    hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
    epochs: int = 200,
    patience: int | None = 10,
    loss: str | None = None,
    lr: float = 1e-3,
) -> MultiOutputMLP:
    """Fit a MultiOutputMLP with early stopping on the summed validation loss."""
    model = MultiOutputMLP(x.shape[1], specs, hidden=hidden, dropout=dropout, main=main, seed=seed)
    objective = model.objective(losses=dict.fromkeys(specs, loss) if loss else None)
    xt = torch.from_numpy(x.astype(np.float32))
    yt = {k: torch.from_numpy(v.astype(np.float32)) for k, v in targets.items()}
    strategy: Any = FixedWeights(weights) if weights else "equal"
    if patience is None:
        fit(
            model,
            ArrayLoader(xt, yt, batch_size=32, shuffle=True, seed=seed),
            objective,
            strategy,
            epochs=epochs,
            lr=lr,
            progress=False,
            seed=seed,
        )
        return model
    tr, va = _inner_split(len(x), seed)
    w = weights or dict.fromkeys(specs, 1.0)

    def total(ep: dict[str, Any]) -> None:
        ep["val_loss_total"] = sum(
            w.get(t, 1.0) * v for t in specs if not math.isnan(v := ep[f"val_loss_{t}"])
        )

    fit(
        model,
        ArrayLoader(xt[tr], {k: v[tr] for k, v in yt.items()}, 32, shuffle=True, seed=seed),
        objective,
        strategy,
        epochs=epochs,
        lr=lr,
        val=ArrayLoader(xt[va], {k: v[va] for k, v in yt.items()}, batch_size=4096),
        monitor="val_loss_total",  # "loss" in the name: lower is better
        early_stopping=patience,
        callbacks=[total],
        progress=False,
        seed=seed,
    )
    return model


@torch.no_grad()
def _predict(model: MultiOutputMLP, x: np.ndarray) -> dict[str, np.ndarray]:
    model.eval()
    out = model(torch.from_numpy(x.astype(np.float32)))
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Regression.


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(y - p).mean()),
        "rmse": float(np.sqrt(((y - p) ** 2).mean())),
        "r2": 1.0 - float(((y - p) ** 2).sum()) / ss_tot if ss_tot > 0 else NAN,
        "n_test": int(keep.sum()),
    }


def _per_target_sklearn(make: Callable[[], Any]) -> Callable[..., np.ndarray]:
    def predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, seed: int) -> np.ndarray:
        out = np.empty((len(x_te), y_tr.shape[1]))
        for j in range(y_tr.shape[1]):
            keep = ~np.isnan(y_tr[:, j])
            est = make()
            if "random_state" in est.get_params():
                est.set_params(random_state=seed)
            out[:, j] = est.fit(x_tr[keep], y_tr[keep, j]).predict(x_te)
        return out

    return predict


def regression_models() -> dict[str, Callable[..., np.ndarray]]:
    _sklearn()
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression, RidgeCV

    def mean(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, seed: int) -> np.ndarray:
        return np.broadcast_to(np.nanmean(y_tr, 0), (len(x_te), y_tr.shape[1])).copy()

    return {
        "mean": mean,
        "linear": _per_target_sklearn(LinearRegression),
        "ridge_cv": _per_target_sklearn(lambda: RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "random_forest": _per_target_sklearn(
            lambda: RandomForestRegressor(n_estimators=100, min_samples_leaf=3, n_jobs=1)
        ),
    }


def regression_benchmark(
    data: MultiOutputData, folds: int, repeats: int, epochs: int, log: Callable[[dict], None]
) -> None:
    from sklearn.model_selection import RepeatedKFold

    names = list(data.target_names)
    x_all, y_all = data.X.astype(np.float64), data.Y.astype(np.float64)
    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    baselines = regression_models()
    for k, (tr, te) in enumerate(splitter.split(x_all)):
        seed = k
        x_tr, x_te = _standardize(x_all[tr], x_all[te])
        y_tr_raw, y_te = y_all[tr], y_all[te]
        mu, sd = np.nanmean(y_tr_raw, 0), np.nanstd(y_tr_raw, 0)
        y_tr = (y_tr_raw - mu) / sd

        def emit(
            model: str,
            pred: np.ndarray,
            seconds: float,
            only: Sequence[int] = (),
            k: int = k,
            n_train: int = len(tr),
            y_te: np.ndarray = y_te,
        ) -> None:
            for j, name in enumerate(names):
                if only and j not in only:
                    continue
                log(
                    {
                        "benchmark": "multi_output",
                        "dataset": data.source.split()[0].split(".")[-1],
                        "model": model,
                        "target": name,
                        "fold": k,
                        "seed": k,
                        "train_size": n_train,
                        **_scores(y_te[:, j], pred[:, j]),
                        "seconds": seconds,
                    }
                )

        for model_name, predict in baselines.items():
            t = time.perf_counter()
            pred = predict(x_tr, y_tr_raw, x_te, seed)
            emit(model_name, pred, time.perf_counter() - t)

        specs = dict.fromkeys(names, "regression")
        targets = {n: y_tr[:, j] for j, n in enumerate(names)}
        t = time.perf_counter()
        net = train_mlp(x_tr, targets, specs, seed, epochs=epochs)
        out = _predict(net, x_te)
        pred = np.stack([out[n] * sd[j] + mu[j] for j, n in enumerate(names)], 1)
        emit("mlp_joint", pred, time.perf_counter() - t)

        t = time.perf_counter()
        cols = []
        for j, n in enumerate(names):
            net = train_mlp(x_tr, {n: targets[n]}, {n: "regression"}, seed, epochs=epochs)
            cols.append(_predict(net, x_te)[n] * sd[j] + mu[j])
        emit("mlp_per_target", np.stack(cols, 1), time.perf_counter() - t)

        t = time.perf_counter()
        w = {names[0]: 1.0, **dict.fromkeys(names[1:], 0.3)}
        net = train_mlp(x_tr, targets, specs, seed, weights=w, main=names[0], epochs=epochs)
        out = _predict(net, x_te)
        pred = np.stack([out[n] * sd[j] + mu[j] for j, n in enumerate(names)], 1)
        emit("mlp_main_aux0.3", pred, time.perf_counter() - t, only=[0])


# ---------------------------------------------------------------------------------------------
# Multi-label classification.


def yeast_benchmark(folds: int, repeats: int, epochs: int, log: Callable[[dict], None]) -> None:
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedKFold
    from sklearn.multioutput import ClassifierChain, MultiOutputClassifier

    data = yeast()
    x_all, y_all = data.X.astype(np.float64), data.Y.astype(np.int64)
    names = list(data.target_names)
    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    for k, (tr, te) in enumerate(splitter.split(x_all)):
        x_tr, x_te = _standardize(x_all[tr], x_all[te])
        y_tr, y_te = y_all[tr], y_all[te]

        def emit(
            model: str,
            scores: np.ndarray,
            seconds: float,
            k: int = k,
            n_train: int = len(tr),
            y_te: np.ndarray = y_te,
        ) -> None:
            log(
                {
                    "benchmark": "multi_output",
                    "dataset": "yeast",
                    "model": model,
                    "target": "all 14 labels",
                    "fold": k,
                    "seed": k,
                    "train_size": n_train,
                    **multilabel_scores(scores, y_te),
                    "seconds": seconds,
                }
            )

        t = time.perf_counter()
        prevalence = y_tr.mean(0)
        emit("prevalence", np.broadcast_to(prevalence, y_te.shape), time.perf_counter() - t)

        t = time.perf_counter()
        mo = MultiOutputClassifier(LogisticRegression(max_iter=2000)).fit(x_tr, y_tr)
        emit("multioutput_logreg", mo.predict(x_te).astype(float), time.perf_counter() - t)

        t = time.perf_counter()
        chain = ClassifierChain(LogisticRegression(max_iter=2000), order="random", random_state=k)
        chain.fit(x_tr, y_tr)
        emit("classifier_chain_logreg", chain.predict(x_te).astype(float), time.perf_counter() - t)

        t = time.perf_counter()
        specs = dict.fromkeys(names, "binary")
        targets = {n: y_tr[:, j].astype(np.float64) for j, n in enumerate(names)}
        net = train_mlp(x_tr, targets, specs, k, hidden=(128,), dropout=0.2, epochs=epochs)
        out = _predict(net, x_te)
        probs = 1.0 / (1.0 + np.exp(-np.stack([out[n] for n in names], 1)))
        emit("mlp_joint", probs, time.perf_counter() - t)


# ---------------------------------------------------------------------------------------------
# The Machine Learning Mastery example.


def mlm_benchmark(n_folds: int, n_repeats: int, log: Callable[[dict], None]) -> None:
    _sklearn()
    from sklearn.datasets import make_regression
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import RepeatedKFold

    x, y = make_regression(
        n_samples=1000, n_features=10, n_informative=5, n_targets=3, random_state=2
    )
    names = ["y0", "y1", "y2"]
    splitter = RepeatedKFold(n_splits=n_folds, n_repeats=n_repeats, random_state=1)
    for k, (tr, te) in enumerate(splitter.split(x)):

        def emit(
            model: str,
            pred: np.ndarray,
            seconds: float,
            k: int = k,
            n_train: int = len(tr),
            y_te: np.ndarray = y[te],
        ) -> None:
            log(
                {
                    "benchmark": "multi_output",
                    "dataset": "mlm_make_regression",
                    "model": model,
                    "target": "all 3 (mean)",
                    "fold": k,
                    "seed": k,
                    "train_size": n_train,
                    "mae": float(np.abs(pred - y_te).mean()),
                    "seconds": seconds,
                }
            )

        t = time.perf_counter()
        emit("mean", np.broadcast_to(y[tr].mean(0), y[te].shape), time.perf_counter() - t)
        t = time.perf_counter()
        emit("linear", LinearRegression().fit(x[tr], y[tr]).predict(x[te]), time.perf_counter() - t)
        t = time.perf_counter()
        net = train_mlp(
            x[tr],
            {n: y[tr, j] for j, n in enumerate(names)},
            dict.fromkeys(names, "regression"),
            k,
            hidden=(20,),
            epochs=100,
            patience=None,
            loss="mae",
        )
        out = _predict(net, x[te])
        emit("mlp_20_units_mae", np.stack([out[n] for n in names], 1), time.perf_counter() - t)


# ---------------------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]]) -> str:
    """Markdown tables: mean ± std over folds, per data set, model and target."""
    out = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["target"], r["model"]), []).append(r)
    by_data: dict[str, list[tuple[tuple[str, str, str], list[dict[str, Any]]]]] = {}
    for key, rows in groups.items():
        by_data.setdefault(key[0], []).append((key, rows))
    for dataset, items in by_data.items():
        metrics = [
            m
            for m in (
                "mae",
                "rmse",
                "r2",
                "hamming_loss",
                "micro_f1",
                "macro_f1",
                "subset_accuracy",
            )
            if m in items[0][1][0]
        ]
        out.append(f"\n#### {dataset}\n")
        out.append("| target | model | folds | " + " | ".join(metrics) + " | seconds/fold |")
        out.append("|" + "---|" * (4 + len(metrics)))
        for (_, target, model), rows in items:
            cells = []
            for m in metrics:
                vals = [r[m] for r in rows if not math.isnan(r[m])]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.fmean(vals):.3f} ± {sd:.3f}" if vals else "–")
            secs = statistics.fmean(r["seconds"] for r in rows)
            out.append(
                f"| {target} | {model} | {len(rows)} | " + " | ".join(cells) + f" | {secs:.2f} |"
            )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="3 folds, 1 repeat, short training")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs (early stopping)")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["solar_flare", "cars", "yeast", "mlm"],
        choices=["solar_flare", "cars", "yeast", "mlm"],
    )
    parser.add_argument("--mlm-folds", type=int, default=10, help="the tutorial: 10")
    parser.add_argument("--mlm-repeats", type=int, default=3, help="the tutorial: 3")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mlm_folds, mlm_repeats = args.mlm_folds, args.mlm_repeats
    if args.quick:
        args.folds, args.repeats, args.epochs = 3, 1, 60
        mlm_folds, mlm_repeats = 3, 1
    records: list[dict[str, Any]] = []
    start = time.perf_counter()

    def log(rec: dict[str, Any]) -> None:
        records.append(rec)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))

    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}", flush=True)
    for part in args.parts:
        t = time.perf_counter()
        if part == "solar_flare":
            regression_benchmark(solar_flare(), args.folds, args.repeats, args.epochs, log)
        elif part == "cars":
            regression_benchmark(cars(), args.folds, args.repeats, args.epochs, log)
        elif part == "yeast":
            yeast_benchmark(args.folds, args.repeats, args.epochs, log)
        else:
            mlm_benchmark(mlm_folds, mlm_repeats, log)
        print(f"{part}: {time.perf_counter() - t:.0f} s", flush=True)
    print(f"\nall parts in {time.perf_counter() - start:.0f} s")
    print(summarize(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
