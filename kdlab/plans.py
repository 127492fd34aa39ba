"""Each notebook's plan at each scale: what it trains, and how long that takes on this machine and on a GPU.

    python -m kdlab plan                      every notebook at this machine's default scale
    python -m kdlab plan 05 --scale reduced   one notebook

A plan lists every training a notebook's default parameters make: teachers (`kdlab.cache.get_teacher`) and
student runs (`kdlab.experiment.run_arms`), each with its model, epochs, training images, the teacher whose
forward runs in every step, and what it evaluates. A training that several notebooks make with the same
settings (notebook 01's teacher, notebook 03's self-teacher and baseline runs) is counted once, by the first
notebook in course order; later notebooks load it from the cache. `kdlab.costs` turns the list into seconds.

The lists restate the plans in the notebooks' setup cells (`PLANS`); tests/test_plans.py checks them against
the runs the committed notebooks printed, run for run.
"""
import difflib
from dataclasses import dataclass, replace

from kdlab.scale import PRESETS

NOTEBOOKS = ("01_dark_knowledge", "02_temperature", "03_self_teaching", "04_drkd_rectification",
             "05_knowledge_adjustment", "06_dynamic_temperature", "07_student_friendly_teachers")
BUDGET_SECONDS = {"smoke": 120, "laptop": 600, "reduced": 180}  # full has no budget: it is the paper's setting
SETUP_SECONDS = 15  # kernel start, imports, data, figures: 02 and 07 re-run from their caches took 16.3 and 14.8 s


@dataclass(frozen=True)
class Training:
    """One model trained: a teacher or a student run."""
    what: str  # e.g. "teacher resnet20" or "KD seed 3"
    arch: str
    epochs: int
    train_images: int
    batch_size: int
    eval_images: int  # images of the splits evaluated after an epoch
    evaluations: int  # epochs after which they are evaluated
    teacher: str | None = None  # the model whose forward runs in every step (distillation)
    branches: str | None = None  # a student-friendly teacher's student branches, trained alongside
    pixels: float = 1.0  # image area relative to 32x32
    augment: bool = True  # random crop and flip of every training batch
    shared: str | None = None  # the same training in several notebooks: counted once, by the first
    kind: str = "student"
    cache: tuple | None = None  # a teacher's get_teacher arguments: (dataset, get_data keywords, recipe, seed,
    #                             scale name, sftn settings), to look for it in the teacher cache


def resolve(notebook: str) -> str:
    """A notebook's full name from '05', '5', '05_knowledge_adjustment' or 'knowledge_adjustment'."""
    key = str(notebook).strip().removesuffix(".ipynb")
    for nb in NOTEBOOKS:
        if key in (nb, nb[:2], nb[3:]) or (key.isdigit() and int(key) == int(nb[:2])):
            return nb
    close = difflib.get_close_matches(key, [nb[3:] for nb in NOTEBOOKS], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown notebook {notebook!r}.{hint} Name one by its number (01-07) or name: "
                     f"{', '.join(NOTEBOOKS)}")


def _sizes(s, train_size=None):
    """(train, val, test) images of a CIFAR scale (50,000 training images, 10,000 test) or a subset of it."""
    train = train_size or s.train_size or 50_000 - s.val_size
    return train, s.val_size, s.test_size or 10_000


def _evaluations(epochs, every=1):
    return sum(1 for e in range(1, epochs + 1) if e % every == 0 or e == epochs)


def _teacher(s, arch, recipe, train, val, test, seed=0, shared=True, branches=None, what=None, pixels=1.0,
             data=None, sftn=None):
    key = f"{s.name} {arch} {recipe} {train} seed{seed} {branches}" if shared else None
    data = data or (s.dataset, dict(train_size=train if s.train_size or train != _sizes(s)[0] else None,
                                    val_size=s.val_size, test_size=s.test_size))
    return Training(what or f"teacher {arch}", arch, recipe.epochs, train, recipe.batch_size, val + test,
                    _evaluations(recipe.epochs), branches=branches, pixels=pixels, augment=recipe.augment, shared=key,
                    kind="sftn-teacher" if branches else "teacher", cache=(*data, recipe, seed, s.name, sftn))


def _runs(s, arms, seeds, recipe, train, eval_images, every=1, pixels=1.0):
    """One Training per (seed, arm); arms are (name, arch, teacher arch or None, sharing label or None)."""
    out = []
    for seed in seeds:
        for name, arch, teacher, label in arms:
            shared = None if label is None else f"{s.name} {arch} {label} {recipe} {train} {eval_images} {every} seed{seed}"
            out.append(Training(f"{name} seed {seed}", arch, recipe.epochs, train, recipe.batch_size, eval_images,
                                _evaluations(recipe.epochs, every), teacher=teacher, pixels=pixels, augment=recipe.augment,
                                shared=shared))
    return out


def _first_teacher(s):
    train, val, test = _sizes(s)
    return _teacher(s, s.teacher, s.teacher_recipe, train, val, test)


def dark_knowledge(scale):
    s = PRESETS[scale]
    train, val, test = _sizes(s)
    recipe = replace(s.student_recipe, epochs={"laptop": 6, "reduced": 10}.get(scale, s.student_recipe.epochs))
    seeds = (0, 1, 2, 3, 4) if scale == "laptop" else s.seeds
    t, st = s.teacher, s.student
    arms = [("hard labels", st, None, None), ("soft targets only", st, t, None), ("soft + hard (KD)", st, t, None)]
    omit = [("hard labels, no k", st, None, None), ("distilled, no k", st, t, None)]
    k = 100 if s.dataset == "cifar100" else 10
    return [_first_teacher(s), *_runs(s, arms, seeds, recipe, train, val + test),
            *_runs(s, omit, seeds[:2], recipe, train * (k - 1) // k, val + test)]


def temperature(scale):
    s = PRESETS[scale]
    train, val, test = _sizes(s)
    p = {"smoke": dict(temps=(2, 8), students=("resnet8", "resnet14"), seeds=(0, 1), headline=(0, 1),
                       large=(2, 8), epochs=1, alphas=(0.0, 0.5, 0.9)),
         "laptop": dict(temps=(1, 2, 4, 8), students=("resnet8", "resnet20"), seeds=(0, 1), headline=(0, 1, 2, 3, 4),
                        large=(2, 8), epochs=4, alphas=()),
         "reduced": dict(temps=(1, 2, 4, 8), students=("resnet8", s.student), seeds=s.seeds, headline=(0, 1, 2, 3, 4),
                         large=(1, 2, 4, 8), epochs=10, alphas=(0.0, 0.5, 0.9)),
         "full": dict(temps=(1, 2, 4, 8), students=("resnet8", s.student), seeds=s.seeds, headline=(0, 1, 2, 3, 4),
                      large=(1, 2, 4, 8), epochs=s.student_recipe.epochs, alphas=(0.0, 0.5, 0.9))}[scale]
    recipe = replace(s.student_recipe, epochs=p["epochs"])
    small, large = p["students"]
    sweep = [("labels only", small, None, None)] + [(f"{small} T={t:g}", small, s.teacher, None) for t in p["temps"]]
    sweep += [(f"{large} T={t:g}", large, s.teacher, None) for t in p["large"]]
    more = tuple(x for x in p["headline"] if x not in p["seeds"])
    head = [(f"{small} T={t:g}", small, s.teacher, None) for t in (2, 8)]
    grid = [(f"{small} T={t:g} a={a:g}", small, s.teacher, None) for a in p["alphas"] if a not in (0.0, 0.9)
            for t in p["temps"]]
    return [_first_teacher(s), *_runs(s, sweep, p["seeds"], recipe, train, val),
            *_runs(s, head, more, recipe, train, val), *_runs(s, grid, (0,), recipe, train, val)]


def _self_regime(scale):
    """Notebooks 03 and 04's shared regime: the student, its recipe, training images and seeds."""
    from kdlab.recipe import Recipe
    s = PRESETS[scale]
    student = {"smoke": "resnet8", "laptop": "resnet8", "reduced": s.student, "full": "ShuffleV2"}[scale]
    train = {"smoke": None, "laptop": 1500, "reduced": 5000, "full": None}[scale]
    epochs = {"smoke": 6, "full": 200}.get(scale, 30)
    if scale == "full":
        recipe = Recipe(epochs=epochs, batch_size=128, lr=0.1, milestones=(60, 120, 160), gamma=0.2, augment=True)
    else:
        recipe = replace(s.student_recipe, epochs=epochs, augment=False)
    return s, student, recipe, _sizes(s, train)


def self_teaching(scale):
    s, st, recipe, (train, val, test) = _self_regime(scale)
    every = 1 if scale == "smoke" else 5
    seeds = {"smoke": (0, 1), "full": (0, 1, 2)}.get(scale, tuple(range(8)))
    side = {"smoke": (0, 1)}.get(scale, (0, 1, 2))
    weak = {"laptop": (0, 1), "smoke": (0, 1)}.get(scale, (0, 1, 2))
    gen3 = {"laptop": (0, 1), "smoke": (0, 1)}.get(scale, (0, 1, 2))
    head = [("baseline", st, None, "baseline"), ("Tf-KD self", st, st, "Tf-KD self")]
    return [_teacher(s, st, recipe, train, val, test, seed=100, what=f"self-teacher {st}"),
            _teacher(s, st, replace(recipe, epochs=1), train, val, test, seed=100, shared=False,
                     what=f"weak teacher {st}"),
            *_runs(s, head, seeds, recipe, train, test, every),
            *_runs(s, [("label smoothing", st, None, None), ("Tf-KD reg", st, None, None)], side, recipe, train, test,
                   every),
            *_runs(s, [("Tf-KD self, weak teacher", st, st, None)], weak, recipe, train, test, every),
            *_runs(s, [("born-again gen 3", st, st, None)], gen3, recipe, train, test, every)]


def drkd_rectification(scale):
    s, st, recipe, (train, val, test) = _self_regime(scale)
    every = 1 if scale == "smoke" else 5
    seeds = {"smoke": (0, 1), "full": (0, 1, 2)}.get(scale, (0, 1, 2, 3, 4))
    early_seeds = {"smoke": (0, 1), "full": (0, 1, 2)}.get(scale, tuple(range(8)))
    early_epochs = {"smoke": 1, "full": 60}.get(scale, 15)
    arms = [("baseline", st, None, "baseline"), ("Tf-KD self", st, st, "Tf-KD self"), ("DR-KD", st, st, None)]
    early = [("Tf-KD self, early teacher", st, st, None), ("DR-KD, early teacher", st, st, None)]
    out = [_teacher(s, st, recipe, train, val, test, seed=100, what=f"self-teacher {st}"),
           _teacher(s, st, replace(recipe, epochs=early_epochs), train, val, test, seed=100, shared=False,
                    what=f"early self-teacher {st}"),
           *_runs(s, arms, seeds, recipe, train, test, every), *_runs(s, early, early_seeds, recipe, train, test, every)]
    tiny = {"smoke": dict(size=32, train=1000, test=400, seeds=(0, 1), epochs=1),
            "reduced": dict(size=32, train=20_000, test=2000, seeds=(0, 1, 2), epochs=15),
            "full": dict(size=64, train=98_000, test=10_000, seeds=(0, 1, 2), epochs=200)}.get(scale)
    if tiny:
        r = replace(recipe, epochs=tiny["epochs"], augment=True)
        px = (tiny["size"] / 32) ** 2
        tiny_arms = [("Tiny ImageNet baseline", st, None, None), ("Tiny ImageNet Tf-KD self", st, st, None),
                     ("Tiny ImageNet DR-KD", st, st, None)]
        tiny_data = ("tiny-imagenet-200", dict(train_size=None if scale == "full" else tiny["train"], val_size=2000,
                                               test_size=None if scale == "full" else tiny["test"],
                                               image_size=tiny["size"]))
        out += [_teacher(s, st, r, tiny["train"], 2000, tiny["test"], seed=100, shared=False, pixels=px,
                         what=f"Tiny ImageNet self-teacher {st}", data=tiny_data),
                *_runs(s, tiny_arms, tiny["seeds"], r, tiny["train"], tiny["test"], pixels=px)]
    return out


def knowledge_adjustment(scale):
    s = PRESETS[scale]
    train, val, test = _sizes(s)
    teacher_epochs = 5 if scale == "reduced" else s.teacher_recipe.epochs
    epochs = {"smoke": 1, "reduced": 10}.get(scale, s.student_recipe.epochs)
    seeds = {"smoke": (0, 1), "laptop": (0, 1, 2, 3), "reduced": (0, 1, 2, 3, 4)}.get(scale, (0, 1, 2))
    other = {"smoke": (0, 1)}.get(scale, (0, 1, 2))
    unsoftened = {"smoke": (0,)}.get(scale, (0, 1))
    recipe = replace(s.student_recipe, epochs=epochs)
    t, st = s.teacher, s.student
    return [_teacher(s, t, replace(s.teacher_recipe, epochs=teacher_epochs), train, val, test),
            *_runs(s, [("KD", st, t, f"KD T=4 0.1/0.9 from {t} x{teacher_epochs}"), ("KA-LSR softened", st, t, None)], seeds, recipe, train, test),
            *_runs(s, [("baseline", st, None, "baseline"), ("KA-PS", st, t, None)], other, recipe, train, test),
            *_runs(s, [("KA-LSR unsoftened", st, t, None)], unsoftened, recipe, train, test)]


def dynamic_temperature(scale):
    s = PRESETS[scale]
    train, val, test = _sizes(s)
    epochs = {"smoke": 2, "reduced": 10}.get(scale, s.student_recipe.epochs)
    seeds = (0, 1) if scale == "smoke" else (0, 1, 2)
    sweep = 2 if scale in ("smoke", "laptop") else 3
    recipe = replace(s.student_recipe, epochs=epochs)
    t, st = s.teacher, s.student
    arms = [(name, st, t, None) for name in ("fixed T", "DTD-FLSW", "DTD-CWSM", "KA + DTD")]
    return [_first_teacher(s), *_runs(s, arms, seeds, recipe, train, test),
            *_runs(s, [(f"FLSW sweep point {i + 1}", st, t, None) for i in range(sweep)], (0,), recipe, train, test)]


def student_friendly_teachers(scale):
    s = PRESETS[scale]
    train, val, test = _sizes(s)
    epochs = {"smoke": 1, "reduced": 8}.get(scale, s.student_recipe.epochs)
    seeds = {"smoke": (0, 1), "full": s.seeds}.get(scale, (0, 1, 2, 3, 4))
    base = {"smoke": (0, 1)}.get(scale, (0, 1, 2))
    recipe = replace(s.student_recipe, epochs=epochs)
    t, st = s.teacher, s.student
    head = [("KD <- standard", st, t, f"KD T=4 0.1/0.9 from {t} x{s.teacher_recipe.epochs}"), ("KD <- student-friendly", st, t, None)]
    sftn = {"student": st, "tau": 1.0, "lambda_t": 1.0, "lambda_kl": 3.0 if scale == "full" else 0.3, "lambda_ce": 1.0}
    return [_first_teacher(s), _teacher(s, t, s.teacher_recipe, train, val, test, branches=st,
                                        what=f"student-friendly teacher {t}", sftn=sftn),
            *_runs(s, head, seeds, recipe, train, test), *_runs(s, [("baseline", st, None, "baseline")], base, recipe,
                                                                train, test)]


_PLANS = dict(zip(NOTEBOOKS, (dark_knowledge, temperature, self_teaching, drkd_rectification, knowledge_adjustment,
                              dynamic_temperature, student_friendly_teachers)))


def trainings(notebook: str, scale: str) -> list:
    """Every training `notebook` makes at `scale` with its default parameters, in the order it makes them."""
    from kdlab.scale import resolve_name
    return _PLANS[resolve(notebook)](resolve_name(scale))


def earlier_keys(notebook: str, scale: str) -> set:
    """The shared trainings that a notebook before this one (in course order) already makes."""
    nb = resolve(notebook)
    return {t.shared for other in NOTEBOOKS[:NOTEBOOKS.index(nb)] for t in trainings(other, scale) if t.shared}


def seconds(t: Training, device: str, rows, precision: str | None = None) -> float:
    """Expected seconds of one training on `device` (a cost table's device name) training in `precision` (None:
    whichever the device's first row has)."""
    from kdlab.costs import lookup
    c = lambda arch: lookup(rows, device, arch, t.batch_size, t.pixels, precision)
    per_train_image = 1 / c(t.arch).train_ips + (1 / c(t.arch).augment_ips if t.augment else 0.0)
    if t.teacher:
        per_train_image += 1 / c(t.teacher).infer_ips
    if t.branches:
        per_train_image += 1 / c(t.branches).train_ips
    images = t.epochs * t.train_images * per_train_image + t.evaluations * t.eval_images / c(t.arch).infer_ips
    if t.teacher:  # the teacher's predictions on the evaluated splits, once per run
        images += t.eval_images / c(t.teacher).infer_ips
    return images


def cached_teacher(t: Training, home=None, loaded_data=None) -> str:
    """'yes' or 'no': whether the teacher cache under `home` holds this teacher, found by its exact key
    (kdlab.cache.teacher_key, which needs the dataset on disk to fingerprint its splits); else why it cannot tell."""
    from kdlab import cache, data
    if t.cache is None:
        return "-"
    dataset, kw, recipe, seed, scale, sftn = t.cache
    loaded_data = {} if loaded_data is None else loaded_data  # a plan's teachers share a few datasets
    loaded = loaded_data.get((dataset, str(kw)))
    if loaded is None:
        try:
            loaded = data.get_data(dataset, device="cpu", download=False, **kw)
        except data.DataError:
            return f"unknown: {dataset} is not on disk"
        loaded_data[dataset, str(kw)] = loaded
    key = cache.teacher_key(t.arch, loaded, recipe, seed, scale, sftn)
    return "yes" if cache.teacher_path(key, home).exists() else "no"


def plan(notebook: str, scale: str, devices=None, home=None, look_in_cache: bool = False):
    """The notebook's trainings at `scale` as a DataFrame: one row per training, its epochs and images, whether an
    earlier notebook makes it (then it is loaded, not trained) and its expected seconds on each device.
    `look_in_cache` adds whether each teacher is in the teacher cache already (a cached teacher costs nothing;
    student runs are keyed by their teacher's weights, so only a run's own notebook can tell)."""
    import pandas as pd

    from kdlab import costs
    rows = costs.table(home)
    devices = list(devices or default_devices())
    precisions = {d: trains_in(d) for d in devices}
    earlier = earlier_keys(notebook, scale)
    out, loaded_data = [], {}
    for t in trainings(notebook, scale):
        made = t.shared in earlier if t.shared else False
        cached = cached_teacher(t, home, loaded_data) if look_in_cache else None
        free = made or cached == "yes"
        out.append({"training": t.what, "kind": t.kind, "model": t.arch + (f" <- {t.teacher}" if t.teacher else ""),
                    "epochs": t.epochs, "train images": t.train_images,
                    "from": "an earlier notebook's cache" if made else "trained here",
                    **({"in the cache": cached} if look_in_cache else {}),
                    **{d: 0.0 if free else seconds(t, d, rows, precisions[d]) for d in devices}})
    return pd.DataFrame(out)


def _this_machine() -> tuple:
    """(the torch device this machine trains on, its name in the cost table: its thread count included)."""
    from kdlab.costs import device_name
    from kdlab.train import resolve_device
    here = resolve_device()
    return here, device_name(here)


def default_devices() -> list:
    """This machine and the reference GPU."""
    from kdlab.costs import REFERENCE_GPU
    here = _this_machine()[1]
    return [here] + ([REFERENCE_GPU] if here != REFERENCE_GPU else [])


def trains_in(device: str) -> str | None:
    """The precision that `device` (a cost table's name) trains in, if it is this machine (kdlab.train.precision,
    which KDLAB_PRECISION sets); None (any row) for another device. Two CPUs can share a name and not a
    precision: only the rows of the precision this machine trains in describe it."""
    from kdlab.train import precision
    here, name = _this_machine()
    return precision(here) if device == name else None


def total(notebook: str, scale: str, device: str, home=None) -> float:
    """The notebook's expected wall time in seconds on `device`: its own trainings and its setup."""
    return float(plan(notebook, scale, [device], home)[device].sum()) + SETUP_SECONDS


def summary(scale: str, devices=None, home=None):
    """One row per notebook: trainings made, trainings loaded from an earlier notebook, expected time per device."""
    import pandas as pd

    devices = list(devices or default_devices())
    out = []
    for nb in NOTEBOOKS:
        p = plan(nb, scale, devices, home)
        here = p["from"] == "trained here"
        row = {"notebook": nb, "trainings": int(here.sum()), "loaded": int((~here).sum()),
               "epochs x images (M)": round(float((p["epochs"] * p["train images"])[here].sum()) / 1e6, 2)}
        for d in devices:
            row[d] = float(p[d].sum()) + SETUP_SECONDS
        out.append(row)
    frame = pd.DataFrame(out).set_index("notebook")
    frame.loc["all seven"] = frame.sum(numeric_only=True)
    return frame


def format_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def report(notebook: str | None = None, scale: str | None = None, home=None) -> str:
    """What `python -m kdlab plan` prints."""
    from kdlab import costs
    from kdlab.scale import resolve_name
    scale = resolve_name(scale)
    rows = costs.table(home)
    devices = default_devices()
    budget = BUDGET_SECONDS.get(scale)
    lines = [f"kdlab plan at scale {scale}" + (f" (budget per notebook: {format_seconds(budget)} on the device the "
                                               f"scale is sized for, {PRESETS[scale].device})" if budget else
                                               " (the paper's setting: no budget)")]
    if notebook is None:
        frame = summary(scale, devices, home)
        for d in devices:
            frame[d] = frame[d].map(format_seconds)
        lines.append(frame.to_string())
    else:
        nb = resolve(notebook)
        p = plan(nb, scale, devices, home, look_in_cache=True)
        shown = p.copy()
        for d in devices:
            shown[d] = shown[d].map(format_seconds)
        lines.append(f"{nb}: {int((p['from'] == 'trained here').sum())} trainings here, "
                     f"{int((p['from'] != 'trained here').sum())} loaded from an earlier notebook")
        lines.append(shown.to_string(index=False))
        lines.append("teachers marked 'yes' are in the teacher cache and cost nothing; expected wall time "
                     "(trainings + about 15 s of setup and figures): " + "; ".join(
            f"{d}: {format_seconds(float(p[d].sum()) + SETUP_SECONDS)}" for d in devices))
    sources = {lookup_source(rows, d) for d in devices}
    lines.append("cost rows: " + "; ".join(sorted(sources)))
    return "\n".join(lines)


def lookup_source(rows, device: str) -> str:
    from kdlab.costs import lookup
    r = lookup(rows, device, "resnet8", 128, precision=trains_in(device))
    return f"{device}: {r.source}"
