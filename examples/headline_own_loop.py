"""The Keras guide's headline model in your own PyTorch loop, with auxlab's Balancer.

Trains on real tweets (needs the `data` extra) with the auxiliary weight annealed from 0.2 to
0 over the first two epochs, and prints the test AUC of the main output.

    python examples/headline_own_loop.py
"""

import torch

from auxlab import ArrayLoader, Balancer, Objective, evaluate, scheduled, schedules
from auxlab.datasets import tweets
from auxlab.models import HeadlineModel

data = tweets(max_len=40, limit=6000)
train = ArrayLoader(data.train.inputs(), data.train.targets(), batch_size=64, shuffle=True)
test = ArrayLoader(data.test.inputs(), data.test.targets(), batch_size=512)

model = HeadlineModel(seq_len=40, embed_dim=128, seed=0)
objective = Objective("bce_logits", metrics=["auc"]).bind(model)
strategy = scheduled({"aux": schedules.anneal_to_zero(0.2, steps=2 * len(train))})
balancer = Balancer(strategy, shared=model.shared)
optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

for epoch in range(3):
    for inputs, targets in train:
        optimizer.zero_grad()
        record = balancer.backward(objective(model(**inputs), targets))
        optimizer.step()
    print(
        f"epoch {epoch + 1}: main {record.losses['main']:.3f} (w={record.weights['main']:g}), "
        f"aux {record.losses['aux']:.3f} (w={record.weights['aux']:.3f})"
    )

print("test:", evaluate(model, test, objective))
