"""Anchoring a law set on measured checkpoints of the user's own training recipe.

A law set describes the recipe it was fitted on (the packaged default: the paper's
MiniCPM-style models on the paper's data).  Another recipe (data, tokenizer, schedule,
quantization, fine-tuning) can sit far from it: SmolLM2-135M measures 69% where the
default predicts 40%.  One or more measured checkpoints of the user's recipe (rows of a
measurement table) estimate a **recipe offset** that shifts every prediction.

The offset acts on the **logit of the activation ratio, over the whole curve**::

    logit A_anchored(N, r, D) = logit A_law(N, r, D) + delta,
    delta = mean_k [logit y_k - logit A_law(anchor k)]

(the same delta shifts the limit A0).  Why logit, on the whole curve (docs/planning.md,
"Anchoring on your own recipe", has the comparison on the published runs):

* every anchored value and interval end stays inside (0, 1), by construction;
* logit is strictly increasing, so a curve keeps its law's direction (ReLU falls to A0,
  SiLU rises to it) and stays on its side of the shifted A0;
* near 0 (ReLU, 5-10%) a logit shift is a relative change, near 0.5 an additive one.

Uncertainty, in logit units.  The offset is not constant over a recipe: within the
paper's recipe the anchored error grows with the distance between anchor and target,
about as sqrt(distance) (docs/planning.md has the numbers).  So the offset is modelled as
a random field whose variance grows linearly with the distance d, in decades of
(non-embedding parameters N, tokens D, width/depth r), d = ||(dN, dr)|| + |dD|:
Var[o(t) - o(a)] = tau^2 d(t, a).
A target's offset and its sd come from ordinary kriging under that variogram (:func:`krige`:
nearer anchors weigh more; one anchor gives its offset with sd sqrt(tau^2 d + noise^2)),
and the law's own band is scaled by min(1, sqrt(d)), d the kriging-weighted distance (the
law's error at an anchor is absorbed by the offset, so there the law's errors cancel):

* one anchor (or anchors at one point): tau cannot be estimated, so a **stated prior**
  is used: :data:`PRIOR_OFFSET_SD` per sqrt(decade) (normal), plus the anchor's own
  measurement noise (:data:`PRIOR_NOISE_SD`, in activation-ratio units);
* anchors at two or more points: tau is **estimated** from them (pooled over pairs:
  REML on the contrasts o_i - o_0), with a t quantile of n - 1 degrees of freedom.

The shifted law band is widened by the offset term in quadrature, separately on each
side (logit scale), then mapped back with the logistic.  At the anchor's own
configuration and budget one anchor is reproduced exactly, with only its measurement
noise left as the interval (several anchors: the law shifted by their mean offset).
Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.planning.configs import EXTRAPOLATION_WARN, predict_configs

__all__ = [
    "PRIOR_NOISE_SD",
    "PRIOR_OFFSET_SD",
    "Anchor",
    "RecipeOffset",
    "anchor_frame",
    "anchored_predict",
    "apply_offsets",
    "as_anchors",
    "combine_offsets",
    "estimate_offsets",
    "distances",
    "expit",
    "krige",
    "logit",
    "read_anchors",
    "shift_band",
]

#: Prior tau (logit units per sqrt(decade)): how far the recipe offset moves, as an sd,
#: one decade of (N, D, width/depth) away from an anchor; used when it cannot be estimated
#: (one anchor).  0.25 logit = a x1.28 relative change of a ReLU-like ratio near 7%, +-6
#: points near 50%.  Within the paper's recipe 0.02-0.1 (by activation and method), in the
#: lab runs 0.3-1.0 (part of it their evaluation noise):
#: benchmarks/recipe_transfer.py; docs/planning.md, "Anchoring on your own recipe".
PRIOR_OFFSET_SD = 0.25
#: Prior sd (activation-ratio units) of one anchor's measurement noise: a PPL-1%
#: measurement on a short evaluation text (e.g. 4 x 256 tokens) is not exact.
PRIOR_NOISE_SD = 0.01
#: Values are clipped to [EPS, 1 - EPS] before the logit so that 0 or 1 stay finite.
EPS = 1e-9
#: Metric a law set is fitted on (CETT-PPL-1%); anchors must be measured with it.
ANCHOR_METRIC = ("ppl-p", 1.0)


def logit(p: Any) -> np.ndarray:
    """logit of p clipped to [EPS, 1 - EPS] (finite everywhere)."""
    return special.logit(np.clip(np.asarray(p, float), EPS, 1.0 - EPS))


def expit(x: Any) -> np.ndarray:
    """Inverse of :func:`logit`, clipped to [0, 1]."""
    return np.clip(special.expit(np.asarray(x, float)), 0.0, 1.0)


@dataclass(frozen=True)
class Anchor:
    """One measured checkpoint of the user's recipe (a measurement-table row)."""

    run: str
    activation: str
    width: int
    depth: int
    ffn_ratio: float
    tokens: float
    activation_ratio: float
    noise_sd: float = PRIOR_NOISE_SD
    source: str = ""

    @property
    def config(self) -> tuple[int, int, float]:
        return (int(self.width), int(self.depth), round(float(self.ffn_ratio), 6))


@dataclass
class RecipeOffset:
    """The recipe offset of one activation, in logit units, and how it spreads with distance."""

    activation: str
    offset: float
    tau: float  # sd of the offset's change per sqrt(decade) of distance (logit)
    noise_var: float  # variance of the offset from the anchors' measurement noise (logit^2)
    dof: float  # math.inf: normal quantiles
    spread: str  # "prior" or "estimated"
    n_anchors: int
    n_points: int
    anchors: list[dict] = field(default_factory=list)
    prior_sd: float = PRIOR_OFFSET_SD

    def quantile(self, level: float) -> float:
        """Two-sided ``level`` quantile multiplier of the offset's distribution."""
        q = 0.5 + level / 2
        return float(stats.norm.ppf(q) if math.isinf(self.dof) else stats.t.ppf(q, self.dof))

    def at(self, n_params: Any, tokens: Any, ratio: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offset, its sd, weighted distance to the anchors) at each target configuration:
        :func:`krige` with this offset's anchors and tau."""
        x = np.column_stack([np.log10(np.asarray(v, float)).ravel()
                             for v in np.broadcast_arrays(n_params, tokens, ratio)])
        an = np.array([[a["log10_n"], a["log10_tokens"], a["log10_ratio"]] for a in self.anchors])
        o = np.array([a["offset"] for a in self.anchors])
        nz = np.array([a["noise_logit"] for a in self.anchors])
        cfg = [0, 2]  # N and width/depth: the weights; tokens only add variance
        return krige(an[:, cfg], o, nz, self.tau, x[:, cfg], an[:, 1], x[:, 1])

    def anchor_caveats(self) -> list[str]:
        """One line per anchor whose law value is itself doubtful: clamped at a bound, or
        at a budget far outside what the law set was fitted on.  The offset read there is
        relative to an extrapolated law and may not carry to other budgets (the lab's SiLU
        runs, anchored at their first checkpoints: 52-69% coverage; docs/planning.md)."""
        out = []
        for a in self.anchors:
            far = float(a.get("law_tokens_outside", 0.0)) > EXTRAPOLATION_WARN
            if a.get("law_clamped") or far:
                why = ("the law is clamped at a bound there" if a.get("law_clamped") else
                       f"{10 ** float(a['law_tokens_outside']):.3g}x outside the token budgets "
                       "the law set was fitted on")
                out.append(f"{self.activation} anchor {a['run']} at {float(a['tokens']):.3g} tokens: "
                           f"{why}; its offset is read against an extrapolated law and may not "
                           "carry to other budgets (a checkpoint inside the fitted range, if you "
                           "have one, anchors more safely)")
        return out

    def describe(self) -> str:
        """One line for outputs: how large, from what, and how its spread was set."""
        how = (f"spread prior tau {self.prior_sd:g} logit per sqrt(decade of N, D, width/depth) "
               f"(stated, not estimated: {'one anchor' if self.n_points == 1 else 'anchors at one point'})"
               if self.spread == "prior" else
               f"spread estimated from {self.n_anchors} anchors: tau {self.tau:.3f} logit per "
               f"sqrt(decade) (t, {self.dof:g} dof)")
        runs = sorted({a["run"] for a in self.anchors})
        return (f"{self.activation}: anchored on {', '.join(runs)} ({self.n_anchors} checkpoint"
                f"{'s' if self.n_anchors != 1 else ''}); recipe offset {self.offset:+.3f} logit"
                + (" (mean; each prediction weights its nearer anchors more)" if self.n_anchors > 1 else "")
                + f"; {how}")

    def to_dict(self) -> dict:
        return {"activation": self.activation, "scale": "logit", "offset": self.offset,
                "tau": self.tau, "noise_sd": math.sqrt(self.noise_var),
                "dof": None if math.isinf(self.dof) else self.dof, "spread": self.spread,
                "prior_tau": self.prior_sd, "n_anchors": self.n_anchors, "n_points": self.n_points,
                "anchors": self.anchors, "description": self.describe()}


# ------------------------------------------------------------------------------ reading


def _parse_spec(spec: str) -> tuple[Path, str | None]:
    """'TABLE[:RUN]' -> (path, run); a colon only splits when the left part is a file."""
    p = Path(spec)
    if p.exists():
        return p, None
    if ":" in spec:
        left, run = spec.rsplit(":", 1)
        if Path(left).exists() and run:
            return Path(left), run
    raise SparsityLawsError(f"{spec}: no such measurement table (argument '--anchor', TABLE[:RUN])")


def _read_any(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        try:
            return pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
            raise SparsityLawsError(f"{path}: cannot read anchor table ({exc})") from None
    from sparsitylaws.tables.io import read_table

    return read_table(path)


def read_anchors(spec: str | Path | pd.DataFrame, *, run: str | None = None,
                 checkpoints: str = "last", noise_sd: float = PRIOR_NOISE_SD) -> list[Anchor]:
    """Anchors from a measurement table: ``TABLE[:RUN]`` (Parquet or CSV) or a DataFrame.

    Uses the rows measured with the law sets' metric (CETT-PPL-1%: ``metric`` ppl-p,
    ``metric_arg`` 1), drops rows flagged as warm-up, leaves out runs marked not for
    fitting (:mod:`sparsitylaws.tables.rows`; naming one is an error), and needs width, depth,
    tokens, activation and activation_ratio (ffn_width is optional: d_f / d, else 2.5).
    Without ``RUN`` every usable run of the table anchors.  ``checkpoints``: ``last`` (each
    run's latest checkpoint: a constant offset carries an early checkpoint's deviation
    from the law into every prediction, docs/planning.md) or ``all``.  Every error names
    the table and the column.
    """
    if checkpoints not in ("last", "all"):
        raise SparsityLawsError(f"argument 'checkpoints' must be 'last' or 'all', got {checkpoints!r}")
    if isinstance(spec, pd.DataFrame):
        df, where = spec, "<anchor frame>"
    else:
        path, run_in = _parse_spec(str(spec))
        run = run or run_in
        df, where = _read_any(path), str(path)
    need = ["run", "tokens", "activation", "activation_ratio", "width", "depth"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SparsityLawsError(f"{where}: anchor table lacks column(s) {', '.join(missing)}")
    from sparsitylaws.tables.rows import FLAG_COLUMN, excluded_runs

    excluded = excluded_runs(df)
    if run is not None and run in excluded:
        raise SparsityLawsError(f"{where}: run {run!r} is marked not for fitting ({excluded[run]}; "
                                f"column {FLAG_COLUMN}), so it cannot anchor a law")
    df = df[~df["run"].astype(str).isin(list(excluded))]
    if "metric" in df.columns:
        arg = pd.to_numeric(df.get("metric_arg", pd.Series(np.nan, index=df.index)), errors="coerce")
        df = df[(df["metric"].astype(str) == ANCHOR_METRIC[0]) & np.isclose(arg, ANCHOR_METRIC[1])]
        if df.empty:
            raise SparsityLawsError(f"{where}: no usable rows with metric ppl-p at p = 1 (column "
                                    "'metric'); laws are fitted on CETT-PPL-1%, so anchors must be too")
    if "warmup" in df.columns:
        df = df[~df["warmup"].fillna(False).astype(bool)]
    runs = sorted(df["run"].astype(str).unique())
    if not runs:
        raise SparsityLawsError(f"{where}: no usable ppl-p rows to anchor on")
    if run is not None:
        df = df[df["run"].astype(str) == run]
        if df.empty:
            raise SparsityLawsError(f"{where}: no run {run!r} with usable ppl-p rows "
                                    f"(runs: {', '.join(runs)})")
    out = []
    for i, row in df.reset_index(drop=True).iterrows():
        run = str(row["run"])
        vals = {}
        for c in ("tokens", "activation_ratio", "width", "depth"):
            v = pd.to_numeric(pd.Series([row[c]]), errors="coerce").iloc[0]
            if not np.isfinite(v) or v <= 0:
                raise SparsityLawsError(f"{where}: column '{c}' row {i + 1} of run {run!r} must be "
                                        f"a number > 0, got {row[c]!r}")
            vals[c] = float(v)
        if not vals["activation_ratio"] < 1:
            raise SparsityLawsError(f"{where}: column 'activation_ratio' row {i + 1} of run {run!r} "
                                    f"must lie in (0, 1), got {vals['activation_ratio']:g}")
        fw = row.get("ffn_width") if "ffn_width" in df.columns else None
        fr = float(fw) / vals["width"] if fw is not None and np.isfinite(float(fw)) else 2.5
        out.append(Anchor(run=run, activation=str(row["activation"]).lower(),
                          width=int(round(vals["width"])), depth=int(round(vals["depth"])),
                          ffn_ratio=fr, tokens=vals["tokens"],
                          activation_ratio=vals["activation_ratio"], noise_sd=float(noise_sd),
                          source=where))
    if checkpoints == "last":
        last: dict[str, Anchor] = {}
        for a in out:
            if a.run not in last or a.tokens > last[a.run].tokens:
                last[a.run] = a
        out = [last[r] for r in sorted(last)]
    return out


# ------------------------------------------------------------------------------ the math


def shift_band(point: Any, low: Any, high: Any, offset: Any, sd: Any, q: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift (point, low, high) by ``offset`` on the logit scale and widen each side by
    ``q * sd`` in quadrature (``sd``, ``q`` scalars or per row); returns values in [0, 1]
    with low <= point <= high."""
    lp, ll, lh = logit(point), logit(low), logit(high)
    c = lp + offset
    add = (np.asarray(q, float) * np.asarray(sd, float)) ** 2
    lo = c - np.sqrt(np.maximum(lp - ll, 0.0) ** 2 + add)
    hi = c + np.sqrt(np.maximum(lh - lp, 0.0) ** 2 + add)
    return expit(c), expit(lo), expit(hi)


def _predict(width, depth, activation, tokens, ffn_ratio, *, method: str | None = None,
             **kw) -> pd.DataFrame:
    """planning.predict; ``method=None`` keeps its default (anchors and targets must agree)."""
    if method is not None:
        kw["method"] = method
    return predict_configs(width, depth, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio, **kw)


def distances(a: Any, b: Any) -> np.ndarray:
    """Pairwise distances (decades) between positions: with three columns, log10 of (N,
    tokens, width/depth), ||(dN, dr)|| + |dD|, the metric of :func:`krige`; otherwise
    Euclidean."""
    a = np.atleast_2d(np.asarray(a, float))
    b = np.atleast_2d(np.asarray(b, float))
    if a.shape[1] == 3:
        cfg = np.sqrt(((a[:, None, [0, 2]] - b[None, :, [0, 2]]) ** 2).sum(axis=2))
        return cfg + np.abs(a[:, None, 1] - b[None, :, 1])
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


def krige(points: Any, offsets: Any, noise: Any, tau: float, targets: Any,
          tokens: Any = None, target_tokens: Any = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ordinary kriging of the offset under Var[o(x) - o(y)] = tau^2 d(x, y).

    ``points`` (n, k) and ``targets`` (m, k): configuration positions (log10 of N and
    width/depth); ``offsets`` (n,) measured with sd ``noise`` (n,).  The weights use the
    configuration distance only, so a configuration's offset is one number for every
    token budget (its curve keeps the law's direction).  ``tokens``/``target_tokens``
    (log10) add the token distance to the variance: tau^2 sum_k |w_k| |log D_t - log D_k|.
    Variogram of the observations: gamma_ij = tau^2 d_ij / 2 + (noise_i^2 + noise_j^2) / 2
    (i != j); to a target, tau^2 d / 2 + noise_i^2 / 2.  Returns (offset (m,), sd (m,),
    weighted distance (m,)).  One anchor: its offset, sd^2 = tau^2 d + noise^2.
    """
    x = np.asarray(points, float)
    o = np.asarray(offsets, float)
    nz2 = np.asarray(noise, float) ** 2
    t = np.asarray(targets, float)
    n = o.size
    dxx = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    dxt = np.sqrt(((x[:, None, :] - t[None, :, :]) ** 2).sum(axis=2))  # (n, m)
    g = tau**2 * dxx / 2 + (nz2[:, None] + nz2[None, :]) / 2
    np.fill_diagonal(g, 0.0)
    gt = tau**2 * dxt / 2 + nz2[:, None] / 2
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = g
    a[:n, n] = a[n, :n] = 1.0
    b = np.vstack([gt, np.ones((1, t.shape[0]))])
    sol = np.linalg.lstsq(a, b, rcond=None)[0]
    w, mu = sol[:n], sol[n]
    var = np.maximum(np.sum(w * gt, axis=0) + mu, 0.0)
    dist = np.sum(np.abs(w) * dxt, axis=0)
    if tokens is not None and target_tokens is not None:
        dtok = np.abs(np.asarray(tokens, float)[:, None] - np.asarray(target_tokens, float)[None, :])
        extra = np.sum(np.abs(w) * dtok, axis=0)
        var = var + tau**2 * extra
        dist = dist + extra
    return w.T @ o, np.sqrt(var), dist


def combine_offsets(offsets: Any, noise: Any, points: Any, *, prior_sd: float = PRIOR_OFFSET_SD
                    ) -> tuple[float, float, float, float, str]:
    """(offset, tau, noise variance, dof, "prior" | "estimated") from per-anchor offsets.

    ``offsets``: logit offsets; ``noise``: each anchor's measurement sd (logit);
    ``points``: (n, 3) log10 of (N, D, width/depth).  Fewer than two distinct points:
    tau = ``prior_sd``, normal.  Otherwise tau is the REML estimate under the variogram
    Var[o_i - o_j] = tau^2 d_ij (measurement noise left in it), t with n - 1 dof.
    """
    o = np.asarray(offsets, float)
    nz = np.asarray(noise, float)
    x = np.asarray(points, float).reshape(o.size, -1)
    n = o.size
    off = float(np.mean(o))
    noise_var = float(np.mean(nz**2)) / n
    iu = np.triu_indices(n, 1)
    d = distances(x, x)[iu]
    if n < 2 or not np.any(d > 0):
        return off, float(prior_sd), noise_var, math.inf, "prior"
    # REML: the n - 1 contrasts o_i - o_0 have covariance tau^2 M, M_ij = (d_i0 + d_j0 - d_ij) / 2
    # under the variogram, so tau^2 = r' M^-1 r / (n - 1) is tau^2 chi2_{n-1} / (n - 1) and
    # the kriging error over tau_hat is t with n - 1 dof
    dm = distances(x, x)
    r = o[1:] - o[0]
    m = (dm[1:, :1] + dm[:1, 1:] - dm[1:, 1:]) / 2
    tau = math.sqrt(max(float(r @ np.linalg.pinv(m) @ r), 0.0) / (n - 1))
    return off, tau, noise_var, float(n - 1), "estimated"


def estimate_offsets(anchors: Sequence[Anchor], *, lawset: Any = None, method: str | None = None,
                     prior_sd: float = PRIOR_OFFSET_SD) -> dict[str, RecipeOffset]:
    """Recipe offset per activation from the anchors (see the module docstring)."""
    if not anchors:
        raise SparsityLawsError("no anchors given (argument 'anchor')")
    out: dict[str, RecipeOffset] = {}
    for act in sorted({a.activation for a in anchors}):
        group = [a for a in anchors if a.activation == act]
        try:
            pr = _predict([a.width for a in group], [a.depth for a in group], act,
                          [a.tokens for a in group], [a.ffn_ratio for a in group], lawset=lawset,
                          method=method)
        except SparsityLawsError as exc:
            raise SparsityLawsError(f"anchor {group[0].source or group[0].run} (run "
                                    f"{group[0].run}): {exc}") from None
        y = np.array([a.activation_ratio for a in group])
        o = logit(y) - logit(pr["activation_ratio"].to_numpy())
        noise = np.array([a.noise_sd for a in group]) / np.clip(y * (1 - y), EPS, None)
        pts = np.log10(pr[["n_params", "tokens", "width_depth_ratio"]].to_numpy(float))
        off, tau, nv, dof, how = combine_offsets(o, noise, pts, prior_sd=prior_sd)
        ext = (pr["extrap_tokens"].to_numpy(float) if "extrap_tokens" in pr
               else np.zeros(len(group)))
        clamped = pr["clamped"].to_numpy(bool) if "clamped" in pr else np.zeros(len(group), bool)
        recs = [{"run": a.run, "width": a.width, "depth": a.depth, "ffn_ratio": a.ffn_ratio,
                 "tokens": a.tokens, "measured": a.activation_ratio, "law": float(p),
                 "offset": float(oo), "noise_logit": float(nn), "log10_n": float(x[0]),
                 "log10_tokens": float(x[1]), "log10_ratio": float(x[2]), "source": a.source,
                 "law_tokens_outside": float(e), "law_clamped": bool(c)}
                for a, p, oo, nn, x, e, c in zip(group, pr["activation_ratio"], o, noise, pts, ext,
                                                 clamped, strict=True)]
        out[act] = RecipeOffset(activation=act, offset=off, tau=tau, noise_var=nv, dof=dof,
                                spread=how, n_anchors=len(group),
                                n_points=len({tuple(np.round(x, 9)) for x in pts}), anchors=recs,
                                prior_sd=prior_sd)
    return out


def apply_offsets(df: pd.DataFrame, offsets: dict[str, RecipeOffset]) -> pd.DataFrame:
    """Anchored copy of a :func:`sparsitylaws.planning.predict` frame.

    Needs the frame's ``n_params``, ``tokens`` and ``width_depth_ratio`` (the distance to
    the anchors; A0 rows use the same distance as their A(D)).  Rows of an anchored
    activation get shifted ``a0``/``activation_ratio`` (and their bands, and
    ``sparsity``); the law's values stay in ``law_*`` columns; ``anchor_distance`` and
    ``recipe_offset_sd`` say how far and how uncertain.  Rows of other activations are
    unchanged and say so (``anchored`` False).
    """
    out = df.copy()
    for c in ("a0", "a0_low", "a0_high", "activation_ratio", "ratio_low", "ratio_high"):
        out[f"law_{c}"] = out[c]
    out["anchored"] = False
    for c in ("recipe_offset", "recipe_offset_sd", "anchor_distance"):
        out[c] = np.nan
    out["anchor"] = ""
    for act, off in offsets.items():
        m = (out["activation"] == act).to_numpy()
        if not m.any():
            continue
        sub = out.loc[m]
        shift, sd, dbar = off.at(sub["n_params"], sub["tokens"], sub["width_depth_ratio"])
        damp = np.minimum(1.0, np.sqrt(np.maximum(dbar, 0.0)))  # the law's error cancels at anchors
        q = np.array([off.quantile(float(v)) for v in sub["level"]])
        for p, lo, hi in (("a0", "a0_low", "a0_high"), ("activation_ratio", "ratio_low", "ratio_high")):
            pt = sub[p].to_numpy(float)
            lp = logit(pt)
            low = expit(lp - damp * (lp - logit(sub[lo].to_numpy(float))))
            high = expit(lp + damp * (logit(sub[hi].to_numpy(float)) - lp))
            c, a, b = shift_band(pt, low, high, shift, sd, q)
            out.loc[m, p], out.loc[m, lo], out.loc[m, hi] = c, a, b
        out.loc[m, "sparsity"] = 1.0 - out.loc[m, "activation_ratio"]
        out.loc[m, "anchored"] = True
        out.loc[m, "recipe_offset"] = shift
        out.loc[m, "recipe_offset_sd"] = sd
        out.loc[m, "anchor_distance"] = dbar
        out.loc[m, "anchor"] = off.describe()
    return out


def anchor_frame(df: pd.DataFrame, anchor: Any, *, lawset: Any = None, method: str | None = None,
                 prior_sd: float = PRIOR_OFFSET_SD) -> pd.DataFrame:
    """Anchor a finished prediction frame: estimate the offsets from ``anchor`` (any form
    :func:`as_anchors` takes) with the same law set and method, and apply them.  The
    offsets go to ``attrs["anchor"]``; their descriptions, and which activations stay
    unanchored, lead ``attrs["caveats"]``."""
    cav = list(df.attrs.get("caveats") or [])
    offsets = estimate_offsets(as_anchors(anchor), lawset=lawset, method=method, prior_sd=prior_sd)
    out = apply_offsets(df, offsets)
    out.attrs["anchor"] = [o.to_dict() for o in offsets.values()]
    notes = [f"anchored on your recipe: {o.describe()}" for o in offsets.values()]
    notes += [c for o in offsets.values() for c in o.anchor_caveats()]
    notes += [f"{act}: not anchored (no {act} anchor given): the law set's own recipe applies"
              for act in dict.fromkeys(out["activation"].astype(str)) if act not in offsets]
    out.attrs["caveats"] = notes + cav  # they change what the intervals mean: first
    return out


def anchored_predict(width: Any, depth: Any, activation: str | Sequence[str] = "all", *,
                     anchor: Any, lawset: Any = None, method: str | None = None,
                     prior_sd: float = PRIOR_OFFSET_SD, **kwargs: Any
                     ) -> tuple[pd.DataFrame, dict[str, RecipeOffset]]:
    """:func:`sparsitylaws.planning.predict`, shifted by anchors of the user's recipe.

    ``anchor``: a ``TABLE[:RUN]`` string, a list of them, a DataFrame of measurement rows
    or a list of :class:`Anchor`.  Returns (anchored frame, offsets per activation).
    """
    anchors = as_anchors(anchor)
    offsets = estimate_offsets(anchors, lawset=lawset, method=method, prior_sd=prior_sd)
    df = _predict(width, depth, activation, kwargs.pop("tokens", None),
                  kwargs.pop("ffn_ratio", 2.5), lawset=lawset, method=method, **kwargs)
    return apply_offsets(df, offsets), offsets


def as_anchors(anchor: Any) -> list[Anchor]:
    """Normalize the forms ``anchor`` may take into a list of :class:`Anchor`."""
    if isinstance(anchor, Anchor):
        return [anchor]
    if isinstance(anchor, str | Path | pd.DataFrame):
        return read_anchors(anchor)
    if isinstance(anchor, Sequence):
        out: list[Anchor] = []
        for a in anchor:
            out.extend(as_anchors(a))
        return out
    raise SparsityLawsError(f"argument 'anchor' must be TABLE[:RUN], a DataFrame or Anchor(s), "
                            f"got {type(anchor).__name__}")
