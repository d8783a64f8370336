"""What the architecture laws need from one fitted run: :class:`RunSummary`, adapted from a
:class:`~sparsitylaws.runfit.run.RunFit` or a plain dict by :func:`summarize_run`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from sparsitylaws.architecture.common import FORM_PARAMS, _num
from sparsitylaws.errors import FitInputError


@dataclass
class RunSummary:
    """What the architecture laws need from one fitted run (adapter over RunFit or a dict)."""

    name: str
    activation: str
    form: str
    param_names: list[str]
    theta: np.ndarray
    draws: np.ndarray | None  # (B, k) bootstrap draws of the natural parameters
    a0: float
    a0_interval: tuple[float, float] | None
    a0_level: float
    tokens_b: tuple[float, float]
    sigma: float | None  # residual sd of the run's points around its law
    n_params: float | None = None
    width: float | None = None
    depth: float | None = None
    #: the run's measured curve (sparsitylaws.architecture.curves.measured_curve), when known
    curve: dict | None = None

    @property
    def ratio(self) -> float | None:
        if self.width and self.depth:
            return float(self.width) / float(self.depth)
        return None

    @property
    def a0_se(self) -> float | None:
        """Standard error of A0 implied by its interval (normal approximation)."""
        if self.a0_interval is None:
            return None
        z = stats.norm.ppf(0.5 + self.a0_level / 2)
        se = (self.a0_interval[1] - self.a0_interval[0]) / (2 * z)
        return float(se) if se > 0 and math.isfinite(se) else None


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if not isinstance(obj, Mapping) and hasattr(obj, n):
            return getattr(obj, n)
    return default


def summarize_run(name: str, fit: Any, info: Mapping | None = None) -> RunSummary:
    """Adapt a :class:`~sparsitylaws.runfit.run.RunFit` (or a plain dict with the same fields:
    form, params, draws, tokens_b, sigma, activation, a0_interval) to a RunSummary."""
    info = dict(info or {})
    form = _get(fit, "form", "form_name")
    form = getattr(form, "name", form)
    names = list(_get(fit, "param_names", default=None) or FORM_PARAMS.get(str(form), []))
    params = _get(fit, "estimate", "params", "theta", "parameters")
    if isinstance(params, Mapping):
        theta = np.array([float(_get(params[k], "value", "estimate", default=params[k])
                                if isinstance(params[k], Mapping) else params[k]) for k in names])
    else:
        theta = np.asarray(params, float)
    draws = _get(fit, "draws", "boot_draws", "bootstrap_draws")
    if draws is not None and not isinstance(draws, np.ndarray):
        draws = _get(draws, "draws", default=draws)
    draws = None if draws is None else np.asarray(draws, float)
    if draws is not None and (draws.ndim != 2 or draws.shape[1] != len(names) or draws.shape[0] == 0):
        draws = None
    if "A0" not in names:
        raise FitInputError(f"run {name!r}: form {form!r} has no limit A0; refit with the paper form")
    ia0 = names.index("A0")
    a0_int = None
    level = 0.9
    lim = _get(fit, "limit")
    if callable(lim):
        try:
            lim = lim()
        except TypeError:
            lim = None
    if lim is not None:
        lo = _get(lim, "boot_low", "low", "conf_low", "lower", "delta_low")
        hi = _get(lim, "boot_high", "high", "conf_high", "upper", "delta_high")
        level = float(_get(lim, "level", default=0.9))
        if lo is None and isinstance(lim, Sequence) and len(lim) >= 3:
            lo, hi = lim[1], lim[2]
        if lo is not None and hi is not None:
            a0_int = (float(lo), float(hi))
    if a0_int is None:
        given = _get(fit, "a0_interval")
        if given is not None:
            a0_int = (float(given[0]), float(given[1]))
        elif draws is not None:
            a0_int = tuple(float(x) for x in np.quantile(draws[:, ia0], [0.05, 0.95]))
    tok = _get(fit, "token_range_b", "tokens_b")
    if tok is None and _get(fit, "tokens_b_min") is not None:
        tok = (_get(fit, "tokens_b_min"), _get(fit, "tokens_b_max"))
    tok = (float(tok[0]), float(tok[1])) if tok is not None else (float("nan"), float("nan"))
    sigma = _get(fit, "noise_sd", "sigma")
    if sigma is None:
        pf = _get(fit, "point", "point_fit", "fit")
        sigma = _get(pf, "sigma") if pf is not None else None
    act = str(info.get("activation") or _get(fit, "activation", default="") or "").lower()
    return RunSummary(
        name=name, activation=act, form=str(form), param_names=names, theta=theta, draws=draws,
        a0=float(theta[ia0]), a0_interval=a0_int, a0_level=level, tokens_b=tok,
        sigma=None if sigma is None else float(sigma),
        n_params=_num(info.get("n_params")), width=_num(info.get("width")),
        depth=_num(info.get("depth")),
    )
