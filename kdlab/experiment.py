"""Paired experiments: several arms (ways of training a student) over the same seeds, as a results table.

    arms = [Arm("hard labels", "resnet8", CrossEntropy()),
            Arm("soft targets", "resnet8", KD(temperature=4, w_ce=0, w_kd=1), teacher=teacher)]
    res = run_arms(arms, data, recipe, seeds=(0, 1, 2), tag="01-dark-knowledge")
    res.runs                      # one row per (arm, seed): the last epoch's metrics
    res.histories                 # one row per (arm, seed, epoch): learning curves
    res.models["soft targets", 0] # the trained students, for further analysis

Pairing: for every arm, seed s fixes the student's initial weights (same architecture, same weights), the
data order and the augmentation, so arms differ only in what they are taught (kdlab.compare uses this).

Each run checkpoints under `<KDLAB_HOME>/runs/<tag>/`, in a file named by a digest of everything that
determines it: re-running a notebook resumes an interrupted run and reuses finished ones, and a changed
setting gets a new file instead of an error.
"""
import hashlib
import json
from dataclasses import dataclass, field

from pathlib import Path

import pandas as pd

from kdlab.losses import CrossEntropy
from kdlab.paths import home_dir
from kdlab.recipe import Recipe
from kdlab.train import build, fit, run_fingerprint


@dataclass
class Arm:
    name: str
    arch: str
    objective: object = field(default_factory=CrossEntropy)
    teacher: object = None
    recipe: Recipe | None = None  # default: the experiment's recipe
    data: object = None  # default: the experiment's data (e.g. a transfer set without one class instead)


@dataclass
class Results:
    runs: pd.DataFrame
    histories: pd.DataFrame
    models: dict

    def table(self, metrics=("test_acc",)):
        from kdlab.compare import results_table
        return results_table(self.runs, metrics)


def _run_path(tag, arm, seed, fingerprint, home):
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in arm.name)
    return home / "runs" / tag / f"{safe}-seed{seed}-{digest}.pt"


def run_arms(arms, data, recipe: Recipe, seeds=(0, 1, 2), *, tag: str, home=None, progress: bool | None = None,
             verbose: bool = False, eval_splits=("val", "test")) -> Results:
    """Train every arm with every seed (arms inner, so early results cover all arms); return the results."""
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    home = home_dir() if home is None else Path(home)
    rows, curves, models = [], [], {}
    for seed in seeds:
        for arm in arms:
            d, r = arm.data or data, arm.recipe or recipe
            model = build(arm.arch, d.num_classes, seed=seed, device=d.device)
            fp = run_fingerprint(model, d, r, arm.objective, arm.teacher, seed)
            path = _run_path(tag, arm, seed, fp, home)
            earlier = " (continued from an earlier, saved run)" if path.exists() else ""
            h = fit(model, d, r, objective=arm.objective, teacher=arm.teacher, seed=seed, checkpoint=path,
                    progress=progress, verbose=verbose, desc=f"{arm.name} (seed {seed})", eval_splits=eval_splits)
            last = h.iloc[-1].to_dict()
            rows.append({"arm": arm.name, "seed": seed, **{k: v for k, v in last.items() if k != "epoch"},
                         "train_seconds": float(h["seconds"].sum())})
            curves.append(h.assign(arm=arm.name, seed=seed))
            models[arm.name, seed] = model
            split = "test" if "test_acc" in last else "val" if "val_acc" in last else None
            acc = f"{split} acc {100 * last[f'{split}_acc']:.1f}%" if split else "not evaluated"
            print(f"{arm.name:<24} seed {seed}: {acc}  ({rows[-1]['train_seconds']:.0f} s){earlier}")
    runs = pd.DataFrame(rows)
    histories = pd.concat(curves, ignore_index=True)
    return Results(runs, histories, models)
