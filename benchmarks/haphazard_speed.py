"""Wall time of the online learners on the whole a8a stream at p = .75, and a side-by-side.

    python benchmarks/haphazard_speed.py --json speed.json [--quick] [--data DIR]
        [--authors DIR] [--prefix 2000]

Part 1: every learner runs the whole a8a stream (32,561 x 123) at variable p = .75 (mask
seed 2023, no base feature; AuxNet forward-fills 2 features as the review does) through the
array path (``learn_predict_stream``), one thread. The review's CPU times (Aux-Net
28,776.93 s, Aux-Drop 577.31 s; review Tables VI/XI) are printed beside. ``--quick`` runs
a 4,000-row prefix and extrapolates to the whole stream (marked as such).

Part 2 (optional): seconds per instance of the authors' ``AuxDrop_ODL`` (Code/AuxDrop.py of
the public repository Rohit102497/Aux-Drop, run from a benchmark-only checkout given by
``--authors``; nothing of it is copied into auxlab) next to ours (``faithful="code"``, the
same configuration, and our default) on the first ``--prefix`` instances of a8a: 2 base
features, AuxLayer at position 3 with 400 nodes, 6 layers of 50, d = .3, lr .01, p = .75
(the Aux-Drop paper's a8a setting). Both run in this process, one after the other.

The data folder: --data, else $AUXLAB_HAPHAZARD_DATA, else ../shared/data/haphazard beside
the checkout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxlab.datasets._haphazard import load_haphazard
from auxlab.online import (
    AuxDrop,
    AuxNet,
    HedgeBackprop,
    OnlineLogistic,
    haphazard_mask,
    progressive_evaluate,
)

PUBLISHED = {"AuxNet": 28776.93, "AuxDrop": 577.31}  # review, a8a p = .75, CPU seconds
GOALS = {"AuxNet": 60.0, "AuxDrop": 30.0, "HedgeBackprop": 30.0}  # issue 5, this machine


def default_data() -> Path:
    env = os.environ.get("AUXLAB_HAPHAZARD_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"


def learners(d: int) -> dict[str, Any]:
    aux_units = 5 * d  # the review's AuxLayer size (about 5 x features)
    return {
        "HedgeBackprop": HedgeBackprop(6, 50),
        "AuxDrop": AuxDrop(6, 50, aux_position=1, aux_units=aux_units),
        "AuxNet": AuxNet(5, 5, 50, base_features=2),
        "OnlineLogistic": OnlineLogistic(),
        "AuxDrop(code)": AuxDrop(6, 50, aux_position=1, aux_units=aux_units, faithful="code"),
        "AuxNet(code)": AuxNet(5, 5, 50, base_features=2, faithful="code"),
    }


def whole_stream(root: Path, quick: bool, only: list[str] | None) -> list[dict[str, Any]]:
    data = load_haphazard("a8a", root=root).shuffled(2023)
    mask = haphazard_mask("variable_p", data.n, data.d, p=0.75, seed=2023, X=data.X)
    rows = 4000 if quick else data.n
    out = []
    for label, model in learners(data.d).items():
        if only and not any(o in label for o in only):
            continue
        res = progressive_evaluate(model, data.X[:rows], data.y[:rows], mask[:rows])
        whole = res.seconds * data.n / rows
        family = label.split("(")[0]
        rec = {
            "part": "whole_stream",
            "learner": label,
            "implementation": "auxlab",
            "dataset": "a8a",
            "p": 0.75,
            "seconds": whole,
            "rows_run": rows,
            "seconds_run": res.seconds,
            "seconds_whole_stream": whole,
            "extrapolated": rows < data.n,
            "balanced_accuracy": res.metrics["balanced_accuracy"],
            "published_seconds": PUBLISHED.get(family) if label == family else None,
            "goal_seconds": GOALS.get(label),
        }
        out.append(rec)
        line = f"{label:16s} {whole:8.1f} s whole a8a p=.75"
        line += f" (extrapolated from {rows} rows)" if rows < data.n else ""
        line += f"   bAcc {res.metrics['balanced_accuracy']:.2f}"
        if rec["goal_seconds"]:
            line += f"   goal <= {rec['goal_seconds']:.0f} s"
        if rec["published_seconds"]:
            line += f"   published {rec['published_seconds']:,.2f} s (review, CPU)"
        print(line, flush=True)
    # Ratios to a baseline of the same run: the goal, and OnlineLogistic's time.
    base = {r["learner"]: r["seconds"] for r in out}.get("OnlineLogistic")
    for r in out:
        r["ratio_to_goal"] = r["seconds"] / r["goal_seconds"] if r["goal_seconds"] else None
        r["ratio_to_logistic"] = r["seconds"] / base if base else None
    return out


def _load_authors(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("authors_auxdrop", path / "AuxDrop.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path / "AuxDrop.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def side_by_side(root: Path, authors: Path, prefix: int) -> list[dict[str, Any]]:
    data = load_haphazard("a8a", root=root)
    X, y = data.X[:prefix], data.y[:prefix]
    n_base = 2
    mask = haphazard_mask("variable_p", prefix, data.d, p=0.75, seed=0, n_base=n_base)
    n_aux = data.d - n_base
    conf = {"n_layers": 6, "n_units": 50, "aux_position": 3, "aux_units": 400, "dropout": 0.3}
    out = []
    mod = _load_authors(authors)
    torch.manual_seed(0)
    theirs = mod.AuxDrop_ODL(
        features_size=n_base,
        max_num_hidden_layers=6,
        qtd_neuron_per_hidden_layer=50,
        n_classes=2,
        aux_layer=3,
        n_neuron_aux_layer=400,
        batch_size=1,
        b=0.99,
        n=0.01,
        s=0.2,
        dropout_p=0.3,
        n_aux_feat=n_aux,
    )
    Xb = X[:, :n_base].astype(np.float64)
    Xa = np.where(mask[:, n_base:], X[:, n_base:], 0.0)
    Ma = mask[:, n_base:].astype(np.float64)
    start = time.perf_counter()
    for t in range(prefix):
        theirs.partial_fit(
            Xb[t].reshape(1, n_base), Xa[t].reshape(1, n_aux), Ma[t].reshape(1, n_aux),
            y[t].reshape(1),
        )  # fmt: skip
    secs = time.perf_counter() - start
    preds = torch.stack([p.detach().reshape(-1) for p in theirs.prediction]).numpy()
    err = float((preds.argmax(1) != y).sum())
    out.append(
        {"learner": "AuxDrop_ODL", "implementation": "authors", "seconds": secs, "errors": err}
    )
    names = list(data.feature_names)
    for label, faithful in (("AuxDrop(code)", "code"), ("AuxDrop(ours)", None)):
        model = AuxDrop(
            **conf,
            lr=0.01 if faithful == "code" else None,
            base_features=tuple(names[:n_base]),
            faithful=faithful,
        )
        res = progressive_evaluate(model, X, y, mask, names)
        out.append(
            {
                "learner": label,
                "implementation": "auxlab",
                "seconds": res.seconds,
                "errors": res.metrics["errors"],
            }
        )
    authors_seconds = out[0]["seconds"]
    for rec in out:
        rec.update(
            part="side_by_side",
            rows=prefix,
            seconds_per_instance=rec["seconds"] / prefix,
            ratio=rec["seconds"] / authors_seconds,  # time relative to the authors' code
        )
        print(
            f"{rec['implementation'] + ' ' + rec['learner']:22s} "
            f"{1e3 * rec['seconds_per_instance']:7.3f} ms/instance"
            f"   ({rec['seconds']:.1f} s for {prefix} a8a rows; errors {rec['errors']:.0f};"
            f" {rec['ratio']:.3f}x the authors' time)",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="a 4,000-row prefix, extrapolated")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--learners", nargs="*", help="substrings of learner labels to run")
    ap.add_argument("--authors", type=Path, help="folder holding the authors' AuxDrop.py")
    ap.add_argument("--prefix", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = args.data or default_data()
    records = whole_stream(root, args.quick, args.learners)
    if args.authors:
        records += side_by_side(root, args.authors, args.prefix)
    else:
        print("side-by-side skipped: pass --authors DIR (a checkout of Rohit102497/Aux-Drop/Code)")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
