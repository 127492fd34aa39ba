"""The figures the notebooks show. Each function draws on an Axes (a new figure when none is given) and
returns it, so notebooks can compose panels and end the cell with `plt.show()`."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from kdlab import metrics
from kdlab.losses import soft_targets


def _axes(ax, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(histories, metric: str = "test_acc", ax=None, title: str | None = None):
    """Learning curves of `metric` per epoch. `histories`: one DataFrame from `kdlab.train.fit`, a dict
    {label: DataFrame}, or a long DataFrame with columns arm, seed, epoch, metric (mean and a band over seeds)."""
    ax = _axes(ax)
    if isinstance(histories, pd.DataFrame) and "arm" in histories.columns:
        sns.lineplot(data=histories, x="epoch", y=metric, hue="arm", errorbar="sd", ax=ax)
    else:
        if isinstance(histories, pd.DataFrame):
            histories = {metric: histories}
        for label, h in histories.items():
            if metric not in h.columns:
                raise KeyError(f"{metric!r} is not in the history of {label!r} (columns: {list(h.columns)})")
            ax.plot(h["epoch"], h[metric], marker="o" if len(h) < 20 else None, label=str(label))
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel(metrics.label(metric))  # says which way is better
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_soft_targets(logits, classes, temperatures=(1, 4, 20), label: int | None = None, log: bool = True,
                      ax=None, title: str | None = None):
    """One sample's softmax(z / T) for several T as grouped bars; on a log scale the small probabilities of
    the wrong classes (Hinton's dark knowledge) become visible. `label` marks the true class."""
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten().cpu()
    if len(classes) != len(logits):
        raise ValueError(f"{len(logits)} logits but {len(classes)} class names")
    ax = _axes(ax, (max(6, 0.6 * len(classes)), 4))
    width = 0.8 / len(temperatures)
    x = np.arange(len(classes))
    for i, t in enumerate(temperatures):
        p = soft_targets(logits, t).numpy()
        ax.bar(x + (i - (len(temperatures) - 1) / 2) * width, p, width, label=f"T = {t:g}")
    ax.set_xticks(x, classes, rotation=45, ha="right")
    if label is not None:
        ax.get_xticklabels()[int(label)].set_fontweight("bold")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("probability" + (" (log scale)" if log else ""))
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def reliability_diagram(logits, labels, n_bins: int = 15, ax=None, label: str | None = None):
    """Accuracy against confidence per bin, with the diagonal of perfect calibration; the ECE in the legend."""
    ax = _axes(ax, (4.5, 4.5))
    table = metrics.reliability_table(logits, labels, n_bins).dropna()
    ece = metrics.expected_calibration_error(logits, labels, n_bins)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot(table["confidence"], table["accuracy"], marker="o", label=f"{label or 'model'} (ECE {ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return ax


def plot_matrix(matrix, classes, ax=None, title: str | None = None, fmt: str = ".2f", **kw):
    """A labelled heat map of a class-by-class matrix (e.g. the teacher's average soft targets per class)."""
    matrix = np.asarray(torch.as_tensor(matrix).cpu())
    k = len(classes)
    ax = _axes(ax, (min(0.55 * k + 2, 12), min(0.5 * k + 1.5, 10.5)))  # 100 classes: a page, not 57 inches
    ticks = classes if k <= 25 else max(1, k // 20)  # many classes: every n-th index, names unreadable anyway
    sns.heatmap(matrix, xticklabels=ticks, yticklabels=ticks, annot=k <= 12, fmt=fmt, cmap="viridis", ax=ax, **kw)
    if title:
        ax.set_title(title)
    return ax
