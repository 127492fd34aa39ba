"""Notebooks 03 and 04's exercise checkers: a right answer passes, and each classic mistake gets its own message."""
import pytest
import torch
import torch.nn.functional as F

from kdlab import exercises
from kdlab.exercises import ExerciseFailed


def one_hot(y, k):
    return F.one_hot(y, k).double()


# ---------------------------------------------------------------- 03.1 smoothed labels

def test_smoothed_labels_reference_passes(capsys):
    exercises.self_teaching.check_smoothed_labels(exercises.self_teaching._smoothed_labels_solution)
    assert "correct:" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda y, k, a: (1 - a) * one_hot(y, k) + a / (k - 1) * (1 - one_hot(y, k)), "K - 1 wrong classes"),
    (lambda y, k, a: one_hot(y, k) + a / k, "sum to 1 \\+ a"),
    (lambda y, k, a: (1 - a) * one_hot(y, k), "uniform part a / K is missing"),
    (lambda y, k, a: a * one_hot(y, k) + (1 - a) / k, "swapped"),
    (lambda y, k, a: one_hot(y, k)[:, :-1], "shape"),
    (lambda y, k, a: one_hot(y, k) * 0.5, "not 1"),
    (lambda y, k, a: 1 / 0, "raised ZeroDivisionError"),
])
def test_smoothed_labels_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.self_teaching.check_smoothed_labels(wrong)


# ---------------------------------------------------------------- 03.2 ensemble

def test_ensemble_reference_and_kdlab_pass(capsys):
    from kdlab.born_again import ensemble_logits
    exercises.self_teaching.check_ensemble(exercises.self_teaching._ensemble_solution)
    exercises.self_teaching.check_ensemble(ensemble_logits)
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda zs: torch.stack(zs).mean(0), "averaged the logits"),
    (lambda zs: torch.stack([z.softmax(1) for z in zs]).mean(0), "returned the mean probabilities"),
    (lambda zs: torch.stack([z.softmax(1) for z in zs]).sum(0), "softmax of the summed probabilities"),
    (lambda zs: zs[0], "differ from the mean"),
    (lambda zs: zs[0][:, :2], "shape"),
])
def test_ensemble_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.self_teaching.check_ensemble(wrong)


# ---------------------------------------------------------------- 04.1 rectify

def test_rectify_reference_and_kdlab_pass(capsys):
    from kdlab.losses import rectify
    exercises.rectification.check_rectify(exercises.rectification._rectify_solution)
    exercises.rectification.check_rectify(rectify)
    assert capsys.readouterr().out.count("correct:") == 2


def _in_place(z, y):
    z[0, 0] = 9.0
    return exercises.rectification._rectify_solution(z, y)


def _copy_not_swap(z, y):
    out = z.clone()
    wrong = z.argmax(1) != y
    rows = torch.arange(len(y))
    out[rows[wrong], y[wrong]] = z[wrong].max(1).values
    return out


@pytest.mark.parametrize("wrong, message", [
    (_in_place, "changed its input in place"),
    (_copy_not_swap, "copied the top logit onto the label"),
    (lambda z, y: z.clone(), "label must be the top class"),
    (lambda z, y: 50 * F.one_hot(y, z.shape[1]).double(), "already right changed"),
    (lambda z, y: z[:, :2].clone(), "shape"),
    (lambda z, y: [1, 2], "return a tensor"),
])
def test_rectify_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.rectification.check_rectify(wrong)


# ---------------------------------------------------------------- 04.2 batchmean weight

def test_batchmean_weight_reference_and_kdlab_pass(capsys):
    from kdlab.losses import batchmean_weight
    exercises.rectification.check_batchmean_weight(exercises.rectification._batchmean_weight_solution)
    exercises.rectification.check_batchmean_weight(batchmean_weight)
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda a, m, k: a * m * k, "multiplied by K"),
    (lambda a, m, k: a / k, "multiplier is missing"),
    (lambda a, m, k: a * m, "K is missing"),
    (lambda a, m, k: a * m / (k - 1), "not K - 1"),
    (lambda a, m, k: 0.3, "expected"),
])
def test_batchmean_weight_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.rectification.check_batchmean_weight(wrong)
