"""Simulation calibration of the fitted intervals, on the published runs' own token grids.

Truths: a law fitted to each run of a measurement table (its kept points' token grid, its
residual sd), plus, optionally, weakly identified truths (a run fitted without its points
below a share of its last token count, e.g. 0.4B ReLU without the points below 10%).  Each
simulated data set is the truth on that grid plus Gaussian AR(1) noise with lag-1
correlation ``rho`` and the run's residual sd.  Every data set is fitted with
:func:`sparsitylaws.runfit.run.fit_run` (automatic warm-up rule, bootstrap, profile likelihood),
and again on the points up to 70% of its token range to forecast its last checkpoint.

Reported coverages: the limit A0 (the reported interval), and the forecast of the last
checkpoint from the 70% cut by the law's own prediction band (``law``: parameters and
noise; the truth follows the law, so there is no form error to cover) and by the full
forecast band (``forecast``: plus the calibrated forecast-error term, which can only widen).

Used by tests/test_simcal.py (small) and benchmarks/calibration_bench.py (full table in
docs/fitting.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.run import fit_run

__all__ = ["Truth", "simulate_coverage", "truths_from_runs"]


@dataclass(frozen=True)
class Truth:
    """A law to simulate from: form, parameters, token grid (raw), noise sd, activation."""

    name: str
    activation: str
    form: str
    theta: tuple[float, ...]
    tokens: tuple[float, ...]
    sd: float


def truths_from_runs(runs: Mapping[str, tuple[np.ndarray, np.ndarray, str]], *,
                     weak: Sequence[tuple[str, float]] = (), n_boot: int = 200) -> list[Truth]:
    """One truth per run (raw tokens, ratio, activation), fitted with defaults; ``weak``: (run,
    share) pairs fitted without the points below share x the run's last token count."""
    out = []
    specs = [(name, None) for name in runs] + [(name, share) for name, share in weak]
    for name, share in specs:
        t, y, act = runs[name]
        t, y = np.asarray(t, float), np.asarray(y, float)
        mt = None if share is None else share * float(t.max())
        rf = fit_run(t, y, run=name, activation=act, min_tokens=mt, n_boot=0, compare=False, backtest=False)
        keep = np.ones(t.size, bool)
        keep[[d["index"] for d in rf.dropped]] = False
        label = name if share is None else f"{name} (points >= {share:.0%} of last)"
        out.append(Truth(label, act, rf.form, tuple(rf.estimate), tuple(np.sort(t)[keep]), float(rf.noise_sd)))
    return out


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    e = np.empty(n)
    e[0] = rng.standard_normal()
    for j in range(1, n):
        e[j] = rho * e[j - 1] + np.sqrt(1 - rho**2) * rng.standard_normal()
    return e


def simulate_coverage(truths: Sequence[Truth], *, rho: float, n_sets: int, seed: int = 0,
                      n_boot: int = 200, level: float = 0.9, cut: float = 0.7) -> dict:
    """Coverage of A0 and of the last-checkpoint forecast from a ``cut`` fit, over ``n_sets``
    data sets cycling through ``truths``.  Returns counts and per-truth hits."""
    rng = np.random.default_rng(seed)
    hits: dict[str, list[tuple[bool, bool, bool]]] = {}
    for i in range(n_sets):
        tr = truths[i % len(truths)]
        form = get_form(tr.form)
        t = np.asarray(tr.tokens)
        D = t / 1e9
        theta = np.asarray(tr.theta)
        y = np.clip(form.evaluate(D, theta) + tr.sd * _ar1(rng, t.size, rho), 0.0, 1.0)
        rf = fit_run(t, y, run=f"sim{i}", activation=tr.activation, form=tr.form, n_boot=n_boot,
                     seed=i, level=level, compare=False, backtest=False)
        ia0 = form.limit_index()
        a0_hit = bool(rf.boot_low[ia0] <= theta[ia0] <= rf.boot_high[ia0])
        t_cut = D[0] + cut * (D[-1] - D[0])
        tr_mask = t_cut >= D
        rc = fit_run(t[tr_mask], y[tr_mask], run=f"sim{i}", activation=tr.activation, form=tr.form,
                     n_boot=n_boot, seed=i, level=level, compare=False, backtest=False)
        p = rc.predict([t[-1]], level=level)
        law_hit = bool(p.law_low[0] <= y[-1] <= p.law_high[0])
        fc_hit = bool(p.pred_low[0] <= y[-1] <= p.pred_high[0])
        hits.setdefault(tr.name, []).append((a0_hit, law_hit, fc_hit))
    allh = np.array([h for v in hits.values() for h in v])
    return {"rho": rho, "n_sets": n_sets, "a0": float(allh[:, 0].mean()), "law": float(allh[:, 1].mean()),
            "forecast": float(allh[:, 2].mean()),
            "per_truth": {k: np.mean(np.array(v), axis=0).tolist() for k, v in hits.items()}}
