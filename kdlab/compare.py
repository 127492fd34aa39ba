"""Comparing arms over paired seeds: the results table and the interval every claim is checked against.

Runs are paired: arm A and arm B with the same seed share the data order, the augmentation and (for the
same architecture) the initial weights, so the per-seed difference removes most of the seed-to-seed noise.

    runs = pd.DataFrame([{"arm": "hard labels", "seed": 0, "test_acc": 0.71}, ...])
    results_table(runs, "test_acc")                          # mean, std, n per arm
    paired_difference(runs, "soft targets", "hard labels")   # mean difference and its 95% t-interval
"""
import math
from dataclasses import dataclass

import pandas as pd


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

    @property
    def significant(self) -> bool:
        """The 95% interval excludes zero (with n >= 2 pairs)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def __str__(self):
        return (f"{self.arm} - {self.baseline} ({self.metric}): {self.mean:+.4f}, 95% interval "
                f"[{self.low:+.4f}, {self.high:+.4f}] over {self.n} paired seeds")


def paired_difference(runs: pd.DataFrame, arm: str, baseline: str, metric: str = "test_acc",
                      by: str = "arm", seed: str = "seed", confidence: float = 0.95) -> Difference:
    """Mean per-seed difference `arm - baseline` and its t-interval (infinite with a single pair)."""
    from scipy import stats
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
        return Difference(arm, baseline, metric, mean, -math.inf, math.inf, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return Difference(arm, baseline, metric, mean, mean - half, mean + half, n)


def difference_table(runs: pd.DataFrame, pairs, metric: str = "acc", by: str = "arm") -> pd.DataFrame:
    """`paired_difference` for each (arm, baseline) pair, one row each, with a verdict in words: "better" or
    "worse" when the 95% interval excludes 0, "not distinguishable" when it contains 0, "one seed" without an
    interval."""
    rows = []
    for arm, base in pairs:
        d = paired_difference(runs, arm, base, metric=metric, by=by)
        verdict = ("one seed" if d.n < 2 else "not distinguishable" if not d.significant
                   else "better" if d.mean > 0 else "worse")
        rows.append({"arm": arm, "against": base, "mean diff": d.mean, "low": d.low, "high": d.high, "seeds": d.n,
                     "verdict": verdict})
    return pd.DataFrame(rows)


def verdict_text(table: pd.DataFrame, arm: str, against: str, scale: float = 100, unit: str = "points") -> str:
    """One row of `difference_table` as a sentence fragment: 'better (+4.7 points, 95% interval [+2.6, +6.9])'."""
    r = table[(table["arm"] == arm) & (table["against"] == against)]
    if r.empty:
        raise KeyError(f"no row {arm!r} against {against!r} in the table")
    r = r.iloc[0]
    return (f"{r['verdict']} ({scale * r['mean diff']:+.1f} {unit}, 95% interval "
            f"[{scale * r['low']:+.1f}, {scale * r['high']:+.1f}])")


def claim(statement: str, holds: bool) -> None:
    """Assert a notebook's claim and print one line that is the same at every scale (nbval compares it).

    Notebooks pass the real test at the scales where it is meaningful and an invariant at `smoke`; the
    statement says which."""
    if not holds:
        raise AssertionError(f"claim does not hold in this run: {statement}")
    print(f"claim: {statement}: holds")
