"""Tests for auxlab.weighting: registry, fixed/equal weights, value semantics, scheduling."""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from pathlib import Path

import pytest
import torch

from auxlab import TaskMismatchError, weighting
from auxlab.cli import main
from auxlab.schedules import linear, piecewise_constant
from auxlab.weighting import (
    FAMO,
    Decision,
    EqualWeighting,
    FixedWeights,
    FixedWeightsState,
    Need,
    NoState,
    Scheduled,
    ScheduledState,
    Signals,
    Strategy,
    StrategyInfo,
    as_decision,
    check_weight,
    create,
    describe,
    list_strategies,
    register,
    scheduled,
)
from auxlab.weighting._catalogue import FAMILIES, cost_class, format_markdown
from auxlab.weighting._registry import _REGISTRY

TASKS = ("main", "aux", "aux2")


def _signals(step: int = 0, tasks: tuple[str, ...] = TASKS, main: str = "main") -> Signals:
    losses = {t: torch.tensor(float(i + 1)) for i, t in enumerate(tasks)}
    return Signals(step, tasks, main, losses)


def _weights(strategy: Strategy, step: int = 0, tasks: tuple[str, ...] = TASKS) -> dict:
    state = strategy.init(tasks, "main")
    out, _ = strategy.update(_signals(step, tasks), state)
    return dict(as_decision(out).weights)


# ------------------------------------------------------------------------------ registry


def test_list_strategies_is_sorted_and_has_builtins() -> None:
    names = list_strategies()
    assert names == sorted(names)
    assert {"equal", "fixed", "scheduled"} <= set(names)


def test_create_by_name() -> None:
    s = create("fixed", {"aux": 0.5, "aux2": 0.1})
    assert isinstance(s, FixedWeights)
    assert _weights(s) == {"main": 1.0, "aux": 0.5, "aux2": 0.1}
    assert isinstance(create("equal"), EqualWeighting)
    sch = create("scheduled", {"aux": 0.5})
    assert isinstance(sch, Scheduled)
    assert _weights(sch) == {"main": 1.0, "aux": 0.5, "aux2": 1.0}


def test_create_unknown_name_lists_registered() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'fixd'") as exc:
        create("fixd")
    for name in list_strategies():
        assert name in str(exc.value)


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered as 'fixed'"):
        register("fixed")(EqualWeighting)
    # Registering the same factory again is allowed (idempotent).
    assert register("fixed")(FixedWeights) is FixedWeights


# ------------------------------------------------------------------------------ fixed / equal


def test_fixed_weights_list_in_task_order() -> None:
    s = FixedWeights([1.0, 0.2, 0.3])
    assert s.init(TASKS, "main") == FixedWeightsState({"main": 1.0, "aux": 0.2, "aux2": 0.3})
    # The list follows the order given, not sorted names.
    st = s.init(("zeta", "alpha", "mid"), "zeta")
    assert st.weights == {"zeta": 1.0, "alpha": 0.2, "mid": 0.3}


def test_fixed_weights_dict_and_main_omitted() -> None:
    assert _weights(FixedWeights({"main": 2.0, "aux": 0.2, "aux2": 0.0})) == {
        "main": 2.0,
        "aux": 0.2,
        "aux2": 0.0,
    }
    w = _weights(FixedWeights({"aux": 0.2, "aux2": 0.3}))
    assert w == {"main": 1.0, "aux": 0.2, "aux2": 0.3}
    assert all(type(v) is float for v in w.values())


def test_fixed_weights_ints_become_floats() -> None:
    w = _weights(FixedWeights([1, 0, 2]))
    assert w == {"main": 1.0, "aux": 0.0, "aux2": 2.0}
    assert all(type(v) is float for v in w.values())


def test_fixed_weights_missing_aux_or_unknown_task() -> None:
    with pytest.raises(TaskMismatchError, match="aux2"):
        FixedWeights({"aux": 0.2}).init(TASKS, "main")
    with pytest.raises(TaskMismatchError, match="other"):
        FixedWeights({"aux": 0.2, "aux2": 0.1, "other": 1.0}).init(TASKS, "main")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (-0.1, r"weight of task 'aux' is -0.1; weights must be >= 0"),
        (math.nan, r"weight of task 'aux' is nan; weights must be finite"),
        (math.inf, r"weight of task 'aux' is inf; weights must be finite"),
        (-math.inf, r"weight of task 'aux' is -inf; weights must be finite"),
    ],
)
def test_fixed_weights_reject_bad_dict_values(bad: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FixedWeights({"main": 1.0, "aux": bad})


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_fixed_weights_reject_bad_list_values(bad: float) -> None:
    with pytest.raises(ValueError, match="task '#1'"):
        FixedWeights([1.0, bad])


def test_fixed_weights_reject_non_numbers_and_bad_containers() -> None:
    with pytest.raises(TypeError, match="must be a number"):
        FixedWeights({"aux": "heavy"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="dict or a list"):
        FixedWeights("1.0, 0.2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict or a list"):
        FixedWeights(0.2)  # type: ignore[arg-type]


@pytest.mark.parametrize("weights", [[1.0, 0.2], [1.0, 0.2, 0.3, 0.4]])
def test_fixed_weights_wrong_length_list(weights: list[float]) -> None:
    with pytest.raises(TaskMismatchError, match=f"{len(weights)} loss weights"):
        FixedWeights(weights).init(TASKS, "main")


def test_check_weight() -> None:
    assert check_weight("a", 0) == 0.0
    assert check_weight("a", torch.tensor(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"the scheduled weight of task 'a' is -2\.0"):
        check_weight("a", -2, "scheduled weight")


def test_equal_weighting() -> None:
    s = EqualWeighting()
    assert s.init(TASKS, "main") == NoState()
    assert _weights(s) == {"main": 1.0, "aux": 1.0, "aux2": 1.0}
    assert _weights(s, tasks=("main",)) == {"main": 1.0}
    assert s.needs == frozenset({Need.LOSSES})
    assert s.parameters() == []


# ------------------------------------------------------------------------------ value semantics


def test_clone_is_independent() -> None:
    s = FixedWeights({"aux": 0.2, "aux2": 0.3})
    c = s.clone()
    assert c is not s
    assert isinstance(c, FixedWeights)
    assert c.weights == s.weights
    assert c.weights is not s.weights
    c.weights["aux"] = 5.0
    assert s.weights["aux"] == 0.2
    # A list argument is copied too.
    sl = FixedWeights([1.0, 0.2])
    cl = sl.clone()
    cl.weights[1] = 9.0
    assert sl.weights == [1.0, 0.2]


def test_clone_with_overrides() -> None:
    s = FixedWeights({"aux": 0.2, "aux2": 0.3})
    c = s.clone(weights={"aux": 0.7, "aux2": 0.0})
    assert _weights(c) == {"main": 1.0, "aux": 0.7, "aux2": 0.0}
    assert _weights(s) == {"main": 1.0, "aux": 0.2, "aux2": 0.3}
    with pytest.raises(TypeError, match=r"has no argument\(s\) \['weight'\]"):
        s.clone(weight={"aux": 1.0})
    # Overrides are validated like constructor arguments.
    with pytest.raises(ValueError, match=">= 0"):
        s.clone(weights={"aux": -1.0})


def test_clone_of_scheduled_copies_base() -> None:
    base = FixedWeights({"aux": 0.5, "aux2": 0.5})
    s = scheduled({"aux": 0.5}, base=base)
    c = s.clone()
    assert isinstance(c, Scheduled)
    assert c.base is not base
    assert _weights(c) == _weights(s) == {"main": 1.0, "aux": 0.25, "aux2": 0.5}
    c2 = s.clone(schedules={"aux2": 0.0})
    assert _weights(c2) == {"main": 1.0, "aux": 0.5, "aux2": 0.0}


def test_repr() -> None:
    assert repr(FixedWeights({"aux": 0.2})) == "FixedWeights(weights={'aux': 0.2})"
    assert repr(FixedWeights([1.0, 0.2])) == "FixedWeights(weights=[1.0, 0.2])"
    assert repr(EqualWeighting()) == "EqualWeighting()"
    r = repr(scheduled({"aux": 0.5}))
    assert r == "Scheduled(schedules={'aux': 0.5}, base=EqualWeighting())"


@pytest.mark.parametrize(
    "strategy",
    [
        FixedWeights({"aux": 0.2, "aux2": 0.1}),
        FixedWeights([1.0, 0.2, 0.1]),
        EqualWeighting(),
        scheduled({"aux": 0.5, "aux2": 0.0}, base=FixedWeights([2.0, 1.0, 1.0])),
    ],
    ids=["fixed-dict", "fixed-list", "equal", "scheduled-constants"],
)
def test_pickle_round_trip_of_strategy_and_state(strategy: Strategy) -> None:
    state = strategy.init(TASKS, "main")
    s2 = pickle.loads(pickle.dumps(strategy))
    state2 = pickle.loads(pickle.dumps(state))
    assert type(s2) is type(strategy)
    assert repr(s2) == repr(strategy)
    assert state2 == state
    assert type(state2) is type(state)
    w1 = as_decision(strategy.update(_signals(3), state)[0]).weights
    w2 = as_decision(s2.update(_signals(3), state2)[0]).weights
    assert dict(w1) == dict(w2)


def test_states_are_named_tuples() -> None:
    st = scheduled({"aux": 0.5}, base=FixedWeights({"aux": 1.0, "aux2": 1.0})).init(TASKS, "main")
    assert isinstance(st, ScheduledState)
    assert isinstance(st.base, FixedWeightsState)
    assert pickle.loads(pickle.dumps(st)) == st


@pytest.mark.parametrize(
    "strategy",
    [
        FixedWeights({"aux": 0.2, "aux2": 0.1}),
        EqualWeighting(),
        scheduled({"aux": linear(0.0, 1.0, 10)}, base=FixedWeights([1.0, 0.5, 0.5])),
    ],
)
def test_update_does_not_mutate_inputs(strategy: Strategy) -> None:
    state = strategy.init(TASKS, "main")
    snapshot = copy.deepcopy(state)
    sig = _signals(4)
    losses_before = {t: v.clone() for t, v in sig.losses.items()}
    out, new_state = strategy.update(sig, state)
    weights = as_decision(out).weights
    assert state == snapshot
    assert set(sig.losses) == set(losses_before)
    for t in TASKS:
        assert torch.equal(sig.losses[t], losses_before[t])
    # Mutating the returned weights must not change what the state will give next time.
    first = dict(weights)
    weights["aux"] = 123.0  # type: ignore[index]
    again = as_decision(strategy.update(sig, new_state)[0]).weights
    assert dict(again) == first


# ------------------------------------------------------------------------------ scheduled


def test_scheduled_values_at_steps() -> None:
    s = scheduled({"aux": linear(0.0, 1.0, 10), "aux2": piecewise_constant([1.0, 0.0], [5])})
    state = s.init(TASKS, "main")
    expected = {
        0: {"main": 1.0, "aux": 0.0, "aux2": 1.0},
        5: {"main": 1.0, "aux": 0.5, "aux2": 0.0},
        10: {"main": 1.0, "aux": 1.0, "aux2": 0.0},
        50: {"main": 1.0, "aux": 1.0, "aux2": 0.0},
    }
    for step, want in expected.items():
        out, state = s.update(_signals(step), state)
        assert isinstance(out, Decision)
        assert dict(out.weights) == pytest.approx(want)
    assert s.value("aux", 3) == pytest.approx(0.3)
    assert s.value("main", 3) == 1.0


def test_scheduled_multiplies_base_strategy() -> None:
    base = FixedWeights({"main": 2.0, "aux": 0.4, "aux2": 0.5})
    s = scheduled({"aux": linear(1.0, 0.0, 4), "main": 0.5}, base=base)
    assert s.needs == base.needs
    for step in (0, 1, 2, 4, 8):
        w = _weights(s, step)
        factor = max(0.0, 1.0 - step / 4)
        assert w == pytest.approx({"main": 1.0, "aux": 0.4 * factor, "aux2": 0.5})


def test_scheduled_number_schedules_and_default_base() -> None:
    s = scheduled({"aux": 0.3})
    assert isinstance(s.base, EqualWeighting)
    assert _weights(s, 7) == {"main": 1.0, "aux": 0.3, "aux2": 1.0}


def test_scheduled_unknown_task_raises() -> None:
    s = scheduled({"aux": 0.5, "auxx": 0.1})
    with pytest.raises(TaskMismatchError, match="auxx"):
        s.init(TASKS, "main")


def test_scheduled_negative_value_raises() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        scheduled({"aux": -0.5})
    with pytest.raises(ValueError, match="finite"):
        scheduled({"aux": math.nan})
    s = scheduled({"aux": lambda step: 0.5 - 0.1 * step})
    state = s.init(TASKS, "main")
    assert _weights(s, 0)["aux"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"scheduled weight at step 10 of task 'aux'.*>= 0"):
        s.update(_signals(10), state)


def test_scheduled_needs_a_non_empty_dict() -> None:
    with pytest.raises(TypeError, match="non-empty dict"):
        scheduled({})
    with pytest.raises(TypeError, match="non-empty dict"):
        scheduled([0.5])  # type: ignore[arg-type]


class _SharedGrad(Strategy):
    def init(self, tasks: object, main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        w = dict.fromkeys(signals.tasks, 1.0)
        return Decision(w, shared_grad=torch.zeros(3)), state


def test_scheduled_refuses_to_scale_a_shared_gradient_strategy() -> None:
    s = scheduled({"aux": 0.5}, base=_SharedGrad())
    with pytest.raises(ValueError, match="cannot be scheduled"):
        s.update(_signals(0), s.init(TASKS, "main"))
    # A schedule that is 1 everywhere passes the decision through.
    ok = scheduled({"aux": 1.0}, base=_SharedGrad())
    out, _ = ok.update(_signals(0), ok.init(TASKS, "main"))
    assert out.shared_grad is not None
    assert torch.equal(out.shared_grad, torch.zeros(3))


def test_as_decision() -> None:
    d = Decision({"main": 1.0})
    assert as_decision(d) is d
    assert as_decision({"main": 0.5}) == Decision({"main": 0.5})
    with pytest.raises(TypeError, match="mapping or a Decision"):
        as_decision([1.0, 0.5])  # type: ignore[arg-type]


def test_signals_helpers() -> None:
    g = torch.arange(6.0).reshape(3, 2)
    sig = Signals(0, TASKS, "main", {}, grads=g)
    assert sig.aux == ("aux", "aux2")
    assert torch.equal(sig.grad("aux2"), torch.tensor([4.0, 5.0]))
    with pytest.raises(ValueError, match=r"Need\.GRADS"):
        _signals().grad("main")


# ------------------------------------------------------------------------- the catalogue

ROOT = Path(__file__).resolve().parents[1]


def _builtin_names() -> list[str]:
    return [i.name for i in list_strategies(details=True) if i.module.startswith("auxlab.")]


def test_cli_strategies_prints_a_table_with_family_cost_and_paper(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["name"].split()[:5] == ["name", "family", "cost", "paper", "what", "it", "does"][:5]
    for name in list_strategies():
        assert name in rows, name
    assert "gradient" in rows["upgrad"]
    assert "T backwards" in rows["upgrad"]
    assert "Quinton & Rey, arXiv 2024" in rows["upgrad"]
    assert "loss-based" in rows["famo"]
    assert "one backward" in rows["famo"]
    assert "Liu et al., NeurIPS 2023" in rows["famo"]
    assert "T head backwards + 1" in rows["mgda-ub"]
    assert "as inner" in rows["normalized"]
    assert "combinator" in rows["normalized"]
    assert "Every task weighs 1" in rows["equal"]


def test_cli_table_wraps_the_summaries_to_the_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0]
    assert max(len(line) for line in table.splitlines()) <= 100


def test_cli_strategies_name_prints_parameters_and_defaults(capsys) -> None:
    assert main(["strategies", "cagrad"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cagrad: Conflict-averse gradient")
    assert "  c: float = 0.5" in out
    assert "  rescale: Literal[0, 1, 2] = 1" in out
    assert "Radius c in [0, 1)" in out  # the argument's description from the docstring
    assert "NeurIPS 2021" in out
    assert "auxlab.weighting.CAGrad" in out
    assert main(["strategies", "fixed"]) == 0
    assert "weights: Mapping[str, float] | Sequence[float]  (required)" in capsys.readouterr().out


def test_cli_strategies_unknown_name_lists_close_matches(capsys) -> None:
    assert main(["strategies", "upgard"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'upgard'" in err
    assert "Did you mean: upgrad" in err
    assert main(["strategies", "nash"]) == 2
    assert "nash-mtl" in capsys.readouterr().err


def test_describe_reads_the_signature_and_the_declarations() -> None:
    info = describe("famo")
    assert isinstance(info, StrategyInfo)
    assert (info.name, info.family, info.cost, info.needs) == (
        "famo",
        "loss-based",
        "one backward",
        (),
    )
    assert info.qualname == "auxlab.weighting.FAMO"
    assert info.module == "auxlab.weighting._famo"
    sig = inspect.signature(FAMO)
    assert [p.name for p in info.parameters] == list(sig.parameters)
    assert [p.default for p in info.parameters] == [p.default for p in sig.parameters.values()]
    assert all(p.description for p in info.parameters)
    assert "Fast Adaptive Multitask Optimization" in info.reference
    assert describe("UPGrad").name == "upgrad"  # the class name works too
    chain_info = describe("chain")
    assert chain_info.wraps
    assert chain_info.parameters[0].name == "*strategies"
    with pytest.raises(ValueError, match="Did you mean: pcgrad"):
        describe("pcgrd")


def test_list_strategies_with_details_matches_describe() -> None:
    infos = list_strategies(details=True)
    assert [i.name for i in infos] == list_strategies()
    assert infos == [describe(n) for n in list_strategies()]


def test_cost_class_is_derived_from_needs(monkeypatch) -> None:
    class _Custom(Strategy):
        """A custom strategy for this test."""

        needs = frozenset({Need.LOSSES, Need.GRADS, Need.VAL_LOSSES})
        scale_reaction = "none"

        def __init__(self, k: int = 3) -> None:
            self.k = k

        def init(self, tasks, main):
            return NoState()

        def update(self, signals, state):
            return dict.fromkeys(signals.tasks, 1.0), state

    monkeypatch.setitem(_REGISTRY, "custom-test", _Custom)
    info = describe("custom-test")
    assert info.cost == "T backwards, validation passes"
    assert info.family == "custom"
    assert info.paper == ""
    assert info.needs == ("grads", "val_losses")
    assert [(p.name, p.default) for p in info.parameters] == [("k", 3)]
    assert cost_class(frozenset({Need.LOSSES})) == "one backward"
    assert cost_class(frozenset({Need.REP_GRADS})) == "T head backwards + 1"
    assert cost_class(frozenset({Need.LOSSES}), wraps=True) == "as inner"
    assert cost_class(frozenset({Need.GRAMIAN}), wraps=True) == "T backwards + inner"


def test_every_builtin_declares_a_family_and_a_paper_its_docstring_cites() -> None:
    for name in _builtin_names():
        info = describe(name)
        assert info.family in FAMILIES, name
        assert info.family != "custom", name
        assert info.summary, name
        if info.paper:  # "Surname et al., VENUE YEAR": surname and year are in the reference
            surname, year = info.paper.split()[0].rstrip(","), info.paper.split()[-1]
            cls = getattr(weighting, info.qualname.rsplit(".", 1)[-1])
            doc = inspect.getdoc(cls) or ""
            assert surname in doc, (name, info.paper)
            assert year in doc, (name, info.paper)


def test_each_builtin_lives_in_its_own_module_named_after_it() -> None:
    for name in _builtin_names():
        module = describe(name).module
        assert module == f"auxlab.weighting._{name.replace('-', '_')}", (name, module)
        path = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 400, path


def test_the_docs_catalogue_is_the_one_the_code_gives() -> None:
    infos = [describe(n) for n in _builtin_names()]
    docs = (ROOT / "docs" / "weighting.md").read_text(encoding="utf-8")
    assert format_markdown(infos) in docs, (
        "docs/weighting.md's catalogue is out of date; regenerate it with "
        "auxlab.weighting._catalogue.format_markdown(auxlab.weighting.list_strategies(True))"
    )
