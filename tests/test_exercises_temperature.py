"""Notebook 02's exercise checkers: a right answer passes, and each classic mistake gets its own message."""
import math

import pytest
import torch

from kdlab import exercises
from kdlab.exercises import ExerciseFailed


def xlogy(p):
    return torch.special.xlogy(p, p)


# ---------------------------------------------------------------- 1. entropy

def test_entropy_reference_and_clamped_solutions_pass(capsys):
    exercises.temperature.check_entropy(exercises.temperature._entropy_solution)
    exercises.temperature.check_entropy(lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1))  # a clamp is fine too
    exercises.temperature.check_entropy(lambda p: -(p.float() * p.float().clamp_min(1e-30).log()).sum(-1))  # float32 too
    assert capsys.readouterr().out.count("correct:") == 3


@pytest.mark.parametrize("wrong, message", [
    (lambda p: -(p * p.log()).sum(-1), "NaN where a probability is exactly 0"),
    (lambda p: -xlogy(p).sum(-1) / math.log(2), "log base 2"),
    (lambda p: -(p * p.clamp_min(1e-12).log10()).sum(-1), "log base 10"),
    (lambda p: xlogy(p).sum(-1), "minus sign is missing"),
    (lambda p: -xlogy(p).mean(-1), "mean over the classes"),
    (lambda p: -xlogy(p).sum(), "one number for the whole batch"),
    (lambda p: -xlogy(p).sum(0), "you summed over the batch"),
    (lambda p: -xlogy(p), "sum them over the classes"),
    (lambda p: -xlogy(p).sum(-1) + 0.1, "the entropies are"),
    (lambda p: 1 / 0, "raised ZeroDivisionError"),
    (lambda p: "high", "return a tensor"),
])
def test_entropy_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.temperature.check_entropy(wrong)


# ---------------------------------------------------------------- 2. the soft term's gradient

def soft_grad(z_s, z_t, T, *, t_s=None, t_t=None, power=2, mean_k=False, per_batch=True, after=False):
    B, K = z_s.shape
    t_s, t_t = (T if t_s is None else t_s), (T if t_t is None else t_t)
    if after:
        p_s, p_t = torch.softmax(z_s, 1) / T, torch.softmax(z_t, 1) / T
    else:
        p_s, p_t = torch.softmax(z_s / t_s, 1), torch.softmax(z_t / t_t, 1)
    g = T ** power * (p_s - p_t) / T
    return g / (B if per_batch else 1) / (K if mean_k else 1)


def test_soft_gradient_reference_and_autograd_solutions_pass(capsys):
    exercises.temperature.check_soft_gradient(exercises.temperature._soft_gradient_solution)
    exercises.temperature.check_soft_gradient(lambda z_s, z_t, T: soft_grad(z_s, z_t, T))

    def by_autograd(z_s, z_t, T):
        z = z_s.float().requires_grad_(True)
        loss = T * T * torch.nn.functional.kl_div(torch.log_softmax(z / T, 1), torch.softmax(z_t.float() / T, 1),
                                                  reduction="batchmean")
        loss.backward()
        return z.grad

    exercises.temperature.check_soft_gradient(by_autograd)
    assert capsys.readouterr().out.count("correct:") == 3


@pytest.mark.parametrize("wrong, message", [
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, power=0), "T\\^2 factor is missing"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, power=3), "1/T of the chain rule is missing"),
    (lambda z_s, z_t, T: -soft_grad(z_s, z_t, T), "sign is flipped"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, per_batch=False), "no 1/B"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, mean_k=True), "extra 1/K"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, t_s=1.0), "only the teacher is softened"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, t_t=1.0), "only the student is softened"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, after=True), "T applied after the softmax"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T, t_s=1.0, t_t=1.0), "T applied after the softmax"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T)[0], "wrong shape"),
    (lambda z_s, z_t, T: soft_grad(z_s, z_t, T) * 1.01, "differs from"),
])
def test_soft_gradient_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.temperature.check_soft_gradient(wrong)


# ---------------------------------------------------------------- 3. the temperature for a target entropy

def test_temperature_for_entropy_reference_passes(capsys):
    exercises.temperature.check_temperature_for_entropy(exercises.temperature._temperature_for_entropy_solution)
    assert "correct:" in capsys.readouterr().out


def solve_bits(logits, target):
    """The right search, but with the entropy in bits."""
    if not 0 < target < math.log(logits.shape[-1]):
        raise ValueError("unreachable")
    lo, hi = math.log(1e-3), math.log(1e4)
    for _ in range(100):
        mid = (lo + hi) / 2
        p = torch.softmax(logits / math.exp(mid), -1)
        h_bits = float(-(torch.special.xlogy(p, p)).sum()) / math.log(2)
        lo, hi = (mid, hi) if h_bits < target else (lo, mid)
    return math.exp(lo)


def no_check(logits, target):
    """The right search for reachable targets, but no ValueError for unreachable ones."""
    K = logits.shape[-1]
    return exercises.temperature._temperature_for_entropy_solution(logits, min(max(target, 1e-3), math.log(K) - 1e-3))


@pytest.mark.parametrize("wrong, message", [
    (solve_bits, "BITS"),
    (lambda z, h: 1.0, "the right T is"),
    (lambda z, h: -1.0, "must be a finite number > 0"),
    (lambda z, h: torch.ones(2), "return one temperature"),
    (no_check, "raise ValueError"),
])
def test_temperature_for_entropy_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        exercises.temperature.check_temperature_for_entropy(wrong)


def test_temperature_for_entropy_says_which_way_to_move():
    with pytest.raises(ExerciseFailed, match="the right T is larger"):
        exercises.temperature.check_temperature_for_entropy(lambda z, h: 1e-3)
    with pytest.raises(ExerciseFailed, match="the right T is smaller"):
        exercises.temperature.check_temperature_for_entropy(lambda z, h: 1e3)


def test_temperature_for_entropy_other_exception_for_unreachable_target_is_named():
    def wrong_error(logits, target):
        if target >= math.log(logits.shape[-1]) or target <= 0:
            raise RuntimeError("cannot")
        return exercises.temperature._temperature_for_entropy_solution(logits, target)

    with pytest.raises(ExerciseFailed, match="raise ValueError, not RuntimeError"):
        exercises.temperature.check_temperature_for_entropy(wrong_error)


# ---------------------------------------------------------------- solutions

@pytest.mark.parametrize("name, snippet", [("entropy", "xlogy"), ("soft_gradient", "T * (p_s - p_t) / B"),
                                           ("temperature_for_entropy", "bisect")])
def test_solutions_print_their_source(capsys, name, snippet):
    exercises.temperature.solution(name)
    assert snippet in capsys.readouterr().out


def test_unknown_solution_names_the_ones_there_are():
    with pytest.raises(KeyError, match="entropy"):
        exercises.temperature.solution("nope")
