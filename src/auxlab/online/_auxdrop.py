"""Aux-Drop: an AuxLayer whose dropout removes the missing features' nodes first."""

from __future__ import annotations

import torch

from auxlab.online._balance import ClassBalance
from auxlab.online._base import Faithful
from auxlab.online._hedged import HedgedClassifier
from auxlab.online._ops import (
    AdaGrad,
    LossKind,
    exit_losses,
    insert_pairs,
    kaiming_uniform,
    uniform,
)
from auxlab.weighting._hedge import hedge_update

__all__ = ["AuxDrop", "auxdrop_drop_probability"]

_BLOCK = 256  # instances per block of dropout draws


def auxdrop_drop_probability(
    n_units: int, n_aux: int, n_missing: int, dropout: float, faithful: Faithful = None
) -> float:
    """Aux-Drop's random-drop probability for the AuxLayer nodes not dropped selectively.

    With ``|M|`` nodes, the first ``n_A`` of them auxiliary, and ``n_missing`` features
    missing (their nodes are always dropped), the remaining nodes are dropped with
    probability ``p`` so that the expected number of dropped nodes is ``d·|M|``:

    * paper (and ours): the pool is every node not dropped selectively,
      ``p = (d|M| − n_missing) / (|M| − n_missing)``;
    * the authors' code (``faithful="code"``): the pool is the non-auxiliary nodes only
      (present features' nodes are always kept), ``p = (d|M| − n_missing) / (|M| − n_A)``.

    ``p`` is clipped to [0, 1]: when more than ``d·|M|`` features are missing, the drop rate
    exceeds ``d`` (the paper asks for ``d·|M| ≥ n_A`` so that this cannot happen).

    Example:
        >>> auxdrop_drop_probability(100, 20, 10, 0.3)
        0.2222222222222222
        >>> auxdrop_drop_probability(100, 20, 10, 0.3, faithful="code")
        0.25
    """
    pool = n_units - (n_aux if faithful == "code" else n_missing)
    if pool <= 0:
        return 0.0
    return min(max((dropout * n_units - n_missing) / pool, 0.0), 1.0)


class AuxDrop(HedgedClassifier):
    """Aux-Drop: an MLP with an AuxLayer that drops the nodes of missing features.

    ``L`` ReLU layers of ``n_units``; layer ``z = aux_position`` is the AuxLayer, with
    ``aux_units`` nodes ``M`` and input ``[x_aux ; h_{z−1}]`` (``h₀`` = the base features).
    Its first ``n_A`` nodes are auxiliary, node ``j`` belonging to auxiliary feature ``j``.
    At each instance the nodes of the missing features are dropped (selective dropout), then
    other nodes at random with :func:`auxdrop_drop_probability`, so that the expected drop
    rate is ``d``; kept nodes are scaled by ``1/(1−d)``. Missing features enter as 0, so the
    weights they touch get no gradient. Position 1 needs no base feature (every feature is
    auxiliary), as in the review.

    Variants: ``"odl"``, hedge backpropagation (:class:`HedgeBackprop`'s update) over
    classifiers on every layer except the first and the AuxLayer (as in the authors' code,
    in every mode); ``"ogd"``, one softmax output on the last layer trained by SGD.

    Prediction and learning use the same forward pass and the same dropout draw: the draw
    for the ``t``-th instance learned depends only on ``seed`` and ``t``, so
    ``predict_proba_one(x)`` followed by ``learn_one(x, y)`` sees one network.

    Modes (``faithful``):

    * ``"paper"``: random dropout over every node not dropped selectively; cross-entropy on
      log-softmax; raw feature values.
    * ``"code"``: the authors' code: present features' nodes are never dropped at random (the
      random pool is the non-auxiliary nodes); cross-entropy on softmax outputs (a second
      softmax) for the per-layer losses that drive both the gradients and the hedge; raw
      feature values.
    * ``None`` (ours, default): the paper's dropout and log-softmax cross-entropy, with five
      changes of ours: each feature is z-scored online; the AuxLayer reads
      ``[z-scores ; availability flags]`` of the auxiliary features (its flag weights, like
      its value weights, get no gradient while the feature is missing); a linear classifier
      on ``[base features ; z-scores ; flags]`` joins the hedge as an extra expert (the
      first one; ODL's classifier on the input, so the hedge can fall back to a linear
      model while the deep classifiers are poor); the step is AdaGrad's
      (:class:`auxlab.online._ops.AdaGrad`, step size 0.05) instead of SGD's; and the loss
      is class-balanced (``class_weight``).

    A feature never seen before takes the next free auxiliary node (ours: and two columns of
    the linear expert); once ``aux_units`` are taken, further new features are ignored with
    a ``RuntimeWarning``.

    Args:
        n_layers: ``L`` (6 in the paper's UCI runs, 11 for IPD).
        n_units: Units of the other layers (50).
        aux_position: ``z``, 1-based (the paper: 3; default 1, which needs no base feature).
        aux_units: Nodes of the AuxLayer, ``|M|`` (100; the paper asks ``d·|M| ≥ n_A``).
        dropout: ``d``, the expected drop rate of the AuxLayer; ``None`` takes the mode's
            default: 0.3 for ``"paper"`` and ``"code"`` (the paper), 0.1 for ours (chosen by
            leave-one-data-set-out over a pool of streams, docs/online.md; 0.3 before).
        lr: Step size; ``None`` takes the mode's default: 0.05 for ``"paper"`` and ``"code"``
            (SGD; the paper tunes it per data set: 0.1 german/svmguide3, 0.01 magic04/a8a,
            0.3 IPD), 0.05 for ours (AdaGrad; our choice).
        beta: Hedge discount β in (0, 1); ``None`` takes the mode's default: 0.99 for
            ``"paper"`` and ``"code"`` (the papers), 0.9 for ours (our choice: the hedge
            moves to the better experts within the first few hundred instances).
        s: Hedge smoothing s (0.2).
        base_features: Names of the base features, or how many of the first observed
            features become base features (forward-filled when missing).
        variant: ``"odl"`` or ``"ogd"``.
        n_classes: ``K``; with 2, labels are booleans (river's convention) or 0/1.
        faithful: ``"paper"``, ``"code"`` or ``None`` (ours).
        seed: Seed of the initialisation and of the dropout draws.
        class_weight: ``"balanced"``, ``"none"``, or ``None`` for the mode's default
            (``"balanced"`` in ours, our choice; ``"none"`` for ``"paper"`` and ``"code"``).
            Balanced multiplies each instance's loss, its gradients and the losses the hedge
            discounts by, by the inverse frequency of its class among the labels seen
            before it (:class:`auxlab.online._balance.ClassBalance`).

    Cost per instance: ``O(L·H² + |M|·(n_A + H))`` time; memory is the parameters.

    Example:
        >>> model = AuxDrop(n_layers=3, n_units=8, aux_units=20, seed=0)
        >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
        >>> round(sum(model.predict_proba_one({"b": 1.0}).values()), 6)
        1.0

    Reference: Agarwal, Gupta, Bhattacharya, "Aux-Drop: Handling Haphazard Inputs in Online
    Learning Using Auxiliary Dropouts", TMLR 2023.
    """

    _uses_base = True

    def __init__(
        self,
        n_layers: int = 6,
        n_units: int = 50,
        aux_position: int = 1,
        aux_units: int = 100,
        dropout: float | None = None,
        lr: float | None = None,
        beta: float | None = None,
        s: float = 0.2,
        base_features: tuple | int | None = None,
        variant: str = "odl",
        n_classes: int = 2,
        faithful: Faithful = None,
        seed: int = 0,
        class_weight: str | None = None,
    ) -> None:
        self.n_layers = n_layers
        self.n_units = n_units
        self.aux_position = aux_position
        self.aux_units = aux_units
        self.dropout = dropout
        self.lr = lr
        self.beta = beta
        self.s = s
        self.base_features = base_features
        self.variant = variant
        self.n_classes = n_classes
        self.faithful = faithful
        self.seed = seed
        self.class_weight = class_weight

    _lr_defaults = (0.05, 0.05)  # the same step in every mode

    @property
    def _dropout(self) -> float:
        # Ours: 0.1, chosen by leave-one-data-set-out (docs/online.md); the paper's 0.3.
        if self.dropout is not None:
            return float(self.dropout)
        return 0.1 if self._ours else 0.3

    @property
    def alpha(self) -> torch.Tensor:
        """Hedge weights of the classifiers, lowest layer first (``[1.]`` for ``"ogd"``).

        Ours (``faithful=None``) with ``"odl"``: the linear expert first, then the layers.
        """
        self._ensure()
        return self._alpha.clone()

    def _build(self, n_base: int) -> None:
        L, H, K = int(self.n_layers), int(self.n_units), int(self.n_classes)
        z, M, d = int(self.aux_position), int(self.aux_units), self._dropout
        if self.variant not in ("odl", "ogd"):
            raise ValueError(f"AuxDrop: variant must be 'odl' or 'ogd', got {self.variant!r}")
        if not 1 <= z < L:
            raise ValueError(f"AuxDrop: aux_position must be in [1, n_layers), got {z} and {L}")
        if not 0.0 <= d < 1.0:
            raise ValueError(f"AuxDrop: dropout must be in [0, 1), got {d}")
        if z > 1 and n_base < 1:
            raise ValueError(
                "AuxDrop with aux_position > 1 needs base features (name them in "
                "base_features, or give a number k); use aux_position=1 without them"
            )
        g = self._init_gen
        self._Ws: list[torch.Tensor] = []
        self._bs: list[torch.Tensor] = []
        for layer in range(1, L + 1):
            if layer == z:
                fan = n_base if z == 1 else H
                w, b = kaiming_uniform(g, M, fan)
            else:
                fan = n_base if layer == 1 else (M if layer == z + 1 else H)
                w, b = kaiming_uniform(g, H, fan)
            self._Ws.append(w)
            self._bs.append(b)
        self._Wz_aux = torch.zeros(M, 0)
        if self.variant == "odl":
            self._exits = [layer for layer in range(2, L + 1) if layer != z]
        else:
            self._exits = [L]
        heads = [kaiming_uniform(g, K, H) for _ in self._exits]
        self._V = torch.stack([w for w, _ in heads])
        self._c = torch.stack([b for _, b in heads])
        self._linear = self._ours and self.variant == "odl"
        self._Vlb, self._cl = torch.zeros(K, n_base), torch.zeros(K)
        if self._linear:  # drawn only in our mode: the other modes keep their draws
            w, self._cl = kaiming_uniform(g, K, max(n_base, 1))
            self._Vlb = w[:, :n_base].clone()
        self._Vla = torch.zeros(K, 0)
        n = len(self._exits) + int(self._linear)
        self._alpha = torch.full((n,), 1.0 / n)
        self._opt = AdaGrad(self._params(), self._lr) if self._ours else None
        self._balance = ClassBalance(K) if self._balanced else None

    def _params(self) -> list[torch.Tensor]:
        # Ours: every trained tensor, in the order of the gradients built by ``_step``.
        extra = [self._Vlb, self._Vla, self._cl] if self._linear else []
        return [*self._Ws, *self._bs, self._V, self._c, self._Wz_aux, *extra]

    def _grow(self, n_new: int) -> int:
        M = int(self.aux_units)
        n_old = self._Wz_aux.shape[1] // (2 if self._ours else 1)
        accepted = max(0, min(n_new, M - n_old))
        if not accepted:
            return 0
        g = self._init_gen
        if not self._ours:
            fan = n_old + accepted + self._Ws[int(self.aux_position) - 1].shape[1]
            w = uniform(g, (M, accepted), float(fan) ** -0.5)
            self._Wz_aux = torch.cat([self._Wz_aux, w], 1)
            return accepted
        n_aux = n_old + accepted
        fan = 2 * n_aux + self._Ws[int(self.aux_position) - 1].shape[1]
        bound = float(fan) ** -0.5
        w, wf = uniform(g, (M, accepted), bound), uniform(g, (M, accepted), bound)
        self._Wz_aux = insert_pairs(self._Wz_aux, w, wf)
        assert self._opt is not None
        acc = self._opt.acc
        L = int(self.n_layers)
        acc[2 * L + 2] = insert_pairs(acc[2 * L + 2], *[torch.zeros(M, accepted)] * 2)
        if self._linear:
            K = int(self.n_classes)
            bound = float(self._n_base + 2 * n_aux) ** -0.5
            v, vf = uniform(g, (K, accepted), bound), uniform(g, (K, accepted), bound)
            self._Vla = insert_pairs(self._Vla, v, vf)
            acc[2 * L + 4] = insert_pairs(acc[2 * L + 4], *[torch.zeros(K, accepted)] * 2)
        return accepted

    def _uniforms(self, t: int) -> torch.Tensor:
        block = t // _BLOCK
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] != block:
            key = (int(self.seed) * 0x9E3779B1 + block * 0x85EBCA77 + 0x165667B1) % 2**63
            gen = torch.Generator().manual_seed(key)
            cache = (block, torch.rand(_BLOCK, int(self.aux_units), generator=gen))
            self.__dict__["_cache"] = cache
        return cache[1][t % _BLOCK]

    def _aux_mask(self, ma: torch.Tensor) -> torch.Tensor:
        """The AuxLayer's kept nodes for this instance, scaled by ``1/(1−d)``."""
        M, d = int(self.aux_units), self._dropout
        n_aux = ma.numel()
        n_missing = n_aux - int(ma.sum())
        q = auxdrop_drop_probability(M, n_aux, n_missing, d, self.faithful)
        keep = self._uniforms(self._n_seen) >= q
        if self.faithful == "code":
            keep[:n_aux] = ma
        else:
            keep[:n_aux] &= ma
        return keep.to(torch.float32) * (1.0 / (1.0 - d))

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        L, z = int(self.n_layers), int(self.aux_position)
        Ws, bs = self._Ws, self._bs
        mask = self._aux_mask(ma)
        if self._ours:
            xa = torch.cat([xa, ma.to(xa.dtype)])
        hs = [xb]
        for layer in range(1, L + 1):
            i = layer - 1
            if layer == z:
                pre = torch.addmv(torch.addmv(bs[i], Ws[i], hs[-1]), self._Wz_aux, xa)
                hs.append(pre.clamp_(min=0).mul_(mask))
            else:
                hs.append(torch.addmv(bs[i], Ws[i], hs[-1]).clamp_(min=0))
        exits = self._exits
        Hx = torch.stack([hs[layer] for layer in exits])
        Z = torch.baddbmm(self._c.unsqueeze(2), self._V, Hx.unsqueeze(2)).squeeze(2)
        if self._linear:
            zl = torch.addmv(torch.addmv(self._cl, self._Vlb, xb), self._Vla, xa)
            Z = torch.cat([zl.unsqueeze(0), Z])
        alpha = self._alpha
        if y is None:
            return alpha @ torch.log_softmax(Z, -1).exp()  # as exit_losses: same bits
        kind: LossKind = "ce_on_softmax" if self.faithful == "code" else "ce"
        probs, losses, G = exit_losses(Z, y, kind)
        out = alpha @ probs
        if self._balance is not None:
            w = self._balance.observe(y)
            losses, G = losses * w, G * w
        G = G * alpha.unsqueeze(1)
        G0 = G[0]
        if self._linear:
            G = G[1:]
        gV = G.unsqueeze(2) * Hx.unsqueeze(1)
        gHx = torch.bmm(G.unsqueeze(1), self._V).squeeze(1)
        from_exit = {layer: gHx[e] for e, layer in enumerate(exits)}
        gW: list[torch.Tensor] = [torch.empty(0)] * L
        gb: list[torch.Tensor] = [torch.empty(0)] * L
        g_up: torch.Tensor | None = None
        g_aux = torch.empty(0)
        for layer in range(L, 0, -1):
            i = layer - 1
            g_h = from_exit.get(layer)
            if g_up is not None:
                g_h = g_up if g_h is None else g_h + g_up
            if g_h is None:  # nothing above this layer is trained
                gW[i] = torch.zeros_like(Ws[i])
                gb[i] = torch.zeros_like(bs[i])
                continue
            g_pre = torch.ops.aten.threshold_backward(g_h, hs[layer], 0.0)  # ReLU's backward
            if layer == z:
                g_pre = g_pre.mul_(mask)
            gW[i] = torch.outer(g_pre, hs[layer - 1], out=self._buffer(f"gW{i}", Ws[i].shape))
            gb[i] = g_pre
            if layer == z:
                g_aux = torch.outer(g_pre, xa, out=self._buffer("g_aux", self._Wz_aux.shape))
            g_up = Ws[i].T @ g_pre if layer > 1 else None
        if self._opt is not None:
            if not g_aux.numel():
                g_aux = torch.zeros_like(self._Wz_aux)
            grads = [*gW, *gb, gV, G, g_aux]
            if self._linear:
                grads += [torch.outer(G0, xb), torch.outer(G0, xa), G0]
            self._opt.step(self._params(), grads)
        else:
            lr = -self._lr
            torch._foreach_add_([*Ws, *bs, self._V, self._c], [*gW, *gb, gV, G], alpha=lr)
            if g_aux.numel():
                self._Wz_aux.add_(g_aux, alpha=lr)
        if self.variant == "odl":
            self._alpha = hedge_update(alpha, losses, self._beta, float(self.s))
        return out
