"""kdlab.dark_knowledge: class similarity, the omitted-class transfer set, the label-free bias shift."""
import pytest
import torch

from kdlab import dark_knowledge as dk
from kdlab.data import Data, ImageSet


def test_class_similarity_by_hand():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]]))
    S = dk.class_similarity(logits, torch.tensor([0, 0, 2]), 3)
    assert torch.allclose(S[0], torch.tensor([0.6, 0.3, 0.1]))  # mean of the two class-0 rows
    assert torch.allclose(S[2], torch.tensor([0.1, 0.1, 0.8]))
    assert torch.equal(S[1], torch.zeros(3))  # no image of class 1: an empty row, not NaN
    hot = dk.class_similarity(logits, torch.tensor([0, 0, 2]), 3, temperature=10)
    assert hot[0, 2] > S[0, 2]  # a higher T brings out the small probabilities


def _data():
    imgs = torch.zeros(30, 3, 4, 4, dtype=torch.uint8)
    labels = torch.arange(30) % 3
    split = ImageSet(imgs, labels)
    return Data("fake", ["a", "b", "c"], split, split.subset(range(6)), split.subset(range(9)),
                (0.5,) * 3, (0.2,) * 3, {"dataset": "fake", "train_size": 30})


def test_without_class_removes_it_from_training_only():
    d = dk.without_class(_data(), 1)
    assert 1 not in d.train.labels.tolist() and len(d.train) == 20
    assert 1 in d.test.labels.tolist() and 1 in d.val.labels.tolist()
    assert d.fingerprint["omitted_class"] == 1 and d.fingerprint["train_size"] == 20  # cache keys differ
    assert d.num_classes == 3  # the student still has an output for the omitted class
    with pytest.raises(ValueError, match="class 3 does not exist"):
        dk.without_class(_data(), 3)


def test_prior_matching_shift_hits_the_fraction_without_labels():
    torch.manual_seed(0)
    logits = torch.randn(1000, 10)
    logits[:, 4] -= 3  # class 4 is almost never predicted: a too-low bias
    assert (logits.argmax(1) == 4).float().mean() < 0.02
    d = dk.prior_matching_shift(logits, 4)
    shifted = logits.clone()
    shifted[:, 4] += d
    assert (shifted.argmax(1) == 4).sum() == 100  # exactly 1/K of the images
    d2 = dk.prior_matching_shift(logits, 4, fraction=0.3)
    assert d2 > d
    with pytest.raises(ValueError, match="fraction"):
        dk.prior_matching_shift(logits, 4, fraction=1.5)


def test_with_bias_shift_copies_and_shifts_one_logit():
    from kdlab.train import build
    model = build("resnet8", 10, device="cpu").eval()
    x = torch.randn(2, 3, 32, 32)
    shifted = dk.with_bias_shift(model, 3, 2.5)
    with torch.no_grad():
        diff = shifted(x) - model(x)
    assert torch.allclose(diff[:, 3], torch.full((2,), 2.5)) and diff[:, [0, 1, 2, 4]].abs().max() < 1e-6
    assert float((shifted.classifier.bias[3] - model.classifier.bias[3]).detach()) == pytest.approx(2.5)  # original untouched


def test_class_recall():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    assert dk.class_recall(logits, torch.tensor([0, 0, 1, 1]), 0) == 0.5
    assert dk.class_recall(logits, torch.tensor([0, 0, 1, 1]), 1) == 0.5


def test_showcase_image_is_confident_correct_with_a_clear_runner_up():
    p = torch.tensor([[0.95, 0.03, 0.02],    # right, confident, runner-up barely above the third
                      [0.92, 0.075, 0.005],  # right, confident, clear runner-up: the one to show
                      [0.10, 0.85, 0.05],    # wrong (label 0)
                      [0.60, 0.39, 0.01]])   # right but not confident
    labels = torch.tensor([0, 0, 0, 0])
    assert dk.showcase_image(p.log(), labels) == 1
    assert dk.showcase_image(p.log(), labels, confident=0.99) == 0  # none confident: the most confident right one
    with pytest.raises(ValueError, match="none of these images right"):
        dk.showcase_image(p.log(), torch.tensor([2, 2, 2, 2]))
