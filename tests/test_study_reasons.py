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
