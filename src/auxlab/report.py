"""Static HTML reports with PNG plots (matplotlib and jinja2, from the ``report`` extra)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auxlab._optional import require

__all__ = ["plot_metric_by_weight", "write_html"]


def _pyplot() -> Any:
    matplotlib = require("matplotlib", extra="report", feature="auxlab reports")
    matplotlib.use("Agg")  # files only; never needs a display
    return require("matplotlib.pyplot", extra="report", feature="auxlab reports")


def plot_metric_by_weight(
    per_weight: Mapping[float, Sequence[float]],
    metric: str,
    path: str | Path,
    title: str,
    level: float = 0.95,
    min_span: float = 0.0,
) -> Path:
    """One point per seed and the mean with its t-interval over seeds, for each weight.

    The interval is ``mean ± t(level, n−1)·s/√n`` (Student's t from ``scipy.stats``; no bar
    with one seed). The y-axis holds every point and interval and spans at least
    ``min_span`` (give a multiple of the seed standard deviation, so that noise does not
    fill the axis).
    """
    from auxlab.study._effects import axis_limits, t_interval

    plt = _pyplot()
    weights = sorted(per_weight)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    xs = np.arange(len(weights))
    lows: list[float] = []
    highs: list[float] = []
    for x, w in zip(xs, weights, strict=True):
        vals = [float(v) for v in per_weight[w]]
        ax.scatter(np.full(len(vals), x), vals, color="tab:gray", s=18, zorder=3, label=None)
        iv = t_interval(vals, level)
        err = [[iv.mean - iv.low], [iv.high - iv.mean]] if iv.n >= 2 else None
        ax.errorbar(
            x, iv.mean, yerr=err, fmt="o", color="tab:blue", capsize=6, markersize=8, zorder=2
        )
        lows += [*vals, iv.low]
        highs += [*vals, iv.high]
    ax.set_ylim(*axis_limits(lows, highs, min_span))
    ax.set_xticks(xs, [f"{w:g}" for w in weights])
    ax.set_xlabel("auxiliary loss weight")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.summary li { margin: 0.35rem 0; }
.meta { color: #666; font-size: 0.9rem; }
figure { margin: 0.5rem 0 1.5rem 0; }
figcaption { color: #444; font-size: 0.9rem; }
code { background: #f5f5f5; padding: 0 0.2rem; }
</style></head><body>
<h1>{{ title }}</h1>
{% if intro %}<p>{{ intro }}</p>{% endif %}
<p class="meta">{{ meta }}</p>
<h2>{{ summary_title }}</h2>
<ul class="summary">{% for line in summary %}<li>{{ line }}</li>{% endfor %}</ul>
{% for section in sections %}
<h2>{{ section.title }}</h2>
{% if section.text %}<p>{{ section.text }}</p>{% endif %}
{% for para in section.paragraphs or [] %}<p>{{ para }}</p>{% endfor %}
{% if section.bullets %}<ul>{% for item in section.bullets %}<li>{{ item }}</li>{% endfor %}</ul>
{% endif %}
{% if section.image %}<figure><img src="{{ section.image }}" alt="{{ section.title }}">
{% if section.caption %}<figcaption>{{ section.caption }}</figcaption>{% endif %}</figure>
{% endif %}
{% if section.table %}<table><tr>{% for h in section.table[0] %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in section.table[1:] %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}
</table>{% endif %}
{% endfor %}
</body></html>
"""


def write_html(
    path: str | Path,
    title: str,
    meta: str,
    summary: Sequence[str],
    sections: Sequence[Mapping[str, Any]],
    intro: str = "",
    summary_title: str = "What the weight did",
) -> Path:
    """Write a self-contained HTML page (images are referenced by relative file name).

    ``intro`` is a paragraph under the title; ``summary`` a list under ``summary_title``.
    Each section is ``{"title": ..., "text": ..., "paragraphs": [...], "bullets": [...],
    "image": "file.png", "caption": ..., "table": rows}`` (every key optional but the
    title) with ``rows[0]`` the header. Text is escaped.
    """
    jinja2 = require("jinja2", extra="report", feature="auxlab reports")
    env = jinja2.Environment(autoescape=True)
    page = env.from_string(_TEMPLATE).render(
        title=title,
        intro=intro,
        meta=meta,
        summary=list(summary),
        summary_title=summary_title,
        sections=list(sections),
    )
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)


def escape(text: str) -> str:
    """HTML-escape a string (for callers that build text outside the template)."""
    return html.escape(text)
