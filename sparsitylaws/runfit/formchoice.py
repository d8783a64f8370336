"""Which law form ``--form auto`` fits to a run, and why (said in every output).

The paper has two laws: ReLU-like activations fall (``logspace_power``), SiLU-like ones rise
(``convergent_power``).  For any other activation (tanh, a new one, a typo) the paper says
nothing, so the form follows the data's direction: Spearman's rank correlation between
tokens and activation ratio, falling -> ``logspace_power``, rising -> ``convergent_power``.
When the direction is unclear (|rho| < :data:`MIN_RHO`, or fewer than
:data:`MIN_POINTS` checkpoints) there is no safe choice: the user must give ``--form``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.forms import RELU_LIKE

__all__ = ["MIN_POINTS", "MIN_RHO", "SILU_LIKE", "choose_form"]

#: Activations the paper's rising (SiLU) law is about.
SILU_LIKE = frozenset({"silu", "swish", "swiglu"})
MIN_RHO = 0.5
MIN_POINTS = 4
FALLING, RISING = "logspace_power", "convergent_power"


def _norm(activation: str) -> str:
    return str(activation).strip().lower().replace("-", "_")


def choose_form(activation: str, tokens: Sequence[float] | np.ndarray, ratio: Sequence[float] | np.ndarray,
                run: str = "") -> tuple[str, str]:
    """(form, why) for ``--form auto``; FitInputError when the form cannot be chosen safely."""
    act = _norm(activation)
    if act in RELU_LIKE:
        return FALLING, f"auto: {act} is ReLU-like (the paper's falling law)"
    if act in SILU_LIKE:
        return RISING, f"auto: {act} is SiLU-like (the paper's rising law)"
    t, y = np.asarray(tokens, float), np.asarray(ratio, float)
    who = f"run {run!r}: " if run else ""
    if t.size < MIN_POINTS:
        raise FitInputError(f"{who}activation {act!r} is neither ReLU- nor SiLU-like and {t.size} "
                            f"checkpoint(s) cannot show the data's direction; choose a law with --form")
    rho = float(spearmanr(t, y).statistic)
    if not np.isfinite(rho) or abs(rho) < MIN_RHO:
        raise FitInputError(f"{who}activation {act!r} is neither ReLU- nor SiLU-like and the activation "
                            f"ratio has no clear direction over tokens (Spearman rho {rho:.2f}); choose a "
                            "law with --form")
    if rho < 0:
        return FALLING, f"auto: {act} is not an activation the paper studied; the ratio falls (rho {rho:.2f})"
    return RISING, f"auto: {act} is not an activation the paper studied; the ratio rises (rho {rho:.2f})"
