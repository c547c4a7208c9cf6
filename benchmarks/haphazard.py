"""Reproduce the haphazard-input protocols and print our numbers next to the published ones.

    python benchmarks/haphazard.py --json results.json [--quick] [--data DIR]

Protocols:
* review (Agarwal et al. 2024, "Online Learning Under Haphazard Input Conditions", Tables
  VI-VII): variable p in {.25, .5, .75}, no base feature, balanced accuracy, 5 seeds; the
  data shuffled once (seed 2023), mask seed 2023, model seeds 0..4;
* auxdrop (Agarwal et al., TMLR 2023, Table 4): number of errors with 2 base features at
  p = .73/.72/.68/.75 (german/svmguide3/magic04/a8a); Table 3: IPD average loss, 12 base.

The data folder: --data, else $AUXLAB_HAPHAZARD_DATA, else ../shared/data/haphazard beside
the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

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
    summarise,
)

REVIEW = "review 2024, Tables VI-VII (bAcc, mean±std of 5 runs)"
# (Aux-Net, Aux-Drop, best published, its model) balanced accuracy, review Tables VI/VII.
PUBLISHED_REVIEW = {
    ("german", 0.25): (50.32, 0.45, 50.14, 0.67),
    ("german", 0.5): (50.14, 0.36, 51.48, 1.07),
    ("german", 0.75): (49.98, 0.05, 51.24, 1.08),
    ("ipd", 0.25): (60.24, 1.00, 60.63, 0.77),
    ("ipd", 0.5): (72.52, 2.33, 70.32, 1.29),
    ("ipd", 0.75): (79.94, 1.70, 76.42, 1.73),
    ("svmguide3", 0.25): (49.99, 0.02, 50.21, 0.40),
    ("svmguide3", 0.5): (49.97, 0.03, 50.61, 0.45),
    ("svmguide3", 0.75): (49.97, 0.03, 50.68, 0.68),
    ("magic04", 0.25): (50.09, 0.07, 56.04, 0.53),
    ("magic04", 0.5): (50.09, 0.03, 59.29, 0.48),
    ("magic04", 0.75): (50.05, 0.07, 63.18, 0.61),
    ("a8a", 0.25): (50.00, 0.00, 50.00, 0.01),
    ("a8a", 0.5): (50.00, 0.00, 55.33, 1.99),
    ("a8a", 0.75): (50.00, 0.00, 62.87, 0.93),
    ("wbc", 0.25): (49.90, float("nan"), 77.07, float("nan")),
    ("wbc", 0.5): (58.49, float("nan"), 82.25, float("nan")),
    ("wbc", 0.75): (78.46, float("nan"), 83.79, float("nan")),
}
BEST_AT_HALF = {
    "german": (57.09, "OVFM, review"),
    "ipd": (88.10, "OVFM, review"),
    "svmguide3": (58.13, "OVFM, review"),
    "magic04": (67.09, "HI2, arXiv 2504.02912 Table II"),
    "a8a": (68.57, "OVFM, review"),
}
# Aux-Drop Table 4 (errors, Aux-Drop(ODL); 20 runs) and Table 3 (IPD average loss).
PUBLISHED_AUXDROP = {
    "german": (0.73, 300.4, "Aux-Drop TMLR 2023, Table 4"),
    "svmguide3": (0.72, 297.2, "Aux-Drop TMLR 2023, Table 4"),
    "magic04": (0.68, 5536.7, "Aux-Drop TMLR 2023, Table 4"),
    "a8a": (0.75, 6710.7, "Aux-Drop TMLR 2023, Table 4"),
}
# Aux-Drop Table 3: IPD average loss (CrossEntropyLoss on the mixture's probabilities, as
# its code computes it), first 12 features base, file order; p -> (Aux-Net, Aux-Drop(ODL)).
PUBLISHED_IPD_LOSS = {
    0.5: (0.6975, 0.6031, 0.0081),
    0.8: (0.6130, 0.5321, 0.0071),
}
# Tables 3 and 4 score errors and loss, not balanced accuracy: our mode runs both with its
# default class-balanced loss (which trades errors for balanced accuracy) and without it.
TABLE34_MODELS = (
    ("AuxDrop(code)", "code", None),
    ("AuxDrop(ours)", None, None),
    ("AuxDrop(ours, unweighted)", None, "none"),
)
AUXDROP_LR = {"german": 0.1, "svmguide3": 0.1, "magic04": 0.01, "a8a": 0.01, "ipd": 0.3}
# Aux-Net's code mode: review Table V gives svmguide3 0.1 and magic04 0.5. For ipd and wbc
# the rate is the best of the review's grid {.001, .005, .01, .05, .1, .3, .5} at p = .5 by our
# own search (3 seeds, the review's protocol; 2026-11-28: ipd .001 74.7, .005 75.1, .01 63.7,
# >= .05 chance; wbc .005 57.2, every other rate chance). Others: 0.01 assumed.
AUXNET_LR = {"svmguide3": 0.1, "magic04": 0.5, "ipd": 0.005, "wbc": 0.005}


def review_models(name: str, d: int) -> dict[str, object]:
    aux_units = max(100, 5 * d)  # the review's config: about 5 x features
    return {
        "OnlineLogistic": OnlineLogistic(lr=0.1),
        # The reference with the class-balanced loss that our deep learners' default mode
        # uses: the like-for-like comparison for the plain-argmax balanced accuracy.
        "OnlineLogistic(balanced)": OnlineLogistic(lr=0.1, class_weight="balanced"),
        "AuxDrop(code)": AuxDrop(
            6,
            50,
            aux_position=1,
            aux_units=aux_units,
            lr=AUXDROP_LR.get(name, 0.05),
            faithful="code",
        ),
        "AuxDrop(ours)": AuxDrop(6, 50, aux_position=1, aux_units=aux_units),
        "AuxNet(code)": AuxNet(
            5, 5, 50, lr=AUXNET_LR.get(name, 0.01), base_features=2, faithful="code"
        ),
        "AuxNet(ours)": AuxNet(5, 5, 50, base_features=2),
        "HedgeBackprop(ours)": HedgeBackprop(6, 50),
    }


def default_data() -> Path:
    env = os.environ.get("AUXLAB_HAPHAZARD_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"


def run_review(root: Path, datasets, ps, seeds, models_filter, records):
    for name in datasets:
        data = load_haphazard(name, root=root, german_rows=959 if name == "german" else 1000)
        data = data.shuffled(2023)
        for p in ps:
            mask = haphazard_mask("variable_p", data.n, data.d, p=p, seed=2023, X=data.X)
            pub = PUBLISHED_REVIEW.get((name, p))
            for label, model in review_models(name, data.d).items():
                if models_filter and not any(f in label for f in models_filter):
                    continue
                scores, corrected, secs = [], [], []
                for seed in seeds:
                    res = progressive_evaluate(model.clone(seed=seed), data.X, data.y, mask)
                    scores.append(res.metrics["balanced_accuracy"])
                    pc = res.extra["prior_corrected"]
                    corrected.append(pc["balanced_accuracy"])
                    secs.append(res.seconds)
                    published = None
                    if pub is not None and label.startswith("AuxNet"):
                        published = pub[0]
                    elif pub is not None and label.startswith("AuxDrop"):
                        published = pub[2]
                    rec = res.record(
                        benchmark="review", learner=label, dataset=name, p=p, seed=seed
                    )
                    rec["published"] = published
                    rec["published_source"] = REVIEW if published is not None else None
                    records.append(rec)
                mean, std = summarise(scores)
                cm, cs = summarise(corrected)
                line = (
                    f"{name:10s} p={p:.2f} {label:22s} bAcc {mean:6.2f}±{std:4.2f}"
                    f"  (prior-corrected {cm:6.2f}±{cs:4.2f})"
                )
                if pub is not None and label.startswith(("AuxNet", "AuxDrop")):
                    m_, s_ = pub[0:2] if label.startswith("AuxNet") else pub[2:4]
                    line += f"   published {m_:.2f}±{s_:.2f} ({REVIEW})"
                if p == 0.5 and name in BEST_AT_HALF:
                    line += f"   best published {BEST_AT_HALF[name][0]} ({BEST_AT_HALF[name][1]})"
                print(line + f"   {np.mean(secs):.1f}s/run", flush=True)


def run_ipd_loss(root: Path, seeds, records):
    """Aux-Drop Table 3: IPD, 12 base features, 11 layers, AuxLayer 3 of 100 nodes, lr .3."""
    data = load_haphazard("ipd", root=root)  # file order (TRAIN then TEST), as the paper
    base = tuple(data.feature_names[:12])
    for p, (auxnet_pub, pub, pub_std) in PUBLISHED_IPD_LOSS.items():
        for label, faithful, cw in TABLE34_MODELS:
            losses, logs = [], []
            for seed in seeds:
                mask = haphazard_mask("variable_p", data.n, data.d, p=p, seed=seed, n_base=12)
                model = AuxDrop(
                    11,
                    50,
                    aux_position=3,
                    aux_units=100,
                    lr=0.3 if faithful == "code" else None,
                    base_features=base,
                    faithful=faithful,
                    class_weight=cw,
                    seed=seed,
                )
                res = progressive_evaluate(model, data.X, data.y, mask, data.feature_names)
                losses.append(res.metrics["code_loss"])
                logs.append(res.metrics["log_loss"])
                rec = res.record(
                    benchmark="auxdrop_table3", learner=label, dataset="ipd", p=p, seed=seed
                )
                rec["published"] = pub
                rec["published_source"] = "Aux-Drop TMLR 2023, Table 3 (20 runs)"
                records.append(rec)
            mean, std = summarise(losses)
            lm, _ = summarise(logs)
            print(
                f"ipd        p={p:.2f} {label:16s} average loss {mean:.4f}±{std:.4f} "
                f"(log loss {lm:.4f})   published Aux-Drop {pub}±{pub_std}, "
                f"Aux-Net {auxnet_pub} (Aux-Drop TMLR 2023, Table 3)",
                flush=True,
            )


def run_auxdrop(root: Path, datasets, seeds, records):
    if "ipd" in datasets:
        run_ipd_loss(root, seeds, records)
    for name in datasets:
        if name not in PUBLISHED_AUXDROP:
            continue
        p, published, source = PUBLISHED_AUXDROP[name]
        base = load_haphazard(name, root=root)
        aux_units = 400 if name == "a8a" else 100
        for label, faithful, cw in TABLE34_MODELS:
            errs = []
            for seed in seeds:
                data = base.shuffled(seed)
                mask = haphazard_mask("variable_p", data.n, data.d, p=p, seed=seed, n_base=2)
                lr = AUXDROP_LR[name] if faithful == "code" else None
                model = AuxDrop(
                    6,
                    50,
                    aux_position=3,
                    aux_units=aux_units,
                    lr=lr,
                    base_features=tuple(data.feature_names[:2]),
                    faithful=faithful,
                    class_weight=cw,
                    seed=seed,
                )
                res = progressive_evaluate(model, data.X, data.y, mask, data.feature_names)
                errs.append(res.metrics["errors"])
                rec = res.record(
                    benchmark="auxdrop_table4", learner=label, dataset=name, p=p, seed=seed
                )
                rec["published"] = published
                rec["published_source"] = source
                records.append(rec)
            mean, std = summarise(errs)
            print(
                f"{name:10s} p={p:.2f} {label:16s} errors {mean:8.1f}±{std:6.1f}   "
                f"published {published} ({source}); majority {res.majority['errors']:.0f}",
                flush=True,
            )


def summarise_files(paths: list[Path]) -> str:
    """Markdown tables (mean±std over seeds) from the JSON records of one or more runs."""
    records = [r for path in paths for r in json.loads(path.read_text())]
    out = []
    review = [r for r in records if r["benchmark"] == "review"]
    if review:
        order = [
            "OnlineLogistic",
            "OnlineLogistic(balanced)",
            "HedgeBackprop(ours)",
            "AuxDrop(ours)",
            "AuxNet(ours)",
            "AuxDrop(code)",
            "AuxNet(code)",
        ]
        found = {r["learner"] for r in review}
        labels = [x for x in order if x in found] + sorted(found - set(order))
        cells: dict[tuple, list[float]] = {}
        for r in review:
            key = (r["dataset"], r["p"], r["learner"])
            cells.setdefault(key, []).append(r["balanced_accuracy"])
        out.append("Review protocol: balanced accuracy, mean±std over seeds (seeds in brackets)")
        out.append("")
        out.append("| data set | p | " + " | ".join(labels) + " | Aux-Net / Aux-Drop published |")
        out.append("|---" * (len(labels) + 3) + "|")
        for name, p in sorted({(r["dataset"], r["p"]) for r in review}):
            row = []
            for label in labels:
                vals = cells.get((name, p, label))
                if not vals:
                    row.append("")
                    continue
                mean, std = summarise(vals)
                row.append(f"{mean:.2f}±{std:.2f} ({len(vals)})")
            pub = PUBLISHED_REVIEW.get((name, p))
            pub_s = f"{pub[0]:.2f} / {pub[2]:.2f}" if pub else ""
            if p == 0.5 and name in BEST_AT_HALF:
                pub_s += f"; best {BEST_AT_HALF[name][0]} ({BEST_AT_HALF[name][1]})"
            out.append(f"| {name} | {p:.2f} | " + " | ".join(row) + f" | {pub_s} |")
    table4 = [r for r in records if r["benchmark"] == "auxdrop_table4"]
    if table4:
        out += ["", "Aux-Drop Table 4 protocol: errors, mean±std over seeds", ""]
        out.append("| data set | p | learner | errors | published | majority |")
        out.append("|---|---|---|---|---|---|")
        groups: dict[tuple, list[dict]] = {}
        for r in table4:
            groups.setdefault((r["dataset"], r["p"], r["learner"]), []).append(r)
        for (name, p, label), rs in sorted(groups.items()):
            mean, std = summarise([r["errors"] for r in rs])
            maj = np.mean([r["majority_errors"] for r in rs])
            out.append(
                f"| {name} | {p:.2f} | {label} | {mean:.1f}±{std:.1f} ({len(rs)}) | "
                f"{rs[0]['published']} | {maj:.0f} |"
            )
    table3 = [r for r in records if r["benchmark"] == "auxdrop_table3"]
    if table3:
        out += ["", "Aux-Drop Table 3 protocol: IPD average loss, mean±std over seeds", ""]
        out.append("| p | learner | average loss | log loss | published Aux-Drop(ODL) |")
        out.append("|---|---|---|---|---|")
        groups3: dict[tuple, list[dict]] = {}
        for r in table3:
            groups3.setdefault((r["p"], r["learner"]), []).append(r)
        for (p, label), rs in sorted(groups3.items()):
            mean, std = summarise([r["code_loss"] for r in rs])
            lm, ls = summarise([r["log_loss"] for r in rs])
            out.append(
                f"| {p:.2f} | {label} | {mean:.4f}±{std:.4f} ({len(rs)}) | {lm:.4f}±{ls:.4f} | "
                f"{rs[0]['published']} |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="p=.5, 1 seed, the small data sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--models", nargs="*", help="substrings of model labels to run")
    ap.add_argument("--protocol", choices=["review", "auxdrop", "both"], default="both")
    ap.add_argument("--seeds", type=int, help="number of seeds (default 5; --quick 1)")
    ap.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+n-1 (to add seeds to a run)"
    )
    ap.add_argument("--ps", type=float, nargs="*", help="availability p (default .25 .5 .75)")
    ap.add_argument(
        "--summarise", type=Path, nargs="+", metavar="JSON", help="print tables of saved runs"
    )
    args = ap.parse_args()
    if args.summarise:
        print(summarise_files(args.summarise))
        return
    torch.set_num_threads(1)
    root = args.data or default_data()
    if args.quick:
        datasets = args.datasets or ["german", "ipd", "svmguide3"]
        ps, seeds = [0.5], [0]
    else:
        datasets = args.datasets or [
            "german",
            "ipd",
            "svmguide3",
            "magic04",
            "a8a",
            "diabetes_f",
            "ionosphere",
            "wbc",
        ]
        ps, seeds = [0.25, 0.5, 0.75], [0, 1, 2, 3, 4]
    if args.seeds:
        seeds = list(range(args.seeds))
    seeds = [args.first_seed + k for k in seeds]
    if args.ps:
        ps = args.ps
    records: list[dict] = []
    start = time.perf_counter()
    if args.protocol in ("review", "both"):
        run_review(root, datasets, ps, seeds, args.models, records)
    if args.protocol in ("auxdrop", "both"):
        run_auxdrop(root, datasets, seeds, records)
    print(f"total {time.perf_counter() - start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
