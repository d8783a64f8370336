"""Planning: from a model configuration to its parameter count, regime and predicted sparsity.

``predict(width, depth, ...)`` is vectorized over arrays and returns one row per
(configuration, activation) with the parameter counts, the width/depth ratio and regime,
the predicted limit activation ratio A0 and the activation ratio A(D) at the planned
token count, each with an interval, plus how far the request lies outside what the laws
were fitted on.  docs/planning.md states the parameter-count formula and the caveats.

Parameter count (no biases, norms ignored: 2d per layer, < 0.1%):

    attention per layer = 2 d (h * hd) + 2 d (h_kv * hd)       (= 4 d^2 when h * hd = d, h_kv = h)
    FFN per layer       = (3 if gated else 2) * d * d_f,   d_f = ffn_ratio * d
    non-embedding N     = L * (attention + FFN)                 (= 11.5 d^2 L for the paper's models)
    total               = N + vocab * d * (1 if tied embeddings else 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws import paper
from sparsitylaws.architecture import DEFAULT_METHOD, check_section, predict_section
from sparsitylaws.errors import SparsityLawsError

__all__ = [
    "A0_BOUND_TOL",
    "EXTRAPOLATION_WARN",
    "MAX_PARAMS",
    "MAX_TOKENS",
    "a0_at_bound",
    "caveats",
    "default_tokens_per_param",
    "extrapolation_distance",
    "parameter_counts",
    "predict_configs",
    "range_note",
    "regime",
]

#: Extrapolation distance (log10 units outside the fitted range) above which a row warns:
#: a factor of 2.
EXTRAPOLATION_WARN = math.log10(2.0)

#: Largest non-embedding parameter count a request may name: 1e14, about 50x the largest
#: dense models trained so far.  Beyond it a request is a typo (``--width 1e12``), not a
#: plan, and is refused rather than answered with a warning.
MAX_PARAMS = 1e14
#: Largest token budget a request may name (1e17, thousands of times the largest runs).
MAX_TOKENS = 1e17
#: A predicted limit A0 within this distance of 0 or 1 sits at its bound: the scale trend
#: (in log-odds) carried it to the edge of (0, 1), where the data no longer identify it.
A0_BOUND_TOL = 0.005
#: Text columns of a prediction frame kept as pandas categoricals (docs/planning.md).
CATEGORICAL_COLUMNS = ("activation", "bottleneck_side", "stable_band", "regime", "widthdepth",
                       "method", "lawset")

def _positive(name: str, value: Any, *, integer: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SparsityLawsError(f"argument '{name}' must be numeric, got {value!r}") from None
    if arr.size == 0:
        raise SparsityLawsError(f"argument '{name}' is empty")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr.ravel()[~(np.isfinite(arr.ravel()) & (arr.ravel() > 0))][0]
        raise SparsityLawsError(f"argument '{name}' must be finite and > 0, got {bad:g}")
    if integer and np.any(arr != np.round(arr)):
        bad = arr.ravel()[arr.ravel() != np.round(arr.ravel())][0]
        raise SparsityLawsError(f"argument '{name}' must be a whole number, got {bad:g}")
    return arr


def parameter_counts(
    width: Any,
    depth: Any,
    *,
    ffn_ratio: Any = paper.FFN_RATIO,
    gated: Any = True,
    n_heads: Any = None,
    n_kv_heads: Any = None,
    head_dim: Any = None,
    vocab_size: Any = None,
    tie_embeddings: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(non-embedding, total) parameter counts; formula in the module docstring.

    Without ``n_heads``, attention is 4 d^2 per layer (h * hd = d, as many KV heads as
    query heads, the paper's setting).  ``head_dim`` defaults to d / n_heads.
    """
    d = _positive("width", width, integer=True)
    L = _positive("depth", depth, integer=True)
    fr = _positive("ffn_ratio", ffn_ratio)
    g = np.asarray(gated, dtype=bool)
    if n_heads is None:
        if n_kv_heads is not None or head_dim is not None:
            given = "kv_heads" if n_kv_heads is not None else "head_dim"
            raise SparsityLawsError(f"argument '{given}' needs 'heads' (the number of attention heads)")
        attn = 4.0 * d * d
    else:
        h = _positive("heads", n_heads, integer=True)
        kv = h if n_kv_heads is None else _positive("kv_heads", n_kv_heads, integer=True)
        if np.any(kv > h):
            raise SparsityLawsError("argument 'kv_heads' must not exceed 'heads'")
        if np.any(np.mod(h, kv) != 0):
            bh, bk = np.broadcast_arrays(h, kv)
            i = int(np.flatnonzero(np.mod(bh, bk).ravel() != 0)[0])
            raise SparsityLawsError(
                f"argument 'kv_heads' must divide 'heads' (grouped-query attention), got "
                f"heads {bh.ravel()[i]:g} and kv_heads {bk.ravel()[i]:g}")
        if head_dim is None:
            bd, bh = np.broadcast_arrays(d, h)
            bad = np.mod(bd, bh) != 0
            if np.any(bad):
                i = int(np.flatnonzero(bad.ravel())[0])
                raise SparsityLawsError(
                    f"argument 'heads' must divide 'width' (head dimension = width / heads), got "
                    f"width {bd.ravel()[i]:g} and heads {bh.ravel()[i]:g} "
                    f"(= {bd.ravel()[i] / bh.ravel()[i]:.4g}); give 'head_dim' if heads x head_dim != width")
            hd = d / h
        else:
            hd = _positive("head_dim", head_dim, integer=True)
        attn = 2.0 * d * h * hd + 2.0 * d * kv * hd
    ffn = np.where(g, 3.0, 2.0) * d * (fr * d)
    non_emb = L * (attn + ffn)
    vocab = paper.VOCAB_SIZE if vocab_size is None else _positive("vocab", vocab_size, integer=True)
    total = non_emb + vocab * d * (1.0 if tie_embeddings else 2.0)
    return non_emb, total


def regime(ratio: np.ndarray, bottleneck: float, band: Sequence[float]) -> dict[str, np.ndarray]:
    """Below/above the bottleneck and inside/outside the stable-training band, per ratio."""
    r = np.asarray(ratio, float)
    below = r < bottleneck
    inside = (r >= band[0]) & (r <= band[1])
    side = np.where(below, "below", "above")
    stab = np.where(inside, "inside", "outside")
    text = np.char.add(np.char.add(side.astype(str), f" bottleneck {bottleneck:.3g}; "),
                       np.char.add(stab.astype(str), f" stable band {band[0]:g}-{band[1]:g}"))
    return {"bottleneck_side": side, "stable_band": stab, "regime": text}


#: Relative slack within which a value counts as inside a fitted range: parameter counts
#: from a formula (11.5 d^2 L) and from a configuration table differ by rounding.
RANGE_SLACK = 0.01


def range_note(label: str, value: float, rng: Sequence[float], dist: float, *,
               what: str = "fitted value", unit: str = "") -> str:
    """One wording for a value outside a fitted range, in one number format:
    "tokens 1e+08 is 10x below the smallest fitted budget for this scale (1e+09, ...)".
    Never contains "; " (the separator of a row's warnings)."""
    lo, hi = float(rng[0]), float(rng[1])
    above = value > hi
    end = hi if above else lo
    side = "above the largest" if above else "below the smallest"
    msg = (f"{label} {value:.4g}{unit} is {10 ** dist:.3g}x {side} {what} "
           f"({end:.4g}{unit}, fitted {lo:.4g} to {hi:.4g}{unit})")
    return msg + (", far: treat as a rough extrapolation" if dist > EXTRAPOLATION_WARN else "")


def extrapolation_distance(values: np.ndarray, rng: Sequence[float] | None) -> np.ndarray:
    """Distance outside [lo, hi] in log10 units (0 inside, or within 1% of an end; NaN when
    the range is unknown)."""
    v = np.asarray(values, float)
    if rng is None:
        return np.full(v.shape, np.nan)
    lo, hi = float(rng[0]), float(rng[1])
    with np.errstate(divide="ignore"):
        d = np.maximum(0.0, np.maximum(np.log10(v / hi), np.log10(lo / v)))
    return np.where(d <= np.log10(1.0 + RANGE_SLACK), 0.0, d)


def _lawset(lawset: Any):
    from sparsitylaws.lawset.fileformat import LawSet, load_lawset

    if lawset is None or isinstance(lawset, str | bytes) or hasattr(lawset, "__fspath__"):
        return load_lawset(lawset)
    if isinstance(lawset, LawSet):
        return lawset
    raise SparsityLawsError(f"argument 'lawset' must be a path, a LawSet or None, got {type(lawset).__name__}")


def predict_configs(
    width: Any,
    depth: Any,
    activation: str | Sequence[str] = "all",
    tokens: Any = None,
    ffn_ratio: Any = paper.FFN_RATIO,
    gated: Any = True,
    *,
    n_heads: Any = None,
    n_kv_heads: Any = None,
    head_dim: Any = None,
    vocab_size: Any = None,
    tie_embeddings: bool = True,
    lawset: Any = None,
    level: float = 0.9,
    method: str = DEFAULT_METHOD,
) -> pd.DataFrame:
    """Predicted sparsity of configurations, one row per (configuration, activation).

    ``width``/``depth``/``tokens``/``ffn_ratio``/``gated`` broadcast against each other
    (an error names the arguments whose shapes do not); ``tokens`` defaults to the law set's
    own budget, :func:`default_tokens_per_param` x non-embedding parameters (190, the
    paper's, for the packaged default).  A configuration above :data:`MAX_PARAMS`
    non-embedding parameters is refused.
    ``activation``: ``"all"`` (every activation the law set covers), one name or a list.
    ``lawset``: a path, a :class:`~sparsitylaws.lawset.fileformat.LawSet` or None (packaged default).
    ``method``: how A(D) is carried to a new scale: ``auto`` (default), ``nearest``, ``step``,
    ``curve``, ``excess`` or ``coef`` (see :func:`sparsitylaws.architecture.predict_section`).
    Columns: configuration, ``n_params`` (non-embedding), ``n_params_total``,
    ``width_depth_ratio``, regime columns, ``a0``/``a0_low``/``a0_high`` (limit as D -> inf),
    ``activation_ratio``/``ratio_low``/``ratio_high`` at ``tokens``, ``sparsity``
    (1 - activation_ratio), ``extrap_*`` distances (log10 units outside the fitted range
    for each dimension), ``extrapolation`` (their maximum), ``a0_at_bound`` (A0 sits at
    0% or 100%, its interval widened: :func:`a0_at_bound`), ``warning``, ``lawset``.
    """
    if not 0 < float(level) < 1:
        raise SparsityLawsError(f"argument 'level' must lie in (0, 1), got {level}")
    ls = _lawset(lawset)
    section = check_section(ls.architecture, source=f"law set '{ls.name}'")
    acts_avail = sorted(section["activations"])
    if isinstance(activation, str):
        req = acts_avail if activation.lower() == "all" else [activation.lower()]
    else:
        req = [str(a).lower() for a in activation]
    for a in req:
        if a not in acts_avail:
            raise SparsityLawsError(
                f"unknown activation {a!r} (argument 'activation'); law set '{ls.name}' "
                f"covers: {', '.join(acts_avail)} (or 'all')")
    check_broadcast(width=width, depth=depth, tokens=tokens, ffn_ratio=ffn_ratio, gated=gated,
                    n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, vocab_size=vocab_size)
    n_emb, n_tot = parameter_counts(width, depth, ffn_ratio=ffn_ratio, gated=gated,
                                    n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim,
                                    vocab_size=vocab_size, tie_embeddings=tie_embeddings)
    _check_size(width, depth, n_emb)
    W = np.asarray(width, float)
    Lr = np.asarray(depth, float)
    tpp = default_tokens_per_param(ls)
    tok = tpp * n_emb if tokens is None else _positive("tokens", tokens)
    if np.any(tok > MAX_TOKENS):
        raise SparsityLawsError(f"argument 'tokens' {float(np.max(tok)):.3g} is beyond {MAX_TOKENS:.0e} "
                                "tokens, more than any model is trained on: is it a typo?")
    W, Lr, n_emb, n_tot, tok, fr, gt = np.broadcast_arrays(
        W, Lr, n_emb, n_tot, tok, np.asarray(ffn_ratio, float), np.asarray(gated, bool))
    W, Lr, n_emb, n_tot, tok, fr, gt = (a.ravel() for a in (W, Lr, n_emb, n_tot, tok, fr, gt))
    ratio = W / Lr
    bott = float(section["bottleneck"]["estimate"])
    band = section["stable_band"]["range"]
    reg = regime(ratio, bott, band)
    frames = []
    model = _calibration(ls)
    for act in req:
        entry = section["activations"][act]
        pr = predict_section(section, act, n_emb, ratio, tok / 1e9, level=level, method=method)
        rg = entry.get("ranges") or {}
        tok_rng, tok_what = _token_range(rg, n_emb)
        # the law's value at the largest fitted budget, for the rows past it: the projected move
        # from there widens the band as it widened the model's calibrating forecasts
        # (ForecastModel.move); inside the budget there is no move and no widening
        at_fitted = None
        if model.move and tok_rng is not None:
            at_fitted = pr["ratio"].copy()
            past = tok > tok_rng[:, 1]
            if past.any():
                at_fitted[past] = predict_section(section, act, n_emb[past], ratio[past], tok_rng[past, 1] / 1e9,
                                                  level=level, method=method)["ratio"]
        _forecast_term(pr, entry, tok, tok_rng, level, model, at_fitted)
        at_bound = a0_at_bound(pr)
        dist = {
            "n_params": extrapolation_distance(n_emb, rg.get("n_params")),
            "tokens": _token_distance(tok, tok_rng),
            "ratio": extrapolation_distance(ratio, rg.get("ratio")),
            "width": extrapolation_distance(W, rg.get("width")),
            "depth": extrapolation_distance(Lr, rg.get("depth")),
        }
        alld = np.vstack([np.nan_to_num(v, nan=0.0) for v in dist.values()])
        wd = entry.get("widthdepth")
        wd_kind = "none" if wd is None else ("assumed" if wd.get("assumed") else "fitted")
        values = {"n_params": n_emb, "tokens": tok, "ratio": ratio, "width": W, "depth": Lr}
        msgs = []
        for dim, label, what in _DIM_TEXT:
            if dim == "tokens":
                rng_rows, what = tok_rng, tok_what
            else:
                rng_rows = None if rg.get(dim) is None else np.broadcast_to(
                    np.asarray(rg[dim], float), (W.size, 2))
            if rng_rows is not None:
                msgs.append(_notes(label, values[dim], rng_rows, dist[dim], what))
        msgs.append(_flag(pr["floor"], f"{act}: the law falls below 0% at this budget (its form "
                          "has no meaning this early), A(D) or its interval clamped to 0%"))
        msgs.append(_flag(pr["ceiling"], f"{act}: the law exceeds 100% at this budget (its form "
                          "has no meaning this early), A(D) or its interval clamped to 100%"))
        msgs.append(_flag(pr["wd_clamped"], f"{act}: the width/depth law leaves (0, 1) at this "
                          "width/depth, its effect on A0 is held at the edge"))
        if wd is None:
            msgs.append(_flag(dist["ratio"] > 0,
                              f"no width/depth law for {act}: A0 assumes the fitted runs' ratio"))
        elif wd_kind == "assumed":
            msgs.append(_flag(dist["ratio"] > 0, f"{act}: A0's width/depth effect is assumed, "
                              "not fitted (no measured sweep, see caveats)"))
        msgs.append(_bound_notes(act, pr, at_bound))
        warn = _join(msgs, W.size)
        if wd is None:
            reg_side = np.full(W.size, "n/a", dtype=object)
            reg_band = np.full(W.size, "n/a", dtype=object)
            reg_text = np.full(W.size, f"no width/depth law for {act}", dtype=object)
        elif wd_kind == "fitted" and wd.get("model") != "hinge":
            # the fitted law has no breakpoint: no side of a bottleneck to be on
            reg_side = np.full(W.size, "n/a", dtype=object)
            reg_band = reg["stable_band"]
            reg_text = np.char.add("no bottleneck (no breakpoint supported); ",
                                   np.char.add(reg["stable_band"].astype(str),
                                               f" stable band {band[0]:g}-{band[1]:g}"))
        else:
            reg_side, reg_band, reg_text = reg["bottleneck_side"], reg["stable_band"], reg["regime"]
        frames.append(pd.DataFrame({
            "width": W.astype(np.int64), "depth": Lr.astype(np.int64), "activation": _const(act, W.size),
            "ffn_ratio": fr, "gated": gt, "n_params": n_emb, "n_params_total": n_tot,
            "width_depth_ratio": ratio, "tokens": tok, "tokens_per_param": tok / n_emb,
            "bottleneck_side": pd.Categorical(reg_side), "stable_band": pd.Categorical(reg_band),
            "regime": pd.Categorical(reg_text), "widthdepth": _const(wd_kind, W.size),
            "a0": pr["a0"], "a0_low": pr["a0_low"], "a0_high": pr["a0_high"],
            "activation_ratio": pr["ratio"], "ratio_low": pr["ratio_low"],
            "ratio_high": pr["ratio_high"], "sparsity": 1.0 - pr["ratio"], "level": level,
            **{f"extrap_{k}": v for k, v in dist.items()},
            "extrapolation": alld.max(axis=0), "warning": pd.Series(warn, dtype=object),
            "clamped": pr["floor"] | pr["ceiling"], "a0_at_bound": at_bound,
            "method": _const(pr.get("method", method), W.size), "lawset": _const(ls.name, W.size),
        }))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for col in CATEGORICAL_COLUMNS:  # concat of differing categories gives object columns
        if not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype("category")
    out.attrs["caveats"] = caveats(ls, req)
    return out


def check_broadcast(**arrays: Any) -> tuple[int, ...]:
    """The common shape of the array arguments (None skipped); an error naming each
    argument's shape when they do not broadcast together."""
    shapes = {k: np.shape(v) for k, v in arrays.items() if v is not None}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"'{k}' {'a scalar' if not s else 'shape ' + str(s)}" for k, s in shapes.items()
                           if s)
        raise SparsityLawsError(
            f"arguments do not broadcast together: {listed}; give arrays of one length "
            "(or scalars)") from None


def _check_size(width: Any, depth: Any, n_emb: np.ndarray) -> None:
    """Refuse configurations beyond :data:`MAX_PARAMS` non-embedding parameters."""
    big = np.asarray(n_emb) > MAX_PARAMS
    if np.any(big):
        W, L, N = (np.broadcast_to(np.asarray(a, float), np.shape(n_emb)).ravel()
                   for a in (width, depth, n_emb))
        i = int(np.flatnonzero(big.ravel())[0])
        raise SparsityLawsError(
            f"width {W[i]:.4g} and depth {L[i]:.4g} give {N[i]:.3g} non-embedding parameters, beyond "
            f"the {MAX_PARAMS:.0e} this tool plans for (is the width or depth a typo?)")


def default_tokens_per_param(lawset: Any) -> float:
    """Tokens per non-embedding parameter of a default budget: the law set's own recipe.

    That is the most tokens per parameter its runs were trained on (the upper end of the
    fitted ``tokens_per_param`` range, over all activations), so a default request lies
    inside the fitted budgets; the paper's 190 when the law set records no range (and for
    the packaged default, whose range is the paper's budget)."""
    ls = _lawset(lawset)
    acts = ((ls.architecture or {}).get("activations") or {}).values()
    his = [float(r[1]) for e in acts if (r := (e.get("ranges") or {}).get("tokens_per_param"))
           and r[1] is not None and math.isfinite(float(r[1])) and float(r[1]) > 0]
    return max(his) if his else paper.TOKENS_PER_PARAM


def a0_at_bound(pr: dict) -> np.ndarray:
    """Rows whose limit A0 sits at 0% or 100% (within :data:`A0_BOUND_TOL`), and widen their
    A0 interval in place to what the curve guarantees: the scale trend (in log-odds) has run
    to the edge, so the data no longer say where the limit is, only that it lies beyond the
    curve at this budget (a rising law's limit is at least A(D), a falling law's at most):
    [min(A0 low, A(D) low), 100%] at the top, [0%, max(A0 high, A(D) high)] at the bottom."""
    a0 = np.asarray(pr["a0"], float)
    top, bottom = a0 >= 1.0 - A0_BOUND_TOL, a0 <= A0_BOUND_TOL
    pr["a0_low"] = np.where(top, np.minimum(pr["a0_low"], pr["ratio_low"]), pr["a0_low"])
    pr["a0_high"] = np.where(top, 1.0, pr["a0_high"])
    pr["a0_high"] = np.where(bottom, np.maximum(pr["a0_high"], pr["ratio_high"]), pr["a0_high"])
    pr["a0_low"] = np.where(bottom, 0.0, pr["a0_low"])
    return top | bottom


def _bound_notes(act: str, pr: dict, at_bound: np.ndarray) -> np.ndarray:
    out = np.full(at_bound.shape, "", dtype=object)
    for i in np.flatnonzero(at_bound):
        edge = "100%" if pr["a0"][i] > 0.5 else "0%"
        out[i] = (f"{act}: A0 {100 * pr['a0'][i]:.2f}% sits at its bound {edge} (the scale trend runs to the "
                  "edge, so the data do not identify the limit here): its interval is widened to "
                  f"[{100 * pr['a0_low'][i]:.2f}%, {100 * pr['a0_high'][i]:.2f}%], what the curve at this "
                  "budget guarantees")
    return out


def _calibration(ls: Any):
    """The forecast model for configurations: the law set's (the first of its groups that
    borrows from no replicate: a configuration is none of its runs and has no replicate), or
    the packaged default (version 1 and 2 law sets, the default law set)."""
    from sparsitylaws.runfit.calibration import default_forecast
    from sparsitylaws.runfit.forecast import ForecastModel

    models = ((getattr(ls, "forecast", None) or {}).get("models") or {}).values()
    for m in sorted(models, key=lambda m: bool(m.get("same_scale"))):
        return ForecastModel.from_dict(m)
    return default_forecast()[0]


def _forecast_term(pr: dict, entry: dict, tok: np.ndarray, tok_rng: np.ndarray | None,
                   level: float, model: Any, at_fitted: np.ndarray | None = None) -> None:
    """Widen bands beyond the largest fitted budget for this scale by the calibrated forecast
    error of :mod:`sparsitylaws.runfit.forecast` (its quantile of the errors past the data in
    units of S(h) = sqrt(sigma^2 + (kappa h)^2 + (mu m)^2), h = ln(D / D_fitted), m the law's
    move from ``at_fitted``, its value at D_fitted, mu the model's move share), on the side the
    curve still moves toward (ReLU: down, SiLU: up), so every band end stays monotone in D.
    Needs the runs' residual sd; the default law set has none (published coefficients only),
    and then nothing changes.
    """
    sigma = (entry.get("scale") or {}).get("sigma")
    if sigma is None or tok_rng is None or not np.isfinite(float(sigma)):
        return
    from sparsitylaws.runfit.forecast import error_scale

    act = "relu" if entry["scale"]["form"] == "logspace_power" else "silu"
    h = np.maximum(np.log(tok / tok_rng[:, 1]), 0.0)  # the forecast horizon, 0 inside the range
    move = np.abs(pr["ratio"] - at_fitted) if at_fitted is not None else 0.0
    s = error_scale(float(sigma), h, model.kappa_for(act), model.scale_mode, move, model.move) - float(sigma)
    q_lo, q_hi = model.quantiles(float("nan"), None, level, act)
    q = max(abs(q_lo), abs(q_hi))
    extra = np.where(h > 0, q * np.maximum(s, 0.0), 0.0) if np.isfinite(q) else np.zeros_like(h)
    if act == "relu":
        pr["ratio_low"] = np.clip(pr["ratio_low"] - extra, 0.0, 1.0)
    else:
        pr["ratio_high"] = np.clip(pr["ratio_high"] + extra, 0.0, 1.0)


def caveats(lawset: Any, activations: Sequence[str]) -> list[str]:
    """Every caveat of a law set that applies to these activations, in order, no repeats.

    A plain list: the law set's own caveats, then each activation's architecture caveats
    (the width/depth ones included).  Callers may append their own (e.g. a recipe caveat).
    """
    ls = _lawset(lawset)
    out: list[str] = []
    for c in (ls.provenance or {}).get("caveats") or []:
        if c not in out:
            out.append(str(c))
    acts = ((ls.architecture or {}).get("activations") or {})
    for act in activations:
        e = acts.get(act) or {}
        wd = e.get("widthdepth") or {}
        for c in list(e.get("caveats") or []) + list(wd.get("caveats") or []):
            if c not in out:
                out.append(str(c))
    return out


def _notes(label: str, values: np.ndarray, rng_rows: np.ndarray, dist: np.ndarray,
           what: str) -> np.ndarray:
    """Range notes per row (object array, "" inside the range); each distinct
    (value, range) is formatted once, so large grids stay fast."""
    out = np.full(values.shape, "", dtype=object)
    idx = np.flatnonzero(np.nan_to_num(dist, nan=0.0) > 0)
    if idx.size == 0:
        return out
    if np.all(rng_rows[idx] == rng_rows[idx[0]]):  # one range: the note depends on the value only
        uniq, first, inv = np.unique(values[idx], return_index=True, return_inverse=True)
        rows = idx[first]
    else:
        rows, inv = idx, np.arange(idx.size)
    texts = np.array([range_note(label, float(values[i]), rng_rows[i], float(dist[i]), what=what)
                      for i in rows], dtype=object)
    out[idx] = texts[np.ravel(inv)]
    return out


def _const(value: str, n: int) -> pd.Categorical:
    """A column holding one string (categorical: cheap for large grids)."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _flag(mask: np.ndarray, text: str) -> np.ndarray:
    out = np.full(np.shape(mask), "", dtype=object)
    out[np.asarray(mask, bool)] = text
    return out


def _join(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Join per-row messages with "; " (vectorized over object arrays)."""
    if not parts:
        return np.full(n, "", dtype=object)
    return np.array(["; ".join([m for m in row if m]) for row in zip(*parts, strict=True)], dtype=object)


#: Dimension, its label and what its fitted range is called, for range notes.
_DIM_TEXT = (
    ("n_params", "non-embedding params", "fitted scale"),
    ("tokens", "tokens", "fitted budget"),
    ("ratio", "width/depth", "measured width/depth ratio"),
    ("width", "width", "fitted width"),
    ("depth", "depth", "fitted depth"),
)


def _token_range(rg: dict, n_params: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Fitted token range per row: scaled to each row's size when the law set stores
    tokens per parameter (the laws compare runs at equal tokens per parameter)."""
    tpp = rg.get("tokens_per_param")
    if tpp is not None:
        lo, hi = float(tpp[0]), float(tpp[1])
        return np.column_stack([lo * n_params, hi * n_params]), "fitted budget for this scale"
    if rg.get("tokens") is None:
        return None, "fitted budget"
    return np.broadcast_to(np.asarray(rg["tokens"], float), (n_params.size, 2)), "fitted budget"


def _token_distance(tok: np.ndarray, rng: np.ndarray | None) -> np.ndarray:
    if rng is None:
        return np.full(tok.shape, np.nan)
    with np.errstate(divide="ignore"):
        d = np.maximum(0.0, np.maximum(np.log10(tok / rng[:, 1]), np.log10(rng[:, 0] / tok)))
    return np.where(d <= np.log10(1.0 + RANGE_SLACK), 0.0, d)
