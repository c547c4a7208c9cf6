"""Tests for auxlab.Balancer: exact gradients, signals, decisions, NaN policy, every."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer, NonFiniteLossError, Objective, StepRecord, TaskMismatchError
from auxlab.weighting import (
    Decision,
    EqualWeighting,
    FixedWeights,
    Need,
    NoState,
    Signals,
    Strategy,
    create,
)


class Net(nn.Module):
    output_names = ("main", "aux")

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh())
        self.main_head = nn.Linear(4, 1)
        self.aux_head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.shared(x)
        return {"main": self.main_head(h).squeeze(-1), "aux": self.aux_head(h).squeeze(-1)}


def make_net(seed: int = 0) -> Net:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net()


def make_data(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator()
    g.manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, torch.randn(n, generator=g), torch.randn(n, generator=g)


def losses_of(model: Net, seed: int = 0) -> dict[str, torch.Tensor]:
    x, y, z = make_data(seed)
    out = model(x)
    return {"main": F.mse_loss(out["main"], y), "aux": F.mse_loss(out["aux"], z)}


def grads_of(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()
    }


def flat_grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    gs = torch.autograd.grad(loss, list(params), retain_graph=True)
    return torch.cat([g.reshape(-1) for g in gs])


class Probe(Strategy):
    """Records every Signals it gets; returns weights (a function of the step if callable)."""

    needs = frozenset({Need.LOSSES, Need.GRADS, Need.GRAMIAN})

    def __init__(self, weights: Any = None) -> None:
        self.weights = weights
        self.seen: list[Signals] = []

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Any, NoState]:
        self.seen.append(signals)
        w = self.weights
        if w is None:
            w = dict.fromkeys(signals.tasks, 1.0)
        elif callable(w):
            w = w(signals.step)
        return w, state


class LossesOnly(Probe):
    needs = frozenset({Need.LOSSES})


# ------------------------------------------------------------------------------ exactness


@pytest.mark.parametrize(
    ("strategy", "w_main", "w_aux"),
    [
        (FixedWeights({"main": 0.7, "aux": 0.3}), 0.7, 0.3),
        (FixedWeights({"aux": 0.2}), 1.0, 0.2),
        ({"aux": 0.25}, 1.0, 0.25),
        ([0.5, 1.5], 0.5, 1.5),
        ((1.0, 0.0), 1.0, 0.0),
        ("equal", 1.0, 1.0),
        (EqualWeighting(), 1.0, 1.0),
    ],
)
def test_weights_give_exactly_the_hand_written_gradients(
    strategy: Any, w_main: float, w_aux: float
) -> None:
    hand = make_net(1)
    bal_model = copy.deepcopy(hand)
    lh = losses_of(hand)
    (w_main * lh["main"] + w_aux * lh["aux"]).backward()

    balancer = Balancer(strategy)
    record = balancer.backward(losses_of(bal_model))
    assert isinstance(balancer.strategy, (FixedWeights, EqualWeighting))
    assert record.weights == {"main": w_main, "aux": w_aux}
    want, got = grads_of(hand), grads_of(bal_model)
    assert want.keys() == got.keys()
    for name in want:
        assert want[name] is not None
        assert got[name] is not None
        assert torch.allclose(got[name], want[name], rtol=0, atol=1e-7), name
    total = (w_main * lh["main"] + w_aux * lh["aux"]).item()
    assert record.total == pytest.approx(total, rel=1e-6)
    assert record.losses == pytest.approx({t: v.item() for t, v in lh.items()})


def test_balancer_with_objective_losses_and_main() -> None:
    model = make_net(2)
    obj = Objective({"b": "mse", "a": "mse"}, main="a")
    x, y, z = make_data(2)
    h = model(x)
    losses = obj({"b": h["main"], "a": h["aux"]}, {"b": y, "a": z})
    balancer = Balancer({"b": 0.5})  # main "a" is left out and weighs 1
    record = balancer.backward(losses)
    assert balancer.main == "a"
    assert balancer.tasks == ("b", "a")
    assert record.weights == {"b": 0.5, "a": 1.0}


def test_main_must_be_known() -> None:
    model = make_net(0)
    out = losses_of(model)
    ab = {"a": out["main"], "b": out["aux"]}
    with pytest.raises(TaskMismatchError, match="which task is the main one"):
        Balancer("equal").backward(ab)
    with pytest.raises(TaskMismatchError, match="main task 'main' is not one of the tasks"):
        Balancer("equal", main="main").backward(ab)
    rec = Balancer("equal", main="b").backward(ab)
    assert rec.weights == {"a": 1.0, "b": 1.0}


def test_tasks_must_stay_the_same() -> None:
    model = make_net(0)
    balancer = Balancer("equal")
    balancer.backward(losses_of(model))
    losses = losses_of(model)
    with pytest.raises(TaskMismatchError, match="aux2"):
        balancer.backward({"main": losses["main"], "aux2": losses["aux"]})


def test_constructor_argument_errors() -> None:
    with pytest.raises(TypeError, match="must be a Strategy"):
        Balancer(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nan_policy must be 'raise' or 'skip'"):
        Balancer("equal", nan_policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Balancer("equal", every=0)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Balancer("equal", every=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown strategy"):
        Balancer("nope")


# ------------------------------------------------------------------------------ non-finite


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_policy_raise_names_task_and_step(bad: float) -> None:
    model = make_net(0)
    balancer = Balancer({"aux": 0.5})
    balancer.backward(losses_of(model))
    balancer.backward(losses_of(model))
    model.zero_grad(set_to_none=True)
    losses = losses_of(model)
    losses["aux"] = losses["aux"] * bad
    with pytest.raises(NonFiniteLossError) as exc:
        balancer.backward(losses)
    err = exc.value
    assert isinstance(err, FloatingPointError)
    assert err.task == "aux"
    assert err.step == 2
    assert "task 'aux'" in str(err)
    assert "at step 2" in str(err)
    assert str(losses["aux"].item()) in str(err)
    assert all(p.grad is None for p in model.parameters())


def test_nan_policy_skip_counts_and_recovers() -> None:
    model = make_net(3)
    hand = copy.deepcopy(model)
    balancer = Balancer({"aux": 0.5}, nan_policy="skip")
    losses = losses_of(model)
    losses["main"] = losses["main"] + math.nan
    record = balancer.backward(losses)
    assert record.skipped
    assert record.step == 0
    assert record.weights == {}
    assert math.isnan(record.total)
    assert math.isnan(record.losses["main"])
    assert balancer.skipped_steps == 1
    assert balancer.step == 1
    assert all(p.grad is None for p in model.parameters())

    losses = losses_of(model)
    losses["aux"] = losses["aux"] * math.inf
    assert balancer.backward(losses).skipped
    assert balancer.skipped_steps == 2

    record = balancer.backward(losses_of(model))
    assert not record.skipped
    assert record.step == 2
    assert balancer.skipped_steps == 2
    lh = losses_of(hand)
    (lh["main"] + 0.5 * lh["aux"]).backward()
    for (name, p), q in zip(model.named_parameters(), hand.parameters(), strict=True):
        assert p.grad is not None, name
        assert torch.allclose(p.grad, q.grad, rtol=0, atol=1e-7), name


def test_non_scalar_loss_is_rejected() -> None:
    model = make_net(0)
    x, y, z = make_data(0)
    out = model(x)
    losses = {"main": F.mse_loss(out["main"], y), "aux": (out["aux"] - z) ** 2}
    with pytest.raises(ValueError, match="the loss of task 'aux' must be a scalar"):
        Balancer("equal").backward(losses)


# ------------------------------------------------------------------------------ signals


def test_strategy_gets_hand_computed_grads_and_gramian() -> None:
    model = make_net(4)
    hand = copy.deepcopy(model)
    probe = Probe({"main": 1.0, "aux": 0.4})
    balancer = Balancer(probe, shared=model.shared)
    losses = losses_of(model)
    shared = list(model.shared.parameters())
    g_main = flat_grads(losses["main"], shared)
    g_aux = flat_grads(losses["aux"], shared)
    record = balancer.backward(losses)

    (sig,) = probe.seen
    assert sig.step == 0
    assert sig.tasks == ("main", "aux")
    assert sig.main == "main"
    assert sig.losses.keys() == {"main", "aux"}
    assert all(not v.requires_grad for v in sig.losses.values())
    assert torch.equal(sig.losses["main"], losses["main"].detach())
    d = sum(p.numel() for p in shared)
    assert sig.grads is not None
    assert sig.grads.shape == (2, d)
    assert torch.allclose(sig.grads[0], g_main, rtol=0, atol=1e-7)
    assert torch.allclose(sig.grads[1], g_aux, rtol=0, atol=1e-7)
    G = torch.stack([g_main, g_aux])
    assert sig.gramian is not None
    assert torch.allclose(sig.gramian, G @ G.T, rtol=1e-6, atol=1e-7)
    assert sig.rep_grads is None
    assert sig.val_losses is None

    # The final gradients are still those of the weighted sum, computed once.
    lh = losses_of(hand)
    (lh["main"] + 0.4 * lh["aux"]).backward()
    for p, q in zip(model.parameters(), hand.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=0, atol=1e-7)

    # Record: per-task gradient norms and cosines to the main task.
    assert record.grad_norms == pytest.approx(
        {"main": float(g_main.norm()), "aux": float(g_aux.norm())}, rel=1e-5
    )
    cos = float(g_main @ g_aux / (g_main.norm() * g_aux.norm()))
    assert record.cosines == pytest.approx({"main": 1.0, "aux": cos}, rel=1e-5, abs=1e-6)
    keys = set(record.as_dict())
    assert {"grad_norm_main", "grad_norm_aux", "cosine_main", "cosine_aux"} <= keys


def test_gramian_only_strategy_gets_no_grads() -> None:
    class GramOnly(Probe):
        needs = frozenset({Need.LOSSES, Need.GRAMIAN})

    model = make_net(0)
    probe = GramOnly()
    Balancer(probe, shared=model.shared).backward(losses_of(model))
    (sig,) = probe.seen
    assert sig.grads is None
    assert sig.gramian is not None
    assert sig.gramian.shape == (2, 2)


def test_strategy_needing_grads_without_shared_raises_at_construction() -> None:
    with pytest.raises(ValueError, match=r"Probe needs per-task gradients.*pass shared="):
        Balancer(Probe())

    class GramOnly(Probe):
        needs = frozenset({Need.GRAMIAN})

    with pytest.raises(ValueError, match="shared="):
        Balancer(GramOnly(), shared=[])


def test_shared_as_parameter_list_skips_frozen() -> None:
    model = make_net(0)
    first = model.shared[0]
    first.bias.requires_grad_(False)
    probe = Probe()
    balancer = Balancer(probe, shared=model.shared.parameters())
    assert len(balancer.shared) == 3
    balancer.backward(losses_of(model))
    d = sum(p.numel() for p in model.shared.parameters() if p.requires_grad)
    assert probe.seen[0].grads.shape == (2, d)


def test_representation_grads_and_val_losses() -> None:
    class RepProbe(Probe):
        needs = frozenset({Need.LOSSES, Need.REP_GRADS, Need.VAL_LOSSES})

    model = make_net(5)
    x, y, z = make_data(5)
    probe = RepProbe()
    balancer = Balancer(probe)
    h = model.shared(x)
    out_main = model.main_head(h).squeeze(-1)
    out_aux = model.aux_head(h).squeeze(-1)
    losses = {"main": F.mse_loss(out_main, y), "aux": F.mse_loss(out_aux, z)}
    with pytest.raises(ValueError, match="representation="):
        balancer.backward(losses)
    with pytest.raises(ValueError, match="val_losses="):
        balancer.backward(losses, representation=h)
    (r_main,) = torch.autograd.grad(losses["main"], h, retain_graph=True)
    (r_aux,) = torch.autograd.grad(losses["aux"], h, retain_graph=True)
    balancer.backward(losses, representation=h, val_losses={"main": 0.5, "aux": 0.25})
    (sig,) = probe.seen
    assert sig.rep_grads is not None
    assert torch.allclose(sig.rep_grads, torch.stack([r_main.reshape(-1), r_aux.reshape(-1)]))
    assert sig.val_losses == {"main": 0.5, "aux": 0.25}
    assert sig.grads is None


# ------------------------------------------------------------------------------ decisions


class SharedGrad(Strategy):
    needs = frozenset({Need.LOSSES, Need.GRADS})

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        return Decision({"main": 1.0, "aux": 0.5}, shared_grad=self.flat), state


def test_shared_grad_decision_replaces_shared_gradient_only() -> None:
    model = make_net(6)
    hand = copy.deepcopy(model)
    d = sum(p.numel() for p in model.shared.parameters())
    flat = torch.linspace(-1.0, 1.0, d)
    balancer = Balancer(SharedGrad(flat), shared=model.shared)
    record = balancer.backward(losses_of(model))
    assert record.weights == {"main": 1.0, "aux": 0.5}

    got = torch.cat([p.grad.reshape(-1) for p in model.shared.parameters()])
    assert torch.equal(got, flat)

    lh = losses_of(hand)
    (lh["main"] + 0.5 * lh["aux"]).backward()
    for name in ("main_head", "aux_head"):
        for p, q in zip(
            getattr(model, name).parameters(), getattr(hand, name).parameters(), strict=True
        ):
            assert torch.allclose(p.grad, q.grad, rtol=0, atol=1e-7)
    # The heads' gradients are weighted: the aux head gets half of its unweighted gradient.
    (g_unweighted,) = torch.autograd.grad(losses_of(hand)["aux"], hand.aux_head.bias)
    assert torch.allclose(model.aux_head.bias.grad, 0.5 * g_unweighted, atol=1e-7)


def test_shared_grad_accumulates_onto_existing_grads() -> None:
    model = make_net(6)
    d = sum(p.numel() for p in model.shared.parameters())
    for p in model.shared.parameters():
        p.grad = torch.ones_like(p)
    flat = torch.linspace(-1.0, 1.0, d)
    Balancer(SharedGrad(flat), shared=model.shared).backward(losses_of(model))
    got = torch.cat([p.grad.reshape(-1) for p in model.shared.parameters()])
    assert torch.allclose(got, flat + 1.0)


@pytest.mark.parametrize("delta", [-1, 1])
def test_shared_grad_of_wrong_length_is_a_clear_error(delta: int) -> None:
    model = make_net(6)
    d = sum(p.numel() for p in model.shared.parameters())
    balancer = Balancer(SharedGrad(torch.zeros(d + delta)), shared=model.shared)
    with pytest.raises(
        ValueError, match=rf"shape \({d + delta},\); the shared parameters have {d} values"
    ):
        balancer.backward(losses_of(model))


def test_extra_loss_and_learnable_weights() -> None:
    class Learned(Strategy):
        def __init__(self) -> None:
            self.log_w = nn.Parameter(torch.tensor(0.0))

        def parameters(self) -> list[nn.Parameter]:
            return [self.log_w]

        def init(self, tasks: Sequence[str], main: str) -> NoState:
            return NoState()

        def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
            w = torch.exp(self.log_w)
            return Decision({"main": 1.0, "aux": w}, extra_loss=-self.log_w * 3.0), state

    model = make_net(0)
    strategy = Learned()
    balancer = Balancer(strategy)
    assert balancer.parameters() == [strategy.log_w]
    losses = losses_of(model)
    aux = losses["aux"].item()
    record = balancer.backward(losses)
    assert record.weights == {"main": 1.0, "aux": 1.0}
    assert record.total == pytest.approx(losses["main"].item() + aux, rel=1e-6)
    # d/dlog_w (exp(log_w) * L_aux - 3 log_w) at 0 = L_aux - 3
    assert strategy.log_w.grad is not None
    assert strategy.log_w.grad.item() == pytest.approx(aux - 3.0, rel=1e-5)


def test_weights_with_missing_task_raise() -> None:
    model = make_net(0)
    balancer = Balancer(LossesOnly({"main": 1.0}))
    with pytest.raises(TaskMismatchError, match=r"Missing from the strategy's weights: \['aux'\]"):
        balancer.backward(losses_of(model))


def test_weights_with_extra_task_raise() -> None:
    model = make_net(0)
    balancer = Balancer(LossesOnly({"main": 1.0, "aux": 1.0, "aux2": 1.0}))
    with pytest.raises(TaskMismatchError, match="aux2"):
        balancer.backward(losses_of(model))


def test_negative_weight_from_strategy_raises() -> None:
    model = make_net(0)
    balancer = Balancer(LossesOnly({"main": 1.0, "aux": -0.5}))
    with pytest.raises(ValueError, match=r"weight chosen by LossesOnly of task 'aux' is -0\.5"):
        balancer.backward(losses_of(model))


def test_strategy_returning_a_bad_type_raises() -> None:
    model = make_net(0)
    balancer = Balancer(LossesOnly([1.0, 0.5]))
    with pytest.raises(TypeError, match="mapping or a Decision"):
        balancer.backward(losses_of(model))


# ------------------------------------------------------------------------------ every / record


def test_every_three_updates_on_steps_0_3_6() -> None:
    model = make_net(0)
    probe = LossesOnly(lambda step: {"main": 1.0, "aux": 1.0 / (step + 1)})
    balancer = Balancer(probe, every=3)
    records = []
    for _ in range(8):
        model.zero_grad()
        records.append(balancer.backward(losses_of(model)))
    assert [s.step for s in probe.seen] == [0, 3, 6]
    assert [r.step for r in records] == list(range(8))
    want = [1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 1 / 7, 1 / 7]
    assert [r.weights["aux"] for r in records] == pytest.approx(want)
    assert balancer.step == 8


def test_every_computes_grads_only_on_refresh_steps() -> None:
    model = make_net(0)
    probe = Probe()
    balancer = Balancer(probe, shared=model.shared, every=2)
    records = []
    for _ in range(4):
        model.zero_grad()
        records.append(balancer.backward(losses_of(model)))
    assert len(probe.seen) == 2
    assert [r.grad_norms is not None for r in records] == [True, False, True, False]
    assert [r.cosines is not None for r in records] == [True, False, True, False]


def test_every_with_learnable_weights_reuses_them_as_constants() -> None:
    # Uncertainty weighting's weights hang on its own parameters' graph; reusing them on the
    # step after a refresh used to backpropagate through the freed graph ("Trying to backward
    # through the graph a second time").
    model = make_net(0)
    strategy = create("uncertainty")
    balancer = Balancer(strategy, every=2)
    records = []
    for _ in range(4):
        model.zero_grad()
        for p in balancer.parameters():  # created at the first step
            p.grad = None
        records.append(balancer.backward(losses_of(model)))
        params = balancer.parameters()
        assert params
        assert all(p.grad is not None for p in params) == (records[-1].step % 2 == 0)
    assert records[1].weights == records[0].weights
    assert records[3].weights == records[2].weights
    assert all(p.grad is not None for p in model.parameters())


def test_step_record_as_dict_keys() -> None:
    model = make_net(0)
    record = Balancer({"aux": 0.5}).backward(losses_of(model))
    assert isinstance(record, StepRecord)
    assert record.grad_norms is None
    assert record.cosines is None
    d = record.as_dict()
    assert set(d) == {
        "step",
        "total",
        "skipped",
        "loss_main",
        "loss_aux",
        "weight_main",
        "weight_aux",
    }
    assert d["step"] == 0
    assert d["skipped"] is False
    assert d["weight_aux"] == 0.5
    assert d["total"] == pytest.approx(d["loss_main"] + 0.5 * d["loss_aux"], rel=1e-6)


def test_step_record_as_dict_with_grads_and_extra() -> None:
    rec = StepRecord(
        3,
        {"main": 1.0},
        {"main": 1.0},
        1.0,
        grad_norms={"main": 2.0},
        cosines={"main": 1.0},
        extra={"probe_x": 7},
    )
    assert rec.as_dict() == {
        "step": 3,
        "total": 1.0,
        "skipped": False,
        "loss_main": 1.0,
        "weight_main": 1.0,
        "grad_norm_main": 2.0,
        "cosine_main": 1.0,
        "probe_x": 7,
    }


def test_repr() -> None:
    b = Balancer({"aux": 0.2}, main="main", every=2)
    assert repr(b) == "Balancer(FixedWeights(weights={'aux': 0.2}), main='main', every=2)"
