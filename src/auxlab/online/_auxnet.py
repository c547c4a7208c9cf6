"""Aux-Net: one small layer per auxiliary feature, a hedge over the present experts."""

from __future__ import annotations

import torch

from auxlab.online._balance import ClassBalance
from auxlab.online._base import Faithful
from auxlab.online._hedged import HedgedClassifier
from auxlab.online._ops import AdaGrad, AdamW, exit_losses, insert_pairs, kaiming_uniform, uniform
from auxlab.weighting._hedge import hedge_update

__all__ = ["AuxNet"]


class AuxNet(HedgedClassifier):
    """Aux-Net: base, auxiliary, middle and end modules, with a classifier on every layer.

    With ``n_b`` base layers, ``n_e`` end layers, ``H`` units and present auxiliary features
    ``Aₜ`` (every weight matrix with a bias)::

        base:    z₁ = ReLU(W₁ xᴮ), zₖ = ReLU(Wₖ zₖ₋₁)          middle: m = ReLU(Wᴹ z_{n_b})
        aux:     aⱼ = ReLU(wⱼ xⱼ + cⱼ) ∈ R^H,  j ∈ Aₜ            (one scalar in, H units out)
        fusion:  u = [γⱼ aⱼ for every auxiliary j (0 if absent) ; γ_M m],
                 γⱼ = αⱼ / (Σ_{i∈Aₜ} αᵢ + α_M)
        end:     e₁ = ReLU(W₁ᴱ u), eₖ = ReLU(Wₖᴱ eₖ₋₁)
        experts: a softmax classifier on every zₖ, on m, on every aⱼ and on every eₖ;
                 Sₜ = all but the absent auxiliary ones;  F = Σ_{l∈Sₜ} ᾱₗ pₗ, ᾱ = α / Σ_{Sₜ} α

    The update trains the experts in ``Sₜ`` and the layers below them, then hedges:
    ``αₗ ← max(αₗ β^ℓₗ, s/N)`` for ``l ∈ Sₜ`` (``N`` counts every expert), renormalise.
    The auxiliary layers are one batched tensor operation over the present features, never a
    Python loop over them.

    Modes (``faithful``):

    * ``"paper"``: online gradient descent on ``Σ_{l∈Sₜ} ᾱₗ ℓₗ`` (hedge backpropagation over
      the present experts), cross-entropy on log-softmax, raw feature values.
    * ``"code"``: the authors' public code: per expert ``ℓₗ = CE(ᾱₗ pₗ)``, where PyTorch's
      ``CrossEntropyLoss`` takes the weighted probabilities as logits (a second softmax);
      the sum of these losses is minimised with AdamW (weight decay 0.01; a layer of an
      absent feature gets no gradient, so AdamW leaves it alone); ``ᾱ`` is written back
      into ``α`` for the present experts before the hedge; raw feature values.
    * ``None`` (ours, default): the paper's form with these changes of ours: each feature is
      z-scored online; a linear classifier on ``[base features ; auxiliary z-scores ;
      availability flags]`` joins the hedge as an extra expert, always present (ODL's
      classifier on the input: the hedge can fall back to a linear model while the deep
      experts are poor); and the step is AdaGrad's (:class:`auxlab.online._ops.AdaGrad`,
      step size 0.05) instead of SGD's. An absent feature's layer gets a zero gradient, which
      AdaGrad turns into no step, so it stays as it was, as in the other modes.
      The hedge is the specialist ("sleeping experts") hedge: only the present experts trade
      weight among themselves, their total kept, so an absent feature's expert keeps its
      weight and the always-present experts are not crowded out by experts that are
      discounted only half the time (the papers' masked hedge renormalises over all
      experts). And the loss is class-balanced (``class_weight``).

    A feature never seen before gets a new auxiliary layer, a new expert (weight ``1/N``
    with ``N`` the current number of experts, then renormalised) and ``H`` new columns in
    ``W₁ᴱ`` (ours: and two columns, value and flag, of the linear expert). Base
    features: ``base_features`` names them; a number ``k`` makes the first ``k`` features
    observed the base features (the review's protocol, which forward-fills 2 features); a
    missing base feature is forward-filled.

    Args:
        n_base_layers: ``n_b`` (the paper's code: 5; our default 3, chosen by
            leave-one-data-set-out over a pool of streams, docs/online.md; 5 before).
        n_end_layers: ``n_e`` (the paper's code: 5; our default 3, chosen likewise; 5 before).
        n_units: ``H`` (50).
        lr: Step size; ``None`` takes the mode's default: 0.01 for ``"paper"`` (SGD) and
            ``"code"`` (AdamW; the review's best per data set is 0.1 to 0.5), 0.05 for ours
            (AdaGrad; our choice).
        beta: Hedge discount β in (0, 1); ``None`` takes the mode's default: 0.99 for
            ``"paper"`` and ``"code"`` (the papers), 0.9 for ours (our choice: the hedge
            moves to the better experts within the first few hundred instances).
        s: Hedge smoothing s (0.2).
        base_features: Names of the base features, or how many of the first observed.
        n_classes: ``K``; with 2, labels are booleans (river's convention) or 0/1.
        faithful: ``"paper"``, ``"code"`` or ``None`` (ours).
        seed: Seed of the initialisation.
        class_weight: ``"balanced"``, ``"none"``, or ``None`` for the mode's default
            (``"balanced"`` in ours, our choice; ``"none"`` for ``"paper"`` and ``"code"``).
            Balanced multiplies each instance's loss, its gradients and the losses the hedge
            discounts by, by the inverse frequency of its class among the labels seen
            before it (:class:`auxlab.online._balance.ClassBalance`).

    Cost per instance: ``O((n_b + n_e)·H² + N_A·H²)`` time (the first end layer reads all
    ``(N_A+1)·H`` fused units), ``O(N_A·H²)`` memory.

    Example:
        >>> model = AuxNet(n_base_layers=2, n_end_layers=2, n_units=8, base_features=("a",))
        >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
        >>> model.learn_one({"a": 0.5, "c": -1.0}, False)
        >>> model.n_aux
        2

    Reference: Agarwal, Gupta, Vuppala, Bhattacharya, "Auxiliary Network: Scalable and Agile
    Online Learning for Dynamic System with Inconsistently Available Inputs", ICONIP 2022
    (arXiv 2008.11828); the wiring and the code mode follow the authors' public code.
    """

    _uses_base = True

    def __init__(
        self,
        n_base_layers: int = 3,
        n_end_layers: int = 3,
        n_units: int = 50,
        lr: float | None = None,
        beta: float | None = None,
        s: float = 0.2,
        base_features: tuple | int = 2,
        n_classes: int = 2,
        faithful: Faithful = None,
        seed: int = 0,
        class_weight: str | None = None,
    ) -> None:
        self.n_base_layers = n_base_layers
        self.n_end_layers = n_end_layers
        self.n_units = n_units
        self.lr = lr
        self.beta = beta
        self.s = s
        self.base_features = base_features
        self.n_classes = n_classes
        self.faithful = faithful
        self.seed = seed
        self.class_weight = class_weight

    @property
    def alpha(self) -> torch.Tensor:
        """Hedge weights: base layers, middle, end layers, the linear expert (ours), auxiliary.

        One weight per auxiliary feature, in slot order, at the end.
        """
        self._ensure()
        return self._alpha.clone()

    def _build(self, n_base: int) -> None:
        nb, ne, H, K = (
            int(self.n_base_layers),
            int(self.n_end_layers),
            int(self.n_units),
            int(self.n_classes),
        )
        if nb < 1 or ne < 1 or H < 1:
            raise ValueError("AuxNet: n_base_layers, n_end_layers and n_units must be >= 1")
        if n_base < 1:
            raise ValueError(
                "AuxNet needs at least one base feature: name them in base_features, or give "
                "a number k so that the first k features observed become the base features"
            )
        g = self._init_gen
        w1, b1 = kaiming_uniform(g, H, n_base)
        self._Wb1, self._bb1 = w1, b1
        rest = [kaiming_uniform(g, H, H) for _ in range(nb - 1)]
        self._Wb = torch.stack([w for w, _ in rest]) if rest else torch.zeros(0, H, H)
        self._bb = torch.stack([b for _, b in rest]) if rest else torch.zeros(0, H)
        self._Wm, self._bm = kaiming_uniform(g, H, H)
        # First end layer: columns [middle block | one block per auxiliary feature].
        self._We1 = uniform(g, (H, H), H**-0.5)
        self._be1 = uniform(g, (H,), H**-0.5)
        rest = [kaiming_uniform(g, H, H) for _ in range(ne - 1)]
        self._We = torch.stack([w for w, _ in rest]) if rest else torch.zeros(0, H, H)
        self._be = torch.stack([b for _, b in rest]) if rest else torch.zeros(0, H)
        # Dense experts: base layers, middle, end layers.
        heads = [kaiming_uniform(g, K, H) for _ in range(nb + 1 + ne)]
        self._Vd = torch.stack([w for w, _ in heads])
        self._cd = torch.stack([b for _, b in heads])
        # Auxiliary layers and their experts, one row per feature.
        self._Wa = torch.zeros(0, H)
        self._ba = torch.zeros(0, H)
        self._Va = torch.zeros(0, K, H)
        self._ca = torch.zeros(0, K)
        # Ours: the linear expert, [base | auxiliary values | auxiliary flags] -> K.
        self._n_lin = int(self._ours)
        self._Vlb, self._cl = torch.zeros(K, n_base), torch.zeros(K)
        if self._ours:  # drawn only in our mode: the other modes keep their draws
            self._Vlb, self._cl = kaiming_uniform(g, K, n_base)
        self._Vla = torch.zeros(K, 0)
        n = nb + 1 + ne + self._n_lin
        self._alpha = torch.full((n,), 1.0 / n)
        self._opt: AdamW | None = None
        self._ada: AdaGrad | None = None
        if self.faithful == "code":
            self._opt = AdamW(self._params(), lr=self._lr)
        elif self._ours:
            self._ada = AdaGrad(self._params(), lr=self._lr)
        self._balance = ClassBalance(K) if self._balanced else None

    def _params(self) -> list[torch.Tensor]:
        # Order matters for AdamW.grow: the row-wise (auxiliary) tensors are 12-15; ours
        # appends the linear expert.
        extra = [self._Vlb, self._Vla, self._cl] if self._n_lin else []
        return [
            self._Wb1, self._bb1, self._Wb, self._bb, self._Wm, self._bm,
            self._We1, self._be1, self._We, self._be, self._Vd, self._cd,
            self._Wa, self._ba, self._Va, self._ca, *extra,
        ]  # fmt: skip

    def _grow(self, n_new: int) -> int:
        H, K = int(self.n_units), int(self.n_classes)
        g = self._init_gen
        # An auxiliary layer is nn.Linear(1, H) (fan-in 1), its classifier nn.Linear(H, K).
        wa = uniform(g, (n_new, H), 1.0)
        ba = uniform(g, (n_new, H), 1.0)
        va = uniform(g, (n_new, K, H), H**-0.5)
        ca = uniform(g, (n_new, K), H**-0.5)
        bound = float((self._We1.shape[1] // H + n_new) * H) ** -0.5
        we = uniform(g, (H, n_new * H), bound)
        self._Wa = torch.cat([self._Wa, wa])
        self._ba = torch.cat([self._ba, ba])
        self._Va = torch.cat([self._Va, va])
        self._ca = torch.cat([self._ca, ca])
        self._We1 = torch.cat([self._We1, we], 1)
        n = self._alpha.numel()
        alpha = torch.cat([self._alpha, torch.full((n_new,), 1.0 / n)])
        self._alpha = alpha / alpha.sum()
        if self._opt is not None:
            params = self._params()
            self._opt.grow(6, params[6], 1)
            for i in range(12, 16):
                self._opt.grow(i, params[i], 0)
        if self._ada is not None:
            n_aux = self._Wa.shape[0]
            bound = float(self._Vlb.shape[1] + 2 * n_aux) ** -0.5
            v, vf = uniform(g, (K, n_new), bound), uniform(g, (K, n_new), bound)
            self._Vla = insert_pairs(self._Vla, v, vf)
            acc = self._ada.acc
            acc[6] = torch.cat([acc[6], torch.zeros(H, n_new * H)], 1)
            for i in range(12, 16):
                acc[i] = torch.cat([acc[i], torch.zeros_like(self._params()[i][-n_new:])])
            acc[17] = insert_pairs(acc[17], torch.zeros(K, n_new), torch.zeros(K, n_new))
        return n_new

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        nb, ne, H = int(self.n_base_layers), int(self.n_end_layers), int(self.n_units)
        D = nb + 1 + ne
        Dl = D + self._n_lin  # dense experts, then (ours) the linear expert
        # Every auxiliary row is computed and the absent ones masked (their outputs, expert
        # weights and hence gradients are exactly 0): cheaper than gathering the present rows.
        mf = ma.to(xa.dtype)
        # Base and middle.
        h = torch.addmv(self._bb1, self._Wb1, xb).clamp_(min=0)
        hb = [h]
        for k in range(nb - 1):
            h = torch.addmv(self._bb[k], self._Wb[k], h).clamp_(min=0)
            hb.append(h)
        m = torch.addmv(self._bm, self._Wm, h).clamp_(min=0)
        # Auxiliary layers, batched: (n_aux, H), rows of absent features 0.
        x1 = xa.unsqueeze(1)
        a = torch.addcmul(self._ba, x1, self._Wa).clamp_(min=0).mul_(mf.unsqueeze(1))
        za = torch.baddbmm(self._ca.unsqueeze(2), self._Va, a.unsqueeze(2)).squeeze(2)
        # Fusion weights from the current α (constants for the gradient); absent experts 0.
        present = torch.cat([ma.new_ones(Dl), ma])
        aS = self._alpha * present
        gamma = aS / (aS[nb] + aS[Dl:].sum())
        gamma_m, gamma_a = gamma[nb], gamma[Dl:].unsqueeze(1)
        uf = torch.cat([m * gamma_m, (a * gamma_a).reshape(-1)])
        e = torch.addmv(self._be1, self._We1, uf).clamp_(min=0)
        he = [e]
        for k in range(ne - 1):
            e = torch.addmv(self._be[k], self._We[k], e).clamp_(min=0)
            he.append(e)
        Hd = torch.stack([*hb, m, *he])  # (D, H)
        Zd = torch.baddbmm(self._cd.unsqueeze(2), self._Vd, Hd.unsqueeze(2)).squeeze(2)
        if self._n_lin:
            xl = torch.cat([xa, mf])
            zl = torch.addmv(torch.addmv(self._cl, self._Vlb, xb), self._Vla, xl)
            Z = torch.cat([Zd, zl.unsqueeze(0), za])
        else:
            Z = torch.cat([Zd, za])
        abar = aS / aS.sum()
        if y is None:
            return abar @ torch.log_softmax(Z, -1).exp()  # as exit_losses: same bits
        code = self.faithful == "code"
        if code:
            # ᾱ = 0 makes an absent expert's gradient exactly 0 (see exit_losses).
            probs, losses, G = exit_losses(Z, y, "ce_on_softmax", scale=abar)
        else:
            probs, losses, G = exit_losses(Z, y, "ce")
            G = G * abar.unsqueeze(1)
        out = abar @ probs
        if self._balance is not None:
            w = self._balance.observe(y)
            losses, G = losses * w, G * w
        Gd, Ga = G[:D], G[Dl:]
        # Backward through the experts.
        gVd = Gd.unsqueeze(2) * Hd.unsqueeze(1)
        gHd = torch.bmm(Gd.unsqueeze(1), self._Vd).squeeze(1)  # (D, H)
        gVa = Ga.unsqueeze(2) * a.unsqueeze(1)
        ga = torch.bmm(Ga.unsqueeze(1), self._Va).squeeze(1)  # (n_aux, H)
        # End layers, top down.
        relu_grad = torch.ops.aten.threshold_backward
        gpe = [relu_grad(gHd[D - 1], he[-1], 0.0)]
        for k in range(ne - 2, -1, -1):
            g_h = torch.addmv(gHd[nb + 1 + k], self._We[k].T, gpe[-1])
            gpe.append(relu_grad(g_h, he[k], 0.0))
        gpe.reverse()
        gu = torch.mv(self._We1.T, gpe[0])
        # Middle and auxiliary layers (an absent row has a = 0, hence gradient 0).
        gpm = relu_grad(gHd[nb] + gu[:H] * gamma_m, m, 0.0)
        gpa = relu_grad(torch.addcmul(ga, gu[H:].view(-1, H), gamma_a), a, 0.0)
        gWa = gpa * x1
        # Base layers, top down.
        gpb = [relu_grad(torch.addmv(gHd[nb - 1], self._Wm.T, gpm), hb[-1], 0.0)]
        for k in range(nb - 2, -1, -1):
            g_h = torch.addmv(gHd[k], self._Wb[k].T, gpb[-1])
            gpb.append(relu_grad(g_h, hb[k], 0.0))
        gpb.reverse()
        Gpb = torch.stack(gpb)
        Gpe = torch.stack(gpe)
        grads = [
            torch.outer(Gpb[0], xb),
            Gpb[0],
            Gpb[1:].unsqueeze(2) * torch.stack(hb[:-1]).unsqueeze(1)
            if nb > 1
            else self._Wb.new_zeros(0, H, H),
            Gpb[1:],
            torch.outer(gpm, hb[-1]),
            gpm,
            torch.outer(Gpe[0], uf, out=self._buffer("gWe1", self._We1.shape)),
            Gpe[0],
            Gpe[1:].unsqueeze(2) * torch.stack(he[:-1]).unsqueeze(1)
            if ne > 1
            else self._We.new_zeros(0, H, H),
            Gpe[1:],
            gVd,
            Gd,
            gWa,
            gpa,
            gVa,
            Ga,
        ]
        if self._opt is not None:
            # AdamW: an absent feature's rows sit the step out (no gradient in the code).
            P = ma.nonzero().squeeze(1)
            rows = {12: P, 13: P, 14: P, 15: P}
            self._opt.step([*grads[:12], *(g[P] for g in grads[12:])], rows)
        elif self._ada is not None:
            Gl = G[D]
            grads += [torch.outer(Gl, xb), torch.outer(Gl, xl), Gl]
            self._ada.step(self._params(), grads)
        else:
            torch._foreach_add_(self._params(), grads, alpha=-self._lr)
        alpha = self._alpha
        if code:
            alpha = torch.where(present, abar, alpha)  # the code writes ᾱ back before the hedge
        self._alpha = hedge_update(
            alpha, losses, self._beta, float(self.s), present=present, sleeping=self._ours
        )
        return out
