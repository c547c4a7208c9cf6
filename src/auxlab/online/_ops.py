"""Small numerical pieces the online learners share: losses with their gradients, optimisers.

The learners compute their gradients by hand (no autograd): online learning updates a tiny
network once per instance, and on a CPU the cost of a step is the number of tensor operations,
not their size. Every gradient here is checked against ``torch.autograd`` in the tests.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

__all__ = [
    "AdaGrad",
    "AdamW",
    "Diverged",
    "LossKind",
    "adagrad_step",
    "exit_losses",
    "insert_pairs",
    "kaiming_uniform",
    "normalise_losses_odl_code",
    "sqrt_",
    "uniform",
]

#: ``"ce"``: cross-entropy on log-softmax (the papers). ``"ce_on_softmax"``: PyTorch's
#: ``CrossEntropyLoss`` applied to softmax outputs, i.e. a second softmax (the Aux-Drop and
#: Aux-Net public code).
LossKind = Literal["ce", "ce_on_softmax"]


class Diverged(ValueError):
    """The network's outputs are no longer finite: its weights grew without bound."""


def exit_losses(
    logits: torch.Tensor, y: int, kind: LossKind, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-exit probabilities, losses and the gradients of the losses on the logits.

    Args:
        logits: ``(E, K)`` logits of ``E`` exits over ``K`` classes.
        y: The true class.
        kind: ``"ce"`` for ``ℓ = −log softmax(z)_y``; ``"ce_on_softmax"`` for
            ``ℓ = −log softmax(s·softmax(z))_y`` (``s`` from ``scale``, 1 by default), what
            ``CrossEntropyLoss`` gives on (scaled) probabilities.
        scale: ``(E,)`` factors ``s`` inside the second softmax (Aux-Net's code passes
            ``ᾱₗ·pₗ``); only for ``"ce_on_softmax"``.

    Returns:
        ``probs`` ``(E, K)`` (softmax of the logits), ``losses`` ``(E,)`` and ``grad``
        ``(E, K)``, the gradient of each exit's own loss on its own logits.
    """
    # Checked before any update of this step. One sum (2 us; isfinite().all() takes 9): a
    # NaN or an infinity anywhere makes it non-finite.
    if not math.isfinite(float(logits.sum())):
        raise Diverged("the network's outputs are not finite")
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    if kind == "ce":
        losses = -logp[:, y]
        grad = probs.clone()
        grad[:, y] -= 1.0
        return probs, losses, grad
    s = probs if scale is None else probs * scale[:, None]
    logr = torch.log_softmax(s, dim=-1)
    losses = -logr[:, y]
    g_s = logr.exp()
    g_s[:, y] -= 1.0
    g_q = g_s if scale is None else g_s * scale[:, None]
    grad = probs * (g_q - (probs * g_q).sum(-1, keepdim=True))
    return probs, losses, grad


def normalise_losses_odl_code(losses: torch.Tensor) -> torch.Tensor:
    """ODL's official Keras code: divide the step's losses by their sum, then min-max scale.

    The result lies in [0, 1]; it is what that code raises ``β`` to (``MyCallback``).
    """
    total = losses.sum()
    out = losses / total if float(total) > 0 else losses.clone()
    lo, hi = out.min(), out.max()
    if float(hi - lo) > 0:
        return (out - lo) / (hi - lo)
    return torch.zeros_like(out)


class AdamW:
    """AdamW on a list of tensors, with rows that can sit out a step (no gradient that step).

    The same arithmetic as ``torch.optim.AdamW`` (decoupled weight decay, bias correction,
    ``eps`` outside the square root). A tensor listed in ``rowwise`` keeps a step count per
    row: rows not in the step's ``rows`` index are left untouched, as PyTorch leaves a
    parameter whose ``.grad`` is ``None`` (Aux-Net's code keeps one module per auxiliary
    feature, and an absent feature's module gets no gradient).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        self.params = params
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros(p.shape[0] if p.ndim else 1) for p in params]

    def grow(self, i: int, param: torch.Tensor, dim: int) -> None:
        """Replace parameter ``i`` by a larger one (new rows or columns get fresh moments)."""
        old = self.params[i]
        extra = param.shape[dim] - old.shape[dim]
        shape = list(old.shape)
        shape[dim] = extra
        z = torch.zeros(shape, dtype=old.dtype)
        self.m[i] = torch.cat([self.m[i], z], dim)
        self.v[i] = torch.cat([self.v[i], z], dim)
        if dim == 0:
            self.steps[i] = torch.cat([self.steps[i], torch.zeros(extra)])
        self.params[i] = param

    def step(self, grads: list[torch.Tensor], rows: dict[int, torch.Tensor] | None = None) -> None:
        """One step; ``rows[i]`` restricts tensor ``i`` to those rows (gradients given for them)."""
        b1, b2 = self.betas
        fused: list[int] = []
        kernel = _FUSED_ADAMW
        if kernel is not None and self.params and self.params[0].device.type == "cpu":
            # Tensors stepped whole: PyTorch's fused AdamW kernel, one pass per tensor (the
            # arithmetic of torch.optim.AdamW(fused=True)); their step count is row 0's.
            fused = [
                i
                for i, p in enumerate(self.params)
                if (rows is None or rows.get(i) is None) and p.numel() and self.steps[i].numel()
            ]
        if kernel is not None and fused:
            steps = [self.steps[i] for i in fused]
            torch._foreach_add_(steps, 1.0)
            kernel(
                [self.params[i] for i in fused],
                [grads[i] for i in fused],
                [self.m[i] for i in fused],
                [self.v[i] for i in fused],
                [],
                [s[0] for s in steps],
                amsgrad=False,
                lr=self.lr,
                beta1=b1,
                beta2=b2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                maximize=False,
            )
        done = set(fused)
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if i in done:
                continue
            idx = None if rows is None else rows.get(i)
            if idx is None:
                self.steps[i] += 1
                t = float(self.steps[i][0])
                p.mul_(1.0 - self.lr * self.weight_decay)
                self.m[i].lerp_(g, 1.0 - b1)
                self.v[i].mul_(b2).addcmul_(g, g, value=1.0 - b2)
                # torch.optim.AdamW's order: √v / √(1 − β₂ᵗ) + ε, step lr / (1 − β₁ᵗ).
                denom = sqrt_(self.v[i].clone()).div_(math.sqrt(1.0 - b2**t)).add_(self.eps)
                p.addcdiv_(self.m[i], denom, value=-self.lr / (1.0 - b1**t))
            else:
                if idx.numel() == 0:
                    continue
                self.steps[i][idx] += 1
                # Bias corrections per row, in float64 as PyTorch computes them (in Python).
                tr = self.steps[i][idx].to(torch.float64).reshape((-1,) + (1,) * (p.ndim - 1))
                step_size = (self.lr / (1.0 - b1**tr)).to(p.dtype)
                bc2_sqrt = (1.0 - b2**tr).sqrt_().to(p.dtype)
                pr = p[idx] * (1.0 - self.lr * self.weight_decay)
                m = self.m[i][idx].lerp_(g, 1.0 - b1)
                v = self.v[i][idx].mul_(b2).addcmul_(g, g, value=1.0 - b2)
                denom = sqrt_(v.clone()).div_(bc2_sqrt).add_(self.eps)
                pr -= step_size * (m / denom)
                p[idx] = pr
                self.m[i][idx] = m
                self.v[i][idx] = v


class AdaGrad:
    """Per-coordinate AdaGrad on a list of tensors (:func:`adagrad_step`).

    ``G ← G + g²``, ``p ← p − η g / (√G + ε)``. A coordinate whose gradient is 0 does not move
    (no momentum), so the weights of an absent feature stay exactly as they were, as with
    SGD. Our default mode's optimiser (not from the papers): one step size serves layers and
    features of very different gradient scales, and the early steps are large, which matters
    on streams of a thousand instances.

    The accumulators ``acc`` are aligned by position with the list given to :meth:`step`; a
    learner that enlarges a parameter enlarges the matching accumulator with zeros
    (:func:`insert_pairs` or ``torch.cat``).
    """

    def __init__(self, params: list[torch.Tensor], lr: float, eps: float = 1e-8) -> None:
        self.lr = lr
        self.eps = eps
        self.acc = [torch.zeros_like(p) for p in params]

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """One step of every parameter, in place (:func:`adagrad_step`)."""
        adagrad_step(params, grads, self.acc, self.lr, self.eps)


def adagrad_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    acc: list[torch.Tensor],
    lr: float,
    eps: float = 1e-8,
) -> None:
    """AdaGrad in place: ``acc ← acc + g²``, ``p ← p − lr · g / (√acc + eps)``.

    On CPU this is PyTorch's fused AdaGrad kernel (one pass per tensor, the arithmetic of
    ``torch.optim.Adagrad`` with ``lr_decay=0``, ``weight_decay=0``), where PyTorch has it;
    otherwise four multi-tensor operations. The fused kernel is ~3x faster, and not only
    for the fusion: the vectorised ``sqrt`` of the multi-tensor form is ~25x slower on
    zeros, and most accumulators of an online learner hold zeros (features and nodes not
    seen yet).
    """
    if _FUSED_ADAGRAD is not None and params and params[0].device.type == "cpu":
        _FUSED_ADAGRAD(
            params,
            grads,
            acc,
            [_STEP_ONE] * len(params),
            lr=lr,
            lr_decay=0.0,
            weight_decay=0.0,
            eps=eps,
            maximize=False,
        )
        return
    torch._foreach_addcmul_(acc, grads, grads)
    denom = torch._foreach_sqrt(acc)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, grads, denom, value=-lr)


# PyTorch's fused AdaGrad and AdamW kernels (what ``torch.optim.Adagrad/AdamW(fused=True)``
# call); private functions, so looked up once and used only when present. With
# ``lr_decay=0`` the step count AdaGrad's kernel reads does not change the step; one
# constant tensor serves every parameter.
_FUSED_ADAGRAD = getattr(torch, "_fused_adagrad_", None)
_FUSED_ADAMW = getattr(torch, "_fused_adamw_", None)
_STEP_ONE = torch.ones(())


def sqrt_(t: torch.Tensor) -> torch.Tensor:
    """``t.sqrt_()``, through NumPy for CPU tensors; returns ``t``.

    The same numbers (IEEE square roots are exactly rounded either way), but PyTorch's CPU
    ``sqrt`` kernel (2.13, AVX-512) is 10-25x slower on zeros than on other values, and an
    optimiser's second moments are mostly zeros in an online learner (features not seen
    yet, units that never fired); NumPy's is not.
    """
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous():
        a = t.numpy()
        np.sqrt(a, out=a)
        return t
    return t.sqrt_()


def insert_pairs(t: torch.Tensor, values: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Add columns to a ``[value columns | flag columns]`` matrix, keeping the two halves.

    Args:
        t: ``(r, 2n)``: columns ``0..n-1`` read the values of slots ``0..n-1``, columns
            ``n..2n-1`` their availability flags.
        values: ``(r, k)`` new value columns (for slots ``n..n+k-1``).
        flags: ``(r, k)`` new flag columns.

    Returns:
        ``(r, 2(n+k))`` with the same layout.
    """
    n = t.shape[1] // 2
    return torch.cat([t[:, :n], values, t[:, n:], flags], 1)


def kaiming_uniform(
    gen: torch.Generator, out_f: int, in_f: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear``'s default initialisation, drawn from ``gen``: U(±1/√in) for both."""
    bound = 1.0 / math.sqrt(max(in_f, 1))
    w = (torch.rand(out_f, in_f, generator=gen) * 2 - 1) * bound
    b = (torch.rand(out_f, generator=gen) * 2 - 1) * bound
    return w, b


def uniform(gen: torch.Generator, shape: tuple[int, ...], bound: float) -> torch.Tensor:
    """U(−bound, bound) of the given shape, drawn from ``gen``."""
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound
