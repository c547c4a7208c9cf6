"""Tests for the hedge: the functional core ``hedge_update`` and the ``Hedge`` strategy."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer, TaskMismatchError
from auxlab.checks import check_strategy
from auxlab.weighting import Signals, create
from auxlab.weighting._hedge import Hedge, HedgeState, hedge_update


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------------------ hedge_update
# Three instances worked out by hand from the rule
#   α_l <- max(α_l · β^ℓ_l, s/N) for present l, then α <- α / Σ α.


def test_hand_instance_all_present_no_floor() -> None:
    # α = 1/3 each, ℓ = (0, 1, 2), β = 1/2: α·β^ℓ = (1/3, 1/6, 1/12) = (4, 2, 1)/12, all above
    # the floor 0.2/3; normalised: (4, 2, 1)/7.
    new = hedge_update(t64([1 / 3] * 3), t64([0.0, 1.0, 2.0]), beta=0.5, s=0.2)
    assert new.tolist() == pytest.approx([4 / 7, 2 / 7, 1 / 7], rel=1e-15)


def test_hand_instance_floor_binds() -> None:
    # α = (0.5, 0.3, 0.2), ℓ = (0, 10, 1), β = 1/2, s = 0.3 so the floor is 0.1:
    # α·β^ℓ = (0.5, 0.3/1024, 0.1) -> floored (0.5, 0.1, 0.1); normalised (5, 1, 1)/7.
    new = hedge_update(t64([0.5, 0.3, 0.2]), t64([0.0, 10.0, 1.0]), beta=0.5, s=0.3)
    assert new.tolist() == pytest.approx([5 / 7, 1 / 7, 1 / 7], rel=1e-15)


def test_hand_instance_absent_expert() -> None:
    # α = (0.4, 0.4, 0.2), expert 1 absent (its loss NaN is ignored), ℓ = (1, -, 0), β = 1/2,
    # s = 0.2, floor 0.2/3 (N counts the absent expert): (0.2, 0.4, 0.2); sum 0.8 ->
    # (0.25, 0.5, 0.25). The absent expert is neither discounted nor floored.
    present = torch.tensor([True, False, True])
    new = hedge_update(t64([0.4, 0.4, 0.2]), t64([1.0, math.nan, 0.0]), 0.5, 0.2, present)
    assert new.tolist() == pytest.approx([0.25, 0.5, 0.25], rel=1e-15)


def test_absent_expert_keeps_a_floor_below_s_over_n() -> None:
    # An absent expert is not floored: its weight may sit below s/N, as in Aux-Net's code.
    present = torch.tensor([True, False])
    new = hedge_update(t64([0.99, 0.01]), t64([0.0, 5.0]), 0.5, 0.4, present)
    assert new.tolist() == pytest.approx([0.99, 0.01])


def test_paper_defaults_and_huge_losses() -> None:
    # β = 0.99, s = 0.2 (ODL, Aux-Net). A loss of 1e15 discounts to exactly 0, then the floor.
    alpha = t64([0.25] * 4)
    new = hedge_update(alpha, t64([0.0, 1.0, 1e15, 0.5]))
    floor = 0.2 / 4
    raw = [0.25, 0.25 * 0.99, floor, 0.25 * 0.99**0.5]
    assert new.tolist() == pytest.approx([v / sum(raw) for v in raw], rel=1e-12)
    assert float(new.sum()) == pytest.approx(1.0)


def test_no_expert_present_returns_a_copy_and_inputs_are_not_mutated() -> None:
    alpha = t64([0.7, 0.3])
    losses = t64([1.0, 2.0])
    out = hedge_update(alpha, losses, present=torch.tensor([False, False]))
    assert out.tolist() == [0.7, 0.3]
    assert out is not alpha
    hedge_update(alpha, losses)
    assert alpha.tolist() == [0.7, 0.3]
    assert losses.tolist() == [1.0, 2.0]


def test_keeps_dtype_and_device_of_alpha() -> None:
    alpha = torch.full((3,), 1 / 3, dtype=torch.float32)
    out = hedge_update(alpha, t64([0.1, 0.2, 0.3]))
    assert out.dtype == torch.float32
    assert out.device == alpha.device


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": 1.0}, "beta"),
        ({"beta": 0.0}, "beta"),
        ({"s": 0.0}, "s must be"),
        ({"s": 1.0}, "s must be"),
        ({"losses": t64([0.1, -0.1])}, "expert 1 has loss -0.1"),
        ({"losses": t64([math.inf, 0.1])}, "expert 0 has loss inf"),
        ({"losses": t64([0.1, 0.2, 0.3])}, "same length"),
        ({"present": torch.tensor([True])}, "shape of alpha"),
    ],
)
def test_hedge_update_validates(kwargs, match: str) -> None:
    args = {"alpha": t64([0.5, 0.5]), "losses": t64([0.1, 0.2]), **kwargs}
    with pytest.raises(ValueError, match=match):
        hedge_update(**args)


# ------------------------------------------------------------------------------ Hedge


TASKS = ("main", "exit1", "exit2")


def sig(step: int, values, tasks=TASKS) -> Signals:
    losses = {t: torch.tensor(float(v)) for t, v in zip(tasks, values, strict=True)}
    return Signals(step, tuple(tasks), "main", losses)


def naive_hedge(sequence, beta: float, s: float) -> list[list[float]]:
    """ODL's loop in plain Python: use α, then α·β^ℓ, floor s/N, normalise."""
    n = len(sequence[0])
    alpha = [1.0 / n] * n
    used = []
    for losses in sequence:
        used.append(list(alpha))
        alpha = [max(a * beta**ell, s / n) for a, ell in zip(alpha, losses, strict=True)]
        alpha = [a / sum(alpha) for a in alpha]
    return used


def test_registered_and_conforms() -> None:
    assert isinstance(create("hedge"), Hedge)
    assert Hedge.scale_reaction == "none"
    check_strategy(Hedge())
    check_strategy(Hedge(beta=0.5, s=0.05, tasks=["aux1", "aux2"]))


@pytest.mark.parametrize(("beta", "s"), [(0.99, 0.2), (0.5, 0.3), (0.1, 0.01)])
def test_strategy_matches_the_odl_loop(beta: float, s: float) -> None:
    g = torch.Generator().manual_seed(0)
    sequence = (3.0 * torch.rand(30, 3, generator=g)).tolist()
    hedge = Hedge(beta=beta, s=s)
    state = hedge.init(list(TASKS), "main")
    want = naive_hedge(sequence, beta, s)
    for step, values in enumerate(sequence):
        w, state = hedge.update(sig(step, values), state)
        assert [w[t] for t in TASKS] == pytest.approx(want[step], rel=1e-6)
        assert sum(w.values()) == pytest.approx(1.0)


def test_the_worse_expert_loses_weight_down_to_the_floor() -> None:
    hedge = Hedge(beta=0.5, s=0.2)
    state = hedge.init(list(TASKS), "main")
    for step in range(50):
        w, state = hedge.update(sig(step, [0.1, 3.0, 3.0]), state)
    assert isinstance(state, HedgeState)
    floor = 0.2 / 3
    # Both bad experts sit at the floor s/N before normalisation; the total they are divided
    # by is at most 1 + 2·floor and, as the good expert loses a little each step, below 1.
    assert w["exit1"] == pytest.approx(w["exit2"])
    assert floor / (1 + 2 * floor) <= w["exit1"] <= 1.1 * floor
    assert w["main"] > 0.8


def test_restriction_to_some_tasks() -> None:
    hedge = Hedge(beta=0.5, tasks=["exit2", "exit1"])
    state = hedge.init(list(TASKS), "main")
    assert state.experts == ("exit1", "exit2")  # in the order of the tasks
    w, state = hedge.update(sig(0, [100.0, 0.0, 1.0]), state)
    assert w == {"main": 1.0, "exit1": 0.5, "exit2": 0.5}
    w, state = hedge.update(sig(1, [100.0, 0.0, 1.0]), state)
    assert w == pytest.approx({"main": 1.0, "exit1": 2 / 3, "exit2": 1 / 3})
    with pytest.raises(TaskMismatchError):
        Hedge(tasks=["exit9"]).init(list(TASKS), "main")


def test_validation_and_negative_losses() -> None:
    with pytest.raises(ValueError, match="beta"):
        Hedge(beta=1.5)
    with pytest.raises(ValueError, match="s must be"):
        Hedge(s=0.0)
    with pytest.raises(ValueError, match="distinct"):
        Hedge(tasks=["a", "a"])
    hedge = Hedge()
    with pytest.raises(ValueError, match="Hedge at step 0"):
        hedge.update(sig(0, [0.1, -1.0, 0.1]), hedge.init(list(TASKS), "main"))


def test_permutation_pickle_and_clone() -> None:
    sequence = [[0.1, 0.5, 2.0], [0.2, 0.4, 1.0], [0.3, 0.3, 0.3]]
    order = ("exit2", "main", "exit1")
    a, b = Hedge(), Hedge()
    sa, sb = a.init(list(TASKS), "main"), b.init(list(order), "main")
    for step, values in enumerate(sequence):
        wa, sa = a.update(sig(step, values), sa)
        by_task = dict(zip(TASKS, values, strict=True))
        wb, sb = b.update(sig(step, [by_task[t] for t in order], order), sb)
        assert wa == pytest.approx(wb)
    restored = pickle.loads(pickle.dumps(sa))
    assert torch.equal(restored.alpha, sa.alpha)
    assert a.clone().beta == a.beta


class TwoExitNet(nn.Module):
    """A trunk with a classifier after each of its two layers, as in ODL."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.exit1 = nn.Linear(8, 2)
        self.exit2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h1 = self.layer1(x)
        h2 = self.layer2(h1)
        return {"exit1": self.exit1(h1), "main": self.exit2(h2)}


def test_end_to_end_online_with_two_exits() -> None:
    torch.manual_seed(0)
    model = TwoExitNet()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g)
    y = (x[:, 0] > 0).long()
    balancer = Balancer(Hedge(), shared=[*model.layer1.parameters(), *model.layer2.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    alphas = []
    for i in range(40):  # one instance per step, as in online deep learning
        opt.zero_grad()
        out = model(x[i : i + 1])
        losses = {k: F.cross_entropy(v, y[i : i + 1]) for k, v in out.items()}
        record = balancer.backward(losses)
        assert sum(record.weights.values()) == pytest.approx(1.0)
        assert record.total == pytest.approx(
            sum(record.weights[k] * record.losses[k] for k in record.losses), rel=1e-5
        )
        opt.step()
        alphas.append(balancer.state.alpha.clone())
    assert all(torch.isfinite(a).all() for a in alphas)
    assert min(float(a.min()) for a in alphas) >= 0.2 / 2 / (1 + 0.2)  # floor, normalised


def test_sleeping_hedge_by_hand_present_experts_keep_their_total():
    from auxlab.weighting import hedge_update

    alpha = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    losses = torch.tensor([0.0, 1.0, float("nan")], dtype=torch.float64)  # absent: ignored
    present = torch.tensor([True, True, False])
    new = hedge_update(alpha, losses, beta=0.5, s=0.01, present=present, sleeping=True)
    # Discount: [0.5, 0.15]; floor 0.01/3 does not bind; rescale to the old total 0.8.
    expected = [0.5 * 0.8 / 0.65, 0.15 * 0.8 / 0.65, 0.2]
    assert new.tolist() == pytest.approx(expected, rel=1e-12)
    assert new[2] == alpha[2]  # the absent expert is untouched, exactly
    with pytest.raises(ValueError, match="finite losses"):
        hedge_update(alpha, torch.tensor([0.0, float("inf"), 0.0]), present=present, sleeping=True)
