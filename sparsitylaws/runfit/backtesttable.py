"""The backtest table: every run's rolling-origin backtest rows as arrays.

Input: each run's rolling-origin backtest rows (:func:`sparsitylaws.runfit.backtest.backtest`)
and its curve (:class:`~sparsitylaws.runfit.forecast.RunCurve`).  :class:`BacktestTable` puts
every row of every run into arrays, with each other run's logit move over the same tokens per
parameter, so that any choice of analog runs, candidate weights and drift is a few array
operations: :meth:`BacktestTable.candidates` gives every candidate forecast per row for a
choice of analogs, :meth:`BacktestTable.own_drift` each run's own drift per cut.  Each run
weighs 1, its forecasts equally, their points equally.  Scoring and choosing a configuration
on the table is :mod:`sparsitylaws.runfit.selection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparsitylaws.runfit.forecast import (
    POOL_BW,
    TREND_SHRINK,
    CutState,
    RunCurve,
    analog_move,
    borrow_limit,
    direction_of,
    expit,
    has_older_replicate,
    logit,
)

__all__ = ["BacktestTable", "RunBacktest"]


@dataclass
class RunBacktest:
    """What calibration needs of one run: its backtest rows, its curve, its final state."""

    run: str
    activation: str
    n_params: float | None
    rows: list[dict]
    curve: RunCurve
    final: CutState | None = None


class BacktestTable:
    """Every backtest row of every run as arrays (see the module docstring)."""

    def __init__(self, runs: Sequence[RunBacktest], analogs: Sequence[RunCurve] = ()):
        self.runs = list(runs)
        self.names = [r.run for r in self.runs]
        curves = {r.run: r.curve for r in self.runs}
        for a in analogs:
            curves.setdefault(a.run, a)
        self.analog_names = list(curves)
        self.curves = [curves[n] for n in self.analog_names]
        rows, units = [], []
        for ri, rb in enumerate(self.runs):
            states = {}
            for r in rb.rows:
                if r.get("state") is not None:
                    states[r["cutoff"]] = CutState.from_dict(r["state"])
            for r in rb.rows:
                st = states.get(r["cutoff"])
                if st is None:
                    continue
                key = (ri, r["cutoff"])
                if not units or units[-1][0] != key:
                    units.append((key, st))
                rows.append((len(units) - 1, r))
        self.unit_run = np.array([k[0] for k, _ in units], int)
        self.unit_cut = np.array([k[1] for k, _ in units], float)
        self.unit_state = [st for _, st in units]
        self.unit_tau = np.array([st.tau_cut for st in self.unit_state], float)
        self.unit_dcut = np.array([st.d_cut for st in self.unit_state], float)
        n = len(rows)
        self.row_unit = np.array([u for u, _ in rows], int)
        self.row_run = self.unit_run[self.row_unit] if n else np.zeros(0, int)
        self.y = np.array([r["measured"] for _, r in rows], float)
        self.d = np.array([r["tokens_b"] for _, r in rows], float)
        self.h = np.array([r["horizon"] for _, r in rows], float)
        self.sigma = np.array([r["sigma"] if r["sigma"] is not None else np.nan for _, r in rows], float)
        self.s = np.array([direction_of(self.runs[self.unit_run[u]].activation) for u, _ in rows], float)
        self.row_act = np.array([self.runs[self.unit_run[u]].activation for u, _ in rows], dtype=object)
        self.is_last = np.array([bool(r["is_last"]) for _, r in rows])
        self.cut = np.array([r["cutoff"] for _, r in rows], float)
        self.index = np.array([r.get("index", -1) for _, r in rows], int)
        self.own_cands = {k: np.array([r[f"cand_{k}"] for _, r in rows], float) for k in ("law", "line", "last")}
        self._moves(rows)
        # base weight: each run 1, each of its units equally, each unit's rows equally
        w = np.zeros(n)
        for ri in range(len(self.runs)):
            us = np.flatnonzero(self.unit_run == ri)
            for u in us:
                m = self.row_unit == u
                w[m] = 1.0 / (len(us) * m.sum())
        self.w = w

    def _moves(self, rows: list) -> None:
        """Each analog's logit move for each row (NaN where it does not apply) and its log10
        size ratio; the unit's base level (logit of its local line at the cut)."""
        n, m = len(rows), len(self.curves)
        self.move = np.full((n, m), np.nan)
        self.xsize = np.full((n, m), np.nan)
        self.row_level = np.array([self.unit_state[u].level for u, _ in rows], float)
        self.base = logit(self.row_level)
        for u, st in enumerate(self.unit_state):
            idx = np.flatnonzero(self.row_unit == u)
            if not st.n_params or idx.size == 0:
                continue
            for j, a in enumerate(self.curves):
                mv = analog_move(a, st, self.d[idx])
                if mv is not None:
                    self.move[idx, j], self.xsize[idx, j] = mv

    # ------------------------------------------------------------------ candidates for a fold
    def candidates(self, analog_mask: np.ndarray, smaller_only: bool = False, same_scale: bool = False
                   ) -> dict[str, np.ndarray]:
        """All candidates per row, the pooled ones from the analogs in ``analog_mask`` only
        (and ``nearest``: the single nearest-size analog's move); ``smaller_only``: each row
        borrows only from runs smaller than its own (as a run larger than every other would),
        and (``same_scale``) from its replicates (:func:`~sparsitylaws.runfit.forecast.borrow_limit`)."""
        M = np.where(analog_mask[None, :], self.move, np.nan)
        if smaller_only:
            M = np.where(self.xsize <= borrow_limit(same_scale), M, np.nan)
        fin = np.isfinite(M)
        x = np.where(fin, self.xsize, 0.0)
        w = np.exp(-0.5 * (x / POOL_BW) ** 2) * fin
        Mz = np.where(fin, M, 0.0)
        sw = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(sw > 0, (w * Mz).sum(axis=1) / sw, np.nan)
            xm = np.where(sw > 0, (w * x).sum(axis=1) / sw, 0.0)
            sxx = (w * (x - xm[:, None]) ** 2).sum(axis=1)
            sxy = (w * (x - xm[:, None]) * (Mz - mean[:, None])).sum(axis=1)
            b = np.where(sxx > 1e-12, sxy / sxx, 0.0) * TREND_SHRINK
        near_idx = np.argmin(np.where(fin, np.abs(self.xsize), np.inf), axis=1)
        near = np.where(fin.any(axis=1), M[np.arange(M.shape[0]), near_idx], np.nan)
        out = dict(self.own_cands)
        out["pool"] = np.clip(expit(self.base + mean), 0.0, 1.0)
        out["trend"] = np.clip(expit(self.base + mean - b * xm), 0.0, 1.0)
        out["nearest"] = np.clip(expit(self.base + near), 0.0, 1.0)
        for k in ("pool", "trend", "nearest"):
            out[k] = np.where(np.isfinite(mean if k != "nearest" else near), out[k], np.nan)
        return out

    def older_replicate(self, analog_mask: np.ndarray, units: np.ndarray) -> np.ndarray:
        """For each of ``units``: whether a replicate of its run among the analogs in
        ``analog_mask`` has data well past its cut
        (:func:`~sparsitylaws.runfit.forecast.has_older_replicate`)."""
        curves = [c for c, m in zip(self.curves, analog_mask, strict=True) if m]
        return np.array([has_older_replicate(self.unit_state[u], curves) for u in units], bool)

    def own_drift(self, errors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per unit and candidate: the run's own drift, the mean of e/h (direction-normalized)
        over its earlier forecasts' points up to the unit's cut, with the part its point noise
        alone would give taken out (:func:`~sparsitylaws.runfit.forecast.denoised_drift`); NaN
        when there are none."""
        from sparsitylaws.runfit.forecast import denoised_drift

        out = {}
        nu = len(self.unit_state)
        sig = np.where(np.isfinite(self.sigma), self.sigma, 0.0)
        masks = [((self.row_run == self.unit_run[u]) & (self.cut < self.unit_cut[u])
                  & (self.d <= self.unit_dcut[u] * (1 + 1e-12)) & (self.h > 0)) for u in range(nu)]
        for k, e in errors.items():
            z = self.s * e / np.maximum(self.h, 1e-9)
            v = np.full(nu, np.nan)
            for u, m in enumerate(masks):
                m = m & np.isfinite(z)
                if m.any():
                    v[u] = denoised_drift(z[m], sig[m] / self.h[m])
            out[k] = v
        return out
