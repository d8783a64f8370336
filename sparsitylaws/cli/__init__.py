"""Command-line interface: one click group, subcommands loaded lazily from sibling modules.

Each subcommand lives in its own module (``cli/data.py``, ``cli/fit.py``, ...) and is
imported only when invoked, so ``sparsitylaws fit`` never imports torch.  Errors from
bad input (:class:`~sparsitylaws.errors.SparsityLawsError` and click's usage errors)
become one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.version import __version__

# command name -> "module:attribute" (module relative to sparsitylaws.cli)
_COMMANDS: dict[str, str] = {
    "validate": "data:validate",
    "ingest": "data:ingest",
    "fit": "fit:fit",
    "predict": "predict:predict",
    "measure": "measure:measure",
    "merge": "data:merge",
    "crosscheck": "check:crosscheck",
    "plot": "plot:plot",
    "report": "plot:report",
    "lab": "lab:lab",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"sparsitylaws.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a subcommand not built yet, or a missing extra
            if exc.name and exc.name.startswith("sparsitylaws.cli"):
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparsitylaws")
def cli() -> None:
    """Measure activation sparsity, fit the Sparsing Law, predict unbuilt models."""


def _fail(message: str, status: int = 2) -> None:
    click.echo(f"sparsitylaws: error: {message}", err=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sparsitylaws`` console script (exit 2 on bad input)."""
    try:
        cli.main(args=argv, prog_name="sparsitylaws", standalone_mode=False)
    except SparsityLawsError as exc:
        _fail(str(exc))
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(exc.format_message() + hint)
    except click.ClickException as exc:  # FileError, BadParameter raised outside parsing
        _fail(exc.format_message())
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; finished rows are kept", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug, not bad input: say so in one line unless debugging
        if os.environ.get("SPARSITYLAWS_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} "
            "(rerun with SPARSITYLAWS_DEBUG=1 for the traceback, and please report it)",
            1,
        )
    else:
        sys.exit(0)
