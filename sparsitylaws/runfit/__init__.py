"""Stage 2, fitting one training run: takes one run's (tokens, activation ratio) points and
gives a :class:`RunFit`: the law's parameters with intervals, its prediction and forecast
bands, form comparison and backtests.

* :mod:`.forms`: the law forms (ReLU, SiLU and alternatives), one registry (docs/laws.md);
* :mod:`.pointfit`: the least-squares fit of one form to points; :mod:`.lmbatch`: the
  batched Levenberg-Marquardt solver; :mod:`.prior`: the weakly informative prior;
* :mod:`.warmup`: which points a fit uses (the average over warm-up lengths);
* :mod:`.uncertainty`: bootstrap, profile and delta intervals, curve bands;
* :mod:`.formchoice`: which form a run follows;
* :mod:`.backtest`: information criteria, naive forecasts, rolling-origin backtests;
* :mod:`.forecast`: forecast-error calibration (bands past the data);
* :mod:`.backtesttable`: every run's backtest rows as arrays; :mod:`.selection`: scores and
  chooses a forecast configuration on them;
* :mod:`.calibration`: calibrates forecasts on other runs' backtests, the nested check;
  :mod:`.packaged` builds the packaged forecast model;
* :mod:`.run`: :func:`fit_run`, everything above for one run;
* :mod:`.simulate`: coverage checks on simulated runs; :mod:`.coverage`: binomial
  statements about coverage; :mod:`.settings`: defaults shared by every fitting command.

Imports only :mod:`sparsitylaws.tables` below it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Names re-exported lazily: importing a light submodule (``settings``, ``forms``) must not
#: load the whole fitting stack (scipy, lmfit).
_EXPORTS = {"RUNFIT_VERSION": "sparsitylaws.runfit.run", "RunFit": "sparsitylaws.runfit.run",
            "fit_run": "sparsitylaws.runfit.run"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sparsitylaws.runfit' has no attribute {name!r}")
