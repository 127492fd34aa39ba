"""DR-KD, Dynamic Rectification KD (Amik, Tehrani, Wen et al., arXiv 2201.11319, 2022).

A self-teacher (a trained, frozen copy of the student's architecture, as in Tf-KD self) is sometimes wrong.
Before distilling, every wrong prediction is fixed with the label:

    j = argmax_k z_t[k];  if j != y:  swap z_t[j] and z_t[y]                        (`rectify`)
    L = (1 - a) CE(q, p) + a T^2 KL(softmax(rectify(z_t) / T) || softmax(z_s / T))   (`DRKD`)

Softmax is permutation-equivariant, so swapping two logits swaps the two probabilities at every
temperature: the label becomes the argmax, and every other class keeps exactly the teacher's value (its
"dark knowledge" about the other classes survives). "Dynamic": the rule runs on the teacher's logits of
each augmented batch inside the loss, never on precomputed predictions.

Choices where the paper and its public code leave room:
- batchmean KL with T^2, as every kdlab loss; the public code's `mean` reduction and `multiplier` convert as
  for Tf-KD (`kdlab.losses.tfkd.batchmean_weight`). DR-KD uses Tf-KD self's hyperparameters.
- Ties: `argmax` returns the first maximal class. If the label ties the maximum, the swap exchanges two
  equal values (nothing changes) and the label stays *a* maximum, not necessarily the first.
- The objective reports `rectified`, the fraction of the batch whose teacher was wrong; `kdlab.train.fit`
  logs its per-epoch mean as `train_rectified`.
- Knowledge Adjustment's "probability shift" (Wen, Lai, Qian 2019) is the same swap on an external
  teacher's probabilities: the function is shared.
"""
import numbers

import torch
import torch.nn.functional as F

from kdlab.checks import check_labels, check_logits, check_logits_pair, check_temperature, check_weights
from .kd import distillation_kl, float32


def teacher_wrong(teacher_logits, labels):
    """Boolean (B,): where the teacher's top class is not the label."""
    check_logits(teacher_logits, "teacher_logits")
    check_labels(labels, teacher_logits)
    return teacher_logits.argmax(dim=1) != labels


def rectify(teacher_logits, labels):
    """Swap the teacher's top logit with the label's logit in every row where the top class is wrong.

    Returns a new tensor (the input is not modified); rows where the teacher is right are unchanged. Works on
    logits or on probabilities alike (a swap commutes with softmax). Vectorised: no Python loop over rows."""
    check_logits(teacher_logits, "teacher_logits")
    check_labels(labels, teacher_logits)
    y = labels.long().unsqueeze(1)
    top = teacher_logits.argmax(dim=1, keepdim=True)
    top_value = teacher_logits.gather(1, top)
    label_value = teacher_logits.gather(1, y)
    out = teacher_logits.detach().clone()
    # For a correct row top == y and both writes put back the same value: no mask needed.
    out.scatter_(1, top, label_value.detach())
    out.scatter_(1, y, top_value.detach())
    return out


class DRKD:
    """DR-KD objective: Hinton KD from the rectified self-teacher, plus the fraction rectified.

    Returns `(loss, {"rectified": fraction})`. Defaults: kdlab's batchmean form of Tf-KD self's published
    ResNet18 setting (alpha 0.95, T 6, multiplier 50 on CIFAR-100: w_ce 0.05, w_kd 0.475). The hard-label
    term can be label-smoothed (`label_smoothing`), which leaves the rectification untouched.
    """

    needs_teacher = True

    def __init__(self, temperature=6.0, w_ce=0.05, w_kd=0.475, label_smoothing=0.0):
        self.temperature = check_temperature(temperature)
        self.w_ce, self.w_kd = check_weights(w_ce, w_kd)
        ls = label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not 0.0 <= float(ls) < 1.0:
            raise ValueError(f"label_smoothing must be a number in [0, 1), got {ls!r}")
        self.label_smoothing = float(ls)

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        check_logits_pair(student_logits, teacher_logits)
        student_logits, teacher_logits = float32(student_logits, teacher_logits)
        wrong = teacher_wrong(teacher_logits, labels)
        target = rectify(teacher_logits, labels)
        hard = F.cross_entropy(student_logits, labels.long(), label_smoothing=self.label_smoothing)
        soft = distillation_kl(student_logits, target, self.temperature)
        return self.w_ce * hard + self.w_kd * soft, {"rectified": wrong.float().mean()}

    def __repr__(self):
        ls = f", label_smoothing={self.label_smoothing!r}" if self.label_smoothing else ""
        return f"DRKD(temperature={self.temperature!r}, w_ce={self.w_ce!r}, w_kd={self.w_kd!r}{ls})"


def rectified_fraction(teacher_logits, labels):
    """The fraction of samples whose teacher prediction `rectify` changes (a Python float)."""
    with torch.no_grad():
        return teacher_wrong(teacher_logits, labels).float().mean().item()
