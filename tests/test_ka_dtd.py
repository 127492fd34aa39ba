"""Knowledge Adjustment and Dynamic Temperature Distillation (kdlab.losses.ka, kdlab.losses.dtd): hand-computed
values and the properties of each method, each able to fail."""
import math

import pytest
import torch
import torch.nn.functional as F

from kdlab.losses import (DTD, KA, adjusted_targets, cwsm_weight, distillation_kl, dynamic_temperature,
                          flsw_weight, kd_loss, probability_shift, rectify, smoothed_one_hot)


def batch(b=64, k=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, k, generator=g, dtype=dtype)
    zt = 3 * torch.randn(b, k, generator=g, dtype=dtype)
    y = torch.randint(0, k, (b,), generator=g)
    y[: b // 2] = zt[: b // 2].argmax(1)  # half the teacher's rows right, the rest mostly wrong
    return zs, zt, y


# ---------------------------------------------------------------- KA

@pytest.mark.parametrize("method", ["ps", "lsr"])
@pytest.mark.parametrize("temp", [1.0, 4.0, 20.0])
def test_ka_leaves_right_rows_untouched_and_puts_the_label_on_top(method, temp):
    zs, zt, y = batch()
    before = zt.clone()
    target = adjusted_targets(zt, y, temp, method)
    assert torch.equal(zt, before)  # nothing modified in place
    right = zt.argmax(1) == y
    assert 0 < right.sum() < len(y)
    torch.testing.assert_close(target[right], F.softmax(zt[right] / temp, 1), rtol=0, atol=0)
    torch.testing.assert_close(target.sum(1), torch.ones(len(y), dtype=target.dtype))
    assert (target >= 0).all()
    label_value = target.gather(1, y[:, None]).squeeze(1)
    assert bool((label_value >= target.max(1).values).all())  # the label holds the top value


@pytest.mark.parametrize("temp", [0.5, 1.0, 4.0, 20.0])
def test_probability_shift_equals_the_logit_swap_at_any_temperature(temp):
    zs, zt, y = batch(seed=1)
    p = F.softmax(zt / temp, 1)
    torch.testing.assert_close(probability_shift(p, y), F.softmax(rectify(zt, y) / temp, 1))
    torch.testing.assert_close(adjusted_targets(zt, y, temp, "ps"), F.softmax(rectify(zt, y) / temp, 1))


def test_probability_shift_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    out = probability_shift(p, torch.tensor([1, 2]))
    assert out.flatten().tolist() == pytest.approx([0.2, 0.7, 0.1, 0.1, 0.3, 0.6])


def test_lsr_replaces_wrong_rows_by_the_smoothed_one_hot():
    zt = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])  # row 0 right, row 1 wrong
    target = adjusted_targets(zt, y, 4.0, "lsr", smoothing=0.1)
    assert target[1].tolist() == pytest.approx([0.1 / 3, 0.1 / 3, 0.9, 0.1 / 3])
    torch.testing.assert_close(target[0], F.softmax(zt[0] / 4.0, 0))
    assert smoothed_one_hot(torch.tensor([1]), 3, 0.0).tolist() == [[0.0, 1.0, 0.0]]


@pytest.mark.parametrize("method", ["ps", "lsr"])
def test_ka_loss_by_hand_and_adjusted_fraction(method):
    zs, zt, y = batch(b=16, k=5, seed=2)
    t, target = 4.0, adjusted_targets(zt, y, 4.0, method, 0.1)
    log_ps = F.log_softmax(zs / t, 1)
    kl = sum(float((target[i] * (target[i].clamp_min(1e-300).log() - log_ps[i])).sum()) for i in range(16)) / 16
    expected = 0.1 * float(F.cross_entropy(zs, y)) + 0.9 * t * t * kl
    loss, stats = KA(method, temperature=t, smoothing=0.1)(zs, zt, y)
    assert float(loss) == pytest.approx(expected, rel=1e-10)
    assert float(stats["adjusted"]) == pytest.approx(float((zt.argmax(1) != y).double().mean()))


def test_ka_ps_is_kd_from_the_rectified_teacher_and_kd_when_the_teacher_is_right():
    zs, zt, y = batch(seed=3)
    loss, _ = KA("ps")(zs, zt, y)
    assert float(loss) == pytest.approx(float(kd_loss(zs, rectify(zt, y), y)), rel=1e-10)
    y_right = zt.argmax(1)
    for method in ("ps", "lsr"):
        loss, stats = KA(method)(zs, zt, y_right)
        assert float(loss) == pytest.approx(float(kd_loss(zs, zt, y_right)), rel=1e-10)
        assert float(stats["adjusted"]) == 0.0


def test_ka_catches_swapped_student_and_teacher_and_sends_no_gradient_to_the_teacher():
    zs, zt, y = batch(seed=4)
    assert float(KA()(zs, zt, y)[0]) != pytest.approx(float(KA()(zt, zs, y)[0]), rel=1e-3)
    zt = zt.clone().requires_grad_(True)
    zs = zs.clone().requires_grad_(True)
    KA("lsr")(zs, zt, y)[0].backward()
    assert zt.grad is None and zs.grad is not None


def test_ka_bad_settings_say_what_to_do():
    with pytest.raises(ValueError, match="'ps' \\(probability shift\\) or 'lsr'"):
        KA("shift")
    with pytest.raises(ValueError, match="smoothing must be in \\[0, 1\\)"):
        KA("lsr", smoothing=1.0)


def test_softened_lsr_by_hand():
    # K = 10, eps = 0.1, T = 4: the label's 0.9 and each other class's 0.1/9 raised to 1/4 stand in the ratio
    # (0.9 / (0.1/9))^(1/4) = 81^(1/4) = 3, so the label gets 3/12 = 1/4 and every other class 1/12
    zt = torch.zeros(2, 10, dtype=torch.float64)
    zt[:, 3] = 5.0
    y = torch.tensor([3, 7])  # row 0 right, row 1 wrong (the teacher says 3)
    target = adjusted_targets(zt, y, 4.0, "lsr", smoothing=0.1, soften=True)
    assert target[1, 7].item() == pytest.approx(0.25, abs=1e-12)
    assert target[1, [k for k in range(10) if k != 7]].tolist() == pytest.approx([1 / 12] * 9, abs=1e-12)
    torch.testing.assert_close(target[0], F.softmax(zt[0] / 4.0, 0), rtol=0, atol=0)  # right rows untouched
    # at T = 1 softening changes nothing; with no smoothing the softened spike is the spike
    torch.testing.assert_close(adjusted_targets(zt, y, 1.0, "lsr", 0.1, soften=True),
                               adjusted_targets(zt, y, 1.0, "lsr", 0.1))
    assert adjusted_targets(zt, y, 4.0, "lsr", 0.0, soften=True)[1].tolist() == [0.0] * 7 + [1.0] + [0.0] * 2


def test_softened_lsr_is_minimised_by_a_student_whose_plain_output_is_the_smoothed_label():
    zt = torch.zeros(1, 10, dtype=torch.float64)
    zt[0, 3] = 5.0
    y = torch.tensor([7])
    q = smoothed_one_hot(y, 10, 0.1, dtype=torch.float64)
    at_q = torch.log(q).requires_grad_(True)  # a student whose T = 1 softmax is exactly q
    for soften, zero_gradient in ((True, True), (False, False)):
        loss, _ = KA("lsr", temperature=4.0, w_ce=0.0, w_kd=1.0, smoothing=0.1, soften=soften)(at_q, zt, y)
        (grad,) = torch.autograd.grad(loss, at_q)
        assert (grad.abs().max().item() < 1e-12) == zero_gradient
    # the unsoftened target at T = 4 needs the 17.6 logit margin instead
    margin = 4.0 * math.log(0.9 * 9 / 0.1)
    spike = torch.zeros(1, 10, dtype=torch.float64)
    spike[0, 7] = margin
    loss, _ = KA("lsr", temperature=4.0, w_ce=0.0, w_kd=1.0, smoothing=0.1)(spike, zt, y)
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    assert margin == pytest.approx(17.58, abs=0.01)


def test_softened_lsr_loss_by_hand_and_its_description():
    zs, zt, y = batch(b=16, k=5, seed=6)
    t = 4.0
    q = smoothed_one_hot(y, 5, 0.2, dtype=zt.dtype) ** (1 / t)
    q = q / q.sum(1, keepdim=True)
    target = torch.where((zt.argmax(1) != y)[:, None], q, F.softmax(zt / t, 1))
    log_ps = F.log_softmax(zs / t, 1)
    kl = float((target * (target.log() - log_ps)).sum()) / 16
    expected = 0.1 * float(F.cross_entropy(zs, y)) + 0.9 * t * t * kl
    loss, _ = KA("lsr", temperature=t, smoothing=0.2, soften=True)(zs, zt, y)
    assert float(loss) == pytest.approx(expected, rel=1e-10)
    assert repr(KA("lsr", soften=True)) != repr(KA("lsr"))  # two different runs, never one cached for the other
    assert "soften=True" in repr(KA("lsr", soften=True)) and "soften" not in repr(KA("ps"))
    with pytest.raises(ValueError, match="softens LSR"):
        KA("ps", soften=True)
    with pytest.raises(TypeError, match="True or False"):
        KA("lsr", soften="yes")


# ---------------------------------------------------------------- DTD

def test_batch_mean_of_the_dynamic_temperature_is_t0_before_clamping():
    w = torch.rand(128, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3
    t = dynamic_temperature(w, 8.0, 1.0, min_temperature=1e-6, max_temperature=1e6)
    assert float(t.mean()) == pytest.approx(8.0, abs=1e-6)
    # harder samples (larger w) get a lower temperature
    assert float(t[w.argmax()]) == float(t.min()) and float(t[w.argmin()]) == float(t.max())
    assert torch.allclose(t, (8.0 + (w.mean() - w)).float())


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_flsw_is_bounded_by_two_to_the_gamma(gamma):
    zs, zt, _ = batch(b=256, seed=6)
    w = flsw_weight(torch.cat([zs, zt, -zt]), torch.cat([zt, zt, zt]), gamma)
    assert bool((w >= 0).all() and (w <= 2 ** gamma + 1e-6).all())
    assert float(w[256:512].max()) == pytest.approx(0.0, abs=1e-6)       # same direction: cos = 1
    assert float(w[512:].min()) == pytest.approx(2 ** gamma, rel=1e-5)   # opposite: cos = -1
    t = dynamic_temperature(w, 8.0, 1.0, min_temperature=1e-6, max_temperature=1e6)
    assert bool((t >= 8.0 - 2 ** gamma - 1e-4).all() and (t <= 8.0 + 2 ** gamma + 1e-4).all())


def test_cwsm_by_hand_and_never_a_non_positive_temperature_after_clamping():
    z = torch.tensor([[0.0, 0.0], [0.0, 100.0]])
    assert cwsm_weight(z).tolist() == pytest.approx([1 / 0.501, 1 / 1.001])
    g = torch.Generator().manual_seed(7)
    zs = torch.cat([torch.zeros(32, 100), 30 * torch.randn(32, 100, generator=g)])  # unsure and very sure
    raw = dynamic_temperature(cwsm_weight(zs), 4.0, 1.0, min_temperature=1e-9, max_temperature=1e9)
    assert float(raw.min()) < 1e-6  # unclamped, CWSM reaches the floor: T0 + beta (mean - w) is far below 0
    t = DTD("cwsm", t0=4.0).temperatures(zs, torch.randn(64, 100, generator=g))
    assert bool((t >= 1.0).all()) and float(t.min()) == 1.0


def test_no_gradient_flows_through_the_temperature():
    zs, zt, y = batch(seed=8)
    zs = zs.clone().requires_grad_(True)
    for weight in ("flsw", "cwsm"):
        t = DTD(weight).temperatures(zs, zt)
        assert not t.requires_grad
    # the loss's gradient equals the gradient with the temperatures fed in as constants
    obj = DTD("flsw", t0=4.0, beta=2.0)
    loss, _ = obj(zs, zt, y)
    (g,) = torch.autograd.grad(loss, zs)
    t_const = obj.temperatures(zs, zt).double()
    zs2 = zs.detach().clone().requires_grad_(True)
    ref = 0.1 * F.cross_entropy(zs2, y) + 0.9 * distillation_kl(zs2, zt, t_const)
    (g2,) = torch.autograd.grad(ref, zs2)
    torch.testing.assert_close(g, g2)


def test_dtd_loss_by_hand_with_and_without_t_squared():
    zs, zt, y = batch(b=8, k=4, seed=9)
    obj = DTD("flsw", t0=4.0, beta=1.0, gamma=2.0)
    t = obj.temperatures(zs, zt).double()
    rows = []
    for i in range(8):
        p_t, log_p_s = F.softmax(zt[i] / t[i], 0), F.log_softmax(zs[i] / t[i], 0)
        rows.append(float((p_t * (p_t.log() - log_p_s)).sum()))
    ce = float(F.cross_entropy(zs, y))
    with_t2 = 0.1 * ce + 0.9 * sum(r * float(t[i]) ** 2 for i, r in enumerate(rows)) / 8
    without = 0.1 * ce + 0.9 * sum(rows) / 8
    assert float(obj(zs, zt, y)[0]) == pytest.approx(with_t2, rel=1e-6)
    assert float(DTD("flsw", t0=4.0, t_squared=False)(zs, zt, y)[0]) == pytest.approx(without, rel=1e-6)
    constant = 0.1 * ce + 0.9 * 16.0 * sum(rows) / 8  # T0^2 = 16 for every row
    assert float(DTD("flsw", t0=4.0, t_squared="t0")(zs, zt, y)[0]) == pytest.approx(constant, rel=1e-6)


def test_dtd_with_constant_t0_squared_gives_a_sharper_row_a_larger_gradient_and_per_sample_t2_undoes_it():
    # one student/teacher pair, softened at T = 2 (a hard sample's lower temperature) and at T = 4 (T0)
    zs = torch.tensor([[2.0, 0.5, -1.0, 0.3]], dtype=torch.float64)
    zt = torch.tensor([[-0.5, 2.5, 0.0, 0.2]], dtype=torch.float64)

    def grad_norm(t, factor):
        z = zs.clone().requires_grad_(True)
        pt, log_ps = F.softmax(zt / t, 1), F.log_softmax(z / t, 1)
        (factor * (pt * (pt.log() - log_ps)).sum()).backward()
        return float(z.grad.norm())

    # "t0": the same factor 16 on both rows, so the sharper row's gradient is the larger, as DTD intends
    assert grad_norm(2.0, 16.0) > 1.5 * grad_norm(4.0, 16.0)
    # per-sample T_x^2 (4 against 16) cancels most of that difference
    assert grad_norm(2.0, 4.0) / grad_norm(4.0, 16.0) < 0.5 * grad_norm(2.0, 16.0) / grad_norm(4.0, 16.0)


def test_dtd_refuses_a_t_squared_that_is_not_one_of_its_three_forms():
    for bad in (1, 0, 2.0, "sample", "T0", None):
        with pytest.raises(ValueError, match="t_squared must be True"):
            DTD(t_squared=bad)
    assert repr(DTD(t_squared="t0")).count("t_squared='t0'") == 1


def test_dtd_equals_kd_when_every_sample_is_equally_hard_and_reports_its_temperatures():
    zs, zt, y = batch(seed=10)
    loss, stats = DTD("flsw", t0=4.0, beta=0.0)(zs, zt, y)  # beta 0: T_x = T0 for every sample
    assert float(loss) == pytest.approx(float(kd_loss(zs, zt, y, temperature=4.0)), rel=1e-6)
    assert float(stats["temperature_mean"]) == 4.0 and float(stats["clamped"]) == 0.0


def test_dtd_with_probability_shift_uses_the_rectified_teacher():
    zs, zt, y = batch(seed=11)
    a, _ = DTD("flsw", t0=4.0, beta=0.0, adjust="ps")(zs, zt, y)
    assert float(a) == pytest.approx(float(kd_loss(zs, rectify(zt, y), y, temperature=4.0)), rel=1e-6)


def test_dtd_bad_settings_say_what_to_do():
    with pytest.raises(ValueError, match="'flsw'.*or 'cwsm'"):
        DTD("fslw")
    with pytest.raises(ValueError, match="must contain T0"):
        DTD(t0=2.0, min_temperature=3.0)
    with pytest.raises(ValueError, match="adjust must be None or 'ps'"):
        DTD(adjust="lsr")
    assert math.isfinite(DTD().max_temperature) and DTD(t0=8).max_temperature == 32.0


def test_dtd_temperatures_are_not_rounded_to_bf16_with_bf16_logits():
    """Autocast gives bf16 logits; temperatures near 8 in bf16 come in steps of 1/16, which would erase FLSW's
    usual spread of a few hundredths (DTD would silently become KD at T0). They must stay float32."""
    g = torch.Generator().manual_seed(3)
    zt = 3 * torch.randn(256, 10, generator=g)
    zs = (zt + 0.3 * torch.randn(256, 10, generator=g)).bfloat16()  # a student close to its teacher
    zt = zt.bfloat16()
    y = torch.randint(0, 10, (256,), generator=g)
    dtd = DTD("flsw", t0=8.0, beta=1.0, gamma=2.0)
    t = dtd.temperatures(zs.float(), zt.float())
    assert 0 < float(t.max() - t.min()) < 1 / 16  # the spread is below bf16's resolution at 8 ...
    assert flsw_weight(zs, zt).dtype == torch.float32
    _, stats = dtd(zs, zt, y)
    # ... and survives: the loss used the float32 temperatures, not their bf16 rounding (8.0 for every row)
    assert float(stats["temperature_max"] - stats["temperature_min"]) == pytest.approx(float(t.max() - t.min()), rel=1e-3)
    assert stats["temperature_mean"].dtype == torch.float32
    expected = 0.1 * F.cross_entropy(zs, y) + 0.9 * distillation_kl(zs, zt, t)  # float32 t, as in the objective
    loss, _ = dtd(zs, zt, y)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
