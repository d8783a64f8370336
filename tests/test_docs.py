"""The documentation stays in step with the code: every command and option is in docs/cli.md."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import click
import pytest

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


def _gen(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_md_is_exactly_what_gen_cli_writes():
    assert (DOCS / "cli.md").read_text() == _gen("gen_cli").render(), "docs/cli.md is stale: python docs/gen_cli.py"
    assert "-h, --help" in (DOCS / "cli.md").read_text()  # as the CLI itself accepts


@pytest.mark.parametrize("script", ["gen_cli.py", "gen_example.py"])
def test_generators_help_does_not_rewrite(script, tmp_path):
    target = DOCS / ("cli.md" if script == "gen_cli.py" else "example.md")
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    for flag in ("--help", "-h"):
        res = subprocess.run([sys.executable, str(DOCS / script), flag], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr
        assert "--check" in res.stdout
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before


def test_example_md_is_what_the_tool_prints(sparsinglaw_dir):
    """docs/example.md = its template with every command's real output (python docs/gen_example.py)."""
    text = (DOCS / "example.md").read_text()
    assert text == _gen("gen_example").render(sparsinglaw_dir), "docs/example.md is stale: python docs/gen_example.py"
    assert "smollm2-135m.parquet: ok" in text and "sparsinglaw.parquet: ok" in text  # both shipped tables
