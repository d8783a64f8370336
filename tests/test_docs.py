"""The documentation stays in step with the code: every command and option is in docs/cli.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from sparsitylaws.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _commands():
    root = click.Context(cli, info_name="sparsitylaws")
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return list(gen._walk(cli, root, "sparsitylaws"))


def test_every_command_and_option_is_documented():
    text = (DOCS / "cli.md").read_text()
    commands = _commands()
    assert len(commands) >= 10
    for path, cmd in commands:
        assert f"## `{path}`" in text, f"docs/cli.md lacks {path}; run python docs/gen_cli.py"
        section = text.split(f"## `{path}`", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in section, f"docs/cli.md: {path} does not mention {opt}; run python docs/gen_cli.py"


def test_docs_exist_for_each_topic():
    for name in ("schema.md", "lawset.md", "laws.md", "fitting.md", "architecture.md", "planning.md",
                 "measure.md", "plots.md", "cli.md", "example.md"):
        assert (DOCS / name).is_file(), name
