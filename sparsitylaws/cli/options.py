"""Options shared by several commands, so each rule is written once.

* ``-o/--output PATH`` (:func:`output_option`): the file's suffix must be one the command
  writes (an unknown suffix is an error naming the allowed ones, never silently another
  format); the file's folder must exist, or, with ``--mkdir``, that one missing folder is
  created (only the file's own folder, never a chain of folders and never a folder at the
  filesystem root).  Checked while the command line is read, before any work.
* ``--n-boot`` (:func:`n_boot_option`): one default, :data:`N_BOOT`, in every command that
  fits (``fit``, ``plot``, ``report``, ``crosscheck``); the environment variable
  ``SPARSITYLAWS_N_BOOT`` changes it for all of them.
* ``--level`` (:func:`level_option`): an interval level in (0, 1), range shown in the help.
* ``--laws PATH`` (:func:`laws_option`): a law-set JSON, always an option.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from sparsitylaws.runfit.settings import N_BOOT

__all__ = ["MKDIR_KEY", "N_BOOT", "N_BOOT_ENV", "check_output", "ensure_folder", "laws_option", "level_option", "n_boot_option", "output_option", "remember_mkdir"]

MKDIR_KEY = "sparsitylaws.mkdir"


def ensure_folder(path: Path, parent: Path, mkdir: bool, own: str) -> None:
    """The folder rule of every ``-o``: ``parent`` (the folder ``path`` goes in) must exist,
    or with ``--mkdir`` it is created, as ``own`` says, only when its own parent exists and
    is not the filesystem root; errors name ``path`` and ``-o``."""
    if parent.is_dir():
        return
    if not mkdir:
        raise click.BadParameter(
            f"{path}: folder {parent} does not exist (create it, or add --mkdir)", param_hint="'-o'")
    if parent.exists():
        raise click.BadParameter(f"{path}: {parent} is not a folder", param_hint="'-o'")
    grand = parent.parent
    if grand.resolve() == Path(grand.resolve().anchor):
        raise click.BadParameter(
            f"{path}: --mkdir does not create folders at the filesystem root ({parent})",
            param_hint="'-o'")
    if not grand.is_dir():
        raise click.BadParameter(
            f"{path}: --mkdir creates only {own}, and {grand} does not exist either", param_hint="'-o'")
    try:
        parent.mkdir()
    except OSError as exc:
        raise click.BadParameter(f"{path}: cannot create {parent} ({exc.strerror or exc})",
                                 param_hint="'-o'") from None


def remember_mkdir(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Eager ``--mkdir`` callback: remember the flag for the ``-o`` callback that follows."""
    ctx.meta[MKDIR_KEY] = bool(value)
    return value


def check_output(path: Path, suffixes: Sequence[str], mkdir: bool = False) -> Path:
    """Apply the output rule to ``path``; raise :class:`click.BadParameter` naming ``-o``."""
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise click.BadParameter(
            f"{path}: unknown file type {suffix or '(no suffix)'!r}; use {', '.join(suffixes)}",
            param_hint="'-o'")
    if path.is_dir():
        raise click.BadParameter(f"{path}: is a directory", param_hint="'-o'")
    parent = path.parent
    ensure_folder(path, parent, mkdir, "the file's own folder")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"{path}: not writable", param_hint="'-o'")
    return path


def output_option(suffixes: Sequence[str], what: str, *, required: bool = False,
                  default: Path | None = None,
                  check: Callable[[click.Context, Path], Sequence[str]] | None = None
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output PATH`` (checked by :func:`check_output`) plus ``--mkdir``.

    ``check(ctx, path)``, when given, returns the suffixes allowed in context (e.g. by --format).
    """
    suffixes = tuple(s.lower() for s in suffixes)

    def _callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        if value is None or ctx.resilient_parsing:
            return value
        allowed = check(ctx, value) if check else suffixes
        return check_output(Path(value), allowed, ctx.meta.get(MKDIR_KEY, False))

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--mkdir", is_flag=True, is_eager=True, expose_value=False,
                         callback=remember_mkdir,
                         help="Create the output file's missing folder (that one folder only).")(f)
        return click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                            required=required, default=default, show_default=default is not None,
                            callback=_callback,
                            help=f"{what} ({', '.join(suffixes)}); its folder must exist (see --mkdir).")(f)

    return decorate


#: Environment variable that sets ``--n-boot`` for every command that fits (a quicker look,
#: or a test that runs the README's commands as written in less time); the option wins.
N_BOOT_ENV = "SPARSITYLAWS_N_BOOT"


def n_boot_option(help: str = "Bootstrap replicates of each run fit (0: delta method only).") -> Callable:
    """``--n-boot`` with the one default, :data:`N_BOOT` (or :data:`N_BOOT_ENV`)."""
    return click.option("--n-boot", type=click.IntRange(min=0), default=N_BOOT, show_default=True,
                        envvar=N_BOOT_ENV, show_envvar=True, help=help)


def level_option(help: str = "Interval level.") -> Callable:
    """``--level`` in (0, 1), default 0.9, range shown in the help."""
    return click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9,
                        show_default=True, help=help)


def laws_option(help: str = "Law-set JSON (default: the packaged one).") -> Callable:
    """``--laws PATH``: a law-set file."""
    return click.option("--laws", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                        default=None, help=help)
