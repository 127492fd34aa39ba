"""Teacher-free KD (Yuan, Tay, Li, Wang, Feng, CVPR 2020, arXiv 1909.11723) and label smoothing.

Label smoothing is KD from a uniform teacher u = (1/K, ..., 1/K) at T = 1:

    L_LS = (1 - a) CE(q, p) + a CE(u, p) = (1 - a) CE(q, p) + a KL(u || p) + a ln K

The constant a ln K (the entropy of u) does not change the gradient, so `label_smoothing_as_kd` (KD from
all-zero teacher logits) and `F.cross_entropy(..., label_smoothing=a)` train identically.

Tf-KD self: train a model, freeze it, train a fresh copy of the same architecture with Hinton KD,

    L_self = (1 - a) CE(q, p) + a T^2 KL(p_t^T || p^T)        (`self_kd` returns a `KD` objective)

Tf-KD reg, the "virtual teacher": p_d(k) = c for the label, (1 - c)/(K - 1) elsewhere (c = 0.99).
- The paper softens both sides: L_reg = (1 - a) CE(q, p) + a T^2 KL(p_d^T || p^T). Softening a distribution
  at temperature T means softmax(log p_d / T) (log-probabilities are logits up to a constant); the T^2 is
  kdlab's convention, as for every soft term. This is `TfKDReg(form="paper")`.
- The public code (`loss_kd_regularization`) softens only the virtual teacher, and does it by treating its
  *probabilities* as logits: softmax(p_d / T), compared with the student's T = 1 softmax, no T^2. At T = 20,
  K = 100 that puts 0.0105 on the label and 0.0100 on every other class: almost uniform, so the code's
  "virtual teacher" is close to strong label smoothing. `TfKDReg(form="code")` reproduces it.

Reduction. The public Tf-KD and DR-KD code use `nn.KLDivLoss()`'s default `mean`, which divides by B*K
instead of B, and carries a `multiplier` m in its configs to make up for the hidden 1/K. kdlab uses
`batchmean`, so a published soft weight a with multiplier m becomes `batchmean_weight(a, m, K) = a * m / K`,
with K the number of classes of the dataset the setting was tuned on (CIFAR-100: K = 100).
"""
import math
import numbers

import torch
import torch.nn.functional as F

from kdlab.checks import check_labels, check_logits, check_temperature, check_weight
from .kd import KD, distillation_kl, float32

# Published Tf-KD self settings on CIFAR-100 (Tf-KD README): the soft weight a,
# the temperature T and the multiplier m of the public code's mean-reduced KL.
PUBLISHED_SELF = {
    "MobileNetV2": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
    "ShuffleNetV2": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
    "ResNet18": {"alpha": 0.95, "temperature": 6.0, "multiplier": 50.0},
}
PUBLISHED_NUM_CLASSES = 100  # the settings were tuned on CIFAR-100


def _check_alpha(alpha, name="alpha"):
    a = check_weight(alpha, name)
    if not 0.0 < a < 1.0:
        raise ValueError(f"{name} must be in (0, 1): the soft term's share of the loss, the label term gets "
                         f"1 - {name}; got {a} (Tf-KD uses 0.9-0.95)")
    return a


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def batchmean_weight(weight, multiplier, num_classes):
    """The kdlab (`batchmean`) weight of a soft term published with `nn.KLDivLoss()`'s default `mean`
    reduction and a `multiplier`: weight * multiplier / num_classes (mean = batchmean / K)."""
    weight = check_weight(weight, "weight")
    multiplier = check_weight(multiplier, "multiplier")
    return weight * multiplier / _check_num_classes(num_classes)


def self_kd(alpha, temperature, *, multiplier=None, num_classes=None):
    """Tf-KD self as a `KD` objective: w_ce = 1 - alpha, w_kd = alpha (batchmean, T^2).

    With `multiplier` (a published mean-reduction setting) also pass the `num_classes` it was tuned on:
    w_kd becomes alpha * multiplier / num_classes. Use it with a frozen, trained copy of the student."""
    alpha = _check_alpha(alpha)
    if (multiplier is None) != (num_classes is None):
        raise ValueError("pass multiplier and num_classes together (a published mean-reduction setting and the "
                         "number of classes it was tuned on), or neither (alpha is then a batchmean weight)")
    w_kd = alpha if multiplier is None else batchmean_weight(alpha, multiplier, num_classes)
    return KD(temperature=temperature, w_ce=round(1 - alpha, 15), w_kd=w_kd)  # 0.1, not 0.09999999999999998


def published_self(model_name, num_classes=PUBLISHED_NUM_CLASSES):
    """The published Tf-KD self setting for `model_name` ("MobileNetV2", "ShuffleNetV2", "ResNet18"),
    converted to batchmean for the `num_classes` it was tuned on (CIFAR-100 by default)."""
    if model_name not in PUBLISHED_SELF:
        raise KeyError(f"no published Tf-KD self setting for {model_name!r}; there are: "
                       f"{', '.join(PUBLISHED_SELF)}")
    s = PUBLISHED_SELF[model_name]
    return self_kd(s["alpha"], s["temperature"], multiplier=s["multiplier"], num_classes=num_classes)


def conversion_table(num_classes=PUBLISHED_NUM_CLASSES):
    """The published self settings with their batchmean weights, as a pandas DataFrame."""
    import pandas as pd
    rows = []
    for name, s in PUBLISHED_SELF.items():
        kd = published_self(name, num_classes)
        rows.append({"model": name, "alpha": s["alpha"], "T": s["temperature"], "multiplier": s["multiplier"],
                     "K": num_classes, "w_ce": kd.w_ce, "w_kd (batchmean)": kd.w_kd})
    return pd.DataFrame(rows).set_index("model")


def label_smoothing_as_kd(student_logits, labels, smoothing):
    """(1 - a) CE(q, p) + a KL(u || p): KD at T = 1 from a uniform teacher (all-zero logits).

    Equals `F.cross_entropy(student_logits, labels, label_smoothing=a)` minus the constant a ln K."""
    a = check_weight(smoothing, "smoothing")
    if not a < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {a}; 0.1 is the usual value")
    check_logits(student_logits, "student_logits")
    check_labels(labels, student_logits)
    student_logits = float32(student_logits)
    uniform = torch.zeros_like(student_logits)  # softmax(0) = 1/K for every class
    hard = F.cross_entropy(student_logits, labels.long())
    return (1 - a) * hard + a * distillation_kl(student_logits, uniform, 1.0)


def virtual_teacher(labels, num_classes, correct_prob=0.99, dtype=torch.float32):
    """Tf-KD's virtual teacher: probability `correct_prob` on the label, the rest spread evenly, shape (B, K)."""
    k = _check_num_classes(num_classes)
    c = check_weight(correct_prob, "correct_prob")
    if not 1 / k <= c < 1:
        raise ValueError(f"correct_prob must be in [1/K, 1) = [{1 / k:.3g}, 1) so that the label is the most likely "
                         f"class and log-probabilities stay finite; got {c} (Tf-KD uses 0.99)")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        raise ValueError("labels must be a 1-D integer tensor of class indices (torch.long)")
    # on the CPU only: on a GPU reading min and max would stop every step to wait for the device (and prevent
    # capturing it as a graph); fit has checked every label of the dataset before the first step
    if labels.device.type == "cpu" and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"labels span [{int(labels.min())}, {int(labels.max())}] but num_classes={k}: labels must "
                         f"be 0..{k - 1}")
    p = torch.full((labels.shape[0], k), (1 - c) / (k - 1), device=labels.device, dtype=dtype)
    return p.scatter_(1, labels.long().unsqueeze(1), c)


class TfKDReg:
    """Tf-KD reg: KD from the virtual teacher, no trained teacher at all (`needs_teacher = False`).

    form="paper": (1 - alpha) CE(q, p) + alpha T^2 KL(softmax(log p_d / T) || softmax(z / T)).
    form="code":  (1 - alpha) CE(q, p) + w KL(softmax(p_d / T) || softmax(z)), the public code's targets, with
                  w = alpha * multiplier / K (its mean reduction, converted).
    """

    needs_teacher = False

    def __init__(self, alpha=0.9, temperature=20.0, correct_prob=0.99, form="paper", multiplier=1.0):
        if form not in ("paper", "code"):
            raise ValueError(f"form must be 'paper' (both sides softened, T^2) or 'code' (the public code's "
                             f"targets), got {form!r}")
        self.alpha = _check_alpha(alpha)
        self.temperature = check_temperature(temperature)
        self.correct_prob = check_weight(correct_prob, "correct_prob")
        if not 0 < self.correct_prob < 1:
            raise ValueError(f"correct_prob must be in (0, 1) (and at least 1/K for K classes), got {correct_prob}; "
                             f"Tf-KD uses 0.99")
        self.form = form
        self.multiplier = check_weight(multiplier, "multiplier")

    def targets(self, labels, num_classes):
        """The distribution the soft term pulls the student towards, (B, K)."""
        p_d = virtual_teacher(labels, num_classes, self.correct_prob)
        logits = p_d.log() if self.form == "paper" else p_d  # the code treats probabilities as logits
        return F.softmax(logits / self.temperature, dim=1)

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        check_logits(student_logits, "student_logits")
        check_labels(labels, student_logits)
        student_logits = float32(student_logits)
        k = student_logits.shape[1]
        p_d = virtual_teacher(labels, k, self.correct_prob, dtype=student_logits.dtype)
        hard = F.cross_entropy(student_logits, labels.long())
        if self.form == "paper":
            soft = self.alpha * distillation_kl(student_logits, p_d.log(), self.temperature)
        else:  # softmax(p_d / T) against the student's T = 1 softmax: pass p_d / T as logits, soften at T = 1
            soft = self.alpha * self.multiplier / k * distillation_kl(student_logits, p_d / self.temperature, 1.0)
        return (1 - self.alpha) * hard + soft

    def __repr__(self):
        extra = f", multiplier={self.multiplier!r}" if self.form == "code" else ""
        return (f"TfKDReg(alpha={self.alpha!r}, temperature={self.temperature!r}, "
                f"correct_prob={self.correct_prob!r}, form={self.form!r}{extra})")


def uniform_entropy(num_classes):
    """ln K: the entropy of the uniform distribution, the constant between label smoothing and its KD form."""
    return math.log(_check_num_classes(num_classes))
