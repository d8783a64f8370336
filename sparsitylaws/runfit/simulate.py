"""Simulation checks of the fitted intervals and of the within-run forecasts.

1. :func:`simulate_coverage` - the parameter intervals, on the published runs' own token grids.
   Truths: a law fitted to each run of a measurement table (its kept points' token grid, its
   residual sd), plus, optionally, weakly identified truths (a run fitted without its points
   below a share of its last token count).  Each data set is the truth on that grid plus
   Gaussian AR(1) noise (lag-1 correlation ``rho``, the run's residual sd), fitted with
   :func:`sparsitylaws.runfit.run.fit_run` (warm-up average, bootstrap, profile likelihood), and
   again on the points up to 70% of its token range.  Reported: coverage of the limit A0, and of
   the last checkpoint by the law's own prediction band from the 70% fit (the truth follows the
   law: no form error to cover).

2. :func:`simulate_forecasts` - the combined forecast and its band, on simulated *studies*: runs
   of several sizes that share a shape in tokens per parameter, from a truth family
   (:data:`FAMILIES`): one the law describes, and two it does not (a ReLU curve that keeps
   falling after an apparent plateau, faster for larger runs; a SiLU curve whose rise stalls
   while the law says it goes on).  Each study is checked as the real runs are
   (:func:`sparsitylaws.runfit.calibration.evaluate`, leave one run out): the forecasts of every
   run at every cut are made from the other runs alone, and their 90% bands' coverage is
   counted per family.

Used by tests/test_simcal.py (small) and benchmarks/calibration_bench.py (full tables in
docs/fitting.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.run import fit_run

__all__ = ["FAMILIES", "MIXED_STUDIES", "Truth", "simulate_coverage", "simulate_forecasts", "simulate_mixed_forecasts",
           "simulate_study", "truths_from_runs"]


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
    """Coverage of A0 and of the last checkpoint by the law's band from a ``cut`` fit, over
    ``n_sets`` data sets cycling through ``truths``.  Returns counts and per-truth hits."""
    rng = np.random.default_rng(seed)
    hits: dict[str, list[tuple[bool, bool]]] = {}
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
        hits.setdefault(tr.name, []).append((a0_hit, law_hit))
    allh = np.array([h for v in hits.values() for h in v])
    return {"rho": rho, "n_sets": n_sets, "a0": float(allh[:, 0].mean()), "law": float(allh[:, 1].mean()),
            "per_truth": {k: np.mean(np.array(v), axis=0).tolist() for k, v in hits.items()}}


#: Truth families for forecast simulations: activation, and the curve in tokens per parameter
#: tau for run k of a study (k = 0 smallest).  ``law``: A0 + a tau^-p (ReLU, the power-law limit
#: of its law) or A0 - a tau^-p (SiLU); ``keeps_falling``: the ReLU curve plus a fall of
#: delta_k per e-fold of tau past a knee at tau 40 (a softplus, so it starts gently, after an
#: apparent plateau), larger for larger runs; ``rise_stalls``: the SiLU curve whose rise past
#: tau 40 is cut to 30% of the law's.
FAMILIES = ("relu_law", "relu_keeps_falling", "silu_law", "silu_rise_stalls")


def _family_curve(family: str, tau: np.ndarray, k: int) -> np.ndarray:
    a0 = 0.07 + 0.002 * k
    if family.startswith("relu"):
        y = a0 + 0.08 * tau**-0.5
        if family == "relu_keeps_falling":
            delta = 0.002 * (1.0 + 0.4 * k)
            y = y - delta * np.logaddexp(0.0, np.log(tau / 40.0) / 0.5) * 0.5
        return y
    a0 = 0.40 - 0.004 * k
    law = a0 - 0.15 * tau**-0.6
    if family == "silu_rise_stalls":
        knee = a0 - 0.15 * 40.0**-0.6
        law = np.where(tau > 40.0, knee + 0.3 * (law - knee), law)
    return law


def simulate_study(family: str, *, n_runs: int = 6, n_points: int = 24, sd: float = 3e-4,
                   rho: float = 0.3, seed: int = 0, replicates: int = 1):
    """One simulated study: ``n_runs`` sizes (1e8 x 2^k) on a tau grid from 5 to 250, each the
    family's curve plus AR(1) noise, ``replicates`` runs of each size (seeds: the same curve,
    their own noise; the first is ``{family}-{k}``, the others ``{family}-{k}-r{j}``); returns
    their backtests (:class:`~sparsitylaws.runfit.calibration.RunBacktest`)."""
    from sparsitylaws.runfit.backtest import backtest
    from sparsitylaws.runfit.calibration import RunBacktest
    from sparsitylaws.runfit.forecast import RunCurve

    rng = np.random.default_rng(seed)
    act = "relu" if family.startswith("relu") else "silu"
    out = []
    for k, j in ((k, j) for k in range(n_runs) for j in range(replicates)):
        n = 1e8 * 2.0**k
        tau = np.exp(np.linspace(np.log(5.0), np.log(250.0), n_points))
        d = tau * n / 1e9
        y = np.clip(_family_curve(family, tau, k) + sd * _ar1(rng, tau.size, rho), 0.0, 1.0)
        name = f"{family}-{k}" + (f"-r{j}" if j else "")
        rf = fit_run(d * 1e9, y, run=name, activation=act, n_boot=0, compare=False, backtest=False, n_params=n)
        w = (rf.extra.get("warmup_average") or {}).get("inclusion")
        rows = backtest(d, y, rf.form, run=name, activation=act, n_params=n)
        out.append(RunBacktest(name, act, n, rows, RunCurve.from_points(name, act, n, d, y, w)))
    return out


def simulate_forecasts(family: str, *, n_studies: int, seed: int = 0, level: float = 0.9,
                       largest_out: bool = False, **kw) -> dict:
    """Coverage of the combined forecast's band (and, beside it, of the law's own forecast
    banded the same way) over ``n_studies`` studies of ``family``, every run's forecasts made
    leave one run out (``largest_out``: only the largest run, from the others)."""
    from sparsitylaws.runfit.calibration import evaluate

    rows = []
    for s in range(n_studies):
        runs = simulate_study(family, seed=seed + s, **kw)
        groups = [[runs[-1].run]] if largest_out else [[r.run] for r in runs]
        rows += [{**r, "run": f"{s}:{r['run']}"} for r in evaluate(runs, groups, level)]
    return {"family": family, "n_studies": n_studies, "largest_out": largest_out, **_scored(rows, level)}


def _scored(rows: list[dict], level: float) -> dict[str, dict]:
    """Per method (the combined forecast, the law, the two naive ones): coverage of later
    points, last checkpoints covered and interval score at the reported cuts."""
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS
    from sparsitylaws.runfit.calibration import summarize

    summ = summarize(rows, level, REPORTED_CUTOFFS)
    return {m: {"coverage": v["covered_points"] / max(v["n_points"], 1), "n_points": v["n_points"],
                "covered_last": v["covered_last"], "n_forecasts": v["n_forecasts"],
                "interval_score": v["interval_score"]}
            for m, v in summ.items() if m in ("combined", "law", "naive_last", "naive_line")}


#: Studies of both activations, as the paper's (four ReLU and four SiLU sizes): a ReLU family
#: beside a SiLU one, so that one activation's errors may mislead the other's bands.
MIXED_STUDIES = (("relu_keeps_falling", "silu_law"), ("relu_law", "silu_rise_stalls"))


def simulate_mixed_forecasts(families: tuple[str, str], *, n_studies: int, seed: int = 0, level: float = 0.9,
                             n_runs: int = 4, **kw) -> dict:
    """Coverage and interval score per activation of the combined forecast's band on studies
    holding ``n_runs`` sizes of each of ``families`` (a ReLU and a SiLU family, their own
    noise), every run's forecasts made leave one run out, from the other runs of both."""
    from sparsitylaws.runfit.calibration import evaluate

    rows: dict[str, list] = {}
    for s in range(n_studies):
        runs = [r for i, f in enumerate(families)
                for r in simulate_study(f, n_runs=n_runs, seed=seed + 1000 * i + s, **kw)]
        act = {r.run: r.activation for r in runs}
        for r in evaluate(runs, [[r.run] for r in runs], level):
            rows.setdefault(act[r["run"]], []).append({**r, "run": f"{s}:{r['run']}"})
    out = {"families": list(families), "n_studies": n_studies}
    for a, rs in sorted(rows.items()):
        out[a] = {**_scored(rs, level), "cross": sorted({float(r["choice"].get("cross", 1.0)) for r in rs})}
    return out
