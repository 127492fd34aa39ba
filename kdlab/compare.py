"""Comparing arms over paired seeds: the results table and the interval every claim is checked against.

Runs are paired: arm A and arm B with the same seed share the data order, the augmentation and (for the
same architecture) the initial weights, so the per-seed difference removes most of the seed-to-seed noise.

    runs = pd.DataFrame([{"arm": "hard labels", "seed": 0, "test_acc": 0.71}, ...])
    results_table(runs, "test_acc")                          # mean, std, n per arm
    paired_difference(runs, "soft targets", "hard labels")   # mean difference and its 95% t-interval

Every verdict knows which way is better for its metric (`kdlab.metrics.direction`: accuracy up; loss, ECE, KL and
the teacher's mistakes repeated down), so "better" and "worse" mean the same thing for every metric.
"""
import math
import numbers
from dataclasses import dataclass

import pandas as pd

from kdlab import metrics


def results_table(runs: pd.DataFrame, metrics=("test_acc",), by: str = "arm") -> pd.DataFrame:
    """Mean, standard deviation and number of seeds of each metric, one row per arm (in first-seen order)."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in metrics + [by] if m not in runs.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the runs table (it has {list(runs.columns)})")
    order = list(dict.fromkeys(runs[by]))
    table = runs.groupby(by, sort=False)[metrics].agg(["mean", "std", "count"]).loc[order]
    return table


@dataclass
class Difference:
    arm: str
    baseline: str
    metric: str
    mean: float
    low: float
    high: float
    n: int
    better_when: str | None = "higher"  # "higher", "lower" or None (no better side): from the metric
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """The interval excludes zero (with n >= 2 pairs)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    @property
    def better(self) -> bool:
        """`arm` is better than `baseline`: the interval lies wholly on the metric's better side of 0."""
        return self.significant and self.better_when is not None and \
            ((self.low > 0) if self.better_when == "higher" else (self.high < 0))

    @property
    def verdict(self) -> str:
        """'better' / 'worse' (or 'higher' / 'lower' for a metric with no better side) when the interval excludes
        0, 'not distinguishable' when it contains 0, 'one seed' without an interval."""
        if self.n < 2:
            return "one seed"
        if not self.significant:
            return "not distinguishable"
        if self.better_when is None:
            return "higher" if self.mean > 0 else "lower"
        return "better" if self.better else "worse"

    def __str__(self):
        way = f"; {self.better_when} is better" if self.better_when else ""
        return (f"{self.arm} - {self.baseline} ({self.metric}{way}): {self.mean:+.4f}, {100 * self.confidence:g}% "
                f"interval [{self.low:+.4f}, {self.high:+.4f}] over {self.n} paired seeds: {self.verdict}")

    def interval_text(self, scale: float = 100, unit: str = "points") -> str:
        """'+4.7 points, 95% interval [+2.6, +6.9] over 5 paired seeds'."""
        return (f"{scale * self.mean:+.1f} {unit}, {100 * self.confidence:g}% interval [{scale * self.low:+.1f}, "
                f"{scale * self.high:+.1f}] over {self.n} paired seeds")


def _better_when(metric: str, higher_is_better: bool | None) -> str | None:
    if higher_is_better is None:
        return metrics.direction(metric)
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be True, False or None (read from the metric), got {higher_is_better!r}")
    return "higher" if higher_is_better else "lower"


def paired_difference(runs: pd.DataFrame, arm: str, baseline: str, metric: str = "test_acc",
                      by: str = "arm", seed: str = "seed", confidence: float = 0.95,
                      higher_is_better: bool | None = None) -> Difference:
    """Mean per-seed difference `arm - baseline` and its t-interval (infinite with a single pair).

    Which way is better comes from the metric's name (`kdlab.metrics.direction`); `higher_is_better` states it
    for a metric kdlab does not know."""
    from scipy import stats
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence is a fraction in (0, 1), e.g. 0.95 for a 95% interval; got {confidence!r}")
    better_when = _better_when(metric, higher_is_better)
    wide = runs.pivot_table(index=seed, columns=by, values=metric, aggfunc="first")
    for a in (arm, baseline):
        if a not in wide.columns:
            raise KeyError(f"arm {a!r} not in the runs (arms: {list(wide.columns)})")
    d = (wide[arm] - wide[baseline]).dropna()
    n = len(d)
    if n == 0:
        raise ValueError(f"no seed has both {arm!r} and {baseline!r}: paired comparisons need shared seeds")
    mean = float(d.mean())
    if n == 1:
        return Difference(arm, baseline, metric, mean, -math.inf, math.inf, 1, better_when, confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return Difference(arm, baseline, metric, mean, mean - half, mean + half, n, better_when, confidence)


def difference_table(runs: pd.DataFrame, pairs, metric: str = "acc", by: str = "arm",
                     higher_is_better: bool | None = None) -> pd.DataFrame:
    """`paired_difference` for each (arm, baseline) pair, one row each, with the metric's better side and a
    verdict in words (`Difference.verdict`): "better" or "worse" when the 95% interval excludes 0, "not
    distinguishable" when it contains 0, "one seed" without an interval."""
    rows = []
    for arm, base in pairs:
        d = paired_difference(runs, arm, base, metric=metric, by=by, higher_is_better=higher_is_better)
        rows.append({"arm": arm, "against": base, "mean diff": d.mean, "low": d.low, "high": d.high, "seeds": d.n,
                     "better when": d.better_when or "neither", "verdict": d.verdict})
    return pd.DataFrame(rows)


def verdict_text(table: pd.DataFrame, arm: str, against: str, scale: float = 100, unit: str = "points") -> str:
    """One row of `difference_table` as a sentence fragment: 'better (+4.7 points, 95% interval [+2.6, +6.9])'."""
    r = table[(table["arm"] == arm) & (table["against"] == against)]
    if r.empty:
        raise KeyError(f"no row {arm!r} against {against!r} in the table")
    r = r.iloc[0]
    return (f"{r['verdict']} ({scale * r['mean diff']:+.1f} {unit}, 95% interval "
            f"[{scale * r['low']:+.1f}, {scale * r['high']:+.1f}])")


ASSERTED = ("smoke", "laptop", "reduced")  # claims are asserted at these scales by default; never at full


def _scale_name(scale) -> str:
    from kdlab.scale import current_name, resolve_name
    return current_name() if scale is None else resolve_name(getattr(scale, "name", scale))


def _scales_text(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def claim(statement: str, holds: bool, *, at=ASSERTED, scale=None) -> None:
    """Check a notebook's claim and print one line saying whether it holds and at which scales it is asserted.

    At a scale in `at` a claim that does not hold raises (the committed run and CI see it); elsewhere it is
    reported, never raised, and `full` is never in `at`: a run of hours ends with its results printed, not an
    AssertionError. `scale` (a Scale or its name) defaults to the one `kdlab.get_scale()` last returned. The printed
    line does not depend on the scale it runs at when the claim is asserted there,
    so nbval can compare it between the committed run and a smoke run."""
    from kdlab.scale import SCALES
    name = _scale_name(scale)
    at = (at,) if isinstance(at, str) else tuple(at)
    unknown = [a for a in at if a not in SCALES]
    if unknown or not at or "full" in at:
        raise ValueError(f"at= names the scales a claim is asserted at, some of {', '.join(SCALES[:3])} (never full, "
                         f"where claims are reported), got {at!r}")
    holds = bool(holds)
    where = f"asserted at {_scales_text(at)}"
    if name in at:
        if not holds:
            raise AssertionError(f"claim does not hold in this run ({where}): {statement}")
        print(f"claim: {statement} ({where}): holds")
    else:
        print(f"claim: {statement} ({where}; reported at {name}): {'holds' if holds else 'does not hold'}")


def headline(sentence: str, evidence: Difference, *, scale=None, tested_at=("laptop", "reduced", "full"),
             scale_factor: float = 100, unit: str = "points") -> None:
    """The notebook's headline: its paper's central claim as one sentence, decided by a paired comparison.

    Prints `headline: <sentence>: holds (<interval>)` when the interval lies wholly on the metric's better side
    of 0, `... : does not hold (<interval>)` otherwise; never raises. At a scale outside `tested_at` (smoke) it
    says the headline is not tested there."""
    if not isinstance(evidence, Difference):
        raise TypeError(f"a headline is decided by a paired comparison: pass kdlab.compare.paired_difference(...), "
                        f"got {type(evidence).__name__}")
    name = _scale_name(scale)
    if name not in tested_at:
        print(f"headline (not tested at {name} scale, too small to show it): {sentence}")
        return
    holds = evidence.better
    print(f"headline: {sentence}: {'holds' if holds else 'does not hold'} "
          f"({evidence.arm} - {evidence.baseline}, {evidence.metric}: {evidence.interval_text(scale_factor, unit)})")


def chance_accuracy(n: int, num_classes: int, confidence: float = 0.99) -> float:
    """The lowest accuracy that a model ignoring its input reaches at most once in 1 / (1 - confidence) tries on
    `n` test images of `num_classes` classes: the smallest k/n with P(Binomial(n, 1/K) >= k) <= 1 - confidence
    (the exact tail). 1.0 when even a perfect score is not that rare (a handful of images).

    A guesser is right on each image with probability 1/K, whatever classes it favours, when the test set holds
    every class equally often (kdlab's test subsets are stratified). Accuracy above this bound is evidence that
    training taught the model something; a model trained at lr = 0 or on shuffled labels stays below it."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n is the number of test images, a positive integer, got {n!r}")
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), e.g. 0.99, got {confidence!r}")
    from scipy.stats import binom
    # isf: the largest k with P(X > k) <= 1 - confidence, so k + 1 is the smallest rare score
    k = int(binom.isf(1.0 - confidence, n, 1.0 / num_classes)) + 1
    return min(1.0, k / n)


def claim_learned(what: str, accuracy, n: int, num_classes: int, *, confidence: float = 0.99, at=ASSERTED,
                  scale=None) -> None:
    """Claim that training taught `what` something: every accuracy in `accuracy` (one number or one per run)
    reaches `chance_accuracy(n, num_classes, confidence)`. This is the check that a broken run fails (lr = 0,
    shuffled labels, a model never updated) at every scale, smoke included, where most other claims are
    too small to be decided."""
    values = [float(a) for a in (accuracy if hasattr(accuracy, "__len__") else [accuracy])]
    if not values or any(not 0 <= a <= 1 for a in values):
        raise ValueError(f"accuracy must be fractions in [0, 1], got {values!r}")
    bound = chance_accuracy(n, num_classes, confidence)
    lowest = min(values)
    measured = f"{100 * lowest:.1f}% test accuracy" if len(values) == 1 else \
        f"lowest test accuracy of {len(values)} runs {100 * lowest:.1f}%"
    claim(f"{what} learned: {measured}, at least the {100 * bound:.1f}% that guessing among {num_classes} classes "
          f"reaches once in {round(1 / (1 - confidence))} tries on {n:,} test images", lowest >= bound, at=at,
          scale=scale)
