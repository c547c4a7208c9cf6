"""auxlab: train neural networks with auxiliary losses and choose their weights."""

__version__ = "0.1.0.dev0"
