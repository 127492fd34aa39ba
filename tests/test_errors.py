"""The catalogue of bad input and the catalogue of faults, and docs/troubleshooting.md made from them.

BAD INPUT: every `Case` is one thing a learner can do wrong. Its trigger really does it (on tiny real CIFAR-10
subsets, small fake archives in a temporary folder, or hand-made cache files); the test checks the exception
type and that the message holds two fragments: one naming the problem, one saying what to do.

FAULTS: every `Fault` is something that goes wrong while training (a crash, a kill, a NaN, a half-written
file, two processes at once). The tests proving that nothing is lost live beside the code they test
(tests/test_train.py, test_io.py, test_cache.py); a `Fault` names them, and `test_fault_tests_exist` fails when
one of them is renamed or removed.

docs/troubleshooting.md and the README's "Troubleshooting" section are generated from both lists, with the
messages obtained by triggering every case; `test_docs_are_generated_from_the_catalogue` fails when they
differ. To regenerate them:

    python tests/test_errors.py --write
"""
import ast
import dataclasses
import functools
import json
import pickle
import re
import sys
import tempfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import kdlab.cache
import kdlab.data
import kdlab.checks
import kdlab.sftn
import kdlab.train
from kdlab.cache import CacheMismatchError, get_teacher, teacher_key, teacher_path
from kdlab.compare import paired_difference
from kdlab.data import DataError, ImageSet, get_data, load
from kdlab.describe import Undescribable
from kdlab.io import CheckpointError, save_atomic
from kdlab.experiment import Arm, run_arms
from kdlab.losses import KD, CrossEntropy, kd_loss, smoothed_one_hot
from kdlab.models import create
from kdlab.recipe import Recipe
from kdlab.scale import get_scale
from kdlab.temperature import kd_arms
from kdlab.train import NonFiniteLossError, StaleCheckpointError, build, fit, resolve_device, state_digest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "troubleshooting.md"
README = REPO / "README.md"
RECIPE = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
QUIET = dict(progress=False, verbose=False, eval_splits=())


# ---------------------------------------------------------------- what the triggers work with

@functools.cache
def _small_data():
    """100 train / 50 val / 100 test real CIFAR-10 images on the CPU (read once per process)."""
    return get_data("cifar10", train_size=100, val_size=50, test_size=100, device="cpu")


@functools.cache
def _cifar10():
    return load("cifar10")


@functools.cache
def _run_checkpoint_bytes():
    """A real checkpoint of one epoch of resnet8 on the small data (RECIPE, seed 0)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.pt"
        fit(build("resnet8", 10, seed=0, device="cpu"), _small_data(), RECIPE, seed=0, checkpoint=path, **QUIET)
        return path.read_bytes()


def _no_training(*a, **kw):
    raise AssertionError("the catalogue never trains a teacher: the error must come first")


class Ctx:
    """What a trigger gets: its own empty folder `dir` and a MonkeyPatch `mp` undone after it."""

    def __init__(self, folder: Path, mp: pytest.MonkeyPatch):
        self.dir, self.mp = folder, mp

    def data(self):
        return _small_data()

    def real_cifar10(self):
        """get_data on the real CIFAR-10, with the decoded archive read once per process."""
        self.mp.setattr(kdlab.data, "load", lambda name, root=None, download=True: _cifar10())

    def model(self, arch="resnet8", num_classes=10):
        return build(arch, num_classes, seed=0, device="cpu")

    def fit(self, model=None, data=None, recipe=RECIPE, **kw):
        return fit(model if model is not None else self.model(), data if data is not None else self.data(), recipe,
                   **{**QUIET, **kw})

    def run_checkpoint(self) -> Path:
        path = self.dir / "run.pt"
        path.write_bytes(_run_checkpoint_bytes())
        return path

    def teacher_file(self, arch="resnet8", key_changes=None, state_arch=None, tamper=False) -> Path:
        """A cache file for get_teacher("resnet8", data, RECIPE, seed=0, scale="test") under `dir/home`, in the
        format get_teacher writes, made by hand (no training); optionally damaged."""
        key = teacher_key(arch, self.data(), RECIPE, 0, "test")
        path = teacher_path(key, self.dir / "home")
        model = build(state_arch or arch, 10, seed=0, device="cpu")
        state = model.state_dict()
        digest = state_digest(model)
        if tamper:
            name = next(k for k, v in state.items() if v.is_floating_point())
            state[name] = state[name] + 1e-3
        stored = {**key, **(key_changes or {})}
        save_atomic({"key": json.dumps(stored), "state_dict": state, "weights": digest,
                     "metrics": {"acc": 0.1}, "history": [], "trained_seconds": 0.0}, path)
        return path

    def get_teacher(self, home=None):
        self.mp.setattr(kdlab.cache, "fit", _no_training)
        return get_teacher("resnet8", self.data(), RECIPE, seed=0, scale="test", home=home or self.dir / "home",
                           progress=False, verbose=False)


def write_fake_cifar10(root: Path, per_batch=20, K=10, seed=0) -> Path:
    """The published CIFAR-10 layout with `per_batch` images in each of the six batch files."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": (np.arange(per_batch) % K).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(K)]}, f)
    return folder


def write_fake_tiny_imagenet(root: Path) -> Path:
    from test_data import write_fake_tiny_imagenet as write  # tests/ is on sys.path under pytest and as a script
    return write(root)


def _truncate(path: Path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _offline(*a, **kw):
    raise urllib.error.URLError("Temporary failure in name resolution")


def _with_label(data, split, position, value):
    s = data.split(split)
    labels = s.labels.clone()
    labels[position] = value
    return dataclasses.replace(data, **{split: ImageSet(s.images, labels, s.index)})


def _nan_model(ctx):
    model = ctx.model()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    return model


def _bad_bf16_setting(ctx):
    ctx.mp.setenv("KDLAB_CPU_BF16", "yes")
    kdlab.train.cpu_bf16.cache_clear()
    try:
        ctx.fit()
    finally:
        kdlab.train.cpu_bf16.cache_clear()  # the next caller reads the restored environment


def _tiny(damage):
    def trigger(ctx):
        folder = write_fake_tiny_imagenet(ctx.dir)
        damage(folder)
        load("tiny-imagenet-200", ctx.dir, download=False)
    return trigger


def _cifar(damage):
    def trigger(ctx):
        damage(write_fake_cifar10(ctx.dir))
        load("cifar10", ctx.dir, download=False)
    return trigger


def _data_root_is_a_file(ctx):
    (ctx.dir / "data").write_text("not a folder")
    ctx.mp.setenv("KDLAB_DATA", str(ctx.dir / "data"))
    ctx.mp.setattr("torchvision.datasets.CIFAR10", _offline)
    get_data("cifar10", train_size=100, val_size=50, test_size=100, device="cpu")


def _no_data_no_network(ctx):
    ctx.mp.setenv("KDLAB_DATA", str(ctx.dir / "data"))
    ctx.mp.setattr("torchvision.datasets.CIFAR10", _offline)
    get_data("cifar10", train_size=100, val_size=50, test_size=100, device="cpu")


def _home_under_a_file(ctx):
    (ctx.dir / "a_file").write_text("not a folder")
    ctx.mp.setenv("KDLAB_HOME", str(ctx.dir / "a_file" / "home"))
    ctx.mp.setattr(kdlab.cache, "fit", _no_training)
    get_teacher("resnet8", ctx.data(), RECIPE, seed=0, scale="test", progress=False, verbose=False)


def _cache_not_a_teacher(ctx):
    path = teacher_path(teacher_key("resnet8", ctx.data(), RECIPE, 0, "test"), ctx.dir / "home")
    save_atomic(ctx.model().state_dict(), path)  # torch.save(model.state_dict()) under the teacher's name
    ctx.get_teacher()


def _stale_run(ctx):
    ckpt = ctx.run_checkpoint()
    ctx.fit(recipe=dataclasses.replace(RECIPE, lr=0.1), checkpoint=ckpt)


def _other_arch_run(ctx):
    ckpt = ctx.run_checkpoint()
    ctx.fit(model=ctx.model("resnet14"), checkpoint=ckpt)


def _not_a_run_checkpoint(ctx):
    ckpt = ctx.dir / "run.pt"
    save_atomic(ctx.model().state_dict(), ckpt)  # torch.save(model.state_dict()) where fit keeps its checkpoint
    ctx.fit(checkpoint=ckpt)


def _truncated_run(ctx):
    ckpt = ctx.run_checkpoint()
    _truncate(ckpt)
    ctx.fit(checkpoint=ckpt)


def _kd_tensors(K_student=10, K_teacher=10, labels=(0, 1, 2, 3)):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(4, K_student, generator=g), torch.randn(4, K_teacher, generator=g),
            torch.tensor(labels))


def _undescribable_with_checkpoint(ctx):
    gen = torch.Generator().manual_seed(0)

    def noisy(s, t, y, i):
        return torch.nn.functional.cross_entropy(s, y) + 0 * torch.rand((), generator=gen)
    ctx.fit(objective=noisy, checkpoint=ctx.dir / "run.pt")


def _paired_runs():
    import pandas as pd
    return pd.DataFrame([{"arm": a, "seed": s, "my_score": 0.5 + 0.01 * s} for a in ("a", "b") for s in range(3)])


class _Payload:
    """A pickle that, loaded with plain pickle.load, would create a file: the test of the safe loader. It names
    builtins.exec, whose module is the same in every Python (Path.touch moved to pathlib._local in 3.13, which
    changed the message the catalogue documents)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').close()",))


def _rewrite_batch(folder: Path, name: str, transform):
    with open(folder / name, "rb") as f:
        entry = pickle.load(f)
    entry["data"] = transform(entry["data"])
    with open(folder / name, "wb") as f:
        pickle.dump(entry, f)


def _offline_with(arrange):
    """No network, and a data folder arranged by `arrange(data_root)` (a nested, partial or linked copy)."""
    def trigger(ctx):
        root = ctx.dir / "data"
        root.mkdir()
        arrange(root)
        ctx.mp.setenv("KDLAB_DATA", str(root))
        ctx.mp.setattr("torchvision.datasets.CIFAR10", _offline)
        get_data("cifar10", train_size=100, val_size=50, test_size=100, device="cpu")
    return trigger


def _nested(root):
    write_fake_cifar10(root / "cifar-10-batches-py")  # root/cifar-10-batches-py/cifar-10-batches-py/...


def _half_extracted(root):
    (write_fake_cifar10(root) / "batches.meta").unlink()


def _dangling_link(root):
    (root / "cifar-10-batches-py").symlink_to(root / "moved-away")


# ---------------------------------------------------------------- the bad-input catalogue

@dataclass(frozen=True)
class Case:
    id: str
    situation: str  # what the learner did, one line
    trigger: Callable  # trigger(ctx) does it
    error: type  # the exact exception type raised
    problem: str  # a fragment of the message naming the problem
    action: str  # a fragment of the message saying what to do
    common: bool = False  # one of the README's Troubleshooting bullets
    no_gpu: bool = False  # only on a machine without CUDA (the docs render it with CUDA hidden)


CASES = [
    # names
    Case("unknown-dataset", 'A dataset name with a typo: `get_data("cifar1O")`',
         lambda ctx: get_data("cifar1O"), ValueError, "unknown dataset 'cifar1O'", "Did you mean 'cifar10'?",
         common=True),
    Case("unknown-model", 'A model name with a typo: `create("resnet32x8")`',
         lambda ctx: create("resnet32x8", 10), ValueError, "unknown model 'resnet32x8'", "Did you mean 'resnet32x4'?"),
    Case("unknown-scale", 'A scale name with a typo: `get_scale("laptp")`',
         lambda ctx: get_scale("laptp"), ValueError, "unknown scale 'laptp'", "Did you mean 'laptop'?"),
    Case("kdlab-scale-misspelt", "`KDLAB_SCALE=redcued` in the environment",
         lambda ctx: (ctx.mp.setenv("KDLAB_SCALE", "redcued"), get_scale()), ValueError,
         "unknown scale 'redcued' (from KDLAB_SCALE)", "Did you mean 'reduced'?", common=True),
    Case("scale-field-typo", "A scale override with a misspelt field: `get_scale(train_sise=100)`",
         lambda ctx: get_scale("smoke", announce=False, train_sise=100), ValueError,
         "unknown scale field(s) ['train_sise']", "Did you mean 'train_size'?"),
    Case("model-num-classes", "A model with no classes: `create(\"resnet8\", num_classes=0)`",
         lambda ctx: create("resnet8", num_classes=0), ValueError, "num_classes must be a positive int, got 0",
         "num_classes=data.num_classes"),
    # loss settings
    Case("temperature-zero", "A KD temperature of 0: `KD(temperature=0)`",
         lambda ctx: KD(temperature=0), ValueError, "temperature must be a finite number > 0, got 0.0",
         "typical values are 1-20", common=True),
    Case("temperature-nan", "A KD temperature that is NaN (e.g. computed from a NaN)",
         lambda ctx: KD(temperature=float("nan")), ValueError, "got nan", "typical values are 1-20"),
    Case("temperature-inf", "An infinite KD temperature: `KD(temperature=float(\"inf\"))`",
         lambda ctx: KD(temperature=float("inf")), ValueError, "got inf", "typical values are 1-20"),
    Case("temperature-per-sample", "Per-sample temperatures with a zero among them, checked with "
         "`validate_temperature_values`",
         lambda ctx: kdlab.checks.validate_temperature_values(torch.tensor([4.0, 0.0])), ValueError,
         "1 of 2 are not", "clamp per-sample temperatures"),
    Case("weight-negative", "A negative loss weight: `KD(w_ce=-0.1)`",
         lambda ctx: KD(w_ce=-0.1), ValueError, "w_ce must be a finite number >= 0, got -0.1",
         "RepDistiller's KD uses w_ce=0.1, w_kd=0.9"),
    Case("weights-both-zero", "Both loss weights 0: `KD(w_ce=0, w_kd=0)`",
         lambda ctx: KD(w_ce=0, w_kd=0), ValueError, "w_ce and w_kd are both 0", "set at least one > 0"),
    Case("label-smoothing", "Label smoothing outside [0, 1): `CrossEntropy(label_smoothing=1.5)`",
         lambda ctx: CrossEntropy(label_smoothing=1.5), ValueError, "label_smoothing must be a number in [0, 1)",
         "0.1 is the usual smoothing"),
    Case("tfkd-alpha", "A Tf-KD soft weight of 1 (no label term left): `self_kd(alpha=1.0, temperature=6)`",
         lambda ctx: kdlab.losses.self_kd(1.0, 6.0), ValueError, "alpha must be in (0, 1)",
         "Tf-KD uses 0.9-0.95"),
    Case("tfkd-reg-form", "A misspelt virtual-teacher form: `TfKDReg(form=\"papper\")`",
         lambda ctx: kdlab.losses.TfKDReg(form="papper"), ValueError, "form must be 'paper'", "or 'code'"),
    Case("tfkd-published-name", "A published Tf-KD setting that does not exist: `published_self(\"ResNet50\")`",
         lambda ctx: kdlab.losses.published_self("ResNet50"), KeyError, "no published Tf-KD self setting",
         "there are: MobileNetV2, ShuffleNetV2, ResNet18"),
    Case("tfkd-multiplier-alone", "A published `multiplier` without the number of classes it was tuned on: "
         "`self_kd(0.95, 6, multiplier=50)`",
         lambda ctx: kdlab.losses.self_kd(0.95, 6.0, multiplier=50), ValueError,
         "pass multiplier and num_classes together", "the number of classes it was tuned on"),
    Case("image-size", "A resize to an impossible size: `get_data(..., image_size=0)`",
         lambda ctx: kdlab.data.resize_images(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), 0), ValueError,
         "image_size must be an integer >= 8", "e.g. 32"),
    Case("ka-method", "A misspelt Knowledge Adjustment method: `KA(method=\"shift\")`",
         lambda ctx: kdlab.losses.KA(method="shift"), ValueError, "method must be 'ps' (probability shift)",
         "or 'lsr' (smoothed one-hot)"),
    Case("ka-soften-ps", "Softening asked of probability shift: `KA(\"ps\", soften=True)` (only LSR's smoothed label is softened)",
         lambda ctx: kdlab.losses.KA("ps", soften=True), ValueError, "soften=True softens LSR's smoothed one-hot",
         "use method='lsr'"),
    Case("dtd-weight", "A DTD hardness weight that does not exist: `DTD(weight=\"cosine\")`",
         lambda ctx: kdlab.losses.DTD(weight="cosine"), ValueError, "weight must be 'flsw'",
         "or 'cwsm' (student confidence)"),
    Case("dtd-range", "A DTD base temperature outside the clamp range: `DTD(t0=0.5)` (the range starts at 1)",
         lambda ctx: kdlab.losses.DTD(t0=0.5), ValueError, "the safe range [1, 2] must contain T0 = 0.5",
         "lower min_temperature"),
    Case("dtd-t-squared", "A T^2 form DTD does not offer: `DTD(t_squared=\"sample\")`",
         lambda ctx: kdlab.losses.DTD(t_squared="sample"), ValueError, "t_squared must be True (each sample's own",
         "'t0' (the constant T0^2) or False"),
    Case("sftn-stages", "A student-friendly teacher for a student with another number of stages: "
         "`SFTN(create(\"resnet20\"), create(\"vgg8\"))`",
         lambda ctx: kdlab.sftn.SFTN(create("resnet20", 10), create("vgg8", 10)), ValueError,
         "SFTN needs the same number of stages", "pair models of the same family"),
    Case("sftn-resolution", "A student-friendly teacher whose feature maps are smaller than the student's: "
         "`SFTN(create(\"ShuffleV2\"), create(\"resnet8\"))`",
         lambda ctx: kdlab.sftn.SFTN(create("ShuffleV2", 10), create("resnet8", 10)), ValueError,
         "cannot be brought to the student's 32x32", "pick a pair whose stages run at compatible resolutions"),
    Case("sftn-settings", "A cached student-friendly teacher asked for without its student: "
         "`get_teacher(..., sftn={\"lambda_kl\": 3})`",
         lambda ctx: teacher_key("resnet20", _small_data(), RECIPE, sftn={"lambda_kl": 3}), ValueError,
         "sftn must be a dict with 'student'", "the student architecture"),
    # logits and labels
    Case("logits-class-count", "Student and teacher logits with different class counts (10 and 100) "
         "given to `kd_loss`",
         lambda ctx: kd_loss(*_kd_tensors(10, 100)), ValueError, "must have the same shape",
         "have the same number of classes"),
    Case("teacher-class-count", "Distilling from a teacher built for 100 classes into a CIFAR-10 student",
         lambda ctx: ctx.fit(objective=KD(), teacher=ctx.model(num_classes=100)), ValueError,
         "the teacher has 100 outputs but cifar10 has 10 classes", "trained on the same label set", common=True),
    Case("student-class-count", "Training a model built for 100 classes on CIFAR-10",
         lambda ctx: ctx.fit(model=ctx.model(num_classes=100)), ValueError,
         "the model has 100 outputs but cifar10 has 10 classes", "build it with num_classes=10"),
    Case("labels-out-of-range-data", "Training on data with a label 10 in a 10-class dataset (classes remapped "
         "by hand)",
         lambda ctx: ctx.fit(data=_with_label(ctx.data(), "train", 3, 10)), ValueError,
         "train labels span [0, 10] but there are 10 classes", "Check how the labels were built"),
    Case("labels-out-of-range-loss", "Calling a loss with a label 12 for 10-class logits",
         lambda ctx: CrossEntropy()(*_kd_tensors(labels=(0, 1, 12, 3))), ValueError,
         "labels span [0, 12] but the logits have 10 classes", "Check that the model has one output per class"),
    Case("one-hot-labels", "Calling a loss with one-hot labels instead of class indices",
         lambda ctx: kd_loss(*_kd_tensors()[:2], torch.nn.functional.one_hot(torch.arange(4), 10)), ValueError,
         "labels must be 1-D", "labels.argmax(dim=1)"),
    Case("logits-nan", "A model whose outputs are NaN (e.g. weights that blew up), trained with `fit`",
         lambda ctx: ctx.fit(model=_nan_model(ctx)), NonFiniteLossError,
         "the loss became NaN or infinite at epoch 1, step 1", "Lower the learning rate or check the inputs",
         common=True),
    Case("kd-without-teacher", "A KD objective without a teacher: `fit(..., objective=KD())`",
         lambda ctx: ctx.fit(objective=KD()), ValueError, "distils from a teacher",
         "pass teacher=... (e.g. from kdlab.cache.get_teacher)"),
    Case("no-teacher-logits", "Calling `kd_loss` with `teacher_logits=None`",
         lambda ctx: kd_loss(_kd_tensors()[0], None, _kd_tensors()[2]), TypeError, "teacher_logits is None",
         "pass the teacher's logits for the same batch"),
    # training settings
    Case("seeds-empty", "No seeds for a paired experiment: `run_arms(arms, d, recipe, seeds=[])`",
         lambda ctx: run_arms([Arm("a", "resnet8")], ctx.data(), RECIPE, seeds=[]), ValueError, "seeds is empty",
         "pass at least one seed, e.g. (0, 1, 2)"),
    Case("seeds-a-number", "A number of seeds where the seeds go: `run_arms(..., seeds=3)`",
         lambda ctx: run_arms([Arm("a", "resnet8")], ctx.data(), RECIPE, seeds=3), TypeError,
         "seeds is a list of seeds", "e.g. (0, 1, 2) or range(3)"),
    Case("temperatures-a-number", "One number where a sweep's temperatures go: `kd_arms(\"resnet8\", 4, teacher=t)` "
         "(notebook 02's `TEMPERATURES = 4`)",
         lambda ctx: kd_arms("resnet8", 4, teacher=torch.nn.Linear(1, 1)),
         TypeError, "temperatures is a list of numbers", "for a single temperature write (4,)"),
    Case("recipe-a-dict", "A dict where a Recipe goes: `run_arms(arms, d, {\"epochs\": 10})`",
         lambda ctx: run_arms([Arm("a", "resnet8")], ctx.data(), {"epochs": 10}), TypeError,
         "recipe must be a kdlab.recipe.Recipe, got dict", "build one with Recipe(epochs=..., lr=...)"),
    Case("torch-loss-as-objective", "torch's loss module as the objective: `objective=nn.CrossEntropyLoss()`",
         lambda ctx: ctx.fit(objective=torch.nn.CrossEntropyLoss()), TypeError, "is torch's loss",
         "use kdlab.losses.CrossEntropy()"),
    Case("smoothed-labels-out-of-range", "Labels beyond the class count in `smoothed_one_hot`",
         lambda ctx: smoothed_one_hot(torch.tensor([0, 12]), 10), ValueError, "labels span [0, 12]",
         "must be 0..9"),
    Case("teacher-without-objective", "A teacher passed to `fit` without an objective",
         lambda ctx: ctx.fit(teacher=ctx.model()), ValueError, "a teacher was given but no objective",
         "pass objective=KD(...)"),
    Case("student-is-its-own-teacher", "The student passed as its own teacher: `fit(m, ..., objective=KD(), teacher=m)`",
         lambda ctx: (lambda m: ctx.fit(model=m, objective=KD(), teacher=m))(ctx.model()), ValueError,
         "the student was passed as its own teacher", "train one, e.g. with cache.get_teacher"),
    Case("objective-undescribable", "A checkpointed run whose objective reads a random generator",
         _undescribable_with_checkpoint, Undescribable, "cannot describe this objective completely",
         "Pass objective_id="),
    Case("eval-splits-string", 'The splits to evaluate given as one string: `eval_splits="test"`',
         lambda ctx: ctx.fit(eval_splits="test"), TypeError, "eval_splits is a list of split names",
         "e.g. ('test',)"),
    Case("metric-direction-unknown", "A paired difference of a metric kdlab does not know",
         lambda ctx: paired_difference(_paired_runs(), "a", "b", metric="my_score"), KeyError,
         "does not know which way is better for 'my_score'", "pass higher_is_better=True or False"),
    Case("confidence-percent", "A confidence level given in percent: `paired_difference(..., confidence=95)`",
         lambda ctx: paired_difference(_paired_runs(), "a", "b", metric="my_score", confidence=95,
                                       higher_is_better=True), ValueError,
         "confidence is a fraction in (0, 1)", "e.g. 0.95 for a 95% interval"),
    Case("recipe-epochs-zero", "A recipe of 0 epochs: `Recipe(epochs=0)`",
         lambda ctx: Recipe(epochs=0), ValueError, "epochs must be an int >= 1, got 0", "use e.g. epochs=10"),
    Case("recipe-lr-zero", "A learning rate of 0: `Recipe(epochs=10, lr=0)`",
         lambda ctx: Recipe(epochs=10, lr=0), ValueError, "lr must be > 0", "RepDistiller uses 0.05"),
    Case("recipe-unknown-schedule", 'An unknown schedule: `Recipe(epochs=10, schedule="step")`',
         lambda ctx: Recipe(epochs=10, schedule="step"), ValueError, "unknown schedule 'step'",
         "Did you mean 'multistep'?"),
    Case("fit-not-a-recipe", "A dict instead of a Recipe: `fit(model, data, {\"epochs\": 2})`",
         lambda ctx: ctx.fit(recipe={"epochs": 2}), TypeError, "got dict", "recipe must be a kdlab.recipe.Recipe"),
    Case("unknown-split", 'An unknown split name: `fit(..., eval_splits=("valid",))`',
         lambda ctx: ctx.fit(eval_splits=("valid",)), ValueError, "unknown split 'valid'",
         "use 'train', 'val' or 'test'"),
    # subsets
    Case("empty-subset", "An empty training subset: `get_data(train_size=0)`",
         lambda ctx: (ctx.real_cifar10(), get_data("cifar10", train_size=0, val_size=50, device="cpu")), ValueError,
         "the training split is empty", "raise train_size or lower val_size"),
    Case("subset-below-class-count", "A stratified subset smaller than the class count: `get_data(train_size=5)`",
         lambda ctx: (ctx.real_cifar10(), get_data("cifar10", train_size=5, val_size=50, device="cpu")), ValueError,
         "cannot hold all 10 classes", "ask for at least 10"),
    Case("train-size-too-large", "More training images than CIFAR-10 has: `get_data(train_size=60000)`",
         lambda ctx: (ctx.real_cifar10(), get_data("cifar10", train_size=60000, device="cpu")), ValueError,
         "train_size=60000 but only 45000 training images remain", "ask for at most 45000"),
    Case("val-size-too-large", "A validation split larger than the training set: `get_data(val_size=60000)`",
         lambda ctx: (ctx.real_cifar10(), get_data("cifar10", val_size=60000, device="cpu")), ValueError,
         "val_size=60000 but the cifar10 training split has only 50000 images", "ask for at most 50000"),
    Case("test-size-too-large", "More test images than there are: `get_data(test_size=20000)`",
         lambda ctx: (ctx.real_cifar10(), get_data("cifar10", test_size=20000, device="cpu")), ValueError,
         "test_size=20000 but the cifar10 test split has only 10000 images", "ask for at most 10000"),
    # data on disk
    Case("cifar-missing-batch", "A CIFAR-10 folder with a batch file missing",
         _cifar(lambda f: (f / "data_batch_3").unlink()), DataError, "data_batch_3 is missing",
         "delete <dir>/cifar-10-batches-py and let kdlab download it again"),
    Case("cifar-truncated-batch", "A CIFAR-10 folder with a truncated batch file (an interrupted copy)",
         _cifar(lambda f: _truncate(f / "data_batch_2")), DataError, "data_batch_2 is truncated or corrupt",
         "Delete <dir>/cifar-10-batches-py and download again", common=True),
    Case("cifar-bad-labels", "A CIFAR-10 folder whose labels do not match its class list",
         _cifar(lambda f: pickle.dump({"label_names": ["a", "b"]}, open(f / "batches.meta", "wb"))), DataError,
         "train labels span [0, 9] but there are 2 classes", "Delete <dir>/cifar-10-batches-py and download again"),
    Case("cifar-float-pixels", "A re-encoded CIFAR-10 folder whose pixels are floats in [0, 1]",
         _cifar(lambda f: _rewrite_batch(f, "data_batch_1", lambda x: x.astype(np.float32) / 255)), DataError,
         "pixels scaled to [0, 1]", "re-save it as (data * 255).round().astype(uint8)"),
    Case("cifar-pixels-out-of-range", "A re-encoded CIFAR-10 folder with pixel values above 255",
         _cifar(lambda f: _rewrite_batch(f, "data_batch_1", lambda x: x.astype(np.int64) + 300)), DataError,
         "not whole pixel values in [0, 255]", "the published files hold uint8"),
    Case("cifar-channels-last", "A re-encoded CIFAR-10 folder stored as (N, 32, 32, 3) images",
         _cifar(lambda f: _rewrite_batch(f, "data_batch_1", lambda x: x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))),
         DataError, "channels last (N, 32, 32, 3)", "data.transpose(0, 3, 1, 2).reshape(N, 3072)"),
    Case("cifar-pickle-with-code", "A `batches.meta` that carries code (a pickle naming a callable)",
         _cifar(lambda f: (f / "batches.meta").write_bytes(pickle.dumps(_Payload(f / "ran")))), DataError,
         "which a published CIFAR batch file never does", "Delete <dir>/cifar-10-batches-py and download again"),
    Case("cifar-nested", "A CIFAR-10 folder copied one level too deep (cifar-10-batches-py/cifar-10-batches-py/)",
         _offline_with(_nested), DataError, "nested one level too deep", "move that folder up into <dir>/data"),
    Case("cifar-half-extracted", "A half-extracted CIFAR-10 folder (no batches.meta) and no network",
         _offline_with(_half_extracted), DataError, "exists but has no batches.meta",
         "the copy or extraction is incomplete (delete it and copy again)"),
    Case("cifar-dangling-link", "The CIFAR-10 folder is a symbolic link to a folder that was moved",
         _offline_with(_dangling_link), DataError, "is a symbolic link to <dir>/data/moved-away, which does not exist",
         "copy the extracted published folder `cifar-10-batches-py/`"),
    Case("tiny-partial", "A partial Tiny ImageNet folder (no val/val_annotations.txt)",
         _tiny(lambda f: (f / "val" / "val_annotations.txt").unlink()), DataError, "val_annotations.txt is missing",
         "Delete it and download again"),
    Case("tiny-corrupt-jpeg", "A Tiny ImageNet folder with a corrupt JPEG",
         _tiny(lambda f: (f / "train" / "n02" / "images" / "n02_1.JPEG").write_bytes(b"not a jpeg")), DataError,
         "cannot decode", "delete it and download again"),
    Case("tiny-empty-class", "A Tiny ImageNet folder with a class that has no training images",
         _tiny(lambda f: [p.unlink() for p in (f / "train" / "n03" / "images").glob("*")]), DataError,
         "class n03 has no training images", "Delete it and download again"),
    Case("tiny-missing-val-image", "A Tiny ImageNet folder with a validation image missing",
         _tiny(lambda f: (f / "val" / "images" / "val_2.JPEG").unlink()), DataError, "1 of 6 val images",
         "Delete it and download again"),
    Case("tiny-unknown-class", "A Tiny ImageNet val_annotations.txt naming a class not in wnids.txt",
         _tiny(lambda f: (f / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")),
         DataError, "names class 'n99', which is not in wnids.txt", "Delete it and download again"),
    Case("no-data-no-network", "No dataset on disk and no network",
         _no_data_no_network, DataError, "could not be downloaded", "run `python -m kdlab data cifar10` once",
         common=True),
    Case("data-root-is-a-file", "`KDLAB_DATA` pointing at a file instead of a folder",
         _data_root_is_a_file, DataError, "is a file, not a folder", "Point KDLAB_DATA (or root=) at the folder"),
    # checkpoints
    Case("checkpoint-truncated", "Resuming from a truncated checkpoint (the disk filled up, a copy was cut short)",
         _truncated_run, CheckpointError, "checkpoint <dir>/run.pt is truncated or corrupt",
         "Delete it and run the same call again", common=True),
    Case("checkpoint-other-arch", "Resuming a resnet14 run from a resnet8 run's checkpoint",
         _other_arch_run, StaleCheckpointError, "arch: checkpoint has 'resnet8', this run 'resnet14'",
         "Delete it, or pass another checkpoint path"),
    Case("checkpoint-stale", "Changing the recipe (lr 0.05 -> 0.1) and running again with the same checkpoint path",
         _stale_run, StaleCheckpointError, "recipe.lr: checkpoint has 0.05, this run 0.1",
         "Delete it, or pass another checkpoint path", common=True),
    Case("checkpoint-not-a-run", "`checkpoint=` naming a file saved with `torch.save(model.state_dict())`",
         _not_a_run_checkpoint, StaleCheckpointError, "is not a kdlab run checkpoint",
         "Pass another checkpoint path, or delete it"),
    Case("checkpoint-is-a-folder", "`checkpoint=` naming a folder instead of a file",
         lambda ctx: ctx.fit(checkpoint=ctx.dir), CheckpointError, "checkpoint <dir> is a folder",
         "pass a file path such as <dir>/run.pt"),
    # the teacher cache
    Case("teacher-scale-is-a-path", 'A teacher cached under a scale label that is a path: `scale="../../.."`',
         lambda ctx: get_teacher("resnet8", ctx.data(), RECIPE, scale="../../..", home=ctx.dir / "home"), ValueError,
         "scale='../../..' is not a plain name", "Pass the scale's name, e.g. scale.name"),
    Case("teacher-arch-is-a-path", 'A teacher architecture that is a path: `get_teacher("../../x", ...)`',
         lambda ctx: get_teacher("../../x", ctx.data(), RECIPE, scale="test", home=ctx.dir / "home"), ValueError,
         "unknown model '../../x'", "Available:"),
    Case("cache-altered-weights", "A cached teacher whose weights were changed after it was saved",
         lambda ctx: (ctx.teacher_file(tamper=True), ctx.get_teacher()), CacheMismatchError,
         "do not match their recorded digest", "Delete it to retrain the teacher"),
    Case("cache-other-key", "A cached teacher file made for another key (renamed or copied by hand)",
         lambda ctx: (ctx.teacher_file(key_changes={"seed": 1}), ctx.get_teacher()), CacheMismatchError,
         "different key than its name says", "Delete the file to retrain it"),
    Case("cache-other-arch", "A cached teacher file holding another architecture's weights",
         lambda ctx: (ctx.teacher_file(state_arch="resnet14"), ctx.get_teacher()), CacheMismatchError,
         "the weights do not fit a resnet8 with 10 classes", "Delete the file to retrain the teacher"),
    Case("cache-truncated", "A truncated cached teacher file",
         lambda ctx: (_truncate(ctx.teacher_file()), ctx.get_teacher()), CheckpointError,
         "cached teacher <dir>/home/teachers/", "Delete it and run the same call again"),
    Case("cache-not-a-teacher", "A plain `torch.save(model.state_dict())` file put where a cached teacher goes",
         _cache_not_a_teacher, CacheMismatchError, "is not a kdlab teacher file", "Delete it to retrain the teacher"),
    Case("cache-not-writable", "`KDLAB_HOME` (the teacher cache) in a place that cannot be written",
         _home_under_a_file, CheckpointError, "cannot write to <dir>/a_file/home/teachers (Not a directory)",
         "set KDLAB_HOME to a folder you can write", common=True),
    # environment and device
    Case("cpu-bf16-malformed", "`KDLAB_CPU_BF16=yes` in the environment",
         _bad_bf16_setting, ValueError, "KDLAB_CPU_BF16 must be 0, 1 or auto, got 'yes'", "must be 0, 1 or auto"),
    Case("cuda-without-gpu", 'A model asked for on `device="cuda"` on a machine without a GPU',
         lambda ctx: build("resnet8", 10, device="cuda"), RuntimeError, "this machine has no usable GPU",
         "use device='cpu'", no_gpu=True),
    Case("data-cuda-without-gpu", 'Data asked for on `device="cuda"` on a machine without a GPU',
         lambda ctx: get_data("cifar10", device="cuda"), RuntimeError, "this machine has no usable GPU",
         "use device='cpu'", no_gpu=True),
]

# The situations the catalogue must cover, each with the cases that cover it (checked below).
REQUIRED_SITUATIONS = {
    "unknown dataset / model / scale name (suggest the close match)": ["unknown-dataset", "unknown-model",
                                                                       "unknown-scale"],
    "temperature <= 0, NaN or infinite": ["temperature-zero", "temperature-nan", "temperature-inf"],
    "loss weights outside their range": ["weight-negative", "weights-both-zero"],
    "teacher and student with different class counts": ["teacher-class-count", "logits-class-count"],
    "labels out of range": ["labels-out-of-range-data", "labels-out-of-range-loss"],
    "logits with NaN": ["logits-nan"],
    "an empty subset": ["empty-subset"],
    "a data folder with missing or truncated batch files": ["cifar-missing-batch", "cifar-truncated-batch"],
    "a corrupt or partial Tiny ImageNet folder": ["tiny-partial", "tiny-corrupt-jpeg"],
    "no data and no network": ["no-data-no-network"],
    "a truncated checkpoint": ["checkpoint-truncated"],
    "a checkpoint of another architecture or another cache key": ["checkpoint-other-arch", "cache-other-key"],
    "a cache directory that is not writable": ["cache-not-writable"],
    "KDLAB_SCALE misspelt": ["kdlab-scale-misspelt"],
}


def trigger(case: Case, folder: Path, hide_gpu: bool = False) -> Exception:
    """Do what the case does in `folder`; return the exception it raised (fails if none was)."""
    folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        if hide_gpu:
            mp.setattr(torch.cuda, "is_available", lambda: False)
        try:
            case.trigger(Ctx(folder, mp))
        except Exception as e:  # noqa: BLE001 - the catalogue checks the type below
            return e
    raise AssertionError(f"{case.id}: {case.situation} raised no error")


def message(err: Exception, folder: Path) -> str:
    """The message as the docs quote it: the case's temporary folder written as <dir>, the digest in a cached
    teacher's file name as <digest> (it changes with the recipe's code version)."""
    return re.sub(r"-[0-9a-f]{16}\.pt\b", "-<digest>.pt", str(err).replace(str(folder), "<dir>"))


# ---------------------------------------------------------------- the fault catalogue

@dataclass(frozen=True)
class Fault:
    fault: str
    what_happens: str
    tests: tuple  # "tests/<file>.py::<test name>", each proving it


FAULTS = [
    Fault("The training process is killed with SIGKILL in the middle of an epoch (once, and three times at random moments)",
          "Checkpoints are written after every epoch; the same call, run again, resumes after the last finished "
          "epoch and ends with bit-identical weights and history (CPU)",
          ("tests/test_train.py::test_resume_after_sigkill_matches_an_uninterrupted_process",
           "tests/test_train.py::test_several_sigkills_at_random_moments_still_end_bit_identical")),
    Fault("A crash (an exception) in the middle of an epoch",
          "The checkpoint keeps the last finished epoch; the same call resumes to the uninterrupted result, "
          "global RNG included",
          ("tests/test_train.py::test_interrupted_run_resumes_to_the_uninterrupted_result",
           "tests/test_train.py::test_global_rng_is_derived_from_seed_and_epoch_and_left_as_it_was")),
    Fault("The loss becomes NaN or infinite",
          "Training stops with NonFiniteLossError naming the epoch and step; the checkpoint of the last good "
          "epoch is kept, and its weights are finite",
          ("tests/test_train.py::test_nonfinite_loss_names_epoch_and_step_and_keeps_the_checkpoint",
           "tests/test_train.py::test_nonfinite_loss_found_at_the_end_of_an_epoch")),
    Fault("A checkpoint write is interrupted (disk full, Ctrl-C, a kill)",
          "Writes go to a temporary file renamed over the target: the previous checkpoint stays intact and no "
          "temporary file is left",
          ("tests/test_io.py::test_crash_mid_write_keeps_the_previous_file",)),
    Fault("Two processes ask the teacher cache for the same teacher at once",
          "One takes the lock and trains; the other waits, then loads the saved teacher (trained once)",
          ("tests/test_cache.py::test_two_processes_train_the_teacher_once",)),
    Fault("Ctrl-C (KeyboardInterrupt) in a notebook during training",
          "The message names the epoch and step and says how to resume; running the same call again resumes "
          "to the uninterrupted result",
          ("tests/test_train.py::test_keyboard_interrupt_says_how_to_resume_and_the_checkpoint_resumes",)),
    Fault("Teacher training in the cache is interrupted",
          "The teacher's partial checkpoint is kept; the next get_teacher resumes it and caches the same teacher",
          ("tests/test_cache.py::test_interrupted_teacher_training_resumes_from_its_partial_checkpoint",)),
    Fault("A finished run is started again",
          "Its checkpoint holds every epoch: the history is returned without training again",
          ("tests/test_train.py::test_completed_checkpoint_returns_its_history_without_training",)),
    Fault("A checkpoint made by a different run (recipe, seed, objective, teacher) is found at the path",
          "It is refused (StaleCheckpointError naming the difference), nothing is loaded; resume=False overwrites",
          ("tests/test_train.py::test_stale_checkpoint_is_refused_naming_the_difference",
           "tests/test_train.py::test_resume_false_overwrites_a_stale_checkpoint")),
    Fault("A cached teacher file is damaged, altered or renamed",
          "It is refused with a message saying to delete it, and left in place (never silently replaced)",
          ("tests/test_cache.py::test_damaged_cache_file_is_refused",)),
]


def _test_functions(path: Path) -> dict:
    """{test name: is it marked slow} for the module-level test functions of a test file."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            out[node.name] = any("slow" in ast.unparse(d) for d in node.decorator_list)
    return out


def resolve_test(node_id: str):
    """(file, name, slow) of "tests/<file>.py::<name>"; raises LookupError when there is no such test."""
    file, _, name = node_id.partition("::")
    path = REPO / file
    if not name or not path.is_file():
        raise LookupError(f"{node_id}: no such test file")
    tests = _test_functions(path)
    if name not in tests:
        raise LookupError(f"{node_id}: {file} has no test function {name!r}")
    return file, name, tests[name]


# ---------------------------------------------------------------- the docs

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _elide(text: str, head=220, tail=180) -> str:
    return text if len(text) <= head + tail + 20 else f"{text[:head]} [...] {text[-tail:]}"


def _clause(msg: str, fragment: str) -> str:
    """The clause of `msg` that holds `fragment` (cut at '. ', '; ' and newlines)."""
    i = msg.find(fragment)
    start = max([msg.rfind(sep, 0, i) + len(sep) for sep in (". ", "; ", "\n", ": ")] + [0])
    ends = [j for j in (msg.find(sep, i + len(fragment)) for sep in (". ", "; ", "\n")) if j >= 0]
    return msg[start:min(ends) if ends else len(msg)].strip().rstrip(".") + "."


def _messages() -> dict:
    """{case id: (exception type name, message)}: every case triggered, on a machine seen as GPU-less."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for case in CASES:
            folder = Path(d) / case.id
            err = trigger(case, folder, hide_gpu=case.no_gpu)
            out[case.id] = (type(err).__name__, message(err, folder))
    return out


def render_markdown(messages=None) -> str:
    messages = messages if messages is not None else _messages()
    lines = [
        "# Troubleshooting",
        "",
        "<!-- Generated by tests/test_errors.py from its catalogues: do not edit by hand, run "
        "`python tests/test_errors.py --write`. -->",
        "",
        "Every error kdlab raises for bad input names the problem and says what to do. The table lists "
        f"the {len(CASES)} cases of the catalogue in `tests/test_errors.py`, each a test; the message quoted is the "
        "one kdlab gives today (the case's folder written as `<dir>`, a cached teacher's digest as `<digest>`, long "
        "messages shortened with [...]). "
        "What to do is in bold. Run one case with `pytest tests/test_errors.py -k <case>`.",
        "",
        "## Bad input",
        "",
        "| case | situation | error | the message (what to do in bold) |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        kind, msg = messages[case.id]
        quoted = _cell(_elide(msg))
        action = _cell(case.action)
        quoted = quoted.replace(action, f"**{action}**", 1) if action in quoted else f"{quoted} (**{action}**)"
        lines.append(f"| `{case.id}` | {_cell(case.situation)} | `{kind}` | {quoted} |")
    lines += [
        "",
        "## Faults: nothing lost",
        "",
        "What kdlab does when something goes wrong during a run, and the test that proves it "
        "(tests marked slow run real processes; `pytest -m slow` runs them alone).",
        "",
        "| fault | what happens | test |",
        "|---|---|---|",
    ]
    for f in FAULTS:
        refs = []
        for node_id in f.tests:
            _, _, slow = resolve_test(node_id)
            refs.append(f"`{node_id}`" + (" (slow)" if slow else ""))
        lines.append(f"| {_cell(f.fault)} | {_cell(f.what_happens)} | {'<br>'.join(refs)} |")
    return "\n".join(lines) + "\n"


def render_readme_section(messages=None) -> str:
    messages = messages if messages is not None else _messages()
    lines = ["## Troubleshooting", "",
             "kdlab's errors name the problem and say what to do. The most common ones (all "
             f"{len(CASES)} cases, and the faults that lose nothing, are in "
             "[docs/troubleshooting.md](docs/troubleshooting.md)):", ""]
    for case in (c for c in CASES if c.common):
        kind, msg = messages[case.id]
        clause = _clause(msg, case.action).replace("<dir>", "…")
        lines.append(f"- {case.situation} — `{kind}`: \"{_cell(clause)}\"")
    return "\n".join(lines) + "\n"


def _readme_with(section: str) -> str:
    text = README.read_text()
    start = text.find("\n## Troubleshooting\n")
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + 1)
    rest = "" if end < 0 else text[end:]
    return text[: start + 1] + section + rest


def write_docs():
    messages = _messages()
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text(render_markdown(messages))
    README.write_text(_readme_with(render_readme_section(messages)))


# ---------------------------------------------------------------- the tests

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_the_problem_and_what_to_do(case, tmp_path):
    if case.no_gpu and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = trigger(case, tmp_path / "case")
    msg = message(err, tmp_path / "case")
    assert type(err) is case.error, f"{case.id}: expected {case.error.__name__}, got {type(err).__name__}: {msg}"
    assert case.problem in msg, f"{case.id}: the message does not name the problem ({case.problem!r}): {msg}"
    assert case.action in msg, f"{case.id}: the message does not say what to do ({case.action!r}): {msg}"


def test_catalogue_covers_every_required_situation():
    ids = [c.id for c in CASES]
    assert len(ids) >= 25 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)
    for example, covering in REQUIRED_SITUATIONS.items():
        assert covering and set(covering) <= set(ids), f"{example!r}: no case {set(covering) - set(ids)}"
    for c in CASES:
        assert c.problem != c.action and "\n" not in c.situation
    assert 6 <= sum(c.common for c in CASES) <= 10  # the README's bullets


def test_fault_tests_exist():
    assert len(FAULTS) >= 5
    for f in FAULTS:
        assert f.tests
        for node_id in f.tests:
            resolve_test(node_id)  # raises for a renamed or removed test
    with pytest.raises(LookupError):
        resolve_test("tests/test_train.py::test_that_was_renamed")


def test_docs_are_generated_from_the_catalogue():
    messages = _messages()
    how = "run `python tests/test_errors.py --write` to regenerate it"
    assert DOCS.is_file(), f"{DOCS} is missing: {how}"
    assert DOCS.read_text() == render_markdown(messages), f"{DOCS} differs from the catalogue: {how}"
    section = render_readme_section(messages)
    assert section in README.read_text(), f"README.md's Troubleshooting section differs from the catalogue: {how}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        torch.set_num_threads(1)
        write_docs()
        print(f"wrote {DOCS.relative_to(REPO)} and the Troubleshooting section of {README.relative_to(REPO)}")
    else:
        print(__doc__)
        sys.exit(2)


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    folder = write_fake_cifar10(tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps(_Payload(tmp_path / "ran")))
    with pytest.raises(DataError, match="never does"):
        load("cifar10", tmp_path, download=False)
    assert not (tmp_path / "ran").exists()  # plain pickle.load would have created it
    pickle.loads((folder / "batches.meta").read_bytes())
    assert (tmp_path / "ran").exists()  # (the payload is real)


def test_a_teacher_name_never_becomes_a_path_outside_the_cache(tmp_path, monkeypatch):
    data = _small_data()
    home = tmp_path / "a" / "b" / "home"
    for kw in (dict(arch="../../x"), dict(arch="resnet8", scale="../../.."), dict(arch="resnet8", scale="/tmp/x")):
        with pytest.raises(ValueError):
            get_teacher(kw["arch"], data, RECIPE, scale=kw.get("scale", "test"), home=home)
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing was created, not even a lock


def test_spellings_of_a_model_share_one_cached_teacher():
    data = _small_data()
    assert teacher_key("RESNET8", data, RECIPE, 0, "test") == teacher_key("resnet8", data, RECIPE, 0, "test")
    assert teacher_key(" ResNet8 ", data, RECIPE, 0, "test")["arch"] == "resnet8"


def test_plausible_arguments_of_other_types_are_accepted_or_named():
    import numpy as np
    from kdlab.experiment import check_seeds
    from kdlab.scale import PRESETS, resolve_name
    assert check_seeds(np.arange(3)) == (0, 1, 2) and check_seeds(range(2)) == (0, 1)
    assert resolve_name(PRESETS["laptop"]) == "laptop"  # the Scale where its name goes
    r = Recipe(epochs=2, extra={"weight": np.float32(0.5), "sizes": np.array([1, 2]), "n": np.int64(3)})
    assert r.extra == {"weight": 0.5, "sizes": [1, 2], "n": 3}
    json.dumps(r.to_dict())  # plain, so it can go into a cache key
    with pytest.raises(ValueError, match="not a plain setting"):
        Recipe(epochs=2, extra={"model": object()})
    with pytest.raises(ValueError, match="repeat a seed"):
        check_seeds((0, 0))
