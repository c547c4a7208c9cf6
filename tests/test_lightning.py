"""auxlab.lightning: a Balancer in a manually optimised LightningModule."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from auxlab import Balancer
from auxlab.lightning import balanced_backward, balanced_step

pl = pytest.importorskip(
    "lightning.pytorch", reason="lightning is not installed (pip install 'auxlab[lightning]')"
)

# Lightning's advice for real training (more loader workers, a logger, a bigger log interval)
# does not apply to these few-batch runs.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers.*",
    "ignore:.*smaller than the logging interval.*",
    "ignore:.*GPU available but not used.*",
    # Lightning 2.6 against torch 2.13's pytree (Lightning's, not ours).
    "ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning",
)

TASKS = ["main", "aux"]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        z = self.trunk(x)
        return {
            t: nn.functional.mse_loss(h(z).squeeze(-1), y[:, i])
            for i, (t, h) in enumerate(self.heads.items())
        }


class Module(pl.LightningModule):
    def __init__(self, net: Net, balancer: Balancer, accumulate: int = 1) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        self.balancer = balancer
        self.accumulate = accumulate
        self.hooks: list[str] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        balanced_step(self, self.balancer, self.net.losses(batch), accumulate=self.accumulate)

    def on_before_backward(self, loss: torch.Tensor) -> None:
        self.hooks.append("before")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.net.parameters(), lr=0.1)


def batches(n: int = 4, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, 4, generator=g), torch.randn(size, 2, generator=g)) for _ in range(n)
    ]


def fit(module: pl.LightningModule, data: list, **kwargs: object) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
    # batch_size=None: the loader hands over the prepared batches as they are.
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))


def plain_loop(net: Net, balancer: Balancer, data: list, steps: int, accumulate: int = 1) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for batch in data[: steps * accumulate]:
        balancer.backward(net.losses(batch))
        if balancer.step % accumulate == 0:
            opt.step()
            opt.zero_grad()


def assert_same_params(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_fixed_weights_match_a_plain_loop_and_run_lightnings_hooks() -> None:
    net, data = Net(), batches()
    ref = copy.deepcopy(net)
    module = Module(net, Balancer({"aux": 0.5}))
    fit(module, data, max_steps=3)
    # The plain weighted sum, by hand.
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for batch in data[:3]:
        losses = ref.losses(batch)
        (losses["main"] + 0.5 * losses["aux"]).backward()
        opt.step()
        opt.zero_grad()
    assert_same_params(net, ref)
    assert module.trainer.global_step == 3
    assert module.hooks == ["before"] * 3  # the backward went through manual_backward


def test_pcgrad_matches_the_same_balancer_in_a_plain_loop() -> None:
    net, data = Net(), batches()
    ref = copy.deepcopy(net)
    module = Module(net, Balancer("pcgrad", shared=net.trunk))
    fit(module, data, max_steps=3)
    plain_loop(ref, Balancer("pcgrad", shared=ref.trunk), data, steps=3)
    assert_same_params(net, ref)
    assert module.balancer.step == 3
    # Heads and trunk are written in two backwards: the heads' goes through Lightning.
    assert module.hooks == ["before"] * 3


@pytest.mark.parametrize("strategy", ["fixed", "pcgrad"])
def test_accumulating_two_batches_is_one_step_on_the_summed_gradient(strategy: str) -> None:
    net, data = Net(), batches()
    ref = copy.deepcopy(net)

    def make(n: Net) -> Balancer:
        return Balancer({"aux": 0.5}) if strategy == "fixed" else Balancer("pcgrad", shared=n.trunk)

    module = Module(net, make(net), accumulate=2)
    fit(module, data, max_steps=2)
    assert module.trainer.global_step == 2
    assert module.balancer.step == 4
    plain_loop(ref, make(ref), data, steps=2, accumulate=2)
    assert_same_params(net, ref)
    if strategy == "fixed":  # and the summed gradient is the plain sum's, by hand
        by_hand = copy.deepcopy(Net())
        opt = torch.optim.SGD(by_hand.parameters(), lr=0.1)
        for pair in (data[:2], data[2:4]):
            for batch in pair:
                losses = by_hand.losses(batch)
                (losses["main"] + 0.5 * losses["aux"]).backward()
            opt.step()
            opt.zero_grad()
        assert_same_params(net, by_hand)


def test_the_epochs_last_batch_steps_even_mid_accumulation() -> None:
    net = Net()
    module = Module(net, Balancer({"aux": 0.5}), accumulate=2)
    fit(module, batches(3), max_epochs=1)
    assert module.trainer.global_step == 2  # batches 1-2, then batch 3 alone


def test_bf16_mixed_runs_on_cpu() -> None:
    net, data = Net(), batches()
    before = [p.detach().clone() for p in net.parameters()]
    module = Module(net, Balancer("pcgrad", shared=net.trunk))
    fit(module, data, max_steps=2, precision="bf16-mixed")
    assert module.trainer.global_step == 2
    assert module.hooks == ["before"] * 2
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.isfinite(p).all()
        assert not torch.equal(p, b)


@pytest.mark.parametrize("strategy", ["fixed", "pcgrad"])
def test_balancer_backward_goes_through_the_given_function(strategy: str) -> None:
    calls: list[dict[str, object]] = []

    def run(tensor: torch.Tensor, **kwargs: object) -> None:
        calls.append(kwargs)
        tensor.backward(**kwargs)

    grads = []
    for backward in (None, run):
        net = Net()
        b = Balancer({"aux": 0.5}) if strategy == "fixed" else Balancer("pcgrad", shared=net.trunk)
        b.backward(net.losses(batches(1)[0]), backward=backward)
        grads.append([p.grad.clone() for p in net.parameters()])
    for g, h in zip(*grads, strict=True):
        torch.testing.assert_close(g, h, rtol=0, atol=0)
    assert len(calls) == 1
    if strategy == "pcgrad":  # the trunk's part is written from the per-task gradients
        heads = {id(p) for p in Net().heads.parameters()}
        assert len(calls[0]["inputs"]) == len(heads)  # type: ignore[arg-type]
    else:
        assert calls[0] == {}


def test_automatic_optimisation_is_refused() -> None:
    class Auto(pl.LightningModule):
        pass

    with pytest.raises(ValueError, match="automatic_optimization = False"):
        balanced_backward(Auto(), Balancer({"aux": 0.5}), {})


def _stub(scaler: object = None, world_size: int = 1) -> types.SimpleNamespace:
    plugin = types.SimpleNamespace(scaler=scaler)
    trainer = types.SimpleNamespace(
        precision_plugin=plugin, precision="16-mixed", world_size=world_size
    )
    return types.SimpleNamespace(automatic_optimization=False, trainer=trainer)


def test_per_task_gradients_under_a_gradient_scaler_are_refused() -> None:
    net = Net()
    with pytest.raises(ValueError, match="outside Lightning's gradient scaler"):
        balanced_backward(_stub(scaler=object()), Balancer("pcgrad", shared=net.trunk), {})


def test_per_task_gradients_under_lightning_ddp_are_refused() -> None:
    net = Net()
    with pytest.raises(ValueError, match="not yet tested under Lightning's DDP"):
        balanced_backward(_stub(world_size=2), Balancer("pcgrad", shared=net.trunk), {})


def test_bad_accumulate_is_refused() -> None:
    with pytest.raises(ValueError, match="accumulate must be a positive integer"):
        balanced_step(_stub(), Balancer({"aux": 0.5}), {}, accumulate=0)


# Lightning's strategy="ddp" starts the other processes by running the command line of the
# first again (sys.argv), so under pytest it would start pytest again: the run is a script of
# its own, started as `python script.py`.
DDP_SCRIPT = """
import sys, warnings
import torch
import lightning.pytorch as pl
sys.path.insert(0, {tests!r})
from test_lightning import Module, Net, batches
from auxlab import Balancer

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


class Halves(Module):
    def train_dataloader(self):
        # Process r takes rows r, r + 2, ... in order (Lightning's own sampler shuffles), so
        # that each step's two halves make up one batch of 8 of the single-process run.
        data = torch.utils.data.TensorDataset(*map(torch.cat, zip(*batches(2))))
        sampler = torch.utils.data.DistributedSampler(data, shuffle=False)
        return torch.utils.data.DataLoader(data, batch_size=4, sampler=sampler)


net = Net()
module = Halves(net, Balancer({{"aux": 0.5}}))
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, use_distributed_sampler=False)
trainer.fit(module)
if trainer.global_rank == 0:
    torch.save(net.state_dict(), {out!r})
"""


@pytest.mark.slow
def test_lightning_ddp_on_two_cpu_processes_matches_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    script = tmp_path / "ddp_run.py"
    tests = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=tests, out=str(out))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    # One process on the whole batch of 8: DDP averages the two halves' mean-loss gradients.
    ref = Net()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for batch in batches(2):
        losses = ref.losses(batch)
        (losses["main"] + 0.5 * losses["aux"]).backward()
        opt.step()
        opt.zero_grad()
    got = torch.load(out)
    for name, p in ref.state_dict().items():
        torch.testing.assert_close(got[name], p, rtol=0, atol=1e-6, msg=name)
