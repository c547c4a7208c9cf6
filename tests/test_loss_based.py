"""Tests for the loss-based strategies: UW, DWA, RLW, GLS, scale-invariant, FAMO, STCH.

Each rule is checked against a naive reference written here (autograd of the paper's
objective, an explicit loop over windows, torch's own Adam), plus value semantics and an
end-to-end run through the Balancer.
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auxlab import Balancer, TaskMismatchError
from auxlab.checks import check_strategy
from auxlab.weighting import (
    FAMO,
    STCH,
    Decision,
    DynamicWeightAverage,
    DynamicWeightAverageState,
    FAMOState,
    GeometricLossStrategy,
    RandomLossWeighting,
    ScaleInvariantWeighting,
    Signals,
    STCHState,
    Strategy,
    UncertaintyWeighting,
    as_decision,
    create,
)

TASKS = ("main", "aux1", "aux2")


def sig(step: int, values, tasks=TASKS, main: str = "main") -> Signals:
    losses = {
        t: torch.tensor(float(v), dtype=torch.float64) for t, v in zip(tasks, values, strict=True)
    }
    return Signals(step, tuple(tasks), main, losses)


def floats(weights) -> dict[str, float]:
    return {
        t: float(w.detach()) if isinstance(w, torch.Tensor) else float(w)
        for t, w in weights.items()
    }


def run(strategy: Strategy, sequence, tasks=TASKS) -> list[dict[str, float]]:
    state = strategy.init(list(tasks), "main")
    out = []
    for step, values in enumerate(sequence):
        value, state = strategy.update(sig(step, values, tasks), state)
        out.append(floats(as_decision(value).weights))
    return out


def random_sequence(steps: int, seed: int = 0, t: int = 3) -> list[list[float]]:
    g = torch.Generator().manual_seed(seed)
    return (0.1 + 2.0 * torch.rand(steps, t, generator=g, dtype=torch.float64)).tolist()


# ------------------------------------------------------------------------------ registry


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("uncertainty", UncertaintyWeighting),
        ("dwa", DynamicWeightAverage),
        ("rlw", RandomLossWeighting),
        ("gls", GeometricLossStrategy),
        ("scale-invariant", ScaleInvariantWeighting),
        ("famo", FAMO),
        ("stch", STCH),
    ],
)
def test_registered_by_name(name: str, cls: type) -> None:
    assert isinstance(create(name), cls)


@pytest.mark.parametrize(
    "strategy",
    [
        UncertaintyWeighting(),
        UncertaintyWeighting(form="classification", regulariser="softplus", min_log_var=-4.0),
        DynamicWeightAverage(),
        DynamicWeightAverage(period=1),
        RandomLossWeighting(),
        RandomLossWeighting("dirichlet", concentration=0.3, seed=3),
        GeometricLossStrategy(),
        ScaleInvariantWeighting(),
        FAMO(),
        STCH(),
        STCH(mu=0.2, warmup_steps=2),
    ],
    ids=repr,
)
def test_conformance_suite(strategy: Strategy) -> None:
    check_strategy(strategy)


@pytest.mark.parametrize(
    ("factory", "bad"),
    [
        (UncertaintyWeighting, {"form": "gaussian"}),
        (UncertaintyWeighting, {"regulariser": "l2"}),
        (UncertaintyWeighting, {"init_log_var": -1.0, "min_log_var": 0.0}),
        (UncertaintyWeighting, {"tasks": ["a", "a"]}),
        (DynamicWeightAverage, {"temperature": 0.0}),
        (DynamicWeightAverage, {"period": 0}),
        (DynamicWeightAverage, {"period": 2.5}),
        (RandomLossWeighting, {"distribution": "uniform"}),
        (RandomLossWeighting, {"concentration": -1.0}),
        (RandomLossWeighting, {"seed": 1.5}),
        (GeometricLossStrategy, {"eps": 0.0}),
        (ScaleInvariantWeighting, {"eps": -1.0}),
        (FAMO, {"lr": 0.0}),
        (FAMO, {"gamma": -0.1}),
        (FAMO, {"min_loss": float("nan")}),
        (STCH, {"mu": 0.0}),
        (STCH, {"warmup_steps": 0}),
        (STCH, {"preference": {"aux1": 0.0}}),
    ],
)
def test_constructor_validates(factory, bad) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        factory(**bad)


@pytest.mark.parametrize(
    "strategy",
    [DynamicWeightAverage(), GeometricLossStrategy(), ScaleInvariantWeighting(), FAMO(), STCH()],
    ids=repr,
)
def test_negative_losses_are_refused(strategy: Strategy) -> None:
    state = strategy.init(list(TASKS), "main")
    with pytest.raises(ValueError, match=r"loss of task 'aux1' is -0\.5 at step 0"):
        strategy.update(sig(0, [1.0, -0.5, 1.0]), state)


def test_scale_reactions_are_documented() -> None:
    expected = {
        UncertaintyWeighting: "adaptive",
        DynamicWeightAverage: "invariant",
        RandomLossWeighting: "independent",
        GeometricLossStrategy: "none",
        ScaleInvariantWeighting: "inverse",
        FAMO: "none",
        STCH: "inverse",
    }
    for cls, reaction in expected.items():
        assert cls.scale_reaction == reaction
        assert f"``{reaction!r}``".replace("'", '"') in (cls.__doc__ or ""), cls


# ------------------------------------------------------------------------------ uncertainty


@pytest.mark.parametrize(
    ("form", "regulariser", "a", "b"),
    [
        ("standard", "log", 1.0, 1.0),
        ("regression", "log", 0.5, 0.5),
        ("classification", "log", 1.0, 0.5),
        ("standard", "softplus", 1.0, 1.0),
        ("regression", "softplus", 0.5, 0.5),
    ],
)
def test_uw_weights_and_regulariser(form: str, regulariser: str, a: float, b: float) -> None:
    uw = UncertaintyWeighting(form=form, regulariser=regulariser)
    state = uw.init(list(TASKS), "main")
    s_values = {"main": 0.3, "aux1": -1.2, "aux2": 2.0}
    with torch.no_grad():
        for t, p in zip(TASKS, uw.parameters(), strict=True):
            p.fill_(s_values[t])
    decision, _ = uw.update(sig(0, [1.0, 2.0, 3.0]), state)
    assert isinstance(decision, Decision)
    for t in TASKS:
        w = decision.weights[t]
        assert isinstance(w, torch.Tensor)
        assert w.requires_grad
        assert float(w.detach()) == pytest.approx(a * math.exp(-s_values[t]))
    reg = sum(s if regulariser == "log" else math.log1p(math.exp(s)) for s in s_values.values())
    assert decision.extra_loss is not None
    assert float(decision.extra_loss.detach()) == pytest.approx(b * reg)


def test_uw_gradient_on_log_variances_matches_closed_form() -> None:
    # d/ds [a e^{-s} L + b s] = -a e^{-s} L + b (standard: a = b = 1).
    uw = UncertaintyWeighting(init_log_var=0.4)
    state = uw.init(list(TASKS), "main")
    losses = [0.5, 2.0, 7.0]
    decision, _ = uw.update(sig(0, losses), state)
    total = (
        sum(decision.weights[t] * v for t, v in zip(TASKS, losses, strict=True))
        + decision.extra_loss
    )
    total.backward()
    for p, v in zip(uw.parameters(), losses, strict=True):
        assert float(p.grad) == pytest.approx(-math.exp(-0.4) * v + 1.0)


def _fit_log_variances(uw: UncertaintyWeighting, losses, steps: int = 300, lr: float = 0.5):
    state = uw.init(list(TASKS), "main")
    opt = torch.optim.SGD(uw.parameters(), lr=lr)
    for step in range(steps):
        decision, state = uw.update(sig(step, losses), state)
        total = (
            sum(decision.weights[t] * v for t, v in zip(TASKS, losses, strict=True))
            + decision.extra_loss
        )
        opt.zero_grad()
        total.backward()
        opt.step()
    return floats(uw.update(sig(steps, losses), state)[0].weights)


def test_uw_learns_inverse_loss_weights() -> None:
    # At the optimum of e^{-s} L + s, s = log L, so the weight is 1/L (standard form) and
    # 1/(2L) for the regression form.
    losses = [4.0, 0.25, 1.0]
    w = _fit_log_variances(UncertaintyWeighting(), losses)
    for t, v in zip(TASKS, losses, strict=True):
        assert w[t] == pytest.approx(1.0 / v, rel=1e-3)
    w = _fit_log_variances(UncertaintyWeighting(form="regression"), losses)
    for t, v in zip(TASKS, losses, strict=True):
        assert w[t] == pytest.approx(0.5 / v, rel=1e-3)


def test_uw_negative_loss_diverges_unless_clamped() -> None:
    losses = [1.0, -0.5, 1.0]
    free = _fit_log_variances(UncertaintyWeighting(), losses, steps=300, lr=0.5)
    assert free["aux1"] > 1e3  # the weight of the negative loss runs away
    capped = _fit_log_variances(UncertaintyWeighting(min_log_var=-2.0), losses, steps=300, lr=0.5)
    assert capped["aux1"] == pytest.approx(math.exp(2.0))
    assert capped["main"] == pytest.approx(1.0, rel=1e-3)


def test_uw_softplus_keeps_the_total_non_negative() -> None:
    losses = [0.01, 0.02, 0.03]  # small losses push s below 0: the log regulariser goes < 0
    for regulariser, sign in (("log", -1), ("softplus", 1)):
        uw = UncertaintyWeighting(regulariser=regulariser)
        _fit_log_variances(uw, losses)
        decision, _ = uw.update(sig(0, losses), UncertaintyWeighting().init(list(TASKS), "main"))
        total = sum(
            float(decision.weights[t].detach()) * v for t, v in zip(TASKS, losses, strict=True)
        )
        total += float(decision.extra_loss.detach())
        assert math.copysign(1.0, total) == sign


def test_uw_parameters_lazy_eager_and_independent() -> None:
    lazy = UncertaintyWeighting()
    assert lazy.parameters() == []
    lazy.init(list(TASKS), "main")
    params = lazy.parameters()
    assert len(params) == 3
    assert all(isinstance(p, nn.Parameter) for p in params)
    # init again (e.g. with the tasks in another order) keeps the learned log-variances.
    with torch.no_grad():
        params[1].fill_(1.5)
    lazy.init(["aux2", "aux1", "main"], "main")
    assert lazy.parameters() == params
    assert lazy.log_variances()["aux1"] == 1.5

    eager = UncertaintyWeighting(tasks=list(TASKS), init_log_var=-0.5)
    assert [p.item() for p in eager.parameters()] == [-0.5] * 3
    with pytest.raises(TaskMismatchError):
        eager.init(["main", "aux1"], "main")

    twin = lazy.clone()
    assert twin.parameters() == []
    twin.init(list(TASKS), "main")
    assert not {id(p) for p in twin.parameters()} & {id(p) for p in params}
    assert twin.log_variances()["aux1"] == 0.0

    restored = pickle.loads(pickle.dumps(lazy))
    assert restored.log_variances() == lazy.log_variances()


def test_uw_update_before_init_names_the_fix() -> None:
    uw = UncertaintyWeighting()
    state = UncertaintyWeighting().init(list(TASKS), "main")
    with pytest.raises(ValueError, match="call init"):
        uw.update(sig(0, [1.0, 1.0, 1.0]), state)


# ------------------------------------------------------------------------------ DWA


def naive_dwa(sequence, period: int, temperature: float) -> list[list[float]]:
    """DWA written as the paper states it, with explicit windows ("epochs") of steps."""
    t = len(sequence[0])
    out, means, window = [], [], []
    for values in sequence:
        window.append(values)
        if len(window) == period:
            means.append([sum(v[i] for v in window) / period for i in range(t)])
            window = []
        if len(means) < 2:
            out.append([1.0] * t)
            continue
        r = [means[-1][i] / means[-2][i] for i in range(t)]
        e = [math.exp(x / temperature) for x in r]
        out.append([t * x / sum(e) for x in e])
    return out


@pytest.mark.parametrize(("period", "temperature"), [(1, 2.0), (3, 2.0), (4, 0.5)])
def test_dwa_matches_naive_reference(period: int, temperature: float) -> None:
    sequence = random_sequence(20)
    got = run(DynamicWeightAverage(temperature=temperature, period=period), sequence)
    want = naive_dwa(sequence, period, temperature)
    for g, w in zip(got, want, strict=True):
        assert [g[t] for t in TASKS] == pytest.approx(w, rel=1e-12)
    # Equal weights until two windows are complete; then weights change only on a boundary.
    assert all(g == dict.fromkeys(TASKS, 1.0) for g in got[: 2 * period - 1])
    assert got[2 * period - 1] != dict.fromkeys(TASKS, 1.0)


def test_dwa_gives_more_weight_to_the_slower_task() -> None:
    # main halves, aux1 stays, aux2 doubles: weights ordered main < aux1 < aux2.
    w = run(DynamicWeightAverage(period=1), [[1.0, 1.0, 1.0], [0.5, 1.0, 2.0]])[-1]
    assert w["main"] < w["aux1"] < w["aux2"]
    assert sum(w.values()) == pytest.approx(3.0)


def test_dwa_is_invariant_to_loss_scale_after_warmup() -> None:
    sequence = random_sequence(12)
    scaled = [[v[0], 1e6 * v[1], v[2]] for v in sequence]
    a = run(DynamicWeightAverage(period=2), sequence)
    b = run(DynamicWeightAverage(period=2), scaled)
    for x, y in zip(a, b, strict=True):
        assert [x[t] for t in TASKS] == pytest.approx([y[t] for t in TASKS], rel=1e-12)


def test_dwa_zero_losses_stay_finite() -> None:
    sequence = [[0.0, 1.0, 0.0], [0.0, 1.0, 1e15], [0.0, 1e-10, 0.5]]
    for w in run(DynamicWeightAverage(period=1), sequence):
        assert all(math.isfinite(v) and v >= 0 for v in w.values())


def test_dwa_state_fields() -> None:
    dwa = DynamicWeightAverage(period=2)
    state = dwa.init(list(TASKS), "main")
    _, state = dwa.update(sig(0, [1.0, 2.0, 3.0]), state)
    assert isinstance(state, DynamicWeightAverageState)
    assert state.window_count == 1
    assert state.num_windows == 0
    assert state.window_sum.tolist() == [1.0, 2.0, 3.0]
    _, state = dwa.update(sig(1, [3.0, 2.0, 1.0]), state)
    assert state.window_count == 0
    assert state.num_windows == 1
    assert state.means[1].tolist() == [2.0, 2.0, 2.0]


# ------------------------------------------------------------------------------ RLW


def test_rlw_matches_softmax_of_seeded_normal_draws() -> None:
    g = torch.Generator().manual_seed(7)
    got = run(RandomLossWeighting(seed=7), random_sequence(5))
    for w in got:
        draw = torch.softmax(torch.randn(3, generator=g, dtype=torch.float64), dim=0)
        # Draws are made in the sorted order of the names: aux1, aux2, main.
        assert [w["aux1"], w["aux2"], w["main"]] == pytest.approx(draw.tolist(), rel=1e-12)


def test_rlw_seed_continuation_and_order() -> None:
    sequence = random_sequence(6)
    a = run(RandomLossWeighting(seed=1), sequence)
    assert a == run(RandomLossWeighting(seed=1), sequence)
    assert a != run(RandomLossWeighting(seed=2), sequence)
    # The weights ignore the losses and the order in which the tasks are listed.
    assert a == run(RandomLossWeighting(seed=1), random_sequence(6, seed=9))
    permuted = run(RandomLossWeighting(seed=1), sequence, tasks=("aux2", "main", "aux1"))
    assert [{t: w[t] for t in TASKS} for w in permuted] == a
    # A pickled state continues the same stream.
    rlw = RandomLossWeighting(seed=1)
    state = rlw.init(list(TASKS), "main")
    for step in range(3):
        _, state = rlw.update(sig(step, sequence[step]), state)
    state = pickle.loads(pickle.dumps(state))
    for step in range(3, 6):
        w, state = rlw.update(sig(step, sequence[step]), state)
        assert w == a[step]


@pytest.mark.parametrize("distribution", ["normal", "dirichlet"])
def test_rlw_weights_lie_on_the_simplex_with_mean_one_over_t(distribution: str) -> None:
    got = run(RandomLossWeighting(distribution, seed=0), [[1.0, 1.0, 1.0]] * 3000)
    for w in got:
        assert sum(w.values()) == pytest.approx(1.0)
        assert all(v >= 0 for v in w.values())
    for t in TASKS:
        assert sum(w[t] for w in got) / len(got) == pytest.approx(1 / 3, abs=0.02)


def test_rlw_dirichlet_concentration_controls_spread() -> None:
    def spread(concentration: float) -> float:
        got = run(RandomLossWeighting("dirichlet", concentration, seed=0), [[1.0] * 3] * 500)
        return sum(max(w.values()) for w in got) / len(got)

    assert spread(0.1) > spread(1.0) > spread(100.0) > 1 / 3


# ------------------------------------------------------------------------------ GLS / log


def autograd_weights(objective, values) -> list[float]:
    losses = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(objective(losses), losses)
    return grad.tolist()


def test_gls_weights_are_the_gradient_of_the_geometric_mean() -> None:
    gls = GeometricLossStrategy(eps=1e-8)
    for values in [*random_sequence(5), [1e-10, 1.0, 1e15]]:
        got = run(gls, [values])[0]
        want = autograd_weights(lambda x: torch.prod(x + 1e-8) ** (1 / 3), values)
        assert [got[t] for t in TASKS] == pytest.approx(want, rel=1e-9)


def test_gls_reacts_inversely_up_to_a_common_factor() -> None:
    # The documented reaction: w_k -> c^(1/T - 1) w_k, w_j -> c^(1/T) w_j.
    c = 1000.0
    a = run(GeometricLossStrategy(), [[0.5, 1.5, 2.0]])[0]
    b = run(GeometricLossStrategy(), [[0.5, 1.5 * c, 2.0]])[0]
    assert b["aux1"] == pytest.approx(a["aux1"] * c ** (1 / 3 - 1), rel=1e-6)
    assert b["main"] == pytest.approx(a["main"] * c ** (1 / 3), rel=1e-6)
    # So every task's weighted loss stays equal across tasks.
    assert 1.5 * c * b["aux1"] == pytest.approx(0.5 * b["main"], rel=1e-6)


def test_scale_invariant_weights_are_the_gradient_of_the_sum_of_logs() -> None:
    si = ScaleInvariantWeighting(eps=1e-8)
    for values in [*random_sequence(5), [0.0, 1e-10, 1e15]]:
        got = run(si, [values])[0]
        want = autograd_weights(lambda x: torch.log(x + 1e-8).sum(), values)
        assert [got[t] for t in TASKS] == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------------ FAMO


def naive_famo(sequence, lr: float, gamma: float, min_loss, eps: float = 1e-8):
    """FAMO as in the paper's code, with torch's Adam on the logits and autograd weights.

    The logit step uses the change of log-losses between consecutive calls, as
    ``FAMO.update`` does (the official code re-evaluates the same batch instead).
    """
    t = len(sequence[0])
    xi = nn.Parameter(torch.zeros(t, dtype=torch.float64))
    opt = torch.optim.Adam([xi], lr=lr, weight_decay=gamma)
    b = torch.tensor(min_loss, dtype=torch.float64)
    prev = None
    out = []
    for values in sequence:
        losses = torch.tensor(values, dtype=torch.float64)
        if prev is not None:
            delta = torch.log(prev - b + eps) - torch.log(losses - b + eps)
            (g,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)
            opt.zero_grad()
            xi.grad = g
            opt.step()
        z = torch.softmax(xi.detach(), 0)

        def famo_loss(x: torch.Tensor, z: torch.Tensor = z) -> torch.Tensor:
            d = x - b + eps
            c = (z / d).sum().detach()
            return (z / c * torch.log(d)).sum()

        out.append(autograd_weights(famo_loss, values))
        prev = losses
    return out


@pytest.mark.parametrize(
    ("lr", "gamma", "min_loss"), [(0.025, 0.01, 0.0), (0.3, 0.0, 0.0), (0.1, 0.001, 0.05)]
)
def test_famo_matches_adam_reference(lr: float, gamma: float, min_loss: float) -> None:
    sequence = random_sequence(15, seed=3)
    got = run(FAMO(lr=lr, gamma=gamma, min_loss=min_loss), sequence)
    want = naive_famo(sequence, lr, gamma, [min_loss] * 3)
    for g, w in zip(got, want, strict=True):
        assert [g[t] for t in TASKS] == pytest.approx(w, rel=1e-9, abs=1e-12)
        assert sum(g.values()) == pytest.approx(1.0)


def test_famo_per_task_min_loss_and_bound_check() -> None:
    sequence = random_sequence(6, seed=4)
    got = run(FAMO(min_loss={"aux2": 0.08}), sequence)
    want = naive_famo(sequence, 0.025, 0.01, [0.0, 0.0, 0.08])
    for g, w in zip(got, want, strict=True):
        assert [g[t] for t in TASKS] == pytest.approx(w, rel=1e-9)
    famo = FAMO(min_loss={"aux2": 0.5})
    with pytest.raises(ValueError, match=r"'aux2' is 0\.2"):
        famo.update(sig(0, [1.0, 1.0, 0.2]), famo.init(list(TASKS), "main"))
    with pytest.raises(TaskMismatchError):
        FAMO(min_loss={"other": 0.1}).init(list(TASKS), "main")


def test_famo_lowers_the_weight_of_the_task_that_improves_fastest() -> None:
    # aux1 falls by 10 % per step, the others stay: its share z of the weight goes down.
    sequence = [[1.0, 0.9**k, 1.0] for k in range(60)]
    famo = FAMO(lr=0.05)
    state = famo.init(list(TASKS), "main")
    for step, values in enumerate(sequence):
        _, state = famo.update(sig(step, values), state)
    assert isinstance(state, FAMOState)
    z = torch.softmax(state.logits, 0)
    assert z[1] < z[0]
    assert float(z[0]) == pytest.approx(float(z[2]))


def test_famo_logits_do_not_depend_on_loss_scale() -> None:
    sequence = random_sequence(10, seed=5)
    scaled = [[v[0], 1e4 * v[1], v[2]] for v in sequence]
    a = run(FAMO(), sequence)
    b = run(FAMO(), scaled)
    # z is unchanged, so the weighted losses w_i·L_i keep their proportions.
    for x, y, v in zip(a, b, sequence, strict=True):
        ratio_a = x["aux1"] * v[1] / (x["main"] * v[0])
        ratio_b = y["aux1"] * 1e4 * v[1] / (y["main"] * v[0])
        assert ratio_a == pytest.approx(ratio_b, rel=1e-6)


# ------------------------------------------------------------------------------ STCH


def naive_stch(sequence, mu: float, warmup: int, pref, eps: float = 1e-8):
    t = len(sequence[0])
    p = torch.tensor(pref, dtype=torch.float64)
    out = []
    for k, values in enumerate(sequence):
        if k < warmup:
            out.append(autograd_weights(lambda x: torch.log(x + eps).sum(), values))
            continue
        nadir = torch.tensor(sequence[:warmup], dtype=torch.float64).mean(0)

        def stch(x: torch.Tensor, nadir: torch.Tensor = nadir) -> torch.Tensor:
            z = torch.log(x + eps) - torch.log(nadir + eps)
            return t * mu * torch.logsumexp(p * z / mu, dim=0)

        out.append(autograd_weights(stch, values))
    return out


@pytest.mark.parametrize(
    ("mu", "warmup", "pref"),
    [(1.0, 3, None), (0.1, 1, None), (0.5, 4, {"main": 2.0, "aux2": 0.5})],
)
def test_stch_matches_autograd_reference(mu: float, warmup: int, pref) -> None:
    sequence = random_sequence(12, seed=6)
    got = run(STCH(mu=mu, warmup_steps=warmup, preference=pref), sequence)
    p = [(pref or {}).get(t, 1.0) for t in TASKS]
    want = naive_stch(sequence, mu, warmup, p)
    for g, w in zip(got, want, strict=True):
        assert [g[t] for t in TASKS] == pytest.approx(w, rel=1e-9)


def test_stch_small_mu_puts_the_weight_on_the_worst_task() -> None:
    # After the warm-up aux2 is 4x its nadir, the others at theirs.
    sequence = [[1.0, 1.0, 1.0], [1.0, 1.0, 4.0]]
    w = run(STCH(mu=0.01, warmup_steps=1), sequence)[-1]
    assert w["aux2"] == pytest.approx(3 / 4.0, rel=1e-6)  # T · 1 · 1/L
    assert w["main"] < 1e-30
    assert w["aux1"] < 1e-30


def test_stch_is_inverse_to_loss_scale() -> None:
    sequence = random_sequence(8, seed=7)
    scaled = [[v[0], 1e3 * v[1], v[2]] for v in sequence]
    a = run(STCH(warmup_steps=3), sequence)
    b = run(STCH(warmup_steps=3), scaled)
    for x, y in zip(a, b, strict=True):
        assert y["aux1"] == pytest.approx(x["aux1"] / 1e3, rel=1e-6)
        assert y["main"] == pytest.approx(x["main"], rel=1e-6)


def test_stch_state_keeps_the_nadir_sum() -> None:
    stch = STCH(warmup_steps=2)
    state = stch.init(list(TASKS), "main")
    for step, values in enumerate([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [9.0, 9.0, 9.0]]):
        _, state = stch.update(sig(step, values), state)
    assert isinstance(state, STCHState)
    assert state.warmup_seen == 2
    assert state.loss_sum.tolist() == [4.0, 4.0, 4.0]


# ------------------------------------------------------------------------------ end to end


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(3, 6), nn.Tanh())
        self.main_head = nn.Linear(6, 1)
        self.aux_head = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.shared(x)
        return {"main": self.main_head(h).squeeze(-1), "aux": self.aux_head(h).squeeze(-1)}


@pytest.mark.parametrize(
    "strategy",
    [
        UncertaintyWeighting(tasks=["main", "aux"]),
        DynamicWeightAverage(period=2),
        RandomLossWeighting(seed=3),
        GeometricLossStrategy(),
        ScaleInvariantWeighting(),
        FAMO(),
        STCH(warmup_steps=2),
    ],
    ids=lambda s: type(s).__name__,
)
def test_end_to_end_through_the_balancer(strategy: Strategy) -> None:
    torch.manual_seed(0)
    model = Net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g)
    y, z = torch.randn(16, generator=g), 10.0 * torch.randn(16, generator=g)
    balancer = Balancer(strategy, shared=model.shared)
    opt = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=0.01)
    before = [p.detach().clone() for p in balancer.parameters()]
    for _ in range(8):
        opt.zero_grad()
        out = model(x)
        losses = {"main": F.mse_loss(out["main"], y), "aux": F.mse_loss(out["aux"], z)}
        record = balancer.backward(losses)
        # The Balancer's backward is that of Σ wᵢ·Lᵢ (+ the regulariser).
        expected = sum(record.weights[t] * record.losses[t] for t in ("main", "aux"))
        if isinstance(strategy, UncertaintyWeighting):
            expected += sum(p.item() for p in balancer.parameters())
        assert record.total == pytest.approx(expected, rel=1e-5)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
    after = balancer.parameters()
    if isinstance(strategy, UncertaintyWeighting):
        # The log-variances were learned; the large aux loss gets the larger s (smaller weight).
        assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        s = strategy.log_variances()
        assert s["aux"] > s["main"]
