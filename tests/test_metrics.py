import numpy as np
import pytest

from auxlab._metrics import average_ranks, roc_auc

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("seed", range(5))
def test_ranks_and_auc_match_the_reference_libraries_with_ties(seed):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 6, size=200).astype(float)  # many ties
    y = rng.integers(0, 2, size=200)
    assert np.array_equal(average_ranks(score), scipy_stats.rankdata(score, method="average"))
    assert roc_auc(y, score) == pytest.approx(sklearn_metrics.roc_auc_score(y, score), abs=1e-12)


def test_auc_of_one_class_is_nan():
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))
