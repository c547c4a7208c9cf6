"""``auxlab online``: progressive evaluation of online learners on a haphazard stream.

    auxlab online [--dataset phishing] [--learner ensemble hbp logistic_balanced logistic]
                  [--p 0.5] [--seeds 3] [--rows N] [--data DIR] [--json PATH] [--threads N]

With no argument it runs the default learner (``HedgeEnsemble``, the hedge over
``HedgeBackprop`` and the class-balanced ``OnlineLogistic``) beside its two members and the
reference ``OnlineLogistic`` on river's Phishing stream (shipped with river, the ``online``
extra), 3 seeds, in a few seconds; ``--learner auxnet auxdrop`` adds the other deep
learners. The benchmark sets of the haphazard-input papers (german, ipd, ...) are not
shipped: ``--data DIR`` names their folder. The UCI sets of the R package mlbench (sonar,
house_votes84, ...; see ``auxlab.datasets.binary_pool``) come with Debian's
``r-cran-mlbench``.

The stream follows the 2024 review's protocol, for river's streams as for the benchmark sets:
the data shuffled once (seed 2023), each feature present with probability ``p`` (mask seed
2023, at least one feature per row, no base feature), the learners' seeds ``0 .. seeds-1``.
It prints the balanced accuracy and AUROC of each learner per seed and as mean ± standard
deviation, next to the majority-class baseline; ``--json`` writes one flat record per
learner and seed (the shape of ``ProgressiveResult.record``, documented in docs/online.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from auxlab._argtypes import positive_int
from auxlab.datasets._haphazard import ENV_VAR, HAPHAZARD_DATASETS
from auxlab.datasets._mlbench import MLBENCH_DATASETS
from auxlab.datasets._river import RIVER_STREAMS

__all__ = ["add_parser", "run"]

#: The learners by their command-line name, in the order they run.
_LEARNERS = ("ensemble", "hbp", "auxnet", "auxdrop", "logistic_balanced", "logistic")
#: The default: the default learner, its two members, and the reference.
_DEFAULT_LEARNERS = ("ensemble", "hbp", "logistic_balanced", "logistic")
#: The protocol's seed for the shuffle and the mask (the review's).
PROTOCOL_SEED = 2023


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``online`` command to an ``argparse`` sub-parser collection; return it."""
    p = subparsers.add_parser(
        "online",
        help="progressive evaluation of online learners on a haphazard stream",
        description=(
            "Test-then-train online learners (the default HedgeEnsemble, ODL/HBP, Aux-Net, "
            "Aux-Drop and the logistic reference) on a stream whose features are each "
            "present with probability p, and "
            "print their balanced accuracy and AUROC next to the majority-class baseline. "
            f"River's streams ({', '.join(RIVER_STREAMS)}) come with the 'online' extra; the "
            f"benchmark sets ({', '.join(HAPHAZARD_DATASETS)}) need --data DIR or "
            f"{ENV_VAR}; mlbench's ({', '.join(MLBENCH_DATASETS)}) need the Debian package "
            "r-cran-mlbench."
        ),
    )
    p.add_argument(
        "--dataset",
        default="phishing",
        choices=(*RIVER_STREAMS, *HAPHAZARD_DATASETS, *MLBENCH_DATASETS),
        help="the stream (default: %(default)s, shipped with river)",
    )
    p.add_argument(
        "--learner",
        "--model",
        dest="learners",
        nargs="+",
        choices=_LEARNERS,
        default=list(_DEFAULT_LEARNERS),
        metavar="LEARNER",
        help=(
            f"one or more of {', '.join(_LEARNERS)} (default: {' '.join(_DEFAULT_LEARNERS)}: "
            "the default learner, a hedge over hbp and logistic_balanced, beside them and "
            "the reference logistic)"
        ),
    )
    p.add_argument("--p", type=_probability, default=0.5, help="availability (default 0.5)")
    p.add_argument("--seeds", type=positive_int, default=3, help="model seeds (default 3)")
    p.add_argument(
        "--rows",
        type=positive_int,
        help="keep the first N rows of the shuffled stream (default: all)",
    )
    p.add_argument(
        "--faithful",
        choices=("ours", "paper", "code"),
        default="ours",
        help="mode of the deep learners (default: ours)",
    )
    p.add_argument(
        "--data", type=Path, help=f"folder of the benchmark data sets (default: ${ENV_VAR})"
    )
    p.add_argument("--json", type=Path, help="write one flat record per learner and seed here")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch intra-op threads (default: $OMP_NUM_THREADS, else 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"p must be a number in (0, 1], got {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"p must be in (0, 1], got {text}")
    return v


def _make(learner: str, faithful: str, d: int, seed: int) -> tuple[str, Any]:
    """The learner and its label (the class name, with the mode of the deep learners)."""
    from auxlab.online import AuxDrop, AuxNet, HedgeBackprop, HedgeEnsemble, OnlineLogistic

    mode = None if faithful == "ours" else faithful
    model: Any
    if learner == "ensemble":
        members = [
            HedgeBackprop(faithful=mode, seed=seed),
            OnlineLogistic(seed=seed, class_weight="balanced"),
        ]
        return f"HedgeEnsemble({faithful})", HedgeEnsemble(members=members, seed=seed)
    if learner == "logistic_balanced":
        return "OnlineLogistic(balanced)", OnlineLogistic(seed=seed, class_weight="balanced")
    if learner == "hbp":
        model = HedgeBackprop(faithful=mode, seed=seed)
    elif learner == "auxnet":
        model = AuxNet(base_features=2, faithful=mode, seed=seed)
    elif learner == "auxdrop":
        model = AuxDrop(aux_units=max(100, 5 * d), faithful=mode, seed=seed)
    else:
        return "OnlineLogistic", OnlineLogistic(seed=seed)
    return f"{type(model).__name__}({faithful})", model


def _no_folder_message(name: str) -> str:
    from auxlab.datasets._haphazard import data_folder_help

    return (
        f"the data set {name!r} is not shipped with auxlab: pass --data DIR (or set "
        f"{ENV_VAR}=DIR).\n{data_folder_help()}\nWithout a folder, run on a stream that "
        f"river ships: --dataset {' | '.join(RIVER_STREAMS)} (the default is phishing)."
    )


def _load(args: argparse.Namespace) -> Any:
    """The stream, shuffled by the protocol; raises with a message for the user."""
    from auxlab.datasets._haphazard import load_haphazard
    from auxlab.datasets._mlbench import load_mlbench
    from auxlab.datasets._river import river_stream

    if args.dataset in RIVER_STREAMS:
        data = river_stream(args.dataset)
    elif args.dataset in MLBENCH_DATASETS:
        data = load_mlbench(args.dataset)
    else:
        if args.data is None and not os.environ.get(ENV_VAR):
            raise _UserError(_no_folder_message(args.dataset))
        data = load_haphazard(args.dataset, root=args.data)
    return data.shuffled(PROTOCOL_SEED)


class _UserError(Exception):
    """An error whose message is all the user needs."""


def run(args: argparse.Namespace) -> int:
    """Run the ``online`` command; returns the exit code (1 if the data cannot be read)."""
    from tqdm import tqdm

    from auxlab._optional import MissingDependencyError
    from auxlab._threads import announce_threads
    from auxlab.datasets._haphazard import (
        HaphazardDataError,
        MissingHaphazardData,
        data_folder_help,
    )
    from auxlab.datasets._pool import missing_cells
    from auxlab.online import haphazard_mask, progressive_evaluate

    announce_threads(args.threads)
    if args.json:  # checked before learning: a bad path is found now, not after the runs
        from auxlab._outdir import OutputError, check_out_file

        try:
            check_out_file(args.json, "--json")
        except OutputError as exc:
            print(f"auxlab online: {exc}", file=sys.stderr)
            return 2
    try:
        data = _load(args)
    except MissingHaphazardData as exc:
        # The library's message names its argument root=; the command's is --data.
        where = f"--data {args.data}" if args.data else f"{ENV_VAR}={os.environ.get(ENV_VAR)}"
        print(
            f"auxlab online: {str(exc).splitlines()[0]} (the folder given by {where}).\n"
            f"{data_folder_help()}",
            file=sys.stderr,
        )
        return 1
    except (_UserError, MissingDependencyError, HaphazardDataError, OSError) as exc:
        print(f"auxlab online: {exc}", file=sys.stderr)
        return 1
    X, y = data.X[: args.rows], data.y[: args.rows]
    n, d = X.shape
    # Text features (mlbench's factors) are categories: the mask sees only what is missing.
    missing = np.where(missing_cells(X), np.nan, 0.0)
    mask = haphazard_mask("variable_p", n, d, p=args.p, seed=PROTOCOL_SEED, X=missing)
    print(
        f"{data.name}: {n} rows x {d} features, each present with probability p = {args.p} "
        f"(shuffle and mask seed {PROTOCOL_SEED}); learner {_seeds(args.seeds)}"
    )
    records: list[dict[str, Any]] = []
    majority: dict[str, float] = {}
    runs = [(name, seed) for name in args.learners for seed in range(args.seeds)]
    with tqdm(total=n * len(runs), unit="row", file=sys.stderr, disable=args.no_progress) as bar:
        for name, seed in runs:
            label, model = _make(name, args.faithful, d, seed)
            bar.set_description(f"{label} seed {seed}")
            start = bar.n

            def progress(done: int, start: int = start) -> None:
                bar.update(start + done - bar.n)

            res = progressive_evaluate(model, X, y, mask, progress=progress)
            majority = res.majority
            rec = res.record(dataset=data.name, learner=label, p=args.p, seed=seed)
            rec["d"] = d
            records.append(rec)
            # A learner trained with the class-balanced loss (our mode's default) already
            # makes the balanced-accuracy decision; correcting for the prior again would
            # count it twice.
            extra = (
                ""
                if _balanced(model)
                else f"  prior-corrected bAcc {rec['balanced_accuracy_prior_corrected']:.2f}"
            )
            tqdm.write(
                f"{label} seed {seed}: balanced accuracy {rec['balanced_accuracy']:.2f}  "
                f"AUROC {rec['auroc']:.2f}  errors {rec['errors']:.0f}{extra}  "
                f"({rec['seconds']:.1f} s)",
                file=sys.stdout,
            )
    _print_table(records, majority, args.seeds)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0


def _balanced(model: Any) -> bool:
    """Whether the learner (every member, for the ensemble) is trained class-balanced."""
    members = getattr(model, "members", None)
    if members is not None:
        return all(_balanced(m) for m in members)
    return bool(getattr(model, "_balanced", False)) or model.class_weight == "balanced"


def _seeds(n: int) -> str:
    return "seed 0" if n == 1 else f"seeds 0-{n - 1}"


def _print_table(records: list[dict[str, Any]], majority: dict[str, float], seeds: int) -> None:
    from auxlab.online import summarise

    labels = list(dict.fromkeys(r["learner"] for r in records))
    width = max(len(x) for x in [*labels, "majority class"])
    print(
        f"\n{'learner':{width}s}  balanced accuracy  AUROC          errors            "
        f"(mean ± std over {_seeds(seeds)})"
    )

    def cell(values: list[float], digits: int) -> str:
        mean, std = summarise(values)
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    for label in labels:
        rs = [r for r in records if r["learner"] == label]
        print(
            f"{label:{width}s}  {cell([r['balanced_accuracy'] for r in rs], 2):17s}  "
            f"{cell([r['auroc'] for r in rs], 2):13s}  {cell([r['errors'] for r in rs], 1)}"
        )
    print(
        f"{'majority class':{width}s}  {majority['balanced_accuracy']:<17.2f}  "
        f"{majority['auroc']:<13.2f}  {majority['errors']:.0f}"
    )
