"""Rendering blocks: one self-contained HTML file (figures inline as base64 PNG, no
external resources) or Markdown with the PNG files beside it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from sparsitylaws.views.report.blocks import Block

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eee}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.88em;color:#444}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
"""


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchors(blocks: Sequence[Block]) -> dict[int, str]:
    """A unique id for each h2 block (its index -> id): the table of contents' targets."""
    out: dict[int, str] = {}
    for i, b in enumerate(blocks):
        if b.kind == "h2":
            slug = "".join(c if c.isalnum() else "-" for c in b.text.lower()).strip("-")
            slug = "-".join(x for x in slug.split("-") if x) or "section"
            while slug in out.values():
                slug += "-2"
            out[i] = slug
    return out


def _toc_html(blocks: Sequence[Block], anchors: dict[int, str]) -> str:
    items = "".join(f'<li><a href="#{a}">{html.escape(blocks[i].text)}</a></li>' for i, a in anchors.items())
    return f'<nav id="contents"><h2>Contents</h2><ol>{items}</ol></nav>'


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One HTML document; a table of contents after the title block; figures inline as data:
    URIs; no external resources."""
    parts = []
    anchors = _anchors(blocks)
    first_h2 = min(anchors) if anchors else None
    for i, b in enumerate(blocks):
        if i == first_h2:
            parts.append(_toc_html(blocks, anchors))
        if b.kind == "h2":
            parts.append(f'<h2 id="{anchors[i]}">{html.escape(b.text)}</h2>')
        elif b.kind in ("h1", "h3", "p"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            parts.append(_html_table(b.frame))
        elif b.kind == "figure":
            data = base64.b64encode(b.png).decode("ascii")
            parts.append(f'<figure id="fig-{html.escape(b.name)}"><img alt="{html.escape(b.name)} figure" '
                         f'src="data:image/png;base64,{data}"><figcaption>{html.escape(b.text)}</figcaption></figure>')
        elif b.kind == "pre":
            parts.append(f"<pre>{html.escape(b.text)}</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], image_dir: str) -> tuple[str, dict[str, bytes]]:
    """Markdown text and the PNG files it links to (relative names under ``image_dir``)."""
    parts, files = [], {}
    anchors = _anchors(blocks)
    first_h2 = min(anchors) if anchors else None
    for i, b in enumerate(blocks):
        if i == first_h2:
            parts.append("**Contents**\n\n" + "\n".join(
                f"{n}. [{blocks[j].text}](#{a})" for n, (j, a) in enumerate(anchors.items(), 1)))
        if b.kind in ("h1", "h2", "h3"):
            anchor = f'<a id="{anchors[i]}"></a>\n\n' if i in anchors else ""
            parts.append(anchor + "#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "list":
            parts.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table":
            df = b.frame
            lines = ["| " + " | ".join(_md_cell(c) for c in df.columns) + " |",
                     "|" + "---|" * len(df.columns)]
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
            parts.append("\n".join(lines))
        elif b.kind == "figure":
            rel = f"{image_dir}/{b.name}.png"
            files[rel] = b.png
            parts.append(f"![{b.name}]({rel})\n\n*{b.text}*")
        elif b.kind == "pre":
            parts.append(f"```\n{b.text}\n```")
    return "\n\n".join(parts) + "\n", files
