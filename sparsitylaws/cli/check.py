"""``sparsitylaws crosscheck``: can the scale laws predict a run they have not seen?

Fits the scale trends on the ``--train`` runs only, predicts each ``--test`` run's whole
curve from its parameter count, and reports the error against its measured points and the
share of them inside the 90% bands (:func:`sparsitylaws.architecture.cross_scale_from_table`).
``--leave-one-scale-out`` predicts every run from the others, next to two naive forecasts
(:func:`sparsitylaws.architecture.crosscheck.leave_one_scale_out`).  Rows come from the one
selection path every command uses (:func:`sparsitylaws.tables.rows.select_fit_rows`).
"""

from __future__ import annotations

from pathlib import Path

import click

from sparsitylaws.architecture.common import METHODS
from sparsitylaws.cli.options import level_option, n_boot_option
from sparsitylaws.errors import SparsityLawsError


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SparsityLawsError(f"{option}: give at least one run name")
    return names


@click.command()
@click.argument("tables", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--train", help="Runs to fit the scale trends on, comma separated.")
@click.option("--test", "test_runs", help="Runs to predict, comma separated.")
@click.option("--leave-one-scale-out", "loso", is_flag=True,
              help="Instead of --train/--test: predict every run from the other runs of its "
                   "activation, next to two naive forecasts (docs/architecture.md).")
@click.option("--metric", default=None,
              help="Metric rows to use (default: ppl-p, or the only metric), as in fit.")
@click.option("--metric-arg", type=float, default=None, help="Metric argument (e.g. p = 1).")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS),
              help="Curve-prediction method(s); default: all.")
@n_boot_option()
@level_option("Level of the predicted bands whose coverage is reported.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def crosscheck(tables, train, test_runs, loso, metric, metric_arg, methods, n_boot, level, seed,
               as_json) -> None:
    """Fit scale laws on --train runs of TABLES, predict --test runs, report error and coverage."""
    from sparsitylaws.architecture import METHODS, cross_scale_from_table
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.tables.rows import select_fit_rows

    if loso and (train or test_runs):
        raise SparsityLawsError("--leave-one-scale-out replaces --train/--test; give one or the other")
    if not loso and not (train and test_runs):
        raise SparsityLawsError("give --train RUNS and --test RUNS, or --leave-one-scale-out")
    df = read_table(tables)
    sel = select_fit_rows(df, metric, metric_arg)
    rows = sel.rows
    known = set(rows["run"])
    if loso:
        _loso(rows, sel.metric, list(methods) or list(METHODS), n_boot, level, seed, as_json)
        return
    train_runs, held_out = _names(train, "--train"), _names(test_runs, "--test")
    overlap = sorted(set(train_runs) & set(held_out))
    if overlap:
        raise SparsityLawsError(f"--test {overlap[0]}: a held-out run cannot also be a --train run")
    for option, names in (("--train", train_runs), ("--test", held_out)):
        for name in names:
            if name in sel.excluded:
                raise SparsityLawsError(f"{option} {name}: the table marks this run not for fitting "
                                        f"({sel.excluded[name]})")
            if name not in known:
                raise SparsityLawsError(f"{option} {name}: no such run with {sel.metric} rows "
                                        f"(runs: {', '.join(sorted(known))})")
    res = cross_scale_from_table(rows, train=train_runs, test=held_out,
                                 methods=list(methods) or METHODS, n_boot=n_boot, level=level, seed=seed)
    if as_json:
        click.echo(res.to_json(orient="records", indent=1))
        return
    click.echo(f"metric: {sel.metric}; trained on: {', '.join(train_runs)}")
    for line in table_lines(res, level):
        click.echo(line)
    warns = sorted({w for ws in res["warnings"] for w in str(ws).split("; ") if w})
    if warns:
        click.echo("\nwarnings:")
        for w in warns:
            click.echo(f"  {w}")
    for act, g in res.groupby("activation"):
        k = len(str(g["train_runs"].iloc[0]).split(","))
        if k < 3:
            click.echo(f"  {act}: only {k} training run{'s' if k > 1 else ''}: "
                       f"{'no trend can be fitted' if k == 1 else 'no between-scale scatter can be estimated'}, "
                       "so the bands cannot be trusted")


def table_lines(res, level: float) -> list[str]:
    """The --train/--test result as aligned text: columns as wide as their longest entry (a
    run name never runs into the method), A0 and its interval in %."""
    pct = int(round(100 * level))
    wr = max([len("run")] + [len(str(r)) for r in res["run"]]) + 2
    wm = max([len("method")] + [len(str(m)) for m in res["method"]]) + 2
    out = [f"{'run':<{wr}}{'method':<{wm}}{'points':>7}{'MAE pp':>9}{'max pp':>9}{'bias pp':>9}"
           f"{'in curve band':>15}{'in point band':>15}  A0 predicted [{pct}% interval] vs fitted"]
    for _, r in res.sort_values(["run", "method"]).iterrows():
        out.append(f"{r['run']:<{wr}}{r['method']:<{wm}}{int(r['n_points']):>7}{100 * r['mae']:>9.2f}"
                   f"{100 * r['max_abs_error']:>9.2f}{100 * r['bias']:>+9.2f}{r['coverage_curve']:>15.2f}"
                   f"{r['coverage_point']:>15.2f}  {100 * r['a0_predicted']:.2f}% "
                   f"[{100 * r['a0_low']:.2f}%, {100 * r['a0_high']:.2f}%] vs {100 * r['a0_fitted']:.2f}%")
    out.append(f"'in curve band' / 'in point band': share of the held-out run's measured points "
               f"(0 to 1) inside the {pct}% band of the curve / of a single measured point")
    return out


def _loso(rows, metric: str, methods: list[str], n_boot: int, level: float, seed: int,
          as_json: bool) -> None:
    from sparsitylaws.architecture.crosscheck import loso_from_table, loso_summary

    res = loso_from_table(rows, methods=methods, n_boot=n_boot, level=level, seed=seed)
    if as_json:
        click.echo(res.to_json(orient="records", indent=1))
        return
    pct = int(round(100 * level))
    summ = loso_summary(res)
    click.echo(f"metric: {metric}; leave one scale out (each run predicted from the other runs "
               "of its activation)")
    click.echo(f"{'activation':<11}{'budget':<8}{'method':<15}{'points':>7}{'MAE pp':>9}{'bias pp':>9}"
               f"{'in band':>9}{'width pp':>10}{'int. score pp':>15}")
    for _, r in summ.iterrows():
        click.echo(f"{r['activation']:<11}{r['position']:<8}{r['method']:<15}{int(r['n']):>7}"
                   f"{r['mae_pp']:>9.2f}{r['bias_pp']:>+9.2f}{r['coverage']:>9.2f}{r['width_pp']:>10.2f}"
                   f"{r['interval_score_pp']:>15.2f}")
    click.echo(f"'in band': share (0 to 1) of held-out points inside the {pct}% band for a single "
               "measured point; interval score: width + 2/(1-level) x miss (lower is better). "
               "nearest: the nearest measured scale's curve at the same tokens per parameter (the "
               "baseline); "
               "largest_final: the largest fitted run's last value")
    warns = sorted({w for ws in res["warnings"] for w in str(ws).split("; ") if w})
    if warns:
        click.echo("\nwarnings:")
        for w in warns:
            click.echo(f"  {w}")
