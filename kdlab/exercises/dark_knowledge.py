"""Exercises of notebook 01 (dark knowledge).

1. `check_soft_targets(fn)`: fn(logits, temperature) -> softmax(logits / T) over the classes.
2. `check_kd_loss(fn)`: fn(student_logits, teacher_logits, labels, temperature, w_ce, w_kd) -> Hinton's loss
   w_ce * CE(y, softmax(z_s)) + w_kd * T^2 * KL(p_t^T || p_s^T), summed over classes, averaged over the batch.

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import torch
import torch.nn.functional as F

from kdlab.exercises import call, close, fail, passed, solutions
from kdlab.losses import kd_loss, soft_targets


def _cases(seed=0):
    g = torch.Generator().manual_seed(seed)
    for B, K, T in ((4, 10, 1.0), (3, 10, 4.0), (5, 7, 20.0), (2, 3, 0.5)):
        yield torch.randn(B, K, generator=g) * 3, torch.randn(B, K, generator=g) * 3, \
            torch.randint(0, K, (B,), generator=g), T


def _close(a, b):
    return close(a, b, rtol=1e-4, atol=1e-6)


def check_soft_targets(fn):
    mistakes = {
        "softmax(z) / T: the temperature must divide the logits before the softmax, not the probabilities":
            lambda z, T: F.softmax(z, 1) / T,
        "softmax(z * T): divide the logits by T (a higher T must give a flatter distribution), don't multiply":
            lambda z, T: F.softmax(z * T, 1),
        "the temperature is ignored: divide the logits by T before the softmax": lambda z, T: F.softmax(z, 1),
        "softmax over the batch (dim 0): take it over the classes, the last dimension":
            lambda z, T: F.softmax(z / T, 0),
        "log-probabilities: return probabilities (softmax, not log_softmax)": lambda z, T: F.log_softmax(z / T, 1),
    }
    for z, _, _, T in _cases():
        want = soft_targets(z, T)
        got = call(fn, z, T)  # raises, a forgotten return and non-tensors are named there
        if _close(got, want):
            continue
        for why, wrong in mistakes.items():
            if _close(got, wrong(z, T)):
                fail(f"not quite: this looks like {why}")
        if got.shape != want.shape:
            fail(f"wrong shape: expected {tuple(want.shape)} (one distribution per row), got {tuple(got.shape)}")
        fail(f"at T={T} your rows sum to {got.sum(1).tolist()} and differ from softmax(z / T) by up to "
             f"{(got - want).abs().max():.3g}")
    passed("softmax(z / T) over the classes, for T from 0.5 to 20")


def check_kd_loss(fn):
    def variant(z_s, z_t, y, T, w_ce, w_kd, *, t2=True, swap=False, mean=False, ce_at_t=False, probs=False):
        log_p_s, log_p_t = F.log_softmax(z_s / T, 1), F.log_softmax(z_t / T, 1)
        if probs:  # KD_Lib's mistake: probabilities where log-probabilities go
            kl = F.kl_div(log_p_s.exp(), log_p_t.exp(), reduction="batchmean")
        elif swap:
            kl = F.kl_div(log_p_t, log_p_s, reduction="batchmean", log_target=True)
        else:
            kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        if mean:
            kl = kl / z_s.shape[1]
        ce = F.cross_entropy(z_s / T if ce_at_t else z_s, y)
        return w_ce * ce + w_kd * (T * T if t2 else 1) * kl
    mistakes = {
        "the T^2 factor is missing: the soft term's gradient shrinks like 1/T^2 without it": dict(t2=False),
        "KL(p_s || p_t): the teacher is the target, KL(p_t || p_s) (F.kl_div(student_log_probs, teacher_probs))":
            dict(swap=True),
        "a mean over classes too (reduction='mean'): kdlab sums over classes and averages over the batch "
        "('batchmean'); 'mean' hides a factor 1/K": dict(mean=True),
        "the hard-label cross-entropy at temperature T: it uses the ordinary softmax (T = 1)": dict(ce_at_t=True),
        "probabilities passed where F.kl_div expects the student's LOG-probabilities (the KD_Lib bug)":
            dict(probs=True),
    }
    for (z_s, z_t, y, T), (w_ce, w_kd) in zip(_cases(1), ((0.1, 0.9), (0.5, 0.5), (0.0, 1.0), (1.0, 0.3))):
        want = kd_loss(z_s, z_t, y, temperature=T, w_ce=w_ce, w_kd=w_kd)
        got = call(fn, z_s, z_t, y, T, w_ce, w_kd)
        if got.numel() != 1:
            fail(f"the loss must be one number (averaged over the batch), got shape {tuple(got.shape)}")
        if _close(got.reshape(()), want):
            continue
        for why, kw in mistakes.items():
            if _close(got.reshape(()), variant(z_s, z_t, y, T, w_ce, w_kd, **kw)):
                fail(f"not quite (T={T}, w_ce={w_ce}, w_kd={w_kd}): this looks like {why}")
        fail(f"at T={T}, w_ce={w_ce}, w_kd={w_kd} you return {float(got):.5f}, the loss is {float(want):.5f}")
    passed("Hinton's KD loss (T^2, batchmean, teacher as the target) for four settings")


def _soft_targets_solution(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def _kd_loss_solution(student_logits, teacher_logits, labels, temperature, w_ce, w_kd):
    T = temperature
    hard = F.cross_entropy(student_logits, labels)  # ordinary softmax, T = 1
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1),  # input: student LOG-probabilities
                    F.softmax(teacher_logits / T, dim=1),       # target: teacher probabilities
                    reduction="batchmean")                       # sum over classes, mean over the batch
    return w_ce * hard + w_kd * T * T * soft


def solution(name: str):
    """Print a reference solution: 'soft_targets' or 'kd_loss'."""
    solutions({"soft_targets": _soft_targets_solution, "kd_loss": _kd_loss_solution}, name)
