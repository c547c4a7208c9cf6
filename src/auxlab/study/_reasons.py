"""The recommendation's reasons, in words, from the measurements of the runs.

What the auxiliary gradient did at the setting of interest (its size against the main
gradient, its alignment, its first-order effect on the main loss), the train/validation gap
against weight 0 (read as regularisation only beyond the seed noise), the held-out test
split, the neighbouring weights, and the weight as a share of the main gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from auxlab.study._groups import Group, columns, finite, paired

__all__ = ["measurement_reasons", "relative_share", "share_reasons"]


# How the share is computed, in the recommendation's words. RelativeWeights divides moving
# averages of the norms, so the share is a ratio of mean norms; the "×" gradient ratio in the
# reasons is a mean of per-step ratios, larger when the main gradient's norm varies.
def _share_how(which: str) -> str:
    return (
        f"w·mean‖g_aux‖/mean‖g_main‖ over the probed steps at {which} weight: the ratio of "
        "mean norms that RelativeWeights tracks, not the mean per-step ratio"
    )


def _relative_text(share: Mapping[str, float]) -> str:
    return "RelativeWeights({" + ", ".join(f"'{t}': {v:.3g}" for t, v in share.items()) + "})"


def _ratio_sentence(at: str, aux: str, ratio: float) -> str:
    """How large the weighted auxiliary gradient was next to the main task's, in words."""
    if ratio == 0.0:
        return (
            f"{at}, no gradient of '{aux}' reached the shared layers (its weight is 0): the "
            "main task trained alone."
        )
    if ratio < 0.1:
        size = "a small nudge"
    elif ratio < 0.9:
        size = "a substantial part of the update"
    elif ratio <= 1.1:
        size = "about as large as the main task's own gradient"
    else:
        size = "larger than the main task's own gradient"
    shown = f"{ratio:.2f}" if ratio >= 0.01 else f"{ratio:.2g}"
    return (
        f"{at}, the gradient of '{aux}' on the shared layers was {shown}× the main task's "
        f"(‖w·g_{aux}‖/‖g_main‖, mean over probed steps): {size}."
    )


def _aux_tasks(g: Group) -> list[str]:
    return [c[len("ratio/") :] for c in columns(g, ("ratio/",))]


def relative_share(g: Group) -> dict[str, float] | None:
    """A fixed weight as ``RelativeWeights`` shares per auxiliary task, measured at it."""
    from auxlab.weighting import relative_share

    if g.weight is None:
        return None
    auxes = _aux_tasks(g)
    # The main task is the one task with a gradient norm and no ratio to the main task; it
    # need not be called "main".
    mains = [c[len("norm/") :] for c in columns(g, ("norm/",)) if c[len("norm/") :] not in auxes]
    if len(mains) != 1:
        return None
    main = mains[0]
    out: dict[str, float] = {}
    for aux in auxes:
        vals = []
        for r in g.rows:
            nm, na = r.get(f"norm/{main}"), r.get(f"norm/{aux}")
            if nm is not None and na is not None and finite(nm) and finite(na) and float(nm) > 0:
                vals.append(relative_share(g.weight, float(nm), float(na)))
        if vals:
            out[aux] = sum(vals) / len(vals)
    return out or None


def _neighbour(g: Group, chosen: Group, sign: float, level: float) -> str:
    """``g`` against ``chosen`` seed by seed, in words: the difference and its interval."""
    pair = paired(g, chosen, sign, level)
    if pair.n == 0:
        return f"{g.label}: no seed run at both"
    if pair.n < 2:
        return f"{g.label}: {pair.difference:+.4f} (one common seed: noise unknown)"
    lo, hi = pair.ci
    within = "within the noise" if lo <= 0 <= hi else "beyond the noise"
    return f"{g.label}: {pair.difference:+.4f} [{lo:+.4f}, {hi:+.4f}], {within}"


def measurement_reasons(
    chosen: Group,
    best: Group,
    base: Group | None,
    done: Mapping[str, Group],
    metric: str,
    sign: float,
    level: float,
) -> list[str]:
    """Sentences on the measurements behind the choice of ``chosen`` (the best is ``best``)."""
    out: list[str] = []
    # What the auxiliary gradient did, measured at the setting of interest: the recommended
    # one, or (when 0 is recommended) the best non-zero one.
    subject = chosen if chosen is not base or best is base else best
    if subject is base and base is not None:
        others = [g for g in done.values() if g is not base]
        subject = max(others, key=lambda g: sign * g.mean) if others else base
    for aux in _aux_tasks(subject):
        ratio = subject.measure(f"ratio/{aux}")
        cos = subject.measure(f"cos/{aux}")
        conflict = subject.measure(f"conflict/{aux}")
        dmain = subject.measure(f"dmain/{aux}")
        at = f"At {subject.label}"
        if math.isfinite(ratio):
            out.append(_ratio_sentence(at, aux, ratio))
        if math.isfinite(cos):
            kind = (
                "aligned with"
                if cos > 0.1
                else "opposed to"
                if cos < -0.1
                else "nearly orthogonal to"
            )
            conf = (
                f", in conflict (negative cosine) at {conflict:.0%} of probed steps"
                if (math.isfinite(conflict))
                else ""
            )
            out.append(f"Its gradient was {kind} the main task's (mean cosine {cos:+.2f}){conf}.")
        if math.isfinite(dmain):
            effect = "lowered" if dmain < 0 else "raised"
            out.append(
                f"To first order, the auxiliary part of each step {effect} the main training "
                f"loss by {abs(dmain):.3g} (−lr·g_main·w·g_{aux}, mean over probed steps)."
            )
    if base is not None:
        g_sub, g_base = subject.measure("gap"), base.measure("gap")
        if math.isfinite(g_sub) and math.isfinite(g_base) and subject is not base:
            change = g_sub - g_base
            # The same rule as for the metric: the paired interval of the difference, seed by
            # seed (a seed gives both settings the same initialisation and data order), must
            # exclude 0.
            pair = paired(subject, base, 1.0, level, "gap")
            half = (pair.ci[1] - pair.ci[0]) / 2
            if not math.isfinite(half):
                effect = (
                    f"a change of {change:+.4f}; with fewer than two seeds run at both weights "
                    "the noise between seeds is unknown, so no regularising effect can be read "
                    "from it"
                )
            elif pair.ci[0] <= 0 <= pair.ci[1]:
                effect = (
                    f"a change of {change:+.4f}, within the noise between seeds (the "
                    f"{level:.0%} paired interval of the difference is "
                    f"[{pair.ci[0]:+.4f}, {pair.ci[1]:+.4f}]): no regularising effect can be "
                    "read from these runs"
                )
            elif pair.difference < 0:
                effect = (
                    f"smaller by {-pair.difference:.4f} seed by seed ({level:.0%} paired "
                    f"interval [{pair.ci[0]:+.4f}, {pair.ci[1]:+.4f}]): the auxiliary loss "
                    "acted as a regulariser"
                )
            else:
                effect = "larger: no regularising effect"
            out.append(
                f"Train/validation gap of the main task ({metric}, at the best epoch): "
                f"{g_sub:+.4f} at {subject.label} against {g_base:+.4f} at weight 0, "
                f"{effect}."
            )
        t_sub, t_base = subject.measure("test"), base.measure("test")
        if math.isfinite(t_sub) and math.isfinite(t_base) and subject is not base:
            out.append(
                f"On the held-out test split, which played no part in the choice: {metric} "
                f"{t_sub:.4f} at {subject.label} against {t_base:.4f} at weight 0 (means over "
                "seeds, at each run's best validation epoch)."
            )
    if chosen.weight is not None:
        ws = sorted((g.weight, g) for g in done.values() if g.weight is not None)
        keys = [g.key for _, g in ws]
        if chosen.key in keys:
            i = keys.index(chosen.key)
            near = [ws[j][1] for j in (i - 1, i + 1) if 0 <= j < len(ws)]
            if near:
                # Seed by seed, as every other comparison: the difference over the seeds both
                # completed, with its paired interval (was: the difference of the means, with
                # no noise stated, over whatever seeds each had).
                parts = [_neighbour(g, chosen, sign, level) for g in near]
                out.append(
                    f"Neighbouring weights, {metric} relative to {chosen.label}, paired by seed "
                    f"(negative: worse; {level:.0%} interval): " + "; ".join(parts) + "."
                )
    return out


def share_reasons(
    chosen: Group, base: Group | None, done: Mapping[str, Group], sign: float
) -> tuple[dict[str, float] | None, list[str]]:
    """The chosen weight as a share of the main gradient, and a sentence saying so.

    When weight 0 is chosen, the sentence gives the best non-zero weight's share instead.
    """
    out: list[str] = []
    share = relative_share(chosen)
    if share is not None and chosen.weight:
        out.append(
            "As a share of the main gradient, which stays valid if the auxiliary loss is "
            f"rescaled: {_relative_text(share)} ({_share_how('this')})."
        )
    elif chosen is base:
        nonzero = [g for g in done.values() if g.weight]
        ref = max(nonzero, key=lambda g: sign * g.mean) if nonzero else None
        ref_share = relative_share(ref) if ref is not None else None
        if ref is not None and ref_share is not None:
            out.append(
                f"Should you keep the auxiliary loss anyway: the best non-zero weight, "
                f"{ref.label}, is {_relative_text(ref_share)} as a share of the main gradient "
                f"({_share_how('that')}), which stays valid if the auxiliary loss is "
                "rescaled."
            )
    return share, out
