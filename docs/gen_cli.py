"""Regenerate docs/cli.md from the commands' own help texts: ``python docs/gen_cli.py``.

``--check`` only compares (exit 1 when docs/cli.md is stale); ``-h``/``--help`` prints this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sparsitylaws.cli import cli

HEADER = """# Command-line reference

Generated from the commands' help texts by `python docs/gen_cli.py`; a test checks that
every command and option appears here.

Every command exits with status 0 on success, 2 on bad input (one line on stderr,
`sparsitylaws: error: ...`, naming the file, column or argument), 1 on an internal error
(rerun with `SPARSITYLAWS_DEBUG=1` for the traceback), 130 when interrupted (finished rows
of a measurement are kept). `python -m sparsitylaws` is the same as `sparsitylaws`.

Rules shared by every command (`sparsitylaws/cli/options.py`, `sparsitylaws/runfit/settings.py`):

- `-o, --output PATH`: the suffix must be one the command writes (listed in its help); any
  other is an error, never another format under that name. The file's folder must exist;
  `--mkdir` creates that one missing folder (not a chain of folders, never at the
  filesystem root). `lab`'s `-o` names an output folder instead.
- `--n-boot`: 1000 bootstrap replicates wherever laws are fitted (`fit`, `plot`, `report`,
  `crosscheck`), so a figure or report fitted on the spot shows the intervals `fit` would
  save; with `--laws`, `plot` and `report` show the law set's own saved intervals.
- `--level`: an interval level strictly between 0 and 1. `--laws PATH`: always an option.
- Rows marked in the table's `not_for_fitting` column (docs/schema.md) are left out of fits
  (`fit`, `crosscheck`, `plot`, `report`) and of the report's comparison with predictions,
  and are named as left out. `--form auto` takes the paper's form for ReLU- and SiLU-like
  activations; for any other activation it follows the data's direction (falling or
  rising, by Spearman's rho) or asks for `--form` when the direction is unclear, and says
  which form it chose.
- Backtest coverage far below the interval level (a binomial lower tail under 5%, e.g.
  0/7 or 3/15 at 90%) is marked POOR in `fit`, the report and the curve titles.
"""


HELP = ["-h", "--help"]  # as the CLI itself (sparsitylaws.cli: context_settings)


def _walk(group: click.Group, ctx: click.Context, prefix: str):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None:
            continue
        path = f"{prefix} {name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd, info_name=name, parent=ctx)
            yield from _walk(cmd, sub, path)


def render() -> str:
    root = click.Context(cli, info_name="sparsitylaws", terminal_width=100, max_content_width=100,
                         help_option_names=HELP)
    parts = [HEADER, "```text", cli.get_help(root), "```", ""]
    for path, cmd in _walk(cli, root, "sparsitylaws"):
        ctx = click.Context(cmd, info_name=path, terminal_width=100, max_content_width=100,
                            help_option_names=HELP)
        parts += [f"## `{path}`", "", "```text", cmd.get_help(ctx), "```", ""]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    """Write docs/cli.md, or with --check only compare; -h/--help prints the usage."""
    out = Path(__file__).with_name("cli.md")
    if any(a in ("-h", "--help") for a in argv) or any(a not in ("--check",) for a in argv):
        print(__doc__.strip())
        return 0 if all(a in ("-h", "--help", "--check") for a in argv) else 2
    text = render()
    if "--check" in argv:
        same = out.is_file() and out.read_text() == text
        print(f"{out}: {'up to date' if same else 'stale; run python docs/gen_cli.py'}")
        return 0 if same else 1
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
