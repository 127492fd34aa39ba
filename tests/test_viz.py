"""The figures draw what they say (data checked on the Axes, not pixels)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from kdlab import viz  # noqa: E402


def test_soft_target_bars_are_softmax_at_each_temperature():
    logits = torch.tensor([3.0, 1.0, 0.0])
    ax = viz.plot_soft_targets(logits, ["cat", "dog", "car"], temperatures=(1, 10), label=0)
    heights = [p.get_height() for p in ax.patches]
    assert np.allclose(heights[:3], torch.softmax(logits, 0).numpy())
    assert np.allclose(heights[3:], torch.softmax(logits / 10, 0).numpy())
    assert ax.get_yscale() == "log"
    plt.close("all")
    with pytest.raises(ValueError, match="3 logits but 2 class names"):
        viz.plot_soft_targets(logits, ["a", "b"])


def test_history_curves_and_missing_metric():
    h = pd.DataFrame({"epoch": [1, 2, 3], "test_acc": [0.1, 0.5, 0.7]})
    ax = viz.plot_history({"kd": h})
    assert list(ax.lines[0].get_ydata()) == [0.1, 0.5, 0.7]
    long = pd.DataFrame({"arm": ["a"] * 4, "seed": [0, 0, 1, 1], "epoch": [1, 2, 1, 2], "test_acc": [.1, .3, .2, .5]})
    viz.plot_history(long)
    with pytest.raises(KeyError, match="val_acc"):
        viz.plot_history(h, "val_acc")
    plt.close("all")


def test_reliability_diagram_and_matrix():
    torch.manual_seed(0)
    logits, labels = torch.randn(200, 5) * 3, torch.randint(0, 5, (200,))
    ax = viz.reliability_diagram(logits, labels, n_bins=5)
    assert "ECE" in ax.get_legend().get_texts()[1].get_text()
    viz.plot_matrix(torch.eye(3), ["a", "b", "c"], title="similarity")
    plt.close("all")
