"""Tests for kdlab.metrics on tiny examples computed by hand."""
import math

import pytest
import torch

from kdlab.metrics import (accuracy, agreement, expected_calibration_error, kl_to_teacher,
                           reliability_table, same_wrong_rate, summarize)


def logits_from_probs(rows):
    """Logits whose softmax is exactly `rows` (up to rounding): log-probabilities."""
    return torch.tensor(rows, dtype=torch.float64).log()


# 4 samples, 2 classes, confidences 0.9, 0.9, 0.7, 0.7.
PROBS = [[0.9, 0.1], [0.1, 0.9], [0.7, 0.3], [0.3, 0.7]]
LABELS = torch.tensor([0, 0, 0, 1])  # right, wrong, right, right


def test_accuracy_by_hand():
    assert accuracy(logits_from_probs(PROBS), LABELS) == pytest.approx(3 / 4)


def test_ece_by_hand():
    # 5 bins of width 0.2. Bin (0.8, 1]: confidences 0.9, 0.9, one right -> |0.5 - 0.9| = 0.4, weight 2/4.
    # Bin (0.6, 0.8]: confidences 0.7, 0.7, both right -> |1.0 - 0.7| = 0.3, weight 2/4.
    expected = 2 / 4 * 0.4 + 2 / 4 * 0.3
    got = expected_calibration_error(logits_from_probs(PROBS), LABELS, n_bins=5)
    assert got == pytest.approx(expected, abs=1e-9)


def test_ece_zero_when_perfectly_calibrated():
    # 10 samples at confidence 0.7 with 7 right, 10 at 0.9 with 9 right
    rows = [[0.7, 0.3]] * 10 + [[0.9, 0.1]] * 10
    labels = torch.tensor([0] * 7 + [1] * 3 + [0] * 9 + [1] * 1)
    assert expected_calibration_error(logits_from_probs(rows), labels) == pytest.approx(0.0, abs=1e-9)


def test_ece_one_overconfident_sample():
    # a single wrong prediction at confidence 0.95: ECE = 0.95
    logits = logits_from_probs([[0.95, 0.05]])
    assert expected_calibration_error(logits, torch.tensor([1])) == pytest.approx(0.95, abs=1e-9)


def test_reliability_table_by_hand():
    table = reliability_table(logits_from_probs(PROBS), LABELS, n_bins=5)
    assert list(table.columns) == ["bin_lower", "bin_upper", "confidence", "accuracy", "count"]
    assert len(table) == 5
    assert table["bin_lower"].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert table["bin_upper"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["count"].tolist() == [0, 0, 0, 2, 2]
    assert table["confidence"].iloc[3:].tolist() == pytest.approx([0.7, 0.9])
    assert table["accuracy"].iloc[3:].tolist() == pytest.approx([1.0, 0.5])
    # empty bins are kept, with NaN means
    assert table[["confidence", "accuracy"]].iloc[:3].isna().all().all()


def test_reliability_table_counts_sum_to_n_and_match_ece():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(200, 10, generator=g)
    labels = torch.randint(0, 10, (200,), generator=g)
    table = reliability_table(logits, labels)
    assert len(table) == 15
    assert table["count"].sum() == 200
    full = table[table["count"] > 0]
    ece = (full["count"] / 200 * (full["accuracy"] - full["confidence"]).abs()).sum()
    assert expected_calibration_error(logits, labels) == pytest.approx(ece, abs=1e-9)


def test_agreement_by_hand_and_symmetric():
    s = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.0]])
    t = torch.tensor([[5.0, 1.0, 0.0], [0.0, 4.0, 2.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]])
    # predictions: student 0, 2, 1, 0; teacher 0, 1, 1, 2 -> agree on samples 0 and 2
    assert agreement(s, t) == pytest.approx(0.5)
    assert agreement(t, s) == agreement(s, t)


def test_kl_to_teacher():
    t = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.3, 3.0]], dtype=torch.float64)
    assert kl_to_teacher(t.clone(), t) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_teacher(t + 5.0, t) == pytest.approx(0.0, abs=1e-12)  # same softmax
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.5]], dtype=torch.float64)
    assert kl_to_teacher(s, t) > 0

    def softmax(row, temp):
        e = [math.exp(v / temp) for v in row]
        return [v / sum(e) for v in e]

    for temp in (1.0, 3.0):
        # batchmean KL(p_t || p_s), no T^2 factor
        hand = sum(sum(pt * math.log(pt / ps) for pt, ps in zip(softmax(b, temp), softmax(a, temp)))
                   for a, b in zip(s.tolist(), t.tolist())) / 2
        assert kl_to_teacher(s, t, temperature=temp) == pytest.approx(hand, rel=1e-12)


def test_same_wrong_rate_by_hand():
    labels = torch.tensor([0, 1, 2, 0])
    eye = torch.eye(3)
    t = eye[[0, 2, 1, 1]]  # teacher predicts 0, 2, 1, 1: wrong on samples 1, 2, 3
    s = eye[[0, 2, 2, 2]]  # student predicts 0, 2, 2, 2
    # sample 1: both wrong, both say 2 -> copied mistake; sample 2: student right; sample 3: different
    assert same_wrong_rate(s, t, labels) == pytest.approx(1 / 4)
    # a student that is right where it disagrees with the teacher never copies a mistake
    assert same_wrong_rate(eye[[0, 1, 2, 0]], t, labels) == 0.0


def test_summarize():
    logits = logits_from_probs(PROBS)
    teacher = logits_from_probs([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4], [0.6, 0.4]])
    out = summarize(logits, LABELS)
    assert set(out) == {"acc", "ece"}
    assert out["acc"] == pytest.approx(0.75)
    assert out["ece"] == expected_calibration_error(logits, LABELS)
    out = summarize(logits, LABELS, teacher_logits=teacher, loss=torch.tensor(0.5))
    assert set(out) == {"acc", "ece", "agreement", "kl", "loss"}
    assert out["agreement"] == pytest.approx(0.5)
    assert out["kl"] == kl_to_teacher(logits, teacher)
    assert out["loss"] == 0.5
    assert all(isinstance(v, float) for v in out.values())


def test_metrics_need_no_gradient_and_return_floats():
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.arange(6) % 4
    for value in (accuracy(logits, labels), expected_calibration_error(logits, labels),
                  agreement(logits, logits), kl_to_teacher(logits, logits),
                  same_wrong_rate(logits, logits, labels)):
        assert isinstance(value, float)


def test_metrics_validate_inputs():
    with pytest.raises(ValueError, match="labels must be 1-D"):
        accuracy(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        expected_calibration_error(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), n_bins=0)
    with pytest.raises(ValueError, match="same shape"):
        agreement(torch.randn(4, 3), torch.randn(4, 2))


def test_nan_logits_are_refused_not_counted_as_class_0():
    logits = torch.full((4, 10), float("nan"))
    labels = torch.zeros(4, dtype=torch.long)  # all class 0: NaN rows would score 100% without the check
    with pytest.raises(ValueError, match="contain NaN"):
        accuracy(logits, labels)
    with pytest.raises(ValueError, match="contain NaN"):
        expected_calibration_error(logits, labels)


def test_copy_rates_by_hand_separate_inherited_mistakes_from_agreement():
    from kdlab.metrics import copy_rates, direction, same_wrong_rate
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    teacher = torch.eye(3)[[0, 0, 2, 2, 2, 1]]  # right, right, wrong, wrong, wrong, right
    student = torch.eye(3)[[0, 1, 2, 0, 2, 1]]  # copies 2 of 3 right answers, 2 of 3 mistakes
    assert copy_rates(student, teacher, labels) == pytest.approx({"copies_wrong": 2 / 3, "copies_right": 2 / 3})
    assert same_wrong_rate(student, teacher, labels) == pytest.approx(2 / 6)
    # a student that copies less of everything lowers both rates; one that sheds mistakes only the first
    sheds = torch.eye(3)[[0, 0, 0, 0, 1, 1]]
    assert copy_rates(sheds, teacher, labels) == pytest.approx({"copies_wrong": 0.0, "copies_right": 1.0})
    right_teacher = torch.eye(3)[[0, 0, 0, 0, 1, 1]]
    rates = copy_rates(student, right_teacher, labels)
    assert math.isnan(rates["copies_wrong"]) and rates["copies_right"] == pytest.approx(3 / 6)
    assert direction("copies_wrong") == "lower" and direction("test_copies_right") == "higher"
