"""Training-side reliability: no silent wrong result, a sentence instead of a traceback.

Every test here failed on the code before the fix (issue 15): the wrong result was returned
quietly, or the error was a raw one from torch or Python.
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from auxlab import Balancer, Objective, TaskMismatchError, schedules
from auxlab.models import (
    HeadlineModel,
    MultiOutputMLP,
    masked,
    masked_metric,
    multilabel_scores,
    small_googlenet,
)
from auxlab.train import ArrayLoader, History, evaluate, fit, load_checkpoint, predict


class TwoHeads(nn.Module):
    """Returns {"main", "aux"} from one linear layer; counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        out = self.lin(x)
        return {"main": out[:, 0], "aux": out[:, 1]}


def data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, (x[:, 0] > 0).float(), x[:, 1].clone()


def loader(n: int = 32, batch_size: int = 8) -> ArrayLoader:
    x, y, ya = data(n)
    return ArrayLoader(x, {"main": y, "aux": ya}, batch_size=batch_size)


def objective(**kwargs: Any) -> Objective:
    return Objective({"main": "bce_logits", "aux": "mse"}, **kwargs)


# -- outputs bound in the wrong order ----------------------------------------------------------


class TupleModel(nn.Module):
    """Declares ("aux", "main") and returns a tuple in that order: aux is 1, main is 2."""

    output_names = ("aux", "main")

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.lin(x).squeeze(-1) * 0.0
        return z + 1.0, z + 2.0


def test_declared_output_order_that_contradicts_the_model_is_an_error() -> None:
    # Before: bind compared name sets only, so main's loss was computed on aux's output.
    obj = Objective("mse", outputs=["main", "aux"])
    with pytest.raises(TaskMismatchError, match=r"\['main', 'aux'\].*\['aux', 'main'\]"):
        obj.bind(TupleModel())


def test_dict_losses_follow_the_models_declared_order() -> None:
    # A dict of losses declares no order: the model's tuple is read in the model's order.
    model = TupleModel()
    obj = Objective({"main": "mse", "aux": "mae"}).bind(model)
    targets = {"main": torch.full((3,), 2.0), "aux": torch.full((3,), 1.0)}
    losses = obj(model(torch.zeros(3, 2)), targets)
    assert {t: float(v.detach()) for t, v in losses.items()} == {"main": 0.0, "aux": 0.0}
    assert obj.tasks == ("aux", "main")


# -- a NaN validation metric -------------------------------------------------------------------


def test_nan_validation_metric_warns_and_falls_back_to_the_validation_loss(
    tmp_path: Path,
) -> None:
    x, _, ya = data()
    one_class = ArrayLoader(x[:8], {"main": torch.ones(8), "aux": ya[:8]}, batch_size=8)
    ckpt = tmp_path / "best.pt"
    with pytest.warns(RuntimeWarning, match=r"val_main_auc.*NaN.*one class.*val_loss_main"):
        history = fit(
            TwoHeads(),
            loader(),
            objective(metrics={"main": ["auc"]}),
            epochs=3,
            val=one_class,
            early_stopping=2,
            checkpoint=ckpt,
            progress=False,
            seed=0,
        )
    # Before: no checkpoint, best_epoch None, and a stop after the patience ran out.
    assert history.best_epoch is not None
    assert history.monitor == "val_loss_main"
    assert ckpt.exists()
    best = min(history["val_loss_main"])
    assert history.epochs[history.best_epoch - 1]["val_loss_main"] == best


# -- a fit that changes nothing ----------------------------------------------------------------


@pytest.mark.parametrize("patience", [0, -1])
def test_early_stopping_must_be_positive(patience: int) -> None:
    with pytest.raises(ValueError, match="early_stopping"):
        fit(TwoHeads(), loader(), objective(), val=loader(), early_stopping=patience)


def test_early_stopping_without_validation_is_an_error() -> None:
    model = TwoHeads()
    with pytest.raises(ValueError, match=r"early_stopping needs.*val="):
        fit(model, loader(), objective(), early_stopping=2, progress=False)
    assert model.calls == 0


def test_empty_loader_is_an_error() -> None:
    with pytest.raises(ValueError, match="no batch"):
        fit(TwoHeads(), [], objective(), progress=False)


def test_a_generator_for_several_epochs_is_an_error() -> None:
    batches = iter(loader())
    with pytest.raises(TypeError, match="used up after one pass"):
        fit(TwoHeads(), batches, objective(), epochs=2, progress=False)


def test_zero_row_batch_is_an_error() -> None:
    x, y, ya = data()
    batches = [(x[:0], {"main": y[:0], "aux": ya[:0]})]
    with pytest.raises(ValueError, match="batch 0 of epoch 1 has 0 rows"):
        fit(TwoHeads(), batches, objective(), progress=False)


def test_every_step_skipped_warns() -> None:
    x, y, ya = data()
    nan_inputs = ArrayLoader(x * math.nan, {"main": y, "aux": ya}, batch_size=8)
    model = TwoHeads()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.warns(RuntimeWarning, match="epoch 1 did not change the model.*skipped"):
        fit(model, nan_inputs, objective(), nan_policy="skip", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_all_weights_zero_warns() -> None:
    with pytest.warns(RuntimeWarning, match="weight of every task was 0"):
        fit(TwoHeads(), loader(), objective(), {"main": 0.0, "aux": 0.0}, progress=False)


# -- targets a loss cannot take ----------------------------------------------------------------


def test_bce_logits_targets_outside_0_1_name_the_task_and_range() -> None:
    x, y, ya = data()
    with pytest.raises(ValueError, match=r"task 'main'.*\[0, 1\].*\[0, 2\]"):
        objective()(TwoHeads()(x), {"main": 2 * y, "aux": ya})


def test_bce_targets_and_outputs_must_be_probabilities() -> None:
    obj = Objective({"p": "bce"})
    with pytest.raises(ValueError, match=r"task 'p'.*\[-1, -1\]"):
        obj({"p": torch.full((4,), 0.5)}, {"p": -torch.ones(4)})
    # Logits given to "bce" were clipped to 0/1 without a word (and a zero gradient).
    with pytest.raises(ValueError, match=r"task 'p'.*probabilities.*bce_logits"):
        obj({"p": torch.tensor([-3.0, 3.0])}, {"p": torch.tensor([0.0, 1.0])})


@pytest.mark.parametrize(("ids", "match"), [([0, 1, 5], r"\[0, 5\]"), ([0, -1, 2], r"\[-1, 2\]")])
def test_ce_class_ids_out_of_range_name_the_task(ids: list[int], match: str) -> None:
    obj = Objective({"digit": "ce"})
    with pytest.raises(ValueError, match=r"task 'digit'.*\[0, 2\] for 3 class.*" + match):
        obj({"digit": torch.zeros(3, 3)}, {"digit": torch.tensor(ids)})


def test_ce_fractional_ids_are_an_error() -> None:
    with pytest.raises(ValueError, match="fractions"):
        Objective({"c": "ce"})({"c": torch.zeros(2, 3)}, {"c": torch.tensor([0.5, 1.0])})


def test_masked_ce_takes_negative_ids_as_missing_but_refuses_large_ones() -> None:
    ce = masked("ce")
    assert torch.isfinite(ce(torch.zeros(3, 3), torch.tensor([0, -1, 2])))
    with pytest.raises(ValueError, match=r"\[0, 2\].*\[0, 7\]"):
        ce(torch.zeros(3, 3), torch.tensor([0, -1, 7]))


def test_transposed_target_is_not_reshaped() -> None:
    # Same number of values, other rows: reshape would have paired outputs with wrong targets.
    obj = Objective({"y": "mse"})
    with pytest.raises(ValueError, match=r"task 'y'.*\(4, 3\).*\(3, 4\)"):
        obj({"y": torch.zeros(4, 3)}, {"y": torch.zeros(3, 4)})


# -- a wrong-shape mask ------------------------------------------------------------------------


def test_masked_loss_with_a_wrong_shape_target() -> None:
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(8,\)"):
        masked("mse")(torch.zeros(4, 3), torch.zeros(8))
    with pytest.raises(ValueError, match=r"one class id per row.*\(8,\)"):
        masked("ce")(torch.zeros(4, 3), torch.zeros(8))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        masked_metric("mae", "mse")(torch.zeros(4, 3), torch.zeros(5))


def test_multi_output_objective_names_the_task_of_a_wrong_shape_target() -> None:
    model = MultiOutputMLP(3, {"y": ("regression", 2), "c": ("multiclass", 3)}, seed=0)
    obj = model.objective()
    out = model(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"task 'y'"):
        obj(out, {"y": torch.zeros(4, 3), "c": torch.zeros(4)})


# -- checkpoints -------------------------------------------------------------------------------


def _good_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    fit(TwoHeads(), loader(), objective(), epochs=1, checkpoint=path, progress=False)
    return path


def _assert_sentence(excinfo: pytest.ExceptionInfo[BaseException], path: Path) -> None:
    err = excinfo.value
    assert str(path) in str(err)
    # torch's own message advises weights_only=False, which would run the file's code.
    assert "weights_only" not in str(err)
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_empty_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty") as excinfo:
        load_checkpoint(path, TwoHeads())
    _assert_sentence(excinfo, path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    good = _good_checkpoint(tmp_path).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not an auxlab checkpoint, or it is cut short") as info:
        load_checkpoint(path, TwoHeads())
    _assert_sentence(info, path)


@pytest.mark.parametrize(
    "content", [b"hello world" * 10, pickle.dumps([1, 2, 3], protocol=2), b"\x1f\x8b" + bytes(30)]
)
def test_foreign_file_as_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "foreign.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an auxlab checkpoint") as excinfo:
        load_checkpoint(path, TwoHeads())
    _assert_sentence(excinfo, path)


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused_without_advice_to_run_it(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(ValueError, match="refused") as excinfo:
        load_checkpoint(path, TwoHeads())
    _assert_sentence(excinfo, path)


def test_checkpoint_for_another_model(tmp_path: Path) -> None:
    path = _good_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="does not fit this model"):
        load_checkpoint(path, nn.Linear(5, 5))


def test_checkpoint_folder_that_cannot_be_created_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    model = TwoHeads()
    with pytest.raises(ValueError, match=r"cannot write the checkpoint.*a-file"):
        fit(model, loader(), objective(), checkpoint=blocker / "run" / "best.pt", progress=False)
    assert model.calls == 0  # before: found only after the first epoch


def test_checkpoint_that_is_a_folder_fails_before_training(tmp_path: Path) -> None:
    model = TwoHeads()
    with pytest.raises(ValueError, match="is a folder"):
        fit(model, loader(), objective(), checkpoint=tmp_path, progress=False)
    assert model.calls == 0


# -- Balancer and predict ----------------------------------------------------------------------


def test_balancer_backward_with_floats() -> None:
    with pytest.raises(TypeError, match=r"'main' is a float.*tensors from the autograd graph"):
        Balancer("equal").backward({"main": 0.5, "aux": 0.2})  # type: ignore[dict-item]


def test_balancer_backward_with_detached_losses() -> None:
    with pytest.raises(ValueError, match="no loss is part of the autograd graph"):
        Balancer("equal").backward({"main": torch.tensor(1.0)})


def test_predict_none() -> None:
    with pytest.raises(TypeError, match=r"data must be batches.*NoneType"):
        predict(TwoHeads(), None)  # type: ignore[arg-type]


def test_predict_numpy_says_convert() -> None:
    with pytest.raises(TypeError, match=r"torch.as_tensor"):
        predict(TwoHeads(), np.zeros((2, 3), dtype=np.float32))  # type: ignore[arg-type]


# -- the same kinds of input on every public function of the training side ---------------------

X, Y, YA = data(16)

BAD_CALLS: list[tuple[str, Any, type[BaseException], str]] = [
    # fit
    ("fit model None", lambda: fit(None, loader(), objective()), TypeError, "nn.Module"),
    ("fit objective str", lambda: fit(TwoHeads(), loader(), "mse"), TypeError, "Objective"),
    (
        "fit epochs 2.5",
        lambda: fit(TwoHeads(), loader(), objective(), epochs=2.5),
        TypeError,
        "epochs",
    ),
    ("fit lr nan", lambda: fit(TwoHeads(), loader(), objective(), lr=math.nan), ValueError, "lr"),
    ("fit lr -1", lambda: fit(TwoHeads(), loader(), objective(), lr=-1.0), ValueError, "lr"),
    ("fit train None", lambda: fit(TwoHeads(), None, objective()), TypeError, "ArrayLoader"),
    ("fit train tensor", lambda: fit(TwoHeads(), X, objective()), TypeError, "batches"),
    (
        "fit batch no targets",
        lambda: fit(TwoHeads(), [X], objective(), progress=False),
        TypeError,
        "inputs, {task: target}",
    ),
    (
        "fit val generator",
        lambda: fit(TwoHeads(), loader(), objective(), epochs=2, val=iter(loader())),
        TypeError,
        "val is an iterator",
    ),
    (
        "fit optimizer int",
        lambda: fit(TwoHeads(), loader(), objective(), optimizer=3),
        TypeError,
        "optimizer",
    ),
    (
        "fit monitor int",
        lambda: fit(TwoHeads(), loader(), objective(), monitor=3),
        TypeError,
        "monitor",
    ),
    ("fit seed str", lambda: fit(TwoHeads(), loader(), objective(), seed="a"), TypeError, "seed"),
    (
        "fit callbacks fn",
        lambda: fit(TwoHeads(), loader(), objective(), callbacks=print),
        TypeError,
        "callbacks",
    ),
    (
        "fit nan_policy",
        lambda: fit(TwoHeads(), loader(), objective(), nan_policy="ignore"),
        ValueError,
        "nan_policy",
    ),
    # evaluate
    ("evaluate None", lambda: evaluate(TwoHeads(), None, objective()), TypeError, "data must be"),
    (
        "evaluate objective None",
        lambda: evaluate(TwoHeads(), loader(), None),
        TypeError,
        "Objective",
    ),
    ("evaluate empty", lambda: evaluate(TwoHeads(), [], objective()), ValueError, "no batches"),
    # ArrayLoader
    ("loader numpy", lambda: ArrayLoader(X.numpy()), TypeError, "torch.as_tensor"),
    (
        "loader list target",
        lambda: ArrayLoader(X, {"main": [1.0] * 16}),
        TypeError,
        "target 'main'",
    ),
    ("loader targets tensor", lambda: ArrayLoader(X, Y), TypeError, "targets must be a dict"),
    ("loader batch 2.5", lambda: ArrayLoader(X, batch_size=2.5), TypeError, "batch_size"),
    ("loader empty dict", lambda: ArrayLoader({}), ValueError, "empty dict"),
    ("loader 0 rows", lambda: ArrayLoader(X[:0]), ValueError, "0 rows"),
    ("loader 0-d", lambda: ArrayLoader(torch.tensor(1.0)), ValueError, "0-d"),
    # Objective
    ("objective None", lambda: Objective(None), TypeError, "losses must be"),
    ("objective empty", lambda: Objective({}), ValueError, "no task"),
    (
        "objective outputs str",
        lambda: Objective("mse", outputs="main"),
        TypeError,
        "outputs=\\['main'\\]",
    ),
    ("objective task int", lambda: Objective({1: "mse"}), TypeError, "task names"),
    ("objective main int", lambda: Objective({"a": "mse"}, main=0), TypeError, "main"),
    (
        "objective target numpy",
        lambda: Objective({"a": "mse"})({"a": X[:, 0]}, {"a": Y.numpy()}),
        TypeError,
        "task 'a'.*tensor",
    ),
    (
        "objective loss float",
        lambda: Objective({"a": lambda p, t: 1.0})({"a": X[:, 0]}, {"a": Y}),
        TypeError,
        "scalar tensor",
    ),
    (
        "objective inf bce target",
        lambda: Objective({"a": "bce_logits"})({"a": X[:, 0]}, {"a": Y * math.inf}),
        ValueError,
        "got inf",
    ),
    # Balancer
    (
        "balancer not a dict",
        lambda: Balancer("equal").backward(torch.ones((), requires_grad=True)),
        TypeError,
        "dict",
    ),
    ("balancer empty", lambda: Balancer("equal").backward({}), ValueError, "no loss"),
    ("balancer grad_mode", lambda: Balancer("equal", grad_mode="fast"), ValueError, "grad_mode"),
    ("balancer tasks str", lambda: Balancer("equal", tasks="main"), TypeError, "tasks"),
    ("balancer tasks dup", lambda: Balancer("equal", tasks=["main", "main"]), ValueError, "unique"),
    ("balancer every nan", lambda: Balancer("equal", every=math.nan), ValueError, "every"),
    ("balancer shared int", lambda: Balancer("pcgrad", shared=3), TypeError, "shared"),
    # History
    ("history int key", lambda: History()[0], TypeError, "key"),
    # models
    (
        "mlp in_features 2.5",
        lambda: MultiOutputMLP(2.5, {"a": "regression"}),
        TypeError,
        "in_features",
    ),
    (
        "mlp hidden -4",
        lambda: MultiOutputMLP(3, {"a": "regression"}, hidden=(-4,)),
        ValueError,
        "hidden",
    ),
    (
        "mlp hidden int",
        lambda: MultiOutputMLP(3, {"a": "regression"}, hidden=4),
        TypeError,
        "hidden",
    ),
    ("mlp size str", lambda: MultiOutputMLP(3, {"a": ("multiclass", "x")}), TypeError, "size"),
    (
        "mlp wrong width",
        lambda: MultiOutputMLP(3, {"a": "regression"})(torch.zeros(2, 4)),
        ValueError,
        r"\(batch, 3\)",
    ),
    ("headline vocab 2.5", lambda: HeadlineModel(vocab_size=2.5), TypeError, "vocab_size"),
    (
        "headline classes 1",
        lambda: HeadlineModel(task="multiclass", num_classes=1),
        ValueError,
        "num_classes",
    ),
    ("googlenet classes 0", lambda: small_googlenet(num_classes=0), ValueError, "num_classes"),
    ("googlenet width nan", lambda: small_googlenet(width=math.nan), ValueError, "width"),
    (
        "multilabel nan",
        lambda: multilabel_scores(np.full((2, 2), np.nan), np.zeros((2, 2))),
        ValueError,
        "NaN",
    ),
    # schedules
    ("schedule value str", lambda: schedules.constant("1"), TypeError, "value must be a number"),
    ("schedule steps None", lambda: schedules.linear(1.0, 0.0, None), TypeError, "steps"),
    ("schedule steps inf", lambda: schedules.cosine(1.0, 0.0, math.inf), ValueError, "steps"),
    (
        "multilabel empty",
        lambda: multilabel_scores(np.zeros((0, 2)), np.zeros((0, 2))),
        ValueError,
        "no rows",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_input_is_a_clear_error(call: Any, error: type[BaseException], match: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch's on zero-element tensors
        with pytest.raises(error, match=match):
            call()


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"\x00\x01binary", "not a History"), (b'{"a": 1}', "needs lists"), (b'{"steps": [', "cut")],
)
def test_history_load_of_a_foreign_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "h.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        History.load(path)


def test_history_keeps_the_monitor(tmp_path: Path) -> None:
    history = fit(TwoHeads(), loader(), objective(), val=loader(), epochs=1, progress=False)
    assert history.monitor == "val_loss_main"
    history.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json").monitor == "val_loss_main"
