"""One switch, `KDLAB_SCALE`, picks how big every run is: epochs, subset sizes, models, seeds.

| scale   | for                       | data                                  | budget per notebook          |
| ------- | ------------------------- | ------------------------------------- | ---------------------------- |
| smoke   | CI and nbval, on a CPU    | CIFAR-10, 500 train / 500 test images | seconds                      |
| laptop  | a 2-core CPU              | CIFAR-10, 5,000 train / 2,000 test    | at most 10 minutes           |
| reduced | one GPU                   | CIFAR-10, 45,000 train / 10,000 test  | 3 minutes (the target)       |
| full    | the paper's setting       | CIFAR-100, 45,000 train / 10,000 test | GPU-hours (`kdlab plan`)     |

The default is `reduced` when CUDA is available, else `laptop`. Notebooks start from `get_scale()` and
override what they need with `dataclasses.replace(scale, ...)`; every field is plain data.

Validation split: every scale holds out a stratified validation split from the training set for every choice a
notebook makes (never the test set). `full` runs the paper's recipe (RepDistiller: CIFAR-100, 240 epochs, last
epoch reported on test) on 45,000 training images rather than the paper's 50,000, because the notebooks'
choices need validation images; expect its numbers slightly below the published ones.
"""
import difflib
import os
from dataclasses import dataclass, replace

from kdlab.recipe import Recipe

SCALES = ("smoke", "laptop", "reduced", "full")


@dataclass(frozen=True)
class Scale:
    name: str
    dataset: str
    train_size: int | None  # images used for training (stratified subset); None: all that the val split leaves
    val_size: int  # held out from the training set
    test_size: int | None  # stratified subset of the test set; None: all of it
    teacher: str  # default architectures (a notebook may override)
    student: str
    teacher_recipe: Recipe
    student_recipe: Recipe
    seeds: tuple  # paired seeds for every compared arm
    device: str  # what the scale is sized for: "cpu" or "gpu"
    budget: str  # expected time per notebook on the device it is sized for

    def expected_time(self, device_type: str) -> str:
        """What a learner should expect on `device_type` ('cpu' or 'cuda')."""
        on_gpu = device_type == "cuda"
        if self.device == "gpu" and not on_gpu:
            return (f"{self.budget} on a GPU, but this machine has none: expect hours on a CPU "
                    "(set KDLAB_SCALE=laptop for a CPU-sized run)")
        if self.device == "cpu" and on_gpu:
            return f"well under the {self.budget} it takes on a 2-core CPU"
        return self.budget

    def banner(self, device_type: str | None = None, precision: str | None = None) -> str:
        """One line: the scale, the device, how it computes there (`precision`, see `kdlab.train.precision`;
        looked up when `device_type` is not given), and the time to expect."""
        if device_type is None:
            import torch

            from kdlab.train import precision as precision_on  # lazy: the scale table needs no torch
            device_type = "cuda" if torch.cuda.is_available() else "cpu"
            precision = precision_on(torch.device(device_type))
        train = "all" if self.train_size is None else f"{self.train_size:,}"
        test = "all" if self.test_size is None else f"{self.test_size:,}"
        return (f"kdlab scale: {self.name} | {self.dataset}, {train} train / {self.val_size:,} val / {test} test "
                f"images | teacher {self.teacher} ({self.teacher_recipe.epochs} ep), student {self.student} "
                f"({self.student_recipe.epochs} ep), seeds {list(self.seeds)} | device {device_type}"
                f"{_PRECISION_NOTES.get((device_type, precision), f' ({precision})' if precision else '')} | "
                f"expected: {self.expected_time(device_type)}")


# What a learner on a hosted GPU should know: an older card (T4, V100) has no native bf16, so training runs in fp16
_PRECISION_NOTES = {("cuda", "fp16"): " (fp16 with a gradient scaler: this GPU has no native bf16)"}


def _cpu_recipe(epochs, lr=0.1):
    # Short runs: one-cycle reaches a good model in few epochs without tuning milestones. Batch 128: on a
    # 2-core CPU resnet20 trains at 741 images/s with it against 531 with batch 64 (bf16, channels_last).
    return Recipe(epochs=epochs, batch_size=128, lr=lr, schedule="onecycle", nesterov=True)


PRESETS = {
    "smoke": Scale(
        name="smoke", dataset="cifar10", train_size=500, val_size=100, test_size=500,
        teacher="resnet8", student="resnet8",
        # a teacher of 6 epochs beats guessing by a wide margin (22-25% test accuracy on 4 seeds, where 13.4%
        # is what guessing reaches once in 100 tries on 500 images): the check that a broken run fails
        teacher_recipe=_cpu_recipe(6), student_recipe=_cpu_recipe(2),
        seeds=(0, 1), device="cpu", budget="seconds"),
    "laptop": Scale(
        name="laptop", dataset="cifar10", train_size=5000, val_size=1000, test_size=2000,
        teacher="resnet20", student="resnet8",
        teacher_recipe=_cpu_recipe(15), student_recipe=_cpu_recipe(10),
        seeds=(0, 1, 2), device="cpu", budget="at most 10 minutes on a 2-core CPU"),
    "reduced": Scale(
        name="reduced", dataset="cifar10", train_size=None, val_size=5000, test_size=None,
        teacher="resnet32x4", student="resnet8x4",
        teacher_recipe=Recipe(epochs=30, batch_size=512, lr=0.2, schedule="onecycle", nesterov=True),
        student_recipe=Recipe(epochs=20, batch_size=512, lr=0.2, schedule="onecycle", nesterov=True),
        seeds=(0, 1, 2), device="gpu",
        # the target; the plans (python -m kdlab plan) estimate 2-8 minutes per notebook on an H100 today
        budget="3 minutes per notebook on one GPU as the target (python -m kdlab plan estimates each notebook)"),
    "full": Scale(
        name="full", dataset="cifar100", train_size=None, val_size=5000, test_size=None,
        teacher="resnet32x4", student="resnet8x4",
        # RepDistiller's CIFAR-100 recipe: SGD lr 0.05 at batch 64, decayed 10x at epochs 150, 180 and 210
        teacher_recipe=Recipe(epochs=240, batch_size=64, lr=0.05, milestones=(150, 180, 210)),
        student_recipe=Recipe(epochs=240, batch_size=64, lr=0.05, milestones=(150, 180, 210)),
        seeds=(0, 1, 2), device="gpu", budget="GPU-hours (240 epochs per model; python -m kdlab plan --scale full)"),
}


def default_scale_name() -> str:
    import torch
    return "reduced" if torch.cuda.is_available() else "laptop"


def resolve_name(name: str | None = None) -> str:
    """`name`, else `KDLAB_SCALE`, else the default for this machine; misspellings raise with a suggestion."""
    source = "argument"
    if isinstance(name, Scale):  # the Scale itself where its name goes
        name = name.name
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a scale is named by a string, one of {', '.join(SCALES)}, got {name!r}")
    if name is None:
        name, source = os.environ.get("KDLAB_SCALE"), "KDLAB_SCALE"
    if name is None or name == "":
        return default_scale_name()
    key = str(name).strip().lower()
    if key not in SCALES:
        close = difflib.get_close_matches(key, SCALES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown scale {name!r} (from {source}).{hint} Choose one of: {', '.join(SCALES)}.")
    return key


_chosen: list = []  # the scale get_scale() last returned: claims and headlines read it (kdlab.compare)


def current_name() -> str:
    """The name of the scale `get_scale` last returned in this process, else `resolve_name()`."""
    return _chosen[-1].name if _chosen else resolve_name()


def get_scale(name: str | None = None, *, announce: bool = True, **overrides) -> Scale:
    """The scale to run at, with optional field overrides; prints its banner unless `announce=False`.

    It becomes the scale that `kdlab.compare.claim` and `headline` check at unless they are told another."""
    scale = PRESETS[resolve_name(name)]
    if overrides:
        unknown = set(overrides) - set(scale.__dataclass_fields__)
        if unknown:
            fields = list(scale.__dataclass_fields__)
            close = [c[0] for u in sorted(unknown) if (c := difflib.get_close_matches(u, fields, n=1))]
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"unknown scale field(s) {sorted(unknown)}.{hint} Fields are {', '.join(fields)}")
        scale = replace(scale, **overrides)
    if announce:
        print(scale.banner())
    _chosen[:] = [scale]
    return scale


def table():
    """The scales as a pandas DataFrame (for the README and `python -m kdlab scales`)."""
    import pandas as pd
    rows = []
    for s in PRESETS.values():
        rows.append({"scale": s.name, "dataset": s.dataset,
                     "train": "all" if s.train_size is None else s.train_size, "val": s.val_size,
                     "test": "all" if s.test_size is None else s.test_size,
                     "teacher": f"{s.teacher} x{s.teacher_recipe.epochs} ep",
                     "student": f"{s.student} x{s.student_recipe.epochs} ep",
                     "seeds": len(s.seeds), "sized for": s.device, "budget per notebook": s.budget})
    return pd.DataFrame(rows).set_index("scale")
