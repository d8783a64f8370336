"""The whole report: every section's blocks in reading order, and :func:`make_report`
(gather, build, render, write).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.runfit.settings import N_BOOT
from sparsitylaws.tables.atomic import atomic_write_bytes
from sparsitylaws.views.report.architecture import architecture_blocks, widthdepth_evidence_blocks
from sparsitylaws.views.report.backtests import backtest_blocks
from sparsitylaws.views.report.blocks import Block
from sparsitylaws.views.report.caveats import warning_blocks
from sparsitylaws.views.report.fits import comparison_blocks, fit_blocks
from sparsitylaws.views.report.inputs import ReportInputs, gather
from sparsitylaws.views.report.predictions import prediction_blocks
from sparsitylaws.views.report.provenance import provenance_blocks
from sparsitylaws.views.report.render import render_html, render_markdown
from sparsitylaws.views.report.summary import data_summary
from sparsitylaws.views.report.unfitted import unfitted_blocks


def build_blocks(inp: ReportInputs, title: str = "sparsitylaws report") -> list[Block]:
    """The whole report as blocks, in reading order."""
    ls = inp.lawset
    head = [Block("h1", title),
            Block("p", f"Law set: {ls.name} — {inp.origin}. Fitted runs: {len(ls.runs)}; "
                       f"architecture laws: {', '.join(sorted((ls.architecture or {}).get('activations') or {})) or 'none'}.")]
    head += [Block("p", n) for n in inp.notes]
    return (head + data_summary(inp) + fit_blocks(inp) + comparison_blocks(ls) + backtest_blocks(ls)
            + architecture_blocks(inp) + widthdepth_evidence_blocks(ls) + prediction_blocks(ls)
            + unfitted_blocks(inp)
            + warning_blocks(inp) + provenance_blocks(inp))


def make_report(tables: Sequence[os.PathLike | str] = (), laws: os.PathLike | str | None = None, *,
                output: os.PathLike | str = "report.html", fmt: str = "html", n_boot: int = N_BOOT,
                seed: int = 0, title: str = "sparsitylaws report", find: bool = True,
                progress: Any = None, notes: Any = None) -> Path:
    """Gather (``find``, ``progress``: see :func:`gather`), build and write the report;
    returns the path written.  ``notes(list_of_str)``, when given, receives gather's notes."""
    from sparsitylaws.views.plots import check_writable

    if fmt not in ("html", "md"):
        raise SparsityLawsError(f"--format {fmt}: unknown report format (html or md)")
    output = check_writable(output)
    inp = gather(tables, laws, n_boot=n_boot, seed=seed, find=find, progress=progress)
    if notes is not None:
        notes(list(inp.notes))
    blocks = build_blocks(inp, title)
    try:
        if fmt == "html":
            atomic_write_bytes(output, render_html(blocks, title).encode("utf-8"))
        else:
            img_dir = f"{output.stem}_files"
            text, files = render_markdown(blocks, img_dir)
            (output.parent / img_dir).mkdir(exist_ok=True)
            for rel, data in files.items():
                atomic_write_bytes(output.parent / rel, data)
            atomic_write_bytes(output, text.encode("utf-8"))
    except OSError as exc:
        raise SparsityLawsError(f"-o {output}: cannot write ({exc.strerror or exc})") from None
    return output
