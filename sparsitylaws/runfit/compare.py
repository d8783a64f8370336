"""Is one forecast better than another, and can a handful of runs tell?

The unit of evidence is a run: each held-out run gives one mean interval score per forecast
(its forecasts weighing equally), and two forecasts are compared on the same runs, paired.
:func:`paired_comparison` reports how many runs each won, the exact (Clopper-Pearson) interval
of the win rate, the mean difference with a paired Student-t interval over runs, and a verdict
that says "better" or "worse" only when that interval excludes zero.  With one run nothing
is certified; with four, a difference has to be consistent across all of them to count.
Leave-one-run-out folds share calibrating runs, so their per-run scores are not independent:
the intervals are a yardstick, somewhat narrower than the truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import t as student_t

from sparsitylaws.runfit.coverage import clopper_pearson

__all__ = ["NAIVE_FORECASTS", "PairedComparison", "against_naive", "paired_comparison", "paired_text"]

#: Two per-run scores closer than this tie (float noise: a combination with all its weight on
#: one naive forecast scores as that forecast up to rounding).
TIE = 1e-12

#: The naive forecasts every combined forecast is shown beside: (summary key, name).
NAIVE_FORECASTS = (("naive_last", "last value"), ("naive_line", "local line"), ("naive_nearest", "nearest run"))


@dataclass(frozen=True)
class PairedComparison:
    """Forecast A against forecast B over the runs both scored (scores: lower is better)."""

    n_runs: int
    #: runs where A scored lower than B, and where they tied (to 1e-12)
    wins: int
    ties: int
    win_rate_low: float
    win_rate_high: float
    #: mean over runs of score(A) - score(B), and its paired t interval (NaN with one run)
    mean_difference: float
    low: float
    high: float
    level: float

    @property
    def verdict(self) -> str:
        """"better" / "worse" when the interval of the mean difference excludes 0, "undecided"
        when it does not, "tied" when every run ties, "one run" when there is no interval to read."""
        if self.n_runs >= 1 and self.ties == self.n_runs:
            return "tied"
        if self.n_runs < 2 or not math.isfinite(self.low):
            return "one run" if self.n_runs == 1 else "no runs"
        if self.high < 0:
            return "better"
        if self.low > 0:
            return "worse"
        return "undecided"

    def describe(self) -> str:
        """The mean difference in pp with its interval, the verdict and runs won (A - B, scores
        as fractions), or "one run: nothing certified" where there is no interval."""
        if self.n_runs < 2:
            return f"{100 * self.mean_difference:+.2f} (one run: nothing certified)"
        if self.verdict == "tied":
            return f"{100 * self.mean_difference:+.2f} tied in all {self.n_runs} runs"
        return (f"{100 * self.mean_difference:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}] "
                f"{self.verdict}, won {self.wins}/{self.n_runs}")


def paired_comparison(a: Mapping[str, float], b: Mapping[str, float], level: float = 0.9) -> PairedComparison:
    """Compare per-run scores ``a`` and ``b`` (run -> score, lower is better) on their common
    runs: wins of A with a Clopper-Pearson ``level`` interval of the win rate (ties are left
    out of the rate), and the mean difference A - B with the two-sided paired Student-t
    ``level`` interval over runs.  Differences within :data:`TIE` count as 0 (ties), so float
    noise between equal forecasts cannot make a zero-width interval that excludes 0."""
    runs = sorted(set(a) & set(b))
    d = [float(a[r]) - float(b[r]) for r in runs if math.isfinite(a[r]) and math.isfinite(b[r])]
    d = [0.0 if abs(x) <= TIE else x for x in d]
    n = len(d)
    ties = sum(x == 0.0 for x in d)
    wins = sum(x < 0.0 for x in d)
    wlo, whi = clopper_pearson(wins, n - ties, level)
    if n == 0:
        return PairedComparison(0, 0, 0, wlo, whi, math.nan, math.nan, math.nan, level)
    mean = sum(d) / n
    if n < 2:
        return PairedComparison(n, wins, ties, wlo, whi, mean, math.nan, math.nan, level)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = float(student_t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return PairedComparison(n, wins, ties, wlo, whi, mean, mean - half, mean + half, level)


def against_naive(summary: Mapping[str, dict], key: str, level: float = 0.9) -> PairedComparison:
    """The combined forecast against forecast ``key`` (e.g. ``naive_last``), paired over the runs
    of :func:`sparsitylaws.runfit.calibration.summarize`'s output (their ``per_run`` interval
    scores)."""
    def per_run(m: str) -> dict[str, float]:
        return {r: v["interval_score"] for r, v in summary[m]["per_run"].items()}

    return paired_comparison(per_run("combined"), per_run(key), level)


def paired_text(summary: Mapping[str, dict]) -> str:
    """One line: the combined forecast against each naive forecast (last value, local line,
    nearest run at equal tokens per parameter), paired over runs (:func:`against_naive`,
    :meth:`PairedComparison.describe`); empty without naive forecasts."""
    return "; ".join(f"{name} {against_naive(summary, key).describe()}"
                     for key, name in NAIVE_FORECASTS if key in summary)
