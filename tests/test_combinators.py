"""Tests for the weighting combinators: normalized, gated, warmup, chain."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer, schedules
from auxlab.checks import check_strategy
from auxlab.weighting import (
    Chain,
    ChainState,
    Decision,
    EqualWeighting,
    FixedWeights,
    Gated,
    GatedState,
    GradientCosine,
    MetaBalance,
    Need,
    Normalized,
    NormalizedState,
    NoState,
    OLAux,
    PriorityPCGrad,
    RelativeWeights,
    Signals,
    Strategy,
    Warmup,
    WarmupState,
    as_decision,
    chain,
    create,
    gated,
    normalized,
    warmup,
)

TASKS = ("main", "aux1", "aux2")


def rand_grads(seed: int, t: int = 3, d: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, d, generator=g, dtype=torch.float64)


def make_signals(grads: torch.Tensor | None = None, step: int = 0, tasks=TASKS) -> Signals:
    if grads is None:
        grads = rand_grads(step, t=len(tasks))
    losses = {t: torch.tensor(1.0 + i) for i, t in enumerate(tasks)}
    return Signals(step, tuple(tasks), "main", losses, grads, grads @ grads.T)


def decide(strategy: Strategy, signals: Signals, state: Any = None) -> tuple[Decision, Any]:
    if state is None:
        state = strategy.init(signals.tasks, signals.main)
    out, state = strategy.update(signals, state)
    return as_decision(out), state


def fixed(aux1: float = 0.2, aux2: float = 0.5, main: float = 1.0) -> FixedWeights:
    return FixedWeights({"main": main, "aux1": aux1, "aux2": aux2})


class Constant(Strategy):
    """Returns a fixed Decision; records the signals it was given."""

    scale_reaction = "independent"

    def __init__(self, decision: Any = None, needs: frozenset[Need] | None = None) -> None:
        self.decision = decision
        if needs is not None:
            self.needs = needs  # type: ignore[misc]
        self.seen: list[Signals] = []

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Any, NoState]:
        self.seen.append(signals)
        return self.decision, state


class Learnable(Strategy):
    """Learnable weights exp(-s) with the regulariser Σ s (uncertainty-weighting style)."""

    scale_reaction = "adaptive"

    def __init__(self) -> None:
        self.log = nn.Parameter(torch.zeros(3))

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        w = {t: torch.exp(-self.log[i]) for i, t in enumerate(signals.tasks)}
        return Decision(w, extra_loss=self.log.sum()), state

    def parameters(self) -> list[nn.Parameter]:
        return [self.log]


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=0))


# ------------------------------------------------------------------------------ registry


def test_registered_by_name_with_strategies_as_arguments() -> None:
    s = create("normalized", fixed(), mode="main")
    assert isinstance(s, Normalized)
    assert s.mode == "main"
    assert isinstance(create("gated", fixed(), 0.1), Gated)
    assert isinstance(create("warmup", fixed(), steps=10), Warmup)
    c = create("chain", fixed(), GradientCosine())
    assert isinstance(c, Chain)
    assert len(c.strategies) == 2


def test_warmup_combinator_and_schedule_do_not_clash() -> None:
    # Same name, different namespaces: a schedule (step -> float) and a combinator.
    assert schedules.warmup is not warmup
    assert schedules.warmup(0.2, 10)(5) == pytest.approx(0.1)
    s = warmup(FixedWeights({"aux1": 0.2, "aux2": 0.2}), 10)
    d, _ = decide(s, make_signals(step=5))
    assert d.weights["aux1"] == pytest.approx(schedules.warmup(0.2, 10)(5))


def test_arguments_must_be_strategies() -> None:
    for make in (normalized, gated, lambda s: warmup(s, 3), chain):
        with pytest.raises(TypeError, match="takes a Strategy"):
            make({"aux": 0.2})
    with pytest.raises(ValueError, match="at least one"):
        chain()


CONFORMING = [
    normalized(fixed(0.2, 0.2)),
    normalized(fixed(0.2, 0.2), mode="main"),
    normalized(GradientCosine("weighted"), total=1.0),
    normalized(RelativeWeights(0.2), mode="main"),
    normalized(MetaBalance(relax_factor=1.0)),
    gated(fixed(0.2, 0.2)),
    gated(RelativeWeights(0.3), threshold=-0.2),
    gated(PriorityPCGrad()),
    warmup(fixed(0.2, 0.2), 3),
    warmup(RelativeWeights(0.2), 3, start=0.5),
    warmup(MetaBalance(blocks=(10, 14)), 1, start=1.0),
    chain(fixed(0.2, 0.2), GradientCosine()),
    chain(fixed(0.2, 0.2), RelativeWeights(0.5)),
    chain(EqualWeighting(), MetaBalance(blocks=(12, 12))),
    chain(warmup(fixed(0.3, 0.3), 2), gated(OLAux(lr=0.1, horizon=2))),
]


@pytest.mark.parametrize("strategy", CONFORMING, ids=repr)
def test_conformance_suite(strategy) -> None:
    check_strategy(strategy)


@pytest.mark.parametrize(
    ("strategy", "reaction"),
    [
        (normalized(fixed()), "independent"),
        (normalized(RelativeWeights(0.2)), "none"),
        (normalized(RelativeWeights(0.2), mode="main"), "inverse"),
        (normalized(MetaBalance(relax_factor=1.0)), "invariant"),
        (normalized(OLAux()), "none"),
        (gated(fixed()), "independent"),
        (gated(RelativeWeights(0.2)), "inverse"),
        (gated(MetaBalance()), "adaptive"),
        (gated(MetaBalance(relax_factor=1.0)), "none"),
        (warmup(RelativeWeights(0.2), 5), "inverse"),
        (warmup(MetaBalance(relax_factor=1.0), 5), "none"),
        (chain(fixed(), fixed()), "independent"),
        (chain(fixed(), RelativeWeights(0.2)), "inverse"),
        (chain(RelativeWeights(0.2), RelativeWeights(0.1)), "none"),
        (chain(fixed(), MetaBalance()), "adaptive"),
        (chain(fixed(), OLAux()), "none"),
    ],
    ids=repr,
)
def test_scale_reaction_is_derived_from_the_inner_strategies(strategy, reaction) -> None:
    assert strategy.scale_reaction == reaction
    assert strategy.clone().scale_reaction == reaction


def test_needs_are_the_union() -> None:
    assert normalized(fixed()).needs == frozenset({Need.LOSSES})
    assert gated(fixed()).needs == frozenset({Need.LOSSES, Need.GRAMIAN})
    assert warmup(MetaBalance(blocks=(2,)), 3).needs == frozenset({Need.LOSSES, Need.GRADS})
    c = chain(MetaBalance(blocks=(2,)), GradientCosine(), fixed())
    assert c.needs == frozenset({Need.LOSSES, Need.GRADS, Need.GRAMIAN})
    assert gated(MetaBalance(blocks=(2,))).needs == c.needs


def test_inner_strategies_see_only_the_signals_they_declared() -> None:
    losses_only = Constant(dict.fromkeys(TASKS, 1.0))
    grams = Constant(dict.fromkeys(TASKS, 1.0), needs=frozenset({Need.LOSSES, Need.GRAMIAN}))
    s = chain(gated(losses_only), grams)
    decide(s, make_signals())
    # Combinators hold the strategies they were given, so their records show what they got.
    (a,) = losses_only.seen
    (b,) = grams.seen
    assert a.gramian is None
    assert a.grads is None
    assert b.gramian is not None
    assert b.grads is None
    assert a.losses == b.losses


# ------------------------------------------------------------------------------ normalized


def test_normalized_sum_to_the_number_of_tasks() -> None:
    d, state = decide(normalized(fixed(0.2, 0.8)), make_signals())
    assert d.weights == pytest.approx({"main": 1.5, "aux1": 0.3, "aux2": 1.2})
    assert sum(d.weights.values()) == pytest.approx(3.0)
    assert isinstance(state, NormalizedState)


def test_normalized_to_a_given_total_and_to_main() -> None:
    d, _ = decide(normalized(fixed(0.2, 0.8), total=1.0), make_signals())
    assert d.weights == pytest.approx({"main": 0.5, "aux1": 0.1, "aux2": 0.4})
    d, _ = decide(normalized(fixed(0.2, 0.8, main=4.0), mode="main"), make_signals())
    assert d.weights == pytest.approx({"main": 1.0, "aux1": 0.05, "aux2": 0.2})


def test_normalized_rescales_shared_weights_by_their_own_factor() -> None:
    inner = Constant(
        Decision(dict.fromkeys(TASKS, 1.0), shared_weights={"main": 2.0, "aux1": 1.0, "aux2": 1.0})
    )
    d, _ = decide(normalized(inner, total=1.0), make_signals())
    assert d.weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))
    assert d.shared_weights == pytest.approx({"main": 0.5, "aux1": 0.25, "aux2": 0.25})
    d, _ = decide(normalized(inner, mode="main"), make_signals())
    assert d.shared_weights == pytest.approx({"main": 1.0, "aux1": 0.5, "aux2": 0.5})


def test_normalized_leaves_zero_weights_alone() -> None:
    d, _ = decide(normalized(Constant(dict.fromkeys(TASKS, 0.0))), make_signals())
    assert d.weights == dict.fromkeys(TASKS, 0.0)
    zero_main = Constant({"main": 0.0, "aux1": 0.5, "aux2": 0.5})
    d, _ = decide(normalized(zero_main, mode="main"), make_signals())
    assert d.weights == {"main": 0.0, "aux1": 0.5, "aux2": 0.5}


def test_normalized_keeps_learnable_weights_and_extra_loss() -> None:
    inner = Learnable()
    s = normalized(inner, total=1.0)
    d, _ = decide(s, make_signals())
    assert all(isinstance(w, torch.Tensor) and w.requires_grad for w in d.weights.values())
    assert float(sum(d.weights.values()).detach()) == pytest.approx(1.0)
    assert d.extra_loss is not None
    assert s.parameters() == [inner.log]


def test_normalized_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        normalized(fixed(), mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="total applies to mode='sum'"):
        normalized(fixed(), total=2.0, mode="main")
    with pytest.raises(ValueError, match="total"):
        normalized(fixed(), total=0.0)
    with pytest.raises(ValueError, match="cannot be normalized"):
        decide(normalized(MetaBalance(blocks=(6,))), make_signals())


# ------------------------------------------------------------------------------ gated


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [-0.3, 0.0, 0.2])
def test_gated_by_hand(seed: int, threshold: float) -> None:
    G = rand_grads(seed)
    d, state = decide(gated(fixed(0.2, 0.5), threshold), make_signals(G))
    assert d.weights == {"main": 1.0, "aux1": 0.2, "aux2": 0.5}  # heads: ungated
    for i, (t, w) in enumerate((("aux1", 0.2), ("aux2", 0.5)), start=1):
        keep = cos(G[0], G[i]) >= threshold
        assert d.shared_weights[t] == (w if keep else 0.0)
    assert d.shared_weights["main"] == 1.0
    assert isinstance(state, GatedState)


def test_gated_fixed_equals_gradient_cosine_gate() -> None:
    for seed in range(10):
        sig = make_signals(rand_grads(seed))
        a, _ = decide(gated(fixed(0.2, 0.5)), sig)
        b, _ = decide(GradientCosine(weights={"aux1": 0.2, "aux2": 0.5}), sig)
        assert a == b
        c, _ = decide(chain(fixed(0.2, 0.5), GradientCosine()), sig)
        assert c == b


def test_gated_acts_on_shared_weights_and_never_on_main() -> None:
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    d, _ = decide(gated(PriorityPCGrad(), threshold=0.5), make_signals(G))
    # PriorityPCGrad projected aux1 (main coefficient 2); the gate then shuts out aux1
    # (cos -1) and aux2 (cos 0 < 0.5) on the shared block.
    assert d.shared_weights == {"main": 2.0, "aux1": 0.0, "aux2": 0.0}
    d, _ = decide(gated(fixed(), threshold=1.0), make_signals(-G))
    assert d.shared_weights["main"] == 1.0


def test_gated_errors() -> None:
    with pytest.raises(ValueError, match="cosine"):
        gated(fixed(), threshold=1.5)
    with pytest.raises(ValueError, match="cannot be gated"):
        decide(gated(MetaBalance(blocks=(6,))), make_signals())


# ------------------------------------------------------------------------------ warmup


@pytest.mark.parametrize(
    ("step", "factor"), [(0, 0.25), (2, 0.25 + 0.75 * 0.5), (4, 1.0), (100, 1.0)]
)
def test_warmup_ramps_aux_weights_linearly(step: int, factor: float) -> None:
    s = warmup(fixed(0.2, 0.5, main=2.0), steps=4, start=0.25)
    assert s.factor(step) == pytest.approx(factor)
    d, state = decide(s, make_signals(step=step))
    assert d.weights == pytest.approx({"main": 2.0, "aux1": 0.2 * factor, "aux2": 0.5 * factor})
    assert isinstance(state, WarmupState)


def test_warmup_scales_shared_weights_but_not_main() -> None:
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    d, _ = decide(warmup(PriorityPCGrad(), steps=10), make_signals(G, step=5))
    full, _ = decide(PriorityPCGrad(), make_signals(G, step=5))
    assert d.shared_weights["main"] == full.shared_weights["main"]
    assert d.shared_weights["aux1"] == pytest.approx(0.5 * full.shared_weights["aux1"])
    assert d.weights == {"main": 1.0, "aux1": 0.5, "aux2": 0.5}


def test_warmup_with_a_shared_gradient_only_after_the_ramp() -> None:
    s = warmup(MetaBalance(blocks=(6,)), steps=3)
    with pytest.raises(ValueError, match="cannot be warmed up"):
        decide(s, make_signals(step=1))
    d, _ = decide(s, make_signals(step=3))
    assert d.shared_grad is not None


def test_warmup_errors() -> None:
    with pytest.raises(ValueError, match="steps"):
        warmup(fixed(), 0)
    with pytest.raises(ValueError, match=">= 0"):
        warmup(fixed(), 5, start=-0.1)


# ------------------------------------------------------------------------------ chain


def test_chain_multiplies_weights_elementwise() -> None:
    d, state = decide(chain(fixed(0.2, 0.5), fixed(2.0, 4.0, main=3.0)), make_signals())
    assert d.weights == pytest.approx({"main": 3.0, "aux1": 0.4, "aux2": 2.0})
    assert d.shared_weights is None
    assert isinstance(state, ChainState)
    assert len(state.inner) == 2


def test_chain_composes_plain_and_shared_weights() -> None:
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    d, _ = decide(chain(fixed(0.2, 0.5), GradientCosine("weighted")), make_signals(G))
    assert d.weights == {"main": 1.0, "aux1": 0.2, "aux2": 0.5}
    assert d.shared_weights == pytest.approx({"main": 1.0, "aux1": 0.2 / math.sqrt(2), "aux2": 0.0})


def test_chain_passes_one_shared_gradient_when_the_others_leave_it() -> None:
    G = rand_grads(3)
    d, _ = decide(chain(EqualWeighting(), MetaBalance(blocks=(6,))), make_signals(G))
    ref, _ = decide(MetaBalance(blocks=(6,)), make_signals(G))
    torch.testing.assert_close(d.shared_grad, ref.shared_grad)
    with pytest.raises(ValueError, match="cannot rescale"):
        decide(chain(fixed(), MetaBalance(blocks=(6,))), make_signals(G))
    with pytest.raises(ValueError, match="at most one member"):
        decide(chain(MetaBalance(blocks=(6,)), MetaBalance(blocks=(3, 3))), make_signals(G))


def test_chain_adds_extra_losses_and_gathers_parameters() -> None:
    a, b = Learnable(), Learnable()
    s = chain(a, fixed(), b)
    d, _ = decide(s, make_signals())
    assert s.parameters() == [a.log, b.log]
    assert d.extra_loss is not None
    torch.testing.assert_close(d.extra_loss, a.log.sum() + b.log.sum())
    assert isinstance(d.weights["aux1"], torch.Tensor)
    assert float(d.weights["aux1"].detach()) == pytest.approx(0.2)


def test_chain_updates_every_member_with_its_own_state() -> None:
    s = chain(OLAux(lr=0.1, horizon=1), fixed(0.5, 0.5))
    state = s.init(TASKS, "main")
    ol = OLAux(lr=0.1, horizon=1)
    ol_state = ol.init(TASKS, "main")
    for step in range(4):
        sig = make_signals(step=step)
        d, state = decide(s, sig, state)
        w, ol_state = ol.update(sig, ol_state)
        assert d.weights == pytest.approx(
            {t: v * (0.5 if t != "main" else 1.0) for t, v in w.items()}
        )
    assert state.inner[0] == ol_state


# ------------------------------------------------------------------------------ value semantics


@pytest.mark.parametrize("strategy", CONFORMING, ids=repr)
def test_clone_is_independent_and_pickles(strategy) -> None:
    twin = strategy.clone()
    assert repr(twin) == repr(strategy)
    inner = getattr(strategy, "strategy", None) or strategy.strategies[0]
    twin_inner = getattr(twin, "strategy", None) or twin.strategies[0]
    assert twin_inner is not inner
    s2 = pickle.loads(pickle.dumps(strategy))
    sig = make_signals(rand_grads(5, d=24))
    state = strategy.init(TASKS, "main")
    _, state = strategy.update(sig, state)
    state2 = pickle.loads(pickle.dumps(state))
    a, _ = strategy.update(sig, copy.deepcopy(state))
    b, _ = s2.update(sig, state2)
    assert as_decision(a).weights == pytest.approx(as_decision(b).weights)


def test_clone_overrides() -> None:
    s = gated(fixed(), threshold=0.1).clone(threshold=0.3)
    assert s.threshold == 0.3
    c = chain(fixed(), GradientCosine()).clone(strategies=(EqualWeighting(),))
    assert len(c.strategies) == 1


# ------------------------------------------------------------------------------ end to end


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh())
        self.main_head = nn.Linear(4, 1)
        self.aux_head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.shared(x)
        return {"main": self.main_head(h).squeeze(-1), "aux": self.aux_head(h).squeeze(-1)}


def test_end_to_end_with_the_balancer() -> None:
    torch.manual_seed(0)
    model = Net()
    strategy = chain(warmup(FixedWeights({"aux": 0.5}), steps=2), GradientCosine())
    balancer = Balancer(strategy, shared=model.shared)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    shared = list(model.shared.parameters())
    for step in range(4):
        x, y, z = (
            torch.randn(16, 3, generator=g),
            torch.randn(16, generator=g),
            torch.randn(16, generator=g),
        )
        opt.zero_grad()
        out = model(x)
        losses = {"main": F.mse_loss(out["main"], y), "aux": F.mse_loss(out["aux"], z)}
        gm = torch.autograd.grad(losses["main"], shared, retain_graph=True)
        ga = torch.autograd.grad(losses["aux"], shared, retain_graph=True)
        gm = torch.cat([t.reshape(-1) for t in gm])
        ga = torch.cat([t.reshape(-1) for t in ga])
        record = balancer.backward(losses)
        w_aux = 0.5 * min(step, 2) / 2
        assert record.weights == pytest.approx({"main": 1.0, "aux": w_aux})
        gate = 1.0 if cos(gm, ga) > 0 else 0.0
        got = torch.cat([p.grad.reshape(-1) for p in shared])
        torch.testing.assert_close(got, gm + w_aux * gate * ga)
        opt.step()


def test_an_inner_strategy_missing_a_task_is_a_clear_error() -> None:
    from auxlab import TaskMismatchError

    partial = Constant({"main": 1.0, "aux1": 0.5})
    for s in (normalized(partial), gated(partial), warmup(partial, 2), chain(fixed(), partial)):
        with pytest.raises(TaskMismatchError, match="Missing from the weights of Constant"):
            decide(s, make_signals())
