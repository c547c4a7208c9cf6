"""Tests for the gradient-based strategies (auxlab.weighting._gradnorm, ._mgda, ._upgrad, ...).

Every strategy is compared with a naive reference written here (explicit projection loops,
closed forms, hand-computed steps, brute-force QPs), checked for its documented reaction to
loss scaling and its fallbacks, and run end to end through the Balancer on a tiny model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from auxlab import Balancer
from auxlab.weighting import (
    DBMTL,
    IMTL,
    MGDA,
    MGDAUB,
    AlignedMTL,
    CAGrad,
    Decision,
    GradDrop,
    GradNorm,
    GradVac,
    NashMTL,
    PCGrad,
    Signals,
    SolverWarning,
    Strategy,
    UPGrad,
    as_decision,
    create,
)

TASKS = ("main", "aux1", "aux2")


def _signals(
    grads: torch.Tensor,
    losses: Sequence[float] | None = None,
    tasks: Sequence[str] | None = None,
    step: int = 0,
    rep: torch.Tensor | None = None,
) -> Signals:
    tasks = tuple(tasks) if tasks is not None else TASKS[: grads.shape[0]]
    values = losses if losses is not None else [1.0] * len(tasks)
    pairs = zip(tasks, values, strict=True)
    loss = {t: torch.tensor(float(v), dtype=torch.float64) for t, v in pairs}
    return Signals(step, tasks, tasks[0], loss, grads=grads, gramian=grads @ grads.T, rep_grads=rep)


def _random_grads(seed: int, t: int = 3, d: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(d, generator=g, dtype=torch.float64)
    return 0.3 * base + torch.randn(t, d, generator=g, dtype=torch.float64)


def _update(strategy: Strategy, sig: Signals, state: object = None) -> tuple[Decision, object]:
    if state is None:
        state = strategy.init(list(sig.tasks), sig.main)
    value, new_state = strategy.update(sig, state)
    return as_decision(value), new_state


def _shared_update(decision: Decision, grads: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
    if decision.shared_grad is not None:
        return decision.shared_grad
    coef = decision.shared_weights if decision.shared_weights is not None else decision.weights
    return torch.tensor([float(coef[t]) for t in tasks], dtype=grads.dtype) @ grads


def _orders(tasks: Sequence[str], u: torch.Tensor) -> list[list[int]]:
    """The documented visiting order: task i visits the others by increasing u[i, j], with u
    indexed by the tasks sorted by name."""
    names = sorted(tasks)
    rank = [names.index(t) for t in tasks]
    t = len(tasks)
    return [
        sorted((j for j in range(t) if j != i), key=lambda j, i=i: float(u[rank[i], rank[j]]))
        for i in range(t)
    ]


# ------------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("name", "cls", "reaction"),
    [
        ("gradnorm", GradNorm, "adaptive"),
        ("mgda", MGDA, "none"),
        ("mgda-ub", MGDAUB, "none"),
        ("pcgrad", PCGrad, "none"),
        ("gradvac", GradVac, "none"),
        ("imtl", IMTL, "invariant"),
        ("cagrad", CAGrad, "none"),
        ("nash-mtl", NashMTL, "invariant"),
        ("aligned-mtl", AlignedMTL, "none"),
        ("upgrad", UPGrad, "none"),
        ("db-mtl", DBMTL, "invariant"),
        ("graddrop", GradDrop, "none"),
    ],
)
def test_registered_names_and_scale_reactions(name: str, cls: type, reaction: str) -> None:
    s = create(name)
    assert type(s) is cls
    assert s.scale_reaction == reaction  # type: ignore[attr-defined]
    assert repr(s).startswith(cls.__name__ + "(")
    assert type(s.clone()) is cls


def test_mgda_scale_reaction_follows_normalization() -> None:
    assert MGDA("l2").scale_reaction == "invariant"
    assert MGDA("loss").scale_reaction == "invariant"
    assert MGDA("loss+").scale_reaction == "none"
    assert MGDAUB("l2").scale_reaction == "inverse"
    assert MGDA("l2").clone(normalization="none").scale_reaction == "none"


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="alpha"):
        GradNorm(alpha=-1.0)
    with pytest.raises(ValueError, match="lr"):
        GradNorm(lr=0.0)
    with pytest.raises(ValueError, match="normalization"):
        MGDA("l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="c must be"):
        CAGrad(c=1.0)
    with pytest.raises(ValueError, match="rescale"):
        CAGrad(rescale=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="update_every"):
        NashMTL(update_every=0)
    with pytest.raises(ValueError, match="max_norm"):
        NashMTL(max_norm=-1.0)
    with pytest.raises(ValueError, match="beta"):
        GradVac(beta=2.0)
    with pytest.raises(ValueError, match="seed"):
        PCGrad(seed=-1)
    with pytest.raises(ValueError, match="scale_mode"):
        AlignedMTL(scale_mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pref_vector"):
        UPGrad(pref_vector={"main": -1.0})
    with pytest.raises(ValueError, match="leak"):
        GradDrop(leak=1.5)
    with pytest.raises(ValueError, match="beta"):
        DBMTL(beta=1.0)


def test_preference_vectors_are_matched_to_tasks() -> None:
    s = UPGrad(pref_vector={"aux1": 0.2, "main": 0.6, "aux2": 0.2})
    assert s.init(list(TASKS), "main").pref.tolist() == [0.6, 0.2, 0.2]
    assert UPGrad([0.5, 0.3, 0.2]).init(list(TASKS), "main").pref.tolist() == [0.5, 0.3, 0.2]
    with pytest.raises(Exception, match="aux2"):
        UPGrad(pref_vector={"main": 1.0, "aux1": 0.5}).init(list(TASKS), "main")


# ------------------------------------------------------------------------------ GradNorm


def test_gradnorm_two_tasks_by_hand() -> None:
    alpha, lr = 1.5, 0.1
    s = GradNorm(alpha=alpha, lr=lr)
    state = s.init(["main", "aux"], "main")
    # Three steps with gradient norms and losses chosen so that r ≠ 1 and signs differ.
    steps = [((1.0, 3.0), (2.0, 1.0)), ((2.0, 1.0), (1.0, 0.9)), ((0.5, 2.5), (0.5, 0.8))]
    w = [1.0, 1.0]
    l0 = None
    for k, (norms, losses) in enumerate(steps):
        grads = torch.tensor([[norms[0], 0.0], [0.0, norms[1]]], dtype=torch.float64)
        weights, state = s.update(_signals(grads, losses, ["main", "aux"], step=k), state)
        # The returned weights are those before this step's weight update.
        assert weights == pytest.approx({"main": w[0], "aux": w[1]})
        # By hand: G_i = w_i n_i, target = mean(G) r_i^α, dL/dw_i = sign(G_i - target) n_i.
        l0 = l0 or losses
        ratios = [losses[0] / l0[0], losses[1] / l0[1]]
        r = [x / (sum(ratios) / 2) for x in ratios]
        gw = [w[0] * norms[0], w[1] * norms[1]]
        gbar = (gw[0] + gw[1]) / 2
        grad = [math.copysign(1.0, gw[i] - gbar * r[i] ** alpha) * norms[i] for i in range(2)]
        w = [max(w[i] - lr * grad[i], 1e-6) for i in range(2)]
        w = [2 * x / sum(w) for x in w]
        assert state.weights.tolist() == pytest.approx(w)
        assert state.weights.sum().item() == pytest.approx(2.0)
    assert state.initial_losses.tolist() == [2.0, 1.0]


def test_gradnorm_equalises_weighted_norms_over_steps() -> None:
    s = GradNorm(alpha=0.0, lr=0.002)  # alpha = 0: aim for equal weighted norms
    state = s.init(["main", "aux"], "main")
    grads = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    for k in range(1500):
        _, state = s.update(_signals(grads, [1.0, 1.0], ["main", "aux"], step=k), state)
    w = state.weights.tolist()
    assert w[0] * 1.0 == pytest.approx(w[1] * 4.0, rel=0.05)


def test_gradnorm_survives_zero_norms_and_zero_initial_losses() -> None:
    s = GradNorm()
    state = s.init(list(TASKS), "main")
    grads = torch.zeros(3, 4, dtype=torch.float64)
    for k in range(3):
        w, state = s.update(_signals(grads, [0.0, 1.0, 2.0], step=k), state)
        assert all(math.isfinite(v) and v > 0 for v in w.values())


# ---------------------------------------------------------------------------------- MGDA


def test_mgda_two_task_closed_form() -> None:
    for seed in range(10):
        grads = _random_grads(seed, t=2, d=5)
        d, _ = _update(MGDA(), _signals(grads))
        g1, g2 = grads
        a = float(torch.clamp((g2 - g1) @ g2 / (g1 - g2).pow(2).sum(), 0.0, 1.0))
        assert d.weights == {"main": 1.0, "aux1": 1.0}
        assert d.shared_weights == pytest.approx({"main": a, "aux1": 1.0 - a})


def test_mgda_matches_a_brute_force_qp() -> None:
    so = pytest.importorskip("scipy.optimize")
    grads = _random_grads(3, t=4, d=6)
    tasks = ("main", "a", "b", "c")
    d, _ = _update(MGDA(), _signals(grads, tasks=tasks))
    g = (grads @ grads.T).numpy()
    res = so.minimize(
        lambda x: x @ g @ x,
        np.full(4, 0.25),
        bounds=[(0, 1)] * 4,
        constraints={"type": "eq", "fun": lambda x: x.sum() - 1},
        method="SLSQP",
        options={"ftol": 1e-15},
    )
    ours = _shared_update(d, grads, tasks)
    assert float(ours @ ours) <= res.fun + 1e-10
    np.testing.assert_allclose(ours.numpy(), res.x @ grads.numpy(), atol=1e-5)


@pytest.mark.parametrize("normalization", ["l2", "loss"])
def test_mgda_normalised_update_is_scale_invariant(normalization: str) -> None:
    grads = _random_grads(4)
    losses = [0.5, 1.5, 2.0]
    s = MGDA(normalization)  # type: ignore[arg-type]
    ua = _shared_update(_update(s, _signals(grads, losses))[0], grads, TASKS)
    scaled = grads.clone()
    scaled[1] *= 1000.0
    d, _ = _update(s, _signals(scaled, [0.5, 1500.0, 2.0]))
    np.testing.assert_allclose(_shared_update(d, scaled, TASKS).numpy(), ua.numpy(), rtol=1e-9)


def test_mgda_loss_normalisation_needs_positive_losses() -> None:
    with pytest.raises(ValueError, match="positive"):
        _update(MGDA("loss"), _signals(_random_grads(0), [1.0, 0.0, 1.0]))


def test_mgda_zero_gradient_task_stops_the_shared_update() -> None:
    grads = _random_grads(5)
    grads[2] = 0.0
    d, _ = _update(MGDA(), _signals(grads))
    assert torch.allclose(_shared_update(d, grads, TASKS), torch.zeros(7, dtype=torch.float64))
    d, _ = _update(MGDA("l2"), _signals(grads))
    assert all(math.isfinite(v) for v in (d.shared_weights or {}).values())


def test_mgda_solver_failure_warns_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import auxlab.weighting._mgda as module

    monkeypatch.setattr(module, "min_norm_weights", lambda g, rtol, eps: (np.zeros(len(g)), False))
    with pytest.warns(SolverWarning, match="MGDA"):
        d, _ = _update(MGDA(), _signals(_random_grads(0)))
    assert d.shared_weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))


def test_mgda_ub_uses_representation_gradients_and_plain_weights() -> None:
    grads = _random_grads(6)
    rep = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 2.0]], dtype=torch.float64)
    sig = _signals(grads, rep=rep)
    w, _ = MGDAUB().update(sig, MGDAUB().init(list(TASKS), "main"))
    # min-norm of {(1,0), (0,2), (0,2)}: 0.8 on the first, 0.2 shared by the identical two.
    assert w == pytest.approx({"main": 0.8, "aux1": 0.1, "aux2": 0.1})
    w2, _ = MGDAUB("l2").update(sig, MGDAUB().init(list(TASKS), "main"))
    scaled = _signals(grads, rep=rep * torch.tensor([[1.0], [10.0], [1.0]], dtype=torch.float64))
    w3, _ = MGDAUB("l2").update(scaled, MGDAUB().init(list(TASKS), "main"))
    assert w3["aux1"] == pytest.approx(w2["aux1"] / 10)  # "inverse"
    assert w3["main"] == pytest.approx(w2["main"])


# -------------------------------------------------------------------------------- PCGrad


def _naive_pcgrad(grads: torch.Tensor, tasks: Sequence[str], u: torch.Tensor) -> torch.Tensor:
    """PCGrad as an explicit projection loop on vectors (Yu et al., Algorithm 1)."""
    total = torch.zeros(grads.shape[1], dtype=grads.dtype)
    for i, order in enumerate(_orders(tasks, u)):
        pc = grads[i].clone()
        for j in order:
            dot = pc @ grads[j]
            if dot < 0:
                pc = pc - dot / grads[j].pow(2).sum() * grads[j]
        total += pc
    return total


def test_pcgrad_matches_explicit_projection_loop() -> None:
    tasks = ("main", "zeta", "alpha", "beta")
    s = PCGrad(seed=11)
    state = s.init(list(tasks), "main")
    gen = torch.Generator().manual_seed(11)  # the same draws as the strategy
    for step in range(6):
        grads = _random_grads(100 + step, t=4, d=9)
        u = torch.rand((4, 4), generator=gen, dtype=torch.float64)
        d, state = _update(s, _signals(grads, tasks=tasks, step=step), state)
        assert d.weights == dict.fromkeys(tasks, 1.0)
        ref = _naive_pcgrad(grads, tasks, u)
        np.testing.assert_allclose(_shared_update(d, grads, tasks).numpy(), ref.numpy(), atol=1e-12)


def test_pcgrad_without_conflict_is_the_sum_and_two_tasks_by_hand() -> None:
    grads = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    d, _ = _update(PCGrad(), _signals(grads))
    assert d.shared_weights == {"main": 1.0, "aux1": 1.0}
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    d, _ = _update(PCGrad(), _signals(grads))
    # g1ᴾᶜ = g1 + ½g2 = (0.5, 0.5) ⟂ g2; g2ᴾᶜ = g2 + g1 = (0, 1) ⟂ g1.
    assert _shared_update(d, grads, TASKS[:2]).tolist() == pytest.approx([0.5, 1.5])


def test_pcgrad_is_permutation_equivariant_and_seeded() -> None:
    grads = _random_grads(7, t=3)
    d1, _ = _update(PCGrad(seed=3), _signals(grads))
    perm = [2, 0, 1]
    tasks = tuple(TASKS[i] for i in perm)
    sig = Signals(
        0, tasks, "main", {t: torch.tensor(1.0) for t in tasks}, gramian=grads[perm] @ grads[perm].T
    )
    d2, _ = _update(PCGrad(seed=3), sig)
    assert d2.shared_weights == pytest.approx(d1.shared_weights)
    d3, _ = _update(PCGrad(seed=3), _signals(grads))
    assert d3.shared_weights == d1.shared_weights


# ------------------------------------------------------------------------------- GradVac


def test_gradvac_matches_explicit_loop_and_ema() -> None:
    beta = 0.3
    s = GradVac(beta=beta, seed=5)
    state = s.init(list(TASKS), "main")
    gen = torch.Generator().manual_seed(5)
    targets = torch.zeros(3, 3, dtype=torch.float64)
    for step in range(5):
        grads = _random_grads(200 + step)
        u = torch.rand((3, 3), generator=gen, dtype=torch.float64)
        d, state = _update(s, _signals(grads, step=step), state)
        # Naive reference on vectors (Wang et al., Algorithm 1).
        total = torch.zeros(grads.shape[1], dtype=torch.float64)
        for i, order in enumerate(_orders(TASKS, u)):
            gi = grads[i].clone()
            for j in order:
                phi = float(gi @ grads[j] / (gi.norm() * grads[j].norm()))
                target = float(targets[i, j])
                if phi < target:
                    w = (
                        gi.norm()
                        * (target * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - target**2))
                        / (grads[j].norm() * math.sqrt(1 - target**2))
                    )
                    gi = gi + w * grads[j]
                    # After the correction the cosine equals the target.
                    assert float(gi @ grads[j] / (gi.norm() * grads[j].norm())) == pytest.approx(
                        target
                    )
                targets[i, j] = (1 - beta) * target + beta * phi
            total += gi
        np.testing.assert_allclose(
            _shared_update(d, grads, TASKS).numpy(), total.numpy(), atol=1e-12
        )
        np.testing.assert_allclose(state.targets.numpy(), targets.numpy(), atol=1e-14)
    assert (state.targets != 0).any()


def test_gradvac_zero_gradient_leaves_targets() -> None:
    grads = _random_grads(1)
    grads[1] = 0.0
    d, state = _update(GradVac(beta=0.5), _signals(grads))
    assert state.targets[1].tolist() == [0.0, 0.0, 0.0]
    assert state.targets[0, 1] == 0.0
    assert state.targets[0, 2] != 0.0
    assert all(math.isfinite(v) for v in (d.shared_weights or {}).values())


# ---------------------------------------------------------------------------------- IMTL


def test_imtl_equal_projections_on_unit_gradients() -> None:
    for seed in range(10):
        grads = _random_grads(seed, t=3, d=6)
        d, _ = _update(IMTL(), _signals(grads))
        upd = _shared_update(d, grads, TASKS)
        proj = (grads / grads.norm(dim=1, keepdim=True)) @ upd
        np.testing.assert_allclose(proj.numpy(), proj[0].item(), rtol=1e-9)
        assert proj[0] > 0
        coef = np.array([d.shared_weights[t] for t in TASKS])  # type: ignore[index]
        if coef.min() >= 0:  # published normalisation applies: Σα = 1
            assert coef.sum() == pytest.approx(1.0)


def test_imtl_two_tasks_closed_form() -> None:
    # IMTL-G paper, eq. 5, for two tasks: α₂ = g₁·(u₁-u₂) / ((g₁-g₂)·(u₁-u₂)), α₁ = 1 - α₂.
    grads = torch.tensor([[2.0, 1.0], [-1.0, 3.0]], dtype=torch.float64)
    u = grads / grads.norm(dim=1, keepdim=True)
    a2 = float(grads[0] @ (u[0] - u[1]) / ((grads[0] - grads[1]) @ (u[0] - u[1])))
    d, _ = _update(IMTL(), _signals(grads))
    assert d.shared_weights == pytest.approx({"main": 1 - a2, "aux1": a2})


def test_imtl_direction_is_scale_invariant() -> None:
    grads = _random_grads(3)
    ua = _shared_update(_update(IMTL(), _signals(grads))[0], grads, TASKS)
    scaled = grads * torch.tensor([[1.0], [1e4], [1.0]], dtype=torch.float64)
    ub = _shared_update(_update(IMTL(), _signals(scaled))[0], scaled, TASKS)
    assert float(ua @ ub / (ua.norm() * ub.norm())) == pytest.approx(1.0, abs=1e-12)


def test_imtl_never_points_against_every_task() -> None:
    # Found by search: here Σv < 0, so the published α = v/Σv would give d·uᵢ < 0 for every
    # task (an ascent direction for all); the documented normalisation keeps d·uᵢ > 0.
    grads = torch.tensor(
        [[-3.0, -1.0, 2.0], [-1.0, 0.0, 0.0], [-3.0, 0.0, -1.0]], dtype=torch.float64
    )
    n = grads.norm(dim=1)
    v = torch.linalg.solve(grads @ grads.T, n)
    assert v.sum() < 0
    d, _ = _update(IMTL(), _signals(grads))
    proj = (grads / n[:, None]) @ _shared_update(d, grads, TASKS)
    assert (proj > 0).all()
    np.testing.assert_allclose(proj.numpy(), proj[0].item(), rtol=1e-9)
    assert sum(abs(c) for c in d.shared_weights.values()) == pytest.approx(3.0)  # type: ignore[union-attr]


def test_imtl_degenerate_gradients() -> None:
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64)
    d, _ = _update(IMTL(), _signals(opposite))
    assert d.shared_weights == pytest.approx({"main": 0.5, "aux1": 0.5})  # no direction: 1/T
    one_zero = _random_grads(2)
    one_zero[1] = 0.0
    d, _ = _update(IMTL(), _signals(one_zero))
    upd = _shared_update(d, one_zero, TASKS)
    u = one_zero[[0, 2]] / one_zero[[0, 2]].norm(dim=1, keepdim=True)
    assert float(u[0] @ upd) == pytest.approx(float(u[1] @ upd))


# -------------------------------------------------------------------------------- CAGrad


def test_cagrad_two_dimensional_toy_against_grid() -> None:
    # The CAGrad paper's setting: two tasks in R², c = 0.5, rescale 1; brute-force dual.
    grads = torch.tensor([[1.0, 0.2], [-0.6, 1.0]], dtype=torch.float64)
    c = 0.5
    d, _ = _update(CAGrad(c=c), _signals(grads))
    ours = _shared_update(d, grads, TASKS[:2]) * (1 + c**2)  # undo rescale=1
    g = grads.numpy()
    g0 = g.mean(axis=0)
    w = np.linspace(0, 1, 400_001)[:, None] * np.array([1.0, -1.0]) + np.array([0.0, 1.0])
    gw = w @ g
    f = gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)
    k = int(np.argmin(f))
    ref = g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw[k]) * gw[k]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    assert float(min(g @ ours.numpy())) >= f[k] - 1e-9


def test_cagrad_rescale_options_and_mean() -> None:
    grads = _random_grads(9)
    base = _shared_update(_update(CAGrad(c=0.4, rescale=0), _signals(grads))[0], grads, TASKS)
    for rescale, factor in ((1, 1 + 0.4**2), (2, 1.4)):
        d, _ = _update(CAGrad(c=0.4, rescale=rescale), _signals(grads))  # type: ignore[arg-type]
        np.testing.assert_allclose(
            (_shared_update(d, grads, TASKS) * factor).numpy(), base.numpy(), rtol=1e-12
        )
    d, _ = _update(CAGrad(c=0.0), _signals(grads))
    assert d.shared_weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))
    assert d.weights == dict.fromkeys(TASKS, 1.0)


def test_cagrad_improves_the_worst_task_over_the_mean() -> None:
    grads = torch.tensor([[1.0, 0.0], [-0.8, 0.3]], dtype=torch.float64)
    d, _ = _update(CAGrad(c=0.5, rescale=0), _signals(grads))
    ours = _shared_update(d, grads, TASKS[:2])
    mean = grads.mean(dim=0)
    assert float((grads @ ours).min()) > float((grads @ mean).min())


# ------------------------------------------------------------------------------ Nash-MTL


def test_nash_alpha_satisfies_the_bargaining_equation() -> None:
    for seed in range(5):
        grads = _random_grads(seed, t=3, d=8)
        d, state = _update(NashMTL(), _signals(grads))
        alpha = np.array([d.shared_weights[t] for t in TASKS])  # type: ignore[index]
        g = (grads @ grads.T).numpy()
        # On the raw Gramian, as the authors' code, LibMTL and TorchJD (issue 15).
        np.testing.assert_allclose(g @ alpha, 1.0 / alpha, rtol=1e-8)
        assert state.alpha.tolist() == pytest.approx(alpha.tolist())
        # Equivalently, every task gets the same share αᵢ gᵢ·d of the update.
        upd = _shared_update(d, grads, TASKS).numpy()
        shares = alpha * (grads.numpy() @ upd)
        np.testing.assert_allclose(shares, shares[0], rtol=1e-7)


def test_nash_step_does_not_grow_with_the_gradients() -> None:
    # The authors' rule αᵢ(Gα)ᵢ = 1 on the raw Gramian gives ||Σαᵢgᵢ||² = αᵀGα = T whatever
    # the gradients' size; auxlab solved on G/||G||_F, so its step grew as √||G||_F.
    grads = _random_grads(21)
    for factor in (1e-3, 1.0, 1e3):
        d, _ = _update(NashMTL(), _signals(grads * factor))
        upd = _shared_update(d, grads * factor, TASKS)
        assert float(upd.norm()) == pytest.approx(math.sqrt(3.0), rel=1e-8)
    # The former rule stays available, as an explicit option.
    g = (grads @ grads.T).numpy()
    d, _ = _update(NashMTL(normalize_gramian=True), _signals(grads))
    alpha = np.array([d.shared_weights[t] for t in TASKS])  # type: ignore[index]
    np.testing.assert_allclose(g / np.linalg.norm(g) @ alpha, 1.0 / alpha, rtol=1e-8)
    with pytest.raises(TypeError, match="normalize_gramian"):
        NashMTL(normalize_gramian="yes")  # type: ignore[arg-type]


def test_nash_solves_gradients_far_apart_in_size() -> None:
    grads = _random_grads(22)
    grads = grads * torch.tensor([[1e4], [1.0], [1e-4]], dtype=torch.float64)
    d, _ = _update(NashMTL(), _signals(grads))
    alpha = np.array([d.shared_weights[t] for t in TASKS])  # type: ignore[index]
    g = (grads @ grads.T).numpy()
    np.testing.assert_allclose(alpha * (g @ alpha), 1.0, rtol=1e-8)


def test_nash_direction_is_scale_invariant() -> None:
    grads = _random_grads(12)
    ua = _shared_update(_update(NashMTL(), _signals(grads))[0], grads, TASKS)
    scaled = grads * torch.tensor([[1.0], [1000.0], [1.0]], dtype=torch.float64)
    ub = _shared_update(_update(NashMTL(), _signals(scaled))[0], scaled, TASKS)
    assert float(ua @ ub / (ua.norm() * ub.norm())) == pytest.approx(1.0, abs=1e-10)


def test_nash_update_every_and_max_norm() -> None:
    s = NashMTL(update_every=3, max_norm=0.1)
    state = s.init(list(TASKS), "main")
    first = None
    for step in range(4):
        grads = _random_grads(300 + step)
        d, state = _update(s, _signals(grads, step=step), state)
        upd = _shared_update(d, grads, TASKS)
        assert float(upd.norm()) <= 0.1 + 1e-12
        if step == 0:
            first = state.alpha.clone()
        elif step < 3:
            assert torch.equal(state.alpha, first)  # reused between recomputations
        else:
            assert not torch.equal(state.alpha, first)


def test_nash_zero_gradient_task_and_no_solution_fallback() -> None:
    grads = _random_grads(13)
    grads[2] = 0.0
    d, _ = _update(NashMTL(), _signals(grads))
    assert d.shared_weights["aux2"] == 0.0  # type: ignore[index]
    sub = (grads[:2] @ grads[:2].T).numpy()
    alpha = np.array([d.shared_weights["main"], d.shared_weights["aux1"]])  # type: ignore[index]
    np.testing.assert_allclose(sub @ alpha, 1 / alpha, rtol=1e-8)
    d, _ = _update(NashMTL(), _signals(torch.zeros(3, 4, dtype=torch.float64)))
    assert d.shared_weights == dict.fromkeys(TASKS, 1.0)
    # Opposite gradients: no bargaining solution; warn and reuse the previous α.
    s = NashMTL()
    good, state = _update(s, _signals(_random_grads(1, t=2)))
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64)
    with pytest.warns(SolverWarning, match="Nash-MTL"):
        d, _ = _update(s, _signals(opposite, step=1), state)
    assert d.shared_weights == pytest.approx(good.shared_weights)


# --------------------------------------------------------------------------- Aligned-MTL


def test_aligned_mtl_matches_eigen_reference_and_aligns() -> None:
    grads = _random_grads(14, t=3, d=5)
    g = grads @ grads.T
    lam, vec = torch.linalg.eigh(g)
    for mode, level in (("min", lam.min()), ("median", lam.median()), ("rmse", lam.mean())):
        balance = level.sqrt() * vec @ torch.diag(lam.rsqrt()) @ vec.T
        d, _ = _update(AlignedMTL(scale_mode=mode), _signals(grads))  # type: ignore[arg-type]
        expected = balance @ torch.ones(3, dtype=torch.float64)
        assert [d.shared_weights[t] for t in TASKS] == pytest.approx(expected.tolist())  # type: ignore[index]
    # Recover B column by column with one-hot preferences: the aligned gradients B J have
    # Gramian B G B = λ_min I (orthogonal, equal norms).
    cols = []
    for i in range(3):
        pref = [0.0, 0.0, 0.0]
        pref[i] = 1.0
        d, _ = _update(AlignedMTL(pref_vector=pref), _signals(grads))
        cols.append([d.shared_weights[t] for t in TASKS])  # type: ignore[index]
    b = torch.tensor(cols, dtype=torch.float64).T
    np.testing.assert_allclose((b @ g @ b).numpy(), (lam.min() * torch.eye(3)).numpy(), atol=1e-10)


def test_aligned_mtl_is_not_scale_invariant_in_general() -> None:
    # Why its scale_reaction is "none": one loss ×10 turns the update.
    grads = _random_grads(15, t=3, d=5)
    ua = _shared_update(_update(AlignedMTL(), _signals(grads))[0], grads, TASKS)
    scaled = grads * torch.tensor([[1.0], [10.0], [1.0]], dtype=torch.float64)
    ub = _shared_update(_update(AlignedMTL(), _signals(scaled))[0], scaled, TASKS)
    assert float(ua @ ub / (ua.norm() * ub.norm())) < 0.999


def test_aligned_mtl_rank_deficient_and_zero() -> None:
    grads = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    d, _ = _update(AlignedMTL(), _signals(grads))
    assert d.shared_weights["main"] == pytest.approx(d.shared_weights["aux1"])  # type: ignore[index]
    d, _ = _update(AlignedMTL(), _signals(torch.zeros(3, 2, dtype=torch.float64)))
    assert d.shared_weights == dict.fromkeys(TASKS, 1.0)


# -------------------------------------------------------------------------------- UPGrad


def test_upgrad_matches_brute_force_qp_and_is_non_conflicting() -> None:
    so = pytest.importorskip("scipy.optimize")
    for seed in range(6):
        grads = _random_grads(400 + seed, t=4, d=3)  # more tasks than dimensions: conflicts
        tasks = ("main", "a", "b", "c")
        pref = [0.4, 0.3, 0.2, 0.1]
        d, _ = _update(UPGrad(pref_vector=pref), _signals(grads, tasks=tasks))
        g = (grads @ grads.T).numpy()
        total = np.zeros(4)
        for i in range(4):
            u = np.zeros(4)
            u[i] = pref[i]
            res = so.minimize(
                lambda v, g=g: v @ g @ v,
                u + 0.1,
                bounds=[(ui, None) for ui in u],
                method="SLSQP",
                options={"ftol": 1e-15, "maxiter": 1000},
            )
            total += res.x
        ours = _shared_update(d, grads, tasks)
        np.testing.assert_allclose(ours.numpy(), total @ grads.numpy(), atol=1e-5)
        assert (grads @ ours >= -1e-10).all()  # non-negative inner product with every gᵢ


def test_upgrad_without_conflict_is_the_preference_weighted_sum() -> None:
    grads = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.5, 2.0]], dtype=torch.float64)
    d, _ = _update(UPGrad(), _signals(grads))
    assert d.shared_weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))


def test_upgrad_solver_failure_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import auxlab.weighting._upgrad as module

    monkeypatch.setattr(module, "dual_cone_weights", lambda g, u, factor=None, eps=None: (u, False))
    with pytest.warns(SolverWarning, match="UPGrad"):
        d, _ = _update(UPGrad(), _signals(_random_grads(0)))
    assert d.shared_weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))


def test_cagrad_solver_failure_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import auxlab.weighting._cagrad as module

    monkeypatch.setattr(module, "cagrad_weights", lambda g, c, r, e: (np.ones(len(g)), False))
    with pytest.warns(SolverWarning, match="CAGrad"):
        d, _ = _update(CAGrad(rescale=0), _signals(_random_grads(0)))
    assert d.shared_weights == pytest.approx(dict.fromkeys(TASKS, 1 / 3))


# -------------------------------------------------------------------------------- DB-MTL


def test_dbmtl_ema_by_hand() -> None:
    beta, sigma = 0.9, 0.5
    s = DBMTL(beta=beta, beta_sigma=sigma)
    state = s.init(list(TASKS), "main")
    buffer = torch.zeros(3, 7, dtype=torch.float64)
    for k in range(1, 5):
        grads = _random_grads(500 + k)
        losses = [0.5 * k, 2.0, 0.1 * k]
        d, state = _update(s, _signals(grads, losses, step=k - 1), state)
        scaled = grads / torch.tensor(losses, dtype=torch.float64)[:, None]
        buffer = scaled + beta / k**sigma * (buffer - scaled)
        norms = buffer.norm(dim=1)
        expected = sum(norms.max() / norms[i] * buffer[i] for i in range(3))
        np.testing.assert_allclose(d.shared_grad.numpy(), expected.numpy(), rtol=1e-12)  # type: ignore[union-attr]
        assert d.weights == pytest.approx({t: 1 / v for t, v in zip(TASKS, losses, strict=True)})
        assert state.updates == k
        np.testing.assert_allclose(state.buffer.numpy(), buffer.numpy(), rtol=1e-12)


def test_dbmtl_is_exactly_scale_invariant() -> None:
    grads = [_random_grads(600 + k) for k in range(3)]
    losses = [[1.0, 2.0, 3.0], [0.9, 1.8, 2.5], [0.8, 1.7, 2.4]]
    factor = torch.tensor([[1.0], [1e6], [1.0]], dtype=torch.float64)
    s = DBMTL()
    sa, sb = s.init(list(TASKS), "main"), s.init(list(TASKS), "main")
    for k in range(3):
        da, sa = _update(s, _signals(grads[k], losses[k], step=k), sa)
        lb = [losses[k][0], losses[k][1] * 1e6, losses[k][2]]
        db, sb = _update(s, _signals(grads[k] * factor, lb, step=k), sb)
        np.testing.assert_allclose(db.shared_grad.numpy(), da.shared_grad.numpy(), rtol=1e-10)  # type: ignore[union-attr]
        assert db.weights["aux1"] == pytest.approx(da.weights["aux1"] / 1e6)


def test_dbmtl_rejects_non_positive_losses_and_handles_zero_gradients() -> None:
    with pytest.raises(ValueError, match="positive"):
        _update(DBMTL(), _signals(_random_grads(0), [1.0, -0.5, 1.0]))
    d, _ = _update(DBMTL(), _signals(torch.zeros(3, 4, dtype=torch.float64)))
    assert torch.equal(d.shared_grad, torch.zeros(4, dtype=torch.float64))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ GradDrop


def test_graddrop_matches_naive_reference() -> None:
    leak = {"main": 0.3, "aux1": 0.0, "aux2": 0.5}
    s = GradDrop(leak=leak, seed=21)
    state = s.init(list(TASKS), "main")
    gen = torch.Generator().manual_seed(21)
    for step in range(3):
        grads = _random_grads(700 + step, d=50)
        d, state = _update(s, _signals(grads, step=step), state)
        u = torch.rand(50, generator=gen, dtype=torch.float64)
        expected = torch.zeros(50, dtype=torch.float64)
        for k in range(50):
            col = grads[:, k]
            purity = 0.5 * (1 + col.sum() / col.abs().sum())
            for i, t in enumerate(TASKS):
                keep = (purity > u[k] and col[i] > 0) or (purity < u[k] and col[i] < 0)
                expected[k] += (leak[t] + (1 - leak[t]) * float(keep)) * col[i]
        np.testing.assert_allclose(d.shared_grad.numpy(), expected.numpy(), atol=1e-12)  # type: ignore[union-attr]
        assert d.weights == dict.fromkeys(TASKS, 1.0)


def test_graddrop_special_cases() -> None:
    grads = _random_grads(8, d=20)
    d, _ = _update(GradDrop(leak=1.0), _signals(grads))
    np.testing.assert_allclose(d.shared_grad.numpy(), grads.sum(0).numpy())  # type: ignore[union-attr]
    same_sign = grads.abs()
    d, _ = _update(GradDrop(), _signals(same_sign))
    np.testing.assert_allclose(d.shared_grad.numpy(), same_sign.sum(0).numpy())  # type: ignore[union-attr]
    # Without leak, each coordinate keeps either all its positive components or all its
    # negative ones.
    d, _ = _update(GradDrop(), _signals(grads))
    assert d.shared_grad is not None
    positive = grads.clamp_min(0).sum(0)
    negative = grads.clamp_max(0).sum(0)
    is_pos = (d.shared_grad - positive).abs() < 1e-12
    is_neg = (d.shared_grad - negative).abs() < 1e-12
    assert (is_pos | is_neg).all()
    assert is_pos.any()
    assert is_neg.any()
    d, _ = _update(GradDrop(), _signals(torch.zeros(3, 5, dtype=torch.float64)))
    assert torch.equal(d.shared_grad, torch.zeros(5, dtype=torch.float64))  # type: ignore[arg-type]


# --------------------------------------------------------------- all strategies together

ALL = [
    GradNorm(),
    MGDA(),
    MGDA("l2"),
    MGDAUB(),
    PCGrad(),
    GradVac(),
    IMTL(),
    CAGrad(),
    NashMTL(),
    AlignedMTL(),
    UPGrad(),
    DBMTL(),
    GradDrop(),
]


@pytest.mark.parametrize("strategy", ALL, ids=repr)
def test_degenerate_inputs_give_finite_decisions(strategy: Strategy) -> None:
    cases = {
        "zero": torch.zeros(3, 4, dtype=torch.float64),
        "identical": _random_grads(0)[[0, 1, 1]],
        "tiny": _random_grads(1) * 1e-10,
        "huge": _random_grads(2) * 1e15,
        "one-zero": torch.cat([_random_grads(3)[:2], torch.zeros(1, 7, dtype=torch.float64)]),
        "collinear": torch.tensor([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]], dtype=torch.float64),
    }
    for name, grads in cases.items():
        state = strategy.init(list(TASKS), "main")
        for step in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # none of these is a solver failure
                sig = _signals(grads, [1e-10, 1.0, 1e15], rep=grads, step=step)
                d, state = _update(strategy, sig, state)
            for v in list(d.weights.values()) + list((d.shared_weights or {}).values()):
                assert math.isfinite(float(v)), (name, d)
            assert torch.isfinite(_shared_update(d, grads, TASKS)).all(), name


@pytest.mark.parametrize("strategy", ALL, ids=repr)
def test_a_single_task_is_plain_gradient_descent(strategy: Strategy) -> None:
    grads = _random_grads(4, t=1)
    state = strategy.init(["main"], "main")
    d, _ = _update(strategy, _signals(grads, [2.0], ["main"], rep=grads), state)
    upd = _shared_update(d, grads, ["main"])
    # The shared update is a non-negative multiple of the only gradient.
    cos = float(upd @ grads[0] / (upd.norm() * grads[0].norm()))
    assert cos == pytest.approx(1.0)


@pytest.mark.parametrize("strategy", ALL, ids=repr)
def test_conformance_suite(strategy: Strategy) -> None:
    checks = pytest.importorskip("auxlab.checks")
    checks.check_strategy(strategy)


# ------------------------------------------------------------------ end to end, Balancer


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh())
        self.heads = nn.ModuleDict({"main": nn.Linear(6, 1), "aux": nn.Linear(6, 1)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.trunk(x)
        return z, {t: h(z).squeeze(-1) for t, h in self.heads.items()}


@pytest.mark.parametrize(
    ("strategy", "every"),
    [(s, 1) for s in ALL] + [(CAGrad(), 2), (GradDrop(), 2), (NashMTL(update_every=2), 1)],
    ids=lambda v: repr(v) if isinstance(v, Strategy) else f"every={v}",
)
def test_end_to_end_through_the_balancer(strategy: Strategy, every: int) -> None:
    torch.manual_seed(0)
    model = _TwoHeads()
    x = torch.randn(32, 4)
    y = {"main": x.sum(1), "aux": x[:, 0] - x[:, 1]}
    # GradNorm as published measures norms on the last shared layer.
    shared = model.trunk[2] if isinstance(strategy, GradNorm) else model.trunk
    balancer = Balancer(
        strategy.clone(), shared=None if isinstance(strategy, MGDAUB) else shared, every=every
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    first = None
    for _ in range(25):
        opt.zero_grad()
        z, out = model(x)
        losses = {t: nn.functional.mse_loss(out[t], y[t]) for t in out}
        record = balancer.backward(losses, representation=z)
        for p in model.parameters():
            assert p.grad is not None
            assert torch.isfinite(p.grad).all()
        opt.step()
        first = first if first is not None else record.losses["main"]
    assert all(math.isfinite(v) for v in record.weights.values())
    assert record.losses["main"] < first


def test_shared_weights_reach_the_shared_parameters() -> None:
    # The Balancer writes Σ cᵢ gᵢ on the shared block and each head's own gradient.
    torch.manual_seed(1)
    model = _TwoHeads()
    x = torch.randn(16, 4)
    y = {"main": x.sum(1), "aux": -x.sum(1)}  # conflicting tasks
    _, out = model(x)
    losses = {t: nn.functional.mse_loss(out[t], y[t]) for t in out}
    params = list(model.trunk.parameters())
    per_task = [
        torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(losses[t], params, retain_graph=True)]
        )
        for t in ("main", "aux")
    ]
    head_grad = torch.autograd.grad(losses["aux"], model.heads["aux"].weight, retain_graph=True)[0]
    strategy = MGDA()
    balancer = Balancer(strategy, shared=model.trunk)
    balancer.backward(losses)
    g = torch.stack(per_task).double()
    d, _ = _update(MGDA(), _signals(g, tasks=("main", "aux")))
    expected = _shared_update(d, g, ("main", "aux")).float()
    written = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
    torch.testing.assert_close(written, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.heads["aux"].weight.grad, head_grad)
