"""Notebooks 05 and 06's exercise checkers: a right answer passes, and each classic mistake gets its own message."""
import pytest
import torch
import torch.nn.functional as F

from kdlab import exercises
from kdlab.exercises import ExerciseFailed
from kdlab.losses import dynamic_temperature, flsw_weight, probability_shift
from kdlab.metrics import same_wrong_rate


def _wrong_rows(p, y):
    return p.argmax(1) != y


def _inplace_shift(p, y):
    rows = torch.arange(len(y))
    top = p.argmax(1)
    w = top != y
    tp, yp = p[rows[w], top[w]].clone(), p[rows[w], y[w]].clone()
    p[rows[w], top[w]], p[rows[w], y[w]] = yp, tp
    return p


def _copy_top(p, y):
    q = p.clone()
    w = _wrong_rows(p, y)
    q[torch.arange(len(y))[w], y[w]] = p[w].max(1).values
    return q


def _copy_top_renormalised(p, y):
    q = _copy_top(p, y)
    return q / q.sum(1, keepdim=True)


def _one_hot_wrong(p, y):
    q = p.clone()
    w = _wrong_rows(p, y)
    q[w] = F.one_hot(y[w], p.shape[1]).to(p.dtype)
    return q


def _shift_all_rows(p, y):  # also "fixes" right rows: a no-op there, so this one is right; kept as a control
    return probability_shift(p, y)


# ---------------------------------------------------------------- 05.1 probability shift

def test_probability_shift_reference_and_kdlab_pass(capsys):
    exercises.knowledge_adjustment.check_probability_shift(exercises.knowledge_adjustment._probability_shift_solution)
    exercises.knowledge_adjustment.check_probability_shift(probability_shift)
    exercises.knowledge_adjustment.check_probability_shift(_shift_all_rows)
    assert capsys.readouterr().out.count("correct:") == 3


@pytest.mark.parametrize("wrong, message", [
    (_inplace_shift, "in place"),
    (_one_hot_wrong, "one-hot"),
    (_copy_top, "copied the top value"),
    (_copy_top_renormalised, "renormalising"),
    (lambda p, y: p, "largest probability"),
    (lambda p, y: p.softmax(1), "already right changed"),
    (lambda p, y: p[:, :-1], "shape"),
    (lambda p, y: p.tolist(), "returned a list"),
    (lambda p, y: 1 / 0, "raised ZeroDivisionError"),
])
def test_probability_shift_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.knowledge_adjustment.check_probability_shift(wrong)


# ---------------------------------------------------------------- 05.2 genetic-error rate

def test_genetic_error_rate_reference_and_kdlab_pass(capsys):
    exercises.knowledge_adjustment.check_genetic_error_rate(exercises.knowledge_adjustment._genetic_error_rate_solution)
    exercises.knowledge_adjustment.check_genetic_error_rate(same_wrong_rate)
    assert capsys.readouterr().out.count("correct:") == 2


def _agree(s, t, y):
    return (s.argmax(1) == t.argmax(1)).float().mean()


def _student_wrong(s, t, y):
    return (s.argmax(1) != y).float().mean()


def _per_teacher_error(s, t, y):
    sp, tp = s.argmax(1), t.argmax(1)
    return ((sp == tp) & (tp != y)).float().sum() / (tp != y).float().sum()


def _both_wrong(s, t, y):
    return ((s.argmax(1) != y) & (t.argmax(1) != y)).float().mean()


@pytest.mark.parametrize("wrong, message", [
    (_agree, "right answers included"),
    (_student_wrong, "whatever the teacher said"),
    (_per_teacher_error, "divided by the teacher's mistakes"),
    (_both_wrong, "same\\* wrong"),
    (lambda s, t, y: 0.5, "expected"),
    (lambda s, t, y: [1], "raised TypeError"),
])
def test_genetic_error_rate_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.knowledge_adjustment.check_genetic_error_rate(wrong)


# ---------------------------------------------------------------- 06.1 dynamic temperature

def test_dynamic_temperature_reference_and_kdlab_pass(capsys):
    exercises.dynamic_temperature.check_dynamic_temperature(exercises.dynamic_temperature._dynamic_temperature_solution)
    exercises.dynamic_temperature.check_dynamic_temperature(lambda w, t0, b: dynamic_temperature(w, t0, b))
    assert capsys.readouterr().out.count("correct:") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).clamp(1, 4 * t0), "gradient"),
    (lambda w, t0, b: (t0 + b * (w - w.mean())).clamp(1, 4 * t0).detach(), "sign is flipped"),
    (lambda w, t0, b: (t0 - b * w).clamp(1, 4 * t0).detach(), "batch mean is missing"),
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).detach(), "no clamp"),
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).clamp(min=1).detach(), "upper clamp is missing"),
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).clamp(0, 4 * t0).detach(), "at least 1, not 0"),
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).clamp(min=0).detach(), "lower bound is 1, not 0"),
    (lambda w, t0, b: (t0 + b * (w.mean() - w)).clamp(max=4 * t0).detach(), "lower clamp is missing"),
    (lambda w, t0, b: torch.full_like(w, t0).detach(), "expected"),
    (lambda w, t0, b: torch.full((2,), t0), "shape"),
    (lambda w, t0, b: t0, "returned a float"),
])
def test_dynamic_temperature_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.dynamic_temperature.check_dynamic_temperature(wrong)


# ---------------------------------------------------------------- 06.2 FLSW weight

def test_flsw_weight_reference_and_kdlab_pass(capsys):
    exercises.dynamic_temperature.check_flsw_weight(exercises.dynamic_temperature._flsw_weight_solution)
    exercises.dynamic_temperature.check_flsw_weight(flsw_weight)
    assert capsys.readouterr().out.count("correct:") == 2


def _cos(s, t):
    return F.cosine_similarity(s, t, dim=1)


@pytest.mark.parametrize("wrong, message", [
    (lambda s, t, g: (1 - _cos(s, t)) ** g, "gradient"),
    (lambda s, t, g: ((1 - _cos(s.softmax(1), t.softmax(1))) ** g).detach(), "cosine of probabilities"),
    (lambda s, t, g: (1 - _cos(s, t)).detach(), "exponent gamma is missing"),
    (lambda s, t, g: (_cos(s, t).clamp(min=0) ** g).detach(), "cos\\^gamma"),
    (lambda s, t, g: ((1 - _cos(s, t)) * g).detach(), "not a factor"),
    (lambda s, t, g: torch.zeros(s.shape[0]), "expected"),
    (lambda s, t, g: torch.zeros(3), "shape"),
])
def test_flsw_weight_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.dynamic_temperature.check_flsw_weight(wrong)
