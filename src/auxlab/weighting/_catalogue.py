"""The catalogue of registered strategies: family, cost, paper and parameters, from the code.

Everything here is read from what a strategy declares, so it cannot drift from it: the cost
class from ``needs``, the family and the short citation from ``family`` and ``paper``, the
one-line summary, the full reference and the parameters' descriptions from the class
docstring, the parameters and their defaults from the signature that :func:`create` calls.
``auxlab strategies`` prints it; in Python, :func:`describe` gives one strategy's entry and
``list_strategies(details=True)`` all of them.
"""

from __future__ import annotations

import inspect
import re
import shutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from auxlab.weighting._base import Need, Strategy
from auxlab.weighting._registry import _REGISTRY, unknown_strategy_message

__all__ = ["FAMILIES", "ParameterInfo", "StrategyInfo", "cost_class", "describe"]

#: The families, in the order the table lists them.
FAMILIES = (
    "fixed",
    "schedule",
    "loss-based",
    "gradient",
    "main-first",
    "hedge",
    "validation",
    "combinator",
    "custom",
)

#: What each cost class means, printed under the table.
COST_LEGEND = {
    "one backward": "one backward pass of Σ wᵢ·Lᵢ, as with fixed weights",
    "T backwards": (
        "one backward through the shared parameters per task (T tasks), then one through "
        "the heads; Balancer(every=k) pays it every k-th step"
    ),
    "T head backwards + 1": (
        "one backward from each loss to the shared representation, then one full backward"
    ),
    "validation passes": "the user computes validation losses and passes them in",
    "validation backward": (
        "one forward and backward of the main loss on a validation batch per refresh step"
    ),
    "hypergradient": (
        "on its update steps only (every N): a validation forward and backward and about "
        "2(K+1) backwards through the shared block (Hessian-vector products)"
    ),
    "as inner": "what the wrapped strategy costs",
}


@dataclass(frozen=True)
class ParameterInfo:
    """One constructor parameter of a strategy.

    Attributes:
        name: The parameter's name (``*strategies`` for a variadic one).
        annotation: Its type as written in the signature (``""`` when not annotated).
        required: Whether it has no default.
        default: The default value (``None`` also when required; see ``required``).
        description: Its description from the docstring's ``Args:`` section (``""`` if none).
    """

    name: str
    annotation: str
    required: bool
    default: Any
    description: str


@dataclass(frozen=True)
class StrategyInfo:
    """A registered strategy, described from its code (see :func:`describe`).

    Attributes:
        name: The registered name (``create(name)``).
        qualname: The public class, e.g. ``"auxlab.weighting.UPGrad"``.
        module: The module that defines it, e.g. ``"auxlab.weighting._upgrad"``.
        family: ``Strategy.family`` (one of :data:`FAMILIES`).
        cost: The cost class derived from ``needs`` (see :func:`cost_class`).
        needs: The signals it reads beyond the losses (``"gramian"``, ``"grads"``, ...), built
            with its defaults; for a combinator, what it reads itself.
        wraps: Whether it wraps other strategies (a combinator: its cost adds theirs).
        scale_reaction: ``Strategy.scale_reaction`` of the strategy built with its defaults
            (``""`` for a combinator: it derives it from what it wraps).
        summary: The first line of the class docstring.
        paper: ``Strategy.paper``, short (``""`` for a method without a paper).
        reference: The docstring's ``Reference:`` paragraph, in full (``""`` if none).
        parameters: What ``create(name, ...)`` takes, with defaults and descriptions.
    """

    name: str
    qualname: str
    module: str
    family: str
    cost: str
    needs: tuple[str, ...]
    wraps: bool
    scale_reaction: str
    summary: str
    paper: str
    reference: str
    parameters: tuple[ParameterInfo, ...]


def cost_class(needs: frozenset[Need], wraps: bool = False) -> str:
    """The cost of a strategy's signals per step, from what it ``needs``.

    ``"one backward"`` (losses only), ``"T backwards"`` (per-task gradients on the shared
    parameters or their Gramian), ``"T head backwards + 1"`` (gradients on a shared
    representation), plus ``"validation passes"`` when it reads validation losses. A
    combinator (``wraps``) costs what it wraps: ``"as inner"``, or its own cost ``+ inner``.

    Example:
        >>> cost_class(frozenset({Need.LOSSES, Need.GRAMIAN}))
        'T backwards'
    """
    if Need.GRADS in needs or Need.GRAMIAN in needs:
        cost = "T backwards"
    elif Need.REP_GRADS in needs:
        cost = "T head backwards + 1"
    else:
        cost = "one backward"
    if Need.VAL_LOSSES in needs:
        cost += ", validation passes"
    if Need.VAL_GRAD in needs:
        cost += " + hypergradient" if Need.LOSS_GRAPH in needs else " + validation backward"
    if wraps:
        cost = "as inner" if cost == "one backward" else f"{cost} + inner"
    return cost


def _strategy_class(factory: Callable[..., Any]) -> type[Strategy] | None:
    """The class a registered factory builds: itself, or its return annotation."""
    if isinstance(factory, type) and issubclass(factory, Strategy):
        return factory
    ret = inspect.signature(factory).return_annotation
    if isinstance(ret, str):
        ret = getattr(factory, "__globals__", {}).get(ret.strip("'\""))
    return ret if isinstance(ret, type) and issubclass(ret, Strategy) else None


_SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*(.*)$")


def _sections(doc: str) -> dict[str, list[str]]:
    """A Google-style docstring's top-level paragraphs keyed by their ``Heading:``."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in inspect.cleandoc(doc).splitlines():
        m = _SECTION.match(line)
        if (
            m
            and not line.startswith(" ")
            and m.group(1)
            in (
                "Args",
                "Attributes",
                "Cost",
                "Example",
                "Examples",
                "Raises",
                "Reference",
                "References",
                "Returns",
            )
        ):
            current = m.group(1).rstrip("s") if m.group(1) == "References" else m.group(1)
            out[current] = [m.group(2)] if m.group(2) else []
        elif current in ("Reference", "Cost") and not line.strip():
            current = ""  # these are one paragraph
        elif current not in ("", "Reference", "Cost") and line.strip() and line[0] != " ":
            current = ""  # an indented section ends at the next unindented paragraph
        elif current:
            out[current].append(line)
    return out


def _arg_descriptions(lines: Sequence[str]) -> dict[str, str]:
    """``{name: description}`` from the lines of an ``Args:`` section."""
    out: dict[str, str] = {}
    name = ""
    for line in lines:
        m = re.match(r"^    \*{0,2}(\w+)(?: \([^)]*\))?: ?(.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name and line.strip():
            out[name] = f"{out[name]} {line.strip()}".strip()
    return out


def _parameters(factory: Callable[..., Any], docs: dict[str, str]) -> tuple[ParameterInfo, ...]:
    sig = inspect.signature(factory)
    out = []
    for p in sig.parameters.values():
        if p.name == "self" or p.kind is p.VAR_KEYWORD:
            continue
        variadic = p.kind is p.VAR_POSITIONAL
        annotation = p.annotation
        if annotation is inspect.Parameter.empty:
            annotation = ""
        elif not isinstance(annotation, str):
            annotation = inspect.formatannotation(annotation)
        out.append(
            ParameterInfo(
                name=f"*{p.name}" if variadic else p.name,
                annotation=annotation,
                required=p.default is inspect.Parameter.empty and not variadic,
                default=None if p.default is inspect.Parameter.empty else p.default,
                description=docs.get(p.name, ""),
            )
        )
    return tuple(out)


def _resolve(name: str) -> str:
    """The registered name for ``name`` (also accepted: any case, or the class's name)."""
    if name in _REGISTRY:
        return name
    lowered = {n.lower(): n for n in _REGISTRY}
    if name.lower() in lowered:
        return lowered[name.lower()]
    for registered, factory in _REGISTRY.items():
        cls = _strategy_class(factory)
        if cls is not None and cls.__name__.lower() == name.lower():
            return registered
    raise ValueError(unknown_strategy_message(name))


def describe(name: str) -> StrategyInfo:
    """Describe a registered strategy: family, cost, paper, summary and parameters.

    Args:
        name: A registered name (``"upgrad"``); the class name (``"UPGrad"``) works too.

    Returns:
        Its :class:`StrategyInfo`, read from the code (``needs``, ``family``, ``paper``, the
        docstring and the signature that :func:`create` calls).

    Raises:
        ValueError: For an unknown name; the message lists the close matches.

    Example:
        >>> info = describe("upgrad")
        >>> info.family, info.cost, info.paper
        ('gradient', 'T backwards', 'Quinton & Rey, arXiv 2024')
        >>> [(p.name, p.default) for p in info.parameters]
        [('pref_vector', None)]
    """
    name = _resolve(name)
    factory = _REGISTRY[name]
    cls = _strategy_class(factory)
    doc = inspect.getdoc(cls if cls is not None else factory) or ""
    sections = _sections(doc)
    arg_docs = _arg_descriptions(sections.get("Args", []))
    if cls is not None and factory is not cls:  # a factory may document its own arguments
        factory_doc = inspect.getdoc(factory) or ""
        arg_docs = {**_arg_descriptions(_sections(factory_doc).get("Args", [])), **arg_docs}
    params = _parameters(factory, arg_docs)
    wraps = any(re.search(r"\bStrategy\b", p.annotation) for p in params)
    # What a strategy built with the defaults declares (some set needs and scale_reaction per
    # instance); the class's declaration when it cannot be built without arguments.
    declared: Any = cls
    if cls is not None and not wraps and not any(p.required for p in params):
        try:
            declared = factory()
        except Exception:  # a user's strategy that cannot be built bare: its class says
            declared = cls
    needs: frozenset[Need] = declared.needs if declared is not None else frozenset({Need.LOSSES})
    return StrategyInfo(
        name=name,
        qualname=f"auxlab.weighting.{cls.__name__}" if cls is not None else factory.__qualname__,
        module=(cls if cls is not None else factory).__module__,
        family=cls.family if cls is not None else "custom",
        cost=cost_class(needs, wraps),
        needs=tuple(n.value for n in Need if n in needs and n is not Need.LOSSES),
        wraps=wraps,
        scale_reaction=str(getattr(declared, "scale_reaction", "")),
        summary=doc.splitlines()[0].strip() if doc else "",
        paper=cls.paper if cls is not None else "",
        reference=" ".join(" ".join(sections.get("Reference", [])).split()),
        parameters=params,
    )


def _plain(text: str) -> str:
    """Docstring text for a terminal: without the reStructuredText double backquotes."""
    return text.replace("``", "")


def _family_order(info: StrategyInfo) -> tuple[int, str]:
    rank = FAMILIES.index(info.family) if info.family in FAMILIES else len(FAMILIES)
    return rank, info.name


def format_table(infos: Sequence[StrategyInfo], width: int | None = None) -> str:
    """The catalogue as a plain-text table, grouped by family; summaries wrap to ``width``."""
    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    rows = sorted(infos, key=_family_order)
    head = ("name", "family", "cost", "paper", "what it does")
    cols = [
        max(len(head[0]), *(len(i.name) for i in rows)),
        max(len(head[1]), *(len(i.family) for i in rows)),
        max(len(head[2]), *(len(i.cost) for i in rows)),
        max(len(head[3]), *(len(i.paper or "-") for i in rows)),
    ]
    indent = sum(cols) + 2 * len(cols)
    # Wide terminals: the summary in a last column, wrapped inside it. Narrow ones: the
    # summary on the lines under its row.
    beside = width - indent >= 40
    wrap = width - indent if beside else max(width - 4, 40)

    def line(cells: Sequence[str], text: str) -> list[str]:
        first = "  ".join(c.ljust(w) for c, w in zip(cells, cols, strict=True))
        parts = textwrap.wrap(text, wrap) or [""]
        if not beside:
            return [first.rstrip()] + ["    " + p for p in parts]
        return [f"{first}  {parts[0]}".rstrip()] + [" " * indent + p for p in parts[1:]]

    out = line(head[:4], head[4])
    out.append("  ".join("-" * w for w in cols) + ("  " + "-" * min(wrap, 40) if beside else ""))
    for i in rows:
        out += line((i.name, i.family, i.cost, i.paper or "-"), _plain(i.summary))
    out.append("")
    out.append("cost per step, from what each strategy needs:")
    for cost, meaning in COST_LEGEND.items():
        out += textwrap.wrap(
            f"{cost}: {meaning}.",
            width=max(width, 60),
            initial_indent="  ",
            subsequent_indent="    ",
        )
    out.append("`auxlab strategies NAME` prints a strategy's parameters and defaults.")
    return "\n".join(out)


def format_details(info: StrategyInfo, width: int | None = None) -> str:
    """One strategy's entry: what it does, its family, cost, paper and parameters."""
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns
    width = max(width, 60)
    cls = info.qualname.rsplit(".", 1)[-1]
    out = [f"{info.name}: {_plain(info.summary)}", ""]
    needs = list(info.needs) + (["what it wraps needs"] if info.wraps else [])
    fields = [
        ("class", f"{info.qualname} (defined in {info.module})"),
        ("family", info.family),
        ("cost", f"{info.cost} (needs: {', '.join(needs) or 'the loss values only'})"),
        (
            "scale reaction",
            info.scale_reaction or ("from what it wraps" if info.wraps else "per instance"),
        ),
        ("paper", _plain(info.reference or info.paper or "-")),
    ]
    for key, value in fields:
        out += textwrap.wrap(
            value, width, initial_indent=f"{key + ':':<16}", subsequent_indent=" " * 16
        )
    out.append("")
    if info.parameters:
        out.append(f'parameters (create("{info.name}", ...) or the class {cls}):')
        for p in info.parameters:
            typed = f"{p.name}: {p.annotation}" if p.annotation else p.name
            if p.required:
                typed += "  (required)"
            elif not p.name.startswith("*"):
                typed += f" = {p.default!r}"
            out.append(f"  {typed}")
            if p.description:
                out += textwrap.wrap(
                    _plain(p.description), width, initial_indent=" " * 6, subsequent_indent=" " * 6
                )
    else:
        out.append("parameters: none")
    out.append("")
    out.append(f"The rule, its cost and its departures from the paper: help({info.qualname}).")
    return "\n".join(out)


def format_markdown(infos: Sequence[StrategyInfo]) -> str:
    """The catalogue as the Markdown table of ``docs/weighting.md`` (a test keeps them equal)."""
    out = [
        "| name | class | family | cost | needs | scale reaction | paper | what it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i in sorted(infos, key=_family_order):
        needs = ", ".join(i.needs) or "losses only"
        if i.wraps:
            needs = f"{needs} + inner" if i.needs else "inner"
        cls = i.qualname.rsplit(".", 1)[-1]
        reaction = i.scale_reaction or ("from inner" if i.wraps else "per instance")
        summary = i.summary.replace("``", "`").replace("|", "\\|")
        out.append(
            f"| `{i.name}` | `{cls}` | {i.family} | {i.cost} | {needs} | "
            f"{reaction} | {i.paper or '-'} | {summary} |"
        )
    return "\n".join(out)
