"""The online learners' arithmetic: gradients against autograd, the hedge by hand, Aux-Drop's
dropout, feature handling and arguments."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from auxlab.online import (
    AuxDrop,
    AuxNet,
    HedgeBackprop,
    OnlineLogistic,
    auxdrop_drop_probability,
)

MODES = [None, "paper", "code"]
LR = 0.1


def _encoded(model, x):
    return model._encode(*model._raw_from_values(model._values(x)))


def _capture(opt):
    """Record the gradients an optimiser is given (ours: AdaGrad), then step as usual."""
    seen = {}
    step = opt.step
    opt.step = lambda params, grads: (seen.setdefault("g", grads), step(params, grads))
    return seen


def _grads_equal(seen, names, grads):
    assert len(seen["g"]) == len(names)
    for k, mine in zip(names, seen["g"], strict=True):
        ref = grads.get(k)
        ref = torch.zeros_like(mine) if ref is None else ref
        assert torch.allclose(mine, ref, atol=1e-5), (k, float((mine - ref).abs().max()))


def _sgd_update_equals(model, names, x, y, grads):
    before = {k: getattr(model, k).clone() for k in names}
    model.learn_one(x, y)
    for k in names:
        upd = (before[k] - getattr(model, k)) / LR
        g = grads.get(k)
        g = torch.zeros_like(upd) if g is None else g
        assert torch.allclose(upd, g, atol=1e-5), (k, float((upd - g).abs().max()))


@pytest.mark.parametrize("mode", MODES)
def test_hbp_update_is_one_backward_of_the_alpha_weighted_losses(mode):
    # ODL eqs. (2)-(3): classifier l gets -lr*alpha_l*grad(l_l); hidden layers the alpha-weighted
    # sum of the gradients of the classifiers above. Reference: autograd on sum(alpha*loss).
    m = HedgeBackprop(n_layers=3, n_units=5, lr=LR, faithful=mode, seed=1)
    m.learn_one({"a": 1.0, "b": -2.0, "c": 0.5}, True)
    m.learn_one({"a": 0.3, "b": -1.0, "c": 1.5}, False)
    x = {"a": 0.7, "b": 0.2, "c": -1.1}
    _, xa, ma = _encoded(m, x)
    if mode is None:  # ours: the input is [z-scores ; availability flags]
        xa = torch.cat([xa, ma.float()])
    names = ["_W1", "_b", "_W", "_V", "_c", "_V0", "_c0"]
    P = {k: getattr(m, k).clone().requires_grad_(True) for k in names}
    h = torch.relu(P["_W1"] @ xa + P["_b"][0])
    hs = [h]
    for layer in range(1, 3):
        h = torch.relu(P["_W"][layer - 1] @ h + P["_b"][layer])
        hs.append(h)
    Z = [P["_V"][layer] @ hs[layer] + P["_c"][layer] for layer in range(3)]
    if mode != "code":
        Z = [P["_V0"] @ xa + P["_c0"], *Z]
    Z = torch.stack(Z)
    losses = F.cross_entropy(Z, torch.ones(len(Z), dtype=torch.long), reduction="none")
    (m.alpha * losses).sum().backward()
    grads = {k: p.grad for k, p in P.items()}
    if mode is None:  # ours: the same gradients, given to AdaGrad
        seen = _capture(m._opt)
        m.learn_one(x, True)
        _grads_equal(seen, ["_W1", "_W", "_b", "_V", "_c", "_V0", "_c0"], grads)
    else:
        _sgd_update_equals(m, names, x, True, grads)
    assert len(m.alpha) == (3 if mode == "code" else 4)


def _hand_hedge(alpha, losses, beta, floor):
    new = [max(a * beta**loss, floor) for a, loss in zip(alpha, losses, strict=True)]
    return [v / sum(new) for v in new]


def test_hedge_by_hand_for_three_instances():
    # lr=0 freezes the network, so each instance's per-exit losses can be computed from the
    # initial weights; alpha then follows max(alpha*beta^loss, s/N), renormalised.
    m = HedgeBackprop(n_layers=2, n_units=4, lr=0.0, beta=0.5, s=0.2, faithful="paper", seed=0)
    stream = [({"a": 1.0, "b": 2.0}, True), ({"a": -1.0, "b": 0.5}, False), ({"a": 3.0}, True)]
    m.learn_one({"a": 0.0, "b": 0.0}, True)  # creates the slots; zero input
    alpha = m.alpha.tolist()
    # Redo the first (zero) instance by hand too, from a fresh model, to start from uniform.
    assert alpha != [1 / 3] * 3
    for x, y in stream:
        _, xa, _ = _encoded(m, x)
        h1 = torch.relu(m._W1 @ xa + m._b[0])
        h2 = torch.relu(m._W[0] @ h1 + m._b[1])
        Z = torch.stack([m._V0 @ xa + m._c0, m._V[0] @ h1 + m._c[0], m._V[1] @ h2 + m._c[1]])
        losses = (-torch.log_softmax(Z, -1)[:, int(y)]).tolist()
        alpha = _hand_hedge(alpha, losses, 0.5, 0.2 / 3)
        m.learn_one(x, y)
        assert m.alpha.tolist() == pytest.approx(alpha, rel=1e-5)
    assert min(alpha) >= 0.2 / 3 / sum(max(a, 0.2 / 3) for a in alpha) - 1e-6


AUXNET_NAMES = ["_Wb1", "_bb1", "_Wb", "_bb", "_Wm", "_bm", "_We1", "_be1", "_We", "_be",
                "_Vd", "_cd", "_Wa", "_ba", "_Va", "_ca"]  # fmt: skip


def _auxnet_reference(m, x, y, code):
    xb, xa, ma = _encoded(m, x)
    ours = m.faithful is None
    names = AUXNET_NAMES + (["_Vlb", "_Vla", "_cl"] if ours else [])
    P = {k: getattr(m, k).clone().requires_grad_(True) for k in names}
    nb, ne, H = m.n_base_layers, m.n_end_layers, m.n_units
    D = nb + 1 + ne + int(ours)  # ours: the linear expert after the end layers
    h = torch.relu(P["_Wb1"] @ xb + P["_bb1"])
    hb = [h]
    for k in range(nb - 1):
        h = torch.relu(P["_Wb"][k] @ h + P["_bb"][k])
        hb.append(h)
    mid = torch.relu(P["_Wm"] @ h + P["_bm"])
    idx = ma.nonzero().squeeze(1).tolist()
    alpha = m._alpha
    den = alpha[nb] + alpha[D:][idx].sum()
    blocks, auxs = [alpha[nb] / den * mid], []
    for j in range(m._Wa.shape[0]):  # an explicit loop over features: the naive reference
        if j in idx:
            a = torch.relu(xa[j] * P["_Wa"][j] + P["_ba"][j])
            auxs.append(a)
            blocks.append(alpha[D + j] / den * a)
        else:
            blocks.append(torch.zeros(H))
    e = torch.relu(P["_We1"] @ torch.cat(blocks) + P["_be1"])
    he = [e]
    for k in range(ne - 1):
        e = torch.relu(P["_We"][k] @ e + P["_be"][k])
        he.append(e)
    hd = [*hb, mid, *he]
    Z = [P["_Vd"][i] @ hd[i] + P["_cd"][i] for i in range(nb + 1 + ne)]
    if ours:
        Z.append(P["_Vlb"] @ xb + P["_Vla"] @ torch.cat([xa, ma.float()]) + P["_cl"])
    Z += [P["_Va"][j] @ a + P["_ca"][j] for j, a in zip(idx, auxs, strict=True)]
    Z = torch.stack(Z)
    aS = torch.cat([alpha[:D], alpha[D:][idx]])
    abar = aS / aS.sum()
    t = torch.full((len(Z),), int(y))
    if code:
        loss = F.cross_entropy(abar[:, None] * torch.softmax(Z, -1), t, reduction="none").sum()
    else:
        loss = (abar * F.cross_entropy(Z, t, reduction="none")).sum()
    loss.backward()
    return {k: P[k].grad for k in names}, idx


@pytest.mark.parametrize("mode", MODES)
def test_auxnet_gradients_match_a_per_feature_loop(mode):
    m = AuxNet(2, 3, 4, lr=LR, base_features=("a",), faithful=mode, seed=3)
    m.learn_one({"a": 1.0, "b": 2.0, "c": 0.1}, True)
    m.learn_one({"a": 0.5, "c": -1.0, "d": 2.0}, False)
    x = {"a": 0.2, "b": 1.0, "d": -0.5}
    grads, idx = _auxnet_reference(m, x, True, mode == "code")
    if mode is None:  # ours: the same gradients (zero rows for absent features) to AdaGrad
        seen = _capture(m._ada)
        before = m._Wa.clone()
        m.learn_one(x, True)
        _grads_equal(seen, [*AUXNET_NAMES, "_Vlb", "_Vla", "_cl"], grads)
        c = m._slot["c"]  # absent: AdaGrad does not move its layer
        assert torch.equal(m._Wa[c], before[c])
        assert not torch.equal(m._Wa[idx], before[idx])
        return
    if mode == "paper":
        _sgd_update_equals(m, AUXNET_NAMES, x, True, grads)
        return
    seen = {}
    step = m._opt.step
    m._opt.step = lambda g, rows=None: (seen.setdefault("g", g), step(g, rows))
    before = {k: getattr(m, k).clone() for k in ("_Wa", "_Va")}
    m.learn_one(x, True)
    for i, k in enumerate(AUXNET_NAMES):
        mine = seen["g"][i]
        if i >= 12:  # row-wise tensors: gradients of the present features only
            full = torch.zeros_like(grads[k])
            full[idx] = mine
            mine = full
        assert torch.allclose(mine, grads[k], atol=1e-5), k
    # AdamW leaves the layer of the absent feature ("c") alone, as PyTorch does with grad=None.
    c = m._slot["c"]
    assert torch.equal(m._Wa[c], before["_Wa"][c])
    assert torch.equal(m._Va[c], before["_Va"][c])
    assert not torch.equal(m._Wa[idx], before["_Wa"][idx])


def test_auxnet_hedge_is_restricted_to_the_present_experts(monkeypatch):
    import auxlab.online._auxnet as mod

    calls = []
    real = mod.hedge_update

    def spy(alpha, losses, beta, s, present=None, sleeping=False):
        assert not sleeping  # the papers' masked hedge (ours uses the sleeping form)
        calls.append((alpha.clone(), losses.clone(), present.clone()))
        return real(alpha, losses, beta, s, present)

    monkeypatch.setattr(mod, "hedge_update", spy)
    m = AuxNet(1, 1, 4, lr=0.05, base_features=("a",), faithful="paper", seed=0)
    m.learn_one({"a": 1.0, "b": 1.0, "c": 1.0}, True)
    before = m.alpha
    m.learn_one({"a": 1.0, "b": 2.0}, False)  # "c" absent
    alpha, losses, present = calls[-1]
    c = 3 + m._slot["c"]
    assert present.tolist() == [i != c for i in range(len(present))]
    assert torch.equal(alpha, before)
    # By hand: present experts max(alpha*beta^loss, s/N), the absent one unchanged, normalise.
    n = len(alpha)
    triples = zip(alpha.tolist(), losses.tolist(), present.tolist(), strict=True)
    new = [max(a * 0.99**loss, 0.2 / n) if p else a for a, loss, p in triples]
    assert m.alpha.tolist() == pytest.approx([v / sum(new) for v in new], rel=1e-5)


@pytest.mark.parametrize("variant", ["odl", "ogd"])
@pytest.mark.parametrize(("z", "base"), [(1, None), (3, ("a", "b"))])
@pytest.mark.parametrize("mode", MODES)
def test_auxdrop_gradients_match_autograd(variant, z, base, mode):
    m = AuxDrop(5, 4, aux_position=z, aux_units=10, lr=LR, base_features=base,
                variant=variant, faithful=mode, seed=2)  # fmt: skip
    m.learn_one({"a": 1.0, "b": 2.0, "c": 0.1, "d": 1}, True)
    m.learn_one({"a": 0.5, "b": 1, "c": -1.0, "e": 2.0}, False)
    x = {"a": 0.2, "b": 1.0, "d": -0.5, "e": 3}
    xb, xa, ma = _encoded(m, x)
    mask = m._aux_mask(ma)
    ours = mode is None
    linear = ours and variant == "odl"
    if ours:  # the AuxLayer reads [z-scores ; availability flags]
        xa = torch.cat([xa, ma.float()])
    vlb, vla, cl = (t.clone().requires_grad_(True) for t in (m._Vlb, m._Vla, m._cl))
    Ws = [w.clone().requires_grad_(True) for w in m._Ws]
    bs = [b.clone().requires_grad_(True) for b in m._bs]
    wza, V, c = (t.clone().requires_grad_(True) for t in (m._Wz_aux, m._V, m._c))
    h, hs = xb, [xb]
    for layer in range(1, 6):
        pre = Ws[layer - 1] @ h + bs[layer - 1]
        h = torch.relu(pre + wza @ xa) * mask if layer == z else torch.relu(pre)
        hs.append(h)
    Z = [V[e] @ hs[layer] + c[e] for e, layer in enumerate(m._exits)]
    if linear:  # ours: the linear expert first
        Z.insert(0, vlb @ xb + vla @ xa + cl)
    Z = torch.stack(Z)
    t = torch.ones(len(Z), dtype=torch.long)
    inp = torch.softmax(Z, -1) if mode == "code" else Z
    (m.alpha * F.cross_entropy(inp, t, reduction="none")).sum().backward()
    refs = [*Ws, *bs, wza, V, c]
    before = [r.detach().clone() for r in refs]
    if ours:
        refs = [*Ws, *bs, V, c, wza] + ([vlb, vla, cl] if linear else [])
        seen = _capture(m._opt)
    m.learn_one(x, True)
    after = [*m._Ws, *m._bs, m._Wz_aux, m._V, m._c]
    if ours:
        for mine, r in zip(seen["g"], refs, strict=True):
            g = torch.zeros_like(mine) if r.grad is None else r.grad
            assert torch.allclose(mine, g, atol=1e-5)
    else:
        for b, a, r in zip(before, after, refs, strict=True):
            g = torch.zeros_like(b) if r.grad is None else r.grad
            assert torch.allclose((b - a) / LR, g, atol=1e-5)
    # Missing feature "c" (frozen): its AuxLayer column (ours: and its flag's) did not move.
    j = m._slot["c"]
    cols = [j, j + m.n_aux] if ours else [j]
    assert torch.equal(after[2 * 5][:, cols], before[2 * 5][:, cols])
    expected_exits = [5] if variant == "ogd" else [k for k in range(2, 6) if k != z]
    assert m._exits == expected_exits


def test_auxdrop_drop_probability_formula():
    # |M| = 100 nodes, 20 auxiliary, 10 missing, d = 0.3: 30 nodes to drop in expectation.
    assert auxdrop_drop_probability(100, 20, 10, 0.3) == pytest.approx(20 / 90)
    assert auxdrop_drop_probability(100, 20, 10, 0.3, "code") == pytest.approx(20 / 80)
    assert auxdrop_drop_probability(100, 20, 0, 0.3) == pytest.approx(0.3)
    # More missing than d*|M|: clipped at 0 (no random drop).
    assert auxdrop_drop_probability(100, 60, 40, 0.3) == 0.0


@pytest.mark.parametrize("mode", [None, "code"])
def test_auxdrop_expected_drop_rate_is_d(mode):
    m = AuxDrop(3, 4, aux_units=50, dropout=0.3, faithful=mode, seed=5)
    names = [f"f{j}" for j in range(12)]
    m.learn_one(dict.fromkeys(names, 1.0), True)  # 12 auxiliary nodes
    rng = np.random.default_rng(0)
    dropped, selective_ok = [], True
    for t in range(3000):
        ma = torch.from_numpy(rng.random(12) < 0.6)
        m._n_seen = t + 1
        keep = m._aux_mask(ma) > 0
        selective_ok &= not bool(keep[:12][~ma].any())
        if mode == "code":
            selective_ok &= bool(keep[:12][ma].all())
        dropped.append(1.0 - float(keep.float().mean()))
    assert selective_ok
    assert np.mean(dropped) == pytest.approx(0.3, abs=0.005)


def test_auxdrop_prediction_uses_the_dropout_draw_of_the_next_learning_step():
    m = AuxDrop(3, 4, aux_units=20, seed=1)
    x = {"a": 1.0, "b": 2.0}
    m.learn_one(x, True)
    p = m.predict_proba_one(x)
    assert m.predict_proba_one(x) == p  # pure
    m.learn_one(x, False)
    assert m.predict_proba_one(x) != p  # the next draw (and new weights)


def test_auxnet_creates_a_unit_for_a_new_feature_and_auxdrop_ignores_past_capacity():
    net = AuxNet(1, 1, 4, base_features=1)
    net.learn_one({"a": 1.0}, True)
    assert net.n_aux == 0  # "a" became the base feature
    net.learn_one({"a": 1.0, "b": 2.0}, True)
    net.learn_one({"a": 1.0, "c": 2.0}, True)
    assert net.n_aux == 2
    assert net._We1.shape[1] == 3 * 4
    assert len(net.alpha) == 1 + 1 + 1 + 1 + 2  # base, middle, end, linear (ours), 2 aux
    drop = AuxDrop(3, 4, aux_units=3)
    drop.learn_one({"a": 1.0, "b": 1.0}, True)
    with pytest.warns(RuntimeWarning, match="no room"):
        drop.learn_one({"c": 1.0, "d": 1.0, "e": 1.0}, True)
    assert drop.n_aux == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drop.learn_one({"d": 2.0, "e": 1.0}, False)  # ignored features warn once


def test_base_features_are_forward_filled():
    m = AuxNet(1, 1, 4, base_features=("a",), faithful="paper")
    m.learn_one({"a": 3.0, "b": 1.0}, True)
    xb, _, _ = _encoded(m, {"b": 1.0})
    assert xb.tolist() == [3.0]
    m2 = AuxNet(1, 1, 4, base_features=2, faithful="paper")
    m2.learn_one({"z": 1.0, "y": 2.0, "x": 5.0}, True)
    assert m2._base_pos == {"x": 0, "y": 1}  # the first two, in sorted order
    assert m2.n_aux == 1


def test_unseen_features_are_ignored_when_predicting():
    m = HedgeBackprop(n_layers=2, n_units=4, seed=0)
    m.learn_one({"a": 1.0}, True)
    assert m.predict_proba_one({"a": 1.0, "new": 5.0}) == m.predict_proba_one({"a": 1.0})
    assert m.n_aux == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: HedgeBackprop(faithful="exact"),
        lambda: AuxNet(base_features=0),
        lambda: AuxDrop(aux_position=3),
        lambda: AuxDrop(variant="sgd"),
        lambda: AuxDrop(dropout=1.0),
        lambda: HedgeBackprop(n_classes=1),
    ],
)
def test_bad_arguments_fail_at_first_use_with_a_clear_message(make):
    model = make()  # constructors only store
    with pytest.raises(ValueError, match=type(model).__name__):
        model.learn_one({"a": 1.0}, True)


def test_clone_overrides_and_river_style_new_params():
    m = AuxDrop(dropout=0.2, seed=3)
    m.learn_one({"a": 1.0}, True)
    c = m.clone(dropout=0.4)
    assert (c.dropout, c.seed) == (0.4, 3)
    assert not hasattr(c, "_built")
    assert m.clone({"lr": 0.5}).lr == 0.5
    with pytest.raises(TypeError, match="no argument"):
        m.clone(depth=3)
    twin = m.clone(include_attributes=True)
    assert twin.predict_proba_one({"a": 1.0}) == m.predict_proba_one({"a": 1.0})


def test_multiclass_labels():
    m = HedgeBackprop(n_layers=2, n_units=8, n_classes=3, lr=0.1, seed=0)
    for _ in range(30):
        for k in range(3):
            m.learn_one({"a": float(k)}, k)
    proba = m.predict_proba_one({"a": 2.0})
    assert set(proba) == {0, 1, 2}
    assert math.isclose(sum(proba.values()), 1.0)
    with pytest.raises(ValueError, match="labels"):
        m.learn_one({"a": 1.0}, 3)


def test_online_logistic_learns_a_linear_rule_from_availability():
    rng = np.random.default_rng(0)
    m = OnlineLogistic(lr=0.5)
    errors = 0
    for t in range(600):
        x = {"v": float(rng.normal())}
        y = bool(rng.random() < 0.5)
        if y:
            x["flag"] = 1.0  # the label is *which* features are present
        errors += (m.predict_one(x) != y) and t >= 300
        m.learn_one(x, y)
    assert errors < 15


def test_adagrad_step_by_hand_and_a_zero_gradient_does_not_move():
    from auxlab.online._ops import AdaGrad

    w = torch.tensor([1.0, 2.0, 3.0])
    opt = AdaGrad([w], lr=0.5, eps=1e-12)
    opt.step([w], [torch.tensor([2.0, 0.0, -1.0])])
    assert w.tolist() == pytest.approx([0.5, 2.0, 3.5])  # -0.5 * g / |g|; 0 stays
    opt.step([w], [torch.tensor([1.0, 0.0, 1.0])])
    assert w.tolist() == pytest.approx([0.5 - 0.5 / math.sqrt(5), 2.0, 3.5 - 0.5 / math.sqrt(2)])


def test_adagrad_fused_kernel_equals_the_multi_tensor_form(monkeypatch):
    from auxlab.online import _ops

    gen = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 2, 4)]
    init = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) * (i % 2) for s in shapes] for i in range(4)]
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(_ops, "_FUSED_ADAGRAD", None)
        params = [p.clone() for p in init]
        opt = _ops.AdaGrad(params, lr=0.1)
        for g in grads:
            opt.step(params, g)
        results.append((params, opt.acc))
    if _ops.torch.__dict__.get("_fused_adagrad_") is None:
        pytest.skip("this PyTorch has no fused AdaGrad; only the multi-tensor form runs")
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_matches_torch_optim_adamw_and_rows_sit_out(fused, monkeypatch):
    # Whole tensors (the fused kernel, or the per-tensor form) against torch.optim.AdamW;
    # a row-wise tensor against an AdamW whose parameter per row gets grad=None when absent.
    from auxlab.online import _ops

    if not fused:
        monkeypatch.setattr(_ops, "_FUSED_ADAMW", None)
    gen = torch.Generator().manual_seed(1)
    w0, r0 = torch.randn(4, 3, generator=gen), torch.randn(3, 2, generator=gen)
    w, r = w0.clone(), r0.clone()
    opt = _ops.AdamW([w, r], lr=0.1)
    ref_w = torch.nn.Parameter(w0.clone())
    ref_rows = [torch.nn.Parameter(r0[k].clone()) for k in range(3)]
    ref = torch.optim.AdamW([ref_w, *ref_rows], lr=0.1)
    for step, present in enumerate(([0, 1, 2], [1], [0, 2], [2])):
        gw = torch.randn(4, 3, generator=gen) * (step + 1)
        gr = torch.randn(len(present), 2, generator=gen)
        opt.step([gw, gr], {1: torch.tensor(present)})
        ref.zero_grad(set_to_none=True)
        ref_w.grad = gw.clone()
        for k, row in enumerate(present):
            ref_rows[row].grad = gr[k].clone()
        ref.step()
        torch.testing.assert_close(w, ref_w.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(
            r, torch.stack([p.detach() for p in ref_rows]), rtol=1e-6, atol=1e-7
        )


def test_insert_pairs_keeps_values_then_flags():
    from auxlab.online._ops import insert_pairs

    t = torch.tensor([[1.0, 2.0, 10.0, 20.0]])  # values of slots 0, 1 | their flags
    out = insert_pairs(t, torch.tensor([[3.0]]), torch.tensor([[30.0]]))
    assert out.tolist() == [[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]]


def test_mode_defaults_are_documented_values():
    # Ours: AdaGrad at 0.05 and beta 0.9; the papers' modes keep SGD/AdamW and 0.99.
    for cls in (HedgeBackprop, AuxNet, AuxDrop):
        assert (cls()._lr, cls()._beta) == (0.05, 0.9)
        assert cls(faithful="paper")._beta == 0.99
        assert cls(faithful="code", lr=0.3)._lr == 0.3
    assert HedgeBackprop(faithful="paper")._lr == 0.01
    assert AuxNet(faithful="code")._lr == 0.01
    assert AuxDrop(faithful="paper")._lr == 0.05


@pytest.mark.parametrize(
    ("make", "paper_blind"),
    [
        (lambda mode: HedgeBackprop(3, 8, faithful=mode, seed=0), True),
        # Aux-Drop's selective dropout and Aux-Net's per-feature layers already depend on
        # which features are present, in every mode.
        (lambda mode: AuxDrop(3, 8, aux_units=20, faithful=mode, seed=0), False),
        (lambda mode: AuxNet(1, 1, 8, base_features=("v",), faithful=mode, seed=0), False),
    ],
)
def test_ours_learns_from_which_features_are_present(make, paper_blind):
    # The label is whether "flag" is present; its value is constant, so only availability
    # tells the classes apart. HBP in the paper's mode (no flags) cannot.
    def errors(mode):
        rng = np.random.default_rng(0)
        m, n_err = make(mode), 0
        for t in range(400):
            y = bool(rng.random() < 0.5)
            x = {"v": float(rng.normal()), "w": float(rng.normal())}
            if y:
                x["flag"] = 1.0
            n_err += (m.predict_one(x) != y) and t >= 200
            m.learn_one(x, y)
        return n_err

    assert errors(None) < 20
    if paper_blind:
        assert errors("paper") > 2 * errors(None) + 20


def test_ours_linear_expert_is_in_the_hedge():
    assert len(HedgeBackprop(3, 8).alpha) == 4  # input classifier + 3 layers
    assert len(AuxDrop(4, 8, aux_units=20).alpha) == 1 + 3  # linear + layers 2..4
    assert len(AuxDrop(4, 8, aux_units=20, faithful="code").alpha) == 3
    assert len(AuxNet(1, 1, 8, base_features=1).alpha) == 1 + 1 + 1 + 1


def test_class_balance_weights_by_hand():
    # w_y = (n + K) / (K (c_y + 1)) with the labels before this one: 1, 1, 0 ->
    # n=0: 2/2 = 1; n=1, c_1=1: 3/4; n=2, c_0=0: 4/2 = 2.
    from auxlab.online._balance import ClassBalance

    b = ClassBalance(2)
    assert [b.observe(y) for y in (1, 1, 0)] == [1.0, 0.75, 2.0]
    assert b.counts == [1.0, 2.0]
    three = ClassBalance(3)
    three.observe(2)
    assert three.weight(2) == pytest.approx(4 / 6)
    assert three.weight(0) == pytest.approx(4 / 3)


def test_online_logistic_balanced_by_hand_for_three_instances():
    # AdaGrad on the weighted gradient w_t (p - e_y) x from zero weights, by hand. The inputs
    # [z-score of "a" from the values before ; flag]: (0, 1), then (2-1)/1 = 1 (one value,
    # std 0 -> 1), then (-1-1.5)/0.5 = -5; the weights of labels 1, 1, 0 are 1, 0.75, 2.
    stream = [({"a": 1.0}, True), ({"a": 2.0}, True), ({"a": -1.0}, False)]
    inputs = [[0.0, 1.0], [1.0, 1.0], [-5.0, 1.0]]
    m = OnlineLogistic(lr=0.5, class_weight="balanced")
    W, b = np.zeros((2, 2)), np.zeros(2)
    GW, Gb = np.zeros((2, 2)), np.zeros(2)
    for (x, y), xv, w in zip(stream, inputs, [1.0, 0.75, 2.0], strict=True):
        xv = np.array(xv)
        z = W @ xv + b
        p = np.exp(z) / np.exp(z).sum()
        g = w * (p - np.eye(2)[int(y)])
        gW = np.outer(g, xv)
        GW += gW**2
        Gb += g**2
        W -= 0.5 * gW / (np.sqrt(GW) + 1e-8)
        b -= 0.5 * g / (np.sqrt(Gb) + 1e-8)
        m.learn_one(x, y)
        assert np.allclose(m._W.numpy(), W, atol=1e-5)
        assert np.allclose(m._b.numpy(), b, atol=1e-5)
    plain = OnlineLogistic(lr=0.5)
    for x, y in stream:
        plain.learn_one(x, y)
    assert not np.allclose(plain._W.numpy(), W, atol=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda cw: HedgeBackprop(3, 5, class_weight=cw, seed=1),
        lambda cw: AuxDrop(3, 5, aux_units=20, dropout=0.0, class_weight=cw, seed=1),
        lambda cw: AuxNet(2, 2, 4, base_features=("a",), class_weight=cw, seed=1),
    ],
)
def test_balanced_gradients_are_the_unweighted_ones_times_the_class_weight(make):
    # Labels 1, 1, 0: weights 1, 0.75, 2. At each step, a twin in the same state without
    # weighting gets the gradients divided by w; the hedge discounts by w times the losses.
    stream = [
        ({"a": 1.0, "b": 2.0, "c": 0.1}, True),
        ({"a": 0.5, "b": -1.0, "c": 2.0}, True),
        ({"a": 0.2, "b": 1.0, "c": -0.5}, False),
    ]
    m = make(None)  # ours: balanced by default
    assert m._balanced
    assert not make("none")._balanced
    m._ensure()
    opt = "_ada" if isinstance(m, AuxNet) else "_opt"
    for (x, y), w in zip(stream, [1.0, 0.75, 2.0], strict=True):
        twin = m.clone(include_attributes=True)
        twin._balance = None
        seen_m, seen_t = _capture(getattr(m, opt)), _capture(getattr(twin, opt))
        m.learn_one(x, y)
        twin.learn_one(x, y)
        del getattr(m, opt).step  # drop the spy before the next clone
        for gm, gt in zip(seen_m["g"], seen_t["g"], strict=True):
            assert torch.allclose(gm, w * gt, atol=1e-6)
        if w != 1.0:
            assert not torch.allclose(m.alpha, twin.alpha)
    assert m._balance.counts == [1.0, 2.0]


def test_class_weight_defaults_by_mode_and_bad_values():
    for cls in (HedgeBackprop, AuxNet, AuxDrop):
        assert cls()._balanced
        assert not cls(faithful="paper")._balanced
        assert not cls(faithful="code")._balanced
        assert cls(faithful="paper", class_weight="balanced")._balanced
        assert not cls(class_weight="none")._balanced
    with pytest.raises(ValueError, match="class_weight"):
        HedgeBackprop(class_weight="inverse").learn_one({"a": 1.0}, True)
    with pytest.raises(ValueError, match="class_weight"):
        OnlineLogistic(class_weight="inverse").learn_one({"a": 1.0}, True)


def test_auxnet_ours_sleeping_hedge_keeps_the_absent_experts_weights_and_the_present_total():
    m = AuxNet(1, 1, 4, base_features=("a",), seed=0)
    m.learn_one({"a": 1.0, "b": 1.0, "c": 1.0}, True)
    before = m.alpha
    m.learn_one({"a": 1.0, "b": 2.0}, False)  # "c" absent
    after = m.alpha
    c = len(before) - 2 + m._slot["c"]
    assert after[c] == before[c]
    assert float(after.sum()) == pytest.approx(1.0)
    others = [i for i in range(len(before)) if i != c]
    assert not torch.allclose(after[others], before[others])
    # The papers' masked hedge renormalises over every expert, so the absent one moves.
    p = AuxNet(1, 1, 4, base_features=("a",), faithful="paper", seed=0)
    p.learn_one({"a": 1.0, "b": 1.0, "c": 1.0}, True)
    b2 = p.alpha
    p.learn_one({"a": 1.0, "b": 2.0}, False)
    c = len(b2) - 2 + p._slot["c"]  # no linear expert in the paper's mode
    assert p.alpha[c] != b2[c]
