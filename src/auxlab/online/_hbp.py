"""Online Deep Learning with hedge backpropagation (ODL / HBP)."""

from __future__ import annotations

import torch

from auxlab.online._balance import ClassBalance
from auxlab.online._base import Faithful
from auxlab.online._hedged import HedgedClassifier
from auxlab.online._ops import (
    AdaGrad,
    exit_losses,
    insert_pairs,
    kaiming_uniform,
    normalise_losses_odl_code,
    uniform,
)
from auxlab.weighting._hedge import hedge_update

__all__ = ["HedgeBackprop"]


class HedgeBackprop(HedgedClassifier):
    """A deep network with a classifier on every layer, mixed by a hedge (ODL).

    Model, for ``L`` hidden ReLU layers of ``n_units``::

        h₀ = x,  hₗ = ReLU(Wₗ hₗ₋₁ + bₗ),   fₗ = softmax(Θₗ hₗ + cₗ),   F(x) = Σₗ αₗ fₗ

    Update per instance (ODL's equations (2)-(3)), done as one backward of ``Σₗ αₗ ℓₗ``
    (α held fixed), so each classifier gets ``−η αₗ ∇ℓₗ`` and each hidden layer the
    α-weighted sum of the gradients of the classifiers at or above it; then the hedge
    ``αₗ ← max(αₗ β^ℓₗ, s/N)``, ``α ← α/Σα`` (:func:`auxlab.weighting.hedge_update`).

    Modes (``faithful``):

    * ``"paper"``: the equations above, classifiers on ``h₀ .. h_L`` (``N = L+1``),
      cross-entropy on log-softmax, SGD, raw feature values.
    * ``"code"``: the official Keras code (LIBOL/ODL ``src/hbp``): one classifier per hidden
      layer (none on the input), the step's losses normalised (divided by their sum, then
      min-max scaled to [0, 1]) before ``β^ℓ``, and a constant floor 0.01 instead of ``s/N``.
    * ``None`` (ours, default): the paper's form (classifiers on ``h₀ .. h_L``, cross-entropy
      on log-softmax) with four changes of ours: each feature is z-scored online; the input
      is ``x = [z-scores ; availability flags]`` (2 columns per feature), so the network,
      and the linear classifier on ``h₀`` in particular, learns from *which* features are
      present; the step is AdaGrad's (:class:`auxlab.online._ops.AdaGrad`, step size
      0.05) instead of SGD's; and the loss is class-balanced (``class_weight``), so the
      plain argmax is the balanced-accuracy decision. The classifier on ``h₀`` is a linear
      model on the same inputs as :class:`OnlineLogistic`, so the hedge can fall back to it
      while the deep classifiers are still poor.

    Missing features enter as 0 (after z-scoring, the feature's running mean). A feature
    never seen before gets a new input column (ours: two, value and flag) and a new weight
    in the input classifier, drawn like ``nn.Linear``'s with the current fan-in.

    Args:
        n_layers: Hidden layers ``L`` (the paper: 20; our default 3, chosen by
            leave-one-data-set-out over a pool of streams, docs/online.md; 6 before).
        n_units: Units per hidden layer (the paper: 100; our default 50).
        lr: Step size η; ``None`` takes the mode's default: 0.01 for ``"paper"`` and
            ``"code"`` (SGD, the paper's value), 0.05 for ours (AdaGrad; our choice).
        beta: Hedge discount β in (0, 1); ``None`` takes the mode's default: 0.99 for
            ``"paper"`` and ``"code"`` (the papers), 0.9 for ours (our choice: the hedge
            moves to the better experts within the first few hundred instances).
        s: Hedge smoothing in (0, 1) (0.2); the floor is ``s/N``.
        n_classes: ``K``; with 2, labels are booleans (river's convention) or 0/1.
        faithful: ``"paper"``, ``"code"`` or ``None`` (ours).
        seed: Seed of the initialisation.
        class_weight: ``"balanced"``, ``"none"``, or ``None`` for the mode's default
            (``"balanced"`` in ours, our choice; ``"none"`` for ``"paper"`` and ``"code"``).
            Balanced multiplies each instance's loss, its gradients and the losses the hedge
            discounts by, by the inverse frequency of its class among the labels seen
            before it (:class:`auxlab.online._balance.ClassBalance`).

    Cost per instance: ``O(L·n_units² + d·n_units)`` time, no memory beyond the parameters.

    Example:
        >>> model = HedgeBackprop(n_layers=3, n_units=8, seed=0)
        >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
        >>> sorted(model.predict_proba_one({"a": 1.0}))
        [False, True]

    Reference: Sahoo, Pham, Lu, Hoi, "Online Deep Learning: Learning Deep Neural Networks on
    the Fly", IJCAI 2018.
    """

    def __init__(
        self,
        n_layers: int = 3,
        n_units: int = 50,
        lr: float | None = None,
        beta: float | None = None,
        s: float = 0.2,
        n_classes: int = 2,
        faithful: Faithful = None,
        seed: int = 0,
        class_weight: str | None = None,
    ) -> None:
        self.n_layers = n_layers
        self.n_units = n_units
        self.lr = lr
        self.beta = beta
        self.s = s
        self.n_classes = n_classes
        self.faithful = faithful
        self.seed = seed
        self.class_weight = class_weight

    @property
    def _input_exit(self) -> bool:
        return self.faithful != "code"

    @property
    def alpha(self) -> torch.Tensor:
        """The current hedge weights, input classifier first (when there is one)."""
        self._ensure()
        return self._alpha.clone()

    def _build(self, n_base: int) -> None:
        L, H, K = int(self.n_layers), int(self.n_units), int(self.n_classes)
        if L < 1 or H < 1:
            raise ValueError("HedgeBackprop: n_layers and n_units must be >= 1")
        g = self._init_gen
        self._W1 = torch.zeros(H, 0)
        self._b = torch.stack([kaiming_uniform(g, H, H)[1] for _ in range(L)])
        hidden = [kaiming_uniform(g, H, H)[0] for _ in range(L - 1)]
        self._W = torch.stack(hidden) if hidden else torch.zeros(0, H, H)
        heads = [kaiming_uniform(g, K, H) for _ in range(L)]
        self._V = torch.stack([w for w, _ in heads])
        self._c = torch.stack([b for _, b in heads])
        self._V0 = torch.zeros(K, 0)
        self._c0 = kaiming_uniform(g, K, 1)[1]
        n = L + int(self._input_exit)
        self._alpha = torch.full((n,), 1.0 / n)
        self._opt = AdaGrad(self._params(), self._lr) if self._ours else None
        self._balance = ClassBalance(K) if self._balanced else None

    def _params(self) -> list[torch.Tensor]:
        return [self._W1, self._W, self._b, self._V, self._c, self._V0, self._c0]

    def _grow(self, n_new: int) -> int:
        H, K = int(self.n_units), int(self.n_classes)
        if not self._ours:
            bound = float(self._W1.shape[1] + n_new) ** -0.5
            w = uniform(self._init_gen, (H, n_new), bound)
            v = uniform(self._init_gen, (K, n_new), bound)
            self._W1 = torch.cat([self._W1, w], 1)
            self._V0 = torch.cat([self._V0, v], 1)
            return n_new
        bound = float(self._W1.shape[1] + 2 * n_new) ** -0.5
        g = self._init_gen
        w, wf = uniform(g, (H, n_new), bound), uniform(g, (H, n_new), bound)
        v, vf = uniform(g, (K, n_new), bound), uniform(g, (K, n_new), bound)
        self._W1 = insert_pairs(self._W1, w, wf)
        self._V0 = insert_pairs(self._V0, v, vf)
        assert self._opt is not None
        acc = self._opt.acc
        acc[0] = insert_pairs(acc[0], torch.zeros(H, n_new), torch.zeros(H, n_new))
        acc[5] = insert_pairs(acc[5], torch.zeros(K, n_new), torch.zeros(K, n_new))
        return n_new

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        L = int(self.n_layers)
        W, b = self._W, self._b
        if self._ours:
            xa = torch.cat([xa, ma.to(xa.dtype)])
        h = torch.addmv(b[0], self._W1, xa).clamp_(min=0)
        hs = [h]
        for layer in range(1, L):
            h = torch.addmv(b[layer], W[layer - 1], h).clamp_(min=0)
            hs.append(h)
        Hs = torch.stack(hs)
        Z = torch.baddbmm(self._c.unsqueeze(2), self._V, Hs.unsqueeze(2)).squeeze(2)
        if self._input_exit:
            Z = torch.cat([torch.addmv(self._c0, self._V0, xa).unsqueeze(0), Z])
        alpha = self._alpha
        if y is None:
            return alpha @ torch.log_softmax(Z, -1).exp()  # as exit_losses: same bits
        probs, losses, G = exit_losses(Z, y, "ce")
        out = alpha @ probs
        if self._balance is not None:
            w = self._balance.observe(y)
            losses, G = losses * w, G * w
        G = G * alpha.unsqueeze(1)
        lr = self._lr
        G0 = G[0]
        if self._input_exit:
            G = G[1:]
        act = (Hs > 0).to(Hs.dtype)
        gH = torch.bmm(G.unsqueeze(1), self._V).squeeze(1)  # (L, H) from the classifiers
        gpre = [gH[L - 1] * act[L - 1]]
        for layer in range(L - 2, -1, -1):
            gpre.append(torch.addmv(gH[layer], W[layer].T, gpre[-1]).mul_(act[layer]))
        gpre.reverse()
        Gp = torch.stack(gpre)
        # Gradients of all hidden weights first, then the in-place updates.
        gW = Gp[1:].unsqueeze(2) * Hs[:-1].unsqueeze(1) if L > 1 else torch.zeros_like(W)
        gV = G.unsqueeze(2) * Hs.unsqueeze(1)
        grads = [torch.outer(Gp[0], xa), gW, Gp, gV, G]
        params = self._params()
        if self._input_exit:
            grads += [torch.outer(G0, xa), G0]
        else:
            params = params[:5]
        if self._opt is not None:
            self._opt.step(params, grads)
        else:
            torch._foreach_add_(params, grads, alpha=-lr)
        if self.faithful == "code":
            n = alpha.numel()
            self._alpha = hedge_update(
                alpha, normalise_losses_odl_code(losses), self._beta, min(0.01 * n, 0.999)
            )
        else:
            self._alpha = hedge_update(alpha, losses, self._beta, float(self.s))
        return out
