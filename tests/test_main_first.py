"""Tests for the main-task-first strategies: gradient cosine, OL-AUX, MetaBalance,
main-priority PCGrad and relative weights, against naive references written here."""

from __future__ import annotations

import copy
import itertools
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer, TaskMismatchError
from auxlab.checks import check_strategy
from auxlab.weighting import (
    Decision,
    GradientCosine,
    MetaBalance,
    MetaBalanceState,
    Need,
    NonFiniteSignalWarning,
    OLAux,
    OLAuxState,
    PriorityPCGrad,
    RelativeWeights,
    RelativeWeightsState,
    Signals,
    Strategy,
    as_decision,
    create,
    relative_share,
)

TASKS = ("main", "aux1", "aux2")


def make_signals(grads: torch.Tensor, tasks=TASKS, step: int = 0, with_grads: bool = True):
    losses = {t: torch.tensor(1.0 + i) for i, t in enumerate(tasks)}
    return Signals(
        step, tuple(tasks), "main", losses, grads if with_grads else None, grads @ grads.T
    )


def rand_grads(seed: int, t: int = 3, d: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, d, generator=g, dtype=torch.float64)


def decide(strategy: Strategy, signals: Signals, state=None):
    if state is None:
        state = strategy.init(signals.tasks, signals.main)
    out, state = strategy.update(signals, state)
    return as_decision(out), state


def realised(decision: Decision, grads: torch.Tensor, tasks=TASKS) -> torch.Tensor:
    if decision.shared_grad is not None:
        return decision.shared_grad
    coef = decision.shared_weights if decision.shared_weights is not None else decision.weights
    return torch.tensor([float(coef[t]) for t in tasks], dtype=grads.dtype) @ grads


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=0))


# ------------------------------------------------------------------------------ a tiny model


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh())
        self.main_head = nn.Linear(4, 1)
        self.aux_head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.shared(x)
        return {"main": self.main_head(h).squeeze(-1), "aux": self.aux_head(h).squeeze(-1)}


def make_net(seed: int = 0) -> Net:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net()


def batch(step: int, n: int = 16):
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(n, 3, generator=g)
    return x, torch.randn(n, generator=g), torch.randn(n, generator=g)


def losses_of(model: Net, step: int, aux_scale: float = 1.0) -> dict[str, torch.Tensor]:
    x, y, z = batch(step)
    out = model(x)
    return {"main": F.mse_loss(out["main"], y), "aux": aux_scale * F.mse_loss(out["aux"], z)}


def flat_grad(loss: torch.Tensor, params) -> torch.Tensor:
    gs = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(gs, params, strict=True)
        ]
    )


def check_applied(strategy: Strategy, steps: int = 3) -> list:
    """Run the Balancer and compare the gradients it writes with the decision applied by hand.

    The hand side: per-task gradients by autograd, the strategy's decision on those
    signals (from a deep copy of the Balancer's state), shared = Σ cᵢ gᵢ (or shared_grad),
    each head = its task's weight times its own gradient.
    """
    model = make_net()
    shared = list(model.shared.parameters())
    balancer = Balancer(strategy, shared=model.shared)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    records = []
    for step in range(steps):
        opt.zero_grad()
        losses = losses_of(model, step)
        grads = torch.stack([flat_grad(losses[t], shared) for t in ("main", "aux")])
        head_grads = {
            "main": flat_grad(losses["main"], list(model.main_head.parameters())),
            "aux": flat_grad(losses["aux"], list(model.aux_head.parameters())),
        }
        tasks = ("main", "aux")
        sig = Signals(
            step,
            tasks,
            "main",
            {t: v.detach() for t, v in losses.items()},
            grads if Need.GRADS in strategy.needs else None,
            grads @ grads.T if Need.GRAMIAN in strategy.needs else None,
        )
        state = balancer.state if balancer.state is not None else strategy.init(tasks, "main")
        expected, _ = strategy.clone().update(sig, copy.deepcopy(state))
        expected = as_decision(expected)
        record = balancer.backward(losses)
        got = torch.cat([p.grad.reshape(-1) for p in shared])
        torch.testing.assert_close(got, realised(expected, grads, tasks).to(got.dtype))
        for t, head in (("main", model.main_head), ("aux", model.aux_head)):
            got_head = torch.cat([p.grad.reshape(-1) for p in head.parameters()])
            torch.testing.assert_close(got_head, float(expected.weights[t]) * head_grads[t])
        opt.step()
        records.append(record)
    return records


# ------------------------------------------------------------------------------ registry, needs


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("gradient-cosine", GradientCosine),
        ("ol-aux", OLAux),
        ("metabalance", MetaBalance),
        ("main-pcgrad", PriorityPCGrad),
    ],
)
def test_registered_by_name(name, cls) -> None:
    assert isinstance(create(name), cls)


def test_relative_is_registered_and_needs_its_shares() -> None:
    assert isinstance(create("relative", 0.2), RelativeWeights)
    with pytest.raises(TypeError):
        create("relative")


@pytest.mark.parametrize(
    "strategy",
    [GradientCosine(), OLAux(), MetaBalance(), PriorityPCGrad(), RelativeWeights(0.2)],
    ids=lambda s: type(s).__name__,
)
def test_gramian_is_enough(strategy) -> None:
    # Cosines, dot products and norms all come from the Gramian: no (T, d) gradients needed.
    assert strategy.needs == frozenset({Need.LOSSES, Need.GRAMIAN})
    G = rand_grads(0)
    d, _ = decide(strategy, make_signals(G, with_grads=False))
    assert all(math.isfinite(float(w)) for w in d.weights.values())


def test_metabalance_with_blocks_needs_the_gradients() -> None:
    assert MetaBalance(blocks=[3, 4]).needs == frozenset({Need.LOSSES, Need.GRADS})
    assert MetaBalance.needs == frozenset({Need.LOSSES, Need.GRAMIAN})


def test_missing_gramian_is_a_clear_error() -> None:
    sig = Signals(0, TASKS, "main", {t: torch.tensor(1.0) for t in TASKS})
    with pytest.raises(ValueError, match=r"Need\.GRAMIAN"):
        decide(GradientCosine(), sig)
    # Gradients alone are enough: the Gramian is formed from them.
    G = rand_grads(1)
    sig = Signals(0, TASKS, "main", {t: torch.tensor(1.0) for t in TASKS}, grads=G)
    assert decide(GradientCosine(), sig)[0] == decide(GradientCosine(), make_signals(G))[0]


CONFORMING = [
    GradientCosine(),
    GradientCosine(mode="weighted", weights={"aux1": 0.3, "aux2": 0.3}),
    OLAux(lr=0.05, horizon=2),
    OLAux(lr=1.0, horizon=1, weights=0.5, max_weight=2.0),
    MetaBalance(),
    MetaBalance(relax_factor=1.0),
    MetaBalance(relax_factor=0.0),
    MetaBalance(mode="reduce"),
    MetaBalance(mode="enlarge", blocks=(10, 14)),
    MetaBalance(relax_factor=1.0, blocks=(4, 20)),
    PriorityPCGrad(),
    PriorityPCGrad(weights=0.5, aux_conflicts=True, seed=3),
    RelativeWeights(0.2),
    RelativeWeights({"aux1": 0.3, "aux2": 0.3}, beta=0.0),
    RelativeWeights(0.2, every=2),
    RelativeWeights(0.2, max_weight=1.0),
]


@pytest.mark.parametrize("strategy", CONFORMING, ids=repr)
def test_conformance_suite(strategy) -> None:
    check_strategy(strategy)


@pytest.mark.parametrize(
    ("strategy", "reaction"),
    [
        (GradientCosine(), "independent"),
        (GradientCosine(mode="weighted"), "independent"),
        (OLAux(), "none"),
        (MetaBalance(), "adaptive"),
        (MetaBalance(relax_factor=1.0), "invariant"),
        (MetaBalance(relax_factor=0.0, mode="reduce"), "independent"),
        (MetaBalance(relax_factor=1.0, mode="reduce"), "none"),
        (MetaBalance(mode="enlarge"), "none"),
        (PriorityPCGrad(), "none"),
        (RelativeWeights(0.2), "inverse"),
        (RelativeWeights(0.2, max_weight=5.0), "none"),
    ],
    ids=repr,
)
def test_documented_scale_reaction(strategy, reaction) -> None:
    assert strategy.scale_reaction == reaction
    assert strategy.clone().scale_reaction == reaction


# ------------------------------------------------------------------------------ gradient cosine


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["gate", "weighted"])
def test_gradient_cosine_by_hand(seed: int, mode: str) -> None:
    G = rand_grads(seed)
    base = {"main": 1.0, "aux1": 0.5, "aux2": 2.0}
    d, _ = decide(GradientCosine(mode, {"aux1": 0.5, "aux2": 2.0}), make_signals(G))
    assert d.weights == base  # heads: base weights, ungated
    expected = G[0].clone()
    for i, t in ((1, "aux1"), (2, "aux2")):
        c = cos(G[0], G[i])
        lam = (1.0 if c > 0 else 0.0) if mode == "gate" else max(0.0, c)
        assert d.shared_weights[t] == pytest.approx(base[t] * lam, abs=1e-12)
        expected = expected + base[t] * lam * G[i]
    assert d.shared_weights["main"] == 1.0
    torch.testing.assert_close(realised(d, G), expected)


def test_gradient_cosine_gates_both_ways() -> None:
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.2]], dtype=torch.float64)
    d, _ = decide(GradientCosine(), make_signals(G))
    assert d.shared_weights == {"main": 1.0, "aux1": 1.0, "aux2": 0.0}
    d, _ = decide(GradientCosine("weighted"), make_signals(G))
    assert d.shared_weights["aux1"] == pytest.approx(1 / math.sqrt(2))
    assert d.shared_weights["aux2"] == 0.0


def test_gradient_cosine_zero_gradients_close_the_gate() -> None:
    G = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    d, _ = decide(GradientCosine(), make_signals(G))
    assert d.shared_weights == {"main": 1.0, "aux1": 0.0, "aux2": 1.0}
    G = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    d, _ = decide(GradientCosine("weighted"), make_signals(G))
    assert d.shared_weights == {"main": 1.0, "aux1": 0.0, "aux2": 0.0}


def test_gradient_cosine_ignores_the_scale_of_a_loss() -> None:
    G = rand_grads(3)
    H = G.clone()
    H[1] *= 1000.0
    H[0] *= 1e-3
    for mode in ("gate", "weighted"):
        a, _ = decide(GradientCosine(mode), make_signals(G))
        b, _ = decide(GradientCosine(mode), make_signals(H))
        assert a.weights == b.weights
        assert a.shared_weights == pytest.approx(b.shared_weights)


def test_gradient_cosine_argument_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        GradientCosine("soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        GradientCosine(weights={"aux1": -1.0})
    with pytest.raises(TypeError, match="dict"):
        GradientCosine(weights="0.2")  # type: ignore[arg-type]
    with pytest.raises(TaskMismatchError, match="auxx"):
        GradientCosine(weights={"auxx": 0.2}).init(TASKS, "main")


def test_gradient_cosine_end_to_end() -> None:
    records = check_applied(GradientCosine("weighted", {"aux": 0.5}), steps=4)
    assert all(r.weights == {"main": 1.0, "aux": 0.5} for r in records)
    assert all(r.cosines is not None for r in records)


# ------------------------------------------------------------------------------ OL-AUX


def test_ol_aux_accumulates_over_the_horizon_by_hand() -> None:
    G1, G2, G3 = rand_grads(10), rand_grads(11), rand_grads(12)
    lr, w0 = 0.3, {"aux1": 0.5, "aux2": 2.0}
    s = OLAux(lr=lr, horizon=2, weights=w0)
    state = s.init(TASKS, "main")
    assert state == OLAuxState({"main": 1.0, **w0}, {"aux1": 0.0, "aux2": 0.0}, 0)
    dots1 = {t: float(G1[0] @ G1[i]) for i, t in ((1, "aux1"), (2, "aux2"))}
    dots2 = {t: float(G2[0] @ G2[i]) for i, t in ((1, "aux1"), (2, "aux2"))}

    w, state = s.update(make_signals(G1, step=0), state)
    assert w == {"main": 1.0, **w0}
    assert state.accumulator == pytest.approx(dots1)
    assert state.weights == {"main": 1.0, **w0}

    w, state = s.update(make_signals(G2, step=1), state)
    assert w == {"main": 1.0, **w0}  # the horizon's steps all use the old weights
    expected = {t: max(0.0, w0[t] + lr * (dots1[t] + dots2[t])) for t in w0}
    assert state.weights == pytest.approx({"main": 1.0, **expected})
    assert state.accumulator == {"aux1": 0.0, "aux2": 0.0}
    assert state.updates == 2

    w, state = s.update(make_signals(G3, step=2), state)
    assert w == pytest.approx({"main": 1.0, **expected})  # the new weights apply from here


def test_ol_aux_clamps_at_zero_and_at_max_weight() -> None:
    G = torch.tensor([[1.0, 0.0], [-3.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    s = OLAux(lr=1.0, horizon=1, max_weight=2.5)
    _, state = s.update(make_signals(G), s.init(TASKS, "main"))
    assert state.weights == {"main": 1.0, "aux1": 0.0, "aux2": 2.5}


def test_ol_aux_argument_errors() -> None:
    with pytest.raises(ValueError, match="horizon"):
        OLAux(horizon=0)
    with pytest.raises(ValueError, match=">= 0"):
        OLAux(lr=-0.1)
    with pytest.raises(ValueError, match="max_weight"):
        OLAux(max_weight=0.0)


def test_ol_aux_end_to_end() -> None:
    records = check_applied(OLAux(lr=0.5, horizon=2), steps=5)
    assert records[0].weights == records[1].weights == {"main": 1.0, "aux": 1.0}
    assert records[2].weights["aux"] != 1.0


# ------------------------------------------------------------------------------ MetaBalance


def metabalance_by_hand(norms_per_step, r, beta, mode):
    """Naive MetaBalance factors: EMAs from 0, factor r·m_main/m_k + 1 − r, by strategy."""
    m = [0.0] * len(norms_per_step[0])
    out = []
    for norms in norms_per_step:
        m = [beta * a + (1 - beta) * n for a, n in zip(m, norms, strict=True)]
        factors = []
        for k in range(1, len(m)):
            f = r * m[0] / m[k] + (1 - r)
            if mode == "reduce" and m[k] <= m[0]:
                f = 1.0
            if mode == "enlarge" and m[k] >= m[0]:
                f = 1.0
            factors.append(f)
        out.append(factors)
    return out


@pytest.mark.parametrize("mode", ["reduce", "enlarge", "both"])
def test_metabalance_scaling_by_hand(mode: str) -> None:
    steps = [
        rand_grads(20 + i) * torch.tensor([[1.0], [5.0], [0.2]], dtype=torch.float64)
        for i in range(3)
    ]
    r, beta = 0.7, 0.9
    expected = metabalance_by_hand([G.norm(dim=1).tolist() for G in steps], r, beta, mode)
    s = MetaBalance(relax_factor=r, beta=beta, mode=mode)
    state = s.init(TASKS, "main")
    for G, (f1, f2) in zip(steps, expected, strict=True):
        d, state = decide(s, make_signals(G), state)
        assert d.weights == {"main": 1.0, "aux1": 1.0, "aux2": 1.0}
        assert d.shared_weights["main"] == 1.0
        assert d.shared_weights["aux1"] == pytest.approx(f1, rel=1e-12)
        assert d.shared_weights["aux2"] == pytest.approx(f2, rel=1e-12)
        torch.testing.assert_close(realised(d, G), G[0] + f1 * G[1] + f2 * G[2])
    assert isinstance(state, MetaBalanceState)
    assert state.updates == 3
    if mode == "reduce":  # aux1 is the larger: reduced; aux2 the smaller: left alone
        assert f1 < 1.0
        assert f2 == 1.0
    if mode == "enlarge":
        assert f1 == 1.0
        assert f2 > 1.0


def test_metabalance_relax_one_matches_the_main_magnitude() -> None:
    G = rand_grads(4) * torch.tensor([[1.0], [30.0], [0.01]], dtype=torch.float64)
    s = MetaBalance(relax_factor=1.0, beta=0.5)
    state = s.init(TASKS, "main")
    for _ in range(3):  # steady norms: the moving averages are proportional to them
        d, state = decide(s, make_signals(G), state)
        for i, t in ((1, "aux1"), (2, "aux2")):
            assert float((d.shared_weights[t] * G[i]).norm()) == pytest.approx(float(G[0].norm()))


def test_metabalance_per_block_by_hand() -> None:
    G = rand_grads(5, d=7)
    G[1, :3] *= 10.0
    blocks = (3, 4)
    r = 0.5
    d, _ = decide(MetaBalance(relax_factor=r, beta=0.0, blocks=blocks), make_signals(G))
    assert d.shared_weights is None
    expected = G[0].clone()
    for i in (1, 2):
        parts = []
        for lo, hi in ((0, 3), (3, 7)):
            f = r * float(G[0, lo:hi].norm()) / float(G[i, lo:hi].norm()) + (1 - r)
            parts.append(f * G[i, lo:hi])
        expected = expected + torch.cat(parts)
    torch.testing.assert_close(d.shared_grad, expected)


def test_metabalance_per_parameter_and_block_errors() -> None:
    net = make_net()
    s = MetaBalance.per_parameter(net.shared, relax_factor=0.5)
    assert s.blocks == tuple(p.numel() for p in net.shared.parameters())
    assert s.relax_factor == 0.5
    with pytest.raises(ValueError, match="cover 5 values"):
        decide(MetaBalance(blocks=(2, 3)), make_signals(rand_grads(0)))
    with pytest.raises(ValueError, match="positive integer"):
        MetaBalance(blocks=(2, 0))
    with pytest.raises(ValueError, match="relax_factor"):
        MetaBalance(relax_factor=1.5)
    with pytest.raises(ValueError, match="beta"):
        MetaBalance(beta=1.0)
    with pytest.raises(ValueError, match="mode"):
        MetaBalance(mode="all")  # type: ignore[arg-type]


def test_metabalance_zero_gradients_are_finite() -> None:
    G = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    d, _ = decide(MetaBalance(), make_signals(G))
    assert d.shared_weights["aux1"] == 1.0
    G = torch.zeros(3, 2, dtype=torch.float64)
    d, _ = decide(MetaBalance(blocks=(1, 1)), make_signals(G))
    assert torch.isfinite(d.shared_grad).all()


def test_metabalance_end_to_end() -> None:
    check_applied(MetaBalance(), steps=3)
    net = make_net()
    check_applied(MetaBalance.per_parameter(net.shared, relax_factor=1.0), steps=3)


# ------------------------------------------------------------------------- main-priority PCGrad


def pri_pcgrad_reference(G: torch.Tensor, main: int = 0) -> tuple[torch.Tensor, list]:
    """The explicit projection loop: only auxiliary rows are projected, off the main row."""
    projected = []
    for i in range(G.shape[0]):
        g = G[i].clone()
        if i != main:
            dot = g @ G[main]
            if dot < 0:
                g = g - dot / (G[main] @ G[main]) * G[main]
        projected.append(g)
    return torch.stack(projected).sum(0), projected


@pytest.mark.parametrize("seed", range(8))
def test_priority_pcgrad_matches_the_projection_loop(seed: int) -> None:
    G = rand_grads(seed, t=4)
    tasks = ("main", "a", "b", "c")
    d, _ = decide(PriorityPCGrad(), make_signals(G, tasks=tasks))
    expected, projected = pri_pcgrad_reference(G)
    got = realised(d, G, tasks)
    torch.testing.assert_close(got, expected)
    # The main gradient's part is untouched: what is left after the projected auxiliaries.
    torch.testing.assert_close(got - sum(projected[1:]), G[0])
    for i in range(1, 4):
        assert float(projected[i] @ G[0]) >= -1e-12  # no projected auxiliary opposes main
        if float(G[i] @ G[0]) < 0:  # the conflicting component is gone exactly
            assert float(projected[i] @ G[0]) == pytest.approx(0.0, abs=1e-12)
        else:
            torch.testing.assert_close(projected[i], G[i])
        assert d.shared_weights[tasks[i]] == 1.0  # auxiliaries enter with coefficient 1
    assert d.weights == dict.fromkeys(tasks, 1.0)


def test_priority_pcgrad_base_weights_apply_before_projection() -> None:
    G = rand_grads(3)
    w = torch.tensor([1.0, 0.3, 2.0], dtype=torch.float64)
    d, _ = decide(PriorityPCGrad(weights={"aux1": 0.3, "aux2": 2.0}), make_signals(G))
    expected, _ = pri_pcgrad_reference(w[:, None] * G)
    torch.testing.assert_close(realised(d, G), expected)
    assert d.weights == {"main": 1.0, "aux1": 0.3, "aux2": 2.0}


def aux_pcgrad_reference(G: torch.Tensor, tasks, seed: int) -> torch.Tensor:
    """Projection loop with auxiliary-auxiliary conflicts: PCGrad among auxiliaries (each off
    the others' original gradients, in an order drawn over the sorted names), main last."""
    gen = torch.Generator().manual_seed(seed)
    aux = sorted(t for t in tasks if t != "main")
    main = G[tasks.index("main")]
    total = main.clone()
    for name in aux:
        g = G[tasks.index(name)].clone()
        others = [o for o in aux if o != name]
        for k in torch.randperm(len(others), generator=gen).tolist():
            other = G[tasks.index(others[k])]
            dot = g @ other
            if dot < 0:
                g = g - dot / (other @ other) * other
        dot = g @ main
        if dot < 0:
            g = g - dot / (main @ main) * main
        total = total + g
    return total


@pytest.mark.parametrize("seed", range(4))
def test_priority_pcgrad_with_aux_conflicts_matches_the_loop(seed: int) -> None:
    tasks = ("main", "c", "a", "b")  # not sorted: the order is drawn over sorted names
    G = rand_grads(40 + seed, t=4, d=3)
    s = PriorityPCGrad(aux_conflicts=True, seed=seed)
    d, state = decide(s, make_signals(G, tasks=tasks))
    torch.testing.assert_close(realised(d, G, tasks), aux_pcgrad_reference(G, tasks, seed))
    assert not torch.equal(state.rng, s.init(tasks, "main").rng)  # the generator moved on


def test_priority_pcgrad_aux_order_depends_on_seed_not_on_task_order() -> None:
    # Three mutually conflicting auxiliary gradients: the projection order matters.
    G = torch.tensor(
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.1], [-0.5, 0.9, 0.1], [-0.5, -0.9, 0.1]],
        dtype=torch.float64,
    )
    tasks = ("main", "a", "b", "c")
    results = {
        seed: realised(
            decide(PriorityPCGrad(aux_conflicts=True, seed=seed), make_signals(G, tasks=tasks))[0],
            G,
            tasks,
        )
        for seed in range(6)
    }
    assert len({tuple(v.round(decimals=9).tolist()) for v in results.values()}) > 1
    perm = [0, 3, 1, 2]
    ptasks = tuple(tasks[i] for i in perm)
    again = realised(
        decide(PriorityPCGrad(aux_conflicts=True, seed=2), make_signals(G[perm], tasks=ptasks))[0],
        G[perm],
        ptasks,
    )
    torch.testing.assert_close(again, results[2])


def test_priority_pcgrad_zero_main_gradient_projects_nothing() -> None:
    G = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    d, _ = decide(PriorityPCGrad(aux_conflicts=True), make_signals(G))
    assert d.shared_weights == {"main": 1.0, "aux1": 1.0, "aux2": 1.0}


def test_priority_pcgrad_end_to_end() -> None:
    check_applied(PriorityPCGrad(), steps=4)
    check_applied(PriorityPCGrad(weights={"aux": 0.4}), steps=2)


# ------------------------------------------------------------------------------ relative weights


def shares_realised(weights, G, tasks=TASKS) -> dict[str, float]:
    n_main = float(G[0].norm())
    return {t: float(weights[t]) * float(G[i].norm()) / n_main for i, t in enumerate(tasks) if i}


@pytest.mark.parametrize("seed", range(4))
def test_relative_weights_give_the_share_exactly_without_averaging(seed: int) -> None:
    s = RelativeWeights({"aux1": 0.2, "aux2": 0.05}, beta=0.0)
    state = s.init(TASKS, "main")
    for step in range(4):
        G = rand_grads(seed * 10 + step) * torch.tensor(
            [[1.0], [50.0], [1e-3]], dtype=torch.float64
        )
        w, state = s.update(make_signals(G, step=step), state)
        assert w["main"] == 1.0
        assert shares_realised(w, G) == pytest.approx({"aux1": 0.2, "aux2": 0.05}, rel=1e-12)


def test_relative_weights_first_step_is_exact_for_any_beta() -> None:
    # The bias correction makes the first average the first measurement.
    G = rand_grads(7)
    for beta in (0.0, 0.5, 0.99):
        w, _ = decide(RelativeWeights(0.3, beta=beta), make_signals(G))
        assert shares_realised(w.weights, G) == pytest.approx({"aux1": 0.3, "aux2": 0.3})


def test_relative_weights_converge_after_a_scale_change() -> None:
    G = rand_grads(8)
    H = G.clone()
    H[1] *= 10.0  # from step 5 on, the auxiliary loss weighs 10 times more
    beta, share = 0.8, 0.2
    s = RelativeWeights(share, beta=beta)
    state = s.init(TASKS, "main")
    m_main = m_aux = 0.0  # naive moving averages of the norms, bias-corrected below
    errors = []
    for step in range(80):
        grads = G if step < 5 else H
        w, state = s.update(make_signals(grads, step=step), state)
        m_main = beta * m_main + (1 - beta) * float(grads[0].norm())
        m_aux = beta * m_aux + (1 - beta) * float(grads[1].norm())
        c = 1 - beta ** (step + 1)
        assert w["aux1"] == pytest.approx(share * (m_main / c) / (m_aux / c), rel=1e-12)
        errors.append(abs(shares_realised(w, grads)["aux1"] - share))
    assert max(errors[:5]) < 1e-12  # steady norms: exact from the first step
    assert errors[5] > 0.3  # just after the change the average remembers the old norm
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(errors[5:]))  # then it forgets
    assert errors[-1] < 1e-6
    assert shares_realised(w, H)["aux2"] == pytest.approx(share)


def test_relative_weights_inverse_to_the_aux_scale() -> None:
    s = RelativeWeights(0.2)
    a_state = s.init(TASKS, "main")
    b_state = s.init(TASKS, "main")
    for step in range(6):
        G = rand_grads(50 + step)
        H = G.clone()
        H[1] *= 1000.0
        wa, a_state = s.update(make_signals(G, step=step), a_state)
        wb, b_state = s.update(make_signals(H, step=step), b_state)
        assert wb["aux1"] == pytest.approx(wa["aux1"] / 1000.0, rel=1e-12)
        assert wb["aux2"] == pytest.approx(wa["aux2"], rel=1e-12)
        torch.testing.assert_close(wb["aux1"] * H[1], wa["aux1"] * G[1])


def test_relative_weights_zero_aux_gradient_gives_zero_weight() -> None:
    G = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    w, _ = decide(RelativeWeights(0.2), make_signals(G))
    assert w.weights == {"main": 1.0, "aux1": 0.0, "aux2": pytest.approx(0.2 * math.sqrt(2))}
    w, _ = decide(RelativeWeights(0.2), make_signals(torch.zeros(3, 2, dtype=torch.float64)))
    assert w.weights == {"main": 1.0, "aux1": 0.0, "aux2": 0.0}
    # Tiny but non-zero gradients still get the exact ratio: there is no epsilon.
    G = torch.tensor([[1e-20, 0.0], [0.0, 1e-30], [1.0, 0.0]], dtype=torch.float64)
    w, _ = decide(RelativeWeights(0.2, beta=0.0), make_signals(G))
    assert w.weights["aux1"] == pytest.approx(0.2 * 1e10)


def test_relative_weights_max_weight_caps() -> None:
    G = torch.tensor([[1.0, 0.0], [1e-3, 0.0], [1.0, 0.0]], dtype=torch.float64)
    w, _ = decide(RelativeWeights(0.5, max_weight=10.0), make_signals(G))
    assert w.weights == {"main": 1.0, "aux1": 10.0, "aux2": 0.5}


def test_relative_weights_every_reuses_the_weights_in_between() -> None:
    s = RelativeWeights(0.2, beta=0.0, every=2)
    state = s.init(TASKS, "main")
    G0, G1, G2 = rand_grads(60), rand_grads(61), rand_grads(62)
    w0, state = s.update(make_signals(G0, step=0), state)
    w1, state = s.update(make_signals(G1, step=1), state)
    assert w1 == w0  # no measurement on this call
    assert (state.measurements, state.calls) == (1, 2)
    w2, state = s.update(make_signals(G2, step=2), state)
    assert shares_realised(w2, G2) == pytest.approx({"aux1": 0.2, "aux2": 0.2})
    assert isinstance(state, RelativeWeightsState)


def test_relative_weights_shares_validation() -> None:
    assert RelativeWeights(0.2).init(TASKS, "main").weights.keys() == set(TASKS)
    s = RelativeWeights({"main": 1.0, "aux1": 0.1, "aux2": 0.2})
    w, _ = decide(s, make_signals(rand_grads(0)))
    assert set(w.weights) == set(TASKS)
    with pytest.raises(TaskMismatchError, match="Missing: \\['aux2'\\]"):
        RelativeWeights({"aux1": 0.2}).init(TASKS, "main")
    with pytest.raises(TaskMismatchError, match="Not a task: \\['oops'\\]"):
        RelativeWeights({"aux1": 0.2, "aux2": 0.2, "oops": 1.0}).init(TASKS, "main")
    with pytest.raises(ValueError, match="weighs 1 by definition"):
        RelativeWeights({"main": 0.5, "aux1": 0.2, "aux2": 0.2}).init(TASKS, "main")
    with pytest.raises(ValueError, match=">= 0"):
        RelativeWeights({"aux1": -0.2})
    with pytest.raises(ValueError, match="beta"):
        RelativeWeights(0.2, beta=1.0)
    with pytest.raises(ValueError, match="every"):
        RelativeWeights(0.2, every=0)
    with pytest.raises(TypeError, match="shares is required"):
        RelativeWeights(None)  # type: ignore[arg-type]


def test_relative_share_and_from_fixed() -> None:
    assert relative_share(0.2, 4.0, 2.0) == pytest.approx(0.1)
    assert relative_share(0.2, 4.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="undefined"):
        relative_share(0.2, 0.0, 1.0)
    with pytest.raises(ValueError, match="norm_aux"):
        relative_share(0.2, 1.0, float("nan"))
    s = RelativeWeights.from_fixed({"main": 2.0, "aux": 0.5}, {"main": 1.0, "aux": 8.0}, beta=0.0)
    assert s.shares == {"aux": pytest.approx(2.0)}
    assert s.beta == 0.0
    with pytest.raises(TaskMismatchError, match="no norm"):
        RelativeWeights.from_fixed({"aux": 0.5}, {"main": 1.0})
    with pytest.raises(ValueError, match="weight is 0"):
        RelativeWeights.from_fixed({"main": 0.0, "aux": 0.5}, {"main": 1.0, "aux": 1.0})


def test_from_fixed_reproduces_the_fixed_weight_on_the_measured_batch() -> None:
    G = rand_grads(9, t=2)
    norms = {"main": float(G[0].norm()), "aux": float(G[1].norm())}
    s = RelativeWeights.from_fixed({"aux": 0.2}, norms)
    w, _ = decide(s, make_signals(G, tasks=("main", "aux")))
    assert w.weights["aux"] == pytest.approx(0.2)


def test_relative_weights_end_to_end_share_from_the_records() -> None:
    model = make_net()
    balancer = Balancer(RelativeWeights({"aux": 0.25}, beta=0.0), shared=model.shared)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(5):
        opt.zero_grad()
        record = balancer.backward(losses_of(model, step, aux_scale=300.0))
        opt.step()
        n = record.grad_norms
        assert n is not None
        assert record.weights["aux"] * n["aux"] / n["main"] == pytest.approx(0.25, rel=1e-5)
    check_applied(RelativeWeights({"aux": 0.25}), steps=3)


def test_relative_weights_training_is_invariant_to_the_aux_scale() -> None:
    # Same model, same data; the auxiliary loss multiplied by 1000 in one run. Its weight is
    # divided by 1000, so every gradient, and so the whole trajectory, is the same.
    runs = []
    for scale in (1.0, 1000.0):
        model = make_net()
        balancer = Balancer(RelativeWeights({"aux": 0.2}, beta=0.9), shared=model.shared)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        weights = []
        for step in range(6):
            opt.zero_grad()
            weights.append(balancer.backward(losses_of(model, step, aux_scale=scale)).weights)
            opt.step()
        runs.append((model, weights))
    (m1, w1), (m2, w2) = runs
    for a, b in zip(w1, w2, strict=True):
        assert b["aux"] == pytest.approx(a["aux"] / 1000.0, rel=1e-4)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ value semantics


@pytest.mark.parametrize("strategy", CONFORMING[::3], ids=repr)
def test_clone_and_pickle_round_trip(strategy) -> None:
    twin = strategy.clone()
    assert repr(twin) == repr(strategy)
    assert twin is not strategy
    s2 = pickle.loads(pickle.dumps(strategy))
    G = rand_grads(70, d=24)  # the size the conformance examples (blocks) assume
    state = strategy.init(TASKS, "main")
    _, state = strategy.update(make_signals(G), state)
    state2 = pickle.loads(pickle.dumps(state))
    a, _ = strategy.update(make_signals(G, step=1), state)
    b, _ = s2.update(make_signals(G, step=1), state2)
    assert as_decision(a).weights == as_decision(b).weights


def test_non_finite_gramian_warns_and_falls_back() -> None:
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    gram = G @ G.T
    gram[1, 1] = float("inf")
    sig = Signals(0, TASKS, "main", {t: torch.tensor(1.0) for t in TASKS}, None, gram)
    with pytest.warns(NonFiniteSignalWarning, match="treated as having no gradient"):
        d, _ = decide(GradientCosine(), sig)
    assert d.shared_weights == {"main": 1.0, "aux1": 0.0, "aux2": 1.0}
    with pytest.warns(NonFiniteSignalWarning):
        w, _ = decide(RelativeWeights(0.2), sig)
    assert w.weights["aux1"] == 0.0
