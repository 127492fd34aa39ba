"""Exercises of notebook 05 (Knowledge Adjustment).

1. `check_probability_shift(fn)`: fn(teacher_probs, labels) -> the probabilities with, in every row whose top
   class is not the label, the top value and the label's value swapped; other rows and classes untouched; the
   input not modified.
2. `check_genetic_error_rate(fn)`: fn(student_logits, teacher_logits, labels) -> the fraction of all samples
   where student and teacher make the same wrong prediction (`kdlab.metrics.same_wrong_rate`).

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import torch
import torch.nn.functional as F

from kdlab.exercises import fail, passed, run_learner, solutions
from kdlab.losses import probability_shift
from kdlab.metrics import same_wrong_rate


def _prob_cases():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]], dtype=torch.float64)
    yield p, torch.tensor([0, 2, 1])  # right, wrong (label is the runner-up), wrong (label is last)
    g = torch.Generator().manual_seed(5)
    p = F.softmax(3 * torch.randn(64, 10, generator=g, dtype=torch.float64), dim=1)
    yield p, torch.randint(0, 10, (64,), generator=g)


def check_probability_shift(fn):
    """fn(teacher_probs, labels) -> probabilities with the wrong rows' top and label entries swapped."""
    for p, y in _prob_cases():
        original = p.clone()
        out = run_learner(fn, p, y, hint="return a tensor of the same shape as the input")
        if not torch.equal(p, original):
            fail("your function changed its input in place: the teacher's probabilities are used elsewhere. Work on "
                 "a copy: q = teacher_probs.clone()")
        want = probability_shift(original, y)
        got = out.detach().double()
        if got.shape != want.shape:
            fail(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        if torch.allclose(got, want):
            continue
        wrong = original.argmax(1) != y
        rows = torch.arange(len(y))
        if not torch.allclose(got[~wrong], original[~wrong]):
            fail("rows where the teacher was already right changed: leave them exactly as they are")
        if torch.allclose(got[wrong], F.one_hot(y[wrong], p.shape[1]).double()):
            fail("the wrong rows became one-hot: that is hard-label training, not a probability shift. Only swap "
                 "two entries, so the other classes keep the teacher's knowledge")
        raised = original.clone()
        raised[rows[wrong], y[wrong]] = original[wrong].max(1).values
        if torch.allclose(got, raised):
            fail("you copied the top value onto the label but left the old top class as it was: two classes now "
                 "share the maximum and the row sums to more than 1. Swap: the old top class gets the label's value")
        if torch.allclose(got, raised / raised.sum(1, keepdim=True)):
            fail("copying the top value onto the label and renormalising is not a shift: every other class loses "
                 "probability. Swap the two entries instead; the row then still sums to 1 on its own")
        if not torch.allclose(got.sum(1), torch.ones(len(y), dtype=got.dtype)):
            fail("some rows no longer sum to 1: a swap of two entries keeps the sum")
        if not bool((got.gather(1, y[:, None]).squeeze(1) >= got.max(1).values).all()):
            fail("after the shift the label must hold the largest probability of every row; it does not in some rows")
        fail(f"rows where the teacher was wrong differ from the swap (first case, row 1: expected {want[1].tolist()}, "
             f"got {got[1].tolist()})")
    passed("probability shift: right rows untouched, wrong rows swapped, input unchanged (3 hand rows + 64 random)")


def check_genetic_error_rate(fn):
    """fn(student_logits, teacher_logits, labels) -> fraction of samples both get wrong with the same class."""
    eye = torch.eye(4)
    # rows: right, right, both wrong with the same class, both wrong with different classes, only the student
    # wrong, only the teacher wrong (x2), right, only the teacher wrong. Every classic mistake gives a different
    # number here: agreement 4/9, genetic errors 1/9, per teacher mistake 1/5, both wrong 2/9, student wrong 3/9
    s = eye[[0, 1, 2, 1, 2, 1, 2, 3, 0]] * 5
    t = eye[[0, 1, 2, 2, 3, 0, 3, 3, 1]] * 5
    y = torch.tensor([0, 1, 0, 0, 3, 1, 2, 3, 0])
    g = torch.Generator().manual_seed(6)
    cases = [(s, t, y), (torch.randn(200, 10, generator=g), torch.randn(200, 10, generator=g),
                         torch.randint(0, 10, (200,), generator=g))]
    for s, t, y in cases:
        try:
            got = float(fn(s.clone(), t.clone(), y.clone()))
        except Exception as e:
            fail(f"your function raised {type(e).__name__}: {e}")
        want = same_wrong_rate(s, t, y)
        if abs(got - want) < 1e-6:
            continue
        sp, tp = s.argmax(1), t.argmax(1)
        same, t_wrong, s_wrong = sp == tp, tp != y, sp != y
        for value, msg in (
                (same.float().mean(), "you counted every sample where student and teacher agree, right answers "
                                      "included; a genetic error is an agreement on a *wrong* class"),
                (s_wrong.float().mean(), "you counted the student's errors whatever the teacher said; only the "
                                         "mistakes that repeat the teacher's wrong class are inherited"),
                ((same & t_wrong).float().sum() / t_wrong.float().sum().clamp(min=1),
                 "you divided by the teacher's mistakes: that is the share of its mistakes the student copies (the "
                 "notebook's `copied` column). The rate here is a fraction of all samples"),
                ((s_wrong & t_wrong).float().mean(), "both wrong is not enough: they must predict the *same* wrong "
                                                     "class")):
            if abs(got - float(value)) < 1e-6:
                fail(msg)
        fail(f"expected {want:.4f}, got {got:.4f}")
    passed("genetic-error rate: same wrong class, as a fraction of all samples (9 hand rows + 200 random)")


def _probability_shift_solution(teacher_probs, labels):
    q = teacher_probs.clone()
    rows = torch.arange(len(labels))
    top = q.argmax(dim=1)
    wrong = top != labels
    r, j, y = rows[wrong], top[wrong], labels[wrong]
    q[r, j], q[r, y] = teacher_probs[r, y], teacher_probs[r, j]  # the right-hand side reads the original
    return q


def _genetic_error_rate_solution(student_logits, teacher_logits, labels):
    s, t = student_logits.argmax(dim=1), teacher_logits.argmax(dim=1)
    return ((s == t) & (t != labels)).float().mean().item()


def solution(name: str):
    """Print a reference solution: 'probability_shift' or 'genetic_error_rate'."""
    solutions({"probability_shift": _probability_shift_solution,
               "genetic_error_rate": _genetic_error_rate_solution}, name)
