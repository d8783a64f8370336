"""Regenerate docs/cli.md from the commands' own help texts: ``python docs/gen_cli.py``."""

from __future__ import annotations

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
"""


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
    root = click.Context(cli, info_name="sparsitylaws", terminal_width=100, max_content_width=100)
    parts = [HEADER, "```text", cli.get_help(root), "```", ""]
    for path, cmd in _walk(cli, root, "sparsitylaws"):
        ctx = click.Context(cmd, info_name=path, terminal_width=100, max_content_width=100)
        parts += [f"## `{path}`", "", "```text", cmd.get_help(ctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    out = Path(__file__).with_name("cli.md")
    out.write_text(render())
    print(f"wrote {out}")
