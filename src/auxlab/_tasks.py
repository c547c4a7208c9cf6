"""Task names: checking that two sides name the same tasks, and matching lists to names.

Every part of auxlab that takes per-task values (losses, weights, metrics, a strategy's
decision) checks names through these two functions, so a mismatch always reads the same:
both sides listed, and what is missing from each. :mod:`auxlab.objective` re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from auxlab._errors import TaskMismatchError

__all__ = ["check_same_tasks", "match_to_tasks"]


def check_same_tasks(
    expected: Iterable[str], got: Iterable[str], expected_what: str, got_what: str
) -> None:
    """Raise :class:`TaskMismatchError` unless two collections of task names are equal.

    The message lists both sides and what is missing from each.
    """
    a, b = list(expected), list(got)
    if set(a) == set(b):
        return
    only_a = [t for t in a if t not in set(b)]
    only_b = [t for t in b if t not in set(a)]
    parts = [f"{expected_what} are {a} but {got_what} are {b}."]
    if only_a:
        parts.append(f"Missing from {got_what}: {only_a}.")
    if only_b:
        parts.append(f"Not in {expected_what}: {only_b}.")
    raise TaskMismatchError(" ".join(parts))


def match_to_tasks(
    values: Mapping[str, Any] | Sequence[Any], tasks: Sequence[str] | None, what: str
) -> dict[str, Any]:
    """Turn a dict, or a list in the documented output order, into a ``{task: value}`` dict.

    Args:
        values: A mapping keyed by task name, or a list/tuple matched position by position to
            ``tasks`` (the model's declared output order).
        tasks: Task names in output order. Required when ``values`` is a list.
        what: What the values are ("losses", "loss weights"), for error messages.

    Raises:
        TaskMismatchError: If names differ, or a list has the wrong length.
        ValueError: If a list is given but the output order is unknown.
    """
    if isinstance(values, Mapping):
        out = dict(values)
        if tasks is not None:
            check_same_tasks(tasks, out, "the model's outputs", what)
            out = {t: out[t] for t in tasks}
        return out
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a dict keyed by task or a list, got {type(values)}")
    if tasks is None:
        raise ValueError(
            f"{what} were given as a list, which is matched to the model's outputs in order, "
            "but the output order is unknown. Give a dict keyed by task name, or pass "
            "outputs=[...] (or give the model an `output_names` attribute)."
        )
    if len(values) != len(tasks):
        raise TaskMismatchError(
            f"{len(values)} {what} were given as a list for {len(tasks)} outputs {list(tasks)}; "
            "a list is matched to the outputs in order and must have one entry per output."
        )
    return dict(zip(tasks, values, strict=True))
