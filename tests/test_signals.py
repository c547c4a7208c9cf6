import pytest
import torch
from torch import nn

from auxlab import Balancer
from auxlab.signals import GradientEngine, graph_leaves, per_task_grads
from auxlab.weighting import Decision, Need, NoState, Strategy


class Net(nn.Module):
    def __init__(self, tasks=("main", "aux"), recurrent=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.recurrent = recurrent
        self.trunk = (
            nn.LSTM(3, 8, batch_first=True)
            if recurrent
            else nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())
        )
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in tasks})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        # Counts the gradients computed for the trunk's first weight: one per backward pass
        # through the whole trunk.
        self.trunk_backward_calls = 0
        next(self.trunk.parameters()).register_hook(self._count)

    def _count(self, grad):
        self.trunk_backward_calls += 1

    def forward(self, x):
        z = self.trunk(x)[1][0][-1] if self.recurrent else self.trunk(x)
        return {t: h(z).squeeze(-1) for t, h in self.heads.items()}


def losses_of(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 4, 3, generator=g) if net.recurrent else torch.randn(12, 5, generator=g)
    out = net(x)
    return {t: ((o - i) ** 2).mean() for i, (t, o) in enumerate(out.items())}


class TakesGrads(Strategy):
    needs = frozenset({Need.LOSSES, Need.GRADS})
    scale_reaction = "independent"

    def __init__(self, weights=None, shared_weights=None):
        self.weights = weights
        self.shared_weights = shared_weights
        self.calls = 0

    def init(self, tasks, main):
        return NoState()

    def update(self, signals, state):
        self.calls += 1
        w = self.weights or dict.fromkeys(signals.tasks, 1.0)
        return Decision(w, shared_weights=self.shared_weights), state


def hand_grads(net, weights, shared_weights=None):
    """Reference: heads get Σ wᵢ∇Lᵢ; the trunk gets Σ cᵢ∇Lᵢ (c = w unless given)."""
    net.zero_grad()
    losses = losses_of(net)
    trunk = list(net.trunk.parameters())
    c = shared_weights or weights
    gs = torch.autograd.grad(sum(c[t] * losses[t] for t in losses), trunk, retain_graph=True)
    sum(weights[t] * losses[t] for t in losses).backward()
    for p, g in zip(trunk, gs, strict=True):
        p.grad = g.clone()
    return {n: p.grad.clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("mode", ["loop", "batched"])
def test_engine_modes_equal_the_loop_of_autograd_grad(mode):
    net = Net()
    losses = list(losses_of(net).values())
    params = list(net.trunk.parameters())
    expected = torch.stack(
        [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
            for loss in losses
        ]
    )
    got = GradientEngine(mode)(losses, params, ("main", "aux"))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


def test_auto_mode_measures_then_chooses():
    net = Net()
    engine = GradientEngine("auto")
    for call in range(6):
        assert engine.chosen is None, f"chose before measuring both ways (call {call})"
        losses = list(losses_of(net).values())
        engine(losses, list(net.trunk.parameters()))
    assert engine.chosen in {"loop", "batched"}
    assert len(engine.timings["loop"]) == 3
    assert len(engine.timings["batched"]) == 3


def test_choose_way_ignores_warm_up_and_a_single_slow_moment():
    from auxlab.signals import choose_way

    # Not decided until each way has three timings.
    assert choose_way({"loop": [1.0, 1.0], "batched": [1.0, 1.0, 1.0]}, True) is None
    # The first timing (warm-up) is ignored, even when it is the fastest...
    assert choose_way({"loop": [0.1, 5.0, 5.0], "batched": [9.0, 4.0, 4.5]}, True) == "batched"
    # ...and one slow moment of the faster way does not decide: the fastest of the rest is.
    assert choose_way({"loop": [9.0, 2.0, 8.0], "batched": [9.0, 3.0, 3.0]}, True) == "loop"
    # The batched way failed: the loop at once.
    assert choose_way({"loop": [], "batched": []}, False) == "loop"


def test_recurrent_trunk_falls_back_to_the_loop_with_the_same_result():
    net = Net(recurrent=True)
    params = list(net.trunk.parameters())
    losses = list(losses_of(net).values())
    ref = per_task_grads(losses, params)
    engine = GradientEngine("auto")
    for _ in range(6):
        out = engine(list(losses_of(net).values()), params)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert engine.chosen in {"loop", "batched"}


def test_a_task_that_reaches_no_shared_parameter_is_named():
    net = Net()
    losses = losses_of(net)
    detached_head = net.heads["aux"](torch.randn(3, 8)).pow(2).mean()
    with pytest.raises(ValueError, match="task 'aux' does not depend on any of the shared"):
        per_task_grads(
            [losses["main"], detached_head], list(net.trunk.parameters()), tasks=("main", "aux")
        )


def test_graph_leaves_finds_the_parameters():
    net = Net()
    losses = losses_of(net)
    leaves = {id(p) for p in graph_leaves(losses["aux"])}
    assert {id(p) for p in net.trunk.parameters()} <= leaves
    assert {id(p) for p in net.heads["aux"].parameters()} <= leaves
    assert not {id(p) for p in net.heads["main"].parameters()} & leaves


@pytest.mark.parametrize("grad_mode", ["loop", "batched"])
def test_gradient_strategies_traverse_the_trunk_once_per_task(grad_mode):
    tasks = ("main", "aux1", "aux2")
    net = Net(tasks)
    balancer = Balancer(TakesGrads(), shared=net.trunk, grad_mode=grad_mode)
    net.trunk_backward_calls = 0
    balancer.backward(losses_of(net))
    if grad_mode == "loop":
        # T backward passes for the per-task gradients, none more for applying the weights.
        assert net.trunk_backward_calls == len(tasks)
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("grad_mode", ["loop", "batched"])
def test_applied_gradients_match_a_hand_written_backward(grad_mode):
    tasks = ("main", "aux")
    weights = {"main": 1.0, "aux": 0.3}
    shared_w = {"main": 0.7, "aux": 0.1}
    for sw in (None, shared_w):
        net = Net(tasks)
        expected = hand_grads(net, weights, sw)
        net.zero_grad()
        Balancer(TakesGrads(weights, sw), shared=net.trunk, grad_mode=grad_mode).backward(
            losses_of(net)
        )
        for n, p in net.named_parameters():
            torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-7, msg=n)


def test_reused_shared_weights_between_refreshes_are_applied_exactly():
    tasks = ("main", "aux")
    weights = {"main": 1.0, "aux": 0.3}
    shared_w = {"main": 0.7, "aux": 0.1}
    net = Net(tasks)
    strategy = TakesGrads(weights, shared_w)
    balancer = Balancer(strategy, shared=net.trunk, every=2)
    balancer.backward(losses_of(net))  # step 0: refresh
    expected = hand_grads(net, weights, shared_w)
    net.zero_grad()
    balancer.backward(losses_of(net))  # step 1: reuse, no per-task gradients
    assert strategy.calls == 1
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-7, msg=n)


class WritesGrad(Strategy):
    needs = frozenset({Need.LOSSES, Need.GRADS})
    scale_reaction = "none"

    def init(self, tasks, main):
        return NoState()

    def update(self, signals, state):
        return Decision(dict.fromkeys(signals.tasks, 1.0), shared_grad=-signals.grads.sum(0)), state


def test_a_written_gradient_is_not_reused_on_later_batches():
    net = Net()
    balancer = Balancer(WritesGrad(), shared=net.trunk, every=2)
    balancer.backward(losses_of(net))
    net.zero_grad()
    balancer.backward(losses_of(net))  # reuse step: plain weighted backward instead
    expected = hand_grads(net, {"main": 1.0, "aux": 1.0})
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-7, msg=n)


# -- TaskGrads: the Gramian and the combination without the flat (T, d) copy ---------------


def _task_grads_setting(tasks: int, seed: int = 0):
    """Per-task gradient rows on three parameters; task 1 does not reach the second one."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.zeros(4, 3), torch.zeros(5), torch.zeros(2, 2, 2)]
    rows = []
    for t in range(tasks):
        row = [torch.randn(p.shape, generator=g) for p in params]
        if t == 1:
            row[1] = None
        rows.append(row)
    dense = [
        [torch.zeros_like(p) if x is None else x for x, p in zip(row, params, strict=True)]
        for row in rows
    ]
    flat = torch.stack([torch.cat([x.reshape(-1) for x in row]) for row in dense])
    return params, rows, flat


@pytest.mark.parametrize("tasks", [1, 2, 3, 5])
def test_task_grads_rows_match_the_flat_matrix(tasks):
    from auxlab.signals import TaskGrads

    params, rows, flat = _task_grads_setting(tasks)
    before = [[None if x is None else x.clone() for x in row] for row in rows]
    coef = [0.5 - 0.3 * t for t in range(tasks)]
    # The Gramian and combination straight from the rows (dot products up to three tasks)...
    direct = TaskGrads(params, rows=rows)
    gram = direct.gramian()
    parts = direct.combine(coef)
    torch.testing.assert_close(gram, flat @ flat.T)
    assert gram.shape == (tasks, tasks)
    assert torch.equal(gram, gram.T)
    expected = torch.tensor(coef) @ flat
    torch.testing.assert_close(torch.cat([x.reshape(-1) for x in parts]), expected)
    assert [x.shape for x in parts] == [p.shape for p in params]
    # ...and after the flat copy was made.
    copied = TaskGrads(params, rows=rows)
    torch.testing.assert_close(copied.flat(), flat, rtol=0, atol=0)
    torch.testing.assert_close(copied.gramian(), flat @ flat.T)
    torch.testing.assert_close(torch.cat([x.reshape(-1) for x in copied.combine(coef)]), expected)
    # The combination never writes into autograd's own tensors.
    for row, kept in zip(rows, before, strict=True):
        for x, y in zip(row, kept, strict=True):
            assert (x is None and y is None) or torch.equal(x, y)
    assert direct.nonzero_rows() == [True] * tasks


def test_task_grads_blocks_match_the_flat_matrix():
    from auxlab.signals import TaskGrads

    params, rows, flat = _task_grads_setting(3)
    blocks = [
        torch.stack([torch.zeros_like(p) if row[k] is None else row[k] for row in rows])
        for k, p in enumerate(params)
    ]
    blocks[2] = None  # a parameter no task reaches
    flat[:, 17:] = 0
    tg = TaskGrads(params, blocks=blocks)
    torch.testing.assert_close(tg.gramian(), flat @ flat.T)
    coef = [1.0, -2.0, 0.25]
    combined = torch.cat([x.reshape(-1) for x in tg.combine(coef)])
    torch.testing.assert_close(combined, torch.tensor(coef) @ flat)
    torch.testing.assert_close(tg.flat(), flat, rtol=0, atol=0)
    with pytest.raises(ValueError, match="2 coefficients for 3 tasks"):
        tg.combine([1.0, 2.0])
    with pytest.raises(ValueError, match="exactly one"):
        TaskGrads(params)
    with pytest.raises(ValueError, match="exactly one"):
        TaskGrads(params, blocks=blocks, flat=flat)
    from_flat = TaskGrads(params, flat=flat)
    torch.testing.assert_close(from_flat.gramian(), flat @ flat.T)
    torch.testing.assert_close(
        torch.cat([x.reshape(-1) for x in from_flat.combine(coef)]), torch.tensor(coef) @ flat
    )


def test_blocked_gramian_equals_one_product():
    from auxlab.signals import gramian

    g = torch.randn(10, 70_001, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(gramian(g), g @ g.T)
    small = g[:, :100]
    torch.testing.assert_close(gramian(small), small @ small.T)


@pytest.mark.parametrize("tasks", [2, 5])
def test_the_loop_keeps_rows_for_few_tasks_and_fills_one_matrix_for_many(tasks):
    from auxlab._taskgrads import DOTS_MAX_TASKS, loop_grads

    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    heads = [nn.Linear(4, 1) for _ in range(tasks)]
    z = trunk(torch.randn(16, 6))
    losses = [h(z).pow(2).mean() for h in heads]
    params = list(trunk.parameters())
    got = loop_grads(losses, params, True, None)
    assert (got._rows is not None) == (tasks <= DOTS_MAX_TASKS)
    assert (got._flat is not None) == (tasks > DOTS_MAX_TASKS)
    ref = per_task_grads(losses, params)
    torch.testing.assert_close(got.gramian(), ref @ ref.T)
    torch.testing.assert_close(got.flat(), ref, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "tasks"), [("pcgrad", 2), ("pcgrad", 5), ("graddrop", 2)])
def test_a_sparse_embedding_in_the_shared_block_gets_the_dense_embeddings_update(name, tasks):
    from auxlab.weighting import create

    torch.manual_seed(0)
    sparse = nn.Embedding(20, 4, sparse=True)
    dense = nn.Embedding(20, 4)
    dense.weight.data.copy_(sparse.weight.data)
    heads = [nn.Linear(4, 1) for _ in range(tasks)]
    idx = torch.randint(0, 20, (8,))
    names = ["main"] + [f"aux{i}" for i in range(1, tasks)]
    for emb in (sparse, dense):
        balancer = Balancer(create(name), shared=emb, main="main", grad_mode="auto")
        z = emb(idx).mean(0)
        balancer.backward({n: (h(z).sum() - 1.0) ** 2 for n, h in zip(names, heads, strict=True)})
    assert sparse.weight.grad.is_sparse  # as nn.Embedding(sparse=True) gives it
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    torch.optim.SparseAdam(sparse.parameters()).step()  # takes only sparse gradients
