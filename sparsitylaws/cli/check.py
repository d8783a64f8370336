"""``sparsitylaws crosscheck``: can the scale laws predict a run they have not seen?

Fits the scale trends on the ``--train`` runs only, predicts each ``--test`` run's whole
curve from its parameter count, and reports the error against its measured points and the
coverage of the 90% bands (:func:`sparsitylaws.architecture.cross_scale_from_table`).
"""

from __future__ import annotations

from pathlib import Path

import click

from sparsitylaws.cli.options import level_option, n_boot_option
from sparsitylaws.errors import SparsityLawsError


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SparsityLawsError(f"{option}: give at least one run name")
    return names


@click.command()
@click.argument("tables", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--train", required=True, help="Runs to fit the scale trends on, comma separated.")
@click.option("--test", "test_runs", required=True, help="Runs to predict, comma separated.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["excess", "curve", "coef"]),
              help="Curve-prediction method(s); default: all.")
@n_boot_option()
@level_option("Level of the predicted bands whose coverage is reported.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def crosscheck(tables, train, test_runs, methods, n_boot, level, seed, as_json) -> None:
    """Fit scale laws on --train runs of TABLES, predict --test runs, report error and coverage."""
    from sparsitylaws.architecture import METHODS, cross_scale_from_table
    from sparsitylaws.tables import read_table

    train_runs, held_out = _names(train, "--train"), _names(test_runs, "--test")
    overlap = sorted(set(train_runs) & set(held_out))
    if overlap:
        raise SparsityLawsError(f"--test {overlap[0]}: a held-out run cannot also be a --train run")
    df = read_table(tables)
    known = set(df["run"])
    for option, names in (("--train", train_runs), ("--test", held_out)):
        for name in names:
            if name not in known:
                raise SparsityLawsError(f"{option} {name}: no such run (runs: {', '.join(sorted(known))})")
    res = cross_scale_from_table(df, train=train_runs, test=held_out, methods=list(methods) or METHODS,
                                 n_boot=n_boot, level=level, seed=seed)
    if as_json:
        click.echo(res.to_json(orient="records", indent=1))
        return
    pct = int(round(100 * level))
    click.echo(f"trained on: {', '.join(train_runs)}")
    click.echo(f"{'run':<14}{'method':<8}{'points':>7}{'MAE pp':>9}{'max pp':>9}{'bias pp':>9}"
               f"{f'{pct}% curve':>11}{f'{pct}% point':>11}  A0 predicted [{pct}%] vs fitted")
    for _, r in res.sort_values(["run", "method"]).iterrows():
        click.echo(f"{r['run']:<14}{r['method']:<8}{int(r['n_points']):>7}{100 * r['mae']:>9.2f}"
                   f"{100 * r['max_abs_error']:>9.2f}{100 * r['bias']:>+9.2f}{r['coverage_curve']:>11.2f}"
                   f"{r['coverage_point']:>11.2f}  {100 * r['a0_predicted']:.2f}% "
                   f"[{100 * r['a0_low']:.2f}, {100 * r['a0_high']:.2f}] vs {100 * r['a0_fitted']:.2f}%")
