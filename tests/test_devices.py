"""Every gradient strategy on the headline model (an LSTM trunk), on every device present.

The batched way runs the backward under ``vmap``. Through an LSTM, PyTorch may go through
its slow per-sample fallback (CPU, ``aten::mkldnn_rnn_layer_backward``, depending on the
kernel it picks) or fail outright (CUDA: cuDNN's ``aten::_cudnn_rnn_backward`` has no
batching rule, the error TorchJD stops with). Whatever happens, the Balancer must give the
same update with ``grad_mode="batched"`` and ``"auto"`` as with the plain loop, falling
back to the loop by itself. The CPU cases run everywhere, CI included; the CUDA cases run
only on a machine with a GPU (``python -m pytest tests/test_devices.py`` there).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from auxlab import Balancer
from auxlab.models import HeadlineModel
from auxlab.weighting import Need, RelativeWeights, Strategy, create, list_strategies

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

TINY = {"vocab_size": 50, "seq_len": 6, "embed_dim": 8, "lstm_units": 4, "hidden": 8}


def _gradient_strategies() -> list[str]:
    names = []
    for name in list_strategies():
        try:
            s = create(name)
        except (TypeError, ValueError):  # needs arguments: the configured one is added below
            continue
        if s.needs & {Need.GRADS, Need.GRAMIAN, Need.VAL_GRAD}:
            names.append(name)
    return [*names, "relative"]


def _build(name: str) -> Strategy:
    return RelativeWeights(0.2) if name == "relative" else create(name)


def _step(model: HeadlineModel, name: str, grad_mode: str, device: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, TINY["vocab_size"], (4, TINY["seq_len"]), generator=g)
    side = torch.randn(4, 5, generator=g)
    targets = {t: torch.randint(0, 2, (4,), generator=g).float() for t in ("main", "aux")}
    strategy = _build(name)

    def val_loss() -> torch.Tensor:  # the validation-driven strategies: the same batch
        out = model(tokens.to(device), side.to(device))
        return F.binary_cross_entropy_with_logits(out["main"], targets["main"].to(device))

    balancer = Balancer(
        strategy,
        shared=[*model.embedding.parameters(), *model.lstm.parameters()],
        main="main",
        grad_mode=grad_mode,
        val_loss=val_loss if Need.VAL_GRAD in strategy.needs else None,
    )
    # AuxiLearn differentiates twice, which cuDNN's RNN kernel cannot: switch it off there.
    second_order = Need.LOSS_GRAPH in strategy.needs and device == "cuda"
    with torch.backends.cudnn.flags(enabled=not second_order), warnings.catch_warnings():
        out = model(tokens.to(device), side.to(device))
        losses = {t: F.binary_cross_entropy_with_logits(out[t], targets[t].to(device)) for t in out}
        # The batched way may say that it falls back to the loop: that is the point here.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*atching rule.*")
        balancer.backward(losses)
    return [p.grad.detach().cpu().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", _gradient_strategies())
def test_every_gradient_strategy_runs_on_the_recurrent_trunk_with_the_loops_result(
    name: str, device: str
) -> None:
    base = HeadlineModel(**TINY, seed=0).to(device)
    expected = _step(copy.deepcopy(base), name, "loop", device)
    assert expected, "the loop gave no gradients"
    assert all(torch.isfinite(g).all() for g in expected)
    for mode in ("batched", "auto"):
        got = _step(copy.deepcopy(base), name, mode, device)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_gradient_strategies_are_all_here() -> None:
    names = _gradient_strategies()
    # The per-task gradient methods of the catalogue, at the least.
    for must in ("pcgrad", "mgda", "upgrad", "cagrad", "nash-mtl", "graddrop", "relative"):
        assert must in names
