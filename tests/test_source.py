"""The SignalSource: computes only what a strategy declares, and is the one seam to wrap."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from torch import nn

from auxlab import Balancer
from auxlab._source import SignalSource, StepSignals
from auxlab.signals import per_task_grads, representation_grads
from auxlab.weighting import FixedWeights, Need, NoState, Signals, Strategy, create

TASKS = ("main", "aux1", "aux2")


class Net(nn.Module):
    """A trunk whose output counts the backward passes that go through it."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        layers: list[nn.Module] = [nn.Linear(4, 6), nn.Tanh()]
        if norm:  # a layer the layer-wise Gramian does not cover
            layers.append(nn.LayerNorm(6))
        self.trunk = nn.Sequential(*layers, nn.Linear(6, 5))
        self.heads = nn.ModuleDict({t: nn.Linear(5, 1) for t in TASKS})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
        self.backwards = 0
        self.rep: torch.Tensor | None = None

    def _count(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def losses(self, seed: int = 1) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(8, 4, generator=gen)
        h = self.trunk(x)
        h.register_hook(self._count)
        self.rep = h
        return {t: (self.heads[t](h).squeeze(-1) - i).pow(2).mean() for i, t in enumerate(TASKS)}


def params_of(net: Net) -> list[torch.Tensor]:
    return list(net.trunk.parameters())


@pytest.mark.parametrize("grad_mode", ["auto", "loop", "batched", "layerwise"])
def test_losses_only_needs_no_backward(grad_mode):
    net = Net()
    source = SignalSource(net.trunk, {Need.LOSSES}, grad_mode)
    losses = net.losses()
    got = source.collect(losses, {Need.LOSSES})
    assert net.backwards == 0
    assert (got.grads, got.gramian, got.rep_grads) == (None, None, None)
    assert got.task_grads is None
    assert got.layerwise is None
    assert list(got.losses) == list(TASKS)
    for t in TASKS:
        assert torch.equal(got.losses[t], losses[t].detach())
        assert not got.losses[t].requires_grad
    with pytest.raises(ValueError, match="no per-task signals"):
        got.combine([1.0, 1.0, 1.0])


def test_a_loss_only_strategy_costs_one_backward_through_the_trunk():
    net = Net()
    balancer = Balancer(FixedWeights({"aux1": 0.2, "aux2": 0.5}), shared=net.trunk)
    for step in range(3):
        before = net.backwards
        record = balancer.backward(net.losses(seed=step))
        assert net.backwards - before == 1  # the weighted sum's own backward only
        assert record.grad_norms is None


def test_gradients_only_when_declared():
    net = Net()
    source = SignalSource(net.trunk, {Need.GRADS}, "loop")
    losses = net.losses()
    expected = per_task_grads(list(losses.values()), params_of(net))
    net.backwards = 0
    got = source.collect(losses, {Need.GRADS})
    assert net.backwards == len(TASKS)  # one per task, and nothing else
    assert got.gramian is None
    assert got.grads is not None
    torch.testing.assert_close(got.grads, expected, rtol=0, atol=0)


@pytest.mark.parametrize("grad_mode", ["loop", "batched", "layerwise"])
def test_gramian_only_when_declared_and_its_combination(grad_mode):
    net = Net()
    needs = {Need.GRAMIAN}
    source = SignalSource(net.trunk, needs, grad_mode)
    losses = net.losses()
    flat = per_task_grads(list(losses.values()), params_of(net))
    got = source.collect(losses, needs)
    assert got.grads is None
    assert got.gramian is not None
    assert (got.layerwise is not None) == (grad_mode == "layerwise")
    torch.testing.assert_close(got.gramian, flat @ flat.T)
    coef = [1.0, 0.25, -0.5]
    combined = torch.cat([g.reshape(-1) for g in got.combine(coef)])
    torch.testing.assert_close(combined, torch.tensor(coef) @ flat)
    source.clear()


def test_gradients_and_gramian_together_come_from_the_same_gradients():
    net = Net()
    needs = {Need.GRADS, Need.GRAMIAN}
    source = SignalSource(net.trunk, needs, "layerwise")
    got = source.collect(net.losses(), needs)
    assert got.layerwise is None  # the gradients themselves are asked for: no layer-wise way
    assert got.grads is not None
    torch.testing.assert_close(got.gramian, got.grads @ got.grads.T)


def test_representation_gradients_need_the_representation():
    net = Net()
    source = SignalSource(net.trunk, {Need.REP_GRADS})
    losses = net.losses()
    with pytest.raises(ValueError, match="pass representation=<tensor>"):
        source.collect(losses, {Need.REP_GRADS})
    assert net.rep is not None
    got = source.collect(losses, {Need.REP_GRADS}, representation=net.rep)
    assert got.grads is None
    assert got.gramian is None
    assert got.rep_grads is not None
    expected = representation_grads(list(losses.values()), net.rep)
    torch.testing.assert_close(got.rep_grads, expected, rtol=0, atol=0)


def test_a_bad_grad_mode_is_named():
    with pytest.raises(ValueError, match="grad_mode must be 'auto', 'loop', 'batched' or"):
        SignalSource(None, (), "vmap")  # type: ignore[arg-type]


def test_the_ways_are_reported():
    net = Net()
    source = SignalSource(net.trunk, {Need.GRAMIAN}, "auto")
    assert source.gramian_way is None  # still to be timed
    assert source.grad_way is None
    loop = SignalSource(net.trunk, {Need.GRADS}, "loop")
    assert loop.gramian_way == "jacobian"
    assert loop.grad_way == "loop"


class Doubled(SignalSource):
    """A wrapper at the seam, as a data-parallel reduction would be: it rescales the losses
    and per-task gradients before the strategy decides."""

    def collect(self, losses, needs, representation=None):
        got = super().collect(losses, needs, representation)
        return dataclasses.replace(
            got,
            losses={t: 2 * v for t, v in got.losses.items()},
            grads=None if got.grads is None else 2 * got.grads,
        )


class Seen(Strategy):
    """A strategy that records the signals it receives and weighs every task 1."""

    needs = frozenset({Need.LOSSES, Need.GRADS})
    scale_reaction = "independent"

    def __init__(self) -> None:
        self.signals: list[Signals] = []

    def init(self, tasks, main):
        return NoState()

    def update(self, signals, state):
        self.signals.append(signals)
        return dict.fromkeys(signals.tasks, 1.0), state


def test_a_wrapped_collect_is_what_the_strategy_sees():
    net = Net()
    losses = net.losses()
    flat = per_task_grads(list(losses.values()), params_of(net))
    seen = Seen()
    balancer = Balancer(seen, shared=net.trunk, main="main")
    balancer._source = Doubled(net.trunk, seen.needs, "loop")
    balancer.backward(losses)
    (signals,) = seen.signals
    for t in TASKS:
        torch.testing.assert_close(signals.losses[t], 2 * losses[t].detach())
    torch.testing.assert_close(signals.grads, 2 * flat)


def test_the_layerwise_warning_points_at_the_callers_line():
    net = Net(norm=True)
    balancer = Balancer(create("upgrad"), shared=net.trunk, grad_mode="layerwise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        balancer.backward(net.losses())
    (warning,) = [w for w in caught if "layer-wise Gramian cannot" in str(w.message)]
    assert warning.filename == __file__


def test_step_signals_are_a_frozen_record():
    got = StepSignals(losses={"main": torch.tensor(1.0)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.grads = torch.zeros(1, 1)  # type: ignore[misc]
    assert got.sparse == set()
