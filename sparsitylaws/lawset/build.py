"""From a measurement table to a law set: pick the rows, fit each run, add provenance.

This is the engine behind ``sparsitylaws fit``.  It chooses one metric per run (CETT-PPL-p%
by default), fits each run with :func:`sparsitylaws.runfit.run.fit_run`, records what is known
of each run's architecture, and, when several runs with known shapes are fitted, adds the
architecture laws (:func:`sparsitylaws.architecture.build_architecture_section`).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata

import numpy as np
import pandas as pd

from sparsitylaws.errors import FitInputError, SparsityLawsError
from sparsitylaws.lawset.fileformat import LawSet
from sparsitylaws.runfit.settings import N_BOOT
from sparsitylaws.tables.rows import DEFAULT_METRIC, select_fit_rows, select_metric_rows  # noqa: F401 (re-exported)
from sparsitylaws.version import __version__

_INFO_COLUMNS = ("width", "depth", "ffn_width", "n_params", "n_params_total")


def _versions() -> dict[str, str]:
    out = {"sparsitylaws": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "lmfit", "pandas", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are core deps
            out[pkg] = "unknown"
    return out


def data_hash(rows: pd.DataFrame) -> str:
    """SHA-256 of a run's (tokens, activation_ratio) points, sorted by tokens: the data identity."""
    pts = rows.sort_values("tokens")[["tokens", "activation_ratio"]]
    buf = pts["tokens"].to_numpy(np.int64).tobytes() + pts["activation_ratio"].to_numpy(np.float64).tobytes()
    return hashlib.sha256(buf).hexdigest()


def run_info_of(rows: pd.DataFrame) -> dict:
    """Architecture and data facts of one run (first non-null value of each column)."""
    info: dict = {"activation": str(rows["activation"].iloc[0])}
    for col in _INFO_COLUMNS:
        if col in rows.columns:
            vals = rows[col].dropna()
            info[col] = int(vals.iloc[0]) if len(vals) else None
    if info.get("width") and info.get("depth"):
        info["width_depth_ratio"] = info["width"] / info["depth"]
    ordered = rows.sort_values("tokens")
    info.update({
        "metric": str(rows["metric"].iloc[0]),
        "metric_arg": float(rows["metric_arg"].iloc[0]) if pd.notna(rows["metric_arg"].iloc[0]) else None,
        "n_checkpoints": int(len(rows)),
        "tokens_min": int(ordered["tokens"].iloc[0]),
        "tokens_max": int(ordered["tokens"].iloc[-1]),
        "final_activation_ratio": float(ordered["activation_ratio"].iloc[-1]),
        "data_sha256": data_hash(rows),
    })
    return info


def measurement_sets(rows: pd.DataFrame, runs: Sequence[str]) -> dict[str, list[str]]:
    """The runs grouped by where their rows come from (``source`` and ``eval_dataset``).

    Runs measured on different evaluation text, or ingested from a paper, are most likely
    different recipes (data, tokenizer, schedule); laws across runs assume one recipe.  The
    text is told apart by its hash (``eval_sha256``) where the table has it: two lab plans
    both evaluate on an ``eval.txt``, of different corpora.
    """
    out: dict[str, list[str]] = {}
    for run in runs:
        sub = rows[rows["run"] == run]
        parts = []
        for col in ("source", "eval_dataset", "eval_sha256"):
            vals = sub[col].dropna().astype(str).unique() if col in sub.columns else []
            parts.append(vals[0] if len(vals) else None)
        key = f"{parts[0] or 'unknown'} on {parts[1] or 'unknown'}"
        if parts[2]:
            key += f" (sha256 {parts[2][:12]})"
        out.setdefault(key, []).append(run)
    return out


def mixed_studies_caveat(studies: dict[str, list[str]]) -> str:
    """The caveat for laws across runs from several measurement sets."""
    listed = "; ".join(f"{key} ({len(r)} runs, e.g. {r[0]})" for key, r in sorted(studies.items()))
    return (f"The scale and width/depth laws pool runs from {len(studies)} measurement sets ({listed}): "
            "they assume one training recipe and one measurement. If the sets differ in data, tokenizer, "
            "schedule or evaluation text, fit each on its own (pass its table to fit, or --run).")


def fit_table(
    df: pd.DataFrame,
    *,
    runs: Sequence[str] | None = None,
    form: str = "auto",
    metric: str | None = None,
    metric_arg: float | None = None,
    loss: str = "linear",
    drop_first: int | None = None,
    min_tokens: float | None = None,
    n_boot: int = N_BOOT,
    level: float = 0.9,
    seed: int = 0,
    backtest: bool = True,
    architecture: bool = True,
    limit_from: str = "fit",
    name: str = "fitted law set",
    sources: Sequence[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> LawSet:
    """Fit every selected run of a validated measurement table into a :class:`LawSet`.

    Every run's form is chosen and every input checked before the first fit, so bad input
    fails at once.  ``progress(what, done, total)``, when given, is called before each run
    (``what`` its name, ``done`` runs finished of ``total``) and before the laws across runs.
    """
    sel = select_fit_rows(df, metric, metric_arg, runs=runs)
    rows, metric = sel.rows, sel.metric
    names = sorted(rows["run"].unique())
    fits, info, skipped = {}, {}, {}
    # every run's form and every input check first, so bad input fails before any fitting
    plan: dict[str, tuple[pd.DataFrame, str, str]] = {}
    for run in names:
        sub = rows[rows["run"] == run]
        run_form, form_why = form, f"--form {form}"
        if form == "auto":  # by activation; unknown activations by the data's direction, or an error
            from sparsitylaws.runfit.formchoice import choose_form

            run_form, form_why = choose_form(str(sub["activation"].iloc[0]), sub["tokens"].to_numpy(float),
                                             sub["activation_ratio"].to_numpy(float), run=run)
        too_few = _too_few_points(sub, run_form)
        if too_few and not runs:  # skip unfittable runs unless the user asked for them by name
            skipped[run] = too_few
            continue
        if sub["metric_arg"].nunique(dropna=False) > 1:
            args = ", ".join(f"{a:g}" for a in sorted(sub["metric_arg"].unique()))
            raise SparsityLawsError(
                f"run {run!r} has {metric} rows for several arguments ({args}); choose one with --metric-arg")
        plan[run] = (sub, run_form, form_why)
    for k, (run, (sub, run_form, form_why)) in enumerate(plan.items()):
        if progress:
            progress(run, k, len(plan))
        se = None
        if "activation_ratio_se" in sub.columns and sub["activation_ratio_se"].notna().all():
            se = sub["activation_ratio_se"].to_numpy(float)
        fits[run] = _fit_one(sub, run=run, form=run_form, se=se, loss=loss, drop_first=drop_first,
                             min_tokens=min_tokens, n_boot=n_boot, level=level, seed=seed,
                             backtest=backtest)
        info[run] = run_info_of(sub)
        info[run]["form_choice"] = form_why
    if not fits:
        raise FitInputError("nothing to fit: " + "; ".join(f"run {r!r}: {why}" for r, why in skipped.items()))
    names = [r for r in names if r in fits]
    if progress:
        progress("forecast calibration and architecture laws", len(plan), len(plan))
    forecast_section, forecast_summary = (calibrate_forecasts(fits, info, rows, level) if backtest
                                          else (None, None))
    section, arch_note = None, None
    add_plateau_limits(info, rows, df)
    if architecture and len(fits) >= 2:
        section, arch_note = _architecture(fits, info, rows, limit_from, level, seed)
        if section is not None:
            add_widthdepth_robustness(section, info, seed)
    provenance = {
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "created_by": "sparsitylaws fit",
        "versions": _versions(),
        "sources": list(sources),
        "metric": metric,
        "settings": {"form": form, "loss": loss, "drop_first": drop_first, "min_tokens": min_tokens,
                     "n_boot": n_boot, "level": level, "seed": seed, "limit_from": limit_from},
        "data_sha256": {run: info[run]["data_sha256"] for run in names},
    }
    if forecast_summary:
        provenance["forecast_calibration"] = forecast_summary
    if skipped:
        provenance["skipped_runs"] = skipped
    if sel.excluded:
        provenance["not_for_fitting"] = dict(sel.excluded)
    if arch_note:
        provenance["architecture_note"] = arch_note
    studies = measurement_sets(rows, list(fits))
    if section is not None and len(studies) > 1:
        provenance["caveats"] = [mixed_studies_caveat(studies)]
    return LawSet(name=name, runs=fits, run_info=info, architecture=section, provenance=provenance,
                  forecast=forecast_section)


PLATEAU_LAST = 3  # checkpoints averaged into a run's plateau mean


def add_plateau_limits(info: dict, rows: pd.DataFrame, df: pd.DataFrame) -> None:
    """Beside each run's fitted A0: its *plateau mean*, the mean of the fitted metric over
    its last :data:`PLATEAU_LAST` checkpoints (no extrapolation; robust where A0 is weakly
    identified), and the same for the ``cett`` metric at one common CETT where the table
    has it (runs compared at one threshold rather than each at its own PPL-1% CETT)."""
    for run in info:
        sub = rows[rows["run"] == run].sort_values("tokens")
        last = sub["activation_ratio"].to_numpy(float)[-PLATEAU_LAST:]
        info[run]["plateau"] = {"mean": float(last.mean()), "n_last": int(last.size),
                                "sd": float(last.std(ddof=1)) if last.size > 1 else None}
        if "metric" not in df.columns:
            continue
        c = df[(df["run"] == run) & (df["metric"] == "cett")]
        if c.empty or c["metric_arg"].nunique() != 1:
            continue
        last = c.sort_values("tokens")["activation_ratio"].to_numpy(float)[-PLATEAU_LAST:]
        info[run]["plateau_common_cett"] = {"cett": float(c["metric_arg"].iloc[0]),
                                            "mean": float(last.mean()), "n_last": int(last.size)}


def add_widthdepth_robustness(section: dict, info: dict, seed: int) -> None:
    """The width/depth tests again on the sweep runs' plateau means with equal weights
    (``widthdepth["plateau_tests"]``): the free- and fixed-breakpoint tests with their
    p-values and power, and each design's seed mean and spread (docs/lab.md)."""
    from sparsitylaws.architecture.widthdepth import fit_widthdepth

    for entry in (section.get("activations") or {}).values():
        wd = entry.get("widthdepth")
        if not wd or not wd.get("runs"):
            continue
        runs = [r for r in wd["runs"] if (info.get(r) or {}).get("plateau")]
        lim = pd.DataFrame({
            "run": runs, "ratio": [info[r].get("width_depth_ratio") for r in runs],
            "n_params": [info[r].get("n_params") for r in runs],
            "a0": [info[r]["plateau"]["mean"] for r in runs], "a0_se": [None] * len(runs)})
        try:
            h = fit_widthdepth(lim, n_boot=999, seed=seed, smooth_fit=False, influence=False)
        except FitInputError as exc:
            wd["plateau_tests"] = {"error": str(exc)}
            continue
        d = h.to_dict()
        wd["plateau_tests"] = {
            "limits": f"plateau mean of the last {PLATEAU_LAST} checkpoints, equal weights",
            "runs": runs, "values": [info[r]["plateau"]["mean"] for r in runs],
            "designs": d["designs"], "test": d["test"], "fixed_breakpoint_test": d["fixed_breakpoint_test"]}


def run_curves(rows: pd.DataFrame, fits: dict, info: dict) -> dict:
    """Each fitted run's measured curve as an analog for the others (warm-up points weighted
    as in its fit)."""
    from sparsitylaws.runfit.forecast import RunCurve

    out = {}
    for name, rf in fits.items():
        sub = rows[rows["run"] == name].sort_values("tokens")
        w = (rf.extra.get("warmup_average") or {}).get("inclusion")
        t = sub["tokens"].to_numpy(float)
        if w is not None:
            w = np.asarray(w, float)[np.argsort(np.argsort(t, kind="stable"), kind="stable")]
        out[name] = RunCurve.from_points(name, rf.activation, (info.get(name) or {}).get("n_params"),
                                         t / 1e9, sub["activation_ratio"].to_numpy(float), w)
    return out


#: Suffix of the forecast group of runs that borrow from an older replicate (a second model).
REPLICATE_SUFFIX = "(beside an older replicate)"


def calibrate_forecasts(fits: dict, info: dict, rows: pd.DataFrame, level: float = 0.9
                        ) -> tuple[dict | None, dict]:
    """Calibrate every run's forecasts on the other runs of its measurement set (recipe).

    A set with more than :data:`~sparsitylaws.runfit.calibration.MIN_RUNS` backtested runs gets
    its own model (:func:`~sparsitylaws.runfit.calibration.calibrate_runs`: the candidate
    weights chosen on its runs, each run banded leaving itself out, the set's runs as each
    other's analogs); runs of smaller sets keep the packaged default and its
    ``forecast_default`` warning.  Returns the law set's ``forecast`` section (models and
    analog curves) and a summary for its provenance.
    """
    from sparsitylaws.runfit.calibration import MIN_RUNS, calibrate_runs
    from sparsitylaws.runfit.forecast import has_older_replicate
    from sparsitylaws.runfit.run import run_backtest_of, set_default_forecast, set_forecast

    curves = run_curves(rows, fits, info)
    models, used, default_runs = {}, [], []
    for group, members in measurement_sets(rows, list(fits)).items():
        tested = [m for m in members if getattr(fits[m], "backtest_raw", None)]
        if len(tested) > MIN_RUNS:
            source = f"leave-one-run-out backtests of this law set's runs ({group})"
            model, banded, drift, per_run = calibrate_runs([run_backtest_of(fits[m], curves[m]) for m in tested],
                                                           [curves[m] for m in members], level, source)
            for m in tested:
                # a run beside an older replicate has its own model (calibrate_runs)
                g = group if per_run[m] is model else f"{group} {REPLICATE_SUFFIX}"
                models[g] = per_run[m]
                set_forecast(fits[m], per_run[m], [curves[x] for x in members], banded[m], drift[m],
                             source=source, group=g)
                used.append(m)
            others = [m for m in members if m not in tested]
        else:
            others = members
        for m in others:
            state = fits[m].forecast_state()
            seeds = [x for x in members if x != m and has_older_replicate(state, [curves[x]])]
            set_default_forecast(fits[m], level, len(tested) - (m in tested), seeds)
            default_runs.append(m)
    section = None
    if models:
        section = {"models": {g: m.to_dict() for g, m in models.items()},
                   "curves": [curves[r].to_dict() for r in sorted(used)]}
    summary = {"groups": {g: {"runs": sorted(r for r in used if fits[r].forecast.get("group") == g),
                              "weights": m.weights, "beta": m.beta, "omega": m.omega, "move": m.move,
                              "by_activation": m.by_activation, "cross": m.cross,
                              "selection_score": m.selection.get("score"),
                              **{k: m.selection[k] for k in ("margin", "runner_up") if k in m.selection},
                              "calibrated_on": len(m.runs)} for g, m in models.items()},
               "calibrated_runs": sorted(used), "default_runs": sorted(default_runs),
               "note": ("candidate weights chosen on the same runs they band (in-sample); each run's band "
                        "leaves the run out; the nested check is benchmarks/forecast_eval.py")}
    return section, summary


def _too_few_points(sub: pd.DataFrame, form: str) -> str | None:
    """Why a run cannot be fitted at all (fewer checkpoints than parameters), else None."""
    from sparsitylaws.runfit.forms import default_form_for, get_form

    law = get_form(default_form_for(str(sub["activation"].iloc[0])) if form == "auto" else form)
    if len(sub) < law.n_params:
        return f"{len(sub)} point(s), fewer than the {law.n_params} parameters of {law.name}"
    return None


def _fit_one(sub: pd.DataFrame, **kw):
    from sparsitylaws.runfit.run import fit_run

    ordered = sub.sort_values("tokens")
    n = ordered["n_params"].iloc[0] if "n_params" in ordered.columns else None
    n = float(n) if n is not None and pd.notna(n) and float(n) > 0 else None
    return fit_run(ordered["tokens"].to_numpy(float), ordered["activation_ratio"].to_numpy(float),
                   activation=str(ordered["activation"].iloc[0]), n_params=n, default_forecast=False, **kw)


def _architecture(fits: dict, info: dict, rows: pd.DataFrame, limit_from: str, level: float,
                  seed: int) -> tuple[dict | None, str | None]:
    """The architecture section, or None with the reason when the runs cannot support it."""
    from sparsitylaws.architecture import build_architecture_section

    try:
        return build_architecture_section(fits, info, table=rows, limit_from=limit_from,
                                          level=level, seed=seed), None
    except FitInputError as exc:
        return None, f"no architecture laws: {exc}"
