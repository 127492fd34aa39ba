"""Small input checks shared by the losses and metrics.

Every check looks only at Python numbers and tensor *metadata* (shape, dtype, device). None of them
reads the values of a GPU tensor: that would need `.item()`, a host-device sync on every training step.
Two exceptions: `check_labels` checks the range of labels held on the CPU (no sync there, and a few
microseconds against a training step's milliseconds), where torch's own error would be a bare
"Target 12 is out of bounds."; and `validate_temperature_values` is meant to be called by hand outside the
hot path.

Each error names the argument, shows what was received and says what to do.
"""
import math
import numbers

import torch


def _is_real(x):
    # bool is a subclass of int in Python; `temperature=True` is a bug, not a 1.
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_temperature(temperature, name="temperature"):
    """Check a Python-number temperature and return it as a float."""
    if isinstance(temperature, torch.Tensor):
        raise TypeError(
            f"{name} must be a Python number here, got a tensor of shape {tuple(temperature.shape)}; "
            f"use float(t) for a single temperature")
    if not _is_real(temperature):
        raise TypeError(f"{name} must be a number, got {type(temperature).__name__} {temperature!r}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(
            f"{name} must be a finite number > 0, got {t}; "
            f"typical values are 1-20 (RepDistiller uses 4, Hinton's MNIST 20)")
    return t


def check_temperature_tensor(temperature, logits, name="temperature"):
    """Check a per-sample temperature tensor's metadata against (B, K) logits (values not read)."""
    batch = logits.shape[0]
    if temperature.dim() != 1 or temperature.shape[0] != batch:
        raise ValueError(
            f"a tensor {name} must have shape (B,) = ({batch},), one temperature per sample, "
            f"got shape {tuple(temperature.shape)}; for one temperature for all samples pass a float")
    if not temperature.is_floating_point():
        raise TypeError(f"a tensor {name} must be floating point, got {temperature.dtype}; "
                        f"use {name}.float()")
    if temperature.device != logits.device:
        raise ValueError(f"{name} is on {temperature.device} but the logits are on {logits.device}; "
                         f"move it with {name}.to(logits.device)")


def check_temperatures(temperatures, name="temperatures"):
    """Check a sweep's temperatures (a non-empty list of numbers > 0) and return them as a tuple of floats."""
    if isinstance(temperatures, torch.Tensor):
        temperatures = temperatures.tolist()
    if _is_real(temperatures) or isinstance(temperatures, (str, bytes)) or not hasattr(temperatures, "__iter__"):
        one = f"; for a single temperature write ({temperatures!r},)" if _is_real(temperatures) else ""
        raise TypeError(f"{name} is a list of numbers, e.g. (1, 4, 16), got {temperatures!r}{one}")
    ts = tuple(check_temperature(t, f"every one of {name}") for t in temperatures)
    if not ts:
        raise ValueError(f"{name} is empty; pass e.g. (1, 2, 4, 8, 16)")
    return ts


def validate_temperature_values(temperature, name="temperature"):
    """Check that every temperature is finite and > 0. Reads tensor values: use it outside the hot path
    (e.g. once in a test or a notebook), not on every training step."""
    if not isinstance(temperature, torch.Tensor):
        return check_temperature(temperature, name)
    t = temperature.detach()
    bad = ~(torch.isfinite(t) & (t > 0))
    if bool(bad.any()):
        raise ValueError(
            f"every {name} must be finite and > 0; {int(bad.sum())} of {t.numel()} are not "
            f"(e.g. {t[bad][0].item()}); clamp per-sample temperatures, e.g. {name}.clamp(min=0.1)")
    return temperature


def check_weight(w, name):
    """Check one loss weight: a finite Python number >= 0. Returns it as a float."""
    if isinstance(w, torch.Tensor) or not _is_real(w):
        raise TypeError(f"{name} must be a Python number, got {type(w).__name__} {w!r}")
    w = float(w)
    if not (math.isfinite(w) and w >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {w}; "
                         f"RepDistiller's KD uses w_ce=0.1, w_kd=0.9")
    return w


def check_weights(w_ce, w_kd):
    """Check both KD weights; at least one must be > 0 or the loss is identically zero."""
    w_ce, w_kd = check_weight(w_ce, "w_ce"), check_weight(w_kd, "w_kd")
    if w_ce == 0 and w_kd == 0:
        raise ValueError("w_ce and w_kd are both 0, so the loss would be 0 and nothing would train; "
                         "set at least one > 0 (e.g. w_ce=0.1, w_kd=0.9)")
    return w_ce, w_kd


def check_logits(logits, name="logits"):
    """Check one logits tensor: 2-D (B, K) floating point."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, K), got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, classes), got shape {tuple(logits.shape)}; "
                         f"for a single sample use {name}.unsqueeze(0), for extra dims flatten them")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be floating point (raw scores), got {logits.dtype}; "
                        f"use {name}.float()")
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"{name} is empty, shape {tuple(logits.shape)}; a loss or metric needs at least "
                         f"one sample and one class")


def check_logits_pair(student_logits, teacher_logits):
    """Check student and teacher logits: each (B, K) floating, same shape, same device."""
    if teacher_logits is None:
        raise TypeError("teacher_logits is None, but this loss distils from a teacher; "
                        "pass the teacher's logits for the same batch (computed under torch.no_grad())")
    check_logits(student_logits, "student_logits")
    check_logits(teacher_logits, "teacher_logits")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape (B, K), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}; check that both models "
            f"see the same batch and have the same number of classes")
    if student_logits.device != teacher_logits.device:
        raise ValueError(f"student_logits are on {student_logits.device} but teacher_logits on "
                         f"{teacher_logits.device}; move the teacher's logits with .to(student_logits.device)")


def check_labels(labels, logits, name="labels"):
    """Check class-index labels: 1-D integer tensor of length B on the logits' device, within the K classes
    (`logits` may also be a shape (B, K) with a device: see `check_class_labels`)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f"{name} must be integer class indices (torch.long), got {labels.dtype}; "
            f"for one-hot or soft labels pass {name}.argmax(dim=1), for float indices {name}.long()")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        one_hot = labels.shape == logits.shape
        raise ValueError(f"{name} must be 1-D with one class index per sample, shape ({logits.shape[0]},), "
                         f"got shape {tuple(labels.shape)}"
                         + (f"; for one-hot labels pass {name}.argmax(dim=1)" if one_hot else ""))
    if labels.device != logits.device:
        raise ValueError(f"{name} are on {labels.device} but the logits on {logits.device}; "
                         f"move them with {name}.to(logits.device)")
    if labels.device.type == "cpu" and labels.numel():
        lo, hi, k = int(labels.min()), int(labels.max()), logits.shape[1]
        if lo < 0 or hi >= k:
            raise ValueError(f"{name} span [{lo}, {hi}] but the logits have {k} classes: {name} must be "
                             f"0..{k - 1}. Check that the model has one output per class of the dataset, and how "
                             f"the labels were built")


class _Shape:
    """The shape and device of logits not yet made (for checking labels before building targets from them)."""

    def __init__(self, rows, num_classes, device):
        self.shape, self.device = (rows, num_classes), device


def check_class_labels(labels, num_classes, name="labels"):
    """`check_labels` for labels that will index `num_classes` classes (no logits at hand)."""
    rows = labels.shape[0] if isinstance(labels, torch.Tensor) and labels.dim() else 0
    check_labels(labels, _Shape(rows, num_classes, getattr(labels, "device", None)), name)
