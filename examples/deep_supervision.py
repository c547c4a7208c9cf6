"""Deep supervision: auxiliary heads on intermediate layers, GoogLeNet-style, on Fashion-MNIST.

Part 1 attaches a head to a layer of an ordinary CNN by name (``attach_heads``), trains the
main output and the auxiliary head together with Keras-style loss weights, and strips the
head for inference (``strip_aux``).

Part 2 trains the small Inception network with GoogLeNet's two auxiliary classifiers (on
``inc4a`` and ``inc4d``, loss weight 0.3 each, Szegedy et al., CVPR 2015) and discards them
at inference. The auxiliary weight can also be annealed to zero, so that the end of
training optimises the main loss alone.

Needs the Debian package ``dataset-fashion-mnist``
(``apt-get update && apt-get install -y dataset-fashion-mnist``).

Run::

    python examples/deep_supervision.py              # about 2-4 minutes on 2 CPU cores
    python examples/deep_supervision.py --train-size 1000 --epochs 2   # quicker
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from auxlab import ArrayLoader, Objective, evaluate, fit, scheduled
from auxlab.datasets._fashion_mnist import fashion_mnist
from auxlab.models._googlenet import googlenet_loss_weights, small_googlenet
from auxlab.models._heads import AuxHeads, attach_heads, strip_aux
from auxlab.schedules import anneal_to_zero


def plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(  # "features": named 0..5 inside
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # features.2: 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),  # features.4: 32 x 14 x 14, tapped below
            nn.MaxPool2d(2),
        ),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def part1(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    torch.manual_seed(0)
    backbone = plain_cnn()
    # The auxiliary classifier reads the output of layer "0.4" (the second ReLU).
    head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32 * 4, 10))
    model = attach_heads(backbone, {"aux": ("0.4", head)}, example_input=x[:2])
    objective = Objective("ce", outputs=model.output_names, metrics=["accuracy"])
    targets = {"main": y, "aux": y}
    fit(
        model,
        ArrayLoader(x, targets, batch_size=128, shuffle=True, seed=0),
        objective,
        {"main": 1.0, "aux": 0.3},  # Keras' loss_weights
        epochs=2,
        progress=False,
        seed=0,
    )
    scores = evaluate(model, ArrayLoader(x_test, {"main": y_test, "aux": y_test}, 500), objective)
    print(
        f"plain CNN + head on '0.4': main test accuracy {scores['main_accuracy']:.3f}, "
        f"aux {scores['aux_accuracy']:.3f}"
    )
    deployed = strip_aux(model).eval()
    model.eval()
    with torch.no_grad():
        same = torch.equal(deployed(x_test[:100]), model(x_test[:100])["main"])
    print(
        f"stripped model: {sum(p.numel() for p in deployed.parameters())} parameters "
        f"(with head {sum(p.numel() for p in model.parameters())}), same output: {same}"
    )
    try:
        attach_heads(plain_cnn(), {"aux": ("0.9", head)})
    except KeyError as err:
        print("a wrong layer name is an error that lists the layers:", str(err)[:120], "...")


def part2(
    x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, epochs: int
) -> None:
    steps = epochs * ((len(x) + 127) // 128)
    for label, strategy in (
        ("GoogLeNet weights 0.3", googlenet_loss_weights()),
        (
            "0.3 annealed to 0",
            scheduled({"aux1": anneal_to_zero(0.3, steps), "aux2": anneal_to_zero(0.3, steps)}),
        ),
        ("no auxiliary loss", googlenet_loss_weights(0.0)),
    ):
        model = small_googlenet(width=1 / 16, stem_stride=2, seed=0)
        assert isinstance(model, AuxHeads)
        objective = Objective("ce", outputs=model.output_names, metrics=["accuracy"])
        targets = {t: y for t in model.output_names}
        history = fit(
            model,
            ArrayLoader(x, targets, batch_size=128, shuffle=True, seed=0),
            objective,
            strategy,
            epochs=epochs,
            lr=3e-3,
            progress=False,
            seed=0,
        )
        test = {t: y_test for t in model.output_names}
        scores = evaluate(model, ArrayLoader(x_test, test, 500), objective)
        print(
            f"small GoogLeNet, {label}: main {scores['main_accuracy']:.3f}, aux1 "
            f"{scores['aux1_accuracy']:.3f}, aux2 {scores['aux2_accuracy']:.3f}; mean aux "
            f"weight in the last epoch {history['weight_aux1'][-1]:.3f}"
        )
    net = strip_aux(model)  # a bare SmallInception, ready for torch.save / export
    print(
        f"inference model: {type(net).__name__}, {sum(p.numel() for p in net.parameters())} "
        f"parameters (the heads had {sum(p.numel() for p in model.heads.parameters())})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = fashion_mnist(train_size=args.train_size, seed=0)
    x, y = data.tensors("train")
    x_test, y_test = data.tensors("test")
    x_test, y_test = x_test[:2000], y_test[:2000]
    part1(x, y, x_test, y_test)
    part2(x, y, x_test, y_test, args.epochs)


if __name__ == "__main__":
    main()
