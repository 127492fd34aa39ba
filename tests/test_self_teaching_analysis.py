"""kdlab.self_teaching: the analysis helpers of notebooks 03 and 04, on hand-made inputs with known answers."""
import pandas as pd
import pytest
import torch

from kdlab import self_teaching


def test_confidence_is_the_mean_top_probability():
    z = torch.tensor([[0.0, 0.0], [0.0, 100.0]])
    assert self_teaching.confidence(z) == pytest.approx(0.75)


def test_best_epoch_gap_by_hand():
    h = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3, "seed": [0] * 6, "epoch": [1, 2, 3] * 2,
                      "test_acc": [0.5, 0.7, 0.6, 0.4, 0.5, 0.6]})
    gap = self_teaching.best_epoch_gap(h.sample(frac=1.0, random_state=0)).set_index("arm")  # order must not matter
    assert gap.loc["a", "last"] == 0.6 and gap.loc["a", "best"] == 0.7 and gap.loc["a", "gap"] == pytest.approx(0.1)
    assert gap.loc["b", "gap"] == 0.0
    with pytest.raises(KeyError, match="val_acc"):
        self_teaching.best_epoch_gap(h, "val_acc")


def test_training_cost_counts_the_teacher():
    class Teacher:
        cache_info = {"trained_seconds": 30.0}
    runs = pd.DataFrame({"arm": ["base", "base", "self", "self"], "train_seconds": [10.0, 12.0, 14.0, 16.0]})
    cost = self_teaching.training_cost(Teacher(), runs, "base", ["self"])
    assert cost.loc["base", "total_s"] == 11.0 and cost.loc["base", "x baseline"] == 1.0
    assert cost.loc["self", "total_s"] == 45.0 and cost.loc["self", "x baseline"] == pytest.approx(45 / 11)
    with pytest.raises(ValueError, match="get_teacher"):
        self_teaching.training_cost(object(), runs, "base", ["self"])


def test_rectification_example_prefers_a_confident_mistake_with_the_label_second():
    z = torch.tensor([[5.0, 0.0, 0.0],    # right
                      [9.0, 0.0, 1.0],    # wrong, label (2) second, very confident
                      [3.0, 9.5, 0.0],    # wrong, more confident, but the label (2) is third
                      [4.0, 0.0, 3.0]])   # wrong, label second, less confident
    y = torch.tensor([0, 2, 2, 2])
    assert self_teaching.rectification_example(z, y) == 1
    with pytest.raises(ValueError, match="nothing to rectify"):
        self_teaching.rectification_example(z[:1], y[:1])


def test_score_models_reports_agreement_with_the_reference(data):
    from kdlab.train import build, predict
    m = build("resnet8", data.num_classes, seed=0)
    ref = predict(m, data, "test")
    s = self_teaching.score_models({("a", 0): m}, data, "test", reference=ref,
                                   extra={("ens", 0): ref.clone()})
    assert list(s["arm"]) == ["a", "ens"]
    assert (s["agreement"] == 1.0).all() and s["kl"].abs().max() < 1e-6
    assert s["acc"].between(0, 1).all() and s["confidence"].between(1 / data.num_classes, 1).all()
