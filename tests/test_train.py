"""Tests for auxlab.train: fit vs a hand-written loop, validation, early stopping,
checkpoints, predict, optimizers, History, RNG isolation and ArrayLoader."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from auxlab import (
    ArrayLoader,
    Balancer,
    History,
    Objective,
    evaluate,
    fit,
    load_checkpoint,
    make_optimizer,
    predict,
    train_step,
)
from auxlab.models import HeadlineModel
from auxlab.weighting import NoState, Signals, Strategy

TINY = {"vocab_size": 50, "seq_len": 6, "embed_dim": 8, "lstm_units": 4, "hidden": 8}


def tiny_model(seed: int = 0) -> HeadlineModel:
    return HeadlineModel(**TINY, seed=seed)


def headline_data(
    n: int = 24, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator()
    g.manual_seed(seed)
    inputs = {
        "tokens": torch.randint(0, 50, (n, 6), generator=g),
        "side": torch.randn(n, 5, generator=g),
    }
    targets = {
        "main": (torch.rand(n, generator=g) > 0.5).float(),
        "aux": (torch.rand(n, generator=g) > 0.5).float(),
    }
    return inputs, targets


def loader(n: int = 24, seed: int = 0, shuffle: bool = True, batch_size: int = 8) -> ArrayLoader:
    x, y = headline_data(n, seed)
    return ArrayLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_params(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.allclose(pa[k], pb[k], rtol=0, atol=atol), k


def differs(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = params_of(a), params_of(b)
    return any(not torch.equal(pa[k], pb[k]) for k in pa)


class RegNet(nn.Module):
    """Two linear heads on a 2-feature input, zero-initialised; takes one tensor."""

    output_names = ("main", "aux")

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Linear(2, 1)
        self.aux = nn.Linear(2, 1)
        for p in self.parameters():
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"main": self.main(x).squeeze(-1), "aux": self.aux(x).squeeze(-1)}


def reg_data(sign: float = 1.0, n: int = 16) -> ArrayLoader:
    g = torch.Generator()
    g.manual_seed(11)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor([1.5, -2.0]) + 0.5
    return ArrayLoader(x, {"main": sign * y, "aux": sign * y}, batch_size=n)


class Regularised(Strategy):
    """Fixed weights plus a learnable parameter pulled to 1 by an extra loss."""

    def __init__(self) -> None:
        self.p = nn.Parameter(torch.tensor(0.0))

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[object, NoState]:
        from auxlab.weighting import Decision

        w = dict.fromkeys(signals.tasks, 1.0)
        return Decision(w, extra_loss=(self.p - 1.0) ** 2), state

    def parameters(self) -> list[nn.Parameter]:
        return [self.p]


# ------------------------------------------------------------------------------ fit == loop


def test_fit_equals_hand_written_loop() -> None:
    hand, auto = tiny_model(0), tiny_model(0)
    assert_same_params(hand, auto, atol=0)

    objective = Objective(hand.loss).bind(hand)
    balancer = Balancer({"aux": 0.2})
    opt = torch.optim.Adam(hand.parameters(), lr=1e-2)
    data = loader(seed=3)
    hand_totals = []
    for _ in range(2):
        hand.train()
        for inputs, targets in data:
            opt.zero_grad(set_to_none=True)
            record = balancer.backward(objective(hand(**inputs), targets))
            opt.step()
            hand_totals.append(record.total)

    history = fit(
        auto,
        loader(seed=3),
        Objective(auto.loss),
        {"aux": 0.2},
        epochs=2,
        optimizer="adam",
        lr=1e-2,
        progress=False,
    )
    assert differs(hand, tiny_model(0))  # training did something
    assert_same_params(hand, auto, atol=1e-6)
    assert len(history.steps) == 6
    assert len(history.epochs) == 2
    assert history["total"] == pytest.approx(hand_totals, rel=1e-6)
    assert [s["epoch"] for s in history.steps] == [1, 1, 1, 2, 2, 2]  # counted from 1
    assert history["epoch"] == [1, 2]
    assert history["weight_aux"] == pytest.approx([0.2, 0.2])
    assert history["train_total"][0] == pytest.approx(sum(hand_totals[:3]) / 3, rel=1e-6)


def test_fit_with_val_records_val_keys() -> None:
    model = tiny_model(1)
    objective = Objective("bce_logits", metrics={"main": ["accuracy", "auc"]})
    val = loader(n=10, seed=9, shuffle=False, batch_size=4)
    history = fit(
        model,
        loader(),
        objective,
        epochs=2,
        val=val,
        evaluate_train=loader(shuffle=False),
        progress=False,
    )
    ep = history.epochs[-1]
    for key in (
        "val_loss_main",
        "val_loss_aux",
        "val_main_accuracy",
        "val_main_auc",
        "train_eval_loss_main",
        "train_main_accuracy",
        "train_loss_main",
        "train_total",
        "weight_main",
        "skipped_steps",
        "seconds",
    ):
        assert key in ep, key
    # evaluate() computes the loss over all predictions at once: the per-example mean.
    res = evaluate(model, val, objective, prefix="val_")
    assert set(res) == {"val_loss_main", "val_loss_aux", "val_main_accuracy", "val_main_auc"}
    x, y = headline_data(10, 9)
    with torch.no_grad():
        out = model(**x)
    want = nn.functional.binary_cross_entropy_with_logits(out["main"], y["main"]).item()
    assert res["val_loss_main"] == pytest.approx(want, rel=1e-5)
    assert history.best_epoch in (1, 2)


def test_early_stopping_with_zero_learning_rate_by_name() -> None:
    model = tiny_model(2)
    before = params_of(model)
    history = fit(
        model,
        loader(),
        Objective("bce_logits"),
        epochs=6,
        optimizer="sgd",
        lr=0.0,
        val=loader(n=10, seed=9, shuffle=False),
        early_stopping=1,
        progress=False,
    )
    after = params_of(model)
    assert all(torch.equal(before[k], after[k]) for k in before), "lr=0.0 must not move weights"
    assert len(history.epochs) == 2
    assert history.stopped_epoch == 2  # the second epoch, counted from 1
    assert history.best_epoch == 1


def test_early_stopping_with_optimizer_object() -> None:
    model = tiny_model(2)
    history = fit(
        model,
        loader(),
        Objective("bce_logits"),
        epochs=6,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        val=loader(n=10, seed=9, shuffle=False),
        early_stopping=2,
        progress=False,
    )
    assert len(history.epochs) == 3
    assert history.stopped_epoch == 3
    assert history.best_epoch == 1
    assert history["val_loss_main"][0] == history["val_loss_main"][2]


def test_restore_best_returns_best_epoch_weights() -> None:
    # Training on y while validating on -y: the validation loss only gets worse, so the best
    # epoch is the first one.
    def run(epochs: int, restore_best: bool) -> tuple[RegNet, History]:
        model = RegNet()
        history = fit(
            model,
            reg_data(),
            Objective("mse"),
            "equal",
            epochs=epochs,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
            val=reg_data(sign=-1.0),
            restore_best=restore_best,
            progress=False,
        )
        return model, history

    one, _ = run(1, True)
    best, history = run(3, True)
    last, history_last = run(3, False)
    vals = history["val_loss_main"]
    assert vals[0] < vals[1] < vals[2]
    assert history.best_epoch == 1
    assert history.stopped_epoch is None
    assert_same_params(best, one, atol=0)
    assert differs(last, one)
    assert history_last.best_epoch == 1


def test_monitor_higher_is_better_metric() -> None:
    model = RegNet()
    history = fit(
        model,
        reg_data(),
        Objective("mse", metrics={"main": ["r2"]}),
        epochs=3,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        val=reg_data(),
        progress=False,
    )
    r2 = history["val_main_r2"]
    assert r2[0] < r2[1] < r2[2]  # default monitor: the main task's first metric, higher better
    assert history.best_epoch == 3  # the third of three: epochs are counted from 1


def test_unknown_monitor_raises() -> None:
    with pytest.raises(KeyError, match="monitor 'val_nope' is not in the epoch record"):
        fit(
            RegNet(),
            reg_data(),
            Objective("mse"),
            epochs=1,
            val=reg_data(),
            monitor="val_nope",
            progress=False,
        )


def test_epochs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(RegNet(), reg_data(), Objective("mse"), epochs=0, progress=False)


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_loads_weights_only_and_restores(tmp_path: Path) -> None:
    model = tiny_model(4)
    path = tmp_path / "sub" / "best.pt"
    history = fit(
        model,
        loader(),
        Objective("bce_logits"),
        {"aux": 0.2},
        epochs=2,
        lr=1e-2,
        val=loader(n=10, seed=9, shuffle=False),
        checkpoint=path,
        progress=False,
    )
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "epoch", "monitor", "history"}
    assert ckpt["epoch"] == history.best_epoch
    assert ckpt["monitor"] == pytest.approx(history["val_loss_main"][history.best_epoch - 1])
    assert len(ckpt["history"]["epochs"]) == history.best_epoch
    assert not path.with_suffix(".pt.tmp").exists()

    fresh = tiny_model(99)
    assert differs(fresh, model)
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    out = load_checkpoint(path, fresh, opt)
    assert out["epoch"] == history.best_epoch
    assert_same_params(fresh, model, atol=0)  # restore_best: the model holds the best weights
    assert opt.state_dict()["state"][0]["step"].item() == 3 * history.best_epoch


def test_checkpoint_without_val_holds_last_epoch(tmp_path: Path) -> None:
    model = RegNet()
    path = tmp_path / "last.pt"
    fit(model, reg_data(), Objective("mse"), epochs=3, checkpoint=path, progress=False)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch"] == 3  # the last of three, counted from 1
    assert ckpt["monitor"] is None
    fresh = RegNet()
    load_checkpoint(path, fresh)
    assert_same_params(fresh, model, atol=0)


# ------------------------------------------------------------------------------ predict


def test_predict_main_by_default_and_all_outputs() -> None:
    model = tiny_model(5)
    x, _ = headline_data(11, 1)
    with torch.no_grad():
        want = model(**x)
    got = predict(model, x, batch_size=4)
    assert isinstance(got, torch.Tensor)
    assert got.shape == (11,)
    assert torch.allclose(got, want["main"], atol=1e-6)
    both = predict(model, x, all_outputs=True, batch_size=4)
    assert isinstance(both, dict)
    assert set(both) == {"main", "aux"}
    assert torch.allclose(both["aux"], want["aux"], atol=1e-6)
    assert model.training  # restored after eval mode


def test_predict_on_loader_and_unknown_main() -> None:
    model = tiny_model(5)
    data = loader(n=10, seed=2, shuffle=False, batch_size=3)
    got = predict(model, data)
    assert got.shape == (10,)
    aux = predict(model, data, main="aux")
    assert torch.allclose(aux, predict(model, data, all_outputs=True)["aux"])
    with pytest.raises(KeyError, match="no output 'nope'"):
        predict(model, data, main="nope")


def test_predict_single_tensor_input() -> None:
    model = RegNet()
    nn.init.ones_(model.main.weight)
    x = torch.arange(10.0).reshape(5, 2)
    assert torch.equal(predict(model, x, batch_size=2), x.sum(1))


# ------------------------------------------------------------------------------ optimizers


def test_make_optimizer_by_name_with_keras_defaults() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    adam = make_optimizer("Adam", p)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 1e-3
    assert isinstance(make_optimizer("adamw", p, lr=0.5), torch.optim.AdamW)
    sgd = make_optimizer("sgd", p)
    assert sgd.param_groups[0]["lr"] == 1e-2
    assert sgd.param_groups[0]["momentum"] == 0.9
    rms = make_optimizer("RMSprop", p)
    assert rms.param_groups[0]["alpha"] == 0.9
    assert rms.param_groups[0]["eps"] == 1e-7
    assert make_optimizer("adam", p, lr=0.25).param_groups[0]["lr"] == 0.25


def test_make_optimizer_keeps_zero_learning_rate() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    for name in ("adam", "adamw", "sgd", "rmsprop"):
        assert make_optimizer(name, p, lr=0.0).param_groups[0]["lr"] == 0.0, name


def test_unknown_optimizer_name() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs'\. Known: adam, adamw"):
        make_optimizer("lbfgs", [nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="unknown optimizer 'nadam'"):
        fit(RegNet(), reg_data(), Objective("mse"), optimizer="nadam", progress=False)


def test_optimizer_object_missing_strategy_parameters_raises() -> None:
    model = RegNet()
    strategy = Regularised()
    with pytest.raises(ValueError, match=r"1 learnable parameter\(s\).*balancer\.parameters\(\)"):
        fit(
            model,
            reg_data(),
            Objective("mse"),
            strategy,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            progress=False,
        )
    assert strategy.p.item() == 0.0
    # With the parameter in the optimizer, it is trained.
    opt = torch.optim.SGD([*model.parameters(), *strategy.parameters()], lr=0.1)
    fit(model, reg_data(), Objective("mse"), strategy, optimizer=opt, epochs=2, progress=False)
    assert strategy.p.item() == pytest.approx(1 - 0.8**2)


def test_optimizer_by_name_includes_strategy_parameters() -> None:
    strategy = Regularised()
    fit(
        RegNet(),
        reg_data(),
        Objective("mse"),
        strategy,
        optimizer="adam",
        lr=0.1,
        epochs=2,
        progress=False,
    )
    assert strategy.p.item() > 0.1


def test_fit_accepts_a_ready_balancer() -> None:
    model = RegNet()
    balancer = Balancer({"aux": 0.0})
    history = fit(model, reg_data(), Objective("mse"), balancer, epochs=2, progress=False)
    assert balancer.step == 2
    assert history["weight_aux"] == [0.0, 0.0]
    # With weight 0 the aux head gets no gradient and stays at zero.
    assert torch.count_nonzero(model.aux.weight) == 0
    assert torch.count_nonzero(model.main.weight) == 2


def test_train_step_skips_optimizer_on_skipped_step() -> None:
    model = RegNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    balancer = Balancer("equal", nan_policy="skip")
    x = torch.ones(4, 2)
    bad = {"main": torch.full((4,), math.nan), "aux": torch.ones(4)}
    rec = train_step(model, (x, bad), Objective("mse"), balancer, opt)
    assert rec.skipped
    assert torch.count_nonzero(model.main.weight) == 0
    good = {"main": torch.ones(4), "aux": torch.ones(4)}
    rec = train_step(model, (x, good), Objective("mse"), balancer, opt)
    assert not rec.skipped
    assert torch.count_nonzero(model.main.weight) == 2
    assert balancer.skipped_steps == 1


# ------------------------------------------------------------------------------ History


def test_history_getitem_and_keyerror() -> None:
    history = fit(RegNet(), reg_data(), Objective("mse"), epochs=2, progress=False)
    assert len(history["train_loss_main"]) == 2
    assert history["loss_main"] == [s["loss_main"] for s in history.steps]
    assert len(history["loss_main"]) == 2
    with pytest.raises(KeyError) as exc:
        history["val_loss_main"]
    msg = str(exc.value)
    assert "no record has 'val_loss_main'" in msg
    assert "train_total" in msg
    assert "loss_main" in msg


def test_history_missing_values_are_nan() -> None:
    h = History(epochs=[{"a": 1.0}, {"a": 2.0, "b": 3.0}])
    assert h["a"] == [1.0, 2.0]
    b = h["b"]
    assert math.isnan(b[0])
    assert b[1] == 3.0


def test_history_save_load_round_trip(tmp_path: Path) -> None:
    history = fit(
        RegNet(),
        reg_data(),
        Objective("mse"),
        epochs=3,
        val=reg_data(),
        early_stopping=5,
        progress=False,
    )
    history.stopped_epoch = 3
    path = tmp_path / "history.json"
    history.save(path)
    back = History.load(path)
    assert back.to_dict() == history.to_dict()
    assert back.best_epoch == history.best_epoch
    assert back.stopped_epoch == 3
    assert back["val_loss_main"] == history["val_loss_main"]
    assert repr(back) == "History(3 steps, 3 epochs)"


def test_history_save_keeps_nan(tmp_path: Path) -> None:
    h = History(steps=[{"total": math.nan, "skipped": True}], epochs=[])
    h.save(tmp_path / "h.json")
    back = History.load(tmp_path / "h.json")
    assert math.isnan(back.steps[0]["total"])
    assert back.steps[0]["skipped"] is True


# ------------------------------------------------------------------------------ RNG


def test_fit_seed_does_not_change_global_rng() -> None:
    draws: list[torch.Tensor] = []

    def draw(ep: dict) -> None:
        draws.append(torch.rand(3))

    models = [RegNet() for _ in range(3)]  # built first: nn.Linear draws from the global RNG
    data = reg_data()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    fit(models[0], data, Objective("mse"), epochs=2, seed=7, callbacks=[draw], progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    # Inside the call the generator is seeded: the same seed gives the same draws.
    fit(models[1], data, Objective("mse"), epochs=2, seed=7, callbacks=[draw], progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(draws[0], draws[2])
    assert torch.equal(draws[1], draws[3])
    assert not torch.equal(draws[0], draws[1])
    # Without a seed the caller's generator is used (sanity check that the test can fail).
    fit(models[2], data, Objective("mse"), epochs=1, callbacks=[draw], progress=False)
    assert not torch.equal(torch.get_rng_state(), before)


def test_callbacks_get_epoch_records() -> None:
    seen: list[dict] = []
    history = fit(
        RegNet(), reg_data(), Objective("mse"), epochs=2, callbacks=[seen.append], progress=False
    )
    assert seen == history.epochs


def test_fit_with_progress_writes_summary(capsys: pytest.CaptureFixture[str]) -> None:
    fit(RegNet(), reg_data(), Objective("mse"), {"aux": 0.5}, epochs=1, progress=True)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "epoch 1/1" in text
    assert "(w=0.5)" in text


# ------------------------------------------------------------------------------ ArrayLoader


def test_array_loader_size_mismatch() -> None:
    with pytest.raises(ValueError, match="same number of rows") as exc:
        ArrayLoader({"a": torch.zeros(5, 2)}, {"main": torch.zeros(4)})
    assert "target 'main'" in str(exc.value)
    with pytest.raises(ValueError, match="same number of rows"):
        ArrayLoader({"a": torch.zeros(5), "b": torch.zeros(6)})
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ArrayLoader(torch.zeros(5), batch_size=0)


@pytest.mark.parametrize(
    ("n", "bs", "drop_last", "length", "sizes"),
    [
        (10, 4, False, 3, [4, 4, 2]),
        (10, 4, True, 2, [4, 4]),
        (8, 4, False, 2, [4, 4]),
        (8, 4, True, 2, [4, 4]),
        (3, 4, False, 1, [3]),
        (3, 4, True, 0, []),
    ],
)
def test_array_loader_len(n: int, bs: int, drop_last: bool, length: int, sizes: list[int]) -> None:
    data = ArrayLoader(
        torch.arange(n), {"main": torch.arange(n)}, batch_size=bs, drop_last=drop_last
    )
    assert len(data) == length
    batches = list(data)
    assert [len(x) for x, _ in batches] == sizes
    for x, y in batches:
        assert torch.equal(x, y["main"])


def _orders(data: ArrayLoader, passes: int) -> list[list[int]]:
    return [[int(v) for x, _ in data for v in x] for _ in range(passes)]


def test_array_loader_shuffle_is_deterministic_by_seed() -> None:
    x = torch.arange(20)
    a = _orders(ArrayLoader(x, batch_size=6, shuffle=True, seed=5), 3)
    b = _orders(ArrayLoader(x, batch_size=6, shuffle=True, seed=5), 3)
    c = _orders(ArrayLoader(x, batch_size=6, shuffle=True, seed=6), 3)
    assert a == b
    assert a != c
    assert a[0] != a[1]  # a new order at every pass
    for order in a + c:
        assert sorted(order) == list(range(20))
    assert _orders(ArrayLoader(x, batch_size=6), 2) == [list(range(20))] * 2


def test_array_loader_shuffle_ignores_global_rng() -> None:
    x = torch.arange(12)
    torch.manual_seed(0)
    a = _orders(ArrayLoader(x, batch_size=5, shuffle=True, seed=1), 1)
    torch.manual_seed(1)
    b = _orders(ArrayLoader(x, batch_size=5, shuffle=True, seed=1), 1)
    assert a == b


def test_array_loader_dict_inputs_keep_rows_together() -> None:
    x = {"a": torch.arange(9), "b": torch.arange(9) * 10}
    data = ArrayLoader(x, {"main": torch.arange(9) * 100}, batch_size=4, shuffle=True, seed=2)
    for inputs, targets in data:
        assert torch.equal(inputs["b"], inputs["a"] * 10)
        assert torch.equal(targets["main"], inputs["a"] * 100)


def test_fit_passes_a_captured_representation_to_mgda_ub():
    from auxlab.weighting import create

    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
    heads = torch.nn.ModuleDict({"main": torch.nn.Linear(8, 1), "aux": torch.nn.Linear(8, 1)})

    class Net(torch.nn.Module):
        output_names = ("main", "aux")

        def __init__(self):
            super().__init__()
            self.trunk, self.heads = trunk, heads

        def forward(self, x):
            z = self.trunk(x)
            return {t: h(z).squeeze(-1) for t, h in self.heads.items()}

    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    y = {"main": torch.randn(32, generator=g), "aux": torch.randn(32, generator=g)}
    net = Net()
    before = [p.detach().clone() for p in net.trunk.parameters()]
    loader = ArrayLoader(x, y, batch_size=8)
    with pytest.raises(ValueError, match="representation"):
        fit(net, loader, Objective("mse"), create("mgda-ub"), epochs=1, progress=False)
    history = fit(
        net,
        loader,
        Objective("mse"),
        create("mgda-ub"),
        epochs=1,
        progress=False,
        representation=net.trunk,
    )
    assert len(history.steps) == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, net.trunk.parameters(), strict=True))
    assert not net.trunk._forward_hooks  # the hook is removed after fit


def test_fit_mode_overrides_the_monitor_direction():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)

    class Two(torch.nn.Module):
        output_names = ("main", "aux")

        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return {"main": out[:, 0], "aux": out[:, 1]}

    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 3, generator=g)
    y = {"main": torch.randn(40, generator=g), "aux": torch.randn(40, generator=g)}
    loader = ArrayLoader(x, y, batch_size=10)
    seen = []
    # A made-up epoch key whose name says nothing about its direction: it rises every epoch.
    history = fit(
        Two(),
        loader,
        Objective("mse"),
        "equal",
        epochs=4,
        val=loader,
        progress=False,
        monitor="score",
        mode="min",
        early_stopping=1,
        callbacks=[lambda ep: (seen.append(ep["epoch"]), ep.__setitem__("score", ep["epoch"]))],
    )
    # With mode="min" a rising score never improves after the first epoch: stop after two.
    assert seen == [1, 2]
    assert history.best_epoch == 1
    assert history.stopped_epoch == 2
    with pytest.raises(ValueError, match="mode must be"):
        fit(Two(), loader, Objective("mse"), "equal", epochs=1, progress=False, mode="up")


def test_public_paths_of_the_split_train_package() -> None:
    import auxlab
    import auxlab.train

    for name in auxlab.train.__all__:
        assert getattr(auxlab.train, name) is not None, name
    for name in ("fit", "evaluate", "predict", "ArrayLoader", "History", "load_checkpoint"):
        assert getattr(auxlab, name) is getattr(auxlab.train, name), name


def test_best_epoch_names_the_record_with_the_best_value() -> None:
    history = fit(
        RegNet(),
        reg_data(),
        Objective("mse", metrics={"main": ["r2"]}),
        epochs=3,
        optimizer="sgd",
        lr=0.05,
        val=reg_data(),
        progress=False,
    )
    best = history.best_epoch
    assert best is not None
    assert 1 <= best <= 3
    record = history.epochs[best - 1]
    assert record["epoch"] == best
    assert record["val_main_r2"] == max(history["val_main_r2"])
