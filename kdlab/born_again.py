"""Born-again networks (Furlanello, Lipton, Tschannen, Itti, Anandkumar, ICML 2018, arXiv 1805.04770).

Generation 1 is trained on the labels. Generation k+1 is a fresh model of the *same* architecture, distilled
from generation k; the generations' averaged predictions form an ensemble:

    gen1 = get_teacher(arch, data, recipe)                        # labels only
    gen2 = run_arms([Arm("generation 2", arch, KD(...), teacher=gen1)], ...)
    gen3 = next_generation(gen2, "generation 3", KD(...), data, recipe)   # each seed's gen2 teaches
    ensemble_logits([gen1_logits, gen2_logits, gen3_logits])

Choices: paired seeds carry through the chain (seed s of generation k+1 is taught by seed s of generation k);
the ensemble averages probabilities (log of the mean softmax), as the paper's BANE.
"""
import torch

from kdlab.experiment import Arm, Results, run_arms


def next_generation(previous: Results, name: str, objective, data, recipe, *, previous_arm: str | None = None,
                    arch: str | None = None, seeds=None, **run_kw) -> Results:
    """Train generation k+1 for every seed of `previous` (or the given `seeds`): seed s is taught by `previous`'s
    model of seed s. `previous_arm` picks the arm of `previous` that teaches (default: its only arm)."""
    arms = sorted({a for a, _ in previous.models})
    if previous_arm is None:
        if len(arms) != 1:
            raise ValueError(f"`previous` has several arms {arms}: say which one teaches with previous_arm=...")
        previous_arm = arms[0]
    if previous_arm not in arms:
        raise KeyError(f"arm {previous_arm!r} is not in `previous` (arms: {arms})")
    have = [s for a, s in previous.models if a == previous_arm]
    if seeds is None:
        seeds = have
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds to train: pass at least one seed (or seeds=None for all of `previous`'s)")
    if "seeds" in run_kw:
        raise TypeError("pass the seeds as next_generation(..., seeds=...), not through run_arms' keywords")
    missing = [s for s in seeds if s not in have]
    if missing:
        raise KeyError(f"`previous` has no {previous_arm!r} model for seeds {missing} (it has seeds {have})")
    parts = []
    for seed in seeds:
        teacher = previous.models[previous_arm, seed]
        if arch is None and not hasattr(teacher, "arch"):
            raise ValueError("the teaching model has no .arch (it was not built by kdlab): pass arch=... for the "
                             "new generation")
        arm = Arm(name, arch or teacher.arch, objective, teacher=teacher)
        parts.append(run_arms([arm], data, recipe, seeds=(seed,), **run_kw))
    return Results(runs=_concat([p.runs for p in parts]), histories=_concat([p.histories for p in parts]),
                   models={k: v for p in parts for k, v in p.models.items()})


def _concat(frames):
    import pandas as pd
    return pd.concat(frames, ignore_index=True)


@torch.no_grad()
def ensemble_logits(logits_list):
    """The log of the mean of the members' softmax outputs: use it wherever logits go (its softmax is the mean)."""
    if not logits_list:
        raise ValueError("ensemble_logits needs at least one member's logits")
    shapes = {tuple(z.shape) for z in logits_list}
    if len(shapes) != 1:
        raise ValueError(f"every member's logits must have the same shape (B, K), got {sorted(shapes)}")
    probs = torch.stack([torch.softmax(z.float(), dim=1) for z in logits_list]).mean(0)
    return probs.clamp_min(1e-30).log()
