"""Figures of the laws and the data they were fitted on (matplotlib, no display needed).

One public entry point per kind, each returning a :class:`matplotlib.figure.Figure`
built without pyplot (so no global backend or figure registry is touched; rendering
uses the Agg canvas), plus :func:`make_figure` (kind by name) and :func:`save_figure`::

    curves       activation ratio against tokens, per run (or overlaid by scale, as the
                 paper's Figure 4): measured points (fitted filled, warm-up hollow: weight < 1/2),
                 the fitted curve, its 90% prediction band, backtest predictions
    width-depth  limit A0 against the width/depth ratio: hinge, breakpoint and its
                 interval, plateau, the stable-training band, per-run A0 with intervals
    scale        A0 and the data-law coefficients against parameter count, with intervals
    residuals    measured minus fitted against tokens, per run, with the 90% band
    layers       per-layer activation ratios of one measurement per run (depth profile)

Styles are chosen to survive grayscale printing: runs ordered by scale get colours of
monotonically changing lightness (a truncated viridis), and every series also has its own
marker and line style.  Activation ratios are shown in percent; every axis names its unit.

One module per figure concept (``curves`` also holds residuals, ``widthdepth``, ``scale``,
``layers``), shared pieces in ``common``; this module dispatches by kind and re-exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.views.plots.common import (  # noqa: F401 (re-exported)
    CUT_NOTE,
    DEFAULT_DPI,
    FORMATS,
    LEVEL,
    LINESTYLES,
    MARKERS,
    OVERLAY_MAX_BANDS,
    PCT,
    RATIO_LABEL,
    STYLE,
    TOKEN_UNITS,
    TOKENS_LABEL,
    TOKENS_LOG_LABEL,
    _new_figure,
    _token_axes,
    check_writable,
    format_params,
    lawset_label,
    output_format,
    save_figure,
    series_styles,
    token_unit,
)
from sparsitylaws.views.plots.curves import (  # noqa: F401 (re-exported)
    CurveSource,
    bands_cut,
    curve_sources,
    plot_curves,
    plot_residuals,
)
from sparsitylaws.views.plots.layers import (  # noqa: F401 (re-exported)
    layer_profiles,
    plot_layers,
)
from sparsitylaws.views.plots.scale import (  # noqa: F401 (re-exported)
    plot_scale,
)
from sparsitylaws.views.plots.widthdepth import (  # noqa: F401 (re-exported)
    plot_width_depth,
)

__all__ = [
    "DEFAULT_DPI",
    "FORMATS",
    "KINDS",
    "make_figure",
    "plot_curves",
    "plot_layers",
    "plot_residuals",
    "plot_scale",
    "plot_width_depth",
    "save_figure",
]

KINDS = ("curves", "width-depth", "scale", "residuals", "layers")


# ============================================================================ dispatch and save


def make_figure(kind: str, lawset: Any = None, table: pd.DataFrame | None = None, *,
                runs: Sequence[str] | None = None, log_x: bool = False, overlay: bool = False,
                size: tuple[float, float] | None = None, **kw: Any) -> Figure:
    """Build the figure of ``kind`` (one of :data:`KINDS`); ``size`` in inches."""
    if kind not in KINDS:
        raise SparsityLawsError(f"--kind {kind}: unknown kind (known: {', '.join(KINDS)})")
    if kind == "layers":
        return plot_layers(table, runs=runs, size=size, **kw)
    if lawset is None:
        from sparsitylaws.lawset.fileformat import load_lawset

        lawset = load_lawset()
    fn = {"curves": plot_curves, "residuals": plot_residuals, "width-depth": plot_width_depth,
          "scale": plot_scale}[kind]
    extra = {"log_x": log_x, "overlay": overlay} if kind in ("curves", "residuals") else {}
    return fn(lawset, table, runs=runs, size=size, **extra)
