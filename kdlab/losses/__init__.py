"""kdlab's distillation losses, one per module.

Conventions every loss here follows:
- The teacher is the target: KL(p_t || p_s), with the teacher's logits detached inside the loss (the
  student's loss does not train the teacher; compute them with the teacher in eval() under no_grad()).
  `F.kl_div` takes the student's log-probabilities as input and the teacher's distribution as target.
- `batchmean` everywhere: sum over classes, mean over the batch. Code that uses `nn.KLDivLoss()`'s default
  mean also divides by the number of classes K; kdlab converts such published settings instead.
- T^2 multiplies the soft (KL) term only, never the hard-label CE, which uses the ordinary T=1 softmax.
  It keeps the soft term's gradient, which shrinks like 1/T^2, on the same scale for every T.

Modules: `kd` (Hinton KD), `tfkd` (label smoothing, Tf-KD self and reg, published-setting conversion),
`drkd` (DR-KD rectification), `ka` (Knowledge Adjustment: probability shift, smoothed one-hot), `dtd`
(Dynamic Temperature Distillation: one temperature per sample).

Objective objects (`KD`, `CrossEntropy`, `TfKDReg`, `DRKD`, `KA`, `DTD`) share one call signature,
`loss_fn(student_logits, teacher_logits, labels, index=None)`, and say whether they need a teacher
(`needs_teacher`).
"""
from kdlab.checks import validate_temperature_values
from .drkd import DRKD, rectified_fraction, rectify, teacher_wrong
from .dtd import DTD, cwsm_weight, dynamic_temperature, flsw_weight
from .ka import KA, adjusted_targets, probability_shift, smoothed_one_hot
from .kd import KD, CrossEntropy, distillation_kl, kd_loss, soft_targets
from .tfkd import (TfKDReg, batchmean_weight, label_smoothing_as_kd, published_self, self_kd,
                   virtual_teacher)

__all__ = ["KD", "CrossEntropy", "distillation_kl", "kd_loss", "soft_targets",
           "validate_temperature_values",
           "TfKDReg", "batchmean_weight", "label_smoothing_as_kd", "published_self", "self_kd", "virtual_teacher",
           "DRKD", "rectified_fraction", "rectify", "teacher_wrong",
           "KA", "adjusted_targets", "probability_shift", "smoothed_one_hot",
           "DTD", "cwsm_weight", "dynamic_temperature", "flsw_weight"]
