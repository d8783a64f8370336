"""Commands that handle measurement tables: ``validate``, ``ingest`` and ``merge``."""

from __future__ import annotations

from pathlib import Path

import click

from sparsitylaws.cli.options import output_option
from sparsitylaws.errors import SparsityLawsError


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check measurement tables (files or directories) against the schema."""
    from sparsitylaws.tables.io import find_parquet_files, read_table

    for path in find_parquet_files(files):
        df = read_table(path)
        runs = df["run"].nunique()
        metrics = ", ".join(sorted(df["metric"].unique()))
        click.echo(f"{path}: ok ({len(df)} rows, {runs} run(s), metrics: {metrics})")


def _write(df, output: Path, append: bool) -> None:
    from sparsitylaws.tables.io import append_rows, write_table

    if append and output.exists():
        merged = append_rows(output, df)
        click.echo(f"{output}: appended {len(df)} rows ({len(merged)} in the table)")
    else:
        write_table(df, output)
        click.echo(f"{output}: wrote {len(df)} rows, {df['run'].nunique()} run(s)")


@click.group()
def ingest() -> None:
    """Convert other formats into a measurement table."""


@ingest.command("sparsinglaw-data")
@click.argument("directory", type=click.Path(path_type=Path))
@output_option((".parquet",), "Table to write", required=True)
@click.option("--append", is_flag=True, help="Add to an existing table instead of replacing it.")
def ingest_sparsinglaw(directory: Path, output: Path, append: bool) -> None:
    """The JSON files published with the Sparsing Law paper (one per run, e.g. 0.1b_relu.json)."""
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    _write(read_sparsinglaw_dir(directory), output, append)


@ingest.command("csv")
@click.argument("file", type=click.Path(path_type=Path))
@output_option((".parquet",), "Table to write", required=True)
@click.option("--map", "mapping", default="",
              help="Our column = your column, comma separated: tokens=step_tokens,activation_ratio=act.")
@click.option("--set", "constants", default="",
              help="Constant columns, comma separated: run=my-run,activation=relu.")
@click.option("--tokens-scale", type=float, default=1.0, show_default=True,
              help="Multiply the tokens column by this (1e9 when it is in billions).")
@click.option("--ratio-percent", is_flag=True, help="The ratio column is in percent.")
@click.option("--append", is_flag=True, help="Add to an existing table instead of replacing it.")
def ingest_csv(file: Path, output: Path, mapping: str, constants: str, tokens_scale: float,
               ratio_percent: bool, append: bool) -> None:
    """Your own numbers from a CSV file."""
    from sparsitylaws.tables.ingest import parse_assignments, read_csv_table

    if tokens_scale <= 0:
        raise SparsityLawsError(f"--tokens-scale must be > 0, got {tokens_scale:g}")
    df = read_csv_table(file, parse_assignments(mapping, "--map"),
                        parse_assignments(constants, "--set"), tokens_scale, ratio_percent)
    for note in df.attrs.get("warnings", []):
        click.echo(f"warning: {note}", err=True)
    _write(df, output, append)


@click.command()
@click.argument("tables", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option((".parquet",), "Merged table to write", required=True)
def merge(tables: tuple[Path, ...], output: Path) -> None:
    """Merge tables (e.g. the shards of a measurement job); later files win on equal keys.

    Shards must agree: same settings per run and metric, same evaluation tokens, one joint
    CETT per run; otherwise nothing is written."""
    from sparsitylaws.tables.io import (
        _read_one,
        check_shards,
        find_parquet_files,
        merge_frames,
        write_table,
    )

    parts = [(str(path), _read_one(path)) for path in find_parquet_files(tables)]
    check_shards(parts)
    merged = None
    for _, df in parts:
        merged = merge_frames(merged, df)
    write_table(merged, output)
    click.echo(f"{output}: {len(merged)} rows from {len(parts)} input file(s)")
