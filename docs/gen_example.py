"""Regenerate docs/example.md by running the commands of docs/example.template.md.

``python docs/gen_example.py [--data DIR] [--check]``

The template is the page's prose with its commands: ``$ sparsitylaws ...`` lines in
``console`` blocks and ``>>>`` lines in ``python`` blocks.  Each command runs in a fresh
workspace (a copy of this repository's ``measurements/`` plus ``SparsingLawData/data``
pointing at the paper's published files, ``--data``, default ``../shared/reference/
sparsinglaw-data``) and its output is written under it.  A trailing ``#| head=N`` keeps the
first N lines (then ``[...]``); ``#| norun`` shows the command without running it.
``--check`` compares instead of writing (exit 1 when docs/example.md is stale).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
TEMPLATE = DOCS / "example.template.md"
OUTPUT = DOCS / "example.md"
DEFAULT_DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
_DIRECTIVE = re.compile(r"\s+#\|\s*(.*)$")


def _split(line: str) -> tuple[str, dict[str, str]]:
    m = _DIRECTIVE.search(line)
    if not m:
        return line, {}
    opts = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in m.group(1).split())
    return line[: m.start()], opts


def _cut(text: str, opts: dict[str, str]) -> list[str]:
    lines = text.rstrip("\n").splitlines()
    n = int(opts.get("head", 0) or 0)
    if n and len(lines) > n:
        lines = lines[:n] + ["[...]"]
    return lines


#: Progress lines (sparsitylaws.cli.progress) depend on the machine's speed: not shown.
_PROGRESS = re.compile(r"^[\w :-]+: \d+/\d+ runs fitted, \d+ s; now .*$\n?", re.M)


def _run_cli(command: str) -> str:
    from sparsitylaws.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), contextlib.suppress(SystemExit):
        main(command.split()[1:])
    return _PROGRESS.sub("", buf.getvalue())


def _run_python(code: str, namespace: dict) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            value = eval(compile(code, "<example>", "eval"), namespace)  # noqa: S307 - our own template
        except SyntaxError:
            exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102
            value = None
        if value is not None:
            print(repr(value))
    return buf.getvalue()


def _relative(text: str, ws: Path) -> str:
    """Paths inside the workspace printed as a user in it would see them (relative)."""
    for prefix in {str(ws.resolve()), str(ws)}:
        text = text.replace(prefix + os.sep, "")
    return text


def _workspace(data: Path) -> Path:
    ws = Path(tempfile.mkdtemp(prefix="sparsitylaws-example-"))
    shutil.copytree(REPO / "measurements", ws / "measurements",
                    ignore=shutil.ignore_patterns("sparsinglaw.parquet"))
    (ws / "SparsingLawData").mkdir()
    (ws / "SparsingLawData" / "data").symlink_to(data.resolve(), target_is_directory=True)
    return ws


def render(data: Path = DEFAULT_DATA) -> str:
    """The page: the template with every command's output under it."""
    import pandas as pd

    if not (data.is_dir() and (any(data.glob("*.json")) or any(data.glob("*.txt")))):
        raise SystemExit(f"gen_example: no published run files in {data} (give --data DIR)")
    ws, old = _workspace(data), Path.cwd()
    out: list[str] = []
    namespace: dict = {}
    os.chdir(ws)
    try:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            block = None
            for line in TEMPLATE.read_text().splitlines():
                if line.startswith("```"):
                    block = None if block else line[3:].strip()
                    out.append(line)
                    continue
                cmd, opts = _split(line)
                if block == "console" and cmd.startswith("$ sparsitylaws "):
                    out.append(cmd)
                    if "norun" not in opts:
                        out += _cut(_relative(_run_cli(cmd[2:]), ws), opts)
                elif block == "python" and cmd.startswith(">>> "):
                    out.append(cmd)
                    if "norun" not in opts:
                        out += _cut(_relative(_run_python(cmd[4:], namespace), ws), opts)
                else:
                    out.append(line)
    finally:
        os.chdir(old)
        shutil.rmtree(ws, ignore_errors=True)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """Write docs/example.md, or with --check only compare; -h/--help prints the usage."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    data, check = DEFAULT_DATA, False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--check":
            check = True
        elif a == "--data" and args:
            data = Path(args.pop(0))
        else:
            print(f"gen_example: unknown argument {a!r}\n\n{__doc__.strip()}", file=sys.stderr)
            return 2
    text = render(data)
    if check:
        same = OUTPUT.is_file() and OUTPUT.read_text() == text
        print(f"{OUTPUT}: {'up to date' if same else 'stale; run python docs/gen_example.py'}")
        return 0 if same else 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
