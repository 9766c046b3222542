"""Summary statistics: nearest-rank percentiles as trtexec reports them."""

import pytest

from harness.core.stats import compact_quantiles, nearest_rank, summarize


def test_nearest_rank_picks_measured_values():
    values = list(range(1, 101))  # 1..100
    assert nearest_rank(values, 50) == 50
    assert nearest_rank(values, 99) == 99
    assert nearest_rank(values, 100) == 100
    assert nearest_rank([3.0, 7.0], 50) == 3.0  # ceil(0.5 * 2) = rank 1
    assert nearest_rank([3.0, 7.0], 51) == 7.0


def test_summarize_reports_every_field():
    stats = summarize([4.0, 1.0, 3.0, 2.0, 10.0])
    assert stats["count"] == 5
    assert (stats["min"], stats["median"], stats["max"]) == (1.0, 3.0, 10.0)
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["stdev"] == pytest.approx(3.5355, rel=1e-4)  # sample stdev, ddof=1
    assert stats["cv"] == pytest.approx(stats["stdev"] / 4.0)
    assert stats["p90"] == 10.0 and stats["p99"] == 10.0


def test_single_sample_has_zero_spread_and_empty_refuses():
    assert summarize([2.5])["stdev"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_compact_quantiles_are_sorted_and_span_the_range():
    q = compact_quantiles([5.0, 1.0, 9.0, 3.0])
    assert len(q) == 21 and q == sorted(q) and q[0] == 1.0 and q[-1] == 9.0
