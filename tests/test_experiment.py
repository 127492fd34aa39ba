"""One run, made once, found by what made it: run_arms shares runs by fingerprint and never reuses on a guess."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdlab.describe import Undescribable, describe
from kdlab.experiment import Arm, Results, run_arms
from kdlab.io import load_checked
from kdlab.losses import DRKD, DTD, KA, KD, CrossEntropy, TfKDReg
from kdlab.recipe import Recipe
from kdlab.train import build, fit

RECIPE = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
KW = dict(progress=False, eval_splits=("val",))


def saved(home):
    return sorted((home / "runs").glob("*.pt"))


def loaded(capsys):
    return "loaded: an earlier call made this run" in capsys.readouterr().out


def test_the_same_run_is_made_once_whatever_the_arm_or_call(data, tmp_path, one_thread, capsys):
    first = run_arms([Arm("baseline", "resnet8", CrossEntropy())], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    assert len(saved(tmp_path)) == 1 and not loaded(capsys)
    # another notebook, another arm name, the same run: loaded, not trained again, same numbers
    again = run_arms([Arm("hard labels", "resnet8", CrossEntropy())], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    assert len(saved(tmp_path)) == 1 and loaded(capsys)
    assert again.runs["val_acc"].iloc[0] == first.runs["val_acc"].iloc[0]
    # a changed setting is another run
    run_arms([Arm("smoothed", "resnet8", CrossEntropy(label_smoothing=0.1))], data, RECIPE, seeds=(0,), home=tmp_path,
             **KW)
    assert len(saved(tmp_path)) == 2 and not loaded(capsys)
    # and so are another seed, another recipe, other evaluation splits
    run_arms([Arm("baseline", "resnet8", CrossEntropy())], data, RECIPE, seeds=(1,), home=tmp_path, **KW)
    run_arms([Arm("baseline", "resnet8", CrossEntropy())], data, Recipe(epochs=1, batch_size=40, lr=0.05),
             seeds=(0,), home=tmp_path, **KW)
    run_arms([Arm("baseline", "resnet8", CrossEntropy())], data, RECIPE, seeds=(0,), home=tmp_path,
             progress=False, eval_splits=("val", "test"))
    assert len(saved(tmp_path)) == 5 and not loaded(capsys)


def test_results_of_several_calls_combine_and_a_run_in_two_of_them_is_refused(data, tmp_path, one_thread):
    base = Arm("baseline", "resnet8", CrossEntropy())
    smooth = Arm("smoothed", "resnet8", CrossEntropy(label_smoothing=0.1))
    a = run_arms([base, smooth], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    b = run_arms([base], data, RECIPE, seeds=(1,), home=tmp_path, **KW)
    both = Results.combine(a, b)
    assert sorted(both.models) == [("baseline", 0), ("baseline", 1), ("smoothed", 0)]
    assert len(both.runs) == 3 and set(both.histories["seed"]) == {0, 1}
    assert both.runs.set_index(["arm", "seed"]).loc[("baseline", 1), "val_acc"] == b.runs["val_acc"].iloc[0]
    with pytest.raises(ValueError, match=r"\('baseline', 0\) is in two of the Results"):
        Results.combine(a, run_arms([base], data, RECIPE, seeds=(0,), home=tmp_path, **KW))
    with pytest.raises(TypeError, match="one or more Results"):
        Results.combine(a.runs)


def test_a_teachers_weights_are_part_of_the_run(data, tmp_path, one_thread, capsys):
    t0, t1 = build("resnet8", 10, seed=5, device="cpu"), build("resnet8", 10, seed=6, device="cpu")
    run_arms([Arm("KD", "resnet8", KD(), teacher=t0)], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    run_arms([Arm("KD", "resnet8", KD(), teacher=t1)], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    assert len(saved(tmp_path)) == 2 and not loaded(capsys)
    run_arms([Arm("KD again", "resnet8", KD(), teacher=t0)], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    assert loaded(capsys)


SMOOTH = 0.0


def smoothed_ce(student, teacher, labels, index):  # reads the module global SMOOTH, as a notebook cell would
    return F.cross_entropy(student, labels, label_smoothing=SMOOTH)


def test_a_function_reading_a_changed_global_is_another_run(data, tmp_path, one_thread, capsys):
    global SMOOTH
    arm = [Arm("smoothed", "resnet8", smoothed_ce)]
    SMOOTH = 0.0
    try:
        a = run_arms(arm, data, RECIPE, seeds=(0,), home=tmp_path, **KW)
        SMOOTH = 0.5
        b = run_arms(arm, data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    finally:
        SMOOTH = 0.0
    assert len(saved(tmp_path)) == 2 and not loaded(capsys)
    assert a.runs["train_loss"].iloc[0] != b.runs["train_loss"].iloc[0]


def helper(x):
    return x


def uses_helper(s, t, y, i):
    return F.cross_entropy(helper(s), y)


def test_a_changed_helper_changes_the_description():
    global helper
    before = describe(uses_helper)
    original = helper

    def helper(x):  # noqa: F811 - the helper edited in place, as a learner edits a cell
        return 2 * x
    try:
        after = describe(uses_helper)
    finally:
        helper = original
    assert before != after and describe(uses_helper) == before


class SmoothCE(nn.Module):
    def __init__(self, smoothing):
        super().__init__()
        self.smoothing = smoothing  # a plain attribute: the module's repr is SmoothCE() whatever its value

    def forward(self, s, t, y, i):
        return F.cross_entropy(s, y, label_smoothing=self.smoothing)


def test_module_losses_with_plain_attributes_are_told_apart(data, tmp_path, one_thread, capsys):
    assert repr(SmoothCE(0.0)) == repr(SmoothCE(0.5))  # what the description used to be
    assert describe(SmoothCE(0.0)) != describe(SmoothCE(0.5)) and describe(SmoothCE(0.5)) == describe(SmoothCE(0.5))
    for s in (0.0, 0.5):
        run_arms([Arm("module loss", "resnet8", SmoothCE(s))], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    assert len(saved(tmp_path)) == 2 and not loaded(capsys)
    scaled = nn.Linear(2, 2)  # parameters count too
    before = describe(scaled)
    with torch.no_grad():
        scaled.weight.add_(1)
    assert describe(scaled) != before


class Weighted:
    def __init__(self, w):
        self.w = w

    def loss(self, s, t, y, i):
        return self.w * F.cross_entropy(s, y)


class Halved(Weighted):
    def loss(self, s, t, y, i):
        return 0.5 * F.cross_entropy(s, y)


def test_bound_methods_are_described_by_their_class_object_and_code():
    a, b, c = describe(Weighted(1.0).loss), describe(Weighted(2.0).loss), describe(Halved(1.0).loss)
    assert len({a, b, c}) == 3
    assert a == describe(Weighted(1.0).loss) and "0x" not in a + b + c


def test_an_undescribable_objective_is_not_saved_unless_named(data, tmp_path, one_thread, capsys):
    gen = torch.Generator().manual_seed(0)  # a live random generator: no stable description

    def noisy(s, t, y, i):
        return F.cross_entropy(s, y) + 0 * torch.rand((), generator=gen)

    with pytest.raises(Undescribable):
        describe(noisy)
    run_arms([Arm("noisy", "resnet8", noisy)], data, RECIPE, seeds=(0,), home=tmp_path, **KW)
    out = capsys.readouterr().out
    assert "not saved" in out and "objective_id" in out and saved(tmp_path) == []
    run_arms([Arm("noisy", "resnet8", noisy, objective_id="ce-plus-noise-v1")], data, RECIPE, seeds=(0,),
             home=tmp_path, **KW)
    [path] = saved(tmp_path)
    assert "named by the caller: ce-plus-noise-v1" in json.loads(load_checked(path)["fingerprint"])["objective"]
    # fit with a checkpoint refuses what it could not check, early
    with pytest.raises(Undescribable, match="objective_id"):
        fit(build("resnet8", 10, device="cpu"), data, RECIPE, objective=noisy, checkpoint=tmp_path / "x.pt",
            progress=False, verbose=False)
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("make, base, settings", [
    (KD, {}, dict(temperature=2.0, w_ce=0.3, w_kd=0.7)),
    (CrossEntropy, {}, dict(label_smoothing=0.2)),
    (TfKDReg, dict(form="code"), dict(alpha=0.5, temperature=4.0, correct_prob=0.9, form="paper", multiplier=2.0)),
    (DRKD, {}, dict(temperature=3.0, w_ce=0.2, w_kd=0.8, label_smoothing=0.1)),
    (KA, dict(method="lsr"), dict(method="ps", temperature=3.0, w_ce=0.2, w_kd=0.8, smoothing=0.2)),
    (DTD, {}, dict(weight="cwsm", t0=4.0, beta=4.0, gamma=1.0, w_ce=0.2, w_kd=0.8, t_squared=False)),
    (DTD, {}, dict(t_squared="t0", w_kd=0.8)),
    (DTD, dict(t_squared=False), dict(t_squared="t0", w_ce=0.2)),
    (KA, dict(method="lsr"), dict(soften=True, w_ce=0.2)),
])
def test_kdlabs_objectives_describe_every_setting(make, base, settings):
    described = describe(make(**base))
    for name, value in settings.items():
        assert describe(make(**{**base, name: value})) != described, \
            f"{make.__name__}({name}={value!r}) describes as {described}"
    # to the last digit: settings that differ beyond 6 significant digits are different runs too
    number = [n for n in settings if n.startswith("w_") or n in ("label_smoothing", "alpha")][0]
    assert describe(make(**{**base, number: 0.1234567})) != describe(make(**{**base, number: 0.1234568}))


def test_tfkd_reg_code_form_describes_its_multiplier():
    # the multiplier only acts in the code's form, so only there it is part of the description
    assert describe(TfKDReg(form="code", multiplier=2.0)) != describe(TfKDReg(form="code"))


def test_the_callback_sees_each_trained_epoch_of_each_arm(data, tmp_path, one_thread):
    seen = []
    arms = [Arm("a", "resnet8", CrossEntropy()), Arm("b", "resnet8", CrossEntropy(label_smoothing=0.1))]
    recipe = Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle")
    run_arms(arms, data, recipe, seeds=(0,), home=tmp_path, callback=lambda *a: seen.append(a[:3]), **KW)
    assert seen == [("a", 0, 1), ("a", 0, 2), ("b", 0, 1), ("b", 0, 2)]
    seen.clear()
    run_arms(arms, data, recipe, seeds=(0,), home=tmp_path, callback=lambda *a: seen.append(a[:3]), **KW)
    assert seen == []  # loaded runs are not replayed


def test_a_run_another_process_is_training_comes_last_and_is_loaded_when_it_is_done(data, tmp_path, one_thread,
                                                                                     capsys):
    """A sweep's jobs share the run cache: a run whose lock is held elsewhere is put off, the others are trained
    meanwhile, and the results keep their order. Here the other process is a thread holding the run's lock that
    trains it (the same call, another home's copy) and saves it before letting go."""
    import fcntl
    import shutil
    import threading

    from kdlab.experiment import run_path
    from kdlab.io import lock_path
    from kdlab.train import run_fingerprint
    recipe = Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle")
    arms = [Arm("busy", "resnet8", CrossEntropy()), Arm("free", "resnet8", CrossEntropy(label_smoothing=0.1))]
    reference = run_arms(arms, data, recipe, seeds=(0,), home=tmp_path / "alone", **KW)
    capsys.readouterr()
    fp = run_fingerprint(build("resnet8", data.num_classes), data, recipe, CrossEntropy(), None, 0)
    busy = run_path(fp, ["val"], tmp_path / "shared")
    busy.parent.mkdir(parents=True)
    held = open(lock_path(busy), "a")
    fcntl.flock(held, fcntl.LOCK_EX)
    order = []

    def other_process():  # finishes the busy run once this process has trained the free one (or after 60 s)
        for _ in range(1200):
            if ("free", 0) in order:
                break
            threading.Event().wait(0.05)
        shutil.copy(run_path(fp, ["val"], tmp_path / "alone"), busy)
        fcntl.flock(held, fcntl.LOCK_UN)
        held.close()

    threading.Thread(target=other_process, daemon=True).start()
    res = run_arms(arms, data, recipe, seeds=(0,), home=tmp_path / "shared",
                   callback=lambda arm, seed, epoch, model: order.append((arm, seed)) if epoch == 2 else None, **KW)
    out = capsys.readouterr().out
    assert order == [("free", 0)]  # the busy run was not trained here
    assert out.index("free ") < out.index("busy ") and "another process is training this run; waiting" in out
    assert "busy                     seed 0" in out and "(loaded: another process made this run meanwhile)" in out
    assert list(res.runs["arm"]) == ["busy", "free"]
    assert list(res.runs["val_acc"]) == list(reference.runs["val_acc"])
    assert list(res.models) == [("busy", 0), ("free", 0)]


def test_an_interrupted_run_says_it_resumed(data, tmp_path, one_thread, capsys):
    recipe = Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle")

    def stop_after_one(arm, seed, epoch, model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_arms([Arm("baseline", "resnet8")], data, recipe, seeds=(0,), home=tmp_path, callback=stop_after_one, **KW)
    run_arms([Arm("baseline", "resnet8")], data, recipe, seeds=(0,), home=tmp_path, **KW)
    assert "(resumed: 1 of its epochs were left)" in capsys.readouterr().out
