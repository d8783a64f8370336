"""Generated blocks in the docs: write a benchmark's Markdown between markers, or check that
the docs still hold what the benchmark prints, numbers compared with a tolerance (another
CPU, another library version may move the last digits; text around them must match).

A block is delimited by ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` lines.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _span(text: str, name: str) -> tuple[int, int]:
    begin, end = f"<!-- begin {name} -->\n", f"<!-- end {name} -->"
    i = text.find(begin)
    j = text.find(end, i)
    if i < 0 or j < 0:
        raise SystemExit(f"no block {name!r} (markers '{begin.strip()}' ... '{end}') in the file")
    return i + len(begin), j


def write_block(path: Path, name: str, body: str) -> None:
    """Replace block ``name`` of ``path`` with ``body``."""
    text = path.read_text(encoding="utf-8")
    i, j = _span(text, name)
    path.write_text(text[:i] + body.rstrip("\n") + "\n" + text[j:], encoding="utf-8")


def check_block(path: Path, name: str, body: str, *, rel: float = 0.05, abs_tol: float = 0.02) -> list[str]:
    """Differences between block ``name`` of ``path`` and ``body``: the text with numbers
    masked must be equal, and each number within ``rel`` (relative) or ``abs_tol``."""
    text = path.read_text(encoding="utf-8")
    i, j = _span(text, name)
    have = text[i:j].rstrip("\n")
    want = body.rstrip("\n")
    out = []
    if _NUM.sub("#", have) != _NUM.sub("#", want):
        hl, wl = have.splitlines(), want.splitlines()
        for a, b in zip(hl, wl, strict=False):
            if _NUM.sub("#", a) != _NUM.sub("#", b):
                out.append(f"{name}: text differs:\n  docs: {a}\n  now:  {b}")
                break
        if len(hl) != len(wl):
            out.append(f"{name}: {len(hl)} lines in the docs, {len(wl)} now")
        return out
    for a, b in zip(_NUM.findall(have), _NUM.findall(want), strict=True):
        x, y = float(a), float(b)
        if abs(x - y) > max(abs_tol, rel * max(abs(x), abs(y))):
            out.append(f"{name}: {a} in the docs, {b} now")
    return out


def publish(path: Path, blocks: Mapping[str, str], *, write: bool, check: bool, **tol: float) -> int:
    """A benchmark's ``--write``/``--check``: write each block into ``path``, or compare it
    (``tol`` as :func:`check_block`), differences on stderr; the exit status (1 if any)."""
    problems: list[str] = []
    for name, body in blocks.items():
        if write:
            write_block(path, name, body)
        if check:
            problems += check_block(path, name, body, **tol)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0
