"""``auxlab online``: progressive evaluation of one online learner on a haphazard stream.

    auxlab online --dataset german --learner auxdrop --p 0.5 --seeds 3 [--data DIR] [--json PATH]

The stream follows the 2024 review's protocol: the data set shuffled once (seed 2023), each
feature present with probability ``p`` (mask seed 2023, at least one feature per row, no
base feature), the learner's seeds ``0 .. seeds-1``. It prints the balanced accuracy (and
the error count, AUROC and, for a learner without the class-balanced loss, the
prior-corrected balanced accuracy) per seed and as mean ± standard deviation, next to the
majority-class baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from auxlab._argtypes import positive_int

__all__ = ["add_parser", "run"]

_DATASETS = (
    "german",
    "ipd",
    "svmguide3",
    "magic04",
    "a8a",
    "diabetes_f",
    "ionosphere",
    "wbc",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``online`` command to an ``argparse`` sub-parser collection; return it."""
    p = subparsers.add_parser(
        "online",
        help="progressive evaluation of an online learner on a haphazard stream",
        description=(
            "Test-then-train one online learner (ODL/HBP, Aux-Net, Aux-Drop or the logistic "
            "reference) on a data set whose features are each present with probability p, "
            "and print its balanced accuracy next to the majority-class baseline. The data "
            "files are not shipped: pass --data or set AUXLAB_HAPHAZARD_DATA."
        ),
    )
    p.add_argument("--dataset", required=True, choices=_DATASETS)
    p.add_argument(
        "--learner",
        "--model",
        dest="learner",
        default="auxdrop",
        choices=("hbp", "auxnet", "auxdrop", "logistic"),
        help="the learner (default: %(default)s)",
    )
    p.add_argument("--p", type=_probability, default=0.5, help="availability (default 0.5)")
    p.add_argument("--seeds", type=positive_int, default=3, help="model seeds (default 3)")
    p.add_argument(
        "--faithful",
        choices=("ours", "paper", "code"),
        default="ours",
        help="mode of the deep learners (default: ours)",
    )
    p.add_argument("--data", type=Path, help="folder of the data sets")
    p.add_argument("--json", type=Path, help="write the per-seed results here")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _probability(text: str) -> float:
    v = float(text)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"p must be in (0, 1], got {text}")
    return v


class _Bar:
    """A one-line text progress bar on ``stream`` (no dependency)."""

    def __init__(self, total: int, label: str, stream: TextIO, enabled: bool) -> None:
        self.total, self.label, self.stream, self.enabled = total, label, stream, enabled
        self.start = time.perf_counter()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        frac = done / max(self.total, 1)
        fill = int(30 * frac)
        secs = time.perf_counter() - self.start
        self.stream.write(
            f"\r{self.label} [{'#' * fill}{'.' * (30 - fill)}] {done}/{self.total} {secs:5.1f}s"
        )
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _make(learner: str, faithful: str, d: int, seed: int) -> Any:
    from auxlab.online import AuxDrop, AuxNet, HedgeBackprop, OnlineLogistic

    mode = None if faithful == "ours" else faithful
    if learner == "hbp":
        return HedgeBackprop(faithful=mode, seed=seed)
    if learner == "auxnet":
        return AuxNet(base_features=2, faithful=mode, seed=seed)
    if learner == "auxdrop":
        return AuxDrop(aux_units=max(100, 5 * d), faithful=mode, seed=seed)
    return OnlineLogistic(seed=seed)


def run(args: argparse.Namespace) -> int:
    """Run the ``online`` command; returns the exit code (1 if the data cannot be read)."""
    import torch

    from auxlab.datasets._haphazard import HaphazardDataError, load_haphazard
    from auxlab.online import haphazard_mask, progressive_evaluate, summarise

    torch.set_num_threads(1)
    try:
        data = load_haphazard(args.dataset, root=args.data).shuffled(2023)
    except (HaphazardDataError, FileNotFoundError, OSError) as exc:
        print(f"auxlab online: {exc}", file=sys.stderr)
        return 1
    mask = haphazard_mask("variable_p", data.n, data.d, p=args.p, seed=2023, X=data.X)
    label = "logistic" if args.learner == "logistic" else f"{args.learner}({args.faithful})"
    print(f"{args.dataset}: {data.n} rows x {data.d} features, p = {args.p}, {label}")
    records: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        model = _make(args.learner, args.faithful, data.d, seed)
        bar = _Bar(data.n, f"seed {seed}", sys.stderr, not args.no_progress)
        res = progressive_evaluate(model, data.X, data.y, mask, progress=bar)
        m, pc = res.metrics, res.extra["prior_corrected"]
        records.append(
            {
                "dataset": args.dataset,
                "learner": label,
                "p": args.p,
                "seed": seed,
                "metrics": m,
                "prior_corrected": pc,
                "majority": res.majority,
                "seconds": res.seconds,
                "n": res.n,
            }
        )
        # A learner trained with the class-balanced loss (our mode's default) already makes
        # the balanced-accuracy decision; correcting for the prior again would count it twice.
        extra = (
            "class-balanced loss"
            if getattr(model, "_balanced", False)
            else f"prior-corrected bAcc {pc['balanced_accuracy']:.2f}"
        )
        print(
            f"seed {seed}: balanced accuracy {m['balanced_accuracy']:.2f}  errors "
            f"{m['errors']:.0f}  AUROC {m['auroc']:.2f}  {extra}  ({res.seconds:.1f} s)"
        )
    bacc = summarise([r["metrics"]["balanced_accuracy"] for r in records])
    errs = summarise([r["metrics"]["errors"] for r in records])
    maj = records[0]["majority"]
    print(
        f"{label}: balanced accuracy {bacc[0]:.2f} ± {bacc[1]:.2f}, errors {errs[0]:.1f} "
        f"± {errs[1]:.1f} over {args.seeds} seed(s); majority class: balanced accuracy "
        f"{maj['balanced_accuracy']:.2f}, errors {maj['errors']:.0f}"
    )
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0
