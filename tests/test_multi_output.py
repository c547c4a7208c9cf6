"""Tests for MultiOutputMLP, masked losses and metrics, and the multi-output data loaders."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auxlab import ArrayLoader, Balancer, fit
from auxlab._optional import MissingDependencyError
from auxlab.datasets._multi_output import cars, linnerud, solar_flare, yeast
from auxlab.models._multi_output import (
    MultiOutputMLP,
    Target,
    masked,
    masked_metric,
    multilabel_scores,
)

NAN = float("nan")

# ------------------------------------------------------------------------------ the model


def test_outputs_named_and_shaped_by_target_kind() -> None:
    model = MultiOutputMLP(
        6,
        {
            "price": "regression",
            "xyz": ("regression", 3),
            "flag": "binary",
            "colour": ("multiclass", 4),
            "tags": ("multilabel", 5),
        },
        hidden=(8, 8),
        seed=0,
    )
    out = model(torch.zeros(2, 6))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "price": (2,),
        "xyz": (2, 3),
        "flag": (2,),
        "colour": (2, 4),
        "tags": (2, 5),
    }
    assert model.output_names == ("price", "xyz", "flag", "colour", "tags")
    assert model.losses == {
        "price": "mse",
        "xyz": "mse",
        "flag": "bce_logits",
        "colour": "ce",
        "tags": "bce_logits",
    }


def test_mlm_network_has_283_parameters_and_he_uniform_init() -> None:
    # The Machine Learning Mastery model: Dense(20, he_uniform, relu) -> Dense(3): 283 params.
    model = MultiOutputMLP(10, dict.fromkeys(("y0", "y1", "y2"), "regression"), (20,), seed=0)
    assert sum(p.numel() for p in model.parameters()) == 283
    w = model.trunk[0].weight
    assert w.abs().max() <= math.sqrt(6 / 10)
    assert w.abs().max() > 0.9 * math.sqrt(6 / 10)  # uniform over the whole range
    assert torch.all(model.trunk[0].bias == 0)


def test_seed_is_reproducible_and_local() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = MultiOutputMLP(4, {"a": "regression"}, seed=3, init="torch")
    b = MultiOutputMLP(4, {"a": "regression"}, seed=3, init="torch")
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_bad_targets() -> None:
    with pytest.raises(ValueError, match="unknown target kind"):
        MultiOutputMLP(3, {"a": "ordinal"})
    with pytest.raises(ValueError, match="main target"):
        MultiOutputMLP(3, {"a": "regression"}, main="b")
    with pytest.raises(ValueError, match="multilabel"):
        Target("binary", 2)
    with pytest.raises(TypeError):
        MultiOutputMLP(3, {"a": 3})  # type: ignore[dict-item]


def test_objective_main_and_equal_modes() -> None:
    targets = {"a": "regression", "b": ("multiclass", 3)}
    assert MultiOutputMLP(3, targets).objective().main == "a"
    assert MultiOutputMLP(3, targets, main="b").objective().main == "b"
    assert MultiOutputMLP(3, targets).objective(main="b").main == "b"
    obj = MultiOutputMLP(3, targets).objective(losses={"a": "mae"}, mask_missing=False)
    assert obj.loss_names == {"a": "mae", "b": "ce"}


# ------------------------------------------------------------------------------ masked losses


def test_masked_losses_on_hand_computed_examples() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([0.0, NAN, 1.0, NAN])
    assert masked("mse")(pred, target).item() == pytest.approx((1 + 4) / 2)
    assert masked("mae")(pred, target).item() == pytest.approx((1 + 2) / 2)
    # Huber with delta 1: |1| -> 0.5, |2| -> 1.5.
    assert masked("huber")(pred, target).item() == pytest.approx((0.5 + 1.5) / 2)
    # BCE with logits on the observed entries only.
    logits = torch.tensor([0.0, 2.0, -1.0])
    y = torch.tensor([1.0, NAN, 0.0])
    expected = (math.log(2) + math.log(1 + math.e**-1)) / 2
    assert masked("bce_logits")(logits, y).item() == pytest.approx(expected)
    # Cross-entropy: rows with a NaN or negative class id are skipped.
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    ids = torch.tensor([0, -1, 1])
    ce = F.cross_entropy(z[[0, 2]], ids[[0, 2]]).item()
    assert masked("ce")(z, ids).item() == pytest.approx(ce)
    assert masked("ce")(z, torch.tensor([0.0, NAN, 1.0])).item() == pytest.approx(ce)
    # Without missing values the masked loss is the plain loss.
    full = torch.tensor([0.5, 1.0, 2.0, 3.5])
    assert masked("mse")(pred, full).item() == pytest.approx(F.mse_loss(pred, full).item())


def test_task_with_no_targets_contributes_zero_with_a_graph() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    for name, target in (
        ("mse", torch.full((2, 2), NAN)),
        ("ce", torch.tensor([-1, -1])),
        ("bce_logits", torch.full((2, 2), NAN)),
    ):
        loss = masked(name)(pred, target)
        assert loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
        assert pred.grad is not None
        assert torch.all(pred.grad == 0)
        pred.grad = None


def test_masked_entries_get_no_gradient() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    masked("mse")(pred, torch.tensor([0.0, NAN, 5.0])).backward()
    # d/dp mean((p - t)^2) over 2 observed values = (p - t).
    assert pred.grad is not None
    assert pred.grad.tolist() == pytest.approx([1.0, 0.0, -2.0])


def test_masked_keeps_the_name_so_metrics_resolve() -> None:
    assert masked("ce").__name__ == "ce"
    assert masked("mean_squared_error").__name__ == "mse"
    with pytest.raises(TypeError):
        masked(F.mse_loss)  # type: ignore[arg-type]


def test_objective_with_missing_targets_gives_finite_losses_and_balancer_steps() -> None:
    model = MultiOutputMLP(3, {"a": "regression", "b": "regression", "c": ("multiclass", 3)})
    obj = model.objective()
    x = torch.randn(4, 3)
    targets = {
        "a": torch.tensor([1.0, NAN, 0.0, 2.0]),
        "b": torch.full((4,), NAN),  # no target for b in this batch
        "c": torch.tensor([0, 2, -1, 1]),
    }
    losses = obj(model(x), targets)
    assert losses["b"].item() == 0.0
    assert all(math.isfinite(v.item()) for v in losses.values())
    record = Balancer("equal").backward(losses)
    assert math.isfinite(record.total)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------ metrics


def test_masked_metrics_on_hand_computed_examples() -> None:
    pred = torch.tensor([1.0, 5.0, 3.0, 0.0])
    target = torch.tensor([2.0, NAN, 1.0, 0.0])
    assert masked_metric("mae", "mse")(pred, target) == pytest.approx((1 + 2 + 0) / 3)
    assert masked_metric("mse", "mse")(pred, target) == pytest.approx((1 + 4 + 0) / 3)
    assert masked_metric("rmse", "mse")(pred, target) == pytest.approx(math.sqrt(5 / 3))
    # R^2 on the observed (1, 3, 0) vs (2, 1, 0): ss_res 5, mean 1, ss_tot 1 + 0 + 1 = 2.
    assert masked_metric("r2", "mse")(pred, target) == pytest.approx(1 - 5 / 2)
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    assert masked_metric("accuracy", "ce")(logits, torch.tensor([1, -1, 0])) == 0.5
    assert masked_metric("accuracy", "bce_logits")(
        torch.tensor([0.5, -0.5, 2.0]), torch.tensor([1.0, 1.0, NAN])
    ) == pytest.approx(0.5)
    assert math.isnan(masked_metric("mae", "mse")(pred, torch.full((4,), NAN)))
    with pytest.raises(ValueError, match="unknown metric"):
        masked_metric("f1", "bce_logits")


def test_objective_metrics_follow_the_masks() -> None:
    model = MultiOutputMLP(2, {"a": "regression", "c": ("multiclass", 2)})
    obj = model.objective()
    outputs = {"a": torch.tensor([1.0, 2.0, 9.0]), "c": torch.tensor([[1.0, 0], [0, 1], [1, 0]])}
    targets = {"a": torch.tensor([1.0, 4.0, NAN]), "c": torch.tensor([0, 0, -1])}
    m = obj.compute_metrics(outputs, targets)
    assert m["a_mae"] == pytest.approx(1.0)
    assert m["c_accuracy"] == pytest.approx(0.5)


def test_multilabel_scores_hand_example_and_against_scikit_learn() -> None:
    y = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0]])
    p = np.array([[0.9, 0.1, 0.2], [0.2, 0.7, 0.8], [0.6, 0.1, 0.1], [0.8, 0.9, 0.3]])
    s = multilabel_scores(p, y)
    # Predicted [[1,0,0],[0,1,1],[1,0,0],[1,1,0]]: 2 wrong of 12 labels; rows 2 and 4 right.
    assert s["hamming_loss"] == pytest.approx(2 / 12)
    assert s["subset_accuracy"] == pytest.approx(0.5)
    # tp 5, fp 1, fn 1 -> micro F1 10/12; per label F1 (4/5, 1, 2/3).
    assert s["micro_f1"] == pytest.approx(10 / 12)
    assert s["macro_f1"] == pytest.approx((0.8 + 1.0 + 2 / 3) / 3)
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 2, (50, 6))
    yy[:, 5] = 0  # a label with no positives
    pp = rng.random((50, 6))
    s = multilabel_scores(pp, yy)
    hard = (pp > 0.5).astype(int)
    assert s["hamming_loss"] == pytest.approx(metrics.hamming_loss(yy, hard))
    assert s["subset_accuracy"] == pytest.approx(metrics.accuracy_score(yy, hard))
    assert s["micro_f1"] == pytest.approx(metrics.f1_score(yy, hard, average="micro"))
    assert s["macro_f1"] == pytest.approx(
        metrics.f1_score(yy, hard, average="macro", zero_division=0)
    )


def test_fit_on_two_regression_targets_and_a_class() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    targets = {
        "a": x[:, 0] * 2.0,
        "b": x[:, 1] - x[:, 2],
        "c": (x[:, 3] > 0).long(),
    }
    targets["a"][::5] = NAN  # some missing targets
    model = MultiOutputMLP(4, {"a": "regression", "b": "regression", "c": ("multiclass", 2)})
    obj = model.objective()
    history = fit(
        model,
        ArrayLoader(x, targets, batch_size=32, shuffle=True, seed=0),
        obj,
        "equal",
        epochs=40,
        lr=1e-2,
        val=ArrayLoader(x, targets, batch_size=128),
        progress=False,
        seed=0,
    )
    last = history.epochs[-1]
    assert last["val_a_r2"] > 0.9
    assert last["val_b_r2"] > 0.9
    assert last["val_c_accuracy"] > 0.9


# ------------------------------------------------------------------------------ loaders

requires_river = pytest.mark.skipif(
    importlib.util.find_spec("river") is None,
    reason="river is not installed (pip install river; the 'data' extra)",
)
requires_vega = pytest.mark.skipif(
    importlib.util.find_spec("vega_datasets") is None,
    reason="vega_datasets is not installed (pip install vega_datasets; the 'data' extra)",
)
requires_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (pip install scikit-learn; the 'data' extra)",
)


@requires_river
def test_solar_flare_loader() -> None:
    d = solar_flare()
    assert d.X.shape == (1066, 23)
    assert d.Y.shape == (1066, 3)
    assert d.target_names == ("c-class-flares", "m-class-flares", "x-class-flares")
    assert d.X.dtype == np.float32
    assert not np.isnan(d.X).any()
    assert not np.isnan(d.Y).any()
    # Flare counts: integers, mostly zero; maxima 8, 5, 2.
    assert np.all(np.round(d.Y) == d.Y)
    assert d.Y.max(0).tolist() == [8, 5, 2]
    assert (d.Y == 0).mean(0) == pytest.approx([0.829, 0.966, 0.995], abs=1e-3)
    # One-hot blocks sum to one per row.
    zurich = [i for i, n in enumerate(d.feature_names) if n.startswith("zurich-class=")]
    assert np.all(d.X[:, zurich].sum(1) == 1)
    # First row (river's order): zurich H, spot size A, distribution X -> no flares.
    row = dict(zip(d.feature_names, d.X[0], strict=True))
    assert row["zurich-class=H"] == 1
    assert row["largest-spot-size=A"] == 1
    assert row["evolution"] == 3


@requires_river
def test_yeast_loader() -> None:
    d = yeast()
    assert d.X.shape == (2417, 103)
    assert d.Y.shape == (2417, 14)
    assert d.kind == "multilabel"
    assert set(np.unique(d.Y)) == {0.0, 1.0}
    assert d.Y.sum(1).mean() == pytest.approx(4.237, abs=1e-3)  # MULAN: label cardinality 4.24
    assert d.Y[0].nonzero()[0].tolist() == [6, 7, 11, 12]  # Class7, 8, 12, 13
    assert d.X[0, 0] == pytest.approx(0.004168)


@requires_vega
def test_cars_loader_keeps_missing_targets_as_nan() -> None:
    d = cars()
    assert d.X.shape == (406, 7)
    assert d.Y.shape == (406, 3)
    assert d.target_names == ("Miles_per_Gallon", "Acceleration", "Horsepower")
    assert np.isnan(d.Y).sum(0).tolist() == [8, 0, 6]
    assert d.Y[0].tolist() == [18.0, 12.0, 130.0]  # chevrolet chevelle malibu
    assert d.feature_names[:4] == ("Cylinders", "Displacement", "Weight_in_lbs", "Year")
    assert d.X[:, 3].min() == 70
    assert d.X[:, 3].max() == 82
    assert len(cars(drop_missing=True)) == 392
    # A missing feature drops the row: horsepower as a feature loses its 6 missing rows.
    assert cars(targets=["Miles_per_Gallon"]).X.shape == (400, 9)
    with pytest.raises(ValueError, match="targets must be"):
        cars(targets=["Name"])


@requires_sklearn
def test_linnerud_loader() -> None:
    d = linnerud()
    assert d.X.shape == (20, 3)
    assert d.Y.shape == (20, 3)
    assert d.target_names == ("Weight", "Waist", "Pulse")
    assert d.X[0].tolist() == [5.0, 162.0, 60.0]
    assert d.Y[0].tolist() == [191.0, 36.0, 50.0]


def test_missing_package_names_the_data_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    monkeypatch.setitem(sys.modules, "vega_datasets", None)
    with pytest.raises(MissingDependencyError, match=r"auxlab\[data\]"):
        solar_flare()
    with pytest.raises(MissingDependencyError, match=r"auxlab\[data\]"):
        cars()


def test_masked_binary_task_is_scored_by_auc_over_its_observed_targets() -> None:
    # Was: ValueError "unknown metric 'auc'" for a masked task.
    from auxlab._metrics import roc_auc

    model = MultiOutputMLP(3, {"spam": "binary", "score": "regression"}, (8,), seed=0)
    objective = model.objective(metrics={"spam": ["auc"], "score": ["mae"]})
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    spam = (x[:, 0] > 0).float()
    spam[::4] = float("nan")  # missing labels
    out = model(x)
    got = objective.compute_metrics(out, {"spam": spam, "score": x[:, 1]})
    seen = ~torch.isnan(spam)
    want = roc_auc(spam[seen].numpy(), out["spam"].detach().reshape(-1)[seen].numpy())
    assert got["spam_auc"] == pytest.approx(want)
    model2 = MultiOutputMLP(3, {"kind": ("multiclass", 3)}, (8,), seed=0)
    with pytest.raises(ValueError, match="binary targets"):
        model2.objective(metrics={"kind": ["auc"]})
