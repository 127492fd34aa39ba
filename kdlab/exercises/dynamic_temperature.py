"""Exercises of notebook 06 (Dynamic Temperature Distillation).

1. `check_dynamic_temperature(fn)`: fn(weights, t0, beta) -> T_x = clamp(t0 + beta * (mean(w) - w_x), 1, 4 t0),
   without gradient.
2. `check_flsw_weight(fn)`: fn(student_logits, teacher_logits, gamma) -> (1 - cos(z_s, z_t))^gamma per row,
   without gradient.

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import torch
import torch.nn.functional as F

from kdlab.exercises import fail, passed, run_learner, solutions
from kdlab.losses import dynamic_temperature, flsw_weight


PER_SAMPLE = "return a tensor with one value per sample"


def check_dynamic_temperature(fn):
    """fn(weights, t0, beta) -> clamped per-sample temperatures (B,), no gradient."""
    g = torch.Generator().manual_seed(7)
    cases = [(torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64), 4.0, 1.0),          # no clamping
             (torch.tensor([0.0] + [7.0] * 9, dtype=torch.float64), 2.0, 1.0),             # the easy one clamps at 4 t0
             (torch.tensor([1.0, 1.0, 1.0, 9.0], dtype=torch.float64), 4.0, 2.0),          # the hard one clamps at 1
             (torch.rand(32, generator=g, dtype=torch.float64) * 3, 8.0, 1.5)]
    outputs = []
    for w, t0, beta in cases:
        w_in = w.clone().requires_grad_(True)
        out = run_learner(fn, w_in, t0, beta, hint=PER_SAMPLE)
        if out.requires_grad:
            fail("your temperatures carry a gradient: the loss could then lower itself by changing T instead of the "
                 "prediction. Compute them under torch.no_grad() or from weights.detach()")
        got = out.detach().double()
        if got.shape != w.shape:
            fail(f"shape {tuple(got.shape)}, expected {tuple(w.shape)}: one temperature per sample")
        outputs.append(got)

    def matches(rule):  # a rule explains the answer only if it gives it on every case
        return all(torch.allclose(got, rule(w, t0, beta).double(), atol=1e-6)
                   for got, (w, t0, beta) in zip(outputs, cases))

    def raw(w, t0, beta):
        return t0 + beta * (w.mean() - w)

    if matches(lambda w, t0, beta: dynamic_temperature(w, t0, beta)):
        passed("dynamic temperature: batch mean T0 before clamping, sign, clamp to [1, 4 T0], no gradient (4 cases)")
        return
    for rule, msg in (
            (lambda w, t0, b: (t0 + b * (w - w.mean())).clamp(1, 4 * t0),
             "the sign is flipped: harder samples (larger w) must get a *lower* temperature, T0 + beta (mean - w)"),
            (lambda w, t0, b: (t0 - b * w).clamp(1, 4 * t0),
             "the batch mean is missing: T0 + beta (mean(w) - w_x) keeps the batch's average temperature at T0"),
            (raw, "no clamp: with large weights T_x goes below 1, even below 0. Clamp to [1, 4 T0]"),
            (lambda w, t0, b: raw(w, t0, b).clamp(min=1), "the upper clamp is missing: clamp to [1, 4 T0]"),
            (lambda w, t0, b: raw(w, t0, b).clamp(0, 4 * t0),
             "clamp to at least 1, not 0: a temperature of 0 divides by zero"),
            (lambda w, t0, b: raw(w, t0, b).clamp(min=0),
             "clamp to [1, 4 T0]: the lower bound is 1, not 0 (a temperature of 0 divides by zero), and the upper "
             "bound is missing"),
            (lambda w, t0, b: raw(w, t0, b).clamp(max=4 * t0),
             "the lower clamp is missing: temperatures below 1 (or negative) must be clamped to 1")):
        if matches(rule):
            fail(msg)
    for got, (w, t0, beta) in zip(outputs, cases):
        want = dynamic_temperature(w, t0, beta).double()
        if not torch.allclose(got, want, atol=1e-6):
            fail(f"for weights {w.tolist()[:5]}..., t0={t0}, beta={beta}: expected {want.tolist()[:5]}..., got "
                 f"{got.tolist()[:5]}...")


def check_flsw_weight(fn):
    """fn(student_logits, teacher_logits, gamma) -> (1 - cos)^gamma per row, no gradient."""
    g = torch.Generator().manual_seed(8)
    zt = 3 * torch.randn(16, 10, generator=g, dtype=torch.float64)
    zs = torch.cat([zt[:4] * 2.0, -zt[4:6], 3 * torch.randn(10, 10, generator=g, dtype=torch.float64)])
    for gamma in (2.0, 1.0, 0.5):
        s_in = zs.clone().requires_grad_(True)
        out = run_learner(fn, s_in, zt.clone(), gamma, hint=PER_SAMPLE)
        if out.requires_grad:
            fail("your weights carry a gradient: compute them under torch.no_grad() (they only set temperatures)")
        got, want = out.detach().double(), flsw_weight(zs, zt, gamma).double()
        if got.shape != want.shape:
            fail(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}: one weight per sample")
        if torch.allclose(got, want, atol=1e-6):
            continue
        cos = F.cosine_similarity(zs, zt, dim=1)
        cos_p = F.cosine_similarity(zs.softmax(1), zt.softmax(1), dim=1)
        for wrong, msg in (
                ((1 - cos_p).clamp(min=0) ** gamma, "you took the cosine of probabilities: FLSW uses the logit "
                                                   "vectors (probabilities are all positive, so their cosine is "
                                                   "never negative and the weight never reaches 2^gamma)"),
                (1 - cos, "the exponent gamma is missing"),
                (cos.clamp(min=0) ** gamma, "that is cos^gamma: the weight must be (1 - cos)^gamma, 0 when the "
                                           "vectors point the same way"),
                ((1 - cos) * gamma, "gamma is an exponent, not a factor")):
            if torch.allclose(got, wrong, atol=1e-6):
                fail(msg)
        i = int((got - want).abs().argmax())  # the row that is furthest off says the most
        fail(f"for gamma={gamma}, row {i} (cos {float(F.cosine_similarity(zs[i:i + 1], zt[i:i + 1])):.3f}): expected "
             f"{float(want[i]):.4f}, got {float(got[i]):.4f}")
    passed("FLSW weight: (1 - cos of the logits)^gamma, 0 for parallel and 2^gamma for opposite rows, no gradient")


def _dynamic_temperature_solution(weights, t0, beta):
    with torch.no_grad():
        w = weights.detach()
        return (t0 + beta * (w.mean() - w)).clamp(1.0, 4 * t0)


def _flsw_weight_solution(student_logits, teacher_logits, gamma):
    with torch.no_grad():
        cos = F.cosine_similarity(student_logits, teacher_logits, dim=1)
        return (1 - cos).clamp(min=0) ** gamma


def solution(name: str):
    """Print a reference solution: 'dynamic_temperature' or 'flsw_weight'."""
    solutions({"dynamic_temperature": _dynamic_temperature_solution, "flsw_weight": _flsw_weight_solution}, name)
