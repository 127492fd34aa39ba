"""Student-friendly teacher networks, SFTN (Park, Cha, Jeong, Kim, Han, "Learning Student-Friendly Teacher Networks
for Knowledge Distillation", NeurIPS 2021, arXiv 2102.07650; no official code was found).

The teacher is trained *with* its future student in mind: after teacher stage i (i < N) a student branch is
attached, a transform layer to the student's stage-i shape followed by fresh copies of student stages
i+1..N and the student's classifier. Training minimises

    L = lambda_T CE(z_T, y) + lambda_KL sum_i tau^2 KL(p_T^tau || p_Ri^tau) + lambda_CE sum_i CE(z_Ri, y)

with the teacher NOT detached: the KL pulls the teacher towards what student-shaped branches can follow, which
is what makes it student-friendly. Afterwards the branches are dropped (`export_teacher`) and the plain teacher
is distilled into a freshly initialised student with any KD method.

Choices (the loss weights are from an unofficial implementation, not verified against the paper):
- lambda_T = 1, lambda_KL = 3, lambda_CE = 1, tau = 1; the tau^2 factor follows kdlab's KD convention (it is 1
  at tau = 1). KL uses `batchmean`, summed over the N - 1 branches, not averaged.
- Transform layer: a 1x1 conv (3x3 with stride s when the teacher's feature map is s times larger, e.g.
  resnet32x4 -> ShuffleV2), BatchNorm sized for the *student's* channels, ReLU.
- `SFTN.forward` returns the teacher's logits, so accuracy, evaluation and checkpoints see the teacher; in
  training mode the same pass also runs the branches and leaves their logits in `branch_logits` for `SFTNLoss`.
  In eval mode only the teacher runs.
"""
import copy

import torch.nn as nn
import torch.nn.functional as F

from kdlab.checks import check_labels, check_temperature, check_weight
from kdlab.models.base import StagedNet


stage_shapes = StagedNet.stage_shapes  # stage_shapes(model, image_size=32) -> [(C, H, W) per stage]


def transform_stride(teacher_shape, student_shape) -> int:
    """The stride that brings a teacher feature map (C, H, W) to the student's spatial size; ValueError if none."""
    (_, ht, wt), (_, hs, ws) = teacher_shape, student_shape
    if ht % hs or wt % ws or ht // hs != wt // ws:
        raise ValueError(f"a teacher feature map of {ht}x{wt} cannot be brought to the student's {hs}x{ws} by a "
                         f"strided convolution (the teacher's must be an integer multiple of the student's); pick "
                         f"a pair whose stages run at compatible resolutions (see the table in kdlab.models)")
    return ht // hs


def transform_layer(teacher_shape, student_shape) -> nn.Sequential:
    """Conv + BN + ReLU from a teacher stage output (C, H, W) to a student stage output's shape."""
    s = transform_stride(teacher_shape, student_shape)
    ct, cs = teacher_shape[0], student_shape[0]
    conv = nn.Conv2d(ct, cs, 1, bias=False) if s == 1 else nn.Conv2d(ct, cs, 3, stride=s, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cs), nn.ReLU(inplace=True))  # BN on the output: the student's channels


class Branch(nn.Module):
    """transform -> copies of student stages i+1..N -> copy of the student's head."""

    def __init__(self, transform: nn.Module, stages: list[nn.Module], head: nn.Module):
        super().__init__()
        self.transform = transform
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, feature):
        x = self.transform(feature)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def branch_kl(teacher_logits, branch_logits, tau=1.0):
    """tau^2 KL(p_T^tau || p_R^tau), batchmean, with gradient into BOTH sides: unlike a KD loss, the teacher is
    pulled towards its branch (and the branch towards the teacher)."""
    log_p_t = F.log_softmax(teacher_logits / tau, dim=1)
    log_p_r = F.log_softmax(branch_logits / tau, dim=1)
    return tau ** 2 * F.kl_div(log_p_r, log_p_t, reduction="batchmean", log_target=True)


class SFTN(nn.Module):
    """A teacher with student branches after each of its stages but the last.

        sftn = SFTN(create("resnet32x4", 100), create("resnet8x4", 100))
        fit(sftn, data, recipe, objective=SFTNLoss(sftn))
        teacher = sftn.export_teacher()      # a plain resnet32x4, branches dropped
    """

    def __init__(self, teacher: StagedNet, student: StagedNet, image_size: int = 32):
        super().__init__()
        for role, m in (("teacher", teacher), ("student", student)):
            if not isinstance(m, StagedNet):
                raise TypeError(f"the {role} must be a kdlab zoo model (a StagedNet from kdlab.models.create), got "
                                f"{type(m).__name__}")
        if teacher.num_classes != student.num_classes:
            raise ValueError(f"teacher has {teacher.num_classes} classes but the student {student.num_classes}; "
                             f"create both with the dataset's number of classes")
        t_shapes, s_shapes = teacher.stage_shapes(image_size), student.stage_shapes(image_size)
        if len(t_shapes) != len(s_shapes):
            raise ValueError(f"SFTN needs the same number of stages: {teacher.arch} has {len(t_shapes)}, "
                             f"{student.arch} has {len(s_shapes)}; pair models of the same family (resnet, wrn) "
                             f"or with as many stages (see the table in kdlab.models)")
        self.teacher = teacher
        self.arch = f"sftn[{teacher.arch}->{student.arch}]"
        self.student_arch = student.arch
        self.num_classes = teacher.num_classes
        # fresh copies for every branch: branches must not share weights with each other or with `student`
        self.branches = nn.ModuleList(
            Branch(transform_layer(t_shapes[i], s_shapes[i]),
                   [copy.deepcopy(st) for st in student.stages[i + 1:]], copy.deepcopy(student.head))
            for i in range(len(t_shapes) - 1))
        self.branch_logits = None

    def forward(self, x):
        if not self.training:
            self.branch_logits = None
            return self.teacher(x)
        feats, logits = self.teacher.forward_features(x)
        # not detached: the branch losses must reach the teacher's stages (the point of SFTN)
        self.branch_logits = [b(f) for b, f in zip(self.branches, feats[:-1])]
        return logits

    def export_teacher(self) -> StagedNet:
        """A copy of the teacher alone, in eval mode: the plain zoo model (same state-dict keys), usable by any
        KD method; the branches are dropped."""
        return copy.deepcopy(self.teacher).eval()

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, branches={len(self.branches)}"


class SFTNLoss:
    """The SFTN training objective for `kdlab.train.fit(sftn, ..., objective=SFTNLoss(sftn))`.

    Reads the branch logits the model left from the same forward pass; returns (loss, stats) with the three
    terms and the branches' mean accuracy on the batch (logged by `fit` as train_<name>)."""

    needs_teacher = False

    def __init__(self, model: SFTN, tau=1.0, lambda_t=1.0, lambda_kl=3.0, lambda_ce=1.0):
        if not isinstance(model, SFTN):
            raise TypeError(f"SFTNLoss needs the SFTN model it trains (it reads its branch outputs), got "
                            f"{type(model).__name__}")
        self.model = model
        self._settings(tau, lambda_t, lambda_kl, lambda_ce)

    @staticmethod
    def describe(tau=1.0, lambda_t=1.0, lambda_kl=3.0, lambda_ce=1.0) -> str:
        """The repr an SFTNLoss with these settings has (validated), without a model: for cache keys."""
        loss = SFTNLoss.__new__(SFTNLoss)
        loss._settings(tau, lambda_t, lambda_kl, lambda_ce)
        return repr(loss)

    def _settings(self, tau, lambda_t, lambda_kl, lambda_ce):
        self.tau = check_temperature(tau, "tau")
        self.lambda_t, self.lambda_kl, self.lambda_ce = (check_weight(w, n) for w, n in
                                                         ((lambda_t, "lambda_t"), (lambda_kl, "lambda_kl"),
                                                          (lambda_ce, "lambda_ce")))

    def __call__(self, teacher_logits, unused_teacher, labels, index=None):
        branches = self.model.branch_logits
        if branches is None:
            raise RuntimeError("no branch outputs: the SFTN model must run a forward pass in train mode (model.train()) "
                               "just before the loss, as kdlab.train.fit does")
        if any(b.shape != teacher_logits.shape for b in branches):
            raise ValueError(f"branch logits {[tuple(b.shape) for b in branches]} do not match the teacher's "
                             f"{tuple(teacher_logits.shape)}: the loss must follow the forward pass of the same batch")
        check_labels(labels, teacher_logits)
        t = self.tau
        z_t = teacher_logits.float()
        ce_t = F.cross_entropy(z_t, labels.long())
        kl = z_t.new_zeros(())
        ce_b = z_t.new_zeros(())
        correct = z_t.new_zeros(())
        for z_b in branches:
            z_b = z_b.float()
            kl = kl + branch_kl(z_t, z_b, t)
            ce_b = ce_b + F.cross_entropy(z_b, labels.long())
            correct = correct + (z_b.argmax(1) == labels).float().mean()
        self.model.branch_logits = None  # a stale pass must not be read twice
        loss = self.lambda_t * ce_t + self.lambda_kl * kl + self.lambda_ce * ce_b
        stats = {"teacher_ce": ce_t.detach(), "branch_kl": kl.detach(), "branch_ce": ce_b.detach(),
                 "branch_acc": correct.detach() / len(branches)}
        return loss, stats

    def __repr__(self):
        return (f"SFTNLoss(tau={self.tau!r}, lambda_t={self.lambda_t!r}, lambda_kl={self.lambda_kl!r}, "
                f"lambda_ce={self.lambda_ce!r})")
