"""Cost of the diagnostics: training time with probes at ``every=50`` against without.

Model: the Keras guide's headline model, smaller for CPU (``HeadlineModel(vocab_size=5000,
seq_len=30, embed_dim=128)``: embedding, LSTM 32, three dense layers, two binary heads),
RMSprop(lr=1e-3), weights main 1.0 / aux 0.2, random token ids, side features and labels from
a fixed seed, batch 64.

Two model copies with the same initial weights train on the same batches, interleaved in one
process (the order alternates every round): "plain" is ``Balancer.backward``, "probed" is
``Diagnostics(model, shared=<embedding + LSTM>, every=50).backward(balancer, losses)``
(gradient flow per layer, alignment, influence, weights). Each round times one block of
``block`` steps for each path; a block of 100 steps holds 2 probe steps, the cost at
``every=50``. The headline number is ``ratio = median(probed) / median(plain)`` seconds per
block; the goal is ``ratio <= 1.10``. It is reported, not asserted.

Reproduce::

    python benchmarks/diagnostics_overhead.py --json diagnostics_overhead.json   # 12 rounds
    python benchmarks/diagnostics_overhead.py --quick --json /tmp/do.json        # 4 rounds
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from auxlab import Balancer, Objective
from auxlab.diagnostics import Diagnostics
from auxlab.models import HeadlineModel
from auxlab.train import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="4 rounds instead of 12")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (4 if args.quick else 12)

    g = torch.Generator().manual_seed(0)
    n, batch, seq = 64 * 20, 64, 30
    tokens = torch.randint(1, 5000, (n, seq), generator=g)
    side = torch.randn(n, 5, generator=g)
    y = (torch.rand(n, generator=g) > 0.5).float()
    batches = [
        (
            {"text": tokens[i : i + batch], "side": side[i : i + batch]},
            {"main": y[i : i + batch], "aux": y[i : i + batch]},
        )
        for i in range(0, n, batch)
    ]
    plain_model = HeadlineModel(vocab_size=5000, seq_len=seq, embed_dim=128, seed=0)
    probed_model = copy.deepcopy(plain_model)
    objective = Objective("bce_logits").bind(plain_model)

    def setup(model: HeadlineModel, probed: bool):
        opt = make_optimizer("rmsprop", model.parameters())
        bal = Balancer({"main": 1.0, "aux": 0.2}, main="main")
        names = [name for name, _ in model.named_children()][:2]  # embedding and LSTM
        shared = [p for name in names for p in getattr(model, name).parameters()]
        diag = Diagnostics(model, shared=shared, every=args.every, lr=1e-3) if probed else None
        return opt, bal, diag

    paths = {
        "plain": (plain_model, *setup(plain_model, False)),
        "probed": (probed_model, *setup(probed_model, True)),
    }
    inputs_key = _input_names(plain_model)

    def block(name: str, start: int) -> float:
        model, opt, bal, diag = paths[name]
        t0 = time.perf_counter()
        for i in range(args.block):
            x, t = batches[(start + i) % len(batches)]
            opt.zero_grad(set_to_none=True)
            losses = objective(model(**{k: x[v] for k, v in inputs_key.items()}), t)
            if diag is None:
                bal.backward(losses)
            else:
                diag.backward(bal, losses)
            opt.step()
        return time.perf_counter() - t0

    block("plain", 0)  # warm-up, both paths
    block("probed", 0)
    times: dict[str, list[float]] = {"plain": [], "probed": []}
    for r in range(rounds):
        order = ("plain", "probed") if r % 2 == 0 else ("probed", "plain")
        for name in order:
            times[name].append(block(name, r * args.block))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["probed"] / med["plain"]
    diag = paths["probed"][3]
    assert diag is not None
    result = {
        "benchmark": "diagnostics_overhead",
        "every": args.every,
        "block_steps": args.block,
        "rounds": rounds,
        "seconds_per_block": times,
        "median_plain_s": med["plain"],
        "median_probed_s": med["probed"],
        "ratio": ratio,
        "goal": 1.10,
        "meets_goal": ratio <= 1.10,
        "probe_rows": len(diag.rows),
        "layers": list(diag.layers),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(
        f"every={args.every}: plain {med['plain'] / args.block * 1e3:.2f} ms/step, probed "
        f"{med['probed'] / args.block * 1e3:.2f} ms/step, ratio {ratio:.3f} (goal <= 1.10)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def _input_names(model: HeadlineModel) -> dict[str, str]:
    """Map the batch's keys to the model's forward argument names."""
    import inspect

    params = list(inspect.signature(model.forward).parameters)
    return {params[0]: "text", params[1]: "side"}


if __name__ == "__main__":
    main()
