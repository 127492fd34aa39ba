"""Exercises of notebook 02 (temperature).

1. `check_entropy(fn)`: fn(probs) -> the entropy in nats of each row of a (B, K) probability table.
2. `check_soft_gradient(fn)`: fn(student_logits, teacher_logits, temperature) -> the gradient of
   T^2 * KL(p_t^T || p_s^T) (summed over classes, averaged over the batch) with respect to the student's
   logits, in closed form (no autograd): (T / B) (p_s^T - p_t^T).
3. `check_temperature_for_entropy(fn)`: fn(logits, target) -> the T at which softmax(logits / T) has entropy
   `target` nats (one row of K logits); a ValueError when no T reaches it.

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import math

import torch

from kdlab.exercises import call, close, fail, passed, solutions
from kdlab.losses import distillation_kl


def _close(a, b, rtol=1e-4, atol=1e-7):
    return close(a, b, rtol, atol)


def _reference_entropy(p):
    return -torch.special.xlogy(p, p).sum(-1)


def _entropy_cases():
    g = torch.Generator().manual_seed(2)
    # rows with exact zeros (0 log 0 = 0), a one-hot and a uniform row; B != K so that a wrong dim shows
    yield torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.2] * 5], dtype=torch.float64)
    yield torch.softmax(3 * torch.randn(4, 10, generator=g, dtype=torch.float64), 1)
    yield torch.softmax(torch.randn(7, 3, generator=g, dtype=torch.float64), 1)


def check_entropy(fn):
    """fn(probs) -> (B,) entropies in nats, -sum_k p_k ln p_k per row."""
    for p in _entropy_cases():
        want = _reference_entropy(p) + 0.0  # + 0.0: a one-hot row shows as 0.0, not -0.0
        got = call(fn, p)
        if _close(got, want):
            continue
        B, K = p.shape
        if torch.isnan(got).any():
            fail("NaN where a probability is exactly 0: p ln p tends to 0 as p -> 0, but in floating point "
                 "0 * log(0) = 0 * (-inf) = NaN. Use torch.special.xlogy(p, p), or p * p.clamp_min(1e-12).log()")
        if got.numel() == 1:
            fail(f"one number for the whole batch: return one entropy per row (sum over the classes, dim=-1, "
                 f"not over everything), shape ({B},)")
        if got.shape == (K,) and B != K:
            fail(f"shape ({K},): you summed over the batch (dim 0); sum over the classes (dim=-1), shape ({B},)")
        if got.shape == p.shape:
            fail(f"shape {tuple(p.shape)}: these are the terms -p_k ln p_k; sum them over the classes (dim=-1)")
        if got.shape != want.shape:
            fail(f"wrong shape: expected ({B},), one entropy per row, got {tuple(got.shape)}")
        mistakes = {
            "log base 2 (bits): the entropy here is in nats, with the natural log (torch.log); bits = nats / ln 2":
                want / math.log(2),
            "log base 10: use the natural log (torch.log), so that the maximum is ln K": want / math.log(10),
            "the minus sign is missing: ln p <= 0, so -sum p ln p is >= 0": -want,
            "a mean over the classes (torch.mean) instead of a sum: the entropy is -sum_k p_k ln p_k": want / K,
        }
        for why, wrong in mistakes.items():
            if _close(got, wrong):
                fail(f"not quite: this looks like {why}")
        fail(f"for the probabilities of shape {tuple(p.shape)} you return {got.tolist()}, the entropies are "
             f"{[round(v, 4) for v in want.tolist()]}")
    passed("entropy in nats per row, 0 ln 0 = 0, on three tables (with zeros, 10 and 3 classes)")


def _reference_soft_gradient(z_s, z_t, T):
    z = z_s.detach().clone().requires_grad_(True)
    distillation_kl(z, z_t, T).backward()
    return z.grad


def _gradient_cases():
    g = torch.Generator().manual_seed(3)
    # B != T and T^2 != K in the first case, so that no two mistakes give the same numbers there
    for B, K, T in ((5, 10, 4.0), (3, 10, 1.0), (4, 7, 20.0), (2, 5, 0.5), (6, 10, 2.0)):
        yield (torch.randn(B, K, generator=g, dtype=torch.float64),
               3 * torch.randn(B, K, generator=g, dtype=torch.float64), T)


def check_soft_gradient(fn):
    """fn(z_s, z_t, T) -> d/dz_s [T^2 KL(p_t^T || p_s^T)] (batchmean) = (T / B) (p_s^T - p_t^T), shape (B, K)."""
    for z_s, z_t, T in _gradient_cases():
        want = _reference_soft_gradient(z_s, z_t, T)
        got = call(fn, z_s, z_t, T)
        if _close(got, want):
            continue
        B, K = z_s.shape
        if got.shape != want.shape:
            fail(f"wrong shape: the gradient has one entry per student logit, shape ({B}, {K}), got "
                 f"{tuple(got.shape)}")

        def p(z, t):
            return torch.softmax(z / t, 1)

        diff = p(z_s, T) - p(z_t, T)
        mistakes = {
            "the T^2 factor is missing: the plain KL's gradient is (p_s^T - p_t^T) / (T B), which shrinks like "
            "1/T^2; with T^2 it is (T / B)(p_s^T - p_t^T)": diff / (T * B),
            "the 1/T of the chain rule is missing: d(z/T)/dz = 1/T, so T^2 * (1/T) = T, not T^2": T * T * diff / B,
            "the sign is flipped: the gradient is p_s - p_t (the student's minus the teacher's); p_t - p_s is the "
            "direction gradient descent moves in": -want,
            "no 1/B: batchmean averages over the batch, so each sample's gradient is divided by B": T * diff,
            "an extra 1/K (reduction='mean' averages over the classes too)": want / K,
            "only the teacher is softened: the student must be softened by the same T, p_s^T = softmax(z_s / T)":
                T * (p(z_s, 1.0) - p(z_t, T)) / B,
            "only the student is softened: the teacher must be softened by the same T, p_t^T = softmax(z_t / T)":
                T * (p(z_s, T) - p(z_t, 1.0)) / B,
        }
        for why, wrong in mistakes.items():
            if _close(got, wrong):
                fail(f"not quite (T={T:g}): this looks like {why}")
        # softmax(z) / T, or no T inside the softmax at all: some multiple of the unsoftened difference
        unsoftened = p(z_s, 1.0) - p(z_t, 1.0)
        for c in (T * T, T, 1.0, 1 / T, 1 / (T * T)):
            if T != 1.0 and any(_close(got, c * n * unsoftened) for n in (1.0 / B, 1.0)):
                fail(f"not quite (T={T:g}): this looks like T applied after the softmax (or not at all): "
                     f"softening divides the LOGITS, softmax(z / T); softmax(z) / T is not even a distribution")
        fail(f"at T={T:g} (B={B}, K={K}) your gradient differs from (T / B)(p_s^T - p_t^T) by up to "
             f"{float((got - want).abs().max()):.3g} (largest entry {float(want.abs().max()):.3g})")
    passed("the soft term's gradient (T / B)(p_s^T - p_t^T), for T from 0.5 to 20, matches autograd")


def _temperature_cases():
    g = torch.Generator().manual_seed(4)
    z = 3 * torch.randn(10, generator=g, dtype=torch.float64)
    h1 = float(_reference_entropy(torch.softmax(z, 0)))
    ln_k = math.log(10)
    # above and below the entropy at T=1 (so both T > 1 and T < 1 are needed), and near the uniform limit
    for target in (0.5 * (h1 + ln_k), 0.5 * h1, 0.95 * ln_k):
        yield z, target
    z2 = torch.tensor([4.0, 1.0, 0.0, -1.0, -2.0], dtype=torch.float64)
    yield z2, 1.0


def check_temperature_for_entropy(fn):
    """fn(logits (K,), target nats) -> T > 0 with H(softmax(logits / T)) = target; ValueError if unreachable."""
    for z, target in _temperature_cases():
        got = call(fn, z, target)
        if got.numel() != 1:
            fail(f"return one temperature (a number), got shape {tuple(got.shape)}")
        T = float(got)
        if not (math.isfinite(T) and T > 0):
            fail(f"T must be a finite number > 0, you returned {T}")
        h = float(_reference_entropy(torch.softmax(z / T, 0)))
        if abs(h - target) < 1e-3:
            continue
        if abs(h - target * math.log(2)) < 2e-3:
            fail(f"your T gives {h:.4f} nats = {target:.4f} BITS: the target is in nats; compute the entropy with "
                 f"the natural log")
        direction = "larger" if h < target else "smaller"
        fail(f"for target {target:.4f} nats your T = {T:.4g} gives entropy {h:.4f}: the right T is {direction}. "
             f"Entropy grows with T, so you can bisect: if H(T) < target, raise T, else lower it (on log T, "
             f"between e.g. 1e-3 and 1e4), until |H(T) - target| < 1e-4")
    z = torch.tensor([2.0, 0.5, -1.0, 0.0], dtype=torch.float64)
    for target, why in ((math.log(4) + 0.1, f"above ln K = {math.log(4):.4f}, the entropy of the uniform "
                         f"distribution: no T reaches it"),
                        (-0.5, "negative: an entropy is never below 0")):
        try:
            out = fn(z.clone(), target)
        except ValueError:
            continue
        except Exception as e:
            fail(f"for an unreachable target ({why}) raise ValueError, not {type(e).__name__}: {e}")
        fail(f"for target {target:.4f} (K = 4) you returned {out!r}, but the target is {why}: raise ValueError")
    passed("T for a target entropy, above and below the entropy at T = 1, and ValueError for unreachable targets")


def _entropy_solution(probs):
    # -sum_k p_k ln p_k over the classes; xlogy(p, p) = p * log(p), and 0 where p == 0
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def _soft_gradient_solution(student_logits, teacher_logits, temperature):
    T, B = temperature, student_logits.shape[0]
    p_s = torch.softmax(student_logits / T, dim=1)
    p_t = torch.softmax(teacher_logits / T, dim=1)
    # d KL / d z_s = (p_s - p_t) / T (chain rule through z / T); times T^2; divided by B for batchmean
    return T * (p_s - p_t) / B


def _temperature_for_entropy_solution(logits, target):
    K = logits.shape[-1]
    if not 0 < target < math.log(K):
        raise ValueError(f"target {target} is outside (0, ln K = {math.log(K):.4f})")

    def H(T):
        p = torch.softmax(logits / T, dim=-1)
        return float(-torch.special.xlogy(p, p).sum())

    lo, hi = math.log(1e-3), math.log(1e4)  # bisect on log T: entropy grows with T
    for _ in range(100):
        mid = (lo + hi) / 2
        if H(math.exp(mid)) < target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def solution(name: str):
    """Print a reference solution: 'entropy', 'soft_gradient' or 'temperature_for_entropy'."""
    solutions({"entropy": _entropy_solution, "soft_gradient": _soft_gradient_solution,
               "temperature_for_entropy": _temperature_for_entropy_solution}, name)
