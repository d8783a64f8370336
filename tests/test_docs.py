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
    for name in ("schema.md", "lawset.md", "laws.md", "fitting.md", "fitting-history.md", "architecture.md", "planning.md",
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
    from textcompare import text_differences

    text = (DOCS / "example.md").read_text()
    diff = text_differences(text, _gen("gen_example").render(sparsinglaw_dir))
    assert not diff, f"docs/example.md is stale: python docs/gen_example.py ({'; '.join(diff)})"
    assert "smollm2-135m.parquet: ok" in text and "sparsinglaw.parquet: ok" in text  # both shipped tables


def test_generated_text_is_compared_at_a_stated_tolerance():
    """Last-bit float differences pass; a changed word, integer or digit beyond the last
    printed one does not (tests/textcompare.py)."""
    from textcompare import text_differences

    assert not text_differences("a 0.0006066022907570412 b", "a 0.000606602290757041 b")
    assert not text_differences("0.4b_relu A0 0.0654 [0.05006]", "0.4b_relu A0 0.0655 [0.05006]")
    assert not text_differences("x 1.5e-07 y", "x 1.6e-07 y")
    assert text_differences("A0 0.0654", "A0 0.0657")
    assert text_differences("covered 7/28", "covered 8/28")
    assert text_differences("0.4b_relu", "0.4b_silu")
    assert text_differences("a 1 b", "a 1 c")
    assert text_differences("a 1 b", "a 1 2 b")


def _regenerate():
    spec = importlib.util.spec_from_file_location("regenerate", DOCS.parent / "benchmarks" / "regenerate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_generated_block_has_its_command_in_the_registry():
    """benchmarks/regenerate.py lists each block of the docs with the command that writes it: every
    marker in docs/ is listed under its own file, every listed block exists, and every command's
    script names the block it publishes."""
    import re

    reg = _regenerate().blocks()
    found = {}
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"<!-- begin (\S+) -->", text):
            assert f"<!-- end {name} -->" in text, f"{path.name}: block {name} is not closed"
            found[name] = f"docs/{path.name}"
    assert found == {b: doc for b, (doc, _) in reg.items()}, "benchmarks/regenerate.py and the docs' blocks differ"
    for name, (_doc, cmd) in reg.items():
        script = DOCS.parent / "benchmarks" / cmd[0]
        assert script.is_file(), cmd[0]
        src = script.read_text(encoding="utf-8")
        # lab_findings.py names its blocks after the law sets it finds: NAME-widthdepth
        named = f'"{name}"' in src or (name.endswith("-widthdepth") and '-widthdepth"' in src)
        assert "publish(" in src and named, f"{cmd[0]} does not publish {name}"


def test_regenerate_lists_and_refuses_an_unknown_block(capsys):
    mod = _regenerate()
    assert mod.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "docs/fitting.md: forecast-eval  <-  python benchmarks/forecast_eval.py --write" in out
    assert mod.main(["--check", "--only", "no-such-block"]) == 2
    assert "no block 'no-such-block'" in capsys.readouterr().err
