"""Self-teaching: Tf-KD (label smoothing as KD, the virtual teacher, the mean -> batchmean conversion), DR-KD
rectification, born-again generations and ensembles, and the image resizing Tiny ImageNet at 32x32 uses.

Each test is tied to a statement in the modules' docstrings (kdlab/losses/tfkd.py, kdlab/losses/drkd.py,
kdlab/born_again.py); values are checked against hand computations on tiny examples, in float64 where the
library allows it.
"""
import json
import math
import warnings

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from kdlab import metrics
from kdlab.born_again import ensemble_logits, next_generation
from kdlab.data import get_data, resize_images
from kdlab.experiment import Arm, Results, run_arms
from kdlab.io import load_checked
from kdlab.losses import (DRKD, KD, CrossEntropy, TfKDReg, batchmean_weight, kd_loss, label_smoothing_as_kd,
                          published_self, rectified_fraction, rectify, self_kd, teacher_wrong, virtual_teacher)
from kdlab.losses.tfkd import PUBLISHED_SELF, conversion_table, uniform_entropy
from kdlab.recipe import Recipe
from kdlab.train import predict, state_digest

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one intra-op thread

# The tiny example of tests/test_losses.py: 2 samples x 3 classes.
S = [[1.0, 2.0, 0.5], [0.0, -1.0, 1.5]]   # student logits
T_ = [[2.0, 0.0, -1.0], [0.5, 0.3, 3.0]]  # teacher logits: row 0 wrong (argmax 0, label 1), row 1 right
Y = [1, 2]                                # labels
R_ = [[0.0, 2.0, -1.0], [0.5, 0.3, 3.0]]  # T_ rectified by hand: row 0's logits of classes 0 and 1 swapped


def softmax(row, temp=1.0):
    e = [math.exp(v / temp) for v in row]
    return [v / sum(e) for v in e]


def kl(p, q):
    """KL(p || q) = sum p log(p / q), by hand."""
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def hand_ce(rows, labels):
    return sum(-math.log(softmax(row)[y]) for row, y in zip(rows, labels)) / len(rows)


def hand_kl(first, second, temp):
    """batchmean KL(softmax(first/T) || softmax(second/T))."""
    return sum(kl(softmax(a, temp), softmax(b, temp)) for a, b in zip(first, second)) / len(first)


def tensors(dtype=torch.float64):
    return torch.tensor(S, dtype=dtype), torch.tensor(T_, dtype=dtype), torch.tensor(Y)


def random_logits(b, k, seed, dtype=torch.float64, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(b, k, generator=g, dtype=dtype)


def mixed_batch(b, k, seed, dtype):
    """Teacher logits (b, k) and labels where the teacher is right on about half the rows and wrong on the rest
    (at least one of each), with the wrong label drawn uniformly among the other classes."""
    g = torch.Generator().manual_seed(10_000 + seed)
    z = 3 * torch.randn(b, k, generator=g, dtype=dtype)
    top = z.argmax(1)
    right = torch.randperm(b, generator=g) < b // 2
    offset = torch.randint(1, k, (b,), generator=g)  # 1..k-1: never the argmax
    labels = torch.where(right, top, (top + offset) % k)
    return z, labels, right


def swap_reference(x, labels):
    """The rule written out row by row: where the argmax is not the label, exchange the two entries."""
    out = x.clone()
    for i, y in enumerate(labels.tolist()):
        j = int(x[i].argmax())
        if j != y:
            out[i, j], out[i, y] = x[i, y], x[i, j]
    return out


# ================================================================ rectify

RECTIFY_CASES = [(k, dtype) for k in (2, 3, 10, 100) for dtype in (torch.float32, torch.float64)]
SEEDS = range(12)


@pytest.mark.parametrize("k, dtype", RECTIFY_CASES)
def test_rectify_properties(k, dtype):
    for seed in SEEDS:
        z, y, right = mixed_batch(32, k, seed, dtype)
        assert right.any() and (~right).any()
        before = z.clone()
        out = rectify(z, y)
        # a new tensor, the input untouched
        assert out is not z and out.data_ptr() != z.data_ptr()
        assert torch.equal(z, before)
        assert out.dtype == dtype and out.shape == z.shape and out.device.type == "cpu"
        # rows where the teacher is right: bit-identical
        assert torch.equal(out[right], z[right])
        # afterwards the label is the argmax of every row
        assert torch.equal(out.argmax(1), y)
        # the label gets the old top value, the old top class the label's value
        rows, top = torch.arange(len(y)), z.argmax(1)
        assert torch.equal(out[rows, y], z[rows, top])
        assert torch.equal(out[rows, top], z[rows, y])
        # every other class keeps the teacher's value exactly
        others = torch.ones_like(z, dtype=torch.bool)
        others[rows, top] = False
        others[rows, y] = False
        assert torch.equal(out[others], z[others])
        # ... which is the row-by-row rule
        assert torch.equal(out, swap_reference(z, y))
        # a wrong row really changed
        assert not torch.equal(out[~right], z[~right])


@pytest.mark.parametrize("k, dtype", RECTIFY_CASES)
@pytest.mark.parametrize("temp", [0.5, 1.0, 4.0, 20.0])
def test_rectify_commutes_with_softmax(k, dtype, temp):
    # Softmax is permutation-equivariant: rectify then soften == soften then swap the probabilities.
    for seed in SEEDS:
        z, y, _ = mixed_batch(32, k, seed, dtype)
        p = F.softmax(z / temp, dim=1)
        swapped = swap_reference(p, y)
        torch.testing.assert_close(F.softmax(rectify(z, y) / temp, dim=1), swapped)
        # and rectify itself works on probabilities as on logits
        assert torch.equal(rectify(p, y), swapped)


@pytest.mark.parametrize("labels, expected", [
    ([2, 2], [[1.0, 2.0, 3.0], [0.5, 0.2, 4.0]]),  # row 0 wrong (top class 1): 3 and 2 swap; row 1 right
    ([0, 1], [[3.0, 1.0, 2.0], [0.5, 4.0, 0.2]]),  # both wrong: 1<->0 in row 0, 2<->1 in row 1
])
def test_rectify_by_hand(labels, expected):
    z = torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.2, 4.0]])
    assert torch.equal(rectify(z, torch.tensor(labels)), torch.tensor(expected))


def test_rectify_tie_with_the_label_changes_nothing():
    # argmax picks class 0, the label 1 ties it: the swap exchanges equal values, the label stays a maximum
    z = torch.tensor([[2.0, 2.0, 0.0]])
    assert torch.equal(rectify(z, torch.tensor([1])), z)


def test_rectify_returns_a_new_tensor_even_when_nothing_is_wrong():
    z = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    out = rectify(z, z.argmax(1))
    assert torch.equal(out, z) and out.data_ptr() != z.data_ptr()
    out[0, 0] = -100.0
    assert z[0, 0] == 3.0


@pytest.mark.parametrize("logits, labels, error, match", [
    (torch.zeros(2, 3), torch.tensor([0, 3]), ValueError, r"labels span \[0, 3\].*3 classes"),
    (torch.zeros(2, 3), torch.tensor([-1, 0]), ValueError, r"labels span \[-1, 0\]"),
    (torch.zeros(2, 3), torch.tensor([[0], [1]]), ValueError, "labels must be 1-D"),
    (torch.zeros(2, 3), torch.tensor([0, 1, 2]), ValueError, r"labels must be 1-D.*shape \(2,\)"),
    (torch.zeros(3), torch.tensor([0]), ValueError, "teacher_logits must be 2-D"),
    (torch.zeros(2, 3, 4), torch.tensor([0, 1]), ValueError, "teacher_logits must be 2-D"),
    (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), TypeError, "labels must be integer class indices"),
    (torch.zeros(2, 3), [0, 1], TypeError, "labels must be a torch.Tensor"),
    (torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), TypeError, "teacher_logits must be floating"),
])
def test_rectify_errors_are_helpful(logits, labels, error, match):
    with pytest.raises(error, match=match):
        rectify(logits, labels)


def test_teacher_wrong_and_rectified_fraction():
    z, y, right = mixed_batch(40, 10, 0, torch.float64)
    assert torch.equal(teacher_wrong(z, y), ~right)
    assert rectified_fraction(z, y) == pytest.approx((~right).sum().item() / 40)


# ================================================================ DR-KD

@pytest.mark.parametrize("temp, w_ce, w_kd", [(6.0, 0.05, 0.475), (4.0, 0.1, 0.9), (1.0, 0.5, 0.5)])
def test_drkd_by_hand(temp, w_ce, w_kd):
    expected = w_ce * hand_ce(S, Y) + w_kd * temp ** 2 * hand_kl(R_, S, temp)
    zs, zt, y = tensors()
    loss, stats = DRKD(temperature=temp, w_ce=w_ce, w_kd=w_kd)(zs, zt, y)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert float(stats["rectified"]) == 0.5
    # the same as Hinton KD from the rectified teacher
    via_kd = kd_loss(zs, rectify(zt, y), y, temperature=temp, w_ce=w_ce, w_kd=w_kd)
    assert loss.item() == pytest.approx(via_kd.item(), rel=1e-12)
    # and not KD from the unrectified teacher
    assert loss.item() != pytest.approx(kd_loss(zs, zt, y, temperature=temp, w_ce=w_ce, w_kd=w_kd).item(), rel=1e-3)


@pytest.mark.parametrize("k, n_wrong", [(2, 1), (10, 13), (100, 40), (10, 0)])
def test_drkd_reports_the_fraction_of_wrong_teacher_rows(k, n_wrong):
    g = torch.Generator().manual_seed(k + n_wrong)
    zt = torch.randn(40, k, generator=g, dtype=torch.float64)
    zs = torch.randn(40, k, generator=g, dtype=torch.float64)
    top = zt.argmax(1)
    y = top.clone()
    y[:n_wrong] = (top[:n_wrong] + 1) % k
    _, stats = DRKD()(zs, zt, y)
    assert float(stats["rectified"]) == pytest.approx(n_wrong / 40, abs=1e-7)
    assert rectified_fraction(zt, y) == pytest.approx(n_wrong / 40, abs=1e-7)


def test_drkd_label_smoothing_touches_only_the_hard_term():
    zs, zt = random_logits(16, 10, 1), random_logits(16, 10, 2)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(3))
    plain, smooth = DRKD(temperature=4.0, w_ce=0.3, w_kd=0.7), DRKD(temperature=4.0, w_ce=0.3, w_kd=0.7,
                                                                     label_smoothing=0.1)
    (l0, s0), (l1, s1) = plain(zs, zt, y), smooth(zs, zt, y)
    soft = 0.7 * kd_loss(zs, rectify(zt, y), y, temperature=4.0, w_ce=0.0, w_kd=1.0)
    hard_smooth = F.cross_entropy(zs, y, label_smoothing=0.1)
    assert l1.item() == pytest.approx(0.3 * hard_smooth.item() + soft.item(), rel=1e-12)
    assert l0.item() == pytest.approx(0.3 * F.cross_entropy(zs, y).item() + soft.item(), rel=1e-12)
    # the soft term (and the rectification) is the same with smoothing on or off
    assert (l1 - 0.3 * hard_smooth).item() == pytest.approx((l0 - 0.3 * F.cross_entropy(zs, y)).item(), rel=1e-12)
    assert float(s0["rectified"]) == float(s1["rectified"]) > 0
    assert l1.item() != pytest.approx(l0.item(), rel=1e-4)  # the smoothing did something


def test_drkd_sends_no_gradient_to_the_teacher():
    zs, zt, y = tensors()
    zs.requires_grad_(True)
    zt.requires_grad_(True)
    loss, _ = DRKD()(zs, zt, y)
    loss.backward()
    assert zs.grad is not None and zs.grad.abs().sum() > 0
    assert zt.grad is None or not zt.grad.any()
    # rectify alone does not build a graph either
    assert not rectify(zt, y).requires_grad


def test_drkd_with_an_always_right_teacher_is_plain_kd():
    for seed in range(5):
        zs, zt = random_logits(16, 10, seed), random_logits(16, 10, 100 + seed)
        y = zt.argmax(1)
        loss, stats = DRKD(temperature=3.0, w_ce=0.2, w_kd=0.8)(zs, zt, y)
        assert torch.equal(loss, kd_loss(zs, zt, y, temperature=3.0, w_ce=0.2, w_kd=0.8))
        assert float(stats["rectified"]) == 0.0


def test_drkd_catches_swapped_student_and_teacher():
    # In the tiny example the student is right on both rows and the teacher wrong on row 0: called with the
    # arguments swapped, DR-KD would rectify nothing and would measure another loss.
    zs, zt, y = tensors()
    assert not teacher_wrong(zs, y).any() and teacher_wrong(zt, y).tolist() == [True, False]
    expected = 0.05 * hand_ce(S, Y) + 0.475 * 36 * hand_kl(R_, S, 6.0)
    loss, stats = DRKD()(zs, zt, y)
    swapped, swapped_stats = DRKD()(zt, zs, y)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert swapped.item() != pytest.approx(expected, rel=1e-3)
    assert float(stats["rectified"]) == 0.5 and float(swapped_stats["rectified"]) == 0.0


def test_drkd_defaults_are_published_resnet18_self_setting():
    d, p = DRKD(), published_self("ResNet18")
    assert (d.temperature, d.w_ce, d.w_kd) == (p.temperature, pytest.approx(p.w_ce), pytest.approx(p.w_kd))
    assert DRKD.needs_teacher
    assert repr(DRKD(label_smoothing=0.1)) == "DRKD(temperature=6.0, w_ce=0.05, w_kd=0.475, label_smoothing=0.1)"
    for bad in (-0.1, 1.0, True, "0.1"):
        with pytest.raises(ValueError, match="label_smoothing"):
            DRKD(label_smoothing=bad)


# ================================================================ label smoothing as KD

@pytest.mark.parametrize("k", [2, 3, 10, 100])
@pytest.mark.parametrize("a", [0.0, 0.05, 0.1, 0.3, 0.9])
def test_label_smoothing_is_kd_from_uniform_plus_a_ln_k(k, a):
    z = random_logits(8, k, k)
    y = torch.arange(8) % k
    diff = F.cross_entropy(z, y, label_smoothing=a) - label_smoothing_as_kd(z, y, a)
    assert diff.item() == pytest.approx(a * math.log(k), abs=1e-12)
    assert uniform_entropy(k) == pytest.approx(math.log(k), rel=1e-15)
    # the constant does not change the gradient: both train identically
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    F.cross_entropy(z1, y, label_smoothing=a).backward()
    label_smoothing_as_kd(z2, y, a).backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("a", [0.1, 0.3])
def test_label_smoothing_as_kd_by_hand(a):
    u = [1 / 3] * 3
    expected = (1 - a) * hand_ce(S, Y) + a * sum(kl(u, softmax(row)) for row in S) / 2  # KL(u || p)
    zs, _, y = tensors()
    assert label_smoothing_as_kd(zs, y, a).item() == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_as_kd_rejects_bad_smoothing():
    zs, _, y = tensors()
    for bad, error in ((1.0, ValueError), (-0.1, ValueError), (torch.tensor(0.1), TypeError)):
        with pytest.raises(error, match="smoothing"):
            label_smoothing_as_kd(zs, y, bad)


# ================================================================ the virtual teacher and Tf-KD reg

@pytest.mark.parametrize("k", [2, 3, 10, 100])
@pytest.mark.parametrize("c", ["1/K", 0.5, 0.9, 0.99])
def test_virtual_teacher_rows(k, c):
    c = 1 / k if c == "1/K" else c  # 1/K: the uniform distribution, the smallest allowed
    y = torch.arange(7) % k
    p = virtual_teacher(y, k, c)
    assert p.shape == (7, k)
    torch.testing.assert_close(p.sum(1), torch.ones(7))
    rows = torch.arange(7)
    torch.testing.assert_close(p[rows, y], torch.full((7,), c))
    others = torch.ones_like(p, dtype=torch.bool)
    others[rows, y] = False
    torch.testing.assert_close(p[others], torch.full((7 * (k - 1),), (1 - c) / (k - 1)))


def test_code_form_targets_are_almost_uniform():
    # softmax(p_d / T) at T = 20, K = 100: 0.0105 on the label, ~0.0100 on every other class
    y = torch.tensor([3, 97])
    t = TfKDReg(temperature=20.0, form="code").targets(y, 100)
    rows = torch.arange(2)
    assert [round(v, 4) for v in t[rows, y].tolist()] == [0.0105, 0.0105]
    others = torch.ones_like(t, dtype=torch.bool)
    others[rows, y] = False
    assert (t[others] - 0.0100).abs().max() < 1e-5
    # the paper's form, softmax(log p_d / T) = p_d^(1/T) normalised, keeps far more of the label
    c, o = 0.99 ** (1 / 20), (0.01 / 99) ** (1 / 20)
    paper = TfKDReg(temperature=20.0, form="paper").targets(y, 100)
    assert paper[0, 3].item() == pytest.approx(c / (c + 99 * o), rel=1e-5)
    assert paper[0, 0].item() == pytest.approx(o / (c + 99 * o), rel=1e-5)


def hand_virtual(c, k):
    return [[c if j == y else (1 - c) / (k - 1) for j in range(k)] for y in Y]


# The virtual teacher is built in the logits' dtype, so the float64 comparisons hold to rounding.
TFKD_REL = 1e-12


@pytest.mark.parametrize("temp", [1.0, 4.0, 20.0])
@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_tfkd_reg_paper_form_by_hand(temp, alpha):
    p_d = hand_virtual(0.99, 3)
    teacher_logits = [[math.log(v) for v in row] for row in p_d]  # softmax(log p_d / T)
    expected = (1 - alpha) * hand_ce(S, Y) + alpha * temp ** 2 * hand_kl(teacher_logits, S, temp)
    zs, _, y = tensors()
    got = TfKDReg(alpha=alpha, temperature=temp, form="paper")(zs, None, y)
    assert got.item() == pytest.approx(expected, rel=TFKD_REL)


@pytest.mark.parametrize("temp", [1.0, 4.0, 20.0])
@pytest.mark.parametrize("alpha, m", [(0.9, 1.0), (0.95, 50.0)])
def test_tfkd_reg_code_form_by_hand(temp, alpha, m):
    p_d = hand_virtual(0.99, 3)
    targets = [softmax(row, temp) for row in p_d]  # the probabilities treated as logits
    soft = sum(kl(t, softmax(s)) for t, s in zip(targets, S)) / 2  # the student at T = 1, no T^2
    expected = (1 - alpha) * hand_ce(S, Y) + alpha * m / 3 * soft
    zs, _, y = tensors()
    got = TfKDReg(alpha=alpha, temperature=temp, form="code", multiplier=m)(zs, None, y)
    assert got.item() == pytest.approx(expected, rel=TFKD_REL)


@pytest.mark.parametrize("temp", [1.0, 4.0, 20.0])
def test_tfkd_reg_gradients_say_where_the_temperature_acts(temp):
    # code form: d/dz = (1-a)(p - onehot)/B + a m/K (softmax(z) - softmax(p_d/T))/B: the student at T = 1
    # paper form: d/dz = (1-a)(p - onehot)/B + a T (softmax(z/T) - softmax(log p_d/T))/B
    k, b, a, m = 10, 6, 0.9, 50.0
    z = random_logits(b, k, 7)
    y = torch.arange(b) % k
    p_d = torch.full((b, k), 0.01 / (k - 1), dtype=torch.float64)
    p_d[torch.arange(b), y] = 0.99
    ce_grad = (F.softmax(z, 1) - F.one_hot(y, k)) / b
    expected = {"code": ce_grad * (1 - a) + a * m / k * (F.softmax(z, 1) - F.softmax(p_d / temp, 1)) / b,
                "paper": ce_grad * (1 - a) + a * temp * (F.softmax(z / temp, 1) - F.softmax(p_d.log() / temp, 1)) / b}
    for form, want in expected.items():
        zz = z.clone().requires_grad_(True)
        TfKDReg(alpha=a, temperature=temp, form=form, multiplier=m)(zz, None, y).backward()
        torch.testing.assert_close(zz.grad, want, rtol=1e-6, atol=1e-9)


def test_tfkd_reg_is_float64_exact_on_float64_logits():
    p_d = hand_virtual(0.99, 3)
    teacher_logits = [[math.log(v) for v in row] for row in p_d]
    expected = 0.1 * hand_ce(S, Y) + 0.9 * 16 * hand_kl(teacher_logits, S, 4.0)
    zs, _, y = tensors()
    assert TfKDReg(alpha=0.9, temperature=4.0)(zs, None, y).item() == pytest.approx(expected, rel=1e-12)


def test_tfkd_reg_needs_no_teacher():
    assert TfKDReg.needs_teacher is False and KD.needs_teacher is True
    zs, _, y = tensors()
    for form in ("paper", "code"):
        loss = TfKDReg(form=form)(zs, None, y)
        assert loss.dim() == 0 and torch.isfinite(loss)
        # a teacher's logits, when given, are ignored
        assert torch.equal(TfKDReg(form=form)(zs, torch.randn(2, 3, dtype=torch.float64), y), loss)
    assert repr(TfKDReg(form="code", multiplier=50)) == ("TfKDReg(alpha=0.9, temperature=20.0, correct_prob=0.99, "
                                                         "form='code', multiplier=50.0)")


@pytest.mark.parametrize("kw, match", [
    (dict(alpha=0.0), "alpha must be in"),
    (dict(alpha=1.0), "alpha must be in"),
    (dict(alpha=-0.5), "alpha"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=0.0), "temperature"),
    (dict(form="other"), "form must be"),
    (dict(multiplier=-1.0), "multiplier"),
])
def test_tfkd_reg_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        TfKDReg(**kw)


def test_correct_prob_below_one_over_k_is_refused():
    y = torch.tensor([0, 1])
    for c in (0.05, 1.0):
        with pytest.raises(ValueError, match="correct_prob"):
            virtual_teacher(y, 10, c)
        with pytest.raises(ValueError, match="correct_prob"):  # K is known only at call time
            TfKDReg(correct_prob=c)(torch.zeros(2, 10), None, y)
    assert virtual_teacher(y, 10, 0.1).sum().item() == pytest.approx(2.0)  # 1/K itself is allowed (uniform)
    with pytest.raises(ValueError, match="num_classes"):
        virtual_teacher(y, 1)


# ================================================================ mean -> batchmean, published settings

@pytest.mark.parametrize("k", [3, 10, 100])
@pytest.mark.parametrize("alpha, m", [(0.95, 50.0), (0.9, 1.0), (0.5, 10.0)])
def test_batchmean_weight_matches_kldivloss_mean_numerically(k, alpha, m):
    zs, zt = random_logits(12, k, 1), random_logits(12, k, 2)
    log_p_s, p_t = F.log_softmax(zs / 4, 1), F.softmax(zt / 4, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KLDivLoss warns that 'mean' divides by B*K: that is the point here
        published = torch.nn.KLDivLoss()(log_p_s, p_t) * m * alpha
    kdlab = batchmean_weight(alpha, m, k) * F.kl_div(log_p_s, p_t, reduction="batchmean")
    assert published.item() == pytest.approx(kdlab.item(), rel=1e-12)


@pytest.mark.parametrize("name", list(PUBLISHED_SELF))
def test_published_self_equals_the_public_code_loss(name):
    # The public Tf-KD self loss: (1 - a) CE + a * KLDivLoss()(log softmax(z_s/T), softmax(z_t/T)) * T^2 * m,
    # on CIFAR-100 (K = 100).
    s = PUBLISHED_SELF[name]
    a, t, m = s["alpha"], s["temperature"], s["multiplier"]
    zs, zt = random_logits(16, 100, 3), random_logits(16, 100, 4)
    y = torch.arange(16) * 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d_kl = torch.nn.KLDivLoss()(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1)) * t * t * m
    public = (1 - a) * F.cross_entropy(zs, y) + a * d_kl
    assert published_self(name)(zs, zt, y).item() == pytest.approx(public.item(), rel=1e-10)


def test_published_settings_converted():
    r18 = published_self("ResNet18")
    assert isinstance(r18, KD)
    assert (r18.w_ce, r18.w_kd, r18.temperature) == (pytest.approx(0.05), pytest.approx(0.475), 6.0)
    mbv2 = published_self("MobileNetV2")
    assert (mbv2.w_ce, mbv2.w_kd, mbv2.temperature) == (pytest.approx(0.05), pytest.approx(0.0095), 20.0)
    assert published_self("ResNet18", num_classes=10).w_kd == pytest.approx(4.75)
    assert batchmean_weight(0.95, 50, 100) == pytest.approx(0.475)
    with pytest.raises(KeyError, match="ResNet18"):
        published_self("ResNet50")


def test_conversion_table():
    table = conversion_table()
    assert list(table.index) == list(PUBLISHED_SELF)
    row = table.loc["ResNet18"]
    assert row["w_ce"] == pytest.approx(0.05) and row["w_kd (batchmean)"] == pytest.approx(0.475)
    assert (row["T"], row["multiplier"], row["K"], row["alpha"]) == (6.0, 50.0, 100, 0.95)
    for name in PUBLISHED_SELF:
        assert table.loc[name, "w_kd (batchmean)"] == pytest.approx(published_self(name).w_kd)
    assert conversion_table(10).loc["ResNet18", "w_kd (batchmean)"] == pytest.approx(4.75)


def test_self_kd():
    kd = self_kd(0.9, 4.0)
    assert (kd.w_ce, kd.w_kd, kd.temperature) == (pytest.approx(0.1), 0.9, 4.0)
    assert self_kd(0.95, 6.0, multiplier=50, num_classes=100).w_kd == pytest.approx(0.475)
    with pytest.raises(ValueError, match="multiplier and num_classes together"):
        self_kd(0.95, 6.0, multiplier=50)
    with pytest.raises(ValueError, match="multiplier and num_classes together"):
        self_kd(0.95, 6.0, num_classes=100)
    with pytest.raises(ValueError, match="alpha"):
        self_kd(1.0, 4.0)
    for bad in (1, True, 2.5):
        with pytest.raises(ValueError, match="num_classes"):
            batchmean_weight(0.9, 1.0, bad)


# ================================================================ ensembles

@pytest.mark.parametrize("members", [2, 3, 5])
def test_ensemble_softmax_is_the_mean_of_the_members_softmaxes(members):
    zs = [random_logits(8, 10, seed, torch.float32, scale=1.0 + 2 * seed) for seed in range(members)]
    ens = ensemble_logits(zs)
    mean = torch.stack([F.softmax(z, 1) for z in zs]).mean(0)
    torch.testing.assert_close(F.softmax(ens, 1), mean)
    torch.testing.assert_close(ens.exp(), mean)  # already normalised: log of the mean
    # not the softmax of the mean logits
    assert (F.softmax(torch.stack(zs).mean(0), 1) - mean).abs().max() > 1e-2


def test_ensemble_of_one_is_its_log_softmax():
    z = random_logits(8, 10, 0, torch.float32)
    torch.testing.assert_close(ensemble_logits([z]), F.log_softmax(z, 1))


def test_ensemble_errors():
    with pytest.raises(ValueError, match="same shape"):
        ensemble_logits([torch.zeros(4, 10), torch.zeros(4, 9)])
    with pytest.raises(ValueError, match="same shape"):
        ensemble_logits([torch.zeros(4, 10), torch.zeros(5, 10)])
    with pytest.raises(ValueError, match="at least one"):
        ensemble_logits([])


# ================================================================ born-again generations

def test_next_generation_pairs_each_seed_with_its_own_teacher(data, tmp_path):
    recipe = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
    kw = dict(home=tmp_path, progress=False, eval_splits=("val",))
    gen2 = run_arms([Arm("generation 2", "resnet8", CrossEntropy())], data, recipe, seeds=(0, 1), **kw)
    digest = {s: state_digest(gen2.models["generation 2", s]) for s in (0, 1)}
    assert digest[0] != digest[1]
    gen3 = next_generation(gen2, "generation 3", KD(temperature=4.0), data, recipe, **kw)

    assert isinstance(gen3, Results)
    assert sorted(gen3.models) == [("generation 3", 0), ("generation 3", 1)]
    assert sorted(gen3.runs["seed"]) == [0, 1] and set(gen3.runs["arm"]) == {"generation 3"}
    assert set(gen3.histories["seed"]) == {0, 1} and "val_agreement" in gen3.histories
    for s in (0, 1):
        saved = [json.loads(load_checked(p)["fingerprint"]) for p in (tmp_path / "runs").glob(f"resnet8-seed{s}-*.pt")]
        [fingerprint] = [f for f in saved if f["teacher"] is not None]  # generation 3's run (generation 2 has none)
        assert fingerprint["teacher"] == {"arch": "resnet8", "weights": digest[s]}  # seed s's own teacher
        assert fingerprint["seed"] == s
        assert gen3.models["generation 3", s].arch == "resnet8"
        # the reported agreement is with that teacher
        student, teacher = gen3.models["generation 3", s], gen2.models["generation 2", s]
        agreement = metrics.agreement(predict(student, data, "val"), predict(teacher, data, "val"))
        row = gen3.runs[gen3.runs["seed"] == s].iloc[0]
        assert row["val_agreement"] == pytest.approx(agreement)
        assert state_digest(teacher) == digest[s]  # teaching left the teacher as it was


def test_next_generation_needs_previous_arm_with_several_arms():
    previous = Results(runs=pd.DataFrame(), histories=pd.DataFrame(),
                       models={("a", 0): object(), ("b", 0): object()})
    with pytest.raises(ValueError, match="previous_arm"):
        next_generation(previous, "next", KD(), None, Recipe(epochs=1))
    with pytest.raises(KeyError, match="'c'"):
        next_generation(previous, "next", KD(), None, Recipe(epochs=1), previous_arm="c")


# ================================================================ resizing

def test_resize_64_to_32_averages_2x2_blocks_by_hand():
    x = torch.zeros(1, 1, 64, 64, dtype=torch.uint8)
    x[0, 0, 0:2, 0:2] = torch.tensor([[10, 20], [30, 41]])      # 25.25 -> 25
    x[0, 0, 0:2, 2:4] = torch.tensor([[255, 255], [255, 254]])  # 254.75 -> 255 (no overflow)
    x[0, 0, 2:4, 0:2] = torch.tensor([[0, 0], [0, 3]])          # 0.75 -> 1
    x[0, 0, 62:64, 62:64] = torch.tensor([[1, 2], [2, 2]])      # 1.75 -> 2
    out = resize_images(x, 32)
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 32, 32)
    expected = torch.zeros(32, 32, dtype=torch.uint8)
    expected[0, 0], expected[0, 1], expected[1, 0], expected[31, 31] = 25, 255, 1, 2
    assert torch.equal(out[0, 0], expected)


@pytest.mark.parametrize("size", [32, 16])
def test_resize_matches_block_means_on_random_images(size):
    g = torch.Generator().manual_seed(size)
    x = torch.randint(0, 256, (5, 3, 64, 64), generator=g, dtype=torch.uint8)
    f = 64 // size
    mean = x.double().reshape(5, 3, size, f, size, f).mean(dim=(3, 5))
    out = resize_images(x, size)
    assert out.dtype == torch.uint8 and out.shape == (5, 3, size, size)
    tie = mean.frac() == 0.5  # x.5: either neighbour is a fair rounding
    assert torch.equal(out[~tie].double(), mean[~tie].round())
    assert ((out[tie].double() - mean[tie]).abs() == 0.5).all()
    assert torch.equal(resize_images(x, size, chunk=2), out)  # chunking changes nothing


def test_resize_same_size_returns_the_input():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert resize_images(x, 32) is x


@pytest.mark.parametrize("bad", [7, 0, -32, 16.0, True, "32", None])
def test_resize_bad_size(bad):
    with pytest.raises(ValueError, match="image_size"):
        resize_images(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), bad)


def test_get_data_image_size(data):
    small = get_data("cifar10", train_size=200, val_size=100, test_size=200, device="cpu", image_size=16)
    for split in ("train", "val", "test"):
        part, full = small.split(split), data.split(split)
        assert part.images.shape[1:] == (3, 16, 16)
        assert torch.equal(part.labels, full.labels)  # the same images, only smaller
        assert torch.equal(part.images, resize_images(full.images, 16))
    assert small.fingerprint["image_size"] == 16
    assert "image_size" not in data.fingerprint
    assert small.fingerprint["content_sha"] != data.fingerprint["content_sha"]


# ---------------------------------------------------------------- bad input found by review, now clear errors

def test_drkd_checks_the_pair_before_the_labels():
    with pytest.raises(ValueError, match="same shape"):
        DRKD()(torch.randn(2, 3), torch.randn(2, 5), torch.tensor([4, 4]))


def test_virtual_teacher_checks_the_label_range_and_type():
    for bad in (torch.tensor([5]), torch.tensor([-1])):
        with pytest.raises(ValueError, match="num_classes=3"):
            virtual_teacher(bad, 3)
    with pytest.raises(ValueError, match="integer"):
        virtual_teacher(torch.tensor([1.0]), 3)


def test_virtual_teacher_reads_no_label_values_off_the_cpu():
    """Tf-KD reg's targets must not read the labels back to the host on an accelerator (a sync every step). Tensors
    on the meta device have no values: reading one raises, so this fails if the range check reads them there."""
    y = torch.zeros(4, dtype=torch.long, device="meta")
    p = virtual_teacher(y, 10)
    assert p.device.type == "meta" and p.shape == (4, 10)


def test_drkd_accepts_numpy_label_smoothing():
    import numpy as np
    assert DRKD(label_smoothing=np.float32(0.1)).label_smoothing == pytest.approx(0.1)
