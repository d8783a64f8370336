"""``sparsitylaws lab``: train small models, measure, fit and report them from one plan."""

from __future__ import annotations

from pathlib import Path

import click

from sparsitylaws.cli.options import MKDIR_KEY, ensure_folder, remember_mkdir
from sparsitylaws.errors import SparsityLawsError

STAGE_CHOICES = ("all", "corpus", "train", "measure", "fit", "report")


def check_output_folder(out: Path, mkdir: bool = False) -> Path:
    """The -o rule of every command, for a folder: an existing folder is used (resumed); a
    new one is created by the run, never at the filesystem root, and only inside an existing
    folder, or (``--mkdir``) inside its one missing parent, which is then created."""
    if out.exists():
        if not out.is_dir():
            raise click.BadParameter(f"{out}: not a folder", param_hint="'-o'")
        return out
    parent = out.parent
    if parent.resolve() == Path(parent.resolve().anchor):
        raise click.BadParameter(f"{out}: lab does not create folders at the filesystem root",
                                 param_hint="'-o'")
    ensure_folder(out, parent, mkdir, "the output folder's own parent")
    return out


def _output_callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None or ctx.resilient_parsing:
        return value
    return check_output_folder(Path(value), ctx.meta.get(MKDIR_KEY, False))


@click.command()
@click.argument("plan")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), metavar="PATH", default=None,
              callback=_output_callback,
              help="Output folder (default: lab-PLAN_NAME/); its parent folder must exist (see --mkdir).")
@click.option("--mkdir", is_flag=True, is_eager=True, expose_value=False, callback=remember_mkdir,
              help="Create the output folder's missing parent folder (that one folder only).")
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGE_CHOICES), default=("all",),
              show_default=True, help="Run only these stages (repeatable; the corpus is always built).")
@click.option("--model", "only", multiple=True,
              help="Train and measure only this model (repeatable; a model trained with several "
                   "seeds: all of them, or NAME-sSEED for one).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Train and measure this many models at once, each in its own process "
                   "(fills a GPU that one small model leaves idle; the results are the same).")
@click.option("--print-plan", is_flag=True, help="Print the plan's TOML and the models' sizes, then stop.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def lab(plan, output, stages, only, workers, print_plan, quiet) -> None:
    """Train, measure, fit and report the models of PLAN (a TOML file or a preset: ci, cpu, gpu).

    Resumable: rerun the same command after an interruption; trained models and measured
    checkpoints are kept.  For several GPUs, nodes or CPU processes, start it with
    'accelerate launch -m sparsitylaws lab PLAN' or 'torchrun --nproc_per_node N -m
    sparsitylaws lab PLAN' (training is data-parallel; the rest runs once).
    """
    import os

    from sparsitylaws.lab.plan import load_plan

    if workers > 1 and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise click.BadParameter("not under torchrun or accelerate launch, whose every process "
                                 "would start its own workers: use one or the other",
                                 param_hint="'--workers'")
    p = load_plan(plan)
    if print_plan:
        click.echo(p.source_text.rstrip())
        click.echo("")
        for m in p.models:
            n = m.estimated_params()
            budget = m.tokens or p.train.tokens_per_param * n
            click.echo(f"# {m.name}: width/depth {m.width_depth_ratio:.3g}, ~{n:,} non-embedding "
                       f"parameters, {budget:,.0f} tokens ({budget / n:.0f} per parameter)")
        return
    if only:
        p.select(only)  # an unknown name: one line naming the known ones
    chosen = ("corpus", "train", "measure", "fit", "report") if "all" in stages else tuple(stages)
    out = output or Path(f"lab-{p.name}")
    if out.exists() and not out.is_dir():
        raise SparsityLawsError(f"--output {out}: not a folder")
    from sparsitylaws.lab.pipeline import run_lab

    paths = run_lab(p, out, stages=chosen, only=only, quiet=quiet, workers=workers, plan_arg=plan,
                    log=lambda msg: click.echo(msg, err=True))
    for key in ("table", "laws", "report"):
        if paths[key].exists():
            click.echo(f"{key}: {paths[key]}")
