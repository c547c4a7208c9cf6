"""Shared pytest settings for the test suite."""

from __future__ import annotations

import torch

# The tests use tiny models, for which intra-op threads only add overhead (and on a loaded
# 2-core machine, a lot of it); one thread also keeps results independent of the machine.
torch.set_num_threads(1)
