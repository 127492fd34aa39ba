"""kdlab: learn knowledge distillation by running it.

The library follows the data, and lower layers never import higher ones:

    data -> models -> losses -> train -> viz

    kdlab.scale     one switch (KDLAB_SCALE) for epochs, subset sizes and models
    kdlab.data      datasets held on the device as uint8, augmented there
    kdlab.models    the CIFAR model zoo of the KD literature (RepDistiller definitions)
    kdlab.losses    one loss per module (Hinton KD first)
    kdlab.metrics   accuracy, calibration (ECE), agreement and KL to a teacher
    kdlab.train     one training loop for plain training and distillation, with resumable checkpoints
    kdlab.cache     get-or-train teachers, keyed by everything that made them
    kdlab.viz       the figures the notebooks show
    kdlab.runcard   what produced a result: versions, device, seed, scale, time
    kdlab.experiment        paired arms over seeds, with resumable per-run checkpoints
    kdlab.compare           results tables, paired-seed intervals, checked claims
    kdlab.dark_knowledge    class similarity, the omitted-class experiment (notebook 01)
    kdlab.temperature       entropy, soft-term gradients, T sweeps (notebook 02)
    kdlab.born_again        born-again generations and their ensemble (notebook 03)
    kdlab.self_teaching     scores next to a self-teacher, best-epoch optimism, training cost (03, 04)
    kdlab.exercises         the notebooks' exercise checkers

Submodules load on first use, so `import kdlab` is cheap.
"""
import importlib
import time

__version__ = "0.1.0"
_STARTED = time.time()  # the run card's wall time counts from the first import

_SUBMODULES = ("scale", "data", "models", "losses", "metrics", "train", "cache", "viz", "runcard", "bench",
               "paths", "recipe", "io", "compare",
               "experiment", "dark_knowledge", "temperature", "born_again", "self_teaching", "exercises")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"kdlab.{name}")
    if name == "run_card":
        from kdlab.runcard import run_card
        return run_card
    if name == "get_scale":
        from kdlab.scale import get_scale
        return get_scale
    raise AttributeError(f"module 'kdlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + ["run_card", "get_scale"])
