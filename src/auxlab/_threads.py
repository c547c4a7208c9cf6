"""How many intra-op threads torch uses, chosen in one place for every command and study.

torch's own default is one thread per core. auxlab's models are small (the headline LSTM, MLPs,
small convolutions), so extra threads buy little, and on a machine that other jobs keep busy
they cost a lot: ``auxlab demo`` took 560 s with torch's default on a loaded 2-core machine and
132 s with one thread. The default is therefore one thread, unless the user asked otherwise:

1. an explicit ``threads`` (``--threads N``, ``threads = N`` in a study TOML,
   ``Study.run(threads=N)``);
2. else the ``OMP_NUM_THREADS`` environment variable, when it is set to a positive integer
   (the user's own setting, which torch itself reads);
3. else 1.

Every command prints :attr:`ThreadChoice.line` as the first line of its output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = [
    "DEFAULT_THREADS",
    "ThreadChoice",
    "announce_threads",
    "configure_threads",
    "resolve_threads",
]

#: Threads used when neither the caller nor ``OMP_NUM_THREADS`` says otherwise.
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count in force, and where it came from."""

    threads: int
    source: str  # "argument", "OMP_NUM_THREADS" or "default"

    @property
    def line(self) -> str:
        """One line for the top of a command's output."""
        how = {
            "argument": "as asked",
            "OMP_NUM_THREADS": "from OMP_NUM_THREADS",
            "default": "auxlab's default; --threads N to change",
        }[self.source]
        return f"torch threads: {self.threads} ({how})"


def resolve_threads(threads: int | None = None) -> ThreadChoice:
    """Decide the thread count without setting it (see the module docstring for the rule).

    Raises:
        ValueError: ``threads`` is given and is not a positive integer.
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        return ThreadChoice(threads, "argument")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    return ThreadChoice(DEFAULT_THREADS, "default")


def configure_threads(threads: int | None = None) -> ThreadChoice:
    """Set torch's intra-op threads by :func:`resolve_threads`'s rule and return the choice."""
    choice = resolve_threads(threads)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def announce_threads(threads: int | None = None) -> ThreadChoice:
    """:func:`configure_threads`, then print the choice: a command's first line of output."""
    choice = configure_threads(threads)
    print(choice.line, flush=True)
    return choice
