"""auxlab.tune and `auxlab tune`: learned weights beside weight 0, verify, CLI; ForkMerge."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
from torch import nn

import auxlab
from auxlab import ArrayLoader, Objective, forkmerge, tune
from auxlab._tune import TuneError, learn_weights, paired_comparison
from auxlab.cli import main
from auxlab.train import merge_states
from auxlab.train._forkmerge import search_merge

# A known-answer case: a one-unit linear bottleneck shared by a noisy main regression and an
# auxiliary one. "helps": the auxiliary target is the main task's clean signal (measured: val
# main loss 1.59 at weight 0, 1.33 at 1, 1.21 at 3; 3 seeds, 30 epochs). "hurts": it is an
# orthogonal direction that competes for the one unit (1.59 at 0, 1.91 at 1, 1.93 at 3).
CASES = """
import torch
from torch import nn
from auxlab import ArrayLoader, Objective
from auxlab.study import Problem


class Net(nn.Module):
    output_names = ("main", "aux")

    def __init__(self, d, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(d, 1)
        self.head_main, self.head_aux = nn.Linear(1, 1), nn.Linear(1, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        h = self.trunk(x)
        return {"main": self.head_main(h).squeeze(-1), "aux": self.head_aux(h).squeeze(-1)}


def case(seed, helps=True, n=40, d=20, test=True):
    g = torch.Generator().manual_seed(123)
    u = torch.randn(d, generator=g); u = u / u.norm()
    v = torch.randn(d, generator=g); v = v - (v @ u) * u; v = v / v.norm()

    def data(rows, s):
        gg = torch.Generator().manual_seed(s)
        x = torch.randn(rows, d, generator=gg)
        z = x @ u
        return x, {"main": z + torch.randn(rows, generator=gg), "aux": z if helps else 3 * (x @ v)}

    x, y = data(n, 1000 + seed)
    xv, yv = data(256, 1)
    xt, yt = data(256, 2)
    model = Net(d, seed)
    return Problem(
        model=model,
        objective=Objective({"main": "mse", "aux": "mse"}),
        train=ArrayLoader(x, y, batch_size=8, shuffle=True, seed=seed),
        val=ArrayLoader(xv, yv, batch_size=256),
        shared=model.trunk,
        optimizer="adam",
        lr=0.02,
        test=ArrayLoader(xt, yt, batch_size=256) if test else None,
    )


def hurts(seed, **kw):
    return case(seed, helps=False, **kw)
"""


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune_cases")
    (folder / "tune_cases_mod.py").write_text(CASES)
    import sys

    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("tune_cases_mod")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("tune_cases_mod", None)


@pytest.mark.parametrize(
    ("method", "least"), [("lookahead-val", 0.5), ("ol-aux", 0.1), ("forkmerge", 0.1)]
)
def test_weight_rises_where_the_aux_loss_helps(cases, method, least):
    # OL-AUX's step scales with the gradients (see docs/tune.md): set for this case.
    options = {"lr": 0.3} if method == "ol-aux" else {}
    r = tune(cases.case, epochs=30, method=method, options=options)
    assert r.aux_weights["aux"] > least
    assert r.weights["main"] == 1.0
    if method == "lookahead-val":  # it also gains on validation and test
        assert r.val_metric < r.val_metric_zero - 0.1
        assert r.test_metric < r.test_metric_zero - 0.1


@pytest.mark.parametrize("method", ["lookahead-val", "auxilearn", "ol-aux", "forkmerge"])
def test_weight_stays_near_zero_where_the_aux_loss_hurts(cases, method):
    options = {"lr": 0.3} if method == "ol-aux" else {}
    r = tune(cases.hurts, epochs=30, method=method, options=options)
    assert r.aux_weights["aux"] < 0.1
    # Never worse than weight 0 on validation by much: the weight-0 run is the reference.
    assert r.val_metric <= r.val_metric_zero * 1.05


def test_result_fields(cases):
    r = tune("tune_cases_mod:case", epochs=4, method="forkmerge", seed=3)
    assert r.method == "forkmerge"
    assert r.seed == 3
    assert r.epochs == 4
    assert set(r.weights) == {"main", "aux"}
    assert r.main == "main"
    assert len(r.trajectory) == 4
    assert set(r.trajectory[0]) == {"aux"}
    assert r.metric == "val_loss_main"
    assert not r.higher_is_better
    assert r.shares is not None
    assert set(r.shares) == {"aux"}
    assert r.shares["aux"] >= 0
    for v in (r.val_metric, r.val_metric_zero, r.test_metric, r.test_metric_zero):
        assert v is not None
        assert math.isfinite(v)
    assert r.seconds > 0
    assert r.seconds_zero > 0
    assert r.cost == r.seconds / r.seconds_zero
    assert 1 <= r.best_epoch <= 4
    assert 1 <= r.best_epoch_zero <= 4
    assert r.verify is None
    assert r.details["merges"]
    assert r.details["evaluations"] > 0
    text = r.summary()
    assert "FixedWeights({'main': 1" in text
    assert "RelativeWeights({'aux'" in text
    assert "Test loss_main" in text
    assert "weight 0" in text
    kinds = [rec["kind"] for rec in r.records()]
    assert kinds == ["learned", "zero"] + ["trajectory"] * 4
    assert all("method" in rec and "seed" in rec for rec in r.records())


def test_share_is_the_relative_weights_share(cases):
    """share = w·mean‖g_aux‖/mean‖g_main‖ on the shared block, over the first batches."""
    from auxlab._tune import SHARE_BATCHES, _shares
    from auxlab.weighting import RelativeWeights

    problem = cases.case(0)  # for the hand computation; a fresh one for _shares (same order)
    model, objective = problem.model, problem.objective.bind(problem.model)
    norms = {"main": [], "aux": []}
    for i, (x, y) in enumerate(problem.train):
        if i == SHARE_BATCHES:
            break
        losses = objective(model(x), y)
        for t in norms:
            g = torch.autograd.grad(losses[t], list(model.trunk.parameters()), retain_graph=True)
            norms[t].append(float(torch.cat([v.flatten() for v in g]).norm()))
    ratio = sum(norms["aux"]) / sum(norms["main"])
    fresh = cases.case(0)
    assert _shares(fresh, fresh.model, {"aux": 2.0}) == pytest.approx({"aux": 2.0 * ratio})
    # RelativeWeights with that share, fed those mean norms, gives the weight 2.0 back.
    share = 2.0 * ratio
    assert share * (sum(norms["main"]) / sum(norms["aux"])) == pytest.approx(2.0)
    assert RelativeWeights({"aux": share}).shares == {"aux": share}


def test_test_split_is_optional(cases):
    r = tune(cases.case, epochs=2, method="ol-aux", builder_args={"test": False})
    assert r.test_metric is None
    assert r.test_metric_zero is None
    assert "Test" not in r.summary()


def test_problem_target_is_trained_from_copies(cases):
    problem = cases.case(0)
    before = [p.detach().clone() for p in problem.model.parameters()]
    r = tune(problem, epochs=2, method="ol-aux")
    after = list(problem.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # A Problem given as is starts both runs from the same parameters as the builder would.
    r2 = tune(cases.case, epochs=2, method="ol-aux")
    assert r.val_metric_zero == pytest.approx(r2.val_metric_zero)
    with pytest.raises(TuneError, match="verify needs problems built for other seeds"):
        tune(problem, epochs=1, verify=2)


def test_verify_paired_maths_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    zero = [0.80, 0.81, 0.79, 0.83]
    learned = [0.82, 0.82, 0.80, 0.86]
    diffs, mean, low, high = paired_comparison(zero, learned)
    d = [b - a for a, b in zip(zero, learned, strict=True)]
    assert diffs == pytest.approx(d)
    ref = stats.t.interval(0.95, len(d) - 1, loc=sum(d) / 4, scale=stats.sem(d))
    assert mean == pytest.approx(0.0175)
    assert (low, high) == pytest.approx(ref)
    # The paired t-test's p-value agrees with the interval excluding 0.
    assert stats.ttest_rel(learned, zero).pvalue < 0.05
    assert low > 0
    one = paired_comparison([1.0], [2.0])
    assert one[1] == 1.0
    assert math.isnan(one[2])
    assert math.isnan(one[3])
    with pytest.raises(ValueError, match="paired"):
        paired_comparison([1.0], [1.0, 2.0])


def test_verify_trains_fresh_seeds_at_the_learned_weight(cases):
    r = tune(cases.case, epochs=3, method="ol-aux", options={"lr": 0.1}, verify=2, seed=5)
    v = r.verify
    assert v is not None
    assert v.seeds == [6, 7]
    assert v.split == "test"
    assert v.diffs == pytest.approx([b - a for a, b in zip(v.zero, v.learned, strict=True)])
    _, mean, low, high = paired_comparison(v.zero, v.learned)
    assert (v.mean, v.low, v.high) == pytest.approx((mean, low, high))
    assert "Verify (2 fresh seeds" in r.summary()
    recs = r.records()
    assert [x["seed"] for x in recs if x["kind"] == "verify"] == [6, 7]
    assert recs[-1]["kind"] == "verify_summary"
    assert recs[-1]["diff_vs_zero"] == v.mean


def test_bad_input_names_the_problem(cases, tmp_path):
    with pytest.raises(TuneError, match="Did you mean: forkmerge"):
        tune(cases.case, method="forkmerg")
    with pytest.raises(TuneError, match="Did you mean: ol-aux"):
        tune(cases.case, method="olaux")
    with pytest.raises(TuneError, match="Did you mean: lookahead-val"):
        tune(cases.case, method="lookahead")
    with pytest.raises(TuneError, match="module:function"):
        tune("no_colon_here")
    with pytest.raises(TuneError, match="cannot import module"):
        tune("no_such_module_xyz:f")
    with pytest.raises(TuneError, match="target must be"):
        tune(42)
    with pytest.raises(TuneError, match="epochs"):
        tune(cases.case, epochs=0)
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nbuilder = 'tune_cases_mod:case'\nepochs = 'three'\n")
    with pytest.raises(TuneError, match="line 3"):
        tune(str(bad))
    with pytest.raises(TuneError, match="does not exist"):
        tune(str(tmp_path / "missing.toml"))


def test_toml_target(cases, tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        "[study]\nbuilder = 'tune_cases_mod:case'\nepochs = 2\n\n[builder_args]\nn = 24\n"
    )
    r = tune(str(toml), method="ol-aux")
    assert r.epochs == 2
    assert len(r.trajectory) == 2
    assert "s.toml" in r.target


# ---------------------------------------------------------------------------------------------
# The command.


def test_cli_tune_json_records(cases, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.json"
    rc = main(
        [
            "tune",
            "tune_cases_mod:case",
            "--method",
            "lookahead-val",  # learns a weight above 0 here (verify is skipped at exactly 0)
            "--epochs",
            "4",
            "--verify",
            "2",
            "--set",
            "n=24",
            "--json",
            str(out),
            "--quiet",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("torch threads: ")
    text = "\n".join(printed)
    assert "FixedWeights(" in text
    assert "RelativeWeights(" in text
    assert "Trajectory" in text
    assert "Verify (2 fresh seeds" in text
    recs = json.loads(out.read_text())
    kinds = {r["kind"] for r in recs}
    assert kinds == {"learned", "zero", "trajectory", "verify", "verify_summary"}
    assert all(not isinstance(v, (dict, list)) for r in recs for v in r.values())  # flat
    assert (tmp_path / "o" / "summary.txt").exists()
    assert (tmp_path / "o" / "tune.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "tune_cases_mod:case", "--method", "forkmerj"], "Did you mean: forkmerge"),
        (["tune", "nope_module_xyz:case"], "cannot import module"),
        (["tune", "tune_cases_mod:case", "--set", "oops"], "--set expects KEY=VALUE"),
        (["tune", "missing.toml"], "does not exist"),
    ],
)
def test_cli_tune_errors(cases, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_tune_bad_toml(cases, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[study]\nbuilder = 'tune_cases_mod:case'\nfoo = 1\n")
    assert main(["tune", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'foo'" in err
    assert "line 3" in err


def test_cli_tune_builder_args_are_typed():
    from auxlab.cli import _builder_args

    assert _builder_args(["n=3", "lr=0.5", "name=abc", "flag=true", "x=none"]) == {
        "n": 3,
        "lr": 0.5,
        "name": "abc",
        "flag": True,
        "x": None,
    }


# ---------------------------------------------------------------------------------------------
# ForkMerge.


def _line(w: float) -> dict[str, torch.Tensor]:
    return {"weight": torch.tensor([[w]]), "bias": torch.tensor([0.0])}


def test_merge_states_is_the_convex_combination():
    a, b, c = _line(1.0), _line(3.0), _line(-2.0)
    a["count"] = torch.tensor(7)  # an integer buffer is taken from the first state
    b["count"] = c["count"] = torch.tensor(1)
    m = merge_states([a, b, c], [0.5, 0.25, 0.25])
    assert m["weight"].item() == pytest.approx(0.5 * 1 + 0.25 * 3 - 0.25 * 2)
    assert m["count"].item() == 7
    with pytest.raises(ValueError, match="sum to 1"):
        merge_states([a, b], [0.5, 0.6])
    with pytest.raises(ValueError, match=">= 0"):
        merge_states([a, b], [1.5, -0.5])


def test_merge_search_finds_the_best_mix_on_the_grid():
    # Validation loss (w − 0.7)²: the best mix of w=0 and w=1 on a 0.1 grid is λ = 0.7.
    grid = [i / 10 for i in range(11)]
    lam, state, score, own, evals = search_merge(
        [_line(0.0), _line(1.0)], lambda s: (s["weight"].item() - 0.7) ** 2, grid, False
    )
    assert lam == pytest.approx([0.3, 0.7])
    assert state["weight"].item() == pytest.approx(0.7)
    assert score == pytest.approx(0.0, abs=1e-12)
    assert own == pytest.approx([0.49, 0.09])
    assert evals == 2 + 9


def test_merge_search_picks_the_better_branch():
    # Branch 1 is right (w = 1) and every mix is worse: it is kept alone.
    lam, state, _, _, _ = search_merge(
        [_line(-1.0), _line(1.0)], lambda s: (s["weight"].item() - 1.0) ** 2, [0, 0.5, 1], False
    )
    assert lam == [0.0, 1.0]
    assert state["weight"].item() == 1.0
    # Higher is better: the same with a metric.
    lam, _, _, _, _ = search_merge(
        [_line(2.0), _line(-1.0), _line(0.0)], lambda s: s["weight"].item(), [0, 0.5, 1], True
    )
    assert lam == [1.0, 0.0, 0.0]


class _Net(nn.Module):
    output_names = ("main", "aux")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk, self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 1), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return {"main": self.a(h).squeeze(-1), "aux": self.b(h).squeeze(-1)}


def _data() -> ArrayLoader:
    x = torch.randn(48, 4, generator=torch.Generator().manual_seed(0))
    return ArrayLoader(x, {"main": x[:, 0], "aux": x[:, 0] + x[:, 1]}, batch_size=8)


def test_forkmerge_merges_are_convex_and_effective_weight_is_their_mean():
    data = _data()
    out = forkmerge(
        _Net(),
        data,
        Objective({"main": "mse", "aux": "mse"}),
        val=data,
        weights=[0.0, 1.0, 3.0],
        merge_every=2,
        epochs=2,
        seed=0,
    )
    assert len(out.merges) == 6
    assert out.merges[-1].step == 12
    for m in out.merges:
        assert sum(m.lambdas) == pytest.approx(1.0)
        assert min(m.lambdas) >= 0
        assert m.weights["aux"] == pytest.approx(m.lambdas[1] * 1.0 + m.lambdas[2] * 3.0)
        assert m.score <= min(m.branch_scores) + 1e-12  # never worse than the best branch
    kept = [m.weights["aux"] for m in out.merges if m.epoch == out.best_epoch]
    assert out.effective_weight["aux"] == pytest.approx(sum(kept) / len(kept))
    assert [len(t) for t in out.trajectory] == [1, 1]
    assert out.evaluations == 6 * (3 + 2 * 4)
    assert "val_loss_main" in out.history.epochs[0]
    assert out.history.best_epoch == out.best_epoch


def test_forkmerge_with_one_equal_branch_is_fixed_training():
    """Two branches with the same weight merge to themselves: the same as one fixed run."""
    data = _data()
    obj = Objective({"main": "mse", "aux": "mse"})
    fm = _Net()
    forkmerge(fm, data, obj, val=data, weights=[0.5, 0.5], merge_every=3, epochs=2, seed=0)
    ref = _Net()
    auxlab.fit(
        ref,
        data,
        obj,
        {"main": 1.0, "aux": 0.5},
        epochs=2,
        val=data,
        progress=False,
        seed=0,
        restore_best=True,
    )
    for p, q in zip(fm.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_forkmerge_bad_input():
    data = _data()
    obj = Objective({"main": "mse", "aux": "mse"})
    with pytest.raises(ValueError, match="at least 2 branches"):
        forkmerge(_Net(), data, obj, val=data, weights=[1.0])
    with pytest.raises(ValueError, match="needs validation data"):
        forkmerge(_Net(), data, obj)
    with pytest.raises(ValueError, match="grid"):
        forkmerge(_Net(), data, obj, val=data, grid=[0, 2])
    with pytest.raises(ValueError, match="not auxiliary tasks"):
        forkmerge(_Net(), data, obj, val=data, weights=[0.0, {"nope": 1.0}])
    with pytest.raises(ValueError, match="merge_on"):
        forkmerge(_Net(), data, obj, val=data, merge_on="acc")


def test_learn_weights_trains_only_the_learning_run(cases):
    from auxlab._tune import DEFAULT_METHOD, learn_weights

    got = learn_weights(cases.case, epochs=3, seed=1)
    assert got["method"] == DEFAULT_METHOD == "halving"
    assert set(got["weights"]) == {"main", "aux"}
    assert len(got["trajectory"]) == 3
    # The same numbers as tune's learning run with the same seed.
    r = tune(cases.case, epochs=3, seed=1)
    assert got["weights"] == pytest.approx(r.weights)
    assert got["val_metric"] == pytest.approx(r.val_metric)


# ---------------------------------------------------------------------------------------------
# halving: successive halving over fixed weights.

GRID4 = (0.0, 0.3, 1.0, 3.0)


@pytest.mark.parametrize(("builder", "weight"), [("case", 3.0), ("hurts", 0.0)])
def test_default_races_weight_zero_against_three(cases, builder, weight):
    r = tune(getattr(cases, builder), epochs=30)
    assert r.method == "halving"
    assert r.aux_weights == {"aux": weight}
    (first, last) = r.details["rounds"]
    assert first["epoch"] == 24  # both arms to 4/5 of the run, the better one on to 30
    assert set(first["scores"]) == {0.0, 3.0}
    assert last["kept"] == [weight]
    if weight == 0.0:  # the survivor is the weight-0 run: never below it
        assert r.val_metric == r.val_metric_zero
        assert r.test_metric == r.test_metric_zero
    else:
        assert r.val_metric < r.val_metric_zero - 0.1


def test_halving_picks_the_best_weight_of_its_grid(cases):
    # The case's answer: val main loss 1.59 at weight 0, 1.33 at 1, 1.21 at 3 (see CASES). The
    # arms separate after ~12 epochs (before, the order is noise): 100 epochs put the first
    # round at 20 (with 30, at 6, halving keeps 0 and 0.3 and ends at 0.3).
    r = tune(cases.case, epochs=100, method="halving", options={"weights": GRID4})
    assert r.aux_weights == {"aux": 3.0}
    assert r.val_metric < r.val_metric_zero - 0.1
    assert r.test_metric is not None
    assert r.test_metric_zero is not None
    assert r.test_metric < r.test_metric_zero - 0.1
    rounds = r.details["rounds"]
    assert [x["epoch"] for x in rounds] == [20, 40, 100]
    assert [len(x["scores"]) for x in rounds] == [4, 2, 1]
    assert rounds[0]["kept"][0] == 3.0
    assert r.trajectory == [{"aux": 3.0}] * 100


def test_halving_keeps_weight_zero_where_the_aux_loss_hurts(cases):
    # Here the auxiliary loss lowers the main validation loss for the first ~12 epochs, then
    # holds it at 1.92 against 1.8 at weight 0: a round before that would drop weight 0.
    r = tune(cases.hurts, epochs=100, method="halving", options={"weights": GRID4})
    assert r.aux_weights == {"aux": 0.0}
    assert r.val_metric == r.val_metric_zero  # the surviving arm is the weight-0 run


def test_verify_is_not_run_when_the_learned_weight_is_zero(cases):
    # Weight 0 held fixed is the weight-0 run: N pairs would all be equal (and cost 2N runs).
    r = tune(cases.hurts, epochs=100, method="halving", options={"weights": GRID4}, verify=2)
    assert r.aux_weights == {"aux": 0.0}
    assert r.verify is None
    assert r.verify_note is not None
    assert "learned weight is 0" in r.verify_note
    assert r.verify_note in r.summary()
    assert not [x for x in r.records() if x["kind"].startswith("verify")]


def test_halving_survivor_is_the_fixed_run_of_its_weight(cases):
    from auxlab.train import fit
    from auxlab.weighting import FixedWeights

    got = learn_weights(cases.case, epochs=40, method="halving", options={"weights": [0.0, 3.0]})
    assert got["weights"] == {"main": 1.0, "aux": 3.0}
    p = cases.case(0)
    h = fit(
        p.model,
        p.train,
        p.objective,
        FixedWeights({"main": 1.0, "aux": 3.0}),
        epochs=40,
        optimizer="adam",
        lr=0.02,
        val=p.val,
        progress=False,
        seed=0,
    )
    assert got["val_metric"] == pytest.approx(h.epochs[h.best_epoch - 1]["val_loss_main"])
    assert got["best_epoch"] == h.best_epoch


@pytest.mark.parametrize(
    ("arms", "epochs", "marks"),
    [(4, 150, [30, 60]), (4, 60, [12, 24]), (4, 100, [20, 40]), (2, 10, [8]), (1, 5, [])],
)
def test_halving_schedule_stays_within_its_budget(arms, epochs, marks):
    from auxlab._tune import halving_schedule

    def total(ms):
        alive, n, last, done = [], arms, 0, 0
        for mark in [*ms, epochs]:
            alive.append(n)
            done += n * (mark - last)
            last, n = mark, math.ceil(n / 2)
        return done

    assert halving_schedule(arms, epochs) == marks
    assert total(marks) <= 1.8 * epochs
    if marks:  # the first milestone is the largest that fits
        assert total([m * (marks[0] + 1) // marks[0] for m in marks]) > 1.8 * epochs


@pytest.mark.parametrize(
    ("grid", "segments"),
    [(GRID4, [4, 4, 4, 4, 4, 4, 12]), (None, [16, 16, 4])],  # None: the default, (0, 3)
)
def test_halving_trains_the_epochs_it_accounts_for(cases, monkeypatch, grid, segments):
    import auxlab.train

    trained = []
    real = auxlab.train.fit

    def counting(*args, **kw):
        trained.append(kw["epochs"])
        return real(*args, **kw)

    monkeypatch.setattr(auxlab.train, "fit", counting)
    options = {} if grid is None else {"weights": grid}
    learn_weights(cases.case, epochs=20, method="halving", options=options)
    assert trained == segments  # 4 arms x 4, 2 x 4, 1 x 12; or 2 arms x 16, 1 x 4
    assert sum(trained) == 36 == 1.8 * 20


@pytest.mark.parametrize(("epochs", "grid"), [(1, None), (3, GRID4)])
def test_halving_with_too_few_epochs_races_every_weight_to_the_end(cases, epochs, grid):
    options = {} if grid is None else {"weights": grid}
    if grid is None:  # the default's two arms: 2 runs, within the bound, no warning
        r = tune(cases.case, epochs=epochs, method="halving", options=options)
    else:
        with pytest.warns(UserWarning, match="training every weight for all"):
            r = tune(cases.case, epochs=epochs, method="halving", options=options)
    (only,) = r.details["rounds"]
    assert only["epoch"] == epochs
    assert len(only["scores"]) == len(grid or (0, 3))
    best = min(only["scores"], key=only["scores"].get)  # a loss: lower is better
    assert only["kept"] == [best] == [r.aux_weights["aux"]]
    assert r.val_metric == only["scores"][best]


def test_halving_bad_input(cases):
    from auxlab._tune import halving_schedule

    with pytest.raises(TuneError, match="room for a first round"):
        halving_schedule(4, 3)
    with pytest.raises(TuneError, match="at least one arm"):
        halving_schedule(0, 10)
    with pytest.raises(TuneError, match="'weights' and 'budget'"):
        tune(cases.case, epochs=10, method="halving", options={"lr": 1})
    with pytest.raises(TuneError, match=">= 0"):
        tune(cases.case, epochs=10, method="halving", options={"weights": [0, -1]})
    with pytest.raises(TuneError, match="non-empty list"):
        tune(cases.case, epochs=10, method="halving", options={"weights": 3})
