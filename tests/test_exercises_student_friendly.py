"""Notebook 07's exercise checkers: a right answer passes, and each classic mistake gets its own message."""
import pytest
import torch
import torch.nn.functional as F

from kdlab import exercises
from kdlab.exercises import ExerciseFailed
from kdlab.sftn import branch_kl, transform_stride


def _lp(z, tau):
    return F.log_softmax(z / tau, dim=1)


def test_branch_kl_reference_and_kdlab_pass(capsys):
    exercises.student_friendly.check_branch_kl(exercises.student_friendly._branch_kl_solution)
    exercises.student_friendly.check_branch_kl(branch_kl)
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda t, r, tau: tau ** 2 * F.kl_div(_lp(r, tau), _lp(t.detach(), tau), reduction="batchmean", log_target=True),
     "NOT detached"),
    (lambda t, r, tau: tau ** 2 * F.kl_div(_lp(t, tau), _lp(r, tau), reduction="batchmean", log_target=True), "swapped"),
    (lambda t, r, tau: F.kl_div(_lp(r, tau), _lp(t, tau), reduction="batchmean", log_target=True), "tau\\^2"),
    (lambda t, r, tau: tau ** 2 * F.kl_div(_lp(r, tau), _lp(t, tau), reduction="mean", log_target=True), "batchmean"),
    (lambda t, r, tau: tau ** 2 * F.kl_div(_lp(r.detach(), tau), _lp(t, tau), reduction="batchmean", log_target=True),
     "branch's logits"),
    (lambda t, r, tau: torch.zeros(()), "expected"),
    (lambda t, r, tau: torch.zeros(3), "scalar"),
    (lambda t, r, tau: 1 / 0, "raised ZeroDivisionError"),
])
def test_branch_kl_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.student_friendly.check_branch_kl(wrong)


def test_transform_stride_reference_and_kdlab_pass(capsys):
    exercises.student_friendly.check_transform_stride(exercises.student_friendly._transform_stride_solution)
    exercises.student_friendly.check_transform_stride(transform_stride)
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda t, s: s[1] / t[1], "teacher's size divided by the student's"),
    (lambda t, s: t[0] // s[0], "spatial sizes"),
    (lambda t, s: t[1] // s[1], "no integer stride"),  # never refuses
    (lambda t, s: 1, "expected stride"),
    (lambda t, s: (_ for _ in ()).throw(ValueError("no")), "raise ValueError only when none exists"),
    (lambda t, s: 1 / 0, "raised ZeroDivisionError"),
])
def test_transform_stride_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.student_friendly.check_transform_stride(wrong)
