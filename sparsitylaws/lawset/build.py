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
    progress: Callable[[str], None] | None = None,
) -> LawSet:
    """Fit every selected run of a validated measurement table into a :class:`LawSet`."""
    sel = select_fit_rows(df, metric, metric_arg, runs=runs)
    rows, metric = sel.rows, sel.metric
    names = sorted(rows["run"].unique())
    fits, info, skipped = {}, {}, {}
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
        if progress:
            progress(run)
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
    forecast_summary = calibrate_forecasts(fits, info) if backtest else None
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
    return LawSet(name=name, runs=fits, run_info=info, architecture=section, provenance=provenance)


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


def calibrate_forecasts(fits: dict, info: dict | None = None) -> dict:
    """Calibrate every run's forecast band leave-one-run-out from the other runs' backtests.

    Each run gets the pooled calibration with itself excluded, and (when ``info`` gives the
    runs' ``n_params``) the other runs of its activation as analogs; a run with fewer than
    ``forecast.MIN_RUNS`` other calibrated runs keeps the packaged default (and its
    ``forecast_default`` warning).  Returns the calibration's provenance for the law set.
    """
    from sparsitylaws.runfit.forecast import ForecastCalibration, analog_spec, default_calibration
    from sparsitylaws.runfit.run import default_forecast_warning, set_forecast

    info = info or {}
    size = {name: (info.get(name) or {}).get("n_params") for name in fits}
    analogs = [a for name, rf in fits.items() if (a := analog_spec(name, rf, size[name])) is not None]

    rows = [{**r, "run": name} for name, rf in fits.items() for r in rf.backtest]
    cal = ForecastCalibration.from_scores(
        rows, source="leave-one-run-out rolling-origin backtests of this law set's runs")
    used = []
    for name, rf in fits.items():
        if cal.usable(exclude=name):
            set_forecast(rf, cal, source=cal.source, n_params=size[name], analogs=analogs)
            used.append(name)
        else:  # the packaged default, with its analogs (the published runs) beside the table's
            n_other = len([r for r in cal.runs if r != name])
            default = default_calibration()
            set_forecast(rf, default, source="packaged default", n_params=size[name],
                         analogs=analogs + [a for a in default.analogs if a["run"] not in fits])
            rf.warnings.append(default_forecast_warning(name, n_other))
    return {**cal.summary(), "calibrated_runs": used,
            "default_runs": sorted(set(fits) - set(used)), "analog_runs": [a["run"] for a in analogs]}


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
    return fit_run(ordered["tokens"].to_numpy(float), ordered["activation_ratio"].to_numpy(float),
                   activation=str(ordered["activation"].iloc[0]), **kw)


def _architecture(fits: dict, info: dict, rows: pd.DataFrame, limit_from: str, level: float,
                  seed: int) -> tuple[dict | None, str | None]:
    """The architecture section, or None with the reason when the runs cannot support it."""
    from sparsitylaws.architecture import build_architecture_section

    try:
        return build_architecture_section(fits, info, table=rows, limit_from=limit_from,
                                          level=level, seed=seed), None
    except FitInputError as exc:
        return None, f"no architecture laws: {exc}"
