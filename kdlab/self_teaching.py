"""Analysis helpers of notebooks 03 (self-teaching) and 04 (DR-KD): scores next to a reference teacher, the
optimism of best-epoch reporting, and what a "teacher-free" method really costs.

    scores = score_models(res.models, data, "test", reference=teacher_logits)   # acc, ECE, confidence, agreement
    best_epoch_gap(res.histories)        # best-epoch minus last-epoch test accuracy, per run
    training_cost(teacher, res.runs)     # seconds: teacher + student against the baseline's
"""
import pandas as pd
import torch

from kdlab import metrics
from kdlab.train import predict


@torch.no_grad()
def confidence(logits) -> float:
    """Mean top-class probability: how sure the model is on average (label smoothing lowers it)."""
    return torch.softmax(logits.float(), dim=1).max(dim=1).values.mean().item()


def score_models(models: dict, data, split: str = "test", reference=None, extra: dict | None = None,
                 teachers: dict | None = None) -> pd.DataFrame:
    """One row per (arm, seed): acc, ece, confidence and, with `reference` logits on the same split (e.g. the
    self-teacher's), agreement and kl (KL(p_ref || p_model) at T = 1) to it, and same_wrong: the fraction of
    samples where the model makes the same wrong prediction as the teacher that taught it (the "genetic
    error") and copies_wrong / copies_right (`kdlab.metrics.copy_rates`), with `teachers` {arm: logits} naming
    that teacher where it is not `reference`. `extra` adds rows from logits already computed,
    {(name, seed): logits} (e.g. an ensemble)."""
    labels = data.split(split).labels
    teachers = teachers or {}
    unknown = set(teachers) - {a for a, _ in models} - {a for a, _ in (extra or {})}
    if unknown:
        raise KeyError(f"teachers= names arms that are not scored: {sorted(unknown)}")
    rows = []
    items = [(k, predict(m, data, split)) for k, m in models.items()] + list((extra or {}).items())
    for (arm, seed), logits in items:
        row = {"arm": arm, "seed": seed, "acc": metrics.accuracy(logits, labels),
               "ece": metrics.expected_calibration_error(logits, labels), "confidence": confidence(logits)}
        if reference is not None:
            row["agreement"] = metrics.agreement(logits, reference)
            row["kl"] = metrics.kl_to_teacher(logits, reference)
            teacher = teachers.get(arm, reference)
            row["same_wrong"] = metrics.same_wrong_rate(logits, teacher, labels)
            row.update(metrics.copy_rates(logits, teacher, labels))
        rows.append(row)
    return pd.DataFrame(rows)


def best_epoch_gap(histories: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Per (arm, seed): the last epoch's `metric`, its best over epochs, and the gap. Keeping the checkpoint with
    the best *test* accuracy (as the Tf-KD and DR-KD code do) reports the best, an optimistic number: the test
    set was used to choose it."""
    if metric not in histories.columns:
        raise KeyError(f"{metric!r} is not in the histories (columns: {list(histories.columns)})")
    g = histories.sort_values("epoch").groupby(["arm", "seed"], sort=False)[metric]
    out = pd.DataFrame({"last": g.last(), "best": g.max()})
    out["gap"] = out["best"] - out["last"]
    return out.reset_index()


def training_cost(teacher, runs: pd.DataFrame, baseline: str, arms) -> pd.DataFrame:
    """Training seconds of each arm's student (mean over seeds) and the teacher's, which a "teacher-free"
    method still pays once: total = teacher + student, and the ratio to the baseline's student alone."""
    if teacher is None or not hasattr(teacher, "cache_info"):
        raise ValueError("training_cost needs a teacher from kdlab.cache.get_teacher (it records its training time)")
    missing = [a for a in [baseline, *arms] if a not in set(runs["arm"])]
    if missing:
        raise KeyError(f"arms {missing} are not in the runs (arms: {list(dict.fromkeys(runs['arm']))})")
    teacher_s = float(teacher.cache_info["trained_seconds"])
    base = float(runs.loc[runs["arm"] == baseline, "train_seconds"].mean())
    rows = [{"arm": baseline, "teacher_s": 0.0, "student_s": base}]
    rows += [{"arm": a, "teacher_s": teacher_s, "student_s": float(runs.loc[runs["arm"] == a, "train_seconds"].mean())}
             for a in arms]
    out = pd.DataFrame(rows).set_index("arm")
    out["total_s"] = out["teacher_s"] + out["student_s"]
    out["x baseline"] = out["total_s"] / base
    return out


def rectification_example(teacher_logits, labels) -> int:
    """The index of a sample that shows rectification best: the teacher is wrong and confident about it, and
    the label is its runner-up (so the swap exchanges the two largest bars). Falls back to the most confident
    wrong sample; raises if the teacher is right everywhere."""
    z = torch.as_tensor(teacher_logits).float()
    labels = torch.as_tensor(labels, device=z.device)
    p = torch.softmax(z, dim=1)
    top2 = p.topk(2, dim=1).indices
    wrong = top2[:, 0] != labels
    if not wrong.any():
        raise ValueError("the teacher is right on every one of these samples: there is nothing to rectify")
    conf = p.max(dim=1).values
    runner_up = wrong & (top2[:, 1] == labels)
    pool = runner_up if runner_up.any() else wrong
    return int(torch.where(pool, conf, torch.full_like(conf, -1.0)).argmax())
