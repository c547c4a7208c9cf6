"""Probes against hand-computed values on a tiny two-layer linear model, and fit integration."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from auxlab import ArrayLoader, Balancer, Objective, fit
from auxlab.diagnostics import (
    Alignment,
    Diagnostics,
    GradientFlow,
    Influence,
    Observation,
    WeightTrace,
    gap_values,
    influence_values,
    layer_groups,
)
from auxlab.weighting import FixedWeights, scheduled


class TwoLayer(nn.Module):
    """h = W x (trunk); main = a·h, aux = b·h (heads). No biases, no activation."""

    output_names = ("main", "aux")

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(2, 2, bias=False)
        self.head_main = nn.Linear(2, 1, bias=False)
        self.head_aux = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.trunk.weight.copy_(torch.eye(2))
            self.head_main.weight.copy_(torch.tensor([[1.0, 1.0]]))  # a
            self.head_aux.weight.copy_(torch.tensor([[1.0, -2.0]]))  # b

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {"main": self.head_main(h).reshape(-1), "aux": self.head_aux(h).reshape(-1)}


def _losses(model: TwoLayer) -> dict[str, torch.Tensor]:
    # x = (1, 2), y_main = 0, y_aux = 1, L = ½ r²: r_main = a·x = 3, r_aux = b·x − 1 = −4.
    out = model(torch.tensor([[1.0, 2.0]]))
    return {
        "main": 0.5 * (out["main"] - 0.0).pow(2).sum(),
        "aux": 0.5 * (out["aux"] - 1).pow(2).sum(),
    }


# Hand-computed, with x = (1, 2), a = (1, 1), b = (1, −2), w_aux = 0.5, lr = 0.1:
#   g_main(W) = r_main·a·xᵀ, ‖·‖ = 3·√2·√5 = 3√10;  g_aux(W) = r_aux·b·xᵀ, ‖·‖ = 4·√5·√5 = 20
#   g_main·g_aux = r_main·r_aux·(a·b)·‖x‖² = 3·(−4)·(−1)·5 = 60  ->  cos = 60 / (60√10) = 1/√10
#   ratio = 0.5·20 / (3√10); dmain = −0.1·0.5·60 = −3
#   u = g_main + 0.5·g_aux: ‖u‖² = 90 + 60 + 100 = 250; share_aux = 0.5·(60 + 200)/250 = 0.52
#   heads: ‖∂L_main/∂a‖ = 3·‖x‖ = 3√5, ‖∂L_aux/∂b‖ = 4√5 (weighted: 0.5·4√5 = 2√5)
HAND = {
    "flow/main/trunk": 3 * math.sqrt(10),
    "flow/aux/trunk": 0.5 * 20,
    "flow/main/head_main": 3 * math.sqrt(5),
    "flow/aux/head_aux": 2 * math.sqrt(5),
    "flow/main/head_aux": 0.0,
    "flow/aux/head_main": 0.0,
    "cos/aux": 1 / math.sqrt(10),
    "conflict/aux": 0.0,
    "norm/main": 3 * math.sqrt(10),
    "norm/aux": 20.0,
    "ratio/aux": 10 / (3 * math.sqrt(10)),
    "dmain/aux": -3.0,
    "share/aux": 0.52,
    "share/main": 0.48,
    "eff_weight/main": 1.0,
    "eff_weight/aux": 0.5,
}


def test_probes_match_hand_computed_values_in_a_users_loop() -> None:
    model = TwoLayer()
    diag = Diagnostics(model, shared=model.trunk, every=1, lr=0.1, main="main")
    balancer = Balancer(FixedWeights({"aux": 0.5}), main="main")
    record = diag.backward(balancer, _losses(model))
    for key, want in HAND.items():
        assert record.extra[key] == pytest.approx(want, rel=1e-6), key
    assert diag.rows[0]["step"] == 0
    # The capture must not disturb the backward: .grad equals the plain weighted sum's.
    ref = TwoLayer()
    ls = _losses(ref)
    (ls["main"] + 0.5 * ls["aux"]).backward()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert p.grad is not None
        assert q.grad is not None
        torch.testing.assert_close(p.grad, q.grad)


def test_capture_update_in_three_calls_equals_backward() -> None:
    model = TwoLayer()
    diag = Diagnostics(model, shared=model.trunk, every=1, lr=0.1)
    balancer = Balancer({"main": 1.0, "aux": 0.5}, main="main")
    losses = _losses(model)
    assert diag.capture(losses)
    record = balancer.backward(losses)
    row = diag.update(record)
    assert row["dmain/aux"] == pytest.approx(-3.0)
    assert row["cos/aux"] == pytest.approx(1 / math.sqrt(10))


def test_only_probe_steps_are_recorded_and_weights_every_step() -> None:
    model = TwoLayer()
    diag = Diagnostics(model, shared=model.trunk, every=3)
    balancer = Balancer(scheduled({"aux": lambda step: float(step)}), main="main")
    for _ in range(7):
        model.zero_grad()
        diag.backward(balancer, _losses(model))
    assert [r["step"] for r in diag.rows] == [0, 3, 6]
    # WeightTrace reads every step: mean aux weight over steps 0..6 is 3.
    means = next(p for p in diag.probes if isinstance(p, WeightTrace)).compute()
    assert means["eff_weight/aux"] == pytest.approx(3.0)
    # The gradient probes saw 3 observations only; a weight of 0 at step 0 gives flow 0 there.
    assert diag.rows[0]["flow/aux/trunk"] == 0.0
    assert diag.rows[1]["flow/aux/trunk"] > 0.0


def test_alignment_conflict_fraction_and_reset() -> None:
    probe = Alignment()
    w = {"main": 1.0, "aux": 1.0}
    pos = torch.tensor([[1.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    neg = torch.tensor([[1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64)
    probe.update(Observation(0, ("main", "aux"), "main", w, gram=pos))
    assert probe.update(Observation(1, ("main", "aux"), "main", w, gram=neg)) == {
        "cos/aux": -0.5,
        "conflict/aux": 1.0,
    }
    out = probe.compute()
    assert out["conflict/aux"] == 0.5
    assert out["cos/aux"] == pytest.approx(0.0)
    probe.reset()
    assert probe.compute() == {}


def test_shared_coefficients_apply_to_shared_layers_only() -> None:
    obs = Observation(
        0,
        ("main", "aux"),
        "main",
        weights={"main": 1.0, "aux": 2.0},
        shared_weights={"main": 1.0, "aux": 0.0},  # a gate closed on the shared block
        layer_sq={"main": {"trunk": 4.0, "head": 1.0}, "aux": {"trunk": 9.0, "head": 1.0}},
        shared_layers=frozenset({"trunk"}),
        gram=torch.tensor([[4.0, -6.0], [-6.0, 9.0]], dtype=torch.float64),
    )
    flow = GradientFlow().update(obs)
    assert flow["flow/aux/trunk"] == 0.0
    assert flow["flow/aux/head"] == 2.0
    inf = Influence().update(obs)
    assert inf["ratio/aux"] == 0.0
    assert inf["share/aux"] == 0.0
    assert inf["share/main"] == 1.0


def test_influence_zero_main_gradient_gives_nan_not_error() -> None:
    obs = Observation(
        0,
        ("main", "aux"),
        "main",
        {"main": 1.0, "aux": 1.0},
        gram=torch.zeros(2, 2, dtype=torch.float64),
    )
    vals = influence_values(obs)
    assert math.isnan(vals["ratio/aux"])
    assert math.isnan(vals["share/aux"])
    assert vals["dmain/aux"] == 0.0


def test_gap_values_sign_follows_the_metric() -> None:
    ep = {
        "val_loss_main": 0.7,
        "train_eval_loss_main": 0.5,
        "train_loss_main": 0.6,
        "val_main_auc": 0.7,
        "train_main_auc": 0.9,
        "val_main_mse": 2.0,
        "train_main_mse": 1.5,
    }
    gaps = gap_values(ep, "main")
    assert gaps["gap/loss_main"] == pytest.approx(0.2)  # evaluated train loss preferred
    assert gaps["gap/main_auc"] == pytest.approx(0.2)
    assert gaps["gap/main_mse"] == pytest.approx(0.5)  # lower is better: val − train


def test_layer_groups_default_and_named() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 1)))
    assert list(layer_groups(model)) == ["0", "2.0"]
    assert [p.shape for p in layer_groups(model, ["2"])["2"]] == [(1, 3), (1,)]
    with pytest.raises(KeyError, match="no module named"):
        layer_groups(model, ["nope"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every"):
        Diagnostics(TwoLayer(), every=0)
    with pytest.raises(ValueError, match="lr"):
        Diagnostics(TwoLayer(), lr=float("nan"))


def test_fit_records_probes_into_history() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 2, generator=g)
    y = {"main": x.sum(1), "aux": x[:, 0]}
    model = TwoLayer()
    objective = Objective({"main": "mse", "aux": "mse"}, metrics={"main": ["r2"]})
    diag = Diagnostics(model, shared=model.trunk, every=2, lr=0.01)
    train = ArrayLoader(x, y, batch_size=8, shuffle=True, seed=0)
    history = fit(
        model,
        train,
        objective,
        diag.balancer({"aux": 0.3}),
        epochs=2,
        optimizer="sgd",
        lr=0.01,
        val=ArrayLoader(x, y, batch_size=48),
        evaluate_train=ArrayLoader(x, y, batch_size=48),
        progress=False,
        callbacks=[diag.on_epoch],
    )
    steps = history.steps
    probed = [s["step"] for s in steps if "cos/aux" in s]
    assert probed == list(range(0, 12, 2))
    assert all("cos/aux" not in s for s in steps if s["step"] % 2)
    ep = history.epochs[-1]
    assert 0.0 <= ep["conflict/aux"] <= 1.0
    assert ep["eff_weight/aux"] == pytest.approx(0.3)
    assert "gap/main_r2" in ep
    assert "gap/loss_main" in ep
    assert ep["gap/loss_main"] == pytest.approx(ep["val_loss_main"] - ep["train_eval_loss_main"])
    # Epoch means are over that epoch's probe steps only (the probes reset per epoch).
    second = [s["ratio/aux"] for s in steps if s["epoch"] == 2 and "ratio/aux" in s]
    assert ep["ratio/aux"] == pytest.approx(sum(second) / len(second))
    assert diag.summary()["norm/main"] > 0
