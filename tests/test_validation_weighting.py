"""Validation-driven weighting: look-ahead on the validation loss and AuxiLearn.

Known answers on a synthetic problem where one auxiliary target is a clean copy of the main
target (its weight must grow) and one is its opposite (its weight must go to 0); the
plumbing (Balancer val=/val_loss=, fit's weight_val=, History.weights) and its errors.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auxlab import Balancer, Objective, fit
from auxlab.train import ArrayLoader
from auxlab.weighting import LookaheadVal, LookaheadValState, Need, Signals, create

D = 12


class Shared(nn.Module):
    """One shared linear output read by every task: gradients collide on it directly."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.trunk(x).squeeze(-1)
        return {"main": z, "clean": z, "opposite": z}


def data(n: int, seed: int, noise: float = 2.0, random_labels: bool = False):
    """Main: a noisy linear target; clean: the same without noise; opposite: its negative
    (or, with ``random_labels``, labels unrelated to the inputs)."""
    g = torch.Generator().manual_seed(seed)
    beta = torch.randn(D, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, D, generator=g)
    y = x @ beta
    main = y + noise * torch.randn(n, generator=g)
    other = 3 * torch.randn(n, generator=g) if random_labels else -y
    return x, {"main": main, "clean": y, "opposite": other}


def loaders(seed: int = 0, random_labels: bool = False):
    x, t = data(48, seed, random_labels=random_labels)
    xv, tv = data(96, seed + 1, random_labels=random_labels)
    train = ArrayLoader(x, t, batch_size=16, shuffle=True, seed=seed)
    val = ArrayLoader(xv, tv, batch_size=32, shuffle=True, seed=seed)
    return train, val


def objective() -> Objective:
    return Objective({"main": "mse", "clean": "mse", "opposite": "mse"}, main="main")


def train(strategy, epochs: int = 25, random_labels: bool = False, **kw):
    torch.manual_seed(0)
    model = Shared()
    tr, val = loaders(random_labels=random_labels)
    kw.setdefault("val", val)
    h = fit(
        model,
        tr,
        objective(),
        strategy,
        epochs=epochs,
        lr=0.05,
        shared=model.trunk,
        progress=False,
        seed=0,
        **kw,
    )
    return h


# --- look-ahead on the validation loss --------------------------------------------------------


def test_lookahead_rule_by_hand() -> None:
    g = torch.tensor([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.2]], dtype=torch.float64)
    v = torch.tensor([2.0, 1.0], dtype=torch.float64)
    sig = Signals(0, ("main", "good", "bad"), "main", {}, grads=g, val_grad=v)
    s = LookaheadVal(lr=0.1, weights=0.05)
    w, state = s.update(sig, s.init(sig.tasks, "main"))
    # Adam's first step is lr·sign(g_val·gₖ); the bad task is clipped at 0.
    assert w == pytest.approx({"main": 1.0, "good": 0.15, "bad": 0.0})
    assert state.alignment == pytest.approx({"good": 1.5, "bad": -1.8})
    assert isinstance(state, LookaheadValState)
    # A lazily computed validation gradient is read through the same method.
    calls = []

    def lazy():
        calls.append(1)
        return v

    sig2 = Signals(1, sig.tasks, "main", {}, grads=g, val_grad=lazy)
    w2, _ = s.update(sig2, state)
    assert calls == [1]
    assert w2["good"] > w["good"]


def test_lookahead_learns_the_known_answer() -> None:
    h = train(LookaheadVal(lr=0.05))
    final = h.final_weights()
    traj = h.weights()
    assert final["main"] == 1.0
    assert final["clean"] > 1.5  # started at 1: the clean copy of the target helps
    assert final["opposite"] < 0.05  # the opposite target hurts: driven to 0
    noise = train(LookaheadVal(lr=0.05), random_labels=True).weights()["opposite"]
    assert min(noise) < 0.01  # random labels hurt too: driven to 0 ...
    assert noise[-1] < 0.5  # ... and kept low (shrinkage towards 0 helps a little late)
    assert len(traj["clean"]) == 25
    assert traj["clean"][-1] == final["clean"]
    assert len(h.weights(per="step")["clean"]) == len(h.steps)


def test_weight_val_is_used_instead_of_val() -> None:
    _, val = loaders(seed=5)
    seen = []
    tr, _ = loaders()

    class Counting:
        def __iter__(self):
            for b in val:
                seen.append(1)
                yield b

    torch.manual_seed(0)
    model = Shared()
    fit(
        model,
        tr,
        objective(),
        "lookahead-val",
        epochs=2,
        shared=model.trunk,
        progress=False,
        weight_val=Counting(),
        val=None,
    )
    assert len(seen) == 2 * len(tr)  # one validation batch per training step


def test_missing_validation_is_a_clear_error() -> None:
    tr, _ = loaders()
    model = Shared()
    with pytest.raises(ValueError, match=r"no validation data was given.*weight_val=.*test set"):
        fit(model, tr, objective(), "lookahead-val", epochs=1, shared=model.trunk, progress=False)
    balancer = Balancer(LookaheadVal(), shared=model.trunk)
    x, t = data(8, 0)
    with pytest.raises(ValueError, match=r"val=<batches>, val_loss="):
        balancer.backward(objective()(model(x), t))
    with pytest.raises(ValueError, match="val_loss="):
        Balancer(LookaheadVal(), shared=model.trunk, val=[1])
    with pytest.raises(TypeError, match="weight_val"):
        fit(
            model,
            tr,
            objective(),
            "lookahead-val",
            shared=model.trunk,
            progress=False,
            weight_val=iter([]),
        )


def test_balancer_in_your_own_loop_with_val_loss() -> None:
    torch.manual_seed(0)
    model = Shared()
    obj = objective()
    xv, tv = data(32, 7)
    batches = [(xv[:16], tv), (xv[16:], tv)]

    def val_loss(batch):
        x, _ = batch
        return obj(model(x), {k: v[: len(x)] for k, v in tv.items()})["main"]

    balancer = Balancer(LookaheadVal(), shared=model.trunk, val=batches, val_loss=val_loss)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, t = data(16, 0)
    for _ in range(3):
        opt.zero_grad()
        rec = balancer.backward(obj(model(x), t))
        opt.step()
    assert balancer.validation is not None
    assert balancer.validation.batches == 3
    assert rec.weights["clean"] > 1.0


def test_val_loss_must_return_a_graph() -> None:
    model = Shared()
    x, t = data(8, 0)
    balancer = Balancer(LookaheadVal(), shared=model.trunk, val_loss=lambda: torch.tensor(1.0))
    with pytest.raises(ValueError, match="without an autograd graph"):
        balancer.backward(objective()(model(x), t))


def test_existing_strategies_ignore_weight_val() -> None:
    a = train("equal", epochs=2)
    b = train("equal", epochs=2, weight_val=loaders(3)[1])
    assert a.steps == b.steps


def test_registered_and_described() -> None:
    from auxlab.weighting import describe

    info = describe("lookahead-val")
    assert info.family == "validation"
    assert info.cost == "T backwards + validation backward"
    assert Need.VAL_GRAD in create("lookahead-val").needs


# --- AuxiLearn ---------------------------------------------------------------------------------


def _quadratic(seed: int = 0, d: int = 4):
    """``L_train(θ, w) = ½(θ−a)ᵀA(θ−a) + Σₖ wₖ·½(θ−bₖ)ᵀBₖ(θ−bₖ)``, ``L_val = ½‖θ − c‖²``."""
    g = torch.Generator().manual_seed(seed)

    def spd():
        m = torch.randn(d, d, generator=g, dtype=torch.float64)
        return m @ m.T / d + 0.5 * torch.eye(d, dtype=torch.float64)

    mats = [spd() for _ in range(3)]
    vecs = [torch.randn(d, generator=g, dtype=torch.float64) for _ in range(4)]

    def train_loss(theta, w):
        terms = [0.5 * (theta - v) @ m @ (theta - v) for m, v in zip(mats, vecs, strict=False)]
        return terms[0] + w[0] * terms[1] + w[1] * terms[2]

    def optimum(w):
        h = mats[0] + w[0] * mats[1] + w[1] * mats[2]
        rhs = mats[0] @ vecs[0] + w[0] * mats[1] @ vecs[1] + w[1] * mats[2] @ vecs[2]
        return torch.linalg.solve(h, rhs), h

    def val_loss(theta):
        return 0.5 * ((theta - vecs[3]) ** 2).sum()

    return train_loss, optimum, val_loss


def test_implicit_hypergradient_matches_finite_differences_and_unrolling() -> None:
    from auxlab.weighting import implicit_hypergradient

    train_loss, optimum, val_loss = _quadratic()
    w0 = torch.tensor([0.7, 1.3], dtype=torch.float64)
    theta_star, hess = optimum(w0)
    lam = float(torch.linalg.eigvalsh(hess).max())

    # Exact: central differences of L_val(θ*(w)).
    eps = 1e-6
    exact = torch.stack(
        [
            (val_loss(optimum(w0 + eps * e)[0]) - val_loss(optimum(w0 - eps * e)[0])) / (2 * eps)
            for e in torch.eye(2, dtype=torch.float64)
        ]
    )
    # Unrolled: differentiate through 400 gradient-descent steps from 0.
    w = w0.clone().requires_grad_(True)
    theta = torch.zeros(4, dtype=torch.float64)
    for _ in range(400):
        (g,) = torch.autograd.grad(
            train_loss(theta.requires_grad_(True) if not theta.requires_grad else theta, w),
            theta,
            create_graph=True,
        )
        theta = theta - (1.0 / lam) * g
    (unrolled,) = torch.autograd.grad(val_loss(theta), w)

    # Implicit, at θ*, with a long Neumann series (converges: α·λ_max = 1).
    w = w0.clone().requires_grad_(True)
    t = theta_star.clone().requires_grad_(True)
    (g_val,) = torch.autograd.grad(val_loss(t), t)
    implicit = implicit_hypergradient(train_loss(t, w), [t], w, g_val, terms=600, alpha=1 / lam)
    torch.testing.assert_close(implicit, exact, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(unrolled, exact, rtol=1e-5, atol=1e-8)

    # The truncation error shrinks as terms are added; K = 0 is the first-order look-ahead.
    errors = [
        float((implicit_hypergradient(train_loss(t, w), [t], w, g_val, k, 1 / lam) - exact).norm())
        for k in (0, 3, 30)
    ]
    assert errors[0] > errors[1] > errors[2]
    # A step too large for the curvature: the series stops instead of diverging.
    big = implicit_hypergradient(train_loss(t, w), [t], w, g_val, terms=50, alpha=10 / lam)
    assert torch.isfinite(big).all()
    assert float(big.norm()) < 100 * float(exact.norm())


@pytest.mark.parametrize("combiner", ["linear", "monotone"])
def test_auxilearn_learns_the_known_answer(combiner: str) -> None:
    from auxlab.weighting import AuxiLearn

    h = train(AuxiLearn(combiner, every=1, lr=0.05))
    final = h.final_weights()
    assert final["clean"] > 2.0
    assert final["opposite"] < 0.25
    assert final["opposite"] < final["clean"] / 10
    noise = train(AuxiLearn(combiner, every=1, lr=0.05), random_labels=True).weights()
    assert min(noise["opposite"]) < 0.01  # random labels: driven to 0 (they come back a
    assert noise["opposite"][-1] < 0.5  # little once the fit is done: shrinkage helps then)
    assert noise["clean"][-1] > 1.5


@pytest.mark.parametrize("combiner", ["linear", "monotone"])
def test_auxilearn_conforms_with_hypergradient_steps(combiner: str) -> None:
    from auxlab.checks import check_strategy
    from auxlab.weighting import AuxiLearn

    check_strategy(AuxiLearn(combiner, every=1, hidden=3))
    check_strategy(LookaheadVal(lr=0.2))


def test_auxilearn_effective_weight_is_the_combiner_slope() -> None:
    from auxlab.weighting import AuxiLearn

    s = AuxiLearn("monotone", hidden=3)
    state = s.init(("main", "a", "b"), "main")
    phi = list(state.phi)
    phi[-6:-3] = [0.5, 1.0, 2.0]  # c: switch the non-linear part on
    losses, scale = [0.8, 1.7], [1.0, 2.0]
    eff = s._effective(phi, losses, scale)
    p = torch.tensor(phi, dtype=torch.float64)
    sc = torch.tensor(scale, dtype=torch.float64)
    for k in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[k] = 1e-6
        x = torch.tensor(losses, dtype=torch.float64)
        numeric = float(s._h(p, x + e, sc) - s._h(p, x - e, sc)) / 2e-6
        assert eff[k] == pytest.approx(numeric, rel=1e-6)
        assert eff[k] > phi[k]  # the non-linear part adds to the linear weight


def test_auxilearn_arguments_and_missing_graph() -> None:
    from auxlab.weighting import AuxiLearn

    with pytest.raises(ValueError, match="combiner"):
        AuxiLearn("mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="terms"):
        AuxiLearn(terms=-1)
    with pytest.raises(ValueError, match="alpha"):
        AuxiLearn(alpha=0.0)
    s = AuxiLearn(every=1)
    sig = Signals(0, ("main", "aux"), "main", {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"Need\.LOSS_GRAPH"):
        s.update(sig, s.init(sig.tasks, "main"))
    assert create("auxilearn").needs == {Need.LOSSES, Need.VAL_GRAD, Need.LOSS_GRAPH}


def test_fit_gives_a_ready_balancer_its_validation_batches() -> None:
    torch.manual_seed(0)
    model = Shared()
    tr, val = loaders()
    balancer = Balancer(LookaheadVal(lr=0.05), shared=model.trunk, every=3)
    fit(model, tr, objective(), balancer, epochs=2, val=val, progress=False)
    assert balancer.validation is not None
    assert balancer.validation.batches == 2  # 6 steps, a refresh every 3rd


# --- AuxiNash ----------------------------------------------------------------------------------


def test_bargaining_weights_solve_the_asymmetric_conditions() -> None:
    import numpy as np

    from auxlab.weighting import bargaining_weights
    from auxlab.weighting._solvers import nash_weights

    rng = np.random.default_rng(0)
    g = rng.normal(size=(4, 9)) * np.array([[1.0], [10.0], [0.1], [1.0]])
    gram = g @ g.T
    prefs = np.array([1.0, 0.3, 2.0, 0.0])
    alpha, ok = bargaining_weights(gram, prefs)
    assert ok
    assert alpha[3] == 0.0  # no bargaining power: out of the bargaining
    np.testing.assert_allclose((alpha * (gram @ alpha))[:3], prefs[:3], rtol=1e-8)
    # Equal powers: the symmetric Nash-MTL solution.
    sym, _ = bargaining_weights(gram, np.ones(4))
    ref, _ = nash_weights(gram)
    np.testing.assert_allclose(sym, ref, rtol=1e-6)


def test_auxinash_hypergradient_is_the_look_ahead_derivative() -> None:
    import numpy as np

    from auxlab.weighting import bargaining_weights
    from auxlab.weighting._auxinash import _hypergradient

    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 6))
    g[1] += g[0]
    gram, v = g @ g.T, g @ rng.normal(size=6)
    prefs = np.array([1.0, 0.7, 1.3])

    def change(p):  # L_val's first-order change after the step −Σ (αᵢ/α_main)·gᵢ, per η
        a, ok = bargaining_weights(gram, p, tol=1e-14)
        assert ok
        return -(v @ a) / a[0]

    alpha, _ = bargaining_weights(gram, prefs)
    numeric = [(change(prefs + e) - change(prefs - e)) / 2e-6 for e in np.eye(3) * 1e-6]
    np.testing.assert_allclose(_hypergradient(gram, alpha, v, 0), numeric, rtol=1e-5)


def test_auxinash_learns_bargaining_powers_from_validation() -> None:
    from auxlab.weighting import AuxiNash

    torch.manual_seed(0)
    model = Shared()
    tr, val = loaders(random_labels=True)
    balancer = Balancer(AuxiNash(lr=0.05), shared=model.trunk)
    fit(model, tr, objective(), balancer, epochs=30, lr=0.05, val=val, progress=False, seed=0)
    prefs = balancer.state.prefs
    assert prefs["main"] == 1.0
    assert prefs["clean"] > 2.0  # started at 1: the clean target gains bargaining power
    assert prefs["opposite"] < 0.5  # random labels lose it


def test_auxilearn_names_a_model_that_is_not_twice_differentiable() -> None:
    from auxlab.weighting import AuxiLearn

    class Fused(torch.autograd.Function):
        """Like a fused kernel (cuDNN's RNN) whose backward has no derivative."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            if torch.is_grad_enabled():  # create_graph=True: a second derivative is wanted
                raise NotImplementedError("the derivative for 'fused_backward' is not implemented")
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    w = nn.Parameter(torch.ones(3))
    x = torch.randn(8, 3)

    def losses():
        z = Fused.apply(x * w).sum(1)
        return {"main": z.mean(), "aux": (z**2).mean()}

    balancer = Balancer(AuxiLearn(every=1), shared=[w], val_loss=lambda: losses()["main"])
    with pytest.raises(RuntimeError, match=r"not twice differentiable.*lookahead-val"):
        balancer.backward(losses())


@pytest.mark.parametrize("name", ["lookahead-val", "auxilearn", "auxinash"])
def test_a_main_task_alone_and_a_bad_val_loss(name: str) -> None:
    w = nn.Parameter(torch.ones(3))
    x = torch.randn(8, 3)
    balancer = Balancer(
        create(name), shared=[w], main="main", val_loss=lambda: (x @ w).pow(2).mean()
    )
    for _ in range(3):
        record = balancer.backward({"main": (x @ w - 1).pow(2).mean()})
    assert record.weights == {"main": 1.0}
    strategy = create(name, every=1) if name == "auxilearn" else create(name)
    bad = Balancer(strategy, shared=[w], main="main", val_loss=lambda: x @ w)
    with pytest.raises(TypeError, match="scalar tensor"):
        bad.backward({"main": (x @ w).pow(2).mean(), "aux": (x @ w).abs().mean()})
