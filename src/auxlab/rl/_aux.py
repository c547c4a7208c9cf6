"""Self-supervised auxiliary losses on an agent's own trajectory: temporal order and distance.

Both take a time-major segment of a rollout (``T`` steps of ``B`` parallel environments), the
agent's embeddings of the observations, optionally its memory, and the episode starts, and
sample pairs of steps from the *current episode* of each anchor step. They are plain
``nn.Module`` losses: any agent's training code can call them and hand the result to
:class:`auxlab.Balancer` next to its own loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AYTAR_BINS", "TemporalDistance", "TemporalOrder", "episode_offsets", "sample_pairs"]

#: The temporal-distance classes of Aytar et al. (2018): |dt| in {0}, {1}, {2}, [3, 4],
#: [5, 20], [21, 200]. Each entry is the inclusive (low, high) of a class.
AYTAR_BINS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (3, 4), (5, 20), (21, 200))


def episode_offsets(starts: torch.Tensor) -> torch.Tensor:
    """For each step, how many earlier steps of the same episode lie in the segment.

    Args:
        starts: ``(T, B)`` booleans, true where a step is the first of a new episode.

    Returns:
        ``(T, B)`` integers ``n`` such that steps ``t - n .. t`` belong to the episode of
        step ``t`` (the segment's first step counts as a start: earlier steps are not held).

    Example:
        >>> s = torch.tensor([[False], [False], [True], [False]])
        >>> episode_offsets(s)[:, 0].tolist()
        [0, 1, 0, 1]
    """
    if starts.ndim != 2:
        raise ValueError(f"starts must be (T, B), got shape {tuple(starts.shape)}")
    T, B = starts.shape
    offsets = torch.zeros(T, B, dtype=torch.long, device=starts.device)
    for t in range(1, T):
        offsets[t] = torch.where(starts[t], 0, offsets[t - 1] + 1)
    return offsets


def sample_pairs(
    starts: torch.Tensor,
    pairs_per_step: int = 1,
    window: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ordered pairs ``i < j <= t`` from the current episode of every anchor step ``t``.

    Anchors with fewer than two steps of their episode in the segment get no pair.

    Sampling (ours: the paper does not say): without ``window``, ``(i, j)`` is uniform over all
    pairs of distinct steps of the episode up to ``t``. With ``window=w``, the gap ``j - i``
    is uniform in ``1 .. min(w, n)`` (``n + 1`` steps available), then ``i`` uniform among the
    positions that fit.

    Returns:
        ``(anchor_t, env, i, j)``, each a 1-D long tensor of the same length.
    """
    if pairs_per_step < 1:
        raise ValueError(f"pairs_per_step must be >= 1, got {pairs_per_step}")
    if window is not None and window < 1:
        raise ValueError(f"window must be a positive number of steps or None, got {window}")
    offsets = episode_offsets(starts)
    t_idx, b_idx = torch.nonzero(offsets >= 1, as_tuple=True)
    if pairs_per_step > 1:
        t_idx = t_idx.repeat_interleave(pairs_per_step)
        b_idx = b_idx.repeat_interleave(pairs_per_step)
    n = offsets[t_idx, b_idx]  # steps t-n .. t are available: n + 1 >= 2 of them
    dev = starts.device
    u = torch.rand(t_idx.numel(), 2, generator=generator, device=dev)
    if window is None:
        # Two distinct positions uniform among n + 1, ordered.
        a = (u[:, 0] * (n + 1)).long().clamp_max(n)
        b = (u[:, 1] * n).long().clamp_max(n - 1)
        b = b + (b >= a).long()
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    else:
        max_gap = n.clamp_max(window)
        gap = 1 + (u[:, 0] * max_gap).long().clamp_max(max_gap - 1)
        lo = (u[:, 1] * (n - gap + 1)).long().clamp_max(n - gap)
        hi = lo + gap
    first = t_idx - n + lo
    second = t_idx - n + hi
    return t_idx, b_idx, first, second


def _classifier(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class _PairLoss(nn.Module):
    classifier: nn.Sequential

    def __init__(
        self,
        embed_dim: int,
        memory_dim: int,
        out_dim: int,
        hidden: int,
        use_memory: bool,
        detach_memory: bool,
        detach_embeddings: bool,
        encoder: nn.Module | None,
        pairs_per_step: int,
        window: int | None,
        max_pairs: int | None,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or hidden < 1:
            raise ValueError("embed_dim and hidden must be positive")
        if use_memory and memory_dim < 1:
            raise ValueError("use_memory=True needs memory_dim >= 1 (the agent's memory size)")
        if max_pairs is not None and max_pairs < 1:
            raise ValueError(f"max_pairs must be positive or None, got {max_pairs}")
        self.embed_dim, self.memory_dim = embed_dim, memory_dim
        self.use_memory, self.detach_memory = use_memory, detach_memory
        self.detach_embeddings = detach_embeddings
        self.encoder = encoder
        self.pairs_per_step, self.window, self.max_pairs = pairs_per_step, window, max_pairs
        in_dim = 2 * embed_dim + (memory_dim if use_memory else 0)
        self.classifier = _classifier(in_dim, hidden, out_dim)
        self.last_accuracy: float = float("nan")
        self.last_pairs: int = 0

    def _features(
        self,
        embeddings: torch.Tensor,
        memory: torch.Tensor | None,
        anchor: torch.Tensor,
        env: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
    ) -> torch.Tensor:
        if self.encoder is not None:
            T, B = embeddings.shape[:2]
            emb = self.encoder(embeddings.reshape(T * B, *embeddings.shape[2:]))
            embeddings = emb.reshape(T, B, -1)
        if embeddings.shape[-1] != self.embed_dim:
            raise ValueError(
                f"embeddings have {embeddings.shape[-1]} features, the loss was built with "
                f"embed_dim={self.embed_dim}"
            )
        if self.detach_embeddings:
            embeddings = embeddings.detach()
        parts = [embeddings[a, env], embeddings[b, env]]
        if self.use_memory:
            if memory is None:
                raise ValueError(
                    "this loss reads the agent's memory (use_memory=True): pass memory=<(T, B, "
                    "H) tensor>, or build it with use_memory=False"
                )
            if memory.shape[:2] != embeddings.shape[:2] or memory.shape[-1] != self.memory_dim:
                raise ValueError(
                    f"memory must be (T, B, {self.memory_dim}) to match the embeddings "
                    f"{tuple(embeddings.shape[:2])}, got {tuple(memory.shape)}"
                )
            h = memory[anchor, env]
            parts.append(h.detach() if self.detach_memory else h)
        return torch.cat(parts, dim=-1)

    def _sample(
        self, starts: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        anchor, env, i, j = sample_pairs(starts, self.pairs_per_step, self.window, generator)
        anchor, env, i, j = self._subsample(generator, anchor, env, i, j)
        return anchor, env, i, j

    def _subsample(
        self, generator: torch.Generator | None, *columns: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The same random ``max_pairs`` rows of every column (all of them when fewer)."""
        count = columns[0].numel()
        if self.max_pairs is None or count <= self.max_pairs:
            return columns
        keep = torch.randperm(count, generator=generator, device=columns[0].device)
        keep = keep[: self.max_pairs]
        return tuple(c[keep] for c in columns)

    def _no_pairs(self) -> torch.Tensor:
        """The loss when no pair can be sampled: 0, attached to the graph."""
        self.last_accuracy = float("nan")
        return next(self.classifier.parameters()).sum() * 0.0

    @staticmethod
    def _check(embeddings: torch.Tensor, starts: torch.Tensor) -> None:
        if starts.ndim != 2 or tuple(embeddings.shape[:2]) != tuple(starts.shape):
            raise ValueError(
                f"starts must be (T, B) matching the embeddings' first two dimensions "
                f"{tuple(embeddings.shape[:2])}, got {tuple(starts.shape)}"
            )


class TemporalOrder(_PairLoss):
    """Is a pair of steps from the current episode in temporal order (binary cross-entropy)?

    The auxiliary task of Ahmed, Zintgraf, Schroeder de Witt and Usunier, "A Self-Supervised
    Auxiliary Loss for Deep RL in Partially Observable Settings" (arXiv 2104.08492, 2021): a
    classifier given two states of the agent's current episode and the agent's memory says
    whether they are in temporal order. Only the abstract of the paper is available; every
    choice below is ours and a parameter:

    * pairs ``i < j <= t`` from the current episode of each anchor step ``t`` (uniform over
      pairs, or with the gap uniform up to ``window``), ``pairs_per_step`` per anchor;
    * presented in order (label 1) or swapped (label 0) with probability 0.5;
    * logits = MLP(``[phi(s_a), phi(s_b), h_t]``), one hidden layer of ``hidden`` ReLUs;
    * ``phi`` is the agent's encoder (pass its embeddings) unless ``encoder`` is given, in
      which case raw observations are passed and this module's own encoder embeds them (an
      encoder not shared with the policy);
    * the memory ``h_t`` is an input unless ``use_memory=False``, and its gradient reaches the
      agent's recurrent core unless ``detach_memory=True``.

    Args:
        embed_dim: Size of ``phi(s)``.
        memory_dim: Size of the agent's memory ``h_t``.
        hidden: Hidden units of the classifier.
        pairs_per_step: Pairs sampled per anchor step.
        window: Largest gap ``j - i``; ``None`` for uniform over the episode so far.
        max_pairs: Subsample to at most this many pairs per call (cost control).
        use_memory, detach_memory, detach_embeddings, encoder: see above.

    Call it with ``embeddings`` ``(T, B, D)`` (or raw observations when ``encoder`` is set),
    ``memory`` ``(T, B, H)`` (the memory after step ``t``), ``starts`` ``(T, B)``; it returns
    the mean loss over the sampled pairs (0, attached to the graph, when there are none).
    :attr:`last_accuracy` holds the classifier's accuracy on the last call's pairs.
    """

    def __init__(
        self,
        embed_dim: int,
        memory_dim: int = 0,
        hidden: int = 64,
        pairs_per_step: int = 1,
        window: int | None = None,
        use_memory: bool = True,
        detach_memory: bool = False,
        detach_embeddings: bool = False,
        encoder: nn.Module | None = None,
        max_pairs: int | None = None,
    ) -> None:
        super().__init__(
            embed_dim,
            memory_dim,
            1,
            hidden,
            use_memory,
            detach_memory,
            detach_embeddings,
            encoder,
            pairs_per_step,
            window,
            max_pairs,
        )

    def forward(
        self,
        embeddings: torch.Tensor,
        starts: torch.Tensor,
        memory: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        self._check(embeddings, starts)
        anchor, env, i, j = self._sample(starts, generator)
        self.last_pairs = int(anchor.numel())
        if anchor.numel() == 0:
            return self._no_pairs()
        swap = torch.rand(anchor.numel(), generator=generator, device=anchor.device) < 0.5
        a = torch.where(swap, j, i)
        b = torch.where(swap, i, j)
        label = (~swap).to(embeddings.dtype if embeddings.is_floating_point() else torch.float32)
        x = self._features(embeddings, memory, anchor, env, a, b)
        logits = self.classifier(x).squeeze(-1)
        with torch.no_grad():
            self.last_accuracy = float(((logits > 0).to(label.dtype) == label).float().mean())
        return F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype))


class TemporalDistance(_PairLoss):
    """Temporal distance classification (Aytar et al. 2018, arXiv 1805.11592).

    A classifier given two steps of the same episode predicts into which interval their
    distance ``|j - i|`` falls: ``{0}, {1}, {2}, [3, 4], [5, 20], [21, 200]`` (``bins``),
    trained with cross-entropy. As in the paper, a class is drawn first (uniformly among
    those the episode so far can realise), then a distance inside it, then the pair; the two
    steps are presented in random order. The paper's classifier sees only the two
    embeddings, so ``use_memory`` defaults to False here (set it to compare).
    """

    def __init__(
        self,
        embed_dim: int,
        memory_dim: int = 0,
        hidden: int = 64,
        bins: Sequence[tuple[int, int]] = AYTAR_BINS,
        pairs_per_step: int = 1,
        use_memory: bool = False,
        detach_memory: bool = False,
        detach_embeddings: bool = False,
        encoder: nn.Module | None = None,
        max_pairs: int | None = None,
    ) -> None:
        bins = tuple((int(lo), int(hi)) for lo, hi in bins)
        if not bins or any(lo < 0 or hi < lo for lo, hi in bins):
            raise ValueError(
                f"bins must be non-empty (low, high) pairs with 0 <= low <= high: {bins}"
            )
        if any(bins[k + 1][0] <= bins[k][1] for k in range(len(bins) - 1)):
            raise ValueError(f"bins must be increasing and disjoint: {bins}")
        super().__init__(
            embed_dim,
            memory_dim,
            len(bins),
            hidden,
            use_memory,
            detach_memory,
            detach_embeddings,
            encoder,
            pairs_per_step,
            None,
            max_pairs,
        )
        self.bins = bins
        self._lo: torch.Tensor
        self._hi: torch.Tensor
        self.register_buffer("_lo", torch.tensor([lo for lo, _ in bins]), persistent=False)
        self.register_buffer("_hi", torch.tensor([hi for _, hi in bins]), persistent=False)

    def forward(
        self,
        embeddings: torch.Tensor,
        starts: torch.Tensor,
        memory: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        self._check(embeddings, starts)
        offsets = episode_offsets(starts)
        t_idx, b_idx = torch.nonzero(offsets >= 0, as_tuple=True)
        if self.pairs_per_step > 1:
            t_idx = t_idx.repeat_interleave(self.pairs_per_step)
            b_idx = b_idx.repeat_interleave(self.pairs_per_step)
        n = offsets[t_idx, b_idx]  # distances 0 .. n are realisable
        lo = self._lo.to(n.device)
        hi = self._hi.to(n.device)
        feasible = lo[None, :] <= n[:, None]  # (P, K)
        keep = feasible.any(dim=1)
        t_idx, b_idx, n, feasible = t_idx[keep], b_idx[keep], n[keep], feasible[keep]
        t_idx, b_idx, n, feasible = self._subsample(generator, t_idx, b_idx, n, feasible)
        self.last_pairs = int(t_idx.numel())
        if t_idx.numel() == 0:
            return self._no_pairs()
        u = torch.rand(t_idx.numel(), 3, generator=generator, device=t_idx.device)
        # A class uniformly among the feasible ones.
        count = feasible.sum(dim=1)
        pick = (u[:, 0] * count).long().clamp_max(count - 1)
        cls = (feasible.long().cumsum(dim=1) <= pick[:, None]).sum(dim=1)
        top = torch.minimum(hi[cls], n)
        dist = lo[cls] + (u[:, 1] * (top - lo[cls] + 1)).long().clamp_max(top - lo[cls])
        start = (u[:, 2] * (n - dist + 1)).long().clamp_max(n - dist)
        i = t_idx - n + start
        j = i + dist
        swap = torch.rand(t_idx.numel(), generator=generator, device=t_idx.device) < 0.5
        a, b = torch.where(swap, j, i), torch.where(swap, i, j)
        x = self._features(embeddings, memory, t_idx, b_idx, a, b)
        logits = self.classifier(x)
        with torch.no_grad():
            self.last_accuracy = float((logits.argmax(dim=1) == cls).float().mean())
        return F.cross_entropy(logits, cls)
