"""Exercises of notebook 07 (student-friendly teachers).

1. `check_branch_kl(fn)`: fn(teacher_logits, branch_logits, tau) -> tau^2 KL(p_T^tau || p_R^tau), batchmean, with
   gradient into both arguments (`kdlab.sftn.branch_kl`).
2. `check_transform_stride(fn)`: fn(teacher_shape, student_shape) -> the integer stride from the teacher's feature
   map to the student's, ValueError where there is none (`kdlab.sftn.transform_stride`).

A wrong answer is compared with the classic mistakes; the message names the one it matches.
"""
import warnings

import torch
import torch.nn.functional as F

from kdlab.exercises import fail, passed, run_learner, solutions
from kdlab.sftn import branch_kl, transform_stride


def check_branch_kl(fn):
    """fn(teacher_logits, branch_logits, tau) -> scalar loss with gradient into both inputs."""
    g = torch.Generator().manual_seed(9)
    for tau in (1.0, 3.0):
        zt = (3 * torch.randn(16, 10, generator=g, dtype=torch.float64)).requires_grad_(True)
        zr = (3 * torch.randn(16, 10, generator=g, dtype=torch.float64)).requires_grad_(True)
        scalar = "return a scalar tensor (summed over classes, averaged over the batch)"
        out = run_learner(fn, zt, zr, tau, hint=scalar)
        if out.dim() != 0:
            fail(scalar)
        want = branch_kl(zt.detach(), zr.detach(), tau)
        got = float(out.detach())
        a, b = zt.detach(), zr.detach()
        lt, lr = F.log_softmax(a / tau, 1), F.log_softmax(b / tau, 1)
        if abs(got - float(want)) > 1e-6 * max(1.0, float(want)):
            with warnings.catch_warnings():  # torch warns that 'mean' will mean 'batchmean' in its next release
                warnings.simplefilter("ignore", UserWarning)
                mean_reduced = tau ** 2 * F.kl_div(lr, lt, reduction="mean", log_target=True)
            for value, msg in (
                    (tau ** 2 * F.kl_div(lt, lr, reduction="batchmean", log_target=True),
                     "the arguments are swapped: that is KL(p_R || p_T). The teacher is the target, as in KD: "
                     "F.kl_div(log p_R, log p_T, log_target=True)"),
                    (F.kl_div(lr, lt, reduction="batchmean", log_target=True), "the tau^2 factor is missing"),
                    (mean_reduced, "reduction='mean' also divides by the number of classes; use 'batchmean'")):
                if abs(got - float(value)) < 1e-6 * max(1.0, float(value)):
                    fail(msg)
            fail(f"for tau={tau} expected {float(want):.6f}, got {got:.6f}")
        if not out.requires_grad:
            fail("your loss carries no gradient at all")
        gt, gr = torch.autograd.grad(out, (zt, zr), allow_unused=True)
        if gt is None or float(gt.abs().sum()) == 0:
            fail("no gradient reaches the teacher's logits: in SFTN the teacher is NOT detached (that is how the "
                 "branches shape it). Remove the .detach() / no_grad on the teacher side")
        if gr is None or float(gr.abs().sum()) == 0:
            fail("no gradient reaches the branch's logits: the branch must learn from the teacher")
    passed("branch KL: tau^2 KL(p_T || p_R), batchmean, gradient into teacher and branch (tau = 1 and 3)")


def check_transform_stride(fn):
    """fn(teacher_shape, student_shape) -> int stride, or ValueError."""
    for t, s in (((64, 32, 32), (16, 32, 32)), ((256, 32, 32), (116, 16, 16)), ((128, 16, 16), (232, 8, 8)),
                 ((64, 32, 32), (24, 8, 8))):
        try:
            got = fn(t, s)
        except ValueError:
            fail(f"{t} -> {s} has a stride ({transform_stride(t, s)}): raise ValueError only when none exists")
        except Exception as e:
            fail(f"your function raised {type(e).__name__}: {e}")
        want = transform_stride(t, s)
        if got != want:
            if got == 1 / want:
                fail("the stride is the teacher's size divided by the student's (the teacher's map is larger)")
            if got == t[0] // max(1, s[0]):
                fail("the stride comes from the spatial sizes (H, W), not the channels")
            fail(f"{t} -> {s}: expected stride {want}, got {got}")
    for t, s in (((256, 16, 16), (64, 32, 32)), ((64, 32, 32), (16, 12, 12)), ((64, 32, 16), (16, 16, 16))):
        try:
            got = fn(t, s)
        except ValueError:
            continue
        except Exception as e:
            fail(f"for {t} -> {s} raise ValueError, not {type(e).__name__}")
        fail(f"{t} -> {s} has no integer stride (a smaller teacher map, a non-integer ratio, or different ratios for "
             f"H and W): raise ValueError instead of returning {got!r}")
    passed("transform stride: 1, 2 and 4 found, three impossible pairs refused")


def _branch_kl_solution(teacher_logits, branch_logits, tau):
    log_p_t = F.log_softmax(teacher_logits / tau, dim=1)  # no detach: the teacher learns from this term too
    log_p_r = F.log_softmax(branch_logits / tau, dim=1)
    return tau ** 2 * F.kl_div(log_p_r, log_p_t, reduction="batchmean", log_target=True)


def _transform_stride_solution(teacher_shape, student_shape):
    (_, ht, wt), (_, hs, ws) = teacher_shape, student_shape
    if ht % hs or wt % ws or ht // hs != wt // ws:
        raise ValueError(f"no integer stride from {ht}x{wt} to {hs}x{ws}")
    return ht // hs


def solution(name: str):
    """Print a reference solution: 'branch_kl' or 'transform_stride'."""
    solutions({"branch_kl": _branch_kl_solution, "transform_stride": _transform_stride_solution}, name)
