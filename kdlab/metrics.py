"""Evaluation metrics: accuracy, calibration, and fidelity to the teacher.

All functions take logits (not probabilities), run without gradient, work on CPU or CUDA tensors and
return Python floats (except `reliability_table`, a pandas DataFrame, and `summarize`, a dict).
"""
import difflib

import torch

from kdlab.checks import check_labels, check_logits, check_logits_pair
from .losses.kd import distillation_kl

# Which way is better, for every number kdlab reports: verdicts (kdlab.compare), tables and plot labels all read
# it here. None: a number with no better side (a confidence, the share of adjusted targets), said "higher"/"lower".
DIRECTIONS = {
    "acc": "higher", "agreement": "higher", "images_per_s": "higher",
    "loss": "lower", "ece": "lower", "kl": "lower", "same_wrong": "lower", "seconds": "lower",
    # P(student = teacher | teacher wrong): inherited mistakes; P(student = teacher | teacher right): right answers
    "copies_wrong": "lower", "copies_right": "higher",
    "train_seconds": "lower", "error": "lower",
    "confidence": None, "lr": None, "rectified": None, "adjusted": None, "skipped": None, "epoch": None,
}
_SPLITS = ("train_", "val_", "test_")


def direction(metric: str) -> str | None:
    """'higher' or 'lower' (which way is better) or None (neither) for a metric name, with or without a split
    prefix: direction('test_ece') == 'lower'. Unknown names raise, saying how to state the direction."""
    if not isinstance(metric, str):
        raise TypeError(f"a metric is named by a string such as 'acc' or 'test_ece', got {metric!r}")
    name = metric
    if name not in DIRECTIONS:
        for prefix in _SPLITS:
            if name.startswith(prefix) and name[len(prefix):] in DIRECTIONS:
                name = name[len(prefix):]
                break
    if name not in DIRECTIONS:
        prefix = next((p for p in _SPLITS if metric.startswith(p)), "")
        close = difflib.get_close_matches(metric[len(prefix):], list(DIRECTIONS), n=1)
        hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
        raise KeyError(f"kdlab does not know which way is better for {metric!r}.{hint} Known metrics: "
                       f"{', '.join(DIRECTIONS)} (each may carry a train_/val_/test_ prefix); for another one pass "
                       f"higher_is_better=True or False")
    return DIRECTIONS[name]


def label(metric: str) -> str:
    """An axis or column label that says which way is better: 'test ece (lower is better)'."""
    try:
        way = direction(metric)
    except KeyError:  # a metric kdlab does not know: its name alone
        way = None
    text = metric.replace("_", " ")
    return f"{text} ({way} is better)" if way else text


@torch.no_grad()
def accuracy(logits, labels):
    """Top-1 accuracy in [0, 1]: fraction of samples whose highest logit is the label."""
    check_logits(logits)
    check_labels(labels, logits)
    _check_no_nan(logits)
    return (logits.argmax(dim=1) == labels).float().mean().item()


def _check_no_nan(logits):
    # argmax of a NaN row is 0, which would count as a prediction of class 0: a plausible, wrong number
    bad = int(torch.isnan(logits).any(dim=1).sum())
    if bad:
        raise ValueError(f"{bad} of {logits.shape[0]} rows of logits contain NaN, so they predict nothing: the model "
                         f"diverged or was fed NaN inputs. Check its training (a lower learning rate) and its inputs")


def _calibration_bins(logits, labels, n_bins):
    """Per-bin sums for calibration: (count, sum of confidences, number correct), each of length n_bins.

    Confidence = max softmax probability. Bins split [0, 1] into n_bins equal widths; bin b holds
    confidences in (b/n, (b+1)/n] (the first bin also takes 0).
    """
    check_logits(logits)
    check_labels(labels, logits)
    _check_no_nan(logits)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}; 15 is the usual choice")
    probs = torch.softmax(logits.double(), dim=1)  # float64: bin edges are compared exactly
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels).double()
    inner_edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=logits.device)[1:-1]
    bin_index = torch.bucketize(confidence, inner_edges)  # edge values go to the lower bin
    count = torch.bincount(bin_index, minlength=n_bins)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64, device=logits.device).index_add_(0, bin_index, confidence)
    correct_sum = torch.zeros_like(conf_sum).index_add_(0, bin_index, correct)
    return count, conf_sum, correct_sum


@torch.no_grad()
def expected_calibration_error(logits, labels, n_bins=15):
    """Expected calibration error (Guo et al. 2017), equal-width bins weighted by their counts.

        ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|

    where confidence is the max softmax probability, and accuracy_b, confidence_b are the means over the
    n_b samples whose confidence falls in bin b (bins (b/n, (b+1)/n]). Empty bins contribute 0. 0 means
    the model is right exactly as often as it is confident; a value of 0.05 means 5 points off on average.
    """
    count, conf_sum, correct_sum = _calibration_bins(logits, labels, n_bins)
    # (n_b / N) * |acc_b - conf_b| = |correct_b - conf_sum_b| / N
    return ((correct_sum - conf_sum).abs().sum() / logits.shape[0]).item()


@torch.no_grad()
def reliability_table(logits, labels, n_bins=15):
    """The data of a reliability diagram: one row per confidence bin (empty bins kept).

    Columns: bin_lower, bin_upper, confidence (mean confidence in the bin), accuracy (fraction correct in
    the bin), count. Empty bins have count 0 and NaN confidence and accuracy. A calibrated model has
    accuracy close to confidence in every bin.
    """
    import pandas as pd  # imported here so that the other metrics do not need pandas

    count, conf_sum, correct_sum = (x.cpu() for x in _calibration_bins(logits, labels, n_bins))
    n = count.double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    return pd.DataFrame({
        "bin_lower": edges[:-1].numpy(),
        "bin_upper": edges[1:].numpy(),
        "confidence": (conf_sum / n).numpy(),  # 0/0 -> NaN for empty bins
        "accuracy": (correct_sum / n).numpy(),
        "count": count.numpy(),
    })


@torch.no_grad()
def agreement(student_logits, teacher_logits):
    """Top-1 agreement: fraction of samples where student and teacher predict the same class."""
    check_logits_pair(student_logits, teacher_logits)
    return (student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)).float().mean().item()


@torch.no_grad()
def kl_to_teacher(student_logits, teacher_logits, temperature=1.0):
    """KL(p_t^T || p_s^T), summed over classes and averaged over samples (batchmean), no T^2 factor.
    0 when the student's distribution equals the teacher's."""
    return distillation_kl(student_logits, teacher_logits, temperature, t_squared=False).item()


@torch.no_grad()
def same_wrong_rate(student_logits, teacher_logits, labels):
    """Fraction of all samples where teacher and student are both wrong with the same prediction:
    the student copied the teacher's mistake (the "genetic error" of Knowledge Adjustment)."""
    check_logits_pair(student_logits, teacher_logits)
    check_labels(labels, student_logits)
    s_pred, t_pred = student_logits.argmax(dim=1), teacher_logits.argmax(dim=1)
    return ((s_pred == t_pred) & (t_pred != labels)).float().mean().item()


@torch.no_grad()
def copy_rates(student_logits, teacher_logits, labels) -> dict:
    """How often the student predicts what the teacher predicts, apart where the teacher is wrong and where it
    is right: {"copies_wrong": P(student = teacher | teacher wrong), "copies_right": P(student = teacher |
    teacher right)}. A student that copies less of everything lowers both; one that sheds inherited mistakes
    lowers the first only. NaN for a side with no samples."""
    check_logits_pair(student_logits, teacher_logits)
    check_labels(labels, student_logits)
    same = student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)
    wrong = teacher_logits.argmax(dim=1) != labels
    rate = lambda mask: same[mask].float().mean().item() if bool(mask.any()) else float("nan")  # noqa: E731
    return {"copies_wrong": rate(wrong), "copies_right": rate(~wrong)}


@torch.no_grad()
def summarize(logits, labels, teacher_logits=None, loss=None):
    """The usual evaluation numbers in one dict.

    Always 'acc' and 'ece'; with `teacher_logits` also 'agreement' and 'kl' (KL(p_t || p_s) at T=1);
    with `loss` (an already computed loss value, number or 0-d tensor) also 'loss'.
    """
    out = {"acc": accuracy(logits, labels), "ece": expected_calibration_error(logits, labels)}
    if teacher_logits is not None:
        out["agreement"] = agreement(logits, teacher_logits)
        out["kl"] = kl_to_teacher(logits, teacher_logits)
    if loss is not None:
        out["loss"] = float(loss)
    return out
