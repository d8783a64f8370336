"""Anchoring a law set on measured checkpoints (sparsitylaws.planning.anchor).

Checked against independent computations: the logit shift by hand, the t predictive
interval by simulation, the published runs (anchor on one run, predict the others), and
the SmolLM2 table read at run time.  Hypothesis properties: anchored values and bands stay
in [0, 1], ordered, and keep the law's direction.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.planning import predict
from sparsitylaws.planning.anchor import (
    PRIOR_NOISE_SD,
    PRIOR_OFFSET_SD,
    Anchor,
    anchored_predict,
    apply_offsets,
    combine_offsets,
    estimate_offsets,
    krige,
    read_anchors,
    shift_band,
)

SMOL = REPO_ROOT / "measurements" / "smollm2-135m.parquet"


def _lg(p):
    return math.log(p / (1 - p))


def _table(rows: list[dict]) -> pd.DataFrame:
    base = {"metric": "ppl-p", "metric_arg": 1.0, "ffn_width": None}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["ffn_width"] = df["ffn_width"].fillna(df["width"] * 2.5)
    return df


# ------------------------------------------------------------------ the shift itself


def test_shift_band_closed_form():
    # logit(0.5) + log 3 = log 3 -> 0.75; with no spread the band is the shifted band
    c, lo, hi = shift_band([0.5], [0.4], [0.6], math.log(3.0), 0.0, 1.645)
    assert c[0] == pytest.approx(0.75)
    assert lo[0] == pytest.approx(1 / (1 + math.exp(-(_lg(0.4) + math.log(3)))))
    assert hi[0] == pytest.approx(1 / (1 + math.exp(-(_lg(0.6) + math.log(3)))))
    # zero band, pure offset spread: symmetric on the logit scale, q * sd each side
    c, lo, hi = shift_band([0.2], [0.2], [0.2], 0.0, 0.5, 2.0)
    assert _lg(hi[0]) - _lg(0.2) == pytest.approx(1.0)
    assert _lg(0.2) - _lg(lo[0]) == pytest.approx(1.0)


def test_anchor_reproduced_at_its_own_configuration():
    y = 0.23
    anchors = read_anchors(_table([{"run": "mine", "activation": "silu", "width": 1024, "depth": 20,
                                    "tokens": 3e10, "activation_ratio": y}]))
    df, offs = anchored_predict(1024, 20, "silu", anchor=anchors, tokens=3e10)
    assert df["activation_ratio"].iloc[0] == pytest.approx(y, abs=1e-12)
    assert df["ratio_low"].iloc[0] < y < df["ratio_high"].iloc[0]
    # the offset is logit(measured) - logit(law), computed here independently
    law = predict(1024, 20, "silu", tokens=3e10)["activation_ratio"].iloc[0]
    assert offs["silu"].offset == pytest.approx(_lg(y) - _lg(law))
    o = offs["silu"]
    assert o.spread == "prior" and o.dof == math.inf and o.tau == PRIOR_OFFSET_SD
    assert "prior" in o.describe()
    # at the anchor itself only the measurement noise is left: +-z * noise on the logit scale
    noise = PRIOR_NOISE_SD / (y * (1 - y))
    z = stats.norm.ppf(0.95)
    assert _lg(df["ratio_high"].iloc[0]) - _lg(y) == pytest.approx(z * noise, rel=1e-6)
    assert _lg(y) - _lg(df["ratio_low"].iloc[0]) == pytest.approx(z * noise, rel=1e-6)
    # one decade of tokens away: tau^2 * 1 + noise^2, and the law's band back in full
    far, _ = anchored_predict(1024, 20, "silu", anchor=anchors, tokens=3e11)
    assert far["recipe_offset_sd"].iloc[0] == pytest.approx(math.hypot(PRIOR_OFFSET_SD, noise))
    assert far["anchor_distance"].iloc[0] == pytest.approx(1.0)


def test_smollm2_table_anchor_reproduces_its_measurement():
    """Reads the measured table at run time: anchoring on SmolLM2 gives back its ratio."""
    if not SMOL.is_file():
        pytest.skip("measurements/smollm2-135m.parquet absent")
    t = pd.read_parquet(SMOL)
    row = t[(t["metric"] == "ppl-p") & (t["activation"] == "silu")].iloc[0]
    df, offs = anchored_predict(int(row["width"]), int(row["depth"]), "all", anchor=str(SMOL),
                                tokens=float(row["tokens"]),
                                ffn_ratio=float(row["ffn_width"] / row["width"]))
    silu = df[df["activation"] == "silu"].iloc[0]
    assert silu["activation_ratio"] == pytest.approx(float(row["activation_ratio"]), abs=1e-9)
    assert silu["anchored"] and silu["law_activation_ratio"] < 0.5  # the default is far off
    relu = df[df["activation"] == "relu"].iloc[0]  # no ReLU anchor: left as the law says
    assert not relu["anchored"] and relu["activation_ratio"] == relu["law_activation_ratio"]
    assert set(offs) == {"silu"}


def test_several_anchors_estimate_the_spread():
    # three configurations, measured with known logit offsets 0.3, 0.5, 0.7 from the law
    cfgs = [(768, 16), (1024, 20), (1280, 24)]
    law = predict([c[0] for c in cfgs], [c[1] for c in cfgs], "relu", tokens=2e10)["activation_ratio"]
    off = np.array([0.3, 0.5, 0.7])
    y = 1 / (1 + np.exp(-(np.log(law / (1 - law)) + off)))
    rows = [{"run": f"r{w}", "activation": "relu", "width": w, "depth": d, "tokens": 2e10,
             "activation_ratio": v} for (w, d), v in zip(cfgs, y, strict=True)]
    offs = estimate_offsets(read_anchors(_table(rows)))
    o = offs["relu"]
    assert o.offset == pytest.approx(0.5)
    assert o.spread == "estimated" and o.dof == 2
    # pooled variogram slope, computed here from the configurations' N and width/depth
    pr = predict([c[0] for c in cfgs], [c[1] for c in cfgs], "relu", tokens=2e10)
    x = np.log10(pr[["n_params", "width_depth_ratio"]].to_numpy())
    # REML on the contrasts o_i - o_0: covariance tau^2 (d_i0 + d_j0 - d_ij) / 2
    dd = np.array([[float(np.linalg.norm(x[i] - x[j])) for j in range(3)] for i in range(3)])
    m = np.array([[dd[i, 0] + dd[j, 0] - dd[i, j] for j in (1, 2)] for i in (1, 2)]) / 2
    r = off[1:] - off[0]
    assert o.tau == pytest.approx(math.sqrt(r @ np.linalg.solve(m, r) / 2))
    assert o.quantile(0.9) == pytest.approx(stats.t.ppf(0.95, 2))


@pytest.mark.parametrize("n", [2, 4])
def test_estimated_spread_covers_new_points_by_simulation(n):
    """Offsets drawn as a Brownian motion along one log axis (the model's variogram): the
    kriged offset of an unseen point with its t interval (tau estimated) covers at its level."""
    rng = np.random.default_rng(n)
    level, reps, hits = 0.9, 3000, 0
    for _ in range(reps):
        xs = np.sort(rng.uniform(0, 2, n + 1))
        w = np.cumsum(np.r_[rng.normal(0, 1), rng.normal(0, 0.3 * np.sqrt(np.diff(xs)))])
        t = rng.integers(n + 1)
        keep = np.arange(n + 1) != t
        _, tau, _, dof, how = combine_offsets(w[keep], np.full(n, 1e-9), xs[keep][:, None])
        off, sd, _ = krige(xs[keep][:, None], w[keep], np.full(n, 1e-9), tau, [[xs[t]]])
        hits += abs(w[t] - off[0]) <= stats.t.ppf(0.5 + level / 2, dof) * sd[0]
    assert how == "estimated" and dof == n - 1
    assert abs(hits / reps - level) < 0.025


def test_krige_closed_forms():
    # one anchor: its offset, variance tau^2 d + noise^2 (config distance plus token distance)
    off, sd, d = krige([[8.0, 1.7]], [0.4], [0.1], 0.3, [[9.0, 1.7], [8.0, 1.7]], [10.0], [10.0, 11.0])
    assert off == pytest.approx([0.4, 0.4])
    assert sd == pytest.approx([math.sqrt(0.09 * 1 + 0.01), math.sqrt(0.09 * 1 + 0.01)])
    assert d == pytest.approx([1.0, 1.0])
    # two noiseless anchors on a line (Brownian): linear interpolation between them, and
    # the bridge variance tau^2 * a * b / (a + b) at distances a, b from them
    off, sd, _ = krige([[0.0], [1.0]], [0.0, 1.0], [0.0, 0.0], 0.5, [[0.25], [1.0]])
    assert off == pytest.approx([0.25, 1.0])
    assert sd == pytest.approx([math.sqrt(0.25 * 0.25 * 0.75 / 1.0), 0.0], abs=1e-6)


def test_several_anchors_reproduce_each_anchor():
    cfgs = [(768, 16, 0.2), (1536, 28, 0.35), (2304, 40, 0.5)]
    rows = [{"run": f"r{w}", "activation": "silu", "width": w, "depth": d, "tokens": 1e11,
             "activation_ratio": y} for w, d, y in cfgs]
    an = read_anchors(_table(rows), noise_sd=1e-6)
    df, offs = anchored_predict([c[0] for c in cfgs], [c[1] for c in cfgs], "silu", anchor=an,
                                tokens=1e11)
    assert offs["silu"].spread == "estimated"
    assert df["activation_ratio"].to_numpy() == pytest.approx([c[2] for c in cfgs], abs=1e-5)


def test_anchors_at_one_configuration_use_the_prior():
    o, tau, nv, dof, how = combine_offsets([0.4, 0.6], [0.1, 0.1], [[8.0, 10.0, 1.7]] * 2)
    assert (o, how, dof, tau) == (pytest.approx(0.5), "prior", math.inf, PRIOR_OFFSET_SD)
    assert nv == pytest.approx(0.01 / 2)


# ------------------------------------------------------------------ published runs


def _published(sparsinglaw_dir):
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    t = read_sparsinglaw_dir(sparsinglaw_dir)
    # the later half of each run's token range: past any warm-up
    keep = t.groupby("run")["tokens"].transform(lambda s: s >= 0.5 * s.max())
    return t[keep]


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_published_anchor_on_one_run_predicts_the_others(sparsinglaw_dir, act):
    """Same recipe: anchoring on one run's last checkpoint keeps the others inside the band,
    and the stated prior is not narrower than the error per sqrt(decade) seen within it."""
    t = _published(sparsinglaw_dir)
    t = t[t["activation"] == act]
    runs = sorted(t["run"].unique())
    errs = []
    for ra in runs:
        a = t[t["run"] == ra].sort_values("tokens").iloc[-1]
        for rt in runs:
            if rt == ra:
                continue
            g = t[t["run"] == rt]
            df, _ = anchored_predict(g["width"].to_numpy(), g["depth"].to_numpy(), act,
                                     anchor=a.to_frame().T, tokens=g["tokens"].to_numpy(),
                                     ffn_ratio=2.5)
            y = g["activation_ratio"].to_numpy()
            assert np.all((df["ratio_low"] <= y) & (y <= df["ratio_high"])), (ra, rt)
            # anchored logit error = the law's error at the target minus its error at the anchor
            law_a = predict(int(a["width"]), int(a["depth"]), act, tokens=float(a["tokens"]))
            e_a = _lg(law_a["activation_ratio"].iloc[0]) - _lg(float(a["activation_ratio"]))
            p = df["activation_ratio"].to_numpy()
            lp = df["law_activation_ratio"].to_numpy()
            e_t = np.log(lp / (1 - lp)) - np.log(y / (1 - y))
            assert np.allclose(np.log(p / (1 - p)) - np.log(y / (1 - y)), e_t - e_a, atol=1e-9)
            errs.append((np.log(p / (1 - p)) - np.log(y / (1 - y))) / np.sqrt(df["anchor_distance"]))
    rms = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    assert rms < PRIOR_OFFSET_SD


# ------------------------------------------------------------------ validity properties


@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0, 1), min_size=3, max_size=3), off=st.floats(-20, 20),
       sd=st.floats(0, 5), q=st.floats(0, 10))
def test_shift_band_always_valid(p, off, sd, q):
    lo, c, hi = sorted(p)
    a, b, d = shift_band([c], [lo], [hi], off, sd, q)
    assert 0 <= b[0] <= a[0] <= d[0] <= 1


@settings(max_examples=100, deadline=None)
@given(ps=st.lists(st.floats(0, 1), min_size=2, max_size=20), off=st.floats(-20, 20))
def test_shift_keeps_order(ps, off):
    ps = np.sort(np.asarray(ps))
    c, _, _ = shift_band(ps, ps, ps, off, 0.0, 0.0)
    assert np.all(np.diff(c) >= 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(act=st.sampled_from(["relu", "silu"]), width=st.sampled_from([256, 512, 768, 1536, 3072]),
       depth=st.integers(8, 48), y=st.floats(0.001, 0.999),
       anchor_tokens=st.floats(1e9, 1e13), n_prior=st.floats(0.01, 2.0))
def test_anchored_predictions_valid_and_directional(act, width, depth, y, anchor_tokens, n_prior):
    a = Anchor(run="a", activation=act, width=768, depth=16, ffn_ratio=2.5, tokens=anchor_tokens,
               activation_ratio=y)
    tokens = np.geomspace(1e9, 1e13, 12)
    df, _ = anchored_predict(width, depth, act, anchor=a, tokens=tokens, prior_sd=n_prior)
    for p, lo, hi in (("activation_ratio", "ratio_low", "ratio_high"), ("a0", "a0_low", "a0_high")):
        assert np.all((df[lo] >= 0) & (df[lo] <= df[p]) & (df[p] <= df[hi]) & (df[hi] <= 1))
    # the anchored curve moves with D exactly as the law's does (strictly monotone map) ...
    d_law = np.sign(np.diff(df["law_activation_ratio"].to_numpy()))
    d_anc = np.sign(np.diff(df["activation_ratio"].to_numpy()))
    assert np.all((d_anc == d_law) | (d_anc == 0) | (d_law == 0))
    # ... so against the law's direction only where the law itself is, and on A0's side
    want = -1 if act == "relu" else 1
    assert np.all((d_anc != -want) | (d_law == -want))
    side = np.sign(df["activation_ratio"] - df["a0"]).to_numpy()
    law_side = np.sign(df["law_activation_ratio"] - df["law_a0"]).to_numpy()
    assert np.all((side == law_side) | (side == 0) | (law_side == 0))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(act=st.sampled_from(["relu", "silu"]),
       anchors=st.lists(st.tuples(st.sampled_from([256, 768, 2048]), st.integers(8, 40),
                                  st.floats(1e9, 1e13), st.floats(0.001, 0.999)),
                        min_size=2, max_size=4),
       width=st.sampled_from([512, 4096]), depth=st.integers(8, 64))
def test_several_anchors_stay_valid(act, anchors, width, depth):
    an = [Anchor(f"r{i}", act, w, d, 2.5, t, y) for i, (w, d, t, y) in enumerate(anchors)]
    df, offs = anchored_predict(width, depth, act, anchor=an, tokens=np.geomspace(1e9, 1e13, 8))
    assert offs[act].n_anchors == len(an)
    for p, lo, hi in (("activation_ratio", "ratio_low", "ratio_high"), ("a0", "a0_low", "a0_high")):
        assert np.all((df[lo] >= 0) & (df[lo] <= df[p]) & (df[p] <= df[hi]) & (df[hi] <= 1))
    d_law = np.sign(np.diff(df["law_activation_ratio"].to_numpy()))
    d_anc = np.sign(np.diff(df["activation_ratio"].to_numpy()))
    assert np.all((d_anc == d_law) | (d_anc == 0) | (d_law == 0))


# ------------------------------------------------------------------ bad input, torch boundary


def test_bad_anchor_inputs_name_the_thing(tmp_path):
    two = _table([{"run": r, "activation": "silu", "width": 512, "depth": 8, "tokens": 1e9,
                   "activation_ratio": 0.3} for r in ("a", "b")])
    p = tmp_path / "two.csv"
    two.to_csv(p, index=False)
    assert [a.run for a in read_anchors(str(p))] == ["a", "b"]  # every usable run
    assert [a.run for a in read_anchors(f"{p}:b")] == ["b"]
    with pytest.raises(SparsityLawsError, match="no run 'c'"):
        read_anchors(two, run="c")
    with pytest.raises(SparsityLawsError, match="checkpoints"):
        read_anchors(two, checkpoints="first")
    with pytest.raises(SparsityLawsError, match="no such measurement table"):
        read_anchors(str(tmp_path / "missing.parquet"))
    with pytest.raises(SparsityLawsError, match="lacks column"):
        read_anchors(two.drop(columns=["depth"]))
    with pytest.raises(SparsityLawsError, match="ppl-p"):
        read_anchors(two.assign(metric="zero"), run="a")
    with pytest.raises(SparsityLawsError, match="activation_ratio"):
        read_anchors(two.assign(activation_ratio=1.0), run="a")
    with pytest.raises(SparsityLawsError, match="anchor .*run a.*unknown activation 'gelu'"):
        estimate_offsets(read_anchors(two.assign(activation="gelu"), run="a"))
    flagged = two.assign(not_for_fitting=["broken", None])
    with pytest.raises(SparsityLawsError, match="not for fitting"):
        read_anchors(flagged, run="a")
    assert [a.run for a in read_anchors(flagged)] == ["b"]  # the only usable run


def test_last_checkpoint_of_each_run_by_default():
    t = _table([{"run": "a", "activation": "relu", "width": 512, "depth": 8, "tokens": tk,
                 "activation_ratio": v} for tk, v in ((1e9, 0.3), (4e9, 0.2), (2e9, 0.25))])
    assert [(a.tokens, a.activation_ratio) for a in read_anchors(t)] == [(4e9, 0.2)]
    assert len(read_anchors(t, checkpoints="all")) == 3
    assert len(read_anchors(t.assign(warmup=[True, False, False]), checkpoints="all")) == 2


def test_apply_offsets_leaves_other_activations_alone():
    df = predict(1024, 20, "all", tokens=1e11)
    offs = estimate_offsets([Anchor("a", "relu", 1024, 20, 2.5, 1e11, 0.2)])
    out = apply_offsets(df, offs)
    s = out[out["activation"] == "silu"].iloc[0]
    assert not s["anchored"] and s["activation_ratio"] == df[df["activation"] == "silu"].iloc[0]["activation_ratio"]
    r = out[out["activation"] == "relu"].iloc[0]
    assert r["anchored"] and r["activation_ratio"] == pytest.approx(0.2)
    assert r["sparsity"] == pytest.approx(0.8)


def test_anchoring_never_imports_torch():
    code = ("import sys; from sparsitylaws.planning.anchor import anchored_predict, Anchor; "
            "anchored_predict(1024, 20, 'relu', anchor=Anchor('a','relu',768,16,2.5,1e10,0.1)); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_an_anchor_where_the_law_is_extrapolated_or_clamped_is_named_in_a_caveat():
    """An offset read against a clamped or far-extrapolated law may not carry (the lab's SiLU
    runs anchored at their first checkpoints): the prediction says which anchor and why."""
    from sparsitylaws.planning import EXTRAPOLATION_WARN, predict
    from sparsitylaws.planning.anchor import Anchor

    def caveats(act, tokens, ratio):
        a = Anchor(run="mine", activation=act, width=576, depth=30, ffn_ratio=2.5, tokens=tokens,
                   activation_ratio=ratio)
        df = predict([576], [30], act, tokens=[2e10], anchor=[a])
        law = predict([576], [30], act, tokens=[tokens]).iloc[0]
        return [c for c in df.attrs["caveats"] if "anchor mine" in c], law

    inside, law = caveats("silu", 2e9, 0.3)
    assert inside == [] and not law["clamped"] and law["extrap_tokens"] <= EXTRAPOLATION_WARN
    clamped, law = caveats("silu", 1e8, 0.3)
    assert law["clamped"] and len(clamped) == 1 and "clamped" in clamped[0]
    far, law = caveats("relu", 1e7, 0.2)
    assert not law["clamped"] and law["extrap_tokens"] > EXTRAPOLATION_WARN
    assert len(far) == 1 and "outside the token budgets" in far[0] and "1e+07 tokens" in far[0]
