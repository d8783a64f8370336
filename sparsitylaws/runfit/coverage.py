"""When is backtest coverage poor?  One rule for ``fit``'s summary and the report.

A prediction interval at level q should hold about q of the held-out points.  Coverage is
flagged as poor when seeing that few covered points would be unlikely if the intervals
were calibrated: the binomial lower tail P(X <= covered | n, q) is below
:data:`POOR_TAIL` (5%).  Held-out points of one run are correlated, so a flag is a
warning to look, not proof of miscalibration.  Examples at q = 0.9: 0/7, 3/15 and 14/20
are flagged; 6/7, 13/15 and 3/4 are not.
"""

from __future__ import annotations

from scipy.stats import binom

__all__ = ["POOR_TAIL", "coverage_tail", "poor_coverage"]

#: Lower-tail probability below which coverage is called poor.
POOR_TAIL = 0.05


def coverage_tail(covered: int, n: int, level: float) -> float:
    """P(X <= covered) for X ~ Binomial(n, level): how surprising so few covered points are."""
    if n <= 0:
        return 1.0
    return float(binom.cdf(covered, n, level))


def poor_coverage(covered: int, n: int, level: float) -> bool:
    """True when ``covered`` of ``n`` points in ``level`` intervals is implausibly few."""
    return n > 0 and coverage_tail(covered, n, level) < POOR_TAIL


def clopper_pearson(covered: int, n: int, level: float = 0.9) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided ``level`` interval for a coverage rate seen as
    ``covered`` of ``n`` independent trials: what n forecasts can and cannot certify (nine
    forecasts that all cover are consistent with a true rate as low as 0.72 at 90%)."""
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    a = (1.0 - level) / 2.0
    lo = 0.0 if covered <= 0 else float(beta.ppf(a, covered, n - covered + 1))
    hi = 1.0 if covered >= n else float(beta.ppf(1.0 - a, covered + 1, n - covered))
    return lo, hi
