"""``sparsitylaws fit``: measurement tables -> a law set (JSON) and a readable summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np

from sparsitylaws.cli.options import level_option, n_boot_option, output_option
from sparsitylaws.cli.params import TOKEN_COUNT
from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.lawset.neartie import near_tie_notes, weights_text

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
            pooled = {k: d[k] for k in ("weights", "beta", "margin", "runner_up") if k in d}
            choices = {"(pooled)": pooled, **(d.get("by_activation") or {})}
            for who, ch in choices.items():
                w = weights_text(ch["weights"])
                lam = (d.get("cross") or {}).get(who)
                cross = "" if lam is None else f"; the other activation's backtests weigh {lam:g} in its bands"
                lines.append(f"forecasts of {g} {who}: {w}, drift beta {ch['beta']:g}; calibrated "
                             f"leave-one-run-out on {d.get('calibrated_on', len(d['runs']))} runs; "
                             f"used by {len(d['runs'])}{cross}")
                if ch.get("runner_up"):
                    lines.append("  " + _runner_up_text(ch["margin"], ch["runner_up"]))
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


def _runner_up_text(margin: float, ru: dict) -> str:
    """The next-best configuration of a forecast choice, flagged where it is a near-tie."""
    from sparsitylaws.runfit.selection import NEAR_TIE, SOFTNESS

    text = (f"next best {100 * margin:.2f}% behind in interval score: {weights_text(ru['weights'])}, "
            f"drift beta {ru['beta']:g}")
    stake = ru.get("stake")
    if stake is not None:
        text += f"; their backtest forecasts differ by up to {100 * stake:.2f} points"
    if margin < NEAR_TIE:
        share = " and shares the choice" if margin <= SOFTNESS else ""
        text += (f" (a near-tie{share}: 0.001-point noise in the data can move the choice between the two; "
                 "docs/fitting.md 'Continuity')")
    return text


#: Most lines ``fit`` prints by default; the details are behind ``-v`` and in the report.
MAX_LINES = 80


def _a0_text(lo: float | None, est: float, hi: float | None) -> str:
    def p(x: float | None) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"
    return f"{p(est)} [{p(lo)}, {p(hi)}]"


def _bound_params(f) -> list[str]:
    """Parameters the run's fit left at their bounds (warning ``param_at_bound``)."""
    return sorted({str(w.get("parameter")) for w in f.warnings
                   if w.get("code") == "param_at_bound" and w.get("parameter")})


def headline_lines(lawset) -> list[str]:
    """The laws across runs in a few lines: per activation, A0 at the smallest and largest
    fitted scale (with intervals, flagged at a bound) and the width/depth law."""
    from sparsitylaws.architecture import predict_section
    from sparsitylaws.planning.configs import a0_at_bound

    sec = lawset.architecture
    if sec is None:
        note = lawset.provenance.get("architecture_note")
        return [f"  no laws across runs: {note}" if note else "  no laws across runs (--no-architecture)"]
    lvl = int(round(100 * float((lawset.provenance.get("settings") or {}).get("level", 0.9))))
    out = []
    for act in sorted(sec["activations"]):
        e = sec["activations"][act]
        rng = (e.get("ranges") or {}).get("n_params")
        sc = e["scale"]
        ratio = sc.get("ratio_ref") or float(np.median([r for r in sc.get("ratios") or [] if r] or [50.0]))
        if not rng:
            continue
        n = np.asarray([float(rng[0]), float(rng[1])])
        # A0 and, for the at-bound check, the curve at the runs' largest budget per parameter
        tpp = float(((e.get("ranges") or {}).get("tokens_per_param") or [None, 190.0])[1])
        pr = predict_section(sec, act, n, np.full(2, float(ratio)), tpp * n / 1e9, level=lvl / 100)
        bound = a0_at_bound(pr)
        ends = [f"{_a0_text(pr['a0_low'][i], pr['a0'][i], pr['a0_high'][i])}"
                + (" AT ITS BOUND (not identified; interval widened)" if bound[i] else "") for i in range(2)]
        k = len(sc.get("runs") or [])
        where = (f"at {_count(n[0])} parameters {ends[0]}" if n[0] == n[1] else
                 f"at {_count(n[0])} parameters {ends[0]}, at {_count(n[1])} {ends[1]}")
        out.append(f"  {act}: A0 (limit, {lvl}% interval, {k} run{'s' if k != 1 else ''}) {where}")
        wd = e.get("widthdepth")
        if wd is None:
            out.append(f"  {act}: no width/depth law (no sweep of width/depth at one size)")
        elif wd.get("assumed"):
            out.append(f"  {act}: width/depth law assumed, not fitted (see caveats)")
        elif wd.get("model") == "hinge":
            b = sec.get("bottleneck") or {}
            iv = b.get("interval")
            out.append(f"  {act}: width/depth hinge fitted on {len(wd.get('runs') or [])} runs: bottleneck "
                       f"{float(wd['point']['breakpoint']):.3g}"
                       + (f" [{iv[0]:.3g}, {iv[1]:.3g}]" if iv else "")
                       + f", plateau {100 * float(wd['point']['plateau']):.2f}%")
        else:
            out.append(f"  {act}: width/depth: no breakpoint supported by {len(wd.get('runs') or [])} runs "
                       f"(A0 against width/depth: {wd.get('model')})")
    return out


def forecast_lines(lawset) -> list[str]:
    """The within-run forecasts' backtests in two lines per activation: coverage of later points
    and of last checkpoints at the 30/50/70% cuts with a 90% binomial interval of the rate
    (forecasts, not points, are the unit), and the combined forecast's mean interval score
    beside the naive ones' (each run's band leaves the run out; the weights are in-sample)."""
    from sparsitylaws.runfit.calibration import summarize_runs
    from sparsitylaws.runfit.compare import NAIVE_FORECASTS, paired_text
    from sparsitylaws.runfit.coverage import clopper_pearson

    out = []
    for act in sorted({lawset.runs[n].activation for n in lawset.run_names()}):
        s = summarize_runs(lawset.runs, act)
        c = s.get("combined")
        if not c or not c["n_forecasts"]:
            continue
        lo, hi = clopper_pearson(c["covered_last"], c["n_forecasts"])
        naive = ", ".join(f"{name} {100 * s[k]['interval_score']:.3f}" for k, name in NAIVE_FORECASTS if k in s)
        out.append(f"  {act}: forecasts from 30/50/70% of each run: {c['covered_points']}/{c['n_points']} later "
                   f"points and {c['covered_last']}/{c['n_forecasts']} last checkpoints in their 90% bands "
                   f"(rate {lo:.2f}-{hi:.2f}, 90% CI)")
        naive = naive or ("naive forecasts unbanded (their bands are calibrated on the activation's "
                          "own runs, more than 3 needed; the packaged default bands the combined one: its "
                          "record out of sample, docs/fitting.md 'A lone run')")
        out.append(f"  {act}: mean interval score (pp) combined {100 * c['interval_score']:.3f}; {naive}")
        paired = paired_text(s)
        if paired:
            out.append(f"  {act}: combined minus naive per run (pp, 90% paired t interval; weights in-sample): {paired}")
    from sparsitylaws.lawset.build import REPLICATE_SUFFIX

    groups = (lawset.provenance.get("forecast_calibration") or {}).get("groups") or {}
    beside = sorted(r for g, d in groups.items() if g.endswith(REPLICATE_SUFFIX) for r in d["runs"])
    if beside:
        out.append(f"  forecast beside an older replicate (borrowing from its seeds too, under its own "
                   f"model; docs/fitting.md 'Replicates'): {', '.join(beside)}")
    out.extend(f"  {note}" for note in near_tie_notes(lawset))
    return out


def _count(n: float) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def _shown_path(path: str) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def warning_counts(lawset) -> list[tuple[str, int]]:
    """(warning code, number of runs carrying it), most frequent first; a poor backtest
    coverage counts as ``poor_coverage``."""
    from collections import Counter


    counts: Counter = Counter()
    for name in lawset.run_names():
        f = lawset.runs[name]
        codes = {str(w.get("code")) for w in f.warnings}
        if " POOR" in _backtest_line(f.backtest, f.level):
            codes.add("poor_coverage")
        counts.update(codes)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _run_line(name: str, f, width: int) -> str:
    lim = f.limit()
    a0 = _a0_text(lim["boot_low"], lim["estimate"], lim["boot_high"]) if lim else "-"
    at = _bound_params(f)
    codes = {str(w.get("code")) for w in f.warnings} - {"param_at_bound"}
    if " POOR" in _backtest_line(f.backtest, f.level):
        codes.add("poor_coverage")
    codes = sorted(codes)
    notes = ([f"AT BOUND: {', '.join(at)}"] if at else []) + codes
    pts = f"{f.n_points}/{f.n_total}"
    return (f"  {name:<{width}} {f.activation:<5} {pts:>6}  {a0:<24} {100 * f.rmse:>7.3f}  "
            + (", ".join(notes) or "-"))


def render_summary(lawset, output: Path | None = None, max_lines: int = MAX_LINES) -> str:
    """What ``fit`` prints by default: a bottom line first (what was fitted, the laws across
    runs, how many runs carry which warning, the caveats), then one line per run, at most
    ``max_lines`` lines in all; :func:`render_text` (``fit -v``) has every detail."""
    names = lawset.run_names()
    prov = lawset.provenance
    settings = prov.get("settings") or {}
    lvl = int(round(100 * float(settings.get("level", 0.9))))
    by_act: dict[str, list[str]] = {}
    for n in names:
        by_act.setdefault(lawset.runs[n].activation, []).append(n)
    srcs = [_shown_path(x) for x in prov.get("sources") or []]
    head = [f"fitted {len(names)} run(s) of {', '.join(srcs) if srcs else 'the table'} "
            f"(metric {prov.get('metric', '?')}, {lvl}% intervals, n_boot {settings.get('n_boot', '?')})"
            + (f" -> {output}" if output else "")]
    for act, runs in sorted(by_act.items()):
        forms = {lawset.runs[r].form for r in runs}
        f0 = lawset.runs[runs[0]]
        head.append(f"  {act}: {len(runs)} run(s), " + (f"{f0.form}: {f0.formula}" if len(forms) == 1
                                                        else "forms " + ", ".join(sorted(forms))))
        whys = {str((lawset.run_info.get(r) or {}).get("form_choice") or "") for r in runs} - {""}
        if len(whys) == 1:  # why this form (by activation, by the data's direction, or --form)
            head.append(f"    form {whys.pop()}")
    head += [f"  skipped run {r}: {why}" for r, why in (prov.get("skipped_runs") or {}).items()]
    head += [f"  left out run {r}: the table marks it not for fitting"
             for r in (prov.get("not_for_fitting") or {})]
    head += ["", "laws across runs:"] + headline_lines(lawset)
    head += forecast_lines(lawset)
    counts = warning_counts(lawset)
    if counts:
        flagged = sum(1 for n in names if lawset.runs[n].warnings)
        head += ["", f"warnings ({flagged} of {len(names)} runs carry some; each is explained by "
                     "'fit -v' and in 'sparsitylaws report'):"]
        head += [f"  {code:<22} {k:>3} run(s)" for code, k in counts]
    cav = prov.get("caveats") or []
    acts = (lawset.architecture or {}).get("activations") or {}
    cav = list(cav) + [c for e in acts.values() for c in list(e.get("caveats") or [])
                       + list((e.get("widthdepth") or {}).get("caveats") or []) if c not in cav]
    if cav:
        head += ["", "caveats:"] + [f"  - {c}" for c in dict.fromkeys(cav)]
    width = max([len("run")] + [len(n) for n in names])
    table = ["", f"runs (A0: the limit with its {lvl}% interval; RMSE in pp; notes: warning codes):",
             f"  {'run':<{width}} {'act':<5} {'points':>6}  {'A0 [' + str(lvl) + '%]':<24} {'RMSE':>7}  notes"]
    rows = [_run_line(n, lawset.runs[n], width) for n in names]
    room = max(5, max_lines - len(head) - len(table) - 2)
    if len(rows) > room:
        rows = rows[:room - 1] + [f"  ... {len(rows) - room + 1} more runs: 'fit -v' lists each with "
                                  "its parameters, backtests and warnings"]
    return "\n".join(head + table + rows)


@click.command()
@click.argument("tables", nargs=-1, type=click.Path(path_type=Path))
@click.option("--run", "runs", multiple=True, help="Fit only this run (repeatable).")
@click.option("--form", default="auto", show_default=True,
              help="Law form: auto (by activation), logspace_power, convergent_power, power_offset, log, sigmoid, constant.")
@click.option("--metric", default=None, help="Metric rows to fit (default: ppl-p, or the only metric).")
@click.option("--metric-arg", type=float, default=None, help="Metric argument (e.g. p = 1).")
@click.option("--drop-first", type=click.IntRange(min=0), default=None,
              help="Drop the first N checkpoints of each run (overrides the automatic warm-up average).")
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
@click.option("-v", "--verbose", is_flag=True,
              help="After the summary, every run's parameters, intervals, backtests and warnings.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def fit(tables, runs, form, metric, metric_arg, drop_first, min_tokens, loss, n_boot, level, seed,
        no_backtest, no_architecture, limit_from, output, name, as_json, verbose, quiet) -> None:
    """Fit the data laws of measurement TABLES (files or directories; default ./measurements/).

    Prints a summary (what was fitted, the laws across runs, the warnings counted, one line
    per run); -v adds every detail.  Progress goes to stderr when the fit takes a while.
    """
    from sparsitylaws.cli.progress import FitProgress
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
    progress = None if quiet else FitProgress()
    try:
        lawset = fit_table(
            df, runs=list(runs) or None, form=form, metric=metric, metric_arg=metric_arg, loss=loss,
            drop_first=drop_first, min_tokens=min_tokens, n_boot=n_boot, level=level, seed=seed,
            backtest=not no_backtest, architecture=not no_architecture, limit_from=limit_from,
            name=name or output.stem, sources=[_shown_path(str(f)) for f in files], progress=progress,
        )
    except SparsityLawsError as exc:
        if str(exc).startswith("nothing to fit"):
            raise SparsityLawsError(f"{exc}; {GET_CURVES}") from None
        raise
    finally:
        if progress is not None:
            progress.close()
    lawset.save(output)
    if as_json:
        click.echo(json.dumps(lawset.to_dict(), indent=1))
        return
    click.echo(render_summary(lawset, output))
    if verbose:
        click.echo("\ndetails per run:\n")
        click.echo(render_text(lawset))
    click.echo(f"\nlaw set written to {output}" + ("" if verbose else
               "; every run's parameters, backtests and warnings: 'sparsitylaws fit -v' or 'sparsitylaws report'"))
