"""``sparsitylaws fit``: measurement tables -> a law set (JSON) and a readable summary."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from sparsitylaws.cli.options import level_option, n_boot_option, output_option
from sparsitylaws.cli.params import TOKEN_COUNT
from sparsitylaws.errors import SparsityLawsError

DEFAULT_DATA_DIR = Path("measurements")
#: What to do when there is nothing to fit (also in README).
GET_CURVES = ("a law needs training curves (several checkpoints per run): convert the paper's published "
              "ones (git clone https://github.com/Raincleared-Song/SparsingLawData, then 'sparsitylaws ingest "
              "sparsinglaw-data SparsingLawData/data -o measurements/sparsinglaw.parquet') or measure your "
              "checkpoints ('sparsitylaws measure CHECKPOINT... --run NAME -o measurements/NAME.parquet')")


def _fmt(x: float | None) -> str:
    """A number to 4 significant digits; +-inf (an interval reaching an unbounded parameter's
    bound) as "inf"/"-inf"; "n/a" only for a missing value (None, NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _backtest_line(rows: list[dict], level: float = 0.9) -> str:
    """Per cutoff: error at the last held-out point and interval coverage of held-out points
    (marked POOR when implausibly low for the level: :mod:`sparsitylaws.runfit.coverage`)."""
    from sparsitylaws.runfit.coverage import poor_coverage

    parts = []
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS

    for cutoff in sorted({r["cutoff"] for r in rows} & set(REPORTED_CUTOFFS)):
        sub = [r for r in rows if r["cutoff"] == cutoff and r.get("error") is not None]
        if not sub:
            continue
        last = max(sub, key=lambda r: r["tokens_b"])
        covered = sum(bool(r.get("covered")) for r in sub)
        flag = " POOR" if poor_coverage(covered, len(sub), level) else ""
        parts.append(f"{cutoff:.0%}: last {100 * last['error']:+.3f} pp, covered {covered}/{len(sub)}{flag}")
    return "; ".join(parts) if parts else "not run"


def _skill_lines(rows: list[dict], level: float) -> list[str]:
    """Per reported cutoff: the combined forecast's and the naive forecasts' error at the last
    point, band coverage of the later points and mean interval score (lower is better)."""
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS, backtest_skill

    rows = [r for r in rows if r.get("error") is not None and r.get("naive_last_low") is not None]
    if not rows:
        return []
    out = ["  skill vs naive forecasts (last-point error pp; coverage; IS = mean interval score, pp, lower is better):"]
    for e in backtest_skill(rows, level, REPORTED_CUTOFFS):
        parts = []
        for name in ("combined", "last value", "local line", "nearest run"):
            m = e.get(name)
            if m is None:
                continue
            parts.append(f"{name} {100 * m['last_error']:+.3f} cover {m['coverage']:.0%} "
                         f"IS {100 * m['interval_score']:.3f}")
        naive = [n for n in ("last value", "local line", "nearest run") if n in e]
        worse = [n for n in naive if e[n]["interval_score"] < e["combined"]["interval_score"]]
        verdict = "combined beats the naive ones" if not worse else f"combined does NOT beat the {', '.join(worse)}"
        out.append(f"    {e['cutoff']:.0%}: " + "; ".join(parts) + f"  -> {verdict}")
    return out


def _flags(f, i: int) -> str:
    """After a parameter's interval: the limit's profile interval, and WEAKLY IDENTIFIED."""
    from sparsitylaws.runfit.forms import get_form

    name = f.param_names[i]
    out = ""
    if getattr(f, "profile_low", None) is not None and i == get_form(f.form).limit_index():
        out += f"   profile: [{_fmt(f.profile_low)}, {_fmt(f.profile_high)}]"
    weak = any(w.get("code") == "weakly_identified" and w.get("parameter") == name for w in f.warnings)
    return out + ("   WEAKLY IDENTIFIED" if weak else "")


def render_text(lawset) -> str:
    """The readable table printed by ``fit``."""
    lines = []
    for name in lawset.run_names():
        f = lawset.runs[name]
        lines.append(f"{name}  [{f.activation}]  {f.form}:  {f.formula}")
        why = (lawset.run_info.get(name) or {}).get("form_choice")
        if why and not why.startswith("--form"):
            lines.append(f"  form {why}")
        dropped = f"; dropped {len(f.dropped)} warm-up point(s)" if f.dropped else ""
        lines.append(f"  points kept {f.n_points}/{f.n_total}{dropped}  ({f.warmup_rule})")
        lines.append(f"  {'parameter':<10}{'estimate':>12}   {int(round(100 * f.level))}% interval "
                     f"({f.interval_method})")
        for i, p in enumerate(f.param_names):
            lines.append(f"  {p:<10}{_fmt(f.estimate[i]):>12}   [{_fmt(f.boot_low[i])}, {_fmt(f.boot_high[i])}]"
                         f"   delta: [{_fmt(f.delta_low[i])}, {_fmt(f.delta_high[i])}]" + _flags(f, i))
        best = min(f.comparison, key=lambda r: r.get("aicc") or math.inf)["form"] if f.comparison else "-"
        lines.append(f"  RMSE {_fmt(f.rmse)}  AICc {_fmt(f.aicc)}  BIC {_fmt(f.bic)}  best form by AICc: {best}")
        lines.append(f"  backtest {_backtest_line(f.backtest, f.level)}")
        skill = _skill_lines(f.backtest, f.level)
        if " POOR" in lines[-1]:
            lines.append(f"  warning [poor_coverage]: backtest intervals held far fewer than {f.level:.0%} "
                         "of the held-out points (POOR above); the run's intervals may be too narrow")
        lines.extend(skill)
        for w in f.warnings:
            lines.append(f"  warning [{w.get('code')}]: {w.get('message')}")
        lines.append("")
    for run, why in (lawset.provenance.get("skipped_runs") or {}).items():
        lines.append(f"skipped run {run}: {why}")
    for run, why in (lawset.provenance.get("not_for_fitting") or {}).items():
        lines.append(f"left out run {run}: the table marks it not for fitting ({why})")
    fc = lawset.provenance.get("forecast_calibration")
    if fc and "groups" in fc:
        for g, d in fc["groups"].items():
            w = ", ".join(f"{k} {v:.2f}" for k, v in d["weights"].items())
            lines.append(f"forecasts of {g}: {w}, drift beta {d['beta']:g}; calibrated leave-one-run-out "
                         f"on {len(d['runs'])} runs")
        if fc.get("default_runs"):
            lines.append(f"forecasts of {', '.join(fc['default_runs'])}: the packaged default (too few runs)")
    note = lawset.provenance.get("architecture_note")
    if lawset.architecture is not None:
        acts = ", ".join(sorted((lawset.architecture.get("activations") or {}).keys()))
        lines.append(f"architecture laws (scale trends, width/depth where a sweep exists): {acts}")
    elif note:
        lines.append(note)
    lines.extend(f"caveat: {c}" for c in lawset.provenance.get("caveats") or [])
    return "\n".join(lines)


def _progress_printer(quiet: bool):
    """Report each run on an interactive stderr only (logs and pipes stay clean)."""
    stream = sys.stderr
    if quiet or not stream.isatty():
        return None
    return lambda run: click.echo(f"fitting {run} ...", err=True)


@click.command()
@click.argument("tables", nargs=-1, type=click.Path(path_type=Path))
@click.option("--run", "runs", multiple=True, help="Fit only this run (repeatable).")
@click.option("--form", default="auto", show_default=True,
              help="Law form: auto (by activation), logspace_power, convergent_power, power_offset, log, sigmoid, constant.")
@click.option("--metric", default=None, help="Metric rows to fit (default: ppl-p, or the only metric).")
@click.option("--metric-arg", type=float, default=None, help="Metric argument (e.g. p = 1).")
@click.option("--drop-first", type=click.IntRange(min=0), default=None,
              help="Drop the first N checkpoints of each run (overrides the automatic warm-up rule).")
@click.option("--min-tokens", type=TOKEN_COUNT, default=None,
              help="Drop checkpoints below this many raw tokens, e.g. 1e10 or 10B (overrides the automatic rule).")
@click.option("--loss", type=click.Choice(["linear", "soft_l1", "huber"]), default="linear",
              show_default=True, help="Loss of the fit (robust losses down-weight outliers).")
@n_boot_option()
@level_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the bootstrap.")
@click.option("--no-backtest", is_flag=True, help="Skip the backtests (faster).")
@click.option("--no-architecture", is_flag=True, help="Skip the width/depth and scale laws.")
@click.option("--limit-from", type=click.Choice(["fit", "final"]), default="fit", show_default=True,
              help="A0 per run for the width/depth law: from each run's fit, or its final measurement.")
@output_option((".json",), "Law-set JSON file to write", default=Path("laws.json"))
@click.option("--name", default=None, help="Name of the law set (default: the output file's stem).")
@click.option("--json", "as_json", is_flag=True, help="Print the law set as JSON instead of a table.")
def fit(tables, runs, form, metric, metric_arg, drop_first, min_tokens, loss, n_boot, level, seed,
        no_backtest, no_architecture, limit_from, output, name, as_json) -> None:
    """Fit the data laws of measurement TABLES (files or directories; default ./measurements/)."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.runfit.forms import get_form
    from sparsitylaws.tables.io import find_parquet_files, read_table

    if form != "auto":
        get_form(form)  # unknown form -> one-line error before any work
    if min_tokens is not None and min_tokens <= 0:
        raise SparsityLawsError(f"--min-tokens must be > 0, got {min_tokens:g}")
    if not tables:
        if not DEFAULT_DATA_DIR.is_dir() or not any(DEFAULT_DATA_DIR.rglob("*.parquet")):
            raise SparsityLawsError(f"no measurement tables given and ./measurements/ holds none; {GET_CURVES}")
        tables = (DEFAULT_DATA_DIR,)
    files = find_parquet_files(tables)
    df = read_table(files)
    try:
        lawset = fit_table(
            df, runs=list(runs) or None, form=form, metric=metric, metric_arg=metric_arg, loss=loss,
            drop_first=drop_first, min_tokens=min_tokens, n_boot=n_boot, level=level, seed=seed,
            backtest=not no_backtest, architecture=not no_architecture, limit_from=limit_from,
            name=name or output.stem, sources=[str(f) for f in files],
            progress=_progress_printer(as_json),
        )
    except SparsityLawsError as exc:
        if str(exc).startswith("nothing to fit"):
            raise SparsityLawsError(f"{exc}; {GET_CURVES}") from None
        raise
    lawset.save(output)
    if as_json:
        click.echo(json.dumps(lawset.to_dict(), indent=1))
    else:
        click.echo(render_text(lawset))
        click.echo(f"law set written to {output}")
