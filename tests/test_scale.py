"""The scale switch: one function, one environment variable, clear errors."""
import dataclasses

import pytest
import torch

from kdlab import scale as S


def test_default_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("KDLAB_SCALE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert S.get_scale(announce=False).name == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert S.get_scale(announce=False).name == "reduced"


def test_environment_variable_and_argument(monkeypatch):
    monkeypatch.setenv("KDLAB_SCALE", "Smoke ")
    assert S.get_scale(announce=False).name == "smoke"
    assert S.get_scale("full", announce=False).name == "full"  # an explicit argument wins


@pytest.mark.parametrize("value, suggestion", [("smok", "smoke"), ("reduce", "reduced"), ("ful", "full")])
def test_misspelt_scale_suggests_the_right_one(monkeypatch, value, suggestion):
    monkeypatch.setenv("KDLAB_SCALE", value)
    with pytest.raises(ValueError, match=f"from KDLAB_SCALE.*Did you mean '{suggestion}'"):
        S.get_scale()


def test_every_run_announces_scale_and_expected_time(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    S.get_scale("laptop")
    out = capsys.readouterr().out
    assert "kdlab scale: laptop" in out and "expected: at most 10 minutes on a 2-core CPU" in out
    # a GPU-sized scale on a CPU says so instead of promising minutes
    assert "no GPU" in S.get_scale("reduced", announce=False).banner("cpu") or \
        "has none" in S.get_scale("reduced", announce=False).banner("cpu")


def test_banner_says_how_the_device_computes(capsys, monkeypatch):
    import kdlab.train as T
    monkeypatch.delenv("KDLAB_PRECISION", raising=False)
    # a hosted T4: CUDA without native bf16 trains in fp16, and the banner says why
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(T, "cuda_bf16", lambda: False)
    S.get_scale("reduced")
    out = capsys.readouterr().out
    assert "device cuda (fp16 with a gradient scaler: this GPU has no native bf16) | expected:" in out
    monkeypatch.setattr(T, "cuda_bf16", lambda: True)
    S.get_scale("reduced")
    assert "device cuda (bf16) | expected:" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("KDLAB_PRECISION", "fp32")
    S.get_scale("laptop")
    assert "device cpu (fp32) | expected:" in capsys.readouterr().out
    # told the device only, the banner names no precision
    assert "device cpu | expected:" in S.get_scale("laptop", announce=False).banner("cpu")


def test_overrides_and_unknown_fields():
    s = S.get_scale("smoke", announce=False, student="resnet20", seeds=(0, 1, 2))
    assert s.student == "resnet20" and s.seeds == (0, 1, 2) and s.teacher == "resnet8"
    with pytest.raises(ValueError, match="unknown scale field"):
        S.get_scale("smoke", announce=False, studnet="resnet20")


def test_presets_are_what_the_readme_promises():
    smoke, laptop, reduced, full = (S.PRESETS[n] for n in S.SCALES)
    assert smoke.train_size <= 1000 and smoke.device == "cpu"  # a few hundred images: seconds
    assert laptop.dataset == reduced.dataset == "cifar10" and laptop.train_size < 50000
    assert reduced.train_size is None and reduced.device == "gpu"
    # full: the paper's setting (RepDistiller's CIFAR-100 recipe)
    r = full.teacher_recipe
    assert full.dataset == "cifar100" and (full.teacher, full.student) == ("resnet32x4", "resnet8x4")
    assert (r.epochs, r.batch_size, r.lr, r.milestones, r.weight_decay, r.momentum) == \
        (240, 64, 0.05, (150, 180, 210), 5e-4, 0.9)
    for s in S.PRESETS.values():
        assert dataclasses.is_dataclass(s) and len(s.seeds) >= 2  # paired comparisons need seeds


def test_table_lists_every_scale():
    t = S.table()
    assert list(t.index) == list(S.SCALES) and "budget per notebook" in t.columns
