"""Architecture laws: the limit activation ratio A0 against width/depth and against scale,
and predictions for unbuilt configurations built from them.

One module per concept (docs/architecture.md has the statistics and the reasons):

* :mod:`~sparsitylaws.architecture.widthdepth`: the width/depth hinge
  (:func:`fit_hinge`, :func:`fit_widthdepth`, limits per run);
* :mod:`~sparsitylaws.architecture.scale`: the scale trends of the data-law
  coefficients in log10 N (:func:`fit_scale_trends`);
* :mod:`~sparsitylaws.architecture.section`: the JSON-safe ``architecture`` section of a
  law set (:func:`build_architecture_section`, :func:`check_section`);
* :mod:`~sparsitylaws.architecture.compose`: composing a prediction for configurations
  (:func:`predict_section`), and the nested method choice behind ``auto``
  (:func:`choose_method`, pieces in :mod:`~sparsitylaws.architecture.choice`);
* :mod:`~sparsitylaws.architecture.curves` and :mod:`~sparsitylaws.architecture.scalestep`:
  each scale run's measured curve and the scale-step model of the ``nearest``/``step``
  methods;
* :mod:`~sparsitylaws.architecture.crosscheck`: the cross-scale check
  (:func:`cross_scale_check`, :func:`cross_scale_from_table`);
* :mod:`~sparsitylaws.architecture.runs` and :mod:`~sparsitylaws.architecture.common`:
  the run adapter and shared constants.
"""

from __future__ import annotations

from sparsitylaws.architecture.common import (
    ARCH_FORMAT,
    ARCH_VERSION,
    DEFAULT_METHOD,
    FORM_PARAMS,
    METHODS,
    PAPER_FORM,
    TRANSFORMS,
    _floats,
    _num,
)
from sparsitylaws.architecture.compose import (
    choose_method,
    nearest_fitted_range,
    predict_section,
    scale_step_sigma,
)
from sparsitylaws.architecture.crosscheck import cross_scale_check, cross_scale_from_table
from sparsitylaws.architecture.runs import RunSummary, summarize_run
from sparsitylaws.architecture.scale import ScaleTrend, fit_scale_trends
from sparsitylaws.architecture.section import (
    _ranges,
    assemble_section,
    build_architecture_section,
    check_section,
)
from sparsitylaws.architecture.widthdepth import (
    HingeFit,
    aicc,
    fit_hinge,
    fit_widthdepth,
    hinge_profile_rss,
    limits_from_final,
    limits_from_fits,
    smooth_hinge,
)

__all__ = [
    "ARCH_FORMAT",
    "ARCH_VERSION",
    "DEFAULT_METHOD",
    "FORM_PARAMS",
    "METHODS",
    "PAPER_FORM",
    "TRANSFORMS",
    "HingeFit",
    "RunSummary",
    "ScaleTrend",
    "_floats",
    "_num",
    "_ranges",
    "aicc",
    "assemble_section",
    "build_architecture_section",
    "check_section",
    "choose_method",
    "cross_scale_check",
    "cross_scale_from_table",
    "fit_hinge",
    "fit_scale_trends",
    "fit_widthdepth",
    "hinge_profile_rss",
    "limits_from_final",
    "limits_from_fits",
    "nearest_fitted_range",
    "predict_section",
    "scale_step_sigma",
    "smooth_hinge",
    "summarize_run",
]
