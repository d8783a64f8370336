"""The nested choice behind the default method ``auto``: which way of carrying curves to a new
scale to trust, decided on the law set's own scale runs only (the pieces here; the loop
is :func:`sparsitylaws.architecture.compose.choose_method`).

For each scale run of an activation in turn, the section is rebuilt without it
(:func:`subset_entry`) and every candidate method (:data:`~sparsitylaws.architecture.common.CANDIDATES`)
predicts the left-out run's curve at three of its own budgets (first kept point, middle,
last: the leave-one-scale-out protocol of docs/architecture.md), as a band for a single
measured point (the section's pooled point noise added).  The method with the lowest mean
interval score (width + 2/(1 - level) x miss; lower is better) is chosen; a tie goes to
the simpler method (the order of ``CANDIDATES``, the nearest-scale baseline first).  With
fewer than :data:`MIN_SCALES` scales no method can be scored on a left-out scale that
leaves a step to calibrate on, and the baseline ``nearest`` is used.

A leave-one-scale-out table that scores ``auto`` (benchmarks/loso.py) therefore makes the
choice on each fold's training scales only: nested, never on the runs it reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Fewest distinct scales for which methods are compared (a left-out scale must leave at
#: least two, one step, to calibrate a band on).
MIN_SCALES = 3
#: Budgets scored on each left-out run: first kept point, the middle one, the last.
POSITIONS = ("early", "middle", "last")
_PER_RUN = ("runs", "log10_n", "theta", "ratios", "widths", "depths", "curves")


def subset_entry(entry: Mapping, keep: Sequence[int]) -> dict:
    """The architecture entry restricted to the scale runs at positions ``keep`` (their
    points, coefficients and draws; the width/depth law and ranges kept as they are)."""
    keep = list(keep)
    sc = dict(entry["scale"])
    for key in _PER_RUN:
        if sc.get(key) is not None:
            sc[key] = [sc[key][i] for i in keep]
    if sc.get("run_draws") is not None:
        sc["run_draws"] = np.asarray(sc["run_draws"], float)[:, keep, :]
    sc["x_center"] = float(np.mean(np.asarray(sc["log10_n"], float)))
    return {**entry, "scale": sc}


def scoring_points(entry: Mapping, i: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(n_params, width/depth ratio, tokens in billions, measured ratio) of scale run ``i``
    at its first kept, middle and last point; its law's samples when no points are stored."""
    from sparsitylaws.architecture.curves import law_curve

    sc = entry["scale"]
    n = 10.0 ** float(sc["log10_n"][i])
    cur = (sc.get("curves") or [None] * len(sc["log10_n"]))[i]
    if cur is None or not cur.get("tokens_per_param"):
        tpp = (entry.get("ranges") or {}).get("tokens_per_param") or [
            float(sc["tokens_b"][0]) * 1e9 / n, float(sc["tokens_b"][1]) * 1e9 / n]
        cur = law_curve("", sc["form"], sc["theta"][i], n, tpp)
    tpp = np.asarray(cur["tokens_per_param"], float)
    y = np.asarray(cur["ratio"], float)
    idx = np.array(sorted({0, (tpp.size - 1) // 2, tpp.size - 1}))
    ratio = (sc.get("ratios") or [None] * len(sc["log10_n"]))[i]
    return n, float(ratio) if ratio else 0.0, tpp[idx] * n / 1e9, y[idx]
