"""Notebook 01's checkers accept right answers and name each classic mistake."""
import pytest
import torch
import torch.nn.functional as F

from kdlab import exercises
from kdlab.exercises import ExerciseFailed


def test_right_answers_pass(capsys):
    exercises.dark_knowledge.check_soft_targets(lambda z, T: torch.softmax(z / T, dim=1))
    exercises.dark_knowledge.check_kd_loss(exercises.dark_knowledge._kd_loss_solution)
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("fn, fragment", [
    (lambda z, T: F.softmax(z, 1) / T, "before the softmax"),
    (lambda z, T: F.softmax(z * T, 1), "don't multiply"),
    (lambda z, T: F.softmax(z, 1), "temperature is ignored"),
    (lambda z, T: F.softmax(z / T, 0), "over the batch"),
    (lambda z, T: F.log_softmax(z / T, 1), "log-probabilities"),
])
def test_soft_target_mistakes_are_named(fn, fragment):
    with pytest.raises(ExerciseFailed, match=fragment):
        exercises.dark_knowledge.check_soft_targets(fn)


def _kd(t2=True, swap=False, mean=False, ce_t=False, probs=False):
    def fn(z_s, z_t, y, T, w_ce, w_kd):
        ls, lt = F.log_softmax(z_s / T, 1), F.log_softmax(z_t / T, 1)
        if probs:
            kl = F.kl_div(ls.exp(), lt.exp(), reduction="batchmean")
        elif swap:
            kl = F.kl_div(lt, ls.exp(), reduction="batchmean")
        else:
            kl = F.kl_div(ls, lt.exp(), reduction="batchmean")
        if mean:
            kl = kl / z_s.shape[1]
        ce = F.cross_entropy(z_s / T if ce_t else z_s, y)
        return w_ce * ce + w_kd * (T * T if t2 else 1) * kl
    return fn


@pytest.mark.parametrize("kw, fragment", [
    (dict(t2=False), "T\\^2 factor is missing"), (dict(swap=True), "teacher is the target"),
    (dict(mean=True), "batchmean"), (dict(ce_t=True), "hard-label cross-entropy"), (dict(probs=True), "KD_Lib"),
])
def test_kd_loss_mistakes_are_named(kw, fragment):
    with pytest.raises(ExerciseFailed, match=fragment):
        exercises.dark_knowledge.check_kd_loss(_kd(**kw))


def test_crashes_and_solutions(capsys):
    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError"):
        exercises.dark_knowledge.check_soft_targets(lambda z, T: 1 / 0)
    exercises.dark_knowledge.solution("kd_loss")
    assert "batchmean" in capsys.readouterr().out
    with pytest.raises(KeyError, match="soft_targets"):
        exercises.dark_knowledge.solution("nope")


def test_a_forgotten_return_is_named():
    def forgot(logits, temperature):
        torch.softmax(logits / temperature, dim=1)  # computed, never returned
    with pytest.raises(ExerciseFailed, match="forget to `return`"):
        exercises.dark_knowledge.check_soft_targets(forgot)
