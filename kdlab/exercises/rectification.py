"""Exercises of notebook 04 (DR-KD rectification).

1. `check_rectify(fn)`: fn(teacher_logits, labels) -> the rectified logits: in every row whose top class is
   not the label, the top logit and the label's logit are swapped; other rows and classes untouched; the
   input must not be modified.
2. `check_batchmean_weight(fn)`: fn(alpha, multiplier, num_classes) -> the weight that gives kdlab's
   `batchmean` KL the same effect as `alpha * multiplier * nn.KLDivLoss()(...)` (default `mean` reduction).

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import warnings

import torch
import torch.nn.functional as F

from kdlab.exercises import fail, passed, run_learner, solutions
from kdlab.losses import distillation_kl, rectify


def _cases():
    g = torch.Generator().manual_seed(4)
    z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2], [1.0, 0.0, 4.0]], dtype=torch.float64)
    yield z, torch.tensor([0, 2, 1])  # right, wrong, wrong
    z = 3 * torch.randn(64, 10, generator=g, dtype=torch.float64)
    yield z, torch.randint(0, 10, (64,), generator=g)


def check_rectify(fn):
    """fn(teacher_logits, labels) -> logits with the wrong rows' top and label entries swapped."""
    for z, y in _cases():
        original = z.clone()
        out = run_learner(fn, z, y, hint="return a tensor of the same shape as the logits")
        if not torch.equal(z, original):
            fail("your function changed its input in place: the teacher's logits are used elsewhere (evaluation, "
                 "logging). Work on a copy: z = teacher_logits.clone()")
        want = rectify(original, y)
        got = out.detach().double()
        if got.shape == want.shape and torch.allclose(got, want):
            continue
        if got.shape != want.shape:
            fail(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        wrong = original.argmax(1) != y
        rows = torch.arange(len(y))
        if not torch.allclose(got[~wrong], original[~wrong]):
            fail("rows where the teacher was already right changed: leave them exactly as they are")
        if torch.allclose(got.softmax(1), F.one_hot(y, z.shape[1]).double()) or \
                bool((got[wrong].softmax(1).max(1).values > 0.999).all()) and not bool((want[wrong].softmax(1).max(1).values > 0.999).all()):
            fail("the wrong rows became (nearly) one-hot: that throws away the teacher's knowledge about the other "
                 "classes. Only swap two entries")
        raised = original.clone()
        raised[rows[wrong], y[wrong]] = original[wrong].max(1).values
        if torch.allclose(got, raised):
            fail("you copied the top logit onto the label but left the old top class as it was: now two classes "
                 "tie for the maximum. Swap: the old top class gets the label's old logit")
        if not bool((got.argmax(1) == y).all()):
            fail("after rectification the label must be the top class of every row; it is not in some rows")
        fail(f"rows where the teacher was wrong differ from the swap (first case row 1: expected "
             f"{want[1].tolist()}, got {got[1].tolist()})")
    passed("rectification: right rows untouched, wrong rows swapped, input unchanged (3 hand rows + 64 random)")


def check_batchmean_weight(fn):
    """fn(alpha, multiplier, num_classes) -> alpha * multiplier / num_classes (checked numerically)."""
    g = torch.Generator().manual_seed(5)
    for alpha, m, k in ((0.95, 50.0, 100), (0.9, 1.0, 10), (0.5, 100.0, 200)):
        zs, zt = torch.randn(32, k, generator=g, dtype=torch.float64), 3 * torch.randn(32, k, generator=g, dtype=torch.float64)
        with warnings.catch_warnings():  # torch warns that 'mean' will mean 'batchmean' in its next major release
            warnings.simplefilter("ignore", UserWarning)
            published = alpha * m * torch.nn.KLDivLoss()(F.log_softmax(zs, 1), F.softmax(zt, 1))
        kl = distillation_kl(zs, zt, 1.0, t_squared=False)
        try:
            w = float(fn(alpha, m, k))
        except Exception as e:
            fail(f"your function raised {type(e).__name__}: {e}")
        if abs(w * float(kl) - float(published)) <= 1e-9 * max(1.0, float(published)):
            continue
        want = alpha * m / k
        for wrong, msg in ((alpha * m * k, "you multiplied by K: 'mean' divides by B*K, 'batchmean' by B, so the "
                                           "published soft term is K times *smaller* than batchmean's"),
                           (alpha / k, "the multiplier is missing: it is part of the published weight"),
                           (alpha * m, "K is missing: 'mean' averages over the classes too (a hidden 1/K)"),
                           (alpha * m / (k - 1), "divide by K, the number of classes, not K - 1")):
            if abs(w - wrong) < 1e-9 * max(1.0, abs(wrong)):
                fail(msg)
        fail(f"for alpha={alpha}, multiplier={m}, K={k} expected {want:g}, got {w:g}")
    passed("batchmean weight: same loss value as the public code's mean-reduced KL for K = 100, 10, 200")


def _rectify_solution(teacher_logits, labels):
    z = teacher_logits.clone()
    rows = torch.arange(len(labels))
    top = z.argmax(dim=1)
    wrong = top != labels
    r, j, y = rows[wrong], top[wrong], labels[wrong]
    z[r, j], z[r, y] = teacher_logits[r, y], teacher_logits[r, j]  # the right-hand side reads the original
    return z


def _batchmean_weight_solution(alpha, multiplier, num_classes):
    # nn.KLDivLoss()'s 'mean' = batchmean / K, so alpha * m * mean = (alpha * m / K) * batchmean
    return alpha * multiplier / num_classes


def solution(name: str):
    """Print a reference solution: 'rectify' or 'batchmean_weight'."""
    solutions({"rectify": _rectify_solution, "batchmean_weight": _batchmean_weight_solution}, name)
