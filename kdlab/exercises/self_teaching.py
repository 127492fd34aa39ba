"""Exercises of notebook 03 (self-teaching).

1. `check_smoothed_labels(fn)`: fn(labels, num_classes, smoothing) -> the label-smoothed targets
   (1 - a) q + a u, shape (B, K): the distribution torch's `cross_entropy(label_smoothing=a)` compares with.
2. `check_ensemble(fn)`: fn(list of (B, K) logits) -> logits of the ensemble whose probabilities are the
   mean of the members' probabilities (born-again ensembles average predictions).

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import torch

from kdlab.exercises import call, close, fail, passed, solutions


def _close(a, b, atol=1e-6):
    return close(a, b, rtol=1e-5, atol=atol)


def check_smoothed_labels(fn):
    """fn(labels, num_classes, smoothing) -> (1 - a) one_hot(labels) + a / K."""
    for labels, k, a in ((torch.tensor([2, 0, 1, 2]), 3, 0.1), (torch.tensor([7, 1, 9]), 10, 0.3),
                         (torch.tensor([0, 1]), 2, 0.0)):
        q = torch.nn.functional.one_hot(labels, k).double()
        want = (1 - a) * q + a / k
        got = call(fn, labels, k, a)
        if _close(got, want):
            continue
        if got.shape != want.shape:
            fail(f"shape {tuple(got.shape)}, expected (B, K) = {tuple(want.shape)}: one row per label, one column "
                 f"per class")
        if _close(got, (1 - a) * q + a / (k - 1) * (1 - q)):
            fail("you spread a over the K - 1 wrong classes: that is another convention (the label then gets "
                 "exactly 1 - a). The one torch's cross_entropy(label_smoothing=a) uses, and the one that equals KD "
                 "from a uniform teacher, mixes with the uniform distribution: (1 - a) q + a / K over all K classes")
        if _close(got, q + a / k):
            fail("the rows sum to 1 + a: the one-hot part must shrink to (1 - a) q when a / K goes to every class")
        if _close(got, (1 - a) * q):
            fail("the uniform part a / K is missing: (1 - a) q + a / K")
        if _close(got, a * q + (1 - a) / k):
            fail("a and 1 - a are swapped: a is the share of the uniform distribution (a = 0.1 keeps 0.9 on q)")
        sums = got.double().sum(1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            fail(f"the rows sum to {sums.tolist()}, not 1: targets must be probability distributions")
        fail(f"for K={k}, a={a} expected {want[0].tolist()} for the first row, got {got[0].tolist()}")
    passed("label-smoothed targets (1 - a) q + a / K for K = 3, 10, 2 and a = 0.1, 0.3, 0")


def check_ensemble(fn):
    """fn(list of (B, K) logits) -> logits whose softmax is the mean of the members' softmax."""
    g = torch.Generator().manual_seed(3)
    for members in ([torch.randn(5, 4, generator=g, dtype=torch.float64) * s for s in (1, 4)],
                    [torch.randn(3, 10, generator=g, dtype=torch.float64) * s + 7 * i for i, s in enumerate((1, 2, 5))]):
        want = torch.stack([m.softmax(1) for m in members]).mean(0)
        got = call(fn, members)
        if got.shape != want.shape:
            fail(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}: one row per sample, one logit per class")
        p = got.double().softmax(1)
        if _close(p, want):
            continue
        if _close(p, torch.stack(members).mean(0).softmax(1)):
            fail("you averaged the logits: that is a different ensemble (a geometric mean of the probabilities), "
                 "dominated by the member with the largest logits. Average the probabilities, then take the log")
        if _close(got.double(), want):
            fail("you returned the mean probabilities themselves: return logits, e.g. their log (softmax(log p) = p)")
        if _close(p, torch.stack([m.softmax(1) for m in members]).sum(0).softmax(1)):
            fail("you took the softmax of the summed probabilities: take the log of their mean instead")
        fail(f"the ensemble's probabilities differ from the mean of the members' (first row: expected "
             f"{want[0].tolist()}, got {p[0].tolist()})")
    passed("ensemble of 2 and 3 members: probabilities averaged (members with different logit scales and offsets)")


def _smoothed_labels_solution(labels, num_classes, smoothing):
    q = torch.nn.functional.one_hot(labels.long(), num_classes).float()
    return (1 - smoothing) * q + smoothing / num_classes


def _ensemble_solution(logits_list):
    probs = torch.stack([z.softmax(dim=1) for z in logits_list]).mean(dim=0)
    return probs.log()


def solution(name: str):
    """Print a reference solution: 'smoothed_labels' or 'ensemble'."""
    solutions({"smoothed_labels": _smoothed_labels_solution, "ensemble": _ensemble_solution}, name)


