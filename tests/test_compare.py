"""Paired multi-seed comparisons: the interval every notebook claim is checked against."""
import math

import pandas as pd
import pytest
import torch

from kdlab import compare
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


def test_claim_asserts_where_it_says_and_reports_elsewhere(capsys):
    from kdlab.compare import claim
    claim("two is more than one", 2 > 1, scale="smoke")
    assert capsys.readouterr().out == "claim: two is more than one (asserted at smoke, laptop and reduced): holds\n"
    with pytest.raises(AssertionError, match="does not hold in this run .*: one is more than two"):
        claim("one is more than two", 1 > 2, scale="laptop")
    # not asserted at this scale: reported, never raised
    claim("one is more than two", 1 > 2, scale="smoke", at=("laptop", "reduced"))
    assert capsys.readouterr().out == ("claim: one is more than two (asserted at laptop and reduced; reported at "
                                       "smoke): does not hold\n")
    # at full nothing raises: hours of training end with their results printed
    claim("one is more than two", 1 > 2, scale="full")
    assert "reported at full): does not hold" in capsys.readouterr().out
    # the line is the same at every scale where the claim is asserted (nbval compares it)
    claim("x", True, scale="smoke")
    claim("x", True, scale="laptop")
    a, b = capsys.readouterr().out.splitlines()
    assert a == b
    with pytest.raises(ValueError, match="never full"):
        claim("x", True, scale="laptop", at=("laptop", "full"))
    with pytest.raises(ValueError, match="Did you mean 'laptop'"):
        claim("x", True, scale="lapto")


def test_headline_holds_only_on_the_better_side_and_never_raises(capsys):
    from kdlab.compare import headline
    up = runs([("kd", s, 0.60 + 0.01 * s) for s in range(5)] + [("base", s, 0.55 + 0.01 * s + 0.001 * (s % 2))
                                                                for s in range(5)])
    d = paired_difference(up, "kd", "base")
    headline("KD beats the baseline", d, scale="laptop")
    out = capsys.readouterr().out
    assert out.startswith("headline: KD beats the baseline: holds (kd - base, test_acc: +") and "5 paired seeds" in out
    worse = paired_difference(up, "base", "kd")
    headline("the baseline beats KD", worse, scale="full")  # full: reported, not raised
    assert "headline: the baseline beats KD: does not hold" in capsys.readouterr().out
    headline("KD beats the baseline", d, scale="smoke")
    assert capsys.readouterr().out == ("headline (not tested at smoke scale, too small to show it): KD beats the "
                                       "baseline\n")
    # a lower-is-better metric: a negative difference is the better side
    ece = pd.DataFrame([{"arm": a, "seed": s, "ece": v} for a, s, v in
                        [("kd", s, 0.02 + 0.001 * s) for s in range(4)] + [("base", s, 0.05 + 0.002 * s) for s in range(4)]])
    headline("KD is better calibrated", paired_difference(ece, "kd", "base", metric="ece"), scale="laptop")
    assert capsys.readouterr().out.startswith("headline: KD is better calibrated: holds")
    with pytest.raises(TypeError, match="paired comparison"):
        headline("x", 0.5, scale="laptop")


def test_verdicts_know_which_way_is_better():
    from kdlab.compare import difference_table
    rows = []
    for s in range(4):
        rows += [{"arm": "a", "seed": s, "acc": 0.60 + 0.01 * s, "ece": 0.05 + 0.001 * s, "kl": 0.20 - 0.01 * s,
                  "same_wrong": 0.10, "agreement": 0.80, "confidence": 0.70, "test_loss": 1.0},
                 {"arm": "b", "seed": s, "acc": 0.55 + 0.01 * s + 0.001 * (s % 2), "ece": 0.03 + 0.0012 * s,
                  "kl": 0.30 - 0.011 * s, "same_wrong": 0.15 - 0.001 * (s % 2), "agreement": 0.70 + 0.001 * (s % 2),
                  "confidence": 0.60 + 0.001 * s, "test_loss": 1.2 - 0.001 * (s % 2)}]
    r = pd.DataFrame(rows)
    verdict = {m: difference_table(r, [("a", "b")], metric=m)["verdict"].iloc[0] for m in
               ("acc", "ece", "kl", "same_wrong", "agreement", "confidence", "test_loss")}
    # a is higher in acc, ece, agreement, confidence; lower in kl, same_wrong, loss
    assert verdict == {"acc": "better", "ece": "worse", "kl": "better", "same_wrong": "better",
                       "agreement": "better", "confidence": "higher", "test_loss": "better"}
    assert list(difference_table(r, [("a", "b")], metric="ece")["better when"]) == ["lower"]
    # an unknown metric says how to state its direction; stating it works
    r["my_score"] = r["acc"]
    with pytest.raises(KeyError, match="higher_is_better"):
        difference_table(r, [("a", "b")], metric="my_score")
    assert difference_table(r, [("a", "b")], metric="my_score", higher_is_better=False)["verdict"].iloc[0] == "worse"


def test_metric_directions_and_labels():
    from kdlab import metrics
    assert [metrics.direction(m) for m in ("acc", "test_acc", "val_ece", "train_loss", "kl", "confidence")] == \
        ["higher", "higher", "lower", "lower", "lower", None]
    assert metrics.label("test_ece") == "test ece (lower is better)" and metrics.label("confidence") == "confidence"
    with pytest.raises(KeyError, match="Did you mean 'test_ece'"):
        metrics.direction("test_ecee")  # suggests test_ece


@pytest.mark.parametrize("confidence", [95, 0, 1.0, -0.5, True])
def test_a_confidence_out_of_range_is_refused(confidence):
    r = runs([("a", s, 0.5 + 0.01 * s) for s in range(3)] + [("b", s, 0.5) for s in range(3)])
    with pytest.raises(ValueError, match="fraction in"):
        paired_difference(r, "a", "b", confidence=confidence)


# --- the chance bound that a broken run fails ---------------------------------------------------------------------

def _tail(n, k, K):
    """P(Binomial(n, 1/K) >= k) in exact rational arithmetic."""
    from fractions import Fraction
    p = Fraction(1, K)
    return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))


def test_chance_accuracy_by_hand():
    # n = 10 fair coin flips: P(X >= 9) = 11/1024 = 0.011 <= 0.05 < P(X >= 8) = 56/1024 = 0.055
    assert compare.chance_accuracy(10, 2, confidence=0.95) == 0.9
    # and at 99%: P(X >= 10) = 1/1024 <= 0.01 < P(X >= 9)
    assert compare.chance_accuracy(10, 2, confidence=0.99) == 1.0


@pytest.mark.parametrize("n,K", [(500, 10), (2000, 10), (100, 100), (37, 3)])
def test_chance_accuracy_is_the_smallest_rare_score(n, K):
    k = round(compare.chance_accuracy(n, K) * n)
    assert _tail(n, k, K) <= 0.01 < _tail(n, k - 1, K)


def test_chance_accuracy_falls_with_more_images_and_more_classes():
    assert compare.chance_accuracy(500, 10) > compare.chance_accuracy(2000, 10) > 0.1
    assert compare.chance_accuracy(2000, 100) < compare.chance_accuracy(2000, 10)
    assert compare.chance_accuracy(3, 10) == 1.0  # three images cannot tell a model from a guess at 99%


def test_guessers_fail_the_learned_claim_and_learners_pass(capsys):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(50)  # 500 stratified labels
    passed = 0
    for _ in range(200):  # a model that ignores its input: its predictions do not depend on the image
        guess = torch.randint(0, 10, (500,), generator=g)
        passed += float((guess == labels).float().mean()) >= compare.chance_accuracy(500, 10)
    assert passed <= 6  # 1% expected, 2 on average out of 200
    with pytest.raises(AssertionError, match="the teacher learned"):
        compare.claim_learned("the teacher", 0.10, 500, 10, scale="smoke")
    with pytest.raises(AssertionError, match="lowest test accuracy of 3 runs 12.0%"):
        compare.claim_learned("every student", [0.3, 0.12, 0.25], 500, 10, scale="smoke")
    compare.claim_learned("every student", [0.3, 0.14, 0.25], 500, 10, scale="smoke")
    assert "holds" in capsys.readouterr().out
    compare.claim_learned("the teacher", 0.10, 500, 10, scale="full")  # reported, never raised, at full
    assert "does not hold" in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [((0, 10), "positive integer"), ((500, 1), ">= 2"), ((500.0, 10), "integer"),
                                        ((500, 10, 1.0), "confidence")])
def test_chance_accuracy_refuses_nonsense(args, match):
    with pytest.raises(ValueError, match=match):
        compare.chance_accuracy(*args)


def test_claim_learned_refuses_percentages():
    with pytest.raises(ValueError, match="fractions"):
        compare.claim_learned("the teacher", 62.0, 500, 10, scale="smoke")
