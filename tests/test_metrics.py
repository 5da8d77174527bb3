"""Agreement metrics and the length baseline."""

import pytest

from training.metrics import agreement, auc, distinct_n, length_baseline, length_matched, spearman


def test_agreement_on_a_known_confusion_matrix():
    a = agreement([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1])
    assert a.accuracy == pytest.approx(4 / 6) and a.precision == pytest.approx(2 / 3)
    assert a.recall == pytest.approx(2 / 3) and a.f1 == pytest.approx(2 / 3)
    assert a.kappa == pytest.approx((4 / 6 - 0.5) / 0.5)


def test_auc_and_spearman_with_ties():
    assert auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5
    assert auc([1, 2], [1, 1]) is None
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_length_baseline_finds_the_best_threshold():
    ag, length_auc, thr = length_baseline([10, 20, 30, 40], [0, 0, 1, 1])
    assert ag.accuracy == 1.0 and length_auc == 1.0 and thr == 30


def test_length_matched_and_distinct():
    assert length_matched(["a" * 10, "a" * 10], ["a" * 9, "a" * 5]) == [True, False]
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)
