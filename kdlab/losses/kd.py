"""Hinton knowledge distillation (Hinton, Vinyals, Dean 2015, arXiv 1503.02531).

    L = w_ce * CE(q, p_s^1) + w_kd * T^2 * KL(p_t^T || p_s^T),    p^T = softmax(z / T)

Conventions (shared by every kdlab loss):
- The teacher is the target. KL(p_t || p_s) is taken with the teacher's distribution first; the teacher's
  logits are detached, so this loss never sends gradient into the teacher.
- `F.kl_div(input, target)` takes the student's log-probabilities as `input` and the teacher's as `target`
  (here in log space too, `log_target=True`, which avoids log(0) when a probability underflows).
- `batchmean`: sum over classes, mean over the batch (as RepDistiller, mdistiller, torchdistill). Plain
  `reduction='mean'` would also divide by the number of classes K (a hidden 1/K on the KD weight).
- T^2 multiplies the KL term only, not the hard-label CE: the soft term's gradient shrinks like 1/T^2, and
  T^2 keeps its weight relative to the CE independent of T.
- The hard-label CE uses the student's ordinary T=1 softmax.
"""
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab.checks import (check_labels, check_logits, check_logits_pair, check_temperature,
                        check_temperature_tensor, check_weights)


def float32(*tensors):
    """bf16 or fp16 logits as float32 (others unchanged): at T = 20 a bf16 softmax and KL are off by tens of
    percent. Autograd flows through the cast, so the student's gradient still reaches a bf16 model."""
    out = tuple(t.float() if isinstance(t, Tensor) and t.dtype in (torch.bfloat16, torch.float16) else t
                for t in tensors)
    return out if len(out) > 1 else out[0]


def soft_targets(logits, temperature=1.0):
    """softmax(logits / T) over the last dim: the "softened" distribution; higher T, flatter."""
    return F.softmax(logits / check_temperature(temperature), dim=-1)


def distillation_kl(student_logits, teacher_logits, temperature, *, t_squared=True):
    """T^2 * KL(p_t^T || p_s^T): summed over classes, averaged over the batch (`batchmean`).

    `temperature` is a positive Python number, or a tensor of shape (B,) with one temperature per sample
    (as in Dynamic Temperature Distillation): row i is then softened by its own T_i and weighted by T_i^2
    before the batch mean. Only the tensor's shape is checked here (reading its values would sync with the
    GPU); call `validate_temperature_values` yourself when you need to. Gradient flows into a tensor
    temperature if it requires grad: compute it under `torch.no_grad()` if it should not be learnt.

    With `t_squared=False` the plain KL is returned (its gradient shrinks like 1/T^2).
    """
    check_logits_pair(student_logits, teacher_logits)
    if isinstance(temperature, Tensor):
        check_temperature_tensor(temperature, student_logits)
        t = temperature.unsqueeze(1)  # (B, 1): broadcasts one temperature over each row's classes
    else:
        t = check_temperature(temperature)
    student_logits, teacher_logits = float32(student_logits, teacher_logits)
    if isinstance(t, Tensor):
        t = float32(t)
    # The teacher is the target, a constant: the student's loss must not train the teacher.
    teacher_logits = teacher_logits.detach()
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    # pointwise p_t * (log p_t - log p_s), shape (B, K); a class the teacher gives probability exactly 0 (a logit
    # of -inf, e.g. a masked class) contributes 0, not 0 * inf = NaN
    kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True)
    kl = torch.where(torch.isneginf(log_p_t), torch.zeros((), dtype=kl.dtype, device=kl.device), kl)
    if t_squared:
        kl = kl * t ** 2
    return kl.sum() / student_logits.shape[0]  # batchmean: sum over classes, mean over samples


def kd_loss(student_logits, teacher_logits, labels, *, temperature=4.0, w_ce=0.1, w_kd=0.9):
    """Hinton KD: w_ce * CE(labels, softmax(z_s)) + w_kd * T^2 * KL(p_t^T || p_s^T), batchmean.

    Defaults are RepDistiller's CIFAR-100 setting (T=4, w_ce=0.1, w_kd=0.9). See the module docstring
    for the conventions.
    """
    w_ce, w_kd = check_weights(w_ce, w_kd)
    check_logits_pair(student_logits, teacher_logits)
    check_labels(labels, student_logits)
    student_logits, teacher_logits = float32(student_logits, teacher_logits)  # losses in fp32, always
    hard = F.cross_entropy(student_logits, labels.long())  # ordinary T=1 softmax
    soft = distillation_kl(student_logits, teacher_logits, temperature)
    return w_ce * hard + w_kd * soft


class KD:
    """Hinton KD as an objective object: `KD(T, w_ce, w_kd)(student_logits, teacher_logits, labels)`.

    All objectives share the call signature `(student_logits, teacher_logits, labels, index=None)`;
    `index` (dataset indices, used by some other methods) is ignored here.
    """

    needs_teacher = True

    def __init__(self, temperature=4.0, w_ce=0.1, w_kd=0.9):
        # validate once here, so a bad setting fails before training starts
        self.temperature = check_temperature(temperature)
        self.w_ce, self.w_kd = check_weights(w_ce, w_kd)

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        return kd_loss(student_logits, teacher_logits, labels,
                       temperature=self.temperature, w_ce=self.w_ce, w_kd=self.w_kd)

    def __repr__(self):
        return f"KD(temperature={self.temperature!r}, w_ce={self.w_ce!r}, w_kd={self.w_kd!r})"


class CrossEntropy:
    """The no-teacher baseline: cross-entropy on the hard labels (optionally label-smoothed).

    Same call signature as the KD objectives; `teacher_logits` and `index` are ignored (may be None).
    """

    needs_teacher = False

    def __init__(self, label_smoothing=0.0):
        ls = label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not (0.0 <= float(ls) < 1.0):
            raise ValueError(f"label_smoothing must be a number in [0, 1), got {ls!r}; "
                             f"0 is plain cross-entropy, 0.1 is the usual smoothing")
        self.label_smoothing = float(ls)

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        check_logits(student_logits, "student_logits")
        check_labels(labels, student_logits)
        return F.cross_entropy(float32(student_logits), labels.long(), label_smoothing=self.label_smoothing)

    def __repr__(self):
        return f"CrossEntropy(label_smoothing={self.label_smoothing!r})"
