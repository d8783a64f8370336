"""``sparsitylaws plot`` (one figure) and ``sparsitylaws report`` (HTML or Markdown report)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from sparsitylaws.cli.options import laws_option, n_boot_option, output_option
from sparsitylaws.errors import SparsityLawsError

KIND_HELP = "curves | width-depth | scale | residuals | layers"


def _pixels(size: str | None, width: int | None, height: int | None) -> tuple[int | None, int | None]:
    """(width, height) in pixels from --size WxH or --width/--height (either may be None)."""
    if size is not None:
        if width is not None or height is not None:
            raise SparsityLawsError("--size: give either --size or --width/--height, not both")
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", size)
        if not m:
            raise SparsityLawsError(f"--size {size}: expected WIDTHxHEIGHT in pixels, e.g. 1200x800")
        width, height = int(m.group(1)), int(m.group(2))
        if not (50 <= width <= 20000 and 50 <= height <= 20000):
            raise SparsityLawsError(f"--size {size}: each side must lie between 50 and 20000 pixels")
    for name, v in (("--width", width), ("--height", height)):
        if v is not None and not 50 <= v <= 20000:
            raise SparsityLawsError(f"{name} {v}: must lie between 50 and 20000 pixels")
    return width, height


def apply_size(fig, width: int | None, height: int | None, dpi: int) -> None:
    """Resize ``fig`` to pixels at ``dpi``; a missing side keeps the figure's aspect ratio; a
    size smaller than the figure's own shrinks its text to match (:func:`shrink_text`)."""
    if width is None and height is None:
        return
    w_in, h_in = fig.get_size_inches()
    if width is None:
        width = round(height * w_in / h_in)
    if height is None:
        height = round(width * h_in / w_in)
    fig.set_size_inches(width / dpi, height / dpi)
    from sparsitylaws.views.plots.common import shrink_text

    shrink_text(fig, (w_in, h_in))


def _report_suffixes(ctx: click.Context, path: Path) -> tuple[str, ...]:
    """The -o suffixes allowed by --format (either, when it is not given)."""
    fmt = ctx.params.get("fmt")
    return {"html": (".html",), "md": (".md",)}.get(fmt, (".html", ".md"))


def _read_tables(paths) -> tuple[object, list[Path]]:
    from sparsitylaws.tables.io import find_parquet_files, read_table

    files = find_parquet_files(paths)
    return read_table(files), files


@click.command()
@laws_option("Law-set JSON to draw (default: fit the --data tables here, or the packaged law set).")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="Measurement table(s) (files or directories) whose points to draw (repeatable).")
@click.option("--kind", required=True, help=f"What to draw: {KIND_HELP}.")
@output_option((".png", ".svg", ".pdf"), "Image file to write", required=True)
@click.option("--run", "runs", multiple=True, help="Draw only this run (repeatable).")
@click.option("--log-x", is_flag=True, help="Logarithmic token axis (curves, residuals).")
@click.option("--overlay", is_flag=True, help="One panel per activation, runs overlaid by scale (as the paper's Figure 4).")
@click.option("--metric", default=None, help="layers: only this metric's rows.")
@click.option("--checkpoint", default=None, help="layers: this checkpoint (default: each run's last).")
@click.option("--width", type=int, default=None, help="Figure width in pixels (at --dpi).")
@click.option("--height", type=int, default=None, help="Figure height in pixels (at --dpi).")
@click.option("--size", default=None, help="Figure size WIDTHxHEIGHT in pixels, e.g. 1600x900.")
@click.option("--dpi", type=click.IntRange(30, 600), default=150, show_default=True,
              help="Pixels per inch (PNG resolution; SVG/PDF size is pixels / dpi inches).")
@n_boot_option("Bootstrap replicates when --data is fitted here (no --laws given).")
def plot(laws, data, kind, output, runs, log_x, overlay, metric, checkpoint, width, height, size, dpi,
         n_boot) -> None:
    """Draw a figure of a law set (--laws) and/or measurement tables (--data).

    Without --laws: --data tables are fitted here (as 'fit' would, --n-boot replicates); with
    neither, or when nothing in them can be fitted, the packaged default law set is drawn.

    Kinds: curves (activation ratio vs tokens: measured points, fitted law, 90% band,
    backtests), width-depth (A0 vs width/depth: hinge, breakpoint, plateau, stable band),
    scale (coefficients vs parameter count), residuals (needs --data), layers (per-layer
    ratios of one measurement; needs --data, no law set).
    """
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.views import plots

    if kind not in plots.KINDS:
        raise SparsityLawsError(f"--kind {kind}: unknown kind (known: {', '.join(plots.KINDS)})")
    plots.output_format(output)
    if runs and kind == "scale":
        raise SparsityLawsError(
            f"--run {runs[0]}: the scale figure draws the law set's trends across all runs; "
            "use --kind curves (or residuals, layers) to draw single runs")
    plots.check_writable(output)
    w, h = _pixels(size, width, height)
    table = _read_tables(data)[0] if data else None
    lawset = None
    if kind != "layers":
        if laws is None and data:
            from sparsitylaws.cli.progress import FitProgress
            from sparsitylaws.views.report import gather

            progress = FitProgress(label="plot: fitting --data")
            try:
                inp = gather(data, None, n_boot=n_boot, fitted_by="sparsitylaws plot", progress=progress)
            finally:
                progress.close()
            lawset = inp.lawset
            for note in inp.notes:
                click.echo(f"note: {note}", err=True)
        else:
            lawset = load_lawset(laws)
    extra = {"metric": metric, "checkpoint": checkpoint} if kind == "layers" else {}
    fig = plots.make_figure(kind, lawset, table, runs=list(runs) or None, log_x=log_x,
                            overlay=overlay, **extra)
    apply_size(fig, w, h, dpi)
    plots.save_figure(fig, output, dpi=dpi)
    click.echo(f"{kind} figure written to {output}")


@click.command()
@click.argument("tables", nargs=-1, type=click.Path(path_type=Path))
@laws_option("Law-set JSON to report on, with its own intervals (tables, if given, supply the "
             "measured points).")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default=None, is_eager=True,
              help="html: one self-contained file; md: Markdown with PNG files beside it "
                   "(default: from the -o suffix, else html).")
@output_option((".html", ".md"), "Report file (default: report.html, or report.md with --format md)",
               check=_report_suffixes)
@n_boot_option("Bootstrap replicates when the report fits the tables itself (no --laws).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of that fit.")
@click.option("--title", default="sparsitylaws report", show_default=True, help="Report title.")
@click.option("--refit", is_flag=True,
              help="Fit the tables here even when ./laws.json was fitted on exactly these tables.")
def report(tables, laws, output, fmt, n_boot, seed, title, refit) -> None:
    """Write a report: data summary, fits, form comparison, backtests, predictions, provenance.

    TABLES (files or directories; default ./measurements/ when it holds tables) supply the
    measurements.  The laws are --laws when given; else ./laws.json (what 'sparsitylaws fit'
    writes) when it was fitted on exactly these tables; else the tables are fitted here
    (progress on stderr).  With no tables, the report covers the packaged default law set.
    """
    from sparsitylaws.cli.progress import FitProgress
    from sparsitylaws.views.report import make_report

    if fmt is None:
        fmt = "md" if output is not None and output.suffix.lower() == ".md" else "html"
    output = output or Path("report.md" if fmt == "md" else "report.html")
    progress = FitProgress(label="report: fitting the tables")

    def say(notes: list[str]) -> None:
        for note in notes:
            click.echo(f"note: {note}", err=True)

    try:
        path = make_report(tables=list(tables), laws=laws, output=output, fmt=fmt, n_boot=n_boot,
                           seed=seed, title=title, find=not refit, progress=progress, notes=say)
    finally:
        progress.close()
    click.echo(f"report written to {path}")
