"""The layer-wise Gramian: the same Gramian and the same update as the per-task gradients."""

import copy
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer
from auxlab._layerwise import MAX_CALLS, LayerwiseGramian
from auxlab.signals import per_task_grads
from auxlab.weighting import FixedWeights, GradientCosine, RelativeWeights, create, gated

TASKS = ("main", "aux1", "aux2")


class Twice(nn.Module):
    """One Linear applied twice (a weight used by two calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x):
        return torch.tanh(self.b(torch.tanh(self.b(torch.relu(self.a(x))))))


class Tied(nn.Module):
    """Two Linear modules holding the same weight Parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 8, bias=False)
        self.c.weight = self.b.weight

    def forward(self, x):
        return torch.tanh(self.c(torch.tanh(self.b(torch.relu(self.a(x))))))


class Sequence3d(nn.Module):
    """Linear layers on (batch, time, features) inputs, mean-pooled over time."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 8, bias=False))

    def forward(self, x):
        return self.net(x.unsqueeze(1).expand(-1, 3, -1) * torch.arange(1.0, 4.0)[:, None]).mean(1)


class Frozen(nn.Module):
    """A frozen first layer, a bias-only trainable layer, and a layer no loss uses."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.a.requires_grad_(False)
        self.b = nn.Linear(8, 8)
        self.b.weight.requires_grad_(False)
        self.c = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 8)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class OutsideUse(nn.Module):
    """A Linear whose weight is also used outside its module (F.linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return torch.tanh(self.b(h)) + F.linear(h, self.b.weight)


class SubclassLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2.0


def trunk(kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh())
    if kind == "mlp-inplace":
        return nn.Sequential(
            nn.Linear(6, 16), nn.ReLU(inplace=True), nn.Linear(16, 8, bias=False), nn.Tanh()
        )
    if kind == "wide":  # batch smaller than the layers: the N x N kernel form
        return nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 8), nn.Tanh())
    if kind == "twice":
        return Twice()
    if kind == "tied":
        return Tied()
    if kind == "seq":
        return Sequence3d()
    if kind == "frozen":
        return Frozen()
    if kind == "layernorm":  # an unsupported layer with parameters
        return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 8))
    if kind == "conv":
        return nn.Sequential(
            nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(8, 8)
        )
    if kind == "outside":
        return OutsideUse()
    if kind == "subclass":
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), SubclassLinear(8, 8))
    raise ValueError(kind)


SUPPORTED = ["mlp", "mlp-inplace", "wide", "twice", "tied", "seq", "frozen"]
UNSUPPORTED = ["layernorm", "conv", "outside", "subclass"]


class Net(nn.Module):
    def __init__(self, kind: str, tasks=TASKS, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = trunk(kind)
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in tasks})
        self.double()

    def forward(self, x):
        z = self.trunk(x)
        return {t: h(z).squeeze(-1) for t, h in self.heads.items()}


def losses_of(net, seed=1, batch=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 6, generator=g, dtype=torch.float64)
    out = net(x)
    return {t: ((o - i) ** 2).mean() for i, (t, o) in enumerate(out.items())}


def shared_params(net):
    return [p for p in net.trunk.parameters() if p.requires_grad]


@pytest.mark.parametrize("kind", SUPPORTED)
def test_the_gramian_equals_the_per_task_gradients_gramian(kind):
    net = Net(kind)
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    losses = list(losses_of(net).values())
    got = lw.compute(losses, params)
    assert got is not None
    grads = per_task_grads(losses, params)
    torch.testing.assert_close(got, grads @ grads.T, rtol=1e-10, atol=1e-12)
    # The update for any coefficients is the combination of the per-task gradients.
    coef = torch.tensor([0.7, 0.2, 1.3], dtype=torch.float64)
    combined = dict((id(p), g) for p, g in lw.apply(coef))
    expected = coef @ grads
    offset = 0
    for p in params:
        n = p.numel()
        if id(p) in combined:
            torch.testing.assert_close(
                combined[id(p)].reshape(-1), expected[offset : offset + n], rtol=1e-10, atol=1e-12
            )
        else:  # a parameter no loss reaches
            assert not expected[offset : offset + n].any()
        offset += n


@pytest.mark.parametrize("kind", ["mlp", "wide", "twice", "seq"])
def test_the_batched_output_gradients_give_the_same_gramian(kind):
    net = Net(kind)
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    lw.chosen = "batched"
    losses = list(losses_of(net).values())
    got = lw.compute(losses, params)
    assert got is not None
    assert lw.chosen == "batched"
    grads = per_task_grads(losses, params)
    torch.testing.assert_close(got, grads @ grads.T, rtol=1e-10, atol=1e-12)


def test_float32_gramian_within_float_tolerance():
    net = Net("wide").float()
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 6, generator=g)
    losses = [((o - i) ** 2).mean() for i, o in enumerate(net(x).values())]
    got = lw.compute(losses, params)
    grads = per_task_grads(losses, params)
    torch.testing.assert_close(got, grads @ grads.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", UNSUPPORTED)
def test_an_unsupported_trunk_is_refused(kind):
    net = Net(kind)
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    assert lw.compute(list(losses_of(net).values()), params) is None


def run(net, strategy, mode, steps=3, every=1):
    balancer = Balancer(strategy, shared=net.trunk, grad_mode=mode, every=every)
    records = []
    for step in range(steps):
        net.zero_grad()
        records.append(balancer.backward(losses_of(net, seed=step)))
    return balancer, {n: p.grad for n, p in net.named_parameters()}, records


STRATEGIES = [
    "upgrad",
    "mgda",
    "pcgrad",
    "cagrad",
    "imtl",
    "nash-mtl",
    "aligned-mtl",
    "gradvac",
    "gradnorm",
    "gradient-cosine",
    "metabalance",
    "main-pcgrad",
    "ol-aux",
    "relative",
    "gated",
]


def strategy(name):
    if name == "relative":
        return RelativeWeights({"aux1": 0.2, "aux2": 0.5})
    if name == "gated":
        return gated(FixedWeights({"aux1": 0.3, "aux2": 0.6}))
    return create(name)


@pytest.mark.parametrize("kind", SUPPORTED + UNSUPPORTED)
@pytest.mark.parametrize("name", STRATEGIES)
def test_the_balancer_applies_the_same_update(kind, name):
    ref_net, lw_net = Net(kind), Net(kind)
    _, ref, ref_records = run(ref_net, strategy(name), "loop")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        balancer, got, records = run(lw_net, strategy(name), "layerwise")
    missed = [w for w in caught if "layer-wise Gramian cannot be used" in str(w.message)]
    assert bool(missed) == (kind in UNSUPPORTED)
    assert balancer.gramian_way == "layerwise"
    for n in ref:
        if ref[n] is None:
            assert got[n] is None, n
        else:
            torch.testing.assert_close(got[n], ref[n], rtol=1e-9, atol=1e-12, msg=n)
    for a, b in zip(ref_records, records, strict=True):
        assert a.weights == pytest.approx(b.weights, rel=1e-9)
        assert a.grad_norms == pytest.approx(b.grad_norms, rel=1e-9)
        assert a.cosines == pytest.approx(b.cosines, rel=1e-9, abs=1e-12)
        assert (a.shared_weights is None) == (b.shared_weights is None)
        if a.shared_weights is not None:
            assert a.shared_weights == pytest.approx(b.shared_weights, rel=1e-7, abs=1e-12)


def test_existing_gradients_are_accumulated_onto():
    ref_net, lw_net = Net("mlp"), Net("mlp")
    for net in (ref_net, lw_net):
        for p in net.parameters():
            p.grad = torch.ones_like(p)
    for net, mode in ((ref_net, "loop"), (lw_net, "layerwise")):
        Balancer(create("upgrad"), shared=net.trunk, grad_mode=mode).backward(losses_of(net))
    for (n, a), (_, b) in zip(ref_net.named_parameters(), lw_net.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12, msg=n)


def test_auto_measures_both_ways_then_keeps_one_with_the_same_result():
    ref_net, lw_net = Net("wide"), Net("wide")
    _, ref, _ = run(ref_net, create("upgrad"), "loop", steps=16)
    balancer, got, _ = run(lw_net, create("upgrad"), "auto", steps=16)
    assert balancer.gramian_way in ("layerwise", "jacobian")
    assert len(balancer._source._way_times["layerwise"]) >= 3
    assert (balancer._source._layerwise is not None) == (balancer.gramian_way == "layerwise")
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-9, atol=1e-12, msg=n)


def test_auto_gives_up_on_an_unsupported_trunk():
    net = Net("layernorm")
    balancer, _, _ = run(net, create("upgrad"), "auto", steps=3)
    assert balancer.gramian_way == "jacobian"
    assert balancer._source._layerwise is None
    assert not net.trunk[0]._forward_hooks  # the hooks are gone


def test_strategies_that_read_the_gradients_do_not_use_it():
    net = Net("mlp")
    assert Balancer(create("graddrop"), shared=net.trunk)._source._layerwise is None
    assert Balancer(create("equal"), shared=net.trunk)._source._layerwise is None
    assert Balancer(create("upgrad"), shared=net.trunk, grad_mode="loop")._source._layerwise is None
    # Parameters without their module: nothing to hook.
    assert Balancer(create("upgrad"), shared=net.trunk.parameters())._source._layerwise is None
    assert Balancer(GradientCosine(), shared=net.trunk)._source._layerwise is not None


def test_reused_decisions_between_refreshes_are_the_same():
    ref_net, lw_net = Net("mlp"), Net("mlp")
    _, ref, _ = run(ref_net, create("mgda"), "loop", steps=4, every=2)
    _, got, _ = run(lw_net, create("mgda"), "layerwise", steps=4, every=2)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-9, atol=1e-12, msg=n)


def test_records_are_cleared_and_bounded():
    net = Net("mlp")
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    with torch.no_grad():
        net(torch.randn(4, 6, dtype=torch.float64))
    assert not lw._records  # no graph, nothing recorded
    balancer = Balancer(create("upgrad"), shared=net.trunk, grad_mode="layerwise")
    balancer.backward(losses_of(net))
    assert not balancer._source._layerwise._records
    # Forwards that never reach a Balancer step (an evaluation with gradients on) are
    # dropped past a bound; the next step then uses the exact fallback.
    x = torch.randn(2, 6, dtype=torch.float64)
    for _ in range(MAX_CALLS + 1):
        net(x)
    assert not balancer._source._layerwise._records
    assert balancer._source._layerwise._overflow
    with pytest.warns(RuntimeWarning, match="layer-wise Gramian cannot be used"):
        balancer.backward(losses_of(net))
    balancer.backward(losses_of(net))  # cleared: layer-wise again
    assert balancer._source._layerwise_misses == 1


def test_a_task_that_reaches_no_shared_parameter_is_named():
    net = Net("mlp")
    balancer = Balancer(create("upgrad"), shared=net.trunk, grad_mode="layerwise")
    losses = losses_of(net)
    losses["aux2"] = net.heads["aux2"](torch.randn(3, 8, dtype=torch.float64)).pow(2).mean()
    with pytest.raises(ValueError, match="task 'aux2' does not depend on any of the shared"):
        balancer.backward(losses)


def test_a_hooked_module_copies_and_pickles_without_recording_into_the_original():
    net = Net("mlp")
    balancer = Balancer(create("upgrad"), shared=net.trunk, grad_mode="layerwise")
    clone = copy.deepcopy(net)
    clone(torch.randn(4, 6, dtype=torch.float64))
    assert not balancer._source._layerwise._records
    restored = pickle.loads(pickle.dumps(net))
    restored(torch.randn(4, 6, dtype=torch.float64))
    assert not balancer._source._layerwise._records


def test_the_hooks_go_with_the_balancer():
    net = Net("mlp")
    balancer = Balancer(create("upgrad"), shared=net.trunk, grad_mode="layerwise")
    assert net.trunk[0]._forward_hooks
    del balancer
    import gc

    gc.collect()
    assert not net.trunk[0]._forward_hooks


def test_a_forward_whose_outputs_no_loss_uses_changes_nothing():
    ref_net, lw_net = Net("twice"), Net("twice")
    _, ref, _ = run(ref_net, create("upgrad"), "loop", steps=1)
    balancer = Balancer(create("upgrad"), shared=lw_net.trunk, grad_mode="layerwise")
    lw_net.zero_grad()
    lw_net(torch.randn(5, 6, dtype=torch.float64))  # recorded, but not part of the losses
    balancer.backward(losses_of(lw_net, seed=0))
    assert balancer._source._layerwise_misses == 0
    for n, p in lw_net.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-9, atol=1e-12, msg=n)


def test_outputs_far_larger_than_the_parameters_use_the_per_task_gradients():
    net = Net("mlp")
    params = shared_params(net)
    lw = LayerwiseGramian(net.trunk, params)
    losses = list(losses_of(net, batch=200).values())
    assert lw.compute(losses, params) is None
    assert "larger than their parameters" in lw.reason
