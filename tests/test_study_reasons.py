import pytest

from auxlab.study._groups import Group
from auxlab.study._reasons import _ratio_sentence, relative_share


def _group(main: str, weight: float) -> Group:
    rows = [
        {f"norm/{main}": 2.0, "norm/aux": 1.0, "ratio/aux": weight * 0.5},
        {f"norm/{main}": 4.0, "norm/aux": 1.0, "ratio/aux": weight * 0.25},
    ]
    return Group("w=0.2", "w=0.2", "fixed", weight, values=[0.5, 0.6], rows=rows)


@pytest.mark.parametrize("main", ["main", "likes"])
def test_relative_share_reads_the_main_task_by_its_own_name(main: str) -> None:
    # Was: None unless the main task was called "main" (it read `norm/main`).
    share = relative_share(_group(main, 0.2))
    assert share is not None
    assert share["aux"] == pytest.approx((0.2 * 0.5 + 0.2 * 0.25) / 2)


def test_ratio_words_at_weight_zero_and_at_one() -> None:
    zero = _ratio_sentence("At w=0", "aux", 0.0)
    assert "0.00×" not in zero
    assert "weight is 0" in zero
    one = _ratio_sentence("At w=1", "aux", 1.0)
    assert "1.00×" in one
    assert "about as large as" in one
    assert "larger than" not in one
    assert "larger than" in _ratio_sentence("At w=3", "aux", 3.0)
    assert "0.0042×" in _ratio_sentence("At w=0.01", "aux", 0.0042)


def test_neighbouring_weights_are_compared_seed_by_seed() -> None:
    # w=0.1 is the clear winner on seeds 0, 1, 2; w=1 ran seeds 0 and 1 only, on which it
    # is 0.03 and 0.051 below w=0.1. Was: the difference of the means over different seeds
    # (0.6 - 0.7367 = -0.1367), with no noise stated.
    import math

    from scipy import stats

    from auxlab.study import recommend_from_rows

    values = {0.0: [0.60, 0.62, 0.90], 0.1: [0.63, 0.651, 0.929], 1.0: [0.60, 0.60]}
    rows = [
        {"state": "COMPLETE", "setting": f"fixed:{w!r}", "label": f"w={w:g}", "kind": "fixed",
         "weight": w, "seed": s, "value": v}
        for w, vs in values.items()
        for s, v in enumerate(vs)
    ]  # fmt: skip
    rec = recommend_from_rows(rows, "auc", "maximize")
    assert rec.weight == 0.1
    d = [-0.03, -0.051]
    m = sum(d) / 2
    half = float(stats.t.ppf(0.975, 1)) * float(stats.tstd(d)) / math.sqrt(2)
    text = next(r for r in rec.reasons if r.startswith("Neighbouring weights"))
    assert "paired by seed" in text
    assert f"w=1: {m:+.4f} [{m - half:+.4f}, {m + half:+.4f}], within the noise" in text
    # w=0 on the three common seeds: -0.03, -0.031, -0.029.
    d0 = [-0.03, -0.031, -0.029]
    m0 = sum(d0) / 3
    h0 = float(stats.t.ppf(0.975, 2)) * float(stats.tstd(d0)) / math.sqrt(3)
    assert f"w=0: {m0:+.4f} [{m0 - h0:+.4f}, {m0 + h0:+.4f}], beyond the noise" in text
