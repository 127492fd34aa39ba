"""A training recipe: the optimiser and schedule settings that, with the data and the seed, make a model.

The recipe is part of every cached teacher's key, so it is a frozen dataclass of plain values.

Schedules (the learning rate is a pure function of the step, so a resumed run gets the same rates):
- ``multistep``: RepDistiller's, ``lr * gamma ** (milestones passed)``; milestones are epochs.
- ``cosine``: half a cosine from ``lr`` to 0 over the run.
- ``onecycle``: linear up to ``lr`` over the first ``peak`` fraction of the run, then linear down towards 0
  (the triangular schedule short runs such as airbench use).
- ``constant``.
``warmup_epochs`` ramps linearly from ``lr / warmup_steps`` for multistep, cosine and constant.
"""
import difflib
import math
import numbers
from dataclasses import asdict, dataclass, field

# Bump when the training loop changes what a recipe produces: cached teachers made before are then retrained.
RECIPE_VERSION = 1

SCHEDULES = ("multistep", "cosine", "onecycle", "constant")


def _plain(v, name):
    """A JSON-plain copy of an `extra` setting (numpy numbers and arrays become Python numbers and lists): it goes
    into cache keys."""
    if isinstance(v, (bool, str, type(None))):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x, name) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x, name) for k, x in v.items()}
    if hasattr(v, "tolist"):  # numpy arrays and scalars
        return _plain(v.tolist(), name)
    raise ValueError(f"Recipe: extra[{name!r}] = {v!r} is not a plain setting (numbers, strings, booleans, lists "
                     f"and dicts of them): it goes into cache keys")


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "multistep"
    milestones: tuple = (150, 180, 210)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    peak: float = 0.25
    augment: bool = True
    extra: dict = field(default_factory=dict)  # free-form settings a notebook wants in the key

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"Recipe: {msg}")
        for name in ("epochs", "batch_size"):  # numpy integers are fine; bools are not numbers here
            v = getattr(self, name)
            if isinstance(v, numbers.Integral) and not isinstance(v, bool):
                object.__setattr__(self, name, int(v))
        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad(f"epochs must be an int >= 1, got {self.epochs!r}; use e.g. epochs=10, or a scale's recipe "
                f"(get_scale().student_recipe)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            bad(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        for name in ("lr", "weight_decay", "momentum", "gamma", "warmup_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                bad(f"{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v) if not isinstance(v, int) else v)  # numpy -> plain (JSON keys)
        if self.lr == 0:
            bad("lr must be > 0 (a model trained at lr 0 never changes); RepDistiller uses 0.05 at batch size 64")
        if self.momentum >= 1:
            bad(f"momentum must be < 1, got {self.momentum}")
        if self.schedule not in SCHEDULES:
            close = difflib.get_close_matches(str(self.schedule), SCHEDULES, n=1)
            hint = f". Did you mean {close[0]!r}?" if close else ""
            bad(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}{hint}")
        if not 0 < self.peak < 1:
            bad(f"peak must be in (0, 1), got {self.peak}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if not isinstance(self.extra, dict):
            bad(f"extra must be a dict of plain settings, got {type(self.extra).__name__}")
        object.__setattr__(self, "extra", {str(k): _plain(v, k) for k, v in self.extra.items()})

    @staticmethod
    def required(recipe) -> "Recipe":
        """`recipe` itself if it is a Recipe, else a TypeError saying how to make one."""
        if not isinstance(recipe, Recipe):
            raise TypeError(f"recipe must be a kdlab.recipe.Recipe, got {type(recipe).__name__}; build one with "
                            f"Recipe(epochs=..., lr=...) or use a scale's (get_scale().student_recipe)")
        return recipe

    def to_dict(self):
        return asdict(self)

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate for optimiser step `step` (0-based) of a run with `steps_per_epoch` steps."""
        total = self.epochs * steps_per_epoch
        epoch = step // steps_per_epoch
        t = step / total
        if self.schedule == "onecycle":
            if t < self.peak:  # (step + 1): the very first step already moves the weights
                return self.lr * (step + 1) / (self.peak * total + 1)
            return self.lr * ((1 - t) / (1 - self.peak))
        warmup = round(self.warmup_epochs * steps_per_epoch)
        if step < warmup:
            return self.lr * (step + 1) / warmup
        if self.schedule == "multistep":
            return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        if self.schedule == "cosine":
            t = (step - warmup) / max(1, total - warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * t))
        return self.lr
