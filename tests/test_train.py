"""kdlab.train: determinism, resumable checkpoints (in process and after a real SIGKILL), refusal of stale
checkpoints, non-finite losses, interrupts, teachers, objective statistics, the lr schedules, predict/evaluate.

Everything trains resnet8 on 200 real CIFAR-10 images (4 steps of 50 per epoch) on the CPU, where kdlab
promises bit-identical results for identical runs.
"""
import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdlab import metrics
from kdlab import train as train_module
from kdlab.io import load_checked
from kdlab.losses import KD, CrossEntropy
from kdlab.recipe import Recipe
from kdlab.train import (NonFiniteLossError, StaleCheckpointError, build, evaluate, fit, predict,
                         run_fingerprint)

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_train_worker.py")
RECIPE = Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle")
STEPS = 4  # 200 training images / batch_size 50
COMPARED = ["epoch", "lr", "train_loss", "train_acc", "val_acc", "val_loss", "val_ece"]
QUIET = dict(progress=False, verbose=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one intra-op thread; `data` is there too


def train(data, *, seed=0, recipe=RECIPE, checkpoint=None, objective=None, eval_splits=("val",), **kw):
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    kw = {**QUIET, **kw}
    history = fit(model, data, recipe, objective=objective, seed=seed, checkpoint=checkpoint,
                  eval_splits=eval_splits, **kw)
    return model, history


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted seed-0 run (2 epochs), its history and its final checkpoint."""
    checkpoint = tmp_path_factory.mktemp("reference") / "run.pt"
    model, history = train(data, checkpoint=checkpoint)
    return {"state": copy.deepcopy(model.state_dict()), "history": history, "checkpoint": checkpoint}


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def assert_same_history(a, b):
    assert len(a) == len(b)
    assert a[COMPARED].to_dict("list") == b[COMPARED].to_dict("list")


class Scripted:
    """Cross-entropy that misbehaves once at (epoch, step), both 1-based: raises `exc`, or returns NaN.

    It is described as CrossEntropy (the fixture below), so a run with it has the same fingerprint as a plain
    cross-entropy run (and its checkpoint is resumable by one)."""

    def __init__(self, epoch, step, exc=None, nan=False):
        self.inner, self.at, self.exc, self.nan = CrossEntropy(), (epoch, step), exc, nan
        self.calls = []

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        epoch, step = divmod(len(self.calls), STEPS)
        self.calls.append((epoch + 1, step + 1))
        loss = self.inner(student_logits, teacher_logits, labels, index)
        if (epoch + 1, step + 1) >= self.at:
            if self.exc is not None:
                raise self.exc
            if self.nan:
                return loss * float("nan")
        return loss

    def __repr__(self):
        return repr(self.inner)


@pytest.fixture(autouse=True)
def fakes_are_described_by_what_they_stand_for(monkeypatch):
    """The test objectives below stand for a known objective (Scripted for CrossEntropy, NoisyCE for itself):
    kdlab would describe them by their attributes, which include their call counters."""
    real = train_module.describe_objective

    def describe(objective, objective_id=None):
        if isinstance(objective, Scripted):
            return real(objective.inner, objective_id)
        if isinstance(objective, NoisyCE):
            return real(objective, objective_id or "NoisyCE")
        return real(objective, objective_id)
    monkeypatch.setattr(train_module, "describe_objective", describe)


# ---------------------------------------------------------------- determinism and resuming

def test_same_seed_is_bit_identical_and_another_seed_differs(data, reference):
    model, history = train(data)
    assert_same_weights(model.state_dict(), reference["state"])
    assert_same_history(history, reference["history"])
    # same initial weights (build seed 0), other fit seed: data order and augmentation must change
    other, other_history = train(data, seed=1)
    assert any(not torch.equal(v, reference["state"][k]) for k, v in other.state_dict().items())
    assert other_history["train_loss"].tolist() != reference["history"]["train_loss"].tolist()


def test_history_follows_the_recipe_schedule(reference):
    h = reference["history"]
    assert h["epoch"].tolist() == [1, 2]
    # the row's lr is the one of the epoch's last step
    assert h["lr"].tolist() == [RECIPE.lr_at((e + 1) * STEPS - 1, STEPS) for e in range(RECIPE.epochs)]
    assert h.attrs["checkpoint"] == str(reference["checkpoint"])


def test_interrupted_run_resumes_to_the_uninterrupted_result(data, reference, tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    crash = Scripted(epoch=2, step=3, exc=RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, data, RECIPE, objective=crash, seed=0, checkpoint=checkpoint, eval_splits=("val",), **QUIET)
    assert load_checked(checkpoint)["epoch"] == 1
    # the same call again, with the model the crash left half-trained in epoch 2
    history = fit(model, data, RECIPE, objective=CrossEntropy(), seed=0, checkpoint=checkpoint,
                  eval_splits=("val",), **QUIET)
    assert_same_weights(model.state_dict(), reference["state"])
    assert_same_history(history, reference["history"])
    assert load_checked(checkpoint)["epoch"] == 2


def test_completed_checkpoint_returns_its_history_without_training(data, reference, tmp_path):
    checkpoint = tmp_path / "done.pt"
    shutil.copy(reference["checkpoint"], checkpoint)
    never = Scripted(epoch=1, step=1, exc=AssertionError("a finished run must not train again"))
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    history = fit(model, data, RECIPE, objective=never, seed=0, checkpoint=checkpoint, eval_splits=("val",),
                  **QUIET)
    assert never.calls == []
    assert_same_history(history, reference["history"])
    assert_same_weights(model.state_dict(), reference["state"])


def test_keyboard_interrupt_says_how_to_resume_and_the_checkpoint_resumes(data, reference, tmp_path, capsys):
    checkpoint = tmp_path / "run.pt"
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        fit(model, data, RECIPE, objective=Scripted(epoch=2, step=2, exc=KeyboardInterrupt()), seed=0,
            checkpoint=checkpoint, eval_splits=("val",), **QUIET)
    out = capsys.readouterr().out
    assert "interrupted during epoch 2, step 2" in out
    assert f"{checkpoint} holds epoch 1" in out and "run the same call again to resume" in out
    history = fit(model, data, RECIPE, seed=0, checkpoint=checkpoint, eval_splits=("val",), progress=False,
                  verbose=True)
    assert f"resuming from {checkpoint} after epoch 1/2" in capsys.readouterr().out
    assert_same_weights(model.state_dict(), reference["state"])
    assert_same_history(history, reference["history"])


class NoisyCE:
    """Cross-entropy scaled by a draw from the global RNG (as dropout or a stochastic objective would use it)."""

    def __init__(self, crash_at=None):
        self.calls, self.crash_at = 0, crash_at

    def __call__(self, student_logits, teacher_logits, labels, index=None):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        return torch.nn.functional.cross_entropy(student_logits, labels) * (0.5 + torch.rand(()))

    def __repr__(self):
        return "NoisyCE()"


def test_global_rng_is_derived_from_seed_and_epoch_and_left_as_it_was(data, tmp_path):
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    whole, whole_history = train(data, objective=NoisyCE(), eval_splits=())
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(data, objective=NoisyCE(crash_at=STEPS + 2), checkpoint=checkpoint, eval_splits=())
    torch.rand(100)  # the resumed process's global RNG is wherever it is
    resumed, resumed_history = train(data, objective=NoisyCE(), checkpoint=checkpoint, eval_splits=())
    assert_same_weights(resumed.state_dict(), whole.state_dict())
    assert resumed_history["train_loss"].tolist() == whole_history["train_loss"].tolist()


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_process(data, tmp_path):
    """Real processes: one killed with SIGKILL once its checkpoint holds epoch 1, then started again."""
    data_file = tmp_path / "data.pt"
    torch.save(data, data_file)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "KDLAB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}  # bit-identical needs equal thread counts

    def start(name, *extra):
        return subprocess.Popen([sys.executable, str(WORKER), "fit", str(data_file), str(tmp_path / f"{name}.pt"),
                                 str(tmp_path / f"{name}-out.pt"), *extra], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    whole = start("whole")
    victim = start("killed", "--slow", "0.5")
    checkpoint = tmp_path / "killed.pt"
    deadline = time.monotonic() + 90
    try:
        while True:
            assert victim.poll() is None, f"the worker ended before it was killed:\n{victim.stdout.read()}"
            assert time.monotonic() < deadline, "the worker never wrote a checkpoint of epoch 1"
            if checkpoint.exists() and load_checked(checkpoint)["epoch"] >= 1:
                victim.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    killed_at = load_checked(checkpoint)["epoch"]
    assert 1 <= killed_at < 3

    again = subprocess.run([sys.executable, str(WORKER), "fit", str(data_file), str(checkpoint),
                            str(tmp_path / "killed-out.pt")], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming from {checkpoint} after epoch {killed_at}/3" in again.stdout
    whole_out, _ = whole.communicate(timeout=120)
    assert whole.returncode == 0, whole_out

    a = torch.load(tmp_path / "whole-out.pt", weights_only=True)
    b = torch.load(tmp_path / "killed-out.pt", weights_only=True)
    assert_same_weights(a["state"], b["state"])
    assert a["history"] == b["history"] and len(a["history"]["epoch"]) == 3


def test_fingerprint_does_not_hold_memory_addresses(data):
    """A plain function (or an object without a repr) as the objective: its repr holds an address that
    differs in every process, which would make every checkpoint of such a run stale once the process died."""
    def make():
        def objective(student_logits, teacher_logits, labels, index=None):
            return torch.nn.functional.cross_entropy(student_logits, labels)
        return objective

    class NoRepr:
        def __call__(self, s, t, y, i=None):
            return torch.nn.functional.cross_entropy(s, y)

    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    for first, second in ((make(), make()), (NoRepr(), NoRepr())):
        assert first is not second
        a = run_fingerprint(model, data, RECIPE, first, None, 0)
        b = run_fingerprint(model, data, RECIPE, second, None, 0)
        assert a == b and " at 0x" not in a["objective"]
    # different objectives still differ
    assert (run_fingerprint(model, data, RECIPE, make(), None, 0)["objective"]
            != run_fingerprint(model, data, RECIPE, NoRepr(), None, 0)["objective"])


# ---------------------------------------------------------------- stale checkpoints

@pytest.fixture(scope="module")
def kd_run(data, tmp_path_factory):
    """One epoch of KD from an (untrained) resnet8 teacher, with a checkpoint; the teacher left in train mode
    with gradients on before the fit, so the test below sees what fit does to it."""
    teacher = build("resnet8", data.num_classes, seed=7, device="cpu")
    teacher.train()
    before = copy.deepcopy(teacher.state_dict())
    checkpoint = tmp_path_factory.mktemp("kd") / "kd.pt"
    recipe = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
    model, history = train(data, recipe=recipe, checkpoint=checkpoint, objective=KD(temperature=4), teacher=teacher)
    return {"teacher": teacher, "before": before, "history": history, "checkpoint": checkpoint, "recipe": recipe,
            "student": model, "data": data}


@pytest.mark.parametrize("change, named", [
    ("lr", "recipe.lr: checkpoint has 0.05, this run 0.1"),
    ("seed", "seed: checkpoint has 0, this run 1"),
    ("objective", "objective: checkpoint has 'KD(temperature=4"),
    ("teacher", "teacher.weights: checkpoint has"),
])
def test_stale_checkpoint_is_refused_naming_the_difference(data, kd_run, tmp_path, change, named):
    checkpoint = tmp_path / "kd.pt"
    shutil.copy(kd_run["checkpoint"], checkpoint)
    kw = dict(recipe=kd_run["recipe"], seed=0, objective=KD(temperature=4), teacher=kd_run["teacher"])
    if change == "lr":
        kw["recipe"] = Recipe(epochs=1, batch_size=50, lr=0.1, schedule="onecycle")
    elif change == "seed":
        kw["seed"] = 1
    elif change == "objective":
        kw["objective"] = KD(temperature=2)
    else:
        teacher = copy.deepcopy(kd_run["teacher"])
        with torch.no_grad():
            teacher.classifier.bias[0] += 1e-3
        kw["teacher"] = teacher
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    untouched = copy.deepcopy(model.state_dict())
    with pytest.raises(StaleCheckpointError) as err:
        fit(model, data, checkpoint=checkpoint, **kw, **QUIET)
    msg = str(err.value)
    assert str(checkpoint) in msg and "resume=False" in msg
    differences = msg.split("was made by a different run (", 1)[1].split("). Delete it", 1)[0].split("; ")
    assert len(differences) == 1 and differences[0].startswith(named), msg  # that field, and only that one
    assert_same_weights(model.state_dict(), untouched)  # nothing loaded, nothing trained


def test_resume_false_overwrites_a_stale_checkpoint(data, kd_run, tmp_path):
    checkpoint = tmp_path / "kd.pt"
    shutil.copy(kd_run["checkpoint"], checkpoint)
    recipe = Recipe(epochs=1, batch_size=50, lr=0.1, schedule="onecycle")
    model, history = train(data, recipe=recipe, checkpoint=checkpoint, objective=CrossEntropy(), resume=False,
                           eval_splits=())
    state = load_checked(checkpoint)
    assert state["epoch"] == 1 and '"lr": 0.1' in state["fingerprint"]
    assert_same_weights(state["model"], model.state_dict())
    # and the new checkpoint is now the one a same run resumes from (completed: nothing to train)
    again, _ = train(data, recipe=recipe, checkpoint=checkpoint,
                     objective=Scripted(1, 1, exc=AssertionError("trained again")), eval_splits=())
    assert_same_weights(again.state_dict(), model.state_dict())


# ---------------------------------------------------------------- failures during training

def test_nonfinite_loss_names_epoch_and_step_and_keeps_the_checkpoint(data, tmp_path):
    checkpoint = tmp_path / "run.pt"
    nan = Scripted(epoch=2, step=2, nan=True)
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, data, RECIPE, objective=nan, seed=0, checkpoint=checkpoint, eval_splits=(), check_every=1,
            **QUIET)
    msg = str(err.value)
    assert "epoch 2, step 2" in msg and f"{checkpoint} still holds epoch 1" in msg
    assert nan.calls[-1] == (2, 2)  # check_every=1 stops at the first bad step
    state = load_checked(checkpoint)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    fresh = build("resnet8", data.num_classes, seed=0, device="cpu")
    fresh.load_state_dict(state["model"])


def test_nonfinite_loss_found_at_the_end_of_an_epoch(data):
    nan = Scripted(epoch=1, step=3, nan=True)
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3.*no checkpoint was kept"):
        fit(model, data, Recipe(epochs=1, batch_size=50), objective=nan, eval_splits=(), **QUIET)
    assert len(nan.calls) == STEPS  # check_every (25) > steps: the check is at the end of the epoch


# ---------------------------------------------------------------- teachers and class counts

def test_objective_needing_a_teacher_without_one(data):
    model = build("resnet8", data.num_classes, device="cpu")
    with pytest.raises(ValueError, match="teacher=") as err:
        fit(model, data, RECIPE, objective=KD(), **QUIET)
    assert "KD(" in str(err.value)


def test_class_count_mismatches(data):
    student = build("resnet8", data.num_classes, device="cpu")
    teacher100 = build("resnet8", 100, device="cpu")
    with pytest.raises(ValueError, match="the teacher has 100 outputs but cifar10 has 10 classes"):
        fit(student, data, RECIPE, objective=KD(), teacher=teacher100, **QUIET)
    with pytest.raises(ValueError, match=r"the model has 100 outputs but cifar10 has 10 classes.*num_classes=10"):
        fit(build("resnet8", 100, device="cpu"), data, RECIPE, **QUIET)
    with pytest.raises(TypeError, match="Recipe"):
        fit(student, data, {"epochs": 2}, **QUIET)


def test_teacher_is_untouched_by_distillation(kd_run):
    teacher = kd_run["teacher"]
    assert_same_weights(teacher.state_dict(), kd_run["before"])  # BatchNorm running stats included
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training
    h = kd_run["history"]
    for col in ("val_agreement", "val_kl", "val_acc"):
        assert col in h and h[col].notna().all()
    assert 0 <= h["val_agreement"].iloc[0] <= 1 and h["val_kl"].iloc[0] >= 0
    # the agreement column is the student's agreement with this teacher on the val split
    data = kd_run["data"]
    expected = metrics.agreement(predict(kd_run["student"], data, "val"), predict(teacher, data, "val"))
    assert h["val_agreement"].iloc[0] == expected


# ---------------------------------------------------------------- objective statistics

def test_objective_statistics_become_epoch_mean_columns(data):
    seen = []

    class WithStats:
        def __call__(self, s, t, y, index=None):
            loss = torch.nn.functional.cross_entropy(s, y)
            frac = (y < 5).float().mean()
            seen.append((loss.item(), frac.item(), int((s.argmax(1) == y).sum())))
            return loss, {"frac": frac}

        def __repr__(self):
            return "WithStats()"

    _, history = train(data, objective=WithStats(), eval_splits=())
    assert "train_frac" in history and len(seen) == 2 * STEPS
    for e in range(2):
        epoch = seen[e * STEPS:(e + 1) * STEPS]
        assert history["train_frac"][e] == pytest.approx(sum(f for _, f, _ in epoch) / STEPS, abs=1e-6)
        assert history["train_loss"][e] == pytest.approx(sum(l for l, _, _ in epoch) / STEPS, rel=1e-5)
        assert history["train_acc"][e] == sum(c for _, _, c in epoch) / (STEPS * 50)
    assert not any(c.startswith("val_") or c.startswith("test_") for c in history)


# ---------------------------------------------------------------- the learning-rate schedule

def test_multistep_is_exact_at_the_milestones():
    r = Recipe(epochs=10, lr=0.1, schedule="multistep", milestones=(3, 6), gamma=0.1)
    spe = 7
    assert r.lr_at(0, spe) == 0.1
    assert r.lr_at(3 * spe - 1, spe) == 0.1
    assert r.lr_at(3 * spe, spe) == pytest.approx(0.01, rel=1e-12)
    assert r.lr_at(6 * spe - 1, spe) == pytest.approx(0.01, rel=1e-12)
    assert r.lr_at(6 * spe, spe) == pytest.approx(0.001, rel=1e-12)
    assert r.lr_at(10 * spe - 1, spe) == pytest.approx(0.001, rel=1e-12)


def test_warmup_ramps_linearly_to_lr():
    r = Recipe(epochs=5, lr=0.2, schedule="multistep", milestones=(3,), warmup_epochs=1)
    spe = 10
    ramp = [r.lr_at(s, spe) for s in range(spe)]
    assert ramp == pytest.approx([0.2 * (s + 1) / spe for s in range(spe)])
    assert ramp[0] > 0 and ramp[-1] == pytest.approx(0.2)
    assert r.lr_at(spe, spe) == 0.2 and r.lr_at(3 * spe, spe) == pytest.approx(0.02)


def test_cosine_endpoints_and_monotone():
    r = Recipe(epochs=4, lr=0.1, schedule="cosine")
    spe = 5
    lrs = [r.lr_at(s, spe) for s in range(4 * spe + 1)]
    assert lrs[0] == 0.1
    assert lrs[-1] == pytest.approx(0.0, abs=1e-15)
    assert lrs[2 * spe] == pytest.approx(0.05)  # halfway
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    warm = Recipe(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=1)
    assert warm.lr_at(spe, spe) == 0.1 and warm.lr_at(4 * spe, spe) == pytest.approx(0.0, abs=1e-15)


def test_onecycle_peaks_at_lr():
    r = Recipe(epochs=4, lr=0.4, schedule="onecycle", peak=0.25)
    spe = 25
    lrs = [r.lr_at(s, spe) for s in range(100)]
    assert max(lrs) == 0.4 and lrs.index(0.4) == 25
    assert all(a < b for a, b in zip(lrs[:25], lrs[1:26]))
    assert all(a > b for a, b in zip(lrs[25:], lrs[26:]))
    assert lrs[-1] == pytest.approx(0.4 / 75)
    assert Recipe(epochs=1, schedule="constant", lr=0.3).lr_at(5, 10) == 0.3


@pytest.mark.parametrize("kw, message", [
    (dict(epochs=0), "epochs must be an int >= 1, got 0"),
    (dict(epochs=2.0), "epochs must be an int"),
    (dict(epochs=1, lr=0), "lr must be > 0"),
    (dict(epochs=1, lr=float("nan")), "lr must be a finite number"),
    (dict(epochs=1, schedule="step"), "unknown schedule 'step'; choose one of multistep, cosine, onecycle, constant"),
    (dict(epochs=1, momentum=1.0), "momentum must be < 1"),
    (dict(epochs=1, peak=1.0), "peak must be in"),
    (dict(epochs=1, batch_size=0), "batch_size must be an int >= 1"),
])
def test_recipe_validation(kw, message):
    with pytest.raises(ValueError, match="Recipe: " + message.replace("(", r"\(")):
        Recipe(**kw)


# ---------------------------------------------------------------- predict and evaluate

def test_predict_is_ordered_and_unaugmented(data):
    model = build("resnet8", data.num_classes, seed=3, device="cpu")
    model.train()
    logits = predict(model, data, "train", batch_size=64)
    assert model.training  # restored
    assert logits.shape == (len(data.train), data.num_classes) and logits.dtype == torch.float32
    assert not logits.requires_grad
    model.eval()
    cpu = torch.device("cpu")
    with torch.no_grad(), train_module._autocast(cpu):  # the engine's precision (bf16 where the CPU has it)
        manual = torch.cat([model(x).float() for x, _, _ in data.loader("train", 64, train=False)])
        # and from the raw images, normalised by hand, in the split's order
        mean = torch.tensor(data.mean).view(1, 3, 1, 1)
        std = torch.tensor(data.std).view(1, 3, 1, 1)
        raw = model((data.train.images.float() / 255 - mean) / std).float()
    assert torch.equal(logits, manual)
    tol = 3e-2 if train_module.precision(cpu) == "bf16" else 1e-4  # bf16 keeps 8 bits of mantissa
    torch.testing.assert_close(logits, raw, atol=tol, rtol=tol)


def test_evaluate_matches_metrics(data):
    model = build("resnet8", data.num_classes, seed=3, device="cpu")
    teacher = build("resnet8", data.num_classes, seed=4, device="cpu")
    out = evaluate(model, data, "test", teacher=teacher)
    logits = predict(model, data, "test")
    assert out["acc"] == metrics.accuracy(logits, data.test.labels)
    assert out["ece"] == metrics.expected_calibration_error(logits, data.test.labels)
    assert out["agreement"] == metrics.agreement(logits, predict(teacher, data, "test"))
    assert out["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, data.test.labels)))
    assert set(evaluate(model, data, "val")) == {"acc", "ece", "loss"}


def test_fingerprint_sees_the_settings_of_functions_and_plain_objects():
    from kdlab.describe import describe as _describe

    def make(t):
        return lambda s, t_logits, y, index=None: KD(temperature=t)(s, t_logits, y)

    class MyKD:  # no __repr__: its settings must still tell runs apart
        def __init__(self, t):
            self.t = t

    assert _describe(make(2.0)) != _describe(make(8.0))  # same code, different closure value
    assert _describe(make(4.0)) == _describe(make(4.0))  # and stable across calls (and processes: no address)
    assert _describe(MyKD(2)) != _describe(MyKD(8)) and _describe(MyKD(2)) == _describe(MyKD(2))
    assert "0x" not in _describe(MyKD(2)) + _describe(make(2.0))
    assert _describe(KD(temperature=4)) == repr(KD(temperature=4))  # objects with a repr keep it


def test_recipe_accepts_numpy_numbers_and_stays_json_plain():
    import json

    import numpy as np
    r = Recipe(epochs=np.int64(3), batch_size=np.int32(64), lr=np.float32(0.1))
    assert type(r.epochs) is int and type(r.batch_size) is int and type(r.lr) is float
    json.dumps(r.to_dict())  # part of every cache key


def test_progress_bars_follow_kdlab_progress(monkeypatch):
    from kdlab.train import show_progress
    monkeypatch.delenv("KDLAB_PROGRESS", raising=False)
    assert show_progress() is True and show_progress(False) is False
    monkeypatch.setenv("KDLAB_PROGRESS", "0")
    assert show_progress() is False and show_progress(True) is True  # an explicit argument wins
    monkeypatch.setenv("KDLAB_PROGRESS", "no")
    with pytest.raises(ValueError, match="KDLAB_PROGRESS must be 0 or 1"):
        show_progress()


@pytest.mark.slow
def test_several_sigkills_at_random_moments_still_end_bit_identical(data, tmp_path):
    """Three SIGKILLs at random moments (seeded: KDLAB_KILL_SEED), each followed by a restart of the same call,
    then a run to the end: the weights equal an uninterrupted process's, bit for bit. A kill may land while the
    process starts, mid-epoch, or during a checkpoint write: every case must resume from a consistent state."""
    import random
    rng = random.Random(int(os.environ.get("KDLAB_KILL_SEED", "1")))
    data_file = tmp_path / "data.pt"
    torch.save(data, data_file)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "KDLAB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    checkpoint = tmp_path / "killed.pt"

    def start(name, ckpt, *extra):
        return subprocess.Popen([sys.executable, str(WORKER), "fit", str(data_file), str(ckpt),
                                 str(tmp_path / f"{name}-out.pt"), *extra], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    whole = start("whole", tmp_path / "whole.pt")
    epochs_at_kill = []
    for _ in range(3):
        victim = start("killed", checkpoint, "--slow", "0.5")
        # Timed from progress, not from the start (start-up takes seconds under load): once a checkpoint exists,
        # kill within 2.5 s; every epoch after the first takes >= 2 s (--slow), so the first kill lands mid-run.
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and victim.poll() is None:
            assert time.monotonic() < deadline, "the worker never wrote a checkpoint"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.5))
        if victim.poll() is not None:
            break  # it finished before this kill
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        epochs_at_kill.append(load_checked(checkpoint)["epoch"] if checkpoint.exists() else 0)
    assert any(e >= 1 for e in epochs_at_kill), f"no kill landed after a checkpoint: {epochs_at_kill}"
    final = subprocess.run([sys.executable, str(WORKER), "fit", str(data_file), str(checkpoint),
                            str(tmp_path / "killed-out.pt")], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert final.returncode == 0, final.stdout + final.stderr
    whole_out, _ = whole.communicate(timeout=120)
    assert whole.returncode == 0, whole_out
    a = torch.load(tmp_path / "whole-out.pt", weights_only=True)
    b = torch.load(tmp_path / "killed-out.pt", weights_only=True)
    assert_same_weights(a["state"], b["state"])
    assert a["history"] == b["history"], f"kills at epochs {epochs_at_kill}"


def test_callback_sees_each_epoch_after_it_trained_and_does_not_change_the_run(data, reference):
    seen = []

    def look(epoch, model):
        # what the model predicts at this point: the final epoch's weights must equal the reference run's
        seen.append((epoch, model.training, copy.deepcopy(model.state_dict())))

    model, history = train(data, callback=look)
    assert [e for e, _, _ in seen] == [1, 2]
    assert all(training for _, training, _ in seen)  # called mid-training, before eval mode is left to it
    assert not all(torch.equal(seen[0][2][k], seen[1][2][k]) for k in seen[0][2])  # epoch 1 != epoch 2 weights
    assert_same_weights(seen[1][2], reference["state"])
    assert_same_history(history, reference["history"])


def test_callback_is_not_replayed_for_epochs_restored_from_a_checkpoint(data, reference, tmp_path):
    checkpoint = tmp_path / "done.pt"
    shutil.copy(reference["checkpoint"], checkpoint)
    calls = []
    train(data, checkpoint=checkpoint, callback=lambda epoch, model: calls.append(epoch))
    assert calls == []


# ---------------------------------------------------------------- precision: fp16 with a gradient scaler

class Overflow:
    """Cross-entropy whose loss is multiplied by 1e30 at one step: its fp16-scaled gradients overflow."""

    def __init__(self, at_step):
        self.at, self.calls = at_step, 0

    def __call__(self, s, t, y, index=None):
        self.calls += 1
        return torch.nn.functional.cross_entropy(s, y) * (1e30 if self.calls == self.at else 1.0)


def test_fp16_trains_with_a_scaler_and_reports_skipped_steps(data, monkeypatch, one_thread):
    monkeypatch.setenv("KDLAB_PRECISION", "fp16")
    model = build("resnet8", data.num_classes, seed=0, device="cpu")
    history = fit(model, data, RECIPE, objective=Overflow(at_step=3), seed=0, eval_splits=("val",),
                  objective_id="ce-overflowing-once", **QUIET)
    assert history.attrs["fingerprint"]["precision"] == "fp16"
    assert history["train_skipped"].iloc[0] > 0  # the overflowing step was skipped, and said so
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert history["val_acc"].notna().all()


def test_fp16_resume_restores_the_loss_scale_and_ends_identical(data, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("KDLAB_PRECISION", "fp16")
    whole = build("resnet8", data.num_classes, seed=0, device="cpu")
    fit(whole, data, RECIPE, seed=0, eval_splits=(), **QUIET)

    def stop_after_epoch_1(epoch, model):
        if epoch == 1:
            raise RuntimeError("stopped")
    ckpt = tmp_path / "run.pt"
    part = build("resnet8", data.num_classes, seed=0, device="cpu")
    with pytest.raises(RuntimeError, match="stopped"):
        fit(part, data, RECIPE, seed=0, eval_splits=(), checkpoint=ckpt, callback=stop_after_epoch_1, **QUIET)
    assert load_checked(ckpt)["epoch"] == 1 and load_checked(ckpt)["scaler"]["scale"] > 0
    resumed = build("resnet8", data.num_classes, seed=0, device="cpu")
    fit(resumed, data, RECIPE, seed=0, eval_splits=(), checkpoint=ckpt, **QUIET)
    assert_same_weights(resumed.state_dict(), whole.state_dict())


def test_precision_switch(monkeypatch):
    cpu = torch.device("cpu")
    for p in ("bf16", "fp16", "fp32"):
        monkeypatch.setenv("KDLAB_PRECISION", p)
        assert train_module.precision(cpu) == p
    monkeypatch.setenv("KDLAB_PRECISION", "half")
    with pytest.raises(ValueError, match="KDLAB_PRECISION must be one of bf16, fp16, fp32"):
        train_module.precision(cpu)


def test_a_callback_that_raises_keeps_that_epochs_checkpoint(data, tmp_path, one_thread):
    def broken(epoch, model):
        raise ValueError("a bug in the learner's callback")
    ckpt = tmp_path / "run.pt"
    with pytest.raises(ValueError, match="learner's callback"):
        fit(build("resnet8", data.num_classes, seed=0, device="cpu"), data, RECIPE, seed=0, eval_splits=(),
            checkpoint=ckpt, callback=broken, **QUIET)
    assert load_checked(ckpt)["epoch"] == 1  # the epoch it had trained is saved


def test_an_unwritable_checkpoint_path_fails_before_the_first_epoch(data, tmp_path):
    from kdlab.io import CheckpointError
    (tmp_path / "a_file").write_text("x")
    never = Scripted(epoch=1, step=1, exc=AssertionError("trained before checking the folder"))
    with pytest.raises(CheckpointError, match="cannot write to"):
        fit(build("resnet8", data.num_classes, seed=0, device="cpu"), data, RECIPE, objective=never,
            checkpoint=tmp_path / "a_file" / "run.pt", **QUIET)
    assert never.calls == []


def test_a_student_passed_as_its_own_teacher_is_refused_and_left_trainable(data):
    m = build("resnet8", data.num_classes, seed=0, device="cpu")
    with pytest.raises(ValueError, match="its own teacher"):
        fit(m, data, RECIPE, objective=KD(), teacher=m, **QUIET)
    assert all(p.requires_grad for p in m.parameters())  # a later fit(m) still trains it
