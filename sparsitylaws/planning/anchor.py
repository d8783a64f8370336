"""Anchoring a law set on measured checkpoints of the user's own training recipe.

A law set describes the recipe it was fitted on (the packaged default: the paper's
MiniCPM-style models on the paper's data).  Another recipe (data, tokenizer, schedule,
quantization, fine-tuning) can sit far from it: SmollM2-135M measures 69% where the
default predicts 40%.  Measured checkpoints of the user's recipe (rows of a measurement
table; every kept checkpoint of each run by default) estimate a **recipe offset** on the
logit of the activation ratio, which shifts every prediction::

    logit A_anchored(N, r, D) = logit A_law(N, r, D) + o(N, r, D)

Why logit: every anchored value and interval end stays inside (0, 1); logit is strictly
increasing; near 0 (ReLU) a logit shift is a relative change, near 0.5 an additive one
(docs/planning.md has the comparison of offset forms).

The offset is a random field (:mod:`sparsitylaws.planning.offsetfield`): it drifts with
the distance in decades of (N, width/depth, tokens) as ``tau^2 d`` plus each anchor's
noise, and a target's offset is **kriged** from the anchors with the token distance in
the weights, so a budget leans on the checkpoints nearest it.  The curve keeps its law's
direction by construction: at one configuration the offset used at budget D is the
running minimum (ReLU; maximum for SiLU) of the kriged offset over every budget up to D,
so it only moves the way the law does, and the limit A0 gets the offset's value beyond
every anchor (the anchored curve stays on its side of the anchored A0).

Spread: ``tau`` and a nugget (noise common to every anchor) are estimated from the
anchors by REML when there are two or more at different positions, **pooled with a prior**
measured on the recipes against the default law set (the published runs, the lab's cpu
and gpu plans: :data:`PRIOR_TAU`, :data:`PRIOR_NUGGET`, worth :data:`PRIOR_DOF`
observations; benchmarks/recipe_transfer.py recomputes them).  One anchor uses the prior
alone.  The interval is the anchored point +- a t quantile (prior dof + anchors - 1) times
the kriging sd: anchors that agree narrow it, far anchors widen it.  The law's own band is
not added: the offset's drift, measured against the law, already holds the law's error
between anchor and target; the limit A0, beyond every anchor's budget, keeps the law's
band for A0 with the configuration part of the kriging sd added.

Anchors the law cannot read are named: an anchor below the budgets the law set's nearest
scale run was fitted on (its warm-up) is refused when other anchors remain, and kept with a
caveat when it is the only one; anchors above that range, or where the law is clamped,
carry a caveat.  Nothing here imports torch.
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
from sparsitylaws.planning.configs import EXTRAPOLATION_WARN, _lawset, predict_configs
from sparsitylaws.planning.offsetfield import distances, krige, pool_tau, reml

__all__ = [
    "PRIOR_DOF",
    "PRIOR_NOISE_SD",
    "PRIOR_NUGGET",
    "PRIOR_OFFSET_SD",
    "PRIOR_TAU",
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

#: Prior drift tau of a recipe's offset (logit per sqrt(decade of N, width/depth, tokens)),
#: per activation: the root mean square of tau estimated (REML, every kept checkpoint inside
#: the default law set's fitted budgets as an anchor) on the recipes measured against the
#: default law set: the paper's published runs, the lab's cpu plan (ReLU only since issue 22)
#: and its gpu plan (``python benchmarks/recipe_transfer.py --priors``; docs/planning.md,
#: "Anchoring on your own recipe", has the values behind each).
PRIOR_TAU = {"relu": 0.173, "silu": 0.171}
#: Prior nugget (logit): noise common to every anchor of a recipe (evaluation text, seed),
#: measured the same way, root mean square over the recipes.
PRIOR_NUGGET = {"relu": 0.036, "silu": 0.006}
#: Weight of the priors, in observations (contrasts): one per recipe they were measured on,
#: the smaller count of the two activations (ReLU 3 recipes, SiLU 2).
PRIOR_DOF = 2.0
#: Where the priors come from (said in every anchored output that uses them).
PRIOR_SOURCE = ("measured on 3 recipes for ReLU, 2 for SiLU, against the default law set "
                "(published runs, lab cpu, lab gpu; benchmarks/recipe_transfer.py --priors)")
#: Prior tau for an activation the priors do not cover: the largest measured.
PRIOR_OFFSET_SD = max(PRIOR_TAU.values())
#: Default sd (activation-ratio units) of one anchor's own measurement noise beyond the
#: nugget: none (the nugget holds it); pass ``noise_sd`` to state a known one.
PRIOR_NOISE_SD = 0.0
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
    """The recipe offset of one activation, in logit units, and how it drifts with distance."""

    activation: str
    offset: float  # mean of the anchors' offsets (each prediction krige its own)
    tau: float  # drift sd per sqrt(decade) (logit)
    nugget: float  # noise sd common to every anchor (logit)
    dof: float  # t degrees of freedom of the interval
    spread: str  # "prior" or "estimated"
    n_anchors: int
    n_points: int
    sign: float = 1.0  # +1: the law falls with tokens (ReLU), -1: it rises (SiLU)
    anchors: list[dict] = field(default_factory=list)
    prior_sd: float = PRIOR_OFFSET_SD
    prior_nugget: float = 0.0
    prior_dof: float = PRIOR_DOF
    tau_hat: float | None = None  # REML estimate before pooling (None: not estimable)
    floor: float = 0.0  # the law set's own scale-step sd: tau is never below it
    refused: list[dict] = field(default_factory=list)
    #: empirical-Bayes weight of the recipe offset, in [0, 1]: 1 - (the law's own variance at
    #: the anchors plus their noise) / (the anchors' mean squared offset), positive part
    shrink: float = 1.0

    def quantile(self, level: float) -> float:
        """Two-sided ``level`` quantile multiplier of the offset's distribution."""
        q = 0.5 + level / 2
        return float(stats.norm.ppf(q) if math.isinf(self.dof) else stats.t.ppf(q, self.dof))

    def _field(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pts = np.array([[a["log10_n"], a["log10_tokens"], a["log10_ratio"]] for a in self.anchors])
        o = np.array([a["offset"] for a in self.anchors])
        nz = np.sqrt(np.array([a["noise_logit"] for a in self.anchors]) ** 2 + self.nugget**2)
        return pts, o, nz

    def at(self, n_params: Any, tokens: Any, ratio: Any, chunk: int = 4096
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offset, its sd, weighted distance) at each target: :func:`krige` with the token
        distance in the weights; the offset is the running minimum (ReLU; maximum for
        SiLU) of the kriged offset over the budgets up to the target's, at the target's
        configuration (so the anchored curve keeps the law's direction)."""
        pts, o, nz = self._field()
        x = np.column_stack([np.log10(np.asarray(v, float)).ravel()
                             for v in np.broadcast_arrays(n_params, tokens, ratio)])
        _, sd, dist = _krige_chunked(pts, o, nz, self.tau, x, chunk)
        # the weights are constant beyond the anchors' budgets (the token distance is the same
        # to each of them there): evaluate the offset at the nearest end, exactly
        xc = x.copy()
        xc[:, 1] = np.clip(xc[:, 1], pts[:, 1].min(), pts[:, 1].max())
        off = _krige_chunked(pts, o, nz, self.tau, xc, chunk)[0]
        ext = np.minimum if self.sign > 0 else np.maximum
        for u in np.unique(pts[:, 1]):  # the kriged offset is piecewise linear between anchor budgets
            later = xc[:, 1] > u
            if np.any(later):
                xu = x[later].copy()
                xu[:, 1] = u
                off[later] = ext(off[later], _krige_chunked(pts, o, nz, self.tau, xu, chunk)[0])
        return self.shrink * off, sd, dist

    def at_limit(self, n_params: Any, ratio: Any) -> tuple[np.ndarray, np.ndarray]:
        """(offset, sd) for the limit A0 (tokens -> infinity): the running extreme over every
        anchor budget, and the kriging sd from the configuration distance alone."""
        pts, o, nz = self._field()
        n, r = (np.log10(np.asarray(v, float)).ravel() for v in np.broadcast_arrays(n_params, ratio))
        ext = np.minimum if self.sign > 0 else np.maximum
        off = None
        for u in np.unique(pts[:, 1]):
            xu = np.column_stack([n, np.full(n.size, u), r])
            v = _krige_chunked(pts, o, nz, self.tau, xu, 4096)[0]
            off = v if off is None else ext(off, v)
        flat = pts.copy()
        flat[:, 1] = 0.0  # configuration distance only
        sd = _krige_chunked(flat, o, nz, self.tau, np.column_stack([n, np.zeros(n.size), r]), 4096)[1]
        return self.shrink * off, sd

    def anchor_caveats(self) -> list[str]:
        """One line per anchor the law cannot read well: refused (in the warm-up of the law's
        nearest run), kept although in that warm-up (it was the only one), above the fitted
        budgets, clamped, or far outside the law set's token budgets."""
        out = []
        for a in self.refused:
            out.append(f"{self.activation} anchor {a['run']} at {float(a['tokens']):.3g} tokens "
                       f"({a['tokens_per_param']:.3g} per parameter) refused: below the "
                       f"{a['fitted_low']:.3g} tokens per parameter where the law set's nearest run "
                       f"({a['law_run']}) starts, i.e. in its warm-up, where no law holds")
        for a in self.anchors:
            why = []
            if a.get("warmup_kept"):
                why.append(f"below the {a['fitted_low']:.3g} tokens per parameter where the law set's "
                           f"nearest run ({a['law_run']}) starts (its warm-up; kept: no other anchor)")
            elif a.get("above_range"):
                why.append(f"above the {a['fitted_high']:.3g} tokens per parameter the law set's "
                           f"nearest run ({a['law_run']}) was fitted to")
            if a.get("law_clamped"):
                why.append("the law is clamped at a bound there")
            elif float(a.get("law_tokens_outside", 0.0)) > EXTRAPOLATION_WARN:
                why.append(f"{10 ** float(a['law_tokens_outside']):.3g}x outside the token budgets "
                           "the law set was fitted on")
            if why:
                out.append(f"{self.activation} anchor {a['run']} at {float(a['tokens']):.3g} tokens: "
                           f"{'; '.join(why)}; its offset is read against an extrapolated law and may "
                           "not carry to other budgets")
        return out

    def describe(self) -> str:
        """One line for outputs: how large, from what, and how its spread was set."""
        if self.spread == "prior":
            how = (f"spread from the prior alone (tau {self.tau:.3f} logit per sqrt(decade of N, "
                   f"width/depth, tokens), nugget {self.nugget:.3f}, t with {self.dof:g} dof; "
                   f"{PRIOR_SOURCE}): {'one anchor' if self.n_anchors == 1 else 'anchors at one point'}")
        else:
            how = (f"spread from {self.n_anchors} anchors pooled with the prior: tau {self.tau:.3f} "
                   f"logit per sqrt(decade) (anchors alone {self.tau_hat:.3f}, prior "
                   f"{self.prior_sd:.3f}), nugget {self.nugget:.3f}, t with {self.dof:g} dof")
        if self.floor > 0 and self.tau <= self.floor * (1 + 1e-12):
            how += f"; tau held at the law set's own scale-step sd {self.floor:.3f}"
        if self.shrink < 1:
            how += (f"; offset weighted {self.shrink:.2f} (the law's own uncertainty at the anchors "
                    "explains the rest: empirical Bayes)")
        runs = sorted({a["run"] for a in self.anchors})
        return (f"{self.activation}: anchored on {', '.join(runs)} ({self.n_anchors} checkpoint"
                f"{'s' if self.n_anchors != 1 else ''}); recipe offset {self.offset:+.3f} logit"
                + (" (mean; each prediction weights the anchors nearest it)" if self.n_anchors > 1 else "")
                + f"; {how}")

    def to_dict(self) -> dict:
        return {"activation": self.activation, "scale": "logit", "offset": self.offset,
                "tau": self.tau, "tau_anchors": self.tau_hat, "nugget": self.nugget,
                "dof": None if math.isinf(self.dof) else self.dof, "spread": self.spread,
                "prior_tau": self.prior_sd, "prior_nugget": self.prior_nugget,
                "prior_dof": self.prior_dof, "prior_source": PRIOR_SOURCE, "floor": self.floor,
                "n_anchors": self.n_anchors, "n_points": self.n_points, "anchors": self.anchors,
                "refused": self.refused, "shrink": self.shrink, "description": self.describe()}


def _krige_chunked(pts, o, nz, tau, targets, chunk):
    outs = [krige(pts, o, nz, tau, targets[i:i + chunk]) for i in range(0, max(len(targets), 1), chunk)]
    return tuple(np.concatenate([p[k] for p in outs]) for k in range(3))


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
                 checkpoints: str = "all", noise_sd: float = PRIOR_NOISE_SD) -> list[Anchor]:
    """Anchors from a measurement table: ``TABLE[:RUN]`` (Parquet or CSV) or a DataFrame.

    Uses the rows measured with the law sets' metric (CETT-PPL-1%: ``metric`` ppl-p,
    ``metric_arg`` 1), drops rows flagged as warm-up, leaves out runs marked not for
    fitting (:mod:`sparsitylaws.tables.rows`; naming one is an error), and needs width, depth,
    tokens, activation and activation_ratio (ffn_width is optional: d_f / d, else 2.5).
    Without ``RUN`` every usable run of the table anchors.  ``checkpoints``: ``all`` (every
    usable checkpoint: the kriging weights lean on the budgets nearest each target, and
    checkpoints below the law set's fitted budgets are refused later, in
    :func:`estimate_offsets`) or ``last`` (each run's latest).  Every error names the table
    and the column.
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


def combine_offsets(offsets: Any, noise: Any, points: Any, *, prior_sd: float = PRIOR_OFFSET_SD,
                    prior_nugget: float = 0.0, prior_dof: float = PRIOR_DOF, floor: float = 0.0
                    ) -> tuple[float, float, float, float, str, float | None]:
    """(mean offset, tau, nugget, dof, "prior" | "estimated", tau from the anchors alone).

    ``offsets``: logit offsets; ``noise``: each anchor's own measurement sd (logit);
    ``points``: (n, 3) log10 of (N, tokens, width/depth).  Two or more anchors at distinct
    points: tau^2 and the nugget by REML (:func:`~sparsitylaws.planning.offsetfield.reml`),
    each pooled with its prior (``prior_dof`` observations); fewer: the priors, t with
    ``prior_dof`` dof.  tau is never below ``floor``.
    """
    o = np.asarray(offsets, float)
    x = np.asarray(points, float).reshape(o.size, -1)
    off = float(np.mean(o))
    tau2, nug2 = reml(o, noise, x)
    tau, dof = pool_tau(tau2, o.size, prior_sd, prior_dof)
    if not math.isfinite(tau2):
        return off, max(tau, floor), float(prior_nugget), dof, "prior", None
    k = o.size - 1
    nugget = math.sqrt((prior_dof * prior_nugget**2 + k * nug2) / (prior_dof + k))
    return off, max(tau, floor), nugget, dof, "estimated", math.sqrt(tau2)


def offset_weight(offsets: Any, expected_var: Any) -> float:
    """Empirical-Bayes weight of a recipe offset: ``max(0, 1 - mean(V) / mean(o^2))``.

    ``offsets`` are the anchors' logit offsets from the law, ``expected_var`` the variance
    each would have if the anchors were of the law set's own recipe (the law's band variance
    at the anchor plus the anchor's noise).  Offsets no larger than the law's own
    uncertainty explains weigh 0 (anchoring on a run of the law set's recipe changes
    nothing); offsets far beyond it weigh about 1 (the positive-part James-Stein factor).
    """
    o = np.asarray(offsets, float)
    m2 = float(np.mean(o**2))
    if m2 <= 0:
        return 0.0
    return float(max(0.0, 1.0 - float(np.mean(expected_var)) / m2))


def _prior(table: dict[str, float], act: str, default: float) -> float:
    return float(table.get(act, default))


def estimate_offsets(anchors: Sequence[Anchor], *, lawset: Any = None, method: str | None = None,
                     prior_sd: float | None = None) -> dict[str, RecipeOffset]:
    """Recipe offset per activation from the anchors (see the module docstring).

    ``prior_sd`` replaces the measured prior tau (:data:`PRIOR_TAU`) for every activation.
    """
    from sparsitylaws.architecture import nearest_fitted_range, scale_step_sigma

    if not anchors:
        raise SparsityLawsError("no anchors given (argument 'anchor')")
    ls = _lawset(lawset)
    section = ls.architecture
    out: dict[str, RecipeOffset] = {}
    for act in sorted({a.activation for a in anchors}):
        group = [a for a in anchors if a.activation == act]
        try:
            pr = _predict([a.width for a in group], [a.depth for a in group], act,
                          [a.tokens for a in group], [a.ffn_ratio for a in group], lawset=ls,
                          method=method)
        except SparsityLawsError as exc:
            raise SparsityLawsError(f"anchor {group[0].source or group[0].run} (run "
                                    f"{group[0].run}): {exc}") from None
        n = pr["n_params"].to_numpy(float)
        tpp = np.array([a.tokens for a in group]) / n
        lo, hi, near = nearest_fitted_range(section, act, n)
        warm = tpp < lo * (1 - 1e-9)
        keep = ~warm if np.any(~warm) else np.ones(len(group), bool)
        y = np.array([a.activation_ratio for a in group])
        o = logit(y) - logit(pr["activation_ratio"].to_numpy())
        noise = np.array([a.noise_sd for a in group]) / np.clip(y * (1 - y), EPS, None)
        pts = np.log10(pr[["n_params", "tokens", "width_depth_ratio"]].to_numpy(float))
        ext = (pr["extrap_tokens"].to_numpy(float) if "extrap_tokens" in pr
               else np.zeros(len(group)))
        clamped = pr["clamped"].to_numpy(bool) if "clamped" in pr else np.zeros(len(group), bool)
        floor = scale_step_sigma(section, act)
        tau0 = prior_sd if prior_sd is not None else _prior(PRIOR_TAU, act, PRIOR_OFFSET_SD)
        nug0 = _prior(PRIOR_NUGGET, act, max(PRIOR_NUGGET.values()))
        off, tau, nug, dof, how, tau_hat = combine_offsets(
            o[keep], noise[keep], pts[keep], prior_sd=tau0, prior_nugget=nug0,
            floor=floor if math.isfinite(floor) else 0.0)
        zq = stats.norm.ppf(0.5 + float(pr["level"].iloc[0]) / 2)
        law_var = ((logit(pr["ratio_high"].to_numpy()) - logit(pr["ratio_low"].to_numpy())) / (2 * zq)) ** 2
        shrink = offset_weight(o[keep], law_var[keep] + noise[keep] ** 2 + nug**2)
        recs, refused = [], []
        for k, a in enumerate(group):
            rec = {"run": a.run, "width": a.width, "depth": a.depth, "ffn_ratio": a.ffn_ratio,
                   "tokens": a.tokens, "tokens_per_param": float(tpp[k]), "measured": a.activation_ratio,
                   "law": float(pr["activation_ratio"].iloc[k]), "offset": float(o[k]),
                   "noise_logit": float(noise[k]), "log10_n": float(pts[k, 0]),
                   "log10_tokens": float(pts[k, 1]), "log10_ratio": float(pts[k, 2]),
                   "source": a.source, "law_tokens_outside": float(ext[k]),
                   "law_sd_logit": float(np.sqrt(law_var[k])),
                   "law_clamped": bool(clamped[k]), "law_run": near[k],
                   "fitted_low": float(lo[k]), "fitted_high": float(hi[k]),
                   "warmup_kept": bool(warm[k] and keep[k]),
                   "above_range": bool(tpp[k] > hi[k] * (1 + 1e-9))}
            (recs if keep[k] else refused).append(rec)
        out[act] = RecipeOffset(activation=act, offset=off, tau=tau, nugget=nug, dof=dof, spread=how,
                                n_anchors=len(recs),
                                n_points=len({tuple(np.round(x, 9)) for x in pts[keep]}),
                                sign=1.0 if section["activations"][act]["scale"]["form"]
                                == "logspace_power" else -1.0,
                                anchors=recs, prior_sd=tau0, prior_nugget=nug0, tau_hat=tau_hat,
                                floor=floor if math.isfinite(floor) else 0.0, refused=refused,
                                shrink=shrink)
    return out


def _mixed_band(point: Any, low: Any, high: Any, shift: Any, sd: Any, q: Any, k: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The anchored point (law shifted by ``shift``) and its band: on the logit scale, the
    law's band scaled by sqrt(1 - k) and the kriging band q sd scaled by sqrt(k), added in
    quadrature on each side; k = 0 gives the law's own band, k = 1 the kriging band alone."""
    lp = logit(np.asarray(point, float))
    lo = np.maximum(lp - logit(np.asarray(low, float)), 0.0)
    hi = np.maximum(logit(np.asarray(high, float)) - lp, 0.0)
    c = lp + np.asarray(shift, float)
    add = k * (np.asarray(q, float) * np.asarray(sd, float)) ** 2
    return (expit(c), expit(c - np.sqrt((1 - k) * lo**2 + add)),
            expit(c + np.sqrt((1 - k) * hi**2 + add)))


def apply_offsets(df: pd.DataFrame, offsets: dict[str, RecipeOffset]) -> pd.DataFrame:
    """Anchored copy of a :func:`sparsitylaws.planning.predict` frame.

    Needs the frame's ``n_params``, ``tokens`` and ``width_depth_ratio``.  Rows of an
    anchored activation get shifted ``activation_ratio`` (kriged offset at the row's
    configuration and budget, band: +- the t quantile times its sd on the logit scale),
    ``a0`` (the offset beyond every anchor's budget; band: the law's A0 band shifted,
    widened by the configuration part of the sd) and ``sparsity``; the law's values stay in
    ``law_*`` columns; ``recipe_offset``, ``recipe_offset_sd`` and ``anchor_distance`` say
    how far and how uncertain.  Rows of other activations are unchanged (``anchored`` False).
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
        q = np.array([off.quantile(float(v)) for v in sub["level"]])
        k = off.shrink
        c, a, b = _mixed_band(sub["activation_ratio"], sub["ratio_low"], sub["ratio_high"],
                              shift, sd, q, k)
        out.loc[m, "activation_ratio"], out.loc[m, "ratio_low"], out.loc[m, "ratio_high"] = c, a, b
        s0, sd0 = off.at_limit(sub["n_params"], sub["width_depth_ratio"])
        c, a, b = shift_band(sub["a0"].to_numpy(float), sub["a0_low"].to_numpy(float),
                             sub["a0_high"].to_numpy(float), s0, np.sqrt(k) * sd0, q)
        out.loc[m, "a0"], out.loc[m, "a0_low"], out.loc[m, "a0_high"] = c, a, b
        out.loc[m, "sparsity"] = 1.0 - out.loc[m, "activation_ratio"]
        out.loc[m, "anchored"] = True
        out.loc[m, "recipe_offset"] = shift
        out.loc[m, "recipe_offset_sd"] = sd
        out.loc[m, "anchor_distance"] = dbar
        out.loc[m, "anchor"] = off.describe()
    return out


def anchor_frame(df: pd.DataFrame, anchor: Any, *, lawset: Any = None, method: str | None = None,
                 prior_sd: float | None = None) -> pd.DataFrame:
    """Anchor a finished prediction frame: estimate the offsets from ``anchor`` (any form
    :func:`as_anchors` takes) with the same law set and method, and apply them.  The
    offsets go to ``attrs["anchor"]``, the recipe the answer describes to ``attrs["recipe"]``;
    the offsets' descriptions, the anchors the law cannot read well and which activations
    stay unanchored lead ``attrs["caveats"]``, and the law set's recipe caveat is replaced
    by one for an anchored answer (:func:`sparsitylaws.planning.recipe.anchored_caveat`)."""
    ls = _lawset(lawset)
    offsets = estimate_offsets(as_anchors(anchor), lawset=ls, method=method, prior_sd=prior_sd)
    return _anchored_frame(df, offsets, ls)


def _anchored_frame(df: pd.DataFrame, offsets: dict[str, RecipeOffset], ls: Any) -> pd.DataFrame:
    from sparsitylaws.planning.recipe import anchored_caveat, anchored_recipe_line, recipe_caveat

    out = apply_offsets(df, offsets)
    out.attrs["anchor"] = [o.to_dict() for o in offsets.values()]
    unanchored = [act for act in dict.fromkeys(out["activation"].astype(str)) if act not in offsets]
    own = recipe_caveat(ls)
    cav = [c for c in (df.attrs.get("caveats") or []) if c != own]
    notes = [f"anchored on your recipe: {o.describe()}" for o in offsets.values()]
    notes += [c for o in offsets.values() for c in o.anchor_caveats()]
    notes += [f"{act}: not anchored (no {act} anchor given): the law set's own recipe applies"
              for act in unanchored]
    notes.append(anchored_caveat(ls, offsets, unanchored))
    out.attrs["recipe"] = anchored_recipe_line(ls, offsets)
    out.attrs["caveats"] = notes + cav  # they change what the intervals mean: first
    return out


def anchored_predict(width: Any, depth: Any, activation: str | Sequence[str] = "all", *,
                     anchor: Any, lawset: Any = None, method: str | None = None,
                     prior_sd: float | None = None, **kwargs: Any
                     ) -> tuple[pd.DataFrame, dict[str, RecipeOffset]]:
    """:func:`sparsitylaws.planning.predict`, shifted by anchors of the user's recipe.

    ``anchor``: a ``TABLE[:RUN]`` string, a list of them, a DataFrame of measurement rows
    or a list of :class:`Anchor`.  Returns (anchored frame, offsets per activation).
    """
    ls = _lawset(lawset)
    offsets = estimate_offsets(as_anchors(anchor), lawset=ls, method=method, prior_sd=prior_sd)
    df = _predict(width, depth, activation, kwargs.pop("tokens", None),
                  kwargs.pop("ffn_ratio", 2.5), lawset=ls, method=method, **kwargs)
    return _anchored_frame(df, offsets, ls), offsets


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
