"""Tests for kdlab.temperature: hand values and the properties notebook 02 states (Hinton et al. 2015)."""
import math

import pandas as pd
import pytest
import torch

from kdlab import temperature as tm
from kdlab.experiment import Arm
from kdlab.losses import KD, CrossEntropy


def random_logits(b=16, k=10, seed=0, scale_t=3.0):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, k, generator=g, dtype=torch.float64)
    zt = scale_t * torch.randn(b, k, generator=g, dtype=torch.float64)
    return zs, zt


def softmax(row, temp=1.0):
    e = [math.exp(v / temp) for v in row]
    return [v / sum(e) for v in e]


# ---------------------------------------------------------------- entropy

def test_entropy_hand_values_in_nats():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    h = tm.entropy(p)
    hand = -(0.1 * math.log(0.1) + 0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.4 * math.log(0.4))
    assert h.tolist() == pytest.approx([math.log(2), math.log(4), 0.0, hand], abs=1e-6)
    assert h.shape == (4,)  # one entropy per row, not a batch total


def test_entropy_zero_probabilities_are_finite_and_one_hot_is_positive_zero():
    h = tm.entropy(torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.isfinite(h).all() and h.item() == 0.0 and math.copysign(1, h.item()) == 1


def test_entropy_along_another_dim():
    p = torch.tensor([[0.5, 1.0], [0.5, 0.0]])  # columns are distributions
    assert tm.entropy(p, dim=0).tolist() == pytest.approx([math.log(2), 0.0])


def test_entropies_hand_values_at_two_temperatures():
    z = [0.0, math.log(3)]  # T=1: p = (1/4, 3/4); T=2: p proportional to (1, sqrt 3)
    h = tm.entropies(torch.tensor([z], dtype=torch.float64), [1, 2])
    for i, t in enumerate([1, 2]):
        p = softmax(z, t)
        assert h[i, 0].item() == pytest.approx(-sum(q * math.log(q) for q in p), rel=1e-12)


def test_entropy_grows_with_temperature_for_every_row_and_tends_to_log_k():
    zs, zt = random_logits(b=64)
    ts = [0.25, 0.5, 1, 2, 4, 8, 16, 64]
    h = tm.entropies(zt, ts)
    assert h.shape == (len(ts), 64)
    assert (h.diff(dim=0) > 0).all()
    assert (h <= math.log(10) + 1e-12).all()
    assert tm.entropies(zt, [1e4]).min().item() == pytest.approx(math.log(10), rel=1e-6)


def test_entropy_curve_columns_and_constant_logits_are_uniform_at_every_t():
    zs, zt = random_logits()
    curve = tm.entropy_curve(zt, [1, 4, 16])
    assert list(curve.columns) == ["T", "entropy", "entropy_min", "entropy_max", "fraction"]
    assert curve["T"].tolist() == [1, 4, 16]
    assert (curve["entropy_min"] <= curve["entropy"]).all() and (curve["entropy"] <= curve["entropy_max"]).all()
    flat = tm.entropy_curve(torch.full((3, 5), 2.0), [0.5, 1, 10])
    assert flat["entropy"].tolist() == pytest.approx([math.log(5)] * 3)
    assert flat["fraction"].tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize("bad", [[], [0], [-1.0], [float("inf")], [1, float("nan")]])
def test_bad_temperatures_are_refused(bad):
    with pytest.raises(ValueError):
        tm.entropy_curve(torch.randn(2, 3), bad)


@pytest.mark.parametrize("bad, error, says", [
    (4, TypeError, r"list of numbers, e\.g\. \(1, 4, 16\), got 4; for a single temperature write \(4,\)"),
    ("1, 4", TypeError, "list of numbers"),
    ((1, True), TypeError, "must be a number, got bool"),
    ((1, "4"), TypeError, "must be a number, got str"),
    (torch.tensor(4.0), TypeError, "write \\(4.0,\\)"),
])
def test_a_sweep_given_one_temperature_or_non_numbers_says_what_to_write(bad, error, says):
    with pytest.raises(error, match=says):
        tm.kd_arms("resnet8", bad, teacher=torch.nn.Linear(1, 1))


def test_sweep_temperatures_accept_any_sequence_of_numbers():
    import numpy as np
    for ok in ([1, 4], (1.0, 4.0), range(1, 5, 3), np.array([1, 4]), torch.tensor([1.0, 4.0])):
        assert [a.objective.temperature for a in tm.kd_arms("resnet8", ok, teacher=torch.nn.Linear(1, 1))] == [1.0, 4.0]


def test_bad_logit_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        tm.entropy_curve(torch.randn(2, 3, 4), [1])
    with pytest.raises(ValueError, match="differ in shape"):
        tm.soft_gradient(torch.randn(2, 3), torch.randn(2, 4), 1)


# ---------------------------------------------------------------- the soft term's gradient

@pytest.mark.parametrize("t", [1.0, 3.0, 10.0])
def test_soft_gradient_matches_hand_formula(t):
    # d/dz_s of T^2 KL(p_t^T || p_s^T), batchmean over B: (T / B) (p_s^T - p_t^T); without T^2: / (T B)
    zs, zt = random_logits(b=4, k=5)
    ps = torch.softmax(zs / t, 1)
    pt = torch.softmax(zt / t, 1)
    assert torch.allclose(tm.soft_gradient(zs, zt, t), t / 4 * (ps - pt), atol=1e-12)
    assert torch.allclose(tm.soft_gradient(zs, zt, t, t_squared=False), (ps - pt) / (t * 4), atol=1e-12)


def test_soft_gradient_does_not_depend_on_batch_size_convention_in_norms():
    zs, zt = random_logits(b=32)
    whole = tm.soft_gradient_norms(zs, zt, [2.0])
    half = tm.soft_gradient_norms(zs[:16], zt[:16], [2.0])
    rest = tm.soft_gradient_norms(zs[16:], zt[16:], [2.0])
    # mean over samples of per-sample norms: the whole batch is the average of its halves
    assert whole["with_t2"].item() == pytest.approx((half["with_t2"].item() + rest["with_t2"].item()) / 2)


def test_soft_gradient_norms_one_sample_by_hand():
    zs, zt = [0.5, -0.2, 1.0], [2.0, 0.0, -1.0]
    t = 4.0
    d = [a - b for a, b in zip(softmax(zs, t), softmax(zt, t))]
    hand = t * math.sqrt(sum(v * v for v in d))
    g = tm.soft_gradient_norms(torch.tensor([zs], dtype=torch.float64), torch.tensor([zt], dtype=torch.float64), [t])
    assert list(g.columns) == ["T", "with_t2", "without_t2"]
    assert g["with_t2"].item() == pytest.approx(hand, rel=1e-10)
    assert g["without_t2"].item() == pytest.approx(hand / t ** 2, rel=1e-10)


def test_t_squared_keeps_gradient_scale_flat_and_without_it_falls_like_inverse_t_squared():
    zs, zt = random_logits(b=64)
    ts = [1, 2, 4, 8, 16, 32, 64]
    g = tm.soft_gradient_norms(zs, zt, ts)
    assert g["without_t2"].to_numpy() == pytest.approx(g["with_t2"].to_numpy() / g["T"].to_numpy() ** 2)
    spread = lambda s: s.max() / s.min()  # noqa: E731
    assert spread(g["with_t2"]) < 2
    assert spread(g["without_t2"]) > 1000
    # the with-T^2 norm levels off at ||z_s - z_t|| / K (centred logits)
    limit = (tm.centred(zs) - tm.centred(zt)).norm(dim=1).mean().item() / 10
    assert g["with_t2"].iloc[-1] == pytest.approx(limit, rel=0.01)


# ---------------------------------------------------------------- the high-T limit: logit matching

def test_logit_matching_two_classes_by_hand():
    # K=2, z = (a, -a): T^2 KL gradient for z_s,0 is T (sigmoid(2a/T) - sigmoid(2b/T)) -> (a - b) / 2
    a, b = 0.7, -0.4
    zs, zt = torch.tensor([[a, -a]], dtype=torch.float64), torch.tensor([[b, -b]], dtype=torch.float64)
    target = tm.logit_matching_gradient(zs, zt)
    assert target[0].tolist() == pytest.approx([(a - b) / 2, -(a - b) / 2])
    t = 50.0
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    g = tm.soft_gradient(zs, zt, t)
    assert g[0, 0].item() == pytest.approx(t * (sig(2 * a / t) - sig(2 * b / t)), rel=1e-10)


def test_logit_matching_error_shrinks_like_one_over_t():
    zs, zt = random_logits(b=32)
    e = tm.logit_matching_error(zs, zt, [10, 100, 1000])
    assert list(e.columns) == ["T", "rel_error"]
    assert e["rel_error"].is_monotonic_decreasing
    assert e["rel_error"].iloc[-1] < 0.01
    ratio = e["rel_error"].iloc[1] / e["rel_error"].iloc[2]
    assert 7 < ratio < 13  # one more decade of T, one decade less error


def test_logit_matching_error_ignores_a_shift_of_each_row():
    zs, zt = random_logits(b=8)
    shift = torch.arange(8, dtype=torch.float64).unsqueeze(1) * 5
    a = tm.logit_matching_error(zs, zt, [5, 50])
    b = tm.logit_matching_error(zs + shift, zt - shift, [5, 50])
    assert a["rel_error"].to_numpy() == pytest.approx(b["rel_error"].to_numpy(), rel=1e-9)


def test_logit_matching_error_refuses_identical_logits():
    z = torch.randn(3, 4)  # float32: the shift is not exact after rounding, and is still refused
    with pytest.raises(ValueError, match="equal up to a shift"):
        tm.logit_matching_error(z, z + 1, [1])
    tm.logit_matching_error(z, z + 1e-3 * torch.randn(3, 4), [1])  # a small real difference is fine


# ---------------------------------------------------------------- sweep helpers

def test_kd_arms_grid_names_objectives_and_the_labels_only_arm():
    teacher = object()
    arms = tm.kd_arms(["resnet8", "resnet14"], [1, 4], alphas=(0, 0.5, 0.9), teacher=teacher)
    assert len(arms) == 2 * (1 + 2 * 2)
    names = [a.name for a in arms]
    assert names[:5] == ["resnet8 labels only", "resnet8 T=1 a=0.5", "resnet8 T=4 a=0.5", "resnet8 T=1 a=0.9",
                         "resnet8 T=4 a=0.9"]
    ce = arms[0]
    assert isinstance(ce.objective, CrossEntropy) and ce.teacher is None
    kd = arms[4]
    assert isinstance(kd.objective, KD) and kd.teacher is teacher and kd.arch == "resnet8"
    assert (kd.objective.temperature, kd.objective.w_ce, kd.objective.w_kd) == pytest.approx((4, 0.1, 0.9))


def test_kd_arms_refuses_missing_teacher_and_bad_alpha():
    with pytest.raises(ValueError, match="teacher"):
        tm.kd_arms("resnet8", [4], alphas=(0.9,))
    with pytest.raises(ValueError, match="alpha"):
        tm.kd_arms("resnet8", [4], alphas=(1.5,), teacher=object())
    assert len(tm.kd_arms("resnet8", [4], alphas=(0,))) == 1  # labels only needs no teacher


def test_arm_names_are_stable():
    # names are part of checkpoint file names: a sweep re-run must find the same files
    assert tm.arm_name("resnet8", 4, 0.9) == "resnet8 T=4 a=0.9"
    assert tm.arm_name("resnet8", 2.5, 0.5) == "resnet8 T=2.5 a=0.5"
    assert tm.arm_name("resnet8", None, 0) == "resnet8 labels only"


def test_with_settings_adds_arch_t_and_alpha():
    arms = tm.kd_arms("resnet8", [1, 4], alphas=(0, 0.9), teacher=object())
    runs = pd.DataFrame({"arm": [a.name for a in arms], "seed": 0, "test_acc": [0.5, 0.6, 0.7]})
    out = tm.with_settings(runs, arms)
    assert out["arch"].tolist() == ["resnet8"] * 3
    assert out["alpha"].tolist() == [0.0, 0.9, 0.9]
    assert math.isnan(out["T"].iloc[0]) and out["T"].tolist()[1:] == [1.0, 4.0]
    with pytest.raises(KeyError):
        tm.with_settings(pd.DataFrame({"arm": ["other"], "seed": [0]}), arms)
    with pytest.raises(TypeError):
        tm.arm_settings([Arm("x", "resnet8", objective=lambda *a: 0)])


def test_best_temperatures_chooses_on_validation_and_reports_paired_test_intervals():
    arms = tm.kd_arms("resnet8", [1, 4, 16], alphas=(0, 0.9), teacher=object())
    # val prefers T=4; test differences T=4 - T=1 are 0.02, 0.04 over two seeds; T=4 - T=16 are 0.01, -0.01
    val = {"labels only": 0.9, "T=1": 0.50, "T=4": 0.60, "T=16": 0.55}  # labels-only arm ignored
    test = {0: {"labels only": 0.9, "T=1": 0.50, "T=4": 0.52, "T=16": 0.51},
            1: {"labels only": 0.9, "T=1": 0.40, "T=4": 0.44, "T=16": 0.45}}
    rows = []
    for seed in (0, 1):
        for a in arms:
            key = a.name.split(" ", 1)[1].replace(" a=0.9", "")
            rows.append({"arm": a.name, "seed": seed, "val_acc": val[key], "test_acc": test[seed][key]})
    runs = tm.with_settings(pd.DataFrame(rows), arms)
    best = tm.best_temperatures(runs)
    assert best["best_T"].tolist() == [4.0, 4.0] and best["other_T"].tolist() == [1.0, 16.0]
    assert best["diff"].tolist() == pytest.approx([0.03, 0.0], abs=1e-12)
    half = 12.706204736 * (0.02 / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(n)
    assert best["low"].iloc[0] == pytest.approx(0.03 - half, rel=1e-6)
    assert best["n"].tolist() == [2, 2] and best["significant"].tolist() == [False, False]
