"""Dark knowledge (Hinton, Vinyals, Dean 2015, arXiv 1503.02531): what a teacher's wrong-class probabilities
hold, and Hinton's omitted-class experiment.

- `class_similarity`: the teacher's average soft targets per true class, S[i, j] = mean over images x of
  class i of softmax(z_t(x) / T)_j. Off the diagonal it says which classes the teacher finds alike
  (cat and dog, automobile and truck): information a one-hot label never carries.
- The omitted-class experiment: distil a student on a transfer set from which one class k was removed
  (`without_class`). The student never sees an image of k, yet the teacher's soft targets on the other
  images mention k (a dog looks a little like a cat), so the student can still learn to recognise it. Its
  bias for k is too low, though (k was never the right answer during training): Hinton added 3.5 to the
  bias of the omitted class, a value that optimised test-set performance.
- kdlab chooses the shift without the test set and without labels of k: `prior_matching_shift` picks the
  shift that makes the student predict k on a fraction 1/K of the (unlabelled) validation images, the
  share class k has in a balanced dataset. `with_bias_shift` applies it to a copy of the model.
"""
import copy
import difflib
from dataclasses import replace

import torch

from kdlab.data import Data
from kdlab.losses import soft_targets


def class_similarity(teacher_logits, labels, num_classes: int, temperature: float = 1.0) -> torch.Tensor:
    """(K, K) matrix: row i is the teacher's average softmax(z / T) over the images whose label is i."""
    labels = torch.as_tensor(labels, device=teacher_logits.device)
    p = soft_targets(teacher_logits.float(), temperature)
    sums = torch.zeros(num_classes, p.shape[1], device=p.device).index_add_(0, labels, p)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).unsqueeze(1)
    return (sums / counts).cpu()


# The class each dataset's omitted-class experiment leaves out by default: one with close relatives among the
# others (automobile and truck; pickup truck and bus, tractor, streetcar), so soft targets can mention it.
DEFAULT_OMITTED = {"cifar10": "automobile", "cifar100": "pickup_truck"}


def class_index(data: Data, name: str | None = None) -> int:
    """The index of class `name` in `data` (None: the dataset's default omitted class), or an error that names
    the closest class names."""
    if name is None:
        name = DEFAULT_OMITTED.get(data.name, data.classes[0])
    if not isinstance(name, str):
        raise TypeError(f"a class is named by a string such as {data.classes[1]!r}, got {name!r}")
    if name in data.classes:
        return data.classes.index(name)
    close = difflib.get_close_matches(name, data.classes, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = ", ".join(data.classes[:12]) + (", ..." if len(data.classes) > 12 else "")
    raise ValueError(f"{name!r} is not a class of {data.name}.{hint} Its classes: {shown}")


def without_class(data: Data, k: int) -> Data:
    """The same data with class k removed from the training split only (the transfer set); validation and
    test keep every class, so the student is measured on what it never saw."""
    if not 0 <= k < data.num_classes:
        raise ValueError(f"class {k} does not exist: {data.name} has classes 0..{data.num_classes - 1}")
    keep = torch.nonzero(data.train.labels != k).flatten()
    fingerprint = {**data.fingerprint, "train_size": len(keep), "omitted_class": k}
    return replace(data, train=data.train.subset(keep), fingerprint=fingerprint)


def prior_matching_shift(logits, k: int, fraction: float | None = None) -> float:
    """The bias shift d for class k that makes class k the prediction on `fraction` of these images
    (default 1/K, a balanced dataset's share). Uses no labels.

    Image i is predicted as k after the shift when z_ik + d > max_{j != k} z_ij, i.e. when d exceeds
    m_i = max_{j != k} z_ij - z_ik; so d is the `fraction` quantile of the margins m_i (a fraction of them
    lies below d)."""
    logits = torch.as_tensor(logits).float()
    K = logits.shape[1]
    fraction = 1 / K if fraction is None else fraction
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    others = logits.clone()
    others[:, k] = -torch.inf
    margins = others.max(dim=1).values - logits[:, k]
    # the n-th smallest margin, n = fraction * N: exactly n images have a margin below the shift
    n = max(1, round(fraction * len(margins)))
    ordered = torch.sort(margins).values
    upper = ordered[n] if n < len(ordered) else ordered[-1] + 1
    return float((ordered[n - 1] + upper) / 2)


def with_bias_shift(model, k: int, shift: float):
    """A copy of `model` whose classifier adds `shift` to the logit of class k (the model is untouched)."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted.classifier.bias[k] += shift
    return shifted


def class_recall(logits, labels, k: int) -> float:
    """The fraction of images of class k predicted as k."""
    mask = torch.as_tensor(labels) == k
    return float((torch.as_tensor(logits)[mask].argmax(1) == k).float().mean())


def showcase_image(teacher_logits, labels, confident: float = 0.9) -> int:
    """The index of an image that shows dark knowledge best: the teacher is right and confident (top
    probability >= `confident`, so at T = 1 one class dominates) and its runner-up clearly stands out from
    the rest (largest ratio of 2nd to 3rd probability). Falls back to the most confident correct image."""
    p = soft_targets(torch.as_tensor(teacher_logits).float(), 1.0)
    top = p.topk(3, dim=1).values
    right = p.argmax(1) == torch.as_tensor(labels, device=p.device)
    if not right.any():
        raise ValueError("the teacher gets none of these images right: nothing to show")
    eligible = right & (top[:, 0] >= confident)
    if eligible.any():
        score = torch.where(eligible, top[:, 1] / top[:, 2], torch.full_like(top[:, 0], -1.0))
    else:
        score = torch.where(right, top[:, 0], torch.full_like(top[:, 0], -1.0))
    return int(score.argmax())
