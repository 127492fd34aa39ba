"""Dynamic Temperature Distillation, DTD (Wen, Lai, Qian, "Preparing Lessons", arXiv 1911.07471, 2019).

One temperature per sample, computed without gradient from a "hardness" weight w_x:

    T_x = T0 + beta * (mean_batch(w) - w_x)         (`dynamic_temperature`)

so the batch mean of T_x is T0 (before clamping) and harder samples (larger w) get a lower, sharper T.
Two weights:
- FLSW: w_x = (1 - cos(z_s, z_t))^gamma on the logit vectors (`flsw_weight`); cos is in [-1, 1], so w is
  in [0, 2^gamma] and T_x stays within T0 +- beta * 2^gamma.
- CWSM: w_x = 1 / (max_k softmax(z_s)_k + 1e-3) (`cwsm_weight`): the student's own confidence, in
  [1/1.001, K/(1 + 1e-3 K)]; with many classes T_x = T0 + beta (mean - w_x) can reach far below 0.

Choices the paper leaves open (its values are not verified here), stated here and in notebook 06:
- Safe range: T_x is clamped to [min_temperature, max_temperature], default [1, 4 T0]. Below 1 a target is
  sharper than the teacher's own output; a non-positive T is meaningless. Clamping moves the batch mean away
  from T0: `dtd_stats` reports how many samples were clamped.
- The T^2 factor, three forms (`t_squared`):
  - `True` (kdlab's default): each row's KL is multiplied by its own T_x^2. That keeps every row's gradient on
    one scale (notebook 02), and so it also undoes most of what a per-sample temperature changes: a sharper
    row gets a smaller factor.
  - `"t0"`: every row's KL is multiplied by the constant T0^2. The soft term keeps KD's overall scale (the
    learning rate that suits KD suits it), and a lower T_x does give a hard sample a larger gradient.
  - `False`: the plain KL, TextBrewer's form. Its soft term is about T0^2 times weaker than KD's: compared
    with KD at the same learning rate it trains as if at a far smaller one (the learning-rate trap of
    notebook 03), which says nothing about per-sample temperatures.
- The hard-label term: kept, with weight w_ce (0 drops it).
- Gradient: T_x is computed under no_grad; it is a constant of the loss.
"""
import torch
import torch.nn.functional as F

from kdlab.checks import check_labels, check_logits_pair, check_temperature, check_weight, check_weights
from .drkd import rectify
from .kd import distillation_kl

WEIGHTS = ("flsw", "cwsm")


def _at_least_float32(dtype):
    return torch.promote_types(dtype, torch.float32)


def flsw_weight(student_logits, teacher_logits, gamma=2.0):
    """(1 - cos(z_s, z_t))^gamma per sample, without gradient: 0 when the logit vectors point the same way."""
    gamma = check_weight(gamma, "gamma")
    check_logits_pair(student_logits, teacher_logits)
    with torch.no_grad():
        # float64: 1 - cos of nearly parallel vectors is ~1e-7 in float32, and (1e-7)^0.5 is not small
        cos = F.cosine_similarity(student_logits.double(), teacher_logits.double(), dim=1, eps=1e-12)
        w = (1.0 - cos.clamp(-1.0, 1.0)) ** gamma  # clamp: rounding puts cos a hair outside [-1, 1]
        return w.to(_at_least_float32(student_logits.dtype))


def cwsm_weight(student_logits):
    """1 / (max softmax(z_s) + 1e-3) per sample, without gradient: large when the student is unsure."""
    with torch.no_grad():
        return 1.0 / (F.softmax(student_logits.float(), dim=1).max(dim=1).values + 1e-3)


def dynamic_temperature(weights, t0, beta, min_temperature=1.0, max_temperature=None):
    """T_x = clamp(T0 + beta * (mean(w) - w_x), min, max), without gradient; max defaults to 4 * T0."""
    t0 = check_temperature(t0, "t0")
    beta = check_weight(beta, "beta")
    lo = check_temperature(min_temperature, "min_temperature")
    hi = 4 * t0 if max_temperature is None else check_temperature(max_temperature, "max_temperature")
    if lo > t0 or hi < t0:
        raise ValueError(f"the safe range [{lo:g}, {hi:g}] must contain T0 = {t0:g}; lower min_temperature "
                         f"or raise max_temperature (or choose T0 inside the range)")
    with torch.no_grad():
        w = weights.detach().float()
        return (t0 + beta * (w.mean() - w)).clamp(lo, hi)


class DTD:
    """DTD objective: KD with one temperature per sample. Returns `(loss, stats)` with the batch's mean, min and
    max temperature and the fraction clamped (`fit` logs them as train_<name>).

    Defaults follow TextBrewer's example (T0=8, beta=1, gamma=2) with kdlab's T^2 per sample."""

    needs_teacher = True

    def __init__(self, weight="flsw", t0=8.0, beta=1.0, gamma=2.0, w_ce=0.1, w_kd=0.9, t_squared=True,
                 min_temperature=1.0, max_temperature=None, adjust=None):
        if weight not in WEIGHTS:
            raise ValueError(f"weight must be 'flsw' (teacher-student logit cosine) or 'cwsm' (student confidence), "
                             f"got {weight!r}")
        self.weight = weight
        self.t0 = check_temperature(t0, "t0")
        self.beta = check_weight(beta, "beta")
        self.gamma = check_weight(gamma, "gamma")
        self.w_ce, self.w_kd = check_weights(w_ce, w_kd)
        if not (t_squared is True or t_squared is False or t_squared == "t0"):  # `1 in (True, ...)` would pass
            raise ValueError(f"t_squared must be True (each sample's own T_x^2), 't0' (the constant T0^2) or False "
                             f"(no factor), got {t_squared!r}")
        self.t_squared = t_squared
        self.min_temperature = check_temperature(min_temperature, "min_temperature")
        self.max_temperature = 4 * self.t0 if max_temperature is None else check_temperature(max_temperature,
                                                                                             "max_temperature")
        dynamic_temperature(torch.zeros(1), self.t0, self.beta, self.min_temperature, self.max_temperature)
        if adjust not in (None, "ps"):
            raise ValueError(f"adjust must be None or 'ps' (KA's probability shift before distilling), got {adjust!r}")
        self.adjust = adjust

    def temperatures(self, student_logits, teacher_logits):
        w = (flsw_weight(student_logits, teacher_logits, self.gamma) if self.weight == "flsw"
             else cwsm_weight(student_logits))
        return dynamic_temperature(w, self.t0, self.beta, self.min_temperature, self.max_temperature)

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        check_logits_pair(student_logits, teacher_logits)
        check_labels(labels, student_logits)
        # float32 at least: in bf16 (autocast logits) temperatures near 8 are rounded to steps of 1/16, which
        # erases FLSW's typical spread of a few hundredths and turns DTD into KD at T0
        t = self.temperatures(student_logits, teacher_logits).to(_at_least_float32(student_logits.dtype))
        if self.adjust == "ps":
            teacher_logits = rectify(teacher_logits, labels)
        soft = distillation_kl(student_logits, teacher_logits, t, t_squared=self.t_squared is True)
        if self.t_squared == "t0":
            soft = self.t0 ** 2 * soft
        hard = F.cross_entropy(student_logits, labels.long())
        clamped = ((t <= self.min_temperature) | (t >= self.max_temperature)).float().mean()
        stats = {"temperature_mean": t.mean(), "temperature_min": t.min(), "temperature_max": t.max(),
                 "clamped": clamped}
        return self.w_ce * hard + self.w_kd * soft, stats

    def __repr__(self):
        extra = f", gamma={self.gamma!r}" if self.weight == "flsw" else ""
        adj = f", adjust={self.adjust!r}" if self.adjust else ""
        return (f"DTD(weight={self.weight!r}, t0={self.t0!r}, beta={self.beta!r}{extra}, w_ce={self.w_ce!r}, "
                f"w_kd={self.w_kd!r}, t_squared={self.t_squared!r}, range=[{self.min_temperature!r}, "
                f"{self.max_temperature!r}]{adj})")
