"""Step time of every weighting strategy, as a ratio to the plain weighted-sum step.

For each model and number of tasks T, every implementation trains its own copy of the same
model on the same batch; the steps are interleaved in rounds (plain step, then each strategy
once), and the median step time of each is divided by the plain step's median from the same
rounds. Peers (LibMTL, TorchJD) run in the same process on the same batches when they are
importable; they are never dependencies of auxlab. Install them in a benchmark-only
environment, e.g.::

    python -m venv --system-site-packages peers && peers/bin/pip install torchjd
    peers/bin/pip install --no-deps LibMTL    # its package imports torchvision; we load
                                              # only its weighting modules, from their files

Reproduce::

    python benchmarks/weighting_speed.py --json weighting_speed.json           # ~10 min, CPU
    python benchmarks/weighting_speed.py --quick --json weighting_speed.json   # ~15 s (no peers)
    python benchmarks/weighting_speed.py --device cuda --json gpu.json         # adds ResNet-18

Records: one per (implementation, strategy, model, tasks) with ``seconds`` (median step),
``ratio`` (to the plain step of the same rounds), ``peak_memory_mb`` (CUDA only; ``null`` on
CPU, where PyTorch does not track allocations), ``steps``, ``device``, ``threads``; auxlab's
gradient-based rows add ``gramian_way`` (``"layerwise"`` or ``"jacobian"``: how the Balancer
chose to compute the Gramian) and ``grad_way`` (loop or batched per-task gradients).

The floor of exact per-task gradients, measured in the same rounds: the pieces of a step
are timed separately on another copy of the model (``part_seconds``: ``forward``, a full
``backward``, ``trunk`` = one backward through the trunk alone, ``heads`` = the backward from
the losses to the representation and the heads, ``apply`` = the SGD step, ``matrix`` = a
``(T, d)`` gradient matrix, its Gramian and one combination of its rows). Every record has
``backward_passes``: the backward passes through the trunk in one step, counted by a hook
on the trunk's first parameter (1 for the plain step; T for per-task gradients by the loop;
1 for a batched ``vmap`` pass; 0 for the layer-wise Gramian, which never forms a per-task
parameter gradient). Rows that read exact per-task gradients add::

    floor_ratio             = (forward + T·trunk + heads + apply) / (forward + backward + apply)
    floor_with_matrix_ratio = (forward + T·trunk + heads + apply + matrix) / (same)

``--grad-mode loop`` makes every such row take the T passes the floor counts.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer
from auxlab.models import HeadlineModel
from auxlab.weighting import (
    FixedWeights,
    GradientCosine,
    Need,
    RelativeWeights,
    chain,
    create,
    describe,
    gated,
    list_strategies,
    normalized,
    scheduled,
    warmup,
)

# ---------------------------------------------------------------------------------------------
# Models: each returns (outputs {task: tensor}, shared representation, shared module).


class MLPTasks(nn.Module):
    """A trunk 100 -> 3 x 512 (ReLU) with T linear regression heads."""

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(100, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList(nn.Linear(512, 1) for _ in range(tasks))
        self.names = ["main"] + [f"aux{i}" for i in range(1, tasks)]

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        z = self.trunk(x)
        return {n: h(z).squeeze(-1) for n, h in zip(self.names, self.heads, strict=True)}, z


class Headline(nn.Module):
    """The Keras guide's headline model, returning its text representation as well."""

    def __init__(self) -> None:
        super().__init__()
        self.m = HeadlineModel(seed=0)
        self.trunk = nn.ModuleList([self.m.embedding, self.m.lstm])
        self.names = ["main", "aux"]

    def forward(self, tokens: torch.Tensor, side: torch.Tensor) -> Any:
        m = self.m
        _, (h, _) = m.lstm(m.embedding(tokens))
        text = h[-1]
        aux = m.aux_head(text).squeeze(-1)
        main = m.main_head(m.dense(torch.cat([text, side], dim=1))).squeeze(-1)
        return {"main": main, "aux": aux}, text


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.skip(x))


class ResNet18Tasks(nn.Module):
    """A ResNet-18 trunk (torchvision's layout, written here) for 3x64x64, T linear heads."""

    def __init__(self, tasks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(512, 10) for _ in range(tasks))
        self.names = ["main"] + [f"aux{i}" for i in range(1, tasks)]

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        z = self.trunk(x)
        return {n: h(z) for n, h in zip(self.names, self.heads, strict=True)}, z


def make_setting(
    model: str, tasks: int, device: torch.device, seed: int
) -> tuple[nn.Module, tuple[Any, ...], dict[str, torch.Tensor], Callable[..., torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if model == "mlp":
        net: nn.Module = MLPTasks(tasks)
        x = (torch.randn(256, 100, generator=g),)
        y = {n: torch.randn(256, generator=g) for n in net.names}
        loss: Callable[..., torch.Tensor] = F.mse_loss
    elif model == "headline":
        net = Headline()
        x = (torch.randint(0, 10_000, (32, 100), generator=g), torch.randn(32, 5, generator=g))
        y = {n: torch.randint(0, 2, (32,), generator=g).float() for n in net.names}
        loss = F.binary_cross_entropy_with_logits
    elif model == "resnet18":
        net = ResNet18Tasks(tasks)
        x = (torch.randn(128, 3, 64, 64, generator=g),)
        y = {n: torch.randint(0, 10, (128,), generator=g) for n in net.names}
        loss = F.cross_entropy
    else:
        raise ValueError(model)
    net = net.to(device)
    return net, tuple(v.to(device) for v in x), {k: v.to(device) for k, v in y.items()}, loss


# ---------------------------------------------------------------------------------------------
# Implementations: each is a factory (net) -> step() closure owning its optimizer.

WEIGHT = 0.2  # auxiliary weight of the plain step
GRAD_MODE = ["auto"]  # the Balancer's grad_mode, set by --grad-mode


def _examples(names: list[str]) -> dict[str, Any]:
    aux = {n: WEIGHT for n in names if n != "main"}
    return {
        "fixed": lambda: FixedWeights(aux),
        "scheduled": lambda: scheduled(dict.fromkeys(aux, WEIGHT)),
        "relative": lambda: RelativeWeights(WEIGHT),
        "normalized": lambda: normalized(FixedWeights(aux)),
        "gated": lambda: gated(FixedWeights(aux)),
        "warmup": lambda: warmup(FixedWeights(aux), steps=10),
        "chain": lambda: chain(FixedWeights(aux), GradientCosine()),
    }


def plain_step(net: nn.Module, x: tuple[Any, ...], y: dict[str, torch.Tensor], loss: Any) -> Any:
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out, _ = net(*x)
        total = sum((1.0 if t == "main" else WEIGHT) * loss(o, y[t]) for t, o in out.items())
        total.backward()
        opt.step()

    step.net = net  # type: ignore[attr-defined]
    return step


def auxlab_step(name: str, net: nn.Module, x: Any, y: Any, loss: Any) -> Any:
    factory = _examples(net.names).get(name)
    strategy = factory() if factory else create(name)
    balancer = Balancer(
        strategy, shared=net.trunk, tasks=net.names, main="main", grad_mode=GRAD_MODE[0]
    )
    opt = torch.optim.SGD(list(net.parameters()) + balancer.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out, z = net(*x)
        losses = {t: loss(o, y[t]) for t, o in out.items()}
        balancer.backward(losses, representation=z)
        opt.step()

    step.balancer = balancer  # type: ignore[attr-defined]
    step.net = net  # type: ignore[attr-defined]
    return step


# -- TorchJD ---------------------------------------------------------------------------------

TORCHJD = {
    "upgrad": "UPGrad",
    "mgda": "MGDA",
    "pcgrad": "PCGrad",
    "cagrad": "CAGrad",
    "imtl": "IMTLG",
    "gradvac": "GradVac",
    "aligned-mtl": "AlignedMTL",
    "graddrop": "GradDrop",
    "nash-mtl": "NashMTL",
}


def torchjd_step(name: str, net: nn.Module, x: Any, y: Any, loss: Any) -> Any:
    autojac = importlib.import_module("torchjd.autojac")
    agg_mod = importlib.import_module("torchjd.aggregation")
    cls = getattr(agg_mod, TORCHJD[name])
    kwargs: dict[str, Any] = {}
    if name == "cagrad":
        kwargs = {"c": 0.5}
    if name == "nash-mtl":
        kwargs = {"n_tasks": len(net.names)}
    aggregator = cls(**kwargs)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    shared = list(net.trunk.parameters())

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out, z = net(*x)
        losses = [loss(out[t], y[t]) for t in net.names]
        autojac.mtl_backward(losses, features=z)
        autojac.jac_to_grad(shared, aggregator)
        opt.step()

    return step


# -- LibMTL ----------------------------------------------------------------------------------

LIBMTL = {
    "pcgrad": ("PCGrad", {}),
    "mgda": ("MGDA", {"mgda_gn": "none"}),
    "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}),
    "gradnorm": ("GradNorm", {"alpha": 1.5}),
    "imtl": ("IMTL", {}),
    "gradvac": ("GradVac", {"beta": 0.5}),
    "graddrop": ("GradDrop", {"leak": 0.0}),
    "uncertainty": ("UW", {}),
}


def _load_libmtl_weighting(cls_name: str) -> type:
    """Import LibMTL's weighting module from its file, bypassing LibMTL/__init__.py.

    The package's __init__ imports its models, which need torchvision (absent here); the
    weighting modules need only torch and numpy.
    """
    loaded = sys.modules.get("LibMTL")
    if loaded is not None and hasattr(loaded, "__path__"):
        root = Path(next(iter(loaded.__path__)))
    else:
        spec = importlib.util.find_spec("LibMTL")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("LibMTL is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
    for pkg, path in (("LibMTL", root), ("LibMTL.weighting", root / "weighting")):
        if pkg not in sys.modules or not hasattr(sys.modules[pkg], "__path__"):
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(path)]
            sys.modules[pkg] = mod
    return getattr(importlib.import_module(f"LibMTL.weighting.{cls_name}"), cls_name)


def libmtl_step(name: str, net: nn.Module, x: Any, y: Any, loss: Any) -> Any:
    cls_name, kwargs = LIBMTL[name]
    base = _load_libmtl_weighting(cls_name)
    device = next(net.parameters()).device
    trunk = net.trunk

    class Host(base):  # type: ignore[misc, valid-type]
        # What LibMTL's Trainer gives its weighting mixin.
        def __init__(self) -> None:
            super().__init__()
            self.task_num = len(net.names)
            self.task_name = net.names
            self.device = device
            self.rep_grad = False
            self.epoch = 1  # past warm-up: GradNorm (and others) do their real work
            self.train_loss_buffer = torch.ones(self.task_num, 100)

        def get_share_params(self) -> Any:
            return trunk.parameters()

        def zero_grad_share_params(self) -> None:
            trunk.zero_grad(set_to_none=False)

    host = Host()
    host.init_param()
    opt = torch.optim.SGD(list(net.parameters()) + list(host.parameters()), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        out, _ = net(*x)
        losses = torch.stack([loss(out[t], y[t]) for t in net.names])
        host.backward(losses, **kwargs)
        opt.step()

    return step


# -- The floor of an exact per-task gradient step ---------------------------------------------
#
# A step that reads exact per-task gradients on the trunk cannot cost less than one forward,
# T backwards through the trunk (one per task: the gradients differ, so do the passes), one
# backward through the heads and the optimizer's step; the plain step is one forward, one
# backward and the step. The pieces are timed separately, interleaved with the steps.

PARTS = ("forward", "backward", "trunk", "heads", "apply", "matrix")


def floor_parts(net: nn.Module, x: Any, y: Any, loss: Any, device: torch.device, tasks: int) -> Any:
    """A closure that times the pieces of a step once per call into ``parts.times``."""
    trunk = [p for p in net.trunk.parameters() if p.requires_grad]
    ids = {id(p) for p in trunk}
    others = [p for p in net.parameters() if p.requires_grad and id(p) not in ids]
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    times: dict[str, list[float]] = {k: [] for k in PARTS}
    d = sum(p.numel() for p in trunk)
    jac = torch.empty(tasks, d, device=device, dtype=trunk[0].dtype)

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times[key].append(time.perf_counter() - start)
        return out

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        out, z = net(*x)
        total = sum((1.0 if t == "main" else WEIGHT) * loss(o, y[t]) for t, o in out.items())
        return total, z

    def step() -> None:
        total, z = timed("forward", forward)
        params = trunk + others
        timed("backward", lambda: torch.autograd.grad(total, params, retain_graph=True))
        # Heads: from the losses to the representation and the heads' parameters.
        got = timed("heads", lambda: torch.autograd.grad(total, [z, *others], retain_graph=True))
        # One task's pass through the trunk, from a gradient on the representation.
        grads = timed("trunk", lambda: torch.autograd.grad(z, trunk, grad_outputs=got[0]))

        # What exact per-task gradients add besides the passes: each task's gradient copied
        # into a row of the (T, d) matrix (preallocated), its Gramian and one combination
        # of its rows; a strategy's own solve is not included.
        def matrix() -> torch.Tensor:
            for row in jac:
                torch.cat([g.reshape(-1) for g in grads], out=row)
            return torch.ones(tasks, dtype=jac.dtype, device=jac.device) @ (jac @ jac.T) @ jac

        timed("matrix", matrix)
        for p in net.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        timed("apply", opt.step)

    step.times = times  # type: ignore[attr-defined]
    return step


def count_trunk_passes(step: Any) -> int | None:
    """Backward passes through the trunk in one step: calls of its first parameter's hook.

    A pass batched over the tasks (``grad_way="batched"``, ``torch.vmap``) counts once.
    """
    net = getattr(step, "net", None)
    if net is None:
        return None
    first = next(p for p in net.trunk.parameters() if p.requires_grad)
    calls = [0]

    def hook(grad: torch.Tensor) -> None:
        calls[0] += 1

    handle = first.register_hook(hook)
    try:
        step()
    finally:
        handle.remove()
    return calls[0]


# ---------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_setting(
    model: str,
    tasks: int,
    device: torch.device,
    rounds: int,
    strategies: list[str],
    peers: bool,
    seed: int,
    block: int = 1,
) -> list[dict[str, Any]]:
    net0, x, y, loss = make_setting(model, tasks, device, seed)
    impls: dict[tuple[str, str], Callable[[], None]] = {
        ("plain", "weighted-sum"): plain_step(copy.deepcopy(net0), x, y, loss)
    }
    skipped: list[str] = []
    for name in strategies:
        impls[("auxlab", name)] = auxlab_step(name, copy.deepcopy(net0), x, y, loss)
        if peers and name in TORCHJD:
            try:
                impls[("torchjd", name)] = torchjd_step(name, copy.deepcopy(net0), x, y, loss)
            except Exception as exc:  # a peer that is absent or cannot build: say so
                skipped.append(f"torchjd/{name}: {type(exc).__name__}: {exc}")
        if peers and name in LIBMTL:
            try:
                impls[("libmtl", name)] = libmtl_step(name, copy.deepcopy(net0), x, y, loss)
            except Exception as exc:
                skipped.append(f"libmtl/{name}: {type(exc).__name__}: {exc}")
    parts = floor_parts(copy.deepcopy(net0), x, y, loss, device, tasks)
    impls[("floor", "parts")] = parts
    times: dict[tuple[str, str], list[float]] = {k: [] for k in impls}
    failed: dict[tuple[str, str], str] = {}
    peak: dict[tuple[str, str], float | None] = {}
    warm = 3
    for r in range(warm + rounds):
        for key, step in impls.items():
            # block > 1: each implementation takes `block` consecutive steps and the first,
            # which starts from the caches and allocator state another model left, is not
            # timed; the rest are steady-state steps, as in a training loop.
            for b in range(block):
                if key in failed:
                    break
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                _sync(device)
                start = time.perf_counter()
                try:
                    step()
                except Exception as exc:
                    failed[key] = f"{type(exc).__name__}: {exc}"[:300]
                    break
                _sync(device)
                if r >= warm and (block == 1 or b > 0):
                    times[key].append(time.perf_counter() - start)
                if device.type == "cuda":
                    peak[key] = max(peak.get(key) or 0.0, torch.cuda.max_memory_allocated() / 2**20)
    base = statistics.median(times[("plain", "weighted-sum")])
    del impls[("floor", "parts")]
    part = {k: statistics.median(v) for k, v in parts.times.items() if v}
    plain = part["forward"] + part["backward"] + part["apply"]
    passes = part["forward"] + tasks * part["trunk"] + part["heads"] + part["apply"]
    exact_floor = passes / plain
    matrix_floor = (passes + part["matrix"]) / plain
    records = []
    for key in impls:
        impl, name = key
        rec: dict[str, Any] = {
            "benchmark": "weighting_speed",
            "implementation": impl,
            "strategy": name,
            "model": model,
            "tasks": tasks,
            "device": device.type,
            "threads": torch.get_num_threads(),
            "steps": len(times[key]),
            "block": block,
            "seconds": statistics.median(times[key]) if times[key] else None,
            "ratio": statistics.median(times[key]) / base if times[key] else None,
            "peak_memory_mb": peak.get(key),
            "error": failed.get(key, ""),
        }
        balancer = getattr(impls[key], "balancer", None)
        exact = balancer is not None and bool(balancer.strategy.needs & {Need.GRADS, Need.GRAMIAN})
        if exact:
            # How the Balancer computed the Gramian / gradients after its timing steps.
            rec["gramian_way"] = balancer.gramian_way
            rec["grad_way"] = balancer._source.grad_way
        # The floor applies to steps that read exact per-task gradients on the trunk.
        rec["floor_ratio"] = exact_floor if exact else None
        rec["floor_with_matrix_ratio"] = matrix_floor if exact else None
        rec["backward_passes"] = None if key in failed else count_trunk_passes(impls[key])
        rec["part_seconds"] = part
        records.append(rec)
    for s in skipped:
        print(f"  skipped {s}", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> int:
    # TorchJD's vmap through an LSTM on CPU warns at every step that PyTorch lacks a batching
    # rule (aten::mkldnn_rnn_layer_backward) and falls back to a slow loop: say it once.
    warnings.filterwarnings("once", message=".*batching rule.*")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, help="write the records here")
    p.add_argument("--quick", action="store_true", help="fewer rounds and strategies")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, help="timed rounds (default 30, quick 8)")
    p.add_argument(
        "--block",
        type=int,
        default=1,
        help="consecutive steps per implementation in a round; the first is not timed "
        "(default 1: single steps, every one timed)",
    )
    p.add_argument("--strategies", help="comma-separated names (default: all registered)")
    p.add_argument("--models", help="comma-separated: mlp2,mlp3,mlp10,headline[,resnet2,resnet10]")
    p.add_argument("--no-peers", action="store_true", help="skip LibMTL and TorchJD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--grad-mode",
        default="auto",
        choices=["auto", "loop", "batched", "layerwise"],
        help="the Balancer's grad_mode (default auto; loop: T backward passes, the floor's model)",
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: as is)")
    args = p.parse_args(argv)
    if args.block < 1:
        p.error(f"--block must be at least 1, got {args.block}")
    if args.threads:
        torch.set_num_threads(args.threads)
    GRAD_MODE[0] = args.grad_mode
    device = torch.device(args.device)
    rounds = args.rounds or (8 if args.quick else 30)
    if args.strategies:
        strategies = args.strategies.split(",")
    elif args.quick:
        strategies = [
            "equal",
            "fixed",
            "uncertainty",
            "pcgrad",
            "mgda",
            "cagrad",
            "upgrad",
            "gradnorm",
            "relative",
            "gradient-cosine",
        ]
    else:
        # The validation-driven strategies need validation batches: validation_weighting.py
        # measures them.
        strategies = [
            s for s in list_strategies() if s != "hedge" and "val_grad" not in describe(s).needs
        ]
    unknown = set(strategies) - set(list_strategies())
    if unknown:
        p.error(f"unknown strategies {sorted(unknown)}; known: {', '.join(list_strategies())}")
    settings = {
        "mlp2": ("mlp", 2),
        "mlp10": ("mlp", 10),
        # T = 3 only for LibMTL's CAGrad, which hard-codes three tasks (x.reshape(1, 3)).
        "mlp3": ("mlp", 3),
        "headline": ("headline", 2),
        "resnet2": ("resnet18", 2),
        "resnet10": ("resnet18", 10),
    }
    default = ["mlp2", "mlp10", "headline"] + (
        ["resnet2", "resnet10"] if device.type == "cuda" else []
    )
    chosen = args.models.split(",") if args.models else default
    records: list[dict[str, Any]] = []
    for key in chosen:
        model, tasks = settings[key]
        t0 = time.perf_counter()
        recs = bench_setting(
            model, tasks, device, rounds, strategies, not args.no_peers, args.seed, args.block
        )
        records += recs
        print(
            f"\n{model} T={tasks} on {device.type} ({time.perf_counter() - t0:.0f} s, "
            f"{torch.get_num_threads()} threads, median of {rounds} interleaved rounds)"
        )
        print(
            f"  {'strategy':<18}{'auxlab':>9}{'torchjd':>9}{'libmtl':>9}{'floor':>8}{'passes':>8}"
        )
        by = {(r["implementation"], r["strategy"]): r for r in recs}
        for name in ["weighted-sum", *strategies]:
            cells = []
            for impl in ("auxlab", "torchjd", "libmtl"):
                r = by.get((impl, name)) or (by.get(("plain", name)) if impl == "auxlab" else None)
                if r is None:
                    cells.append("")
                elif r["error"]:
                    cells.append("error")
                else:
                    cells.append(f"{r['ratio']:.2f}x")
            r = by.get(("auxlab", name)) or by.get(("plain", name)) or {}
            fl = f"{r['floor_ratio']:.2f}x" if r.get("floor_ratio") else ""
            fm = f"{r['floor_with_matrix_ratio']:.2f}x" if r.get("floor_ratio") else ""
            passes = r.get("backward_passes")
            passes = "" if passes is None else str(passes)
            print(
                f"  {name:<18}" + "".join(f"{c:>9}" for c in cells) + f"{fl:>8}{fm:>8}{passes:>8}"
            )
        for r in recs:
            if r["error"]:
                print(f"  error {r['implementation']}/{r['strategy']}: {r['error']}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
        print(f"\nwrote {len(records)} records to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
