"""Tests for auxlab.objective: named losses, list/dict matching, errors and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auxlab import Losses, Objective, TaskMismatchError
from auxlab.objective import LOSSES, METRICS, match_to_tasks, resolve_loss


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class _Named:
    """A stand-in model that declares its output order like a Keras model."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.output_names = names


# ------------------------------------------------------------------------------ dict / list


def test_dict_losses_give_named_scalar_losses() -> None:
    obj = Objective({"main": "mse", "aux": "mae"})
    assert obj.tasks == ("main", "aux")
    assert obj.main == "main"
    out = {"main": torch.tensor([1.0, 2.0]), "aux": torch.tensor([0.0, 4.0])}
    tgt = {"main": torch.tensor([0.0, 0.0]), "aux": torch.tensor([1.0, 1.0])}
    losses = obj(out, tgt)
    assert isinstance(losses, Losses)
    assert losses.main == "main"
    assert list(losses) == ["main", "aux"]
    assert losses["main"].item() == pytest.approx(2.5)
    assert losses["aux"].item() == pytest.approx(2.0)


def test_list_losses_follow_bound_output_names_not_sorted_order() -> None:
    obj = Objective(["mse", "mae"]).bind(_Named(("zeta", "alpha")))
    assert obj.tasks == ("zeta", "alpha")
    assert obj.loss_names == {"zeta": "mse", "alpha": "mae"}
    # main defaults to the first output in declared order (no task named "main").
    assert obj.main == "zeta"
    out = {"zeta": torch.tensor([0.0, 0.0]), "alpha": torch.tensor([0.0, 0.0])}
    tgt = {"zeta": torch.tensor([2.0, 2.0]), "alpha": torch.tensor([2.0, 2.0])}
    losses = obj(out, tgt)
    assert losses["zeta"].item() == pytest.approx(4.0)  # mse
    assert losses["alpha"].item() == pytest.approx(2.0)  # mae


def test_list_losses_follow_outputs_argument_not_sorted_order() -> None:
    obj = Objective(["mse", "mae"], outputs=("zeta", "alpha"))
    assert obj.loss_names == {"zeta": "mse", "alpha": "mae"}
    # Tuple outputs are matched to the declared order as well.
    losses = obj(
        (torch.zeros(3), torch.zeros(3)),
        {"zeta": torch.full((3,), 3.0), "alpha": torch.full((3,), 3.0)},
    )
    assert losses["zeta"].item() == pytest.approx(9.0)
    assert losses["alpha"].item() == pytest.approx(3.0)


def test_single_tensor_output_for_single_task() -> None:
    obj = Objective("mse", outputs=["main"])
    losses = obj(torch.ones(4), {"main": torch.zeros(4)})
    assert losses["main"].item() == pytest.approx(1.0)


def test_single_loss_name_applies_to_every_output() -> None:
    obj = Objective("huber", outputs=["main", "aux", "aux2"])
    assert obj.loss_names == {"main": "huber", "aux": "huber", "aux2": "huber"}
    # Learned from a bound model too.
    obj2 = Objective("mae").bind(_Named(("a", "b")))
    assert obj2.loss_names == {"a": "mae", "b": "mae"}


def test_bind_checks_known_tasks_against_model() -> None:
    obj = Objective({"main": "mse", "aux": "mse"})
    assert obj.bind(_Named(("aux", "main"))) is obj
    with pytest.raises(TaskMismatchError, match="other"):
        obj.bind(_Named(("main", "other")))


def test_bind_without_output_names_is_a_no_op() -> None:
    obj = Objective(["mse", "mae"])
    assert obj.bind(object()) is obj
    assert obj.tasks == ()


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("binary_crossentropy", "bce"),
        ("sparse_categorical_crossentropy", "ce"),
        ("categorical_crossentropy", "ce"),
        ("cross_entropy", "ce"),
        ("mean_squared_error", "mse"),
        ("mean_absolute_error", "mae"),
        ("l1", "mae"),
        ("smooth_l1", "huber"),
    ],
)
def test_keras_aliases(alias: str, name: str) -> None:
    assert resolve_loss(alias) == (name, LOSSES[name])
    obj = Objective({"main": alias})
    assert obj.loss_names == {"main": name}


def test_resolve_loss_callable_and_bad_type() -> None:
    def my_loss(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (p - t).abs().sum()

    assert resolve_loss(my_loss) == ("my_loss", my_loss)
    with pytest.raises(TypeError, match="name or a callable"):
        resolve_loss(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ loss values


def _one(obj_loss: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return Objective({"main": obj_loss})({"main": pred}, {"main": target})["main"]


def test_bce_matches_torch_on_clipped_probabilities() -> None:
    g = _gen(1)
    p = torch.rand(16, generator=g, dtype=torch.float64)
    p[0], p[1] = 0.0, 1.0  # exactly 0 and 1: clipped to [1e-7, 1 - 1e-7] as in Keras
    t = (torch.rand(16, generator=g, dtype=torch.float64) > 0.5).double()
    t[0], t[1] = 1.0, 0.0  # the worst case for the clipped entries
    got = _one("bce", p, t)
    want = F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), t)
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    # Each clipped entry contributes -log(1e-7), not torch's -100 log clamp.
    manual = -(
        t * torch.log(p.clamp(1e-7, 1 - 1e-7)) + (1 - t) * torch.log1p(-p.clamp(1e-7, 1 - 1e-7))
    )
    assert got.item() == pytest.approx(manual.mean().item(), rel=1e-9)
    assert manual[0].item() == pytest.approx(-math.log(1e-7), rel=1e-9)


def test_bce_logits_matches_torch() -> None:
    g = _gen(2)
    z = torch.randn(10, generator=g) * 3
    t = (torch.rand(10, generator=g) > 0.5).float()
    got = _one("bce_logits", z, t)
    assert torch.equal(got, F.binary_cross_entropy_with_logits(z, t))


def test_ce_with_integer_ids_matches_torch() -> None:
    g = _gen(3)
    z = torch.randn(8, 4, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    assert torch.equal(_one("ce", z, y), F.cross_entropy(z, y))
    # (N, 1) integer targets are flattened.
    assert torch.equal(_one("ce", z, y.reshape(-1, 1)), F.cross_entropy(z, y))


def test_ce_with_probabilities_matches_torch() -> None:
    g = _gen(4)
    z = torch.randn(8, 4, generator=g)
    probs = torch.softmax(torch.randn(8, 4, generator=g), dim=1)
    got = _one("ce", z, probs)
    assert torch.equal(got, F.cross_entropy(z, probs))
    manual = -(probs * torch.log_softmax(z, dim=1)).sum(1).mean()
    assert got.item() == pytest.approx(manual.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("name", "fn"),
    [("mse", F.mse_loss), ("mae", F.l1_loss), ("huber", F.huber_loss)],
)
def test_regression_losses_match_torch(name: str, fn: object) -> None:
    g = _gen(5)
    p = torch.randn(12, generator=g) * 2
    t = torch.randn(12, generator=g) * 2
    assert torch.equal(_one(name, p, t), fn(p, t))  # type: ignore[operator]


def test_huber_uses_delta_one() -> None:
    # |error| = 3 > 1: huber = 1 * (3 - 0.5); |error| = 0.5: 0.5 * 0.25
    got = _one("huber", torch.tensor([3.0, 0.5]), torch.tensor([0.0, 0.0]))
    assert got.item() == pytest.approx((2.5 + 0.125) / 2)


@pytest.mark.parametrize("name", ["bce", "bce_logits", "mse", "mae", "huber"])
def test_target_shape_n_and_n1_give_the_same_loss(name: str) -> None:
    g = _gen(6)
    p = torch.rand(7, 1, generator=g)
    t = (torch.rand(7, generator=g) > 0.5).float()
    a = _one(name, p, t)  # (N, 1) output, (N,) target
    b = _one(name, p, t.reshape(7, 1))
    c = _one(name, p.reshape(7), t.reshape(7, 1))  # (N,) output, (N, 1) target
    assert torch.equal(a, b)
    assert torch.equal(a, c)
    # Not the (N, N) broadcast a bare mse_loss would compute.
    want = LOSSES[name](p.reshape(-1), t)
    assert torch.allclose(a, want)


def test_target_with_wrong_number_of_values_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"task 'main'.*\(4,\).*\(5,\)"):
        _one("mse", torch.zeros(4), torch.zeros(5))


def test_loss_gradients_flow() -> None:
    p = torch.tensor([0.5, -0.5], requires_grad=True)
    _one("mse", p, torch.zeros(2)).backward()
    assert torch.allclose(p.grad, torch.tensor([0.5, -0.5]))


# ------------------------------------------------------------------------------ errors


def test_outputs_mismatch_message_lists_both_sides() -> None:
    obj = Objective({"main": "mse", "aux": "mse"})
    with pytest.raises(TaskMismatchError) as exc:
        obj({"main": torch.zeros(2), "other": torch.zeros(2)}, {"main": torch.zeros(2)})
    msg = str(exc.value)
    assert "['main', 'aux']" in msg
    assert "['main', 'other']" in msg
    assert "Missing from the model's outputs: ['aux']" in msg
    assert "['other']" in msg


def test_targets_mismatch_message_lists_both_sides() -> None:
    obj = Objective({"main": "mse", "aux": "mse"})
    out = {"main": torch.zeros(2), "aux": torch.zeros(2)}
    with pytest.raises(TaskMismatchError) as exc:
        obj(out, {"main": torch.zeros(2), "axu": torch.zeros(2)})
    msg = str(exc.value)
    assert "the targets are ['main', 'axu']" in msg
    assert "['main', 'aux']" in msg
    assert "Missing from the targets: ['aux']" in msg
    assert "Not in the objective's tasks: ['axu']" in msg


def test_targets_must_be_a_dict() -> None:
    obj = Objective({"main": "mse"})
    with pytest.raises(TypeError, match="targets must be a dict"):
        obj({"main": torch.zeros(2)}, [torch.zeros(2)])  # type: ignore[arg-type]


def test_loss_dict_mismatching_outputs_argument() -> None:
    with pytest.raises(TaskMismatchError) as exc:
        Objective({"main": "mse", "aux": "mse"}, outputs=["main", "aux2"])
    msg = str(exc.value)
    assert "['main', 'aux2']" in msg
    assert "['main', 'aux']" in msg


def test_loss_dict_is_reordered_to_outputs_argument() -> None:
    obj = Objective({"aux": "mae", "main": "mse"}, outputs=["main", "aux"])
    assert obj.tasks == ("main", "aux")
    assert list(obj.loss_names.items()) == [("main", "mse"), ("aux", "mae")]


def test_list_of_wrong_length() -> None:
    with pytest.raises(TaskMismatchError, match=r"1 losses were given as a list for 2 outputs"):
        Objective(["mse"], outputs=["main", "aux"])
    with pytest.raises(TaskMismatchError, match="3 losses"):
        Objective(["mse", "mse", "mse"]).bind(_Named(("main", "aux")))


def test_model_tuple_of_wrong_length() -> None:
    obj = Objective("mse", outputs=["main", "aux"])
    with pytest.raises(TaskMismatchError, match="model outputs"):
        obj((torch.zeros(2),), {"main": torch.zeros(2), "aux": torch.zeros(2)})


def test_unknown_loss_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown loss 'msee'") as exc:
        Objective({"main": "msee"})
    msg = str(exc.value)
    for name in LOSSES:
        assert name in msg
    assert "binary_crossentropy" in msg


def test_unknown_metric_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown metric 'acc'") as exc:
        Objective({"main": "bce"}, metrics=["acc"])
    for name in METRICS:
        assert name in str(exc.value)


def test_metrics_for_unknown_task() -> None:
    with pytest.raises(TaskMismatchError, match="other"):
        Objective({"main": "bce"}, metrics={"other": ["accuracy"]})


def test_none_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="task 'aux' has no loss"):
        Objective({"main": "mse", "aux": None})  # type: ignore[dict-item]


def test_duplicate_output_names_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        Objective("mse", outputs=["main", "main"])


def test_non_scalar_callable_loss() -> None:
    def per_example(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (p - t) ** 2

    obj = Objective({"main": "mse", "aux": per_example})
    with pytest.raises(ValueError, match=r"task 'aux' returned shape \(3,\)"):
        obj(
            {"main": torch.zeros(3), "aux": torch.zeros(3)},
            {"main": torch.zeros(3), "aux": torch.ones(3)},
        )


def test_scalar_callable_loss_is_used() -> None:
    def total_sq(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ((p - t) ** 2).sum()

    obj = Objective({"main": total_sq})
    assert obj.loss_names == {"main": "total_sq"}
    assert obj({"main": torch.zeros(3)}, {"main": torch.ones(3)})["main"].item() == 3.0


def test_main_not_among_tasks() -> None:
    with pytest.raises(TaskMismatchError, match=r"main task 'primary' is not one of the tasks"):
        Objective({"main": "mse", "aux": "mse"}, main="primary")


def test_main_defaults_and_explicit_main() -> None:
    assert Objective({"aux": "mse", "main": "mse"}).main == "main"
    assert Objective({"b": "mse", "a": "mse"}).main == "b"
    assert Objective({"b": "mse", "a": "mse"}, main="a").main == "a"
    losses = Objective({"b": "mse", "a": "mse"}, main="a")(
        {"a": torch.zeros(1), "b": torch.zeros(1)}, {"a": torch.zeros(1), "b": torch.zeros(1)}
    )
    assert losses.main == "a"


def test_list_without_known_order_and_tuple_outputs() -> None:
    obj = Objective(["mse", "mae"])
    with pytest.raises(ValueError, match="output names are unknown"):
        obj((torch.zeros(2), torch.zeros(2)), {"a": torch.zeros(2), "b": torch.zeros(2)})


def test_match_to_tasks_list_without_order() -> None:
    with pytest.raises(ValueError, match="output order is unknown"):
        match_to_tasks([1.0, 0.2], None, "loss weights")
    with pytest.raises(TypeError, match="dict keyed by task or a list"):
        match_to_tasks("mse", ["main"], "losses")


def test_list_without_known_order_and_dict_outputs() -> None:
    # The docs say a list is matched to `model.output_names` or `outputs=`, and that
    # `outputs` is needed for a list otherwise. A model returning a dict without declaring
    # its order must not have a list of losses silently matched to the dict's key order.
    obj = Objective(["mse", "mae"])
    with pytest.raises(ValueError, match="order is unknown"):
        obj(
            {"zeta": torch.zeros(2), "alpha": torch.zeros(2)},
            {"zeta": torch.ones(2), "alpha": torch.ones(2)},
        )


def test_losses_pickle_keeps_main() -> None:
    import pickle

    losses = Losses({"main": torch.tensor(1.0), "aux": torch.tensor(2.0)}, "aux")
    back = pickle.loads(pickle.dumps(losses))
    assert back.main == "aux"
    assert {k: v.item() for k, v in back.items()} == {"main": 1.0, "aux": 2.0}


def test_repr() -> None:
    r = repr(Objective({"main": "bce_logits", "aux": "mse"}))
    assert r == "Objective(main=bce_logits, aux=mse; main='main')"


# ------------------------------------------------------------------------------ metrics


def _metric(loss: str, metric: str, pred: torch.Tensor, target: torch.Tensor) -> float:
    obj = Objective({"main": loss}, metrics={"main": [metric]})
    return obj.compute_metrics({"main": pred}, {"main": target})[f"main_{metric}"]


def test_accuracy_thresholds_probabilities_at_half_and_logits_at_zero() -> None:
    pred = torch.tensor([0.3, 0.7, -0.2, 0.6, 0.1])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])
    p = pred.numpy()
    t = target.numpy()
    want_prob = float(np.mean((p > 0.5) == (t > 0.5)))
    want_logit = float(np.mean((p > 0.0) == (t > 0.5)))
    assert want_prob != want_logit  # the example separates the two thresholds
    assert _metric("bce", "accuracy", pred, target) == pytest.approx(want_prob)
    assert _metric("bce_logits", "accuracy", pred, target) == pytest.approx(want_logit)


def test_accuracy_for_class_ids() -> None:
    z = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 1, 0])
    assert _metric("ce", "accuracy", z, y) == pytest.approx(0.75)
    assert _metric("ce", "accuracy", z, y.reshape(-1, 1)) == pytest.approx(0.75)


def test_accuracy_for_class_probability_targets() -> None:
    # "ce" accepts class probabilities as targets; Keras resolves "accuracy" with
    # categorical_crossentropy to categorical accuracy (argmax of both).
    z = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    onehot = torch.eye(3)[torch.tensor([0, 1, 1, 0])]
    assert _metric("ce", "accuracy", z, onehot) == pytest.approx(0.75)


def _naive_auc(s: np.ndarray, y: np.ndarray) -> float:
    pos = s[y == 1]
    neg = s[y == 0]
    total = 0.0
    for a in pos:
        for b in neg:
            total += 1.0 if a > b else (0.5 if a == b else 0.0)
    return total / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = np.round(rng.normal(size=60), 1)  # rounding makes many ties
    y = (rng.random(60) < 0.4).astype(np.float64)
    assert len(np.unique(s)) < len(s)
    got = _metric("bce_logits", "auc", torch.from_numpy(s), torch.from_numpy(y))
    assert got == pytest.approx(_naive_auc(s, y), abs=1e-12)


def test_auc_all_ties_is_half_and_single_class_is_nan() -> None:
    assert _metric("bce", "auc", torch.full((6,), 0.3), torch.tensor([0, 1, 0, 1, 1, 0.0])) == 0.5
    assert math.isnan(_metric("bce", "auc", torch.rand(5), torch.ones(5)))


def test_auc_perfect_and_reversed() -> None:
    s = torch.tensor([0.1, 0.2, 0.8, 0.9])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    assert _metric("bce", "auc", s, y) == 1.0
    assert _metric("bce", "auc", -s, y) == 0.0


def test_regression_metrics_match_numpy() -> None:
    rng = np.random.default_rng(7)
    t = rng.normal(size=50)
    p = t + rng.normal(scale=0.5, size=50)
    obj = Objective({"main": "mse"}, metrics=["r2", "mse", "mae"])
    got = obj.compute_metrics(
        {"main": torch.from_numpy(p).reshape(-1, 1)}, {"main": torch.from_numpy(t)}
    )
    assert set(got) == {"main_r2", "main_mse", "main_mae"}
    r2 = 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)
    assert got["main_r2"] == pytest.approx(r2, rel=1e-12)
    assert got["main_mse"] == pytest.approx(np.mean((p - t) ** 2), rel=1e-12)
    assert got["main_mae"] == pytest.approx(np.mean(np.abs(p - t)), rel=1e-12)


def test_r2_of_constant_target_is_nan() -> None:
    assert math.isnan(_metric("mse", "r2", torch.rand(4), torch.ones(4)))


def test_metrics_per_task_and_callable_metric() -> None:
    def worst(p: torch.Tensor, t: torch.Tensor) -> float:
        return float((p - t).abs().max())

    obj = Objective(
        {"main": "mse", "aux": "bce"}, metrics={"main": ["mae", worst], "aux": "accuracy"}
    )
    out = {"main": torch.tensor([1.0, 2.0]), "aux": torch.tensor([0.9, 0.2])}
    tgt = {"main": torch.tensor([1.0, 5.0]), "aux": torch.tensor([1.0, 1.0])}
    got = obj.compute_metrics(out, tgt)
    assert got == {"main_mae": 1.5, "main_worst": 3.0, "aux_accuracy": 0.5}
