"""``auxlab rl``: train the recurrent PPO agent with or without an auxiliary loss, over seeds.

    auxlab rl --env MiniGrid-MemoryS7-v0 --aux temporal-order --weight 0.1 --seeds 5

Prints each seed's final return and success and their mean with a 95 % interval (with two
seeds or more; one seed has no interval), and saves the learning curves as a plot
(``--out``/curves.png) and every run's full record (``--out``/runs.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from auxlab._argtypes import finite_nonneg, positive_int

__all__ = ["add_parser", "mean_line", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``rl`` command to an ``argparse`` sub-parser collection; return it."""
    p = subparsers.add_parser(
        "rl",
        help="recurrent PPO with the temporal-order auxiliary task on memory tasks",
        description=(
            "Train a recurrent (GRU) PPO agent on a Gymnasium, MiniGrid or POPGym environment, "
            "with an auxiliary loss (temporal order or temporal distance) weighted by a fixed "
            "weight, gradient-cosine gating, a relative share or any registered strategy. "
            "Needs the 'rl' extra (and 'report' for the plot): pip install 'auxlab[rl,report]'."
        ),
    )
    p.add_argument(
        "--env", default="MiniGrid-MemoryS7-v0", help="environment id (default %(default)s)"
    )
    p.add_argument(
        "--aux",
        default="temporal-order",
        choices=("none", "temporal-order", "temporal-distance"),
        help="the auxiliary task (default %(default)s)",
    )
    p.add_argument(
        "--weight",
        type=finite_nonneg,
        default=1.0,
        help="auxiliary weight (default 1; in the benchmark of docs/rl.md 0.1 did nothing)",
    )
    p.add_argument(
        "--strategy",
        default="fixed",
        help="fixed, gated (gradient-cosine), relative, or a registered strategy (default fixed)",
    )
    p.add_argument(
        "--seeds", type=positive_int, default=1, help="number of seeds 0..n-1 (default 1)"
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        help=(
            "environment steps per run (default: 400000 for MiniGrid Memory, where the agent "
            "leaves the 50 %% plateau at 250k-400k steps; 150000 for POPGym; 100000 otherwise)"
        ),
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a PPOConfig field, e.g. --set lr=0.001 (repeatable)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run of a few hundred steps")
    p.add_argument("--out", type=Path, default=Path("auxlab-rl"), help="output folder")
    p.add_argument("--json", type=Path, help="write one flat record per seed here")
    p.add_argument("--no-plot", action="store_true", help="do not draw the learning curves")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results already in --out (default: refuse to touch them)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from auxlab.cli import add_threads_argument

    add_threads_argument(p)
    return p


def default_steps(env_id: str) -> int:
    """The step budget ``auxlab rl`` uses when ``--steps`` is not given (see docs/rl.md)."""
    if env_id.startswith("MiniGrid-Memory"):
        return 400_000
    if env_id.startswith("popgym-"):
        return 150_000
    return 100_000


def mean_line(key: str, values: list[float]) -> str:
    """``"key: mean (95 % CI low .. high) over n seeds"``, or with one seed, that none exists.

    Example:
        >>> mean_line("final_return", [0.5])
        'final_return: 0.500 over 1 seed (no confidence interval: it needs 2 seeds or more)'
    """
    from auxlab.rl._compare import mean_ci

    m, lo, hi = mean_ci(values)
    if len(values) < 2:
        return f"{key}: {m:.3f} over 1 seed (no confidence interval: it needs 2 seeds or more)"
    return f"{key}: {m:.3f} (95 % CI {lo:.3f} .. {hi:.3f}) over {len(values)} seeds"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=0.001", "window=none"]`` -> typed PPOConfig overrides; errors name the key."""
    from auxlab.rl._config import PPOConfig

    fields = {f.name: f for f in dataclasses.fields(PPOConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ValueError(f"--set {key}: unknown PPOConfig field; known: {sorted(fields)}")
        default = fields[key].default
        text = text.strip()
        try:
            if text.lower() == "none" and key in ("window", "max_pairs", "aux"):
                out[key] = None
            elif isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = text.lower() in ("true", "1")
            elif isinstance(default, int) and default is not None:
                out[key] = int(text)
            elif isinstance(default, float):
                out[key] = float(text)
            elif key in ("window", "max_pairs"):
                out[key] = int(text)
            else:
                out[key] = text
        except ValueError:
            raise ValueError(
                f"--set {key}={text!r}: expected a value like the default {default!r}"
            ) from None
    return out


def run(args: argparse.Namespace) -> int:
    """Run the ``rl`` command; returns the exit code."""
    from auxlab._optional import MissingDependencyError

    try:
        return _run(args)
    except MissingDependencyError as exc:
        print(f"auxlab rl: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from auxlab._optional import require
    from auxlab._outdir import OutputError, check_out_dir, check_out_file

    require("gymnasium", "rl", "auxlab rl")
    from tqdm import tqdm

    from auxlab.rl._compare import plot_curves
    from auxlab.rl._config import PPOConfig
    from auxlab.rl._ppo import train

    # `auxlab` (auxlab.cli.main) has set torch's threads from --threads and printed them.
    try:
        overrides = parse_overrides(args.set)
    except ValueError as exc:
        print(f"auxlab rl: {exc}", file=sys.stderr)
        return 2
    values: dict[str, Any] = {"aux": None if args.aux == "none" else args.aux}
    values.update(weight=args.weight, strategy=args.strategy)
    if args.quick:
        values.update(total_steps=512, num_envs=4, num_steps=32, num_minibatches=2)
        values.update(update_epochs=2)
    if args.steps:
        values["total_steps"] = args.steps
    elif not args.quick:
        values["total_steps"] = default_steps(args.env)
    values.update(overrides)
    try:
        config = PPOConfig(**values)
    except (TypeError, ValueError) as exc:
        print(f"auxlab rl: {exc}", file=sys.stderr)
        return 2
    if not args.no_plot:
        # Fail before training, not after, when the plot cannot be drawn.
        require("matplotlib", "report", "the learning-curve plot (or pass --no-plot)")
    try:  # and when the outputs cannot be written
        check_out_dir(args.out, overwrite=args.overwrite)
        if args.json:
            check_out_file(args.json, "--json")
    except OutputError as exc:
        print(f"auxlab rl: {exc}", file=sys.stderr)
        return 2

    print(f"{args.env}: {config.label}, {config.total_steps} steps x {args.seeds} seed(s)")
    runs = []
    for seed in range(args.seeds):
        with tqdm(
            total=config.total_steps,
            desc=f"seed {seed}",
            unit="step",
            disable=args.no_progress,
            file=sys.stderr,
        ) as bar:
            try:
                r = train(args.env, config, seed=seed, progress=bar.update)
            except ValueError as exc:
                print(f"auxlab rl: {exc}", file=sys.stderr)
                return 2
        runs.append(r)
        s = r.summary()
        print(
            f"seed {seed}: final return {s['final_return']:.3f}  success "
            f"{s['final_success']:.2f}  AUC {s['auc_return']:.3f}  ({s['seconds']:.0f} s, "
            f"{s['steps_per_second']:.0f} steps/s)"
        )
    records = [r.summary() for r in runs]
    for key in ("final_return", "final_success", "auc_return"):
        print(mean_line(key, [rec[key] for rec in records]))
    from auxlab._outdir import replace_dir, temp_dir_beside

    tmp = temp_dir_beside(args.out)  # written whole, then put in place in one rename
    try:
        (tmp / "runs.json").write_text(json.dumps([r.to_dict() for r in runs]))
        if not args.no_plot:
            plot_curves(runs, tmp / "curves.png")
            plot_curves(runs, tmp / "success.png", key="success")
        replace_dir(tmp, args.out)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        part = args.json.with_name(f".{args.json.name}.tmp")
        part.write_text(json.dumps(records, indent=1))
        part.replace(args.json)
    if not args.no_plot:
        print(f"learning curves: {args.out / 'curves.png'}")
    return 0
