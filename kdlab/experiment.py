"""Paired experiments: several arms (ways of training a student) over the same seeds, as a results table.

    arms = [Arm("hard labels", "resnet8", CrossEntropy()),
            Arm("soft targets", "resnet8", KD(temperature=4, w_ce=0, w_kd=1), teacher=teacher)]
    res = run_arms(arms, data, recipe, seeds=(0, 1, 2))
    res.runs                      # one row per (arm, seed): the last epoch's metrics
    res.histories                 # one row per (arm, seed, epoch): learning curves
    res.models["soft targets", 0] # the trained students, for further analysis

Pairing: for every arm, seed s fixes the student's initial weights (same architecture, same weights), the
data order and the augmentation, so arms differ only in what they are taught (kdlab.compare uses this).

One run, made once: each run is saved under `<KDLAB_HOME>/runs/` in a file named by a digest of everything that
determines it (`kdlab.train.run_fingerprint`: model, data, recipe, objective, teacher weights, seed, precision;
and the splits it is evaluated on), not by the notebook or the arm's name. Any notebook that asks for the same
run loads it; an interrupted run resumes; a changed setting is a different run. An objective kdlab cannot
describe completely (kdlab.describe) is trained but not saved, with a message, unless the arm names it
(`Arm(..., objective_id="...")`, your promise that the name changes whenever the objective does).
"""
import functools
import hashlib
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kdlab.losses import CrossEntropy
from kdlab.paths import home_dir
from kdlab.recipe import Recipe
from kdlab.describe import Undescribable
from kdlab.io import is_locked
from kdlab.train import build, fit, run_fingerprint


@dataclass
class Arm:
    name: str
    arch: str
    objective: object = field(default_factory=CrossEntropy)
    teacher: object = None
    recipe: Recipe | None = None  # default: the experiment's recipe
    data: object = None  # default: the experiment's data (e.g. a transfer set without one class instead)
    objective_id: str | None = None  # a name for an objective kdlab cannot describe (see kdlab.describe)


@dataclass
class Results:
    runs: pd.DataFrame
    histories: pd.DataFrame
    models: dict

    def table(self, metrics=("test_acc",)):
        from kdlab.compare import results_table
        return results_table(self.runs, metrics)

    @classmethod
    def combine(cls, *parts: "Results") -> "Results":
        """One Results from several `run_arms` calls (e.g. the headline's arms on more seeds than the others).
        An (arm, seed) run in two parts is refused: its numbers would be counted twice."""
        if not parts or not all(isinstance(p, Results) for p in parts):
            raise TypeError("combine takes one or more Results, the values run_arms returns")
        seen = set()
        for p in parts:
            twice = seen & set(p.models)
            if twice:
                raise ValueError(f"the run {sorted(twice)[0]} is in two of the Results combined: give each (arm, "
                                 f"seed) to one run_arms call")
            seen |= set(p.models)
        return cls(pd.concat([p.runs for p in parts], ignore_index=True),
                   pd.concat([p.histories for p in parts], ignore_index=True),
                   {k: m for p in parts for k, m in p.models.items()})


def check_seeds(seeds) -> tuple:
    """Seeds as a tuple of distinct Python ints (numpy integers welcome), or an error that says what to pass."""
    if isinstance(seeds, (numbers.Integral, str)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds is a list of seeds, e.g. (0, 1, 2) or range(3), got {seeds!r}")
    out = tuple(seeds)
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral)]
    if bad:
        raise TypeError(f"every seed must be an integer, got {bad[0]!r} in {out!r}")
    out = tuple(int(s) for s in out)
    if not out:
        raise ValueError("seeds is empty: pass at least one seed, e.g. (0, 1, 2); paired comparisons need two or more")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds {out} repeat a seed: each seed is one paired run, give each once")
    return out


def run_path(fingerprint: dict, eval_splits, home, eval_every: int = 1) -> Path:
    """Where the run with this fingerprint, evaluated on these splits, is saved (the same in every notebook)."""
    key = {"run": fingerprint, "eval_splits": sorted(eval_splits)}
    if eval_every != 1:  # the history differs (the weights do not)
        key["eval_every"] = eval_every
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(fingerprint["arch"]))
    return Path(home) / "runs" / f"{safe}-seed{fingerprint['seed']}-{digest}.pt"


def run_arms(arms, data, recipe: Recipe, seeds=(0, 1, 2), *, home=None, progress: bool | None = None,
             verbose: bool = False, eval_splits=("val", "test"), eval_every: int = 1, callback=None) -> Results:
    """Train every arm with every seed (arms inner, so early results cover all arms); return the results.

    A run that an earlier call (in this notebook or another) finished is loaded, not trained again.
    `callback(arm_name, seed, epoch, model)`, if given, is called after every epoch trained in this call (not for
    epochs loaded from a saved run), e.g. to follow one arm's temperatures during training."""
    seeds, recipe = check_seeds(seeds), Recipe.required(recipe)
    arms = [arms] if isinstance(arms, Arm) else list(arms)
    if not arms:
        raise ValueError("arms is empty: pass at least one Arm(name, arch, objective)")
    not_arms = [a for a in arms if not isinstance(a, Arm)]
    if not_arms:
        raise TypeError(f"arms must be kdlab.experiment.Arm objects, got {not_arms[0]!r}")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    home = home_dir() if home is None else Path(home)

    def locate(seed, arm):
        """The run's freshly built student and where it is saved (None: its objective cannot be described)."""
        d = arm.data or data
        model = build(arm.arch, d.num_classes, seed=seed, device=d.device)
        try:
            fp = run_fingerprint(model, d, arm.recipe or recipe, arm.objective, arm.teacher, seed, arm.objective_id)
        except Undescribable as e:
            print(f"{arm.name}: not saved, trained from scratch every time: kdlab cannot describe its objective "
                  f"completely ({e}). Give the arm objective_id='...' (a name you change whenever the "
                  f"objective changes) to save and reuse it.")
            return model, None
        return model, run_path(fp, [s for s in eval_splits if len(d.split(s)) > 0], home, eval_every)

    def train(seed, arm, model, path):
        d, r = arm.data or data, arm.recipe or recipe
        existed = path is not None and path.exists()
        epoch_cb = None if callback is None else functools.partial(callback, arm.name, seed)
        h = fit(model, d, r, objective=arm.objective, teacher=arm.teacher, seed=seed, checkpoint=path,
                progress=progress, verbose=verbose, desc=f"{arm.name} (seed {seed})", eval_splits=eval_splits,
                callback=epoch_cb, objective_id=arm.objective_id, eval_every=eval_every)
        trained, earlier = h.attrs["trained_epochs"], ""
        if existed:
            earlier = f" (resumed: {trained} of its epochs were left)" if trained else \
                " (loaded: an earlier call made this run)"
        elif path is not None and not trained:
            earlier = " (loaded: another process made this run meanwhile)"
        last = h.iloc[-1].to_dict()
        row = {"arm": arm.name, "seed": seed, **{k: v for k, v in last.items() if k != "epoch"},
               "train_seconds": float(h["seconds"].sum())}
        split = "test" if "test_acc" in last else "val" if "val_acc" in last else None
        acc = f"{split} acc {100 * last[f'{split}_acc']:.1f}%" if split else "not evaluated"
        print(f"{arm.name:<24} seed {seed}: {acc}  ({row['train_seconds']:.0f} s){earlier}")
        return row, h.assign(arm=arm.name, seed=seed), model

    # A run another process is training (a sweep's other jobs share the run cache) comes last: this process
    # trains the others meanwhile, then waits for it and loads it.
    done, later = {}, []
    for seed in seeds:
        for arm in arms:
            model, path = locate(seed, arm)
            if path is not None and is_locked(path):  # saved epochs or none yet: it is being trained
                later.append((seed, arm, model, path))
            else:
                done[arm.name, seed] = train(seed, arm, model, path)
    for seed, arm, model, path in later:
        done[arm.name, seed] = train(seed, arm, model, path)
    order = [(arm.name, seed) for seed in seeds for arm in arms]
    rows, curves, models = ([done[k][i] for k in order] for i in range(3))
    models = dict(zip(order, models))
    runs = pd.DataFrame(rows)
    histories = pd.concat(curves, ignore_index=True)
    return Results(runs, histories, models)
