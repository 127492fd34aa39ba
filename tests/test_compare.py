"""Paired multi-seed comparisons: the interval every notebook claim is checked against."""
import math

import pandas as pd
import pytest

from kdlab.compare import paired_difference, results_table


def runs(rows):
    return pd.DataFrame([{"arm": a, "seed": s, "test_acc": v} for a, s, v in rows])


def test_paired_difference_by_hand():
    r = runs([("kd", 0, 0.70), ("kd", 1, 0.72), ("kd", 2, 0.71),
              ("base", 0, 0.68), ("base", 1, 0.69), ("base", 2, 0.70)])
    d = paired_difference(r, "kd", "base")
    diffs = [0.02, 0.03, 0.01]  # per seed
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df=2)
    assert d.mean == pytest.approx(mean) and d.low == pytest.approx(mean - half) and d.high == pytest.approx(mean + half)
    assert d.n == 3 and not d.significant and "3 paired seeds" in str(d)  # 0.02 +- 0.025: not shown


def test_pairing_matters_and_one_pair_has_no_interval():
    # arms that differ by a constant per seed but vary a lot across seeds: paired, the difference is certain
    r = runs([("a", s, 0.5 + 0.1 * s + 0.01) for s in range(4)] + [("b", s, 0.5 + 0.1 * s) for s in range(4)])
    d = paired_difference(r, "a", "b")
    assert d.low == pytest.approx(0.01) and d.high == pytest.approx(0.01)
    one = paired_difference(runs([("a", 0, 0.6), ("b", 0, 0.5)]), "a", "b")
    assert one.n == 1 and one.low == -math.inf and not one.significant


def test_errors_name_the_problem():
    r = runs([("a", 0, 0.6), ("b", 1, 0.5)])
    with pytest.raises(ValueError, match="shared seeds"):
        paired_difference(r, "a", "b")
    with pytest.raises(KeyError, match="arm 'c'"):
        paired_difference(r, "c", "b")


def test_results_table_keeps_arm_order():
    r = runs([("z", 0, 0.5), ("z", 1, 0.7), ("a", 0, 0.4), ("a", 1, 0.4)])
    t = results_table(r, "test_acc")
    assert list(t.index) == ["z", "a"]
    assert t.loc["z", ("test_acc", "mean")] == pytest.approx(0.6) and t.loc["a", ("test_acc", "count")] == 2
    with pytest.raises(KeyError, match="not in the runs table"):
        results_table(r, "val_acc")


def test_claim_prints_or_raises(capsys):
    from kdlab.compare import claim
    claim("two is more than one", 2 > 1)
    assert capsys.readouterr().out == "claim: two is more than one: holds\n"
    with pytest.raises(AssertionError, match="does not hold in this run: one is more than two"):
        claim("one is more than two", 1 > 2)
