"""Run the CLI in-process the way a user would, capturing exit status and output."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from sparsitylaws.cli import main


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Invoke ``sparsitylaws ARGS...`` through the console-script entry point."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            status = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return CliResult(status, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    """Exit status 2, one line on stderr naming each fragment, no traceback."""
    assert result.status == 2, (result.status, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
