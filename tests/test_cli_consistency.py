"""One family of commands: -o rules (suffix, folders, --mkdir), --n-boot, --level, --laws, help texts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.cli import cli
from sparsitylaws.runfit.settings import N_BOOT


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli, info_name="sparsitylaws")
    out = {}
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd, info_name=name, parent=ctx)
            for s in cmd.list_commands(sub):
                out[f"{name} {s}"] = cmd.get_command(sub, s)
        elif cmd is not None:
            out[name] = cmd
    return out


def _param(cmd: click.Command, opt: str) -> click.Parameter | None:
    return next((p for p in cmd.params if opt in getattr(p, "opts", [])), None)


COMMANDS = _commands()
#: -o names a file in these commands (lab's -o is an output folder of many files).
WITH_OUTPUT = sorted(n for n, c in COMMANDS.items() if _param(c, "-o") and n != "lab")

# command line (before -o), a suffix it must reject, a suffix it accepts
BAD_SUFFIX = [
    (["predict", "--width", "1024", "--depth", "16"], "out.xlsx"),
    (["fit"], "laws.txt"),
    (["plot", "--kind", "scale"], "fig.bmp"),
    (["report"], "report.pdf"),
    (["ingest", "csv", "x.csv"], "t.csv"),
    (["ingest", "sparsinglaw-data", "."], "t.json"),
    (["merge", "a.parquet"], "m.csv"),
    (["measure", "ckpt", "--run", "r"], "t.csv"),
]


def test_every_output_command_is_covered():
    assert {" ".join(a[:2]) if a[0] == "ingest" else a[0] for a, _ in BAD_SUFFIX} == set(WITH_OUTPUT)


@pytest.mark.parametrize("args, name", BAD_SUFFIX, ids=[a[0] + ("-" + a[1] if a[0] == "ingest" else "")
                                                        for a, _ in BAD_SUFFIX])
def test_unknown_output_suffix_is_one_clear_error(tmp_path, args, name):
    out = tmp_path / name
    res = run_cli(*args, "-o", out)
    assert_one_line_error(res, "-o", name, "unknown file type")
    assert not out.exists()


@pytest.mark.parametrize("args, name", [(["predict", "--width", "1024", "--depth", "16"], "p.csv"),
                                        (["fit"], "laws.json"), (["plot", "--kind", "scale"], "f.png"),
                                        (["report"], "r.html"), (["merge", "a.parquet"], "m.parquet")])
def test_missing_folder_fails_without_creating_anything(tmp_path, args, name):
    out = tmp_path / "new" / name
    res = run_cli(*args, "-o", out)
    assert_one_line_error(res, "-o", "does not exist", "--mkdir")
    assert not (tmp_path / "new").exists()


def test_mkdir_creates_only_the_files_own_folder(tmp_path):
    out = tmp_path / "new" / "p.csv"
    res = run_cli("predict", "--width", "1024", "--depth", "16", "-o", out, "--mkdir")
    assert res.status == 0, res.stderr
    assert out.is_file() and out.read_text().startswith("width") or "width" in out.read_text().splitlines()[0]
    deep = tmp_path / "a" / "b" / "p.csv"
    res = run_cli("predict", "--width", "1024", "--depth", "16", "-o", deep, "--mkdir")
    assert_one_line_error(res, "-o", "only the file's own folder")
    assert not (tmp_path / "a").exists()


def test_mkdir_never_creates_at_the_filesystem_root():
    target = Path("/sparsitylaws-test-must-not-exist")
    assert not target.exists()
    for args in (["fit"], ["plot", "--kind", "scale"]):
        res = run_cli(*args, "-o", target / "x.json" if args == ["fit"] else target / "x.png", "--mkdir")
        assert_one_line_error(res, "-o", "filesystem root")
        assert not target.exists()
    res = run_cli("fit", "-o", "/nonexistent-sl/dir/x.json")
    assert_one_line_error(res, "does not exist")
    assert not Path("/nonexistent-sl").exists()


def test_output_options_are_one_family():
    for name in WITH_OUTPUT:
        p = _param(COMMANDS[name], "-o")
        assert p.metavar == "PATH" and isinstance(p.type, click.Path), name
        assert "--output" in p.opts and p.help, name
        assert _param(COMMANDS[name], "--mkdir") is not None, name


def test_one_n_boot_default():
    having = {n: _param(c, "--n-boot") for n, c in COMMANDS.items() if _param(c, "--n-boot")}
    assert set(having) >= {"fit", "plot", "report", "crosscheck"}
    for name, p in having.items():
        assert p.default == N_BOOT, (name, p.default)


def test_level_shows_its_range_everywhere():
    for name, c in COMMANDS.items():
        p = _param(c, "--level")
        if p is None:
            continue
        assert isinstance(p.type, click.FloatRange) and p.type.min == 0 and p.type.max == 1, name
        assert p.help, name
        ctx = click.Context(c, info_name=name, help_option_names=["-h", "--help"])  # as the CLI (click caches it)
        assert "0<x<1" in c.get_help(ctx), name


def test_laws_is_an_option_everywhere():
    for name, c in COMMANDS.items():
        assert not any(isinstance(p, click.Argument) and p.name == "laws" for p in c.params), name
    for name in ("predict", "plot", "report"):
        p = _param(COMMANDS[name], "--laws")
        assert p is not None and p.metavar == "PATH", name


def test_every_option_has_a_description():
    for name, c in COMMANDS.items():
        for p in c.params:
            if isinstance(p, click.Option):
                assert p.help, f"{name} {p.opts[0]} has no help text"


def test_whole_numbers_are_typed_as_integers():
    p = _param(COMMANDS["predict"], "--depth")
    assert isinstance(p.type, click.types.IntParamType)
    res = run_cli("predict", "--width", "1024", "--depth", "16.5")
    assert_one_line_error(res, "--depth")


def test_every_token_count_option_accepts_the_same_formats():
    """predict --tokens, fit --min-tokens and measure --tokens-trained share one type, so
    '2e12', '2T' and '2_000_000_000_000' mean the same everywhere (issue 12 item 6)."""
    import importlib

    from sparsitylaws.cli.params import TokenCount

    options = {"predict": "tokens", "fit": "min_tokens"}
    for cmd, opt in options.items():
        command = getattr(importlib.import_module(f"sparsitylaws.cli.{cmd}"), cmd)
        (param,) = [p for p in command.params if p.name == opt]
        assert isinstance(param.type, TokenCount), (cmd, opt)
        assert {param.type.convert(v, param, None) for v in ("2e12", "2T", "2_000_000_000_000")} == {
            2 * 10 ** 12}
