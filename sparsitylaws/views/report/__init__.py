"""One self-contained report of a law set and its data: HTML (figures inline) or Markdown.

:func:`make_report` gathers its inputs (:func:`gather`: fit the given tables, or read a
law set, or fall back to the packaged default law set), builds a list of blocks
(:func:`build_blocks`: headings, paragraphs, tables, figures) and renders them either as
one HTML file with every figure embedded as a base64 PNG (no network, no external CSS or
JavaScript, so it can be mailed or archived as is) or as Markdown with the PNG files in a
folder beside it.

Contents: a data summary; the fitted laws with intervals; the comparison of law forms;
backtests with interval coverage; the architecture laws; predictions for a few standard
configurations; measurements that cannot be fitted (described, with their layer profile);
warnings; and provenance (data hashes, versions, seed).

One module per job; this one only re-exports (``from sparsitylaws.views import report``
then ``report.gather``, ``report.render_html``, ... as before):

* :mod:`.inputs`: :class:`ReportInputs`, :func:`gather` (find, read or fit the law set);
* :mod:`.blocks`: the :class:`Block` element and the small formatters sections share;
* the sections, one module each: :mod:`.summary` (data summary), :mod:`.fits` (data laws,
  comparison of forms), :mod:`.backtests`, :mod:`.architecture` (with the width/depth
  sweep's tests), :mod:`.predictions`, :mod:`.unfitted` (measurements without a law),
  :mod:`.caveats` (warnings), :mod:`.provenance`;
* :mod:`.render`: blocks to HTML or Markdown;
* :mod:`.build`: :func:`build_blocks` (sections in reading order) and :func:`make_report`.
"""

from __future__ import annotations

from sparsitylaws.views.report.architecture import (  # noqa: F401 (re-exported)
    _test_line,
    architecture_blocks,
    widthdepth_evidence_blocks,
)
from sparsitylaws.views.report.backtests import (  # noqa: F401 (re-exported)
    _paired_sentences,
    _skill_cells,
    backtest_blocks,
)
from sparsitylaws.views.report.blocks import (  # noqa: F401 (re-exported)
    FIG_DPI,
    Block,
    _count,
    _fig_block,
    _first,
    _g,
    _interval,
    _level,
    _metric_name,
    _pct,
    _shape,
    _shown,
    _try_figure,
)
from sparsitylaws.views.report.build import (  # noqa: F401 (re-exported)
    build_blocks,
    make_report,
)
from sparsitylaws.views.report.caveats import (  # noqa: F401 (re-exported)
    group_by_run,
    warning_blocks,
)
from sparsitylaws.views.report.fits import (  # noqa: F401 (re-exported)
    MAX_PANELS,
    _runs_shown,
    comparison_blocks,
    fit_blocks,
)
from sparsitylaws.views.report.inputs import (  # noqa: F401 (re-exported)
    DEFAULT_DATA_DIR,
    FOUND_LAWSET,
    ReportInputs,
    _default_tables,
    gather,
    lawset_matches,
)
from sparsitylaws.views.report.predictions import (  # noqa: F401 (re-exported)
    STANDARD_CONFIGS,
    prediction_blocks,
)
from sparsitylaws.views.report.provenance import (  # noqa: F401 (re-exported)
    _file_sha256,
    _version,
    provenance_blocks,
)
from sparsitylaws.views.report.render import (  # noqa: F401 (re-exported)
    CSS,
    _anchors,
    _html_table,
    _md_cell,
    _toc_html,
    render_html,
    render_markdown,
)
from sparsitylaws.views.report.summary import (  # noqa: F401 (re-exported)
    data_summary,
)
from sparsitylaws.views.report.unfitted import (  # noqa: F401 (re-exported)
    measured_vs_predicted,
    unfitted_blocks,
)

__all__ = ["STANDARD_CONFIGS", "ReportInputs", "build_blocks", "gather", "make_report",
           "render_html", "render_markdown"]
