"""Temperature in knowledge distillation (Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural
Network", arXiv 1503.02531, section 2): what T does to soft targets and to the soft term's gradient.

    p^T = softmax(z / T)                                           kdlab.losses.soft_targets
    H(p) = -sum_k p_k ln p_k   (nats)                              entropy
    L_soft = T^2 * KL(p_t^T || p_s^T)   (batchmean)                kdlab.losses.distillation_kl

- Entropy grows with T: dH(p^T)/dT = Var_{p^T}(z) / T^3 >= 0, from 0 for a one-hot (T -> 0, distinct
  logits) to ln K for the uniform distribution (T -> infinity). `entropy_curve`.
- The gradient of the soft term for one sample is dKL/dz_s = (p_s^T - p_t^T) / T, which shrinks like 1/T^2
  once T is large; Hinton multiplies the soft term by T^2 so that its weight does not depend on T.
  `soft_gradient_norms` measures both with autograd.
- High-T limit (Hinton's eq. 2-3): for zero-mean logits, p^T ~ (1 + z / T) / K, so the gradient of
  T^2 * KL (batchmean over B samples) tends to (z_s - z_t) / (K B): distillation becomes logit matching.
  Softmax ignores a shift of a row, so the limit holds for any logits once each row is centred.
  `logit_matching_error` measures how far a given T is from it.

The sweep helpers build `kdlab.experiment.Arm`s for a grid of temperatures and weights, so that every
temperature is trained from the same seeds (paired) and reuses the cached teacher:

    arms = kd_arms(["resnet8", "resnet14"], temperatures=(1, 4, 16), alphas=(0.9,), teacher=teacher)
    res = run_arms(arms, data, recipe, seeds=(0, 1))
    runs = with_settings(res.runs, arms)          # + columns arch, T, alpha
    best_temperatures(runs)                       # best T per student on validation, paired test intervals

`alpha` is the soft term's weight: KD(T, w_ce=1 - alpha, w_kd=alpha); alpha = 0 is plain cross-entropy on
the labels (no teacher, T irrelevant).
"""
import math

import pandas as pd
import torch

from kdlab.checks import check_temperatures
from kdlab.experiment import Arm
from kdlab.losses import KD, CrossEntropy, distillation_kl, soft_targets


def _logits(x, name):
    x = torch.as_tensor(x)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, K) with K >= 2 classes, got {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def entropy(probs, dim: int = -1):
    """Shannon entropy in nats, -sum_k p_k ln p_k, of each distribution along `dim` (0 ln 0 = 0).

    For (B, K) probabilities it returns B entropies, each between 0 (one-hot) and ln K (uniform)."""
    probs = torch.as_tensor(probs)
    return -torch.special.xlogy(probs, probs).sum(dim) + 0.0  # + 0.0: a one-hot gives 0.0, not -0.0


def entropies(logits, temperatures) -> torch.Tensor:
    """H(softmax(z / T)) for every row of `logits` (B, K) and every T: a (len(temperatures), B) tensor."""
    z = _logits(logits, "logits")
    return torch.stack([entropy(soft_targets(z, t)) for t in check_temperatures(temperatures)])


def entropy_curve(logits, temperatures) -> pd.DataFrame:
    """Entropy of the softened distribution against T, over the rows of `logits` (B, K).

    Columns: T, entropy (mean over rows, nats), entropy_min, entropy_max, fraction (mean entropy / ln K: 1 is
    uniform)."""
    h = entropies(logits, temperatures).cpu()  # logits may live on the GPU; pandas needs host memory
    k = _logits(logits, "logits").shape[1]
    return pd.DataFrame({"T": check_temperatures(temperatures), "entropy": h.mean(1).numpy(),
                         "entropy_min": h.min(1).values.numpy(), "entropy_max": h.max(1).values.numpy(),
                         "fraction": (h.mean(1) / math.log(k)).numpy()})


def soft_gradient(student_logits, teacher_logits, temperature, *, t_squared: bool = True) -> torch.Tensor:
    """d/dz_s of `distillation_kl(z_s, z_t, T, t_squared=...)` (batchmean), by autograd, in float64: (B, K)."""
    zs = _logits(student_logits, "student_logits").clone().requires_grad_(True)
    zt = _logits(teacher_logits, "teacher_logits")
    if zs.shape != zt.shape:
        raise ValueError(f"student logits {tuple(zs.shape)} and teacher logits {tuple(zt.shape)} differ in shape")
    distillation_kl(zs, zt, float(temperature), t_squared=t_squared).backward()
    return zs.grad


def soft_gradient_norms(student_logits, teacher_logits, temperatures) -> pd.DataFrame:
    """How big the soft term's gradient is at each T, with and without the T^2 factor.

    For each T, the gradient of `distillation_kl` with respect to the student's logits is taken by autograd;
    the value reported is the mean over samples of the per-sample gradient norm ||d l_i / d z_s,i|| (the batch
    gradient times B, so it does not depend on the batch size). Columns: T, with_t2, without_t2. Without T^2
    the norm falls like 1/T^2 at high T; with it, it levels off (to ||z_s - z_t|| / K for centred logits)."""
    zs = _logits(student_logits, "student_logits")
    b = zs.shape[0]
    rows = []
    for t in check_temperatures(temperatures):
        row = {"T": t}
        for col, t2 in (("with_t2", True), ("without_t2", False)):
            g = soft_gradient(zs, teacher_logits, t, t_squared=t2) * b
            row[col] = float(g.norm(dim=1).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def centred(logits) -> torch.Tensor:
    """Each row minus its mean: softmax is unchanged, and Hinton's high-T limit assumes zero-mean logits."""
    z = _logits(logits, "logits")
    return z - z.mean(1, keepdim=True)


def logit_matching_gradient(student_logits, teacher_logits) -> torch.Tensor:
    """The high-T limit of the gradient of T^2 * KL (batchmean): (z_s - z_t) / (K B), logits centred per row."""
    zs, zt = centred(student_logits), centred(teacher_logits)
    if zs.shape != zt.shape:
        raise ValueError(f"student logits {tuple(zs.shape)} and teacher logits {tuple(zt.shape)} differ in shape")
    b, k = zs.shape
    return (zs - zt) / (k * b)


def logit_matching_error(student_logits, teacher_logits, temperatures) -> pd.DataFrame:
    """Relative distance between the gradient of T^2 * KL(p_t^T || p_s^T) and its logit-matching limit.

    error(T) = ||g_T - (z_s - z_t) / (K B)|| / ||(z_s - z_t) / (K B)|| (Frobenius norms over the batch, logits
    centred per row). It shrinks like 1/T once T is well above the logits' spread. Columns: T, rel_error."""
    target = logit_matching_gradient(student_logits, teacher_logits)
    denom = float(target.norm())
    size = max(float(centred(student_logits).norm()), float(centred(teacher_logits).norm())) / target.numel()
    if denom <= 1e-6 * size:  # a shift is exact only up to rounding (~1e-7 relative in float32)
        raise ValueError("student and teacher logits are equal up to a shift per row: the gradient is 0 at every T")
    rows = []
    for t in check_temperatures(temperatures):
        g = soft_gradient(student_logits, teacher_logits, t, t_squared=True)
        rows.append({"T": t, "rel_error": float((g - target).norm()) / denom})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- sweeps over T and alpha

def arm_name(arch: str, temperature=None, alpha: float = 0.0) -> str:
    """The arm's name in results tables and checkpoint file names: 'resnet8 T=4 a=0.9', or 'resnet8 labels only'."""
    if alpha == 0:
        return f"{arch} labels only"
    return f"{arch} T={float(temperature):g} a={float(alpha):g}"


def kd_arms(archs, temperatures, alphas=(0.9,), teacher=None) -> list:
    """One `Arm` per (arch, alpha, T): KD(T, w_ce=1 - alpha, w_kd=alpha) from `teacher`; alpha = 0 gives one
    cross-entropy arm per arch (no teacher, T irrelevant). Order: arch, then alpha, then T."""
    archs = [archs] if isinstance(archs, str) else list(archs)
    ts = check_temperatures(temperatures)
    arms, seen = [], set()
    for arch in archs:
        for alpha in alphas:
            alpha = float(alpha)
            if not 0 <= alpha <= 1:
                raise ValueError(f"alpha is the soft term's weight and must be in [0, 1], got {alpha}")
            if alpha > 0 and teacher is None:
                raise ValueError("alpha > 0 distils from a teacher: pass teacher=... (kdlab.cache.get_teacher)")
            for t in ts if alpha > 0 else [None]:
                name = arm_name(arch, t, alpha)
                if name in seen:
                    continue
                seen.add(name)
                objective = KD(temperature=t, w_ce=1 - alpha, w_kd=alpha) if alpha > 0 else CrossEntropy()
                arms.append(Arm(name, arch, objective, teacher=teacher if alpha > 0 else None))
    return arms


def arm_settings(arms) -> pd.DataFrame:
    """arch, T and alpha of each arm, read from its objective (T is NaN for a labels-only arm)."""
    rows = []
    for a in arms:
        obj = a.objective
        if isinstance(obj, KD):
            rows.append({"arm": a.name, "arch": a.arch, "T": obj.temperature, "alpha": obj.w_kd})
        elif isinstance(obj, CrossEntropy):
            rows.append({"arm": a.name, "arch": a.arch, "T": math.nan, "alpha": 0.0})
        else:
            raise TypeError(f"arm {a.name!r}: arm_settings knows KD and CrossEntropy objectives, got {obj!r}")
    return pd.DataFrame(rows)


def with_settings(runs: pd.DataFrame, arms) -> pd.DataFrame:
    """`runs` (from run_arms) with the columns arch, T and alpha of each run's arm."""
    settings = arm_settings(arms)
    missing = set(runs["arm"]) - set(settings["arm"])
    if missing:
        raise KeyError(f"runs of arms {sorted(missing)} are not among the arms given")
    return runs.merge(settings, on="arm", how="left", validate="many_to_one")


def best_temperatures(runs: pd.DataFrame, select: str = "val_acc", report: str = "test_acc") -> pd.DataFrame:
    """For each arch: the T whose mean `select` over seeds is highest (choose on validation, never on test),
    and the paired difference in `report` between that T and every other T of the same arch and alpha.

    `runs` needs the columns arm, seed, arch, T, alpha (see `with_settings`). One row per (arch, other T):
    arch, alpha, best_T, other_T, diff (best - other, mean over paired seeds), low, high (95% t-interval),
    n (pairs), significant (the interval excludes 0)."""
    from kdlab.compare import paired_difference
    kd = runs[runs["alpha"] > 0]
    rows = []
    for (arch, alpha), group in kd.groupby(["arch", "alpha"], sort=False):
        means = group.groupby("T")[select].mean()
        best = float(means.idxmax())
        best_arm = group.loc[group["T"] == best, "arm"].iloc[0]
        for t in sorted(set(group["T"]) - {best}):
            other_arm = group.loc[group["T"] == t, "arm"].iloc[0]
            d = paired_difference(group, best_arm, other_arm, metric=report)
            rows.append({"arch": arch, "alpha": alpha, "best_T": best, "other_T": float(t), "diff": d.mean,
                         "low": d.low, "high": d.high, "n": d.n, "significant": d.significant})
    return pd.DataFrame(rows)
