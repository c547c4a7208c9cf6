"""Tests for auxiliary heads on named layers: attach_heads, AuxHeads, strip_aux."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from auxlab import ArrayLoader, Objective, fit
from auxlab.models._heads import AuxHeads, attach_heads, strip_aux


class Recorder(nn.Module):
    """A head that remembers its input and returns a linear map of it."""

    def __init__(self, n_in: int, n_out: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.linear(x)


class Branchy(nn.Module):
    """A backbone whose forward is not a plain chain: a residual add and nested names."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        h = h + self.block(h)
        return self.out(h)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)
    ).double()


X = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# ------------------------------------------------------------------ heads see the tapped output


def test_head_receives_exactly_the_tapped_layer_output_of_a_sequential() -> None:
    net = mlp()
    head1, head3 = Recorder(8).double(), Recorder(6).double()
    model = attach_heads(net, {"aux1": ("1", head1), "aux3": ("3", head3)})
    out = model(X)
    # Manual forward through the same layers.
    h1 = net[1](net[0](X))
    h3 = net[3](net[2](h1))
    assert torch.equal(head1.seen[-1], h1)
    assert torch.equal(head3.seen[-1], h3)
    assert torch.equal(out["main"], net(X))
    assert torch.equal(out["aux1"], head1.linear(h1))
    assert torch.equal(out["aux3"], head3.linear(h3))
    assert list(out) == ["main", "aux1", "aux3"] == list(model.output_names)


def test_head_on_a_nested_layer_of_a_branching_forward() -> None:
    torch.manual_seed(0)
    net = Branchy().double()
    head = Recorder(8).double()
    model = attach_heads(net, {"aux": ("block.0", head)})
    out = model(X)
    h = torch.relu(net.inp(X))
    assert torch.equal(head.seen[-1], net.block[0](h))
    assert torch.equal(out["main"], net(X))


def test_several_heads_on_one_layer_and_a_plain_callable_head() -> None:
    net = mlp()
    model = attach_heads(
        net, {"a": ("1", Recorder(8).double()), "b": ("1", lambda t: t.sum(dim=1))}
    )
    out = model(X)
    assert torch.allclose(out["b"], net[1](net[0](X)).sum(dim=1))
    assert model.taps == {"a": "1", "b": "1"}


def test_aux_loss_trains_the_layers_below_the_tap_only() -> None:
    net = mlp()
    model = attach_heads(net, {"aux": ("1", nn.Linear(8, 2).double())})
    model(X)["aux"].sum().backward()
    assert net[0].weight.grad is not None
    assert net[0].weight.grad.abs().sum() > 0
    assert net[2].weight.grad is None
    assert net[4].weight.grad is None


def test_detached_head_is_a_probe_that_sends_no_gradient_to_the_backbone() -> None:
    net = mlp()
    head = nn.Linear(8, 2).double()
    model = attach_heads(net, {"probe": ("1", head)}, detach=["probe"])
    model(X)["probe"].sum().backward()
    assert net[0].weight.grad is None
    assert head.weight.grad is not None


def test_calling_the_backbone_alone_does_not_run_the_heads() -> None:
    net = mlp()
    head = Recorder(8).double()
    attach_heads(net, {"aux": ("1", head)})
    net(X)
    assert head.seen == []


# ------------------------------------------------------------------------------ strip_aux


def test_strip_aux_gives_the_same_main_output_and_no_aux_parameters() -> None:
    net = mlp()
    model = attach_heads(net, {"aux": ("1", Recorder(8).double())})
    model.eval()
    stripped = strip_aux(model)
    assert not isinstance(stripped, AuxHeads)
    assert torch.equal(stripped(X), model(X)["main"])
    head_ids = {id(p) for p in model.heads.parameters()}
    assert all(id(p) not in head_ids for p in stripped.parameters())
    assert sum(p.numel() for p in stripped.parameters()) == sum(p.numel() for p in net.parameters())
    assert not any(k.startswith("heads") for k in stripped.state_dict())
    # No hooks are left on the stripped copy; the original still runs its heads.
    assert all(not m._forward_hooks for m in stripped.modules())
    assert set(model(X)) == {"main", "aux"}


def test_strip_aux_copy_is_independent_and_copy_false_returns_the_backbone() -> None:
    net = mlp()
    model = attach_heads(net, {"aux": ("1", nn.Linear(8, 2).double())})
    stripped = strip_aux(model)
    with torch.no_grad():
        stripped[0].weight.add_(1.0)
    assert not torch.equal(stripped[0].weight, net[0].weight)
    bare = strip_aux(model, copy=False)
    assert bare is net
    assert all(not m._forward_hooks for m in net.modules())


def test_strip_aux_of_a_deep_copy_leaves_the_original_intact() -> None:
    model = attach_heads(mlp(), {"aux": ("1", nn.Linear(8, 2).double())})
    twin = copy.deepcopy(model)
    strip_aux(twin, copy=False)
    assert set(model(X)) == {"main", "aux"}
    assert set(copy.deepcopy(model)(X)) == {"main", "aux"}


def test_strip_aux_passes_through_a_model_without_heads() -> None:
    net = mlp()
    assert strip_aux(net) is net


# ------------------------------------------------------------------------------ bad input


def test_missing_layer_names_it_and_lists_the_available_ones() -> None:
    with pytest.raises(KeyError) as info:
        attach_heads(Branchy(), {"aux": ("block.9", nn.Linear(8, 2))})
    msg = str(info.value)
    assert "'block.9'" in msg
    assert "Did you mean" in msg
    assert "'block.0'" in msg
    for name in ("inp", "block", "block.0", "block.1", "out"):
        assert name in msg


def test_head_that_does_not_fit_names_both_shapes() -> None:
    model = attach_heads(mlp(), {"aux": ("1", nn.Linear(5, 2).double())})
    with pytest.raises(ValueError, match=r"layer '1'.*\(7, 8\).*\(\*, 5\)"):
        model(X)


def test_head_mismatch_is_caught_at_attach_time_with_an_example_input() -> None:
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 6\).*\(N, 3, ·, ·\)"):
        attach_heads(
            conv, {"aux": ("1", nn.Conv2d(3, 2, 1))}, example_input=torch.zeros(2, 1, 8, 8)
        )


def test_layer_that_does_not_run_is_an_error() -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(5, 3)
            self.unused = nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = attach_heads(Skips(), {"aux": ("unused", nn.Identity())})
    with pytest.raises(ValueError, match="did not run"):
        model(torch.zeros(2, 5))


def test_layer_that_runs_twice_is_an_error() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.lin(x))

    model = attach_heads(Twice(), {"aux": ("lin", nn.Identity())})
    with pytest.raises(ValueError, match="more than once"):
        model(torch.zeros(2, 3))


def test_in_place_change_after_the_tap_is_an_error_unless_cloned() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, 3)).double()
    with pytest.raises(RuntimeError, match="modified in place"):
        attach_heads(net, {"aux": ("0", nn.Linear(8, 2).double())})(X)
    head = Recorder(8).double()
    model = attach_heads(net, {"aux": ("0", head)}, clone=True)
    model(X)["aux"].sum().backward()
    pre_relu = net[0](X)
    assert torch.equal(head.seen[-1], pre_relu)
    assert (pre_relu < 0).any()  # the head really saw values that ReLU later zeroed


def test_bad_head_specs() -> None:
    with pytest.raises(TypeError, match="layer_name, head_module"):
        attach_heads(mlp(), {"aux": nn.Linear(8, 2)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="other than the main output"):
        attach_heads(mlp(), {"main": ("1", nn.Linear(8, 2))})
    with pytest.raises(ValueError, match="not heads"):
        attach_heads(mlp(), {"aux": ("1", nn.Linear(8, 2))}, detach=["nope"])


def test_dict_backbone_outputs_are_merged_and_clashes_are_errors() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"main": self.lin(x), "other": x.sum(1)}

    out = attach_heads(Two(), {"aux": ("lin", nn.Identity())})(torch.zeros(4, 3))
    assert set(out) == {"main", "other", "aux"}
    with pytest.raises(ValueError, match="clash"):
        attach_heads(Two(), {"other": ("lin", nn.Identity())})(torch.zeros(4, 3))


# ------------------------------------------------------------------------------ with fit


def test_fit_trains_main_and_aux_heads_together() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    model = attach_heads(net, {"aux": ("1", nn.Linear(16, 2))})
    loader = ArrayLoader(x, {"main": y, "aux": y}, batch_size=16, shuffle=True, seed=0)
    history = fit(
        model,
        loader,
        Objective("ce", outputs=model.output_names),
        {"main": 1.0, "aux": 0.3},
        epochs=15,
        lr=1e-2,
        progress=False,
        seed=0,
    )
    losses = history["train_loss_main"]
    assert losses[-1] < 0.5 * losses[0]
    assert history["weight_aux"][0] == pytest.approx(0.3)
