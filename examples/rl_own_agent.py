"""The temporal-order auxiliary loss in your own recurrent agent's update, in a few lines.

auxlab's TemporalOrder is an ordinary loss module: give it your encoder's embeddings of a
rollout segment (T, B, D), your memory after each step (T, B, H) and the episode starts
(T, B), and hand its value to a Balancer next to your RL loss. Here the "environment" is a
random walk (the observation is the walker's position, so of two past states the one nearer
the current position tends to be the more recent: the paper's intuition) and the "RL loss"
a stand-in value regression, so the script runs in seconds; the three marked lines are what
you add to a real agent.

    python examples/rl_own_agent.py
"""

from __future__ import annotations

import torch
from torch import nn

from auxlab import Balancer
from auxlab.rl import TemporalOrder
from auxlab.weighting import GradientCosine


class TinyAgent(nn.Module):
    def __init__(self, obs_dim: int = 6, hidden: int = 32, memory: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.core = nn.GRUCell(hidden, memory)
        self.value = nn.Linear(memory, 1)

    def unroll(self, obs: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        emb = self.encoder(obs)
        h = torch.zeros(obs.shape[1], self.core.hidden_size)
        mems = []
        for t in range(obs.shape[0]):
            h = self.core(emb[t], h * (~starts[t]).unsqueeze(-1))
            mems.append(h)
        mem = torch.stack(mems)
        return self.value(mem).squeeze(-1), emb, mem


def main() -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    agent = TinyAgent()
    # (1) the auxiliary loss: pairs from each step's current episode, with the memory.
    order = TemporalOrder(embed_dim=32, memory_dim=32, window=16)
    # (2) a Balancer: here gradient-cosine gating admits the auxiliary gradient on the
    #     shared encoder and memory only while it agrees with the RL loss's gradient.
    shared = [*agent.encoder.parameters(), *agent.core.parameters()]
    balancer = Balancer(GradientCosine(weights={"order": 0.5}), shared=shared, main="rl")
    opt = torch.optim.Adam([*agent.parameters(), *order.parameters()], lr=3e-3)

    T, B = 32, 8
    for step in range(100):
        starts = torch.rand(T, B, generator=g) < 0.05
        obs = torch.zeros(T, B, 6)
        pos = torch.zeros(B, 6)
        for t in range(T):
            pos = torch.where(starts[t, :, None], 0.0, pos) + 0.3 * torch.randn(B, 6, generator=g)
            obs[t] = pos
        returns = torch.randn(T, B, generator=g)
        values, emb, mem = agent.unroll(obs, starts)
        rl_loss = (values - returns).pow(2).mean()
        opt.zero_grad()
        # (3) both losses through the Balancer instead of rl_loss.backward().
        record = balancer.backward({"rl": rl_loss, "order": order(emb, starts, mem, generator=g)})
        opt.step()
        if step % 25 == 0 or step == 99:
            print(
                f"step {step:2d}  rl {record.losses['rl']:.3f}  order {record.losses['order']:.3f}"
                f"  order accuracy {order.last_accuracy:.2f}  cos {record.cosines['order']:+.2f}"
                f"  gate {record.shared_weights['order']:.1f}"
            )


if __name__ == "__main__":
    main()
