"""Anchoring a law set on measured checkpoints (sparsitylaws.planning.anchor).

Checked against independent computations: the logit shift by hand, kriging's closed forms,
REML against the full restricted likelihood, the pooled t interval by simulation, the
published runs (a law set anchored on another run of its own recipe), and the SmolLM2
table read at run time.  Hypothesis properties: anchored values and bands stay
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
    PRIOR_DOF,
    PRIOR_NUGGET,
    PRIOR_TAU,
    Anchor,
    anchored_predict,
    apply_offsets,
    combine_offsets,
    estimate_offsets,
    offset_weight,
    read_anchors,
    shift_band,
)
from sparsitylaws.planning.offsetfield import krige, pool_tau, reml

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
    law = predict(1024, 20, "silu", tokens=3e10).iloc[0]
    o = offs["silu"]
    # the offset is logit(measured) - logit(law), computed here independently
    assert o.offset == pytest.approx(_lg(y) - _lg(law["activation_ratio"]))
    assert o.spread == "prior" and o.dof == PRIOR_DOF and o.nugget == PRIOR_NUGGET["silu"]
    assert o.tau == pytest.approx(max(PRIOR_TAU["silu"], o.floor)) and o.floor > 0
    assert "prior" in o.describe()
    # empirical-Bayes weight: 1 - (law variance at the anchor + nugget^2) / offset^2
    z = stats.norm.ppf(0.95)
    lv = ((_lg(law["ratio_high"]) - _lg(law["ratio_low"])) / (2 * z)) ** 2
    k = 1 - (lv + PRIOR_NUGGET["silu"] ** 2) / o.offset**2
    assert o.shrink == pytest.approx(k) and 0.9 < k < 1
    got = df.iloc[0]
    assert _lg(got["activation_ratio"]) == pytest.approx(_lg(law["activation_ratio"]) + k * o.offset)
    assert abs(got["activation_ratio"] - y) < 0.005  # nearly the measurement
    # at the anchor only its noise is left of the kriging sd: the band mixes sqrt(1 - k) of
    # the law's band with sqrt(k) of q * nugget, in quadrature on each side
    q = stats.t.ppf(0.95, PRIOR_DOF)
    c = _lg(got["activation_ratio"])
    up = math.sqrt((1 - k) * (_lg(law["ratio_high"]) - _lg(law["activation_ratio"])) ** 2
                   + k * (q * PRIOR_NUGGET["silu"]) ** 2)
    assert _lg(got["ratio_high"]) - c == pytest.approx(up, rel=1e-6)
    # one decade of tokens away: tau^2 * 1 + nugget^2
    far, _ = anchored_predict(1024, 20, "silu", anchor=anchors, tokens=3e11)
    assert far["recipe_offset_sd"].iloc[0] == pytest.approx(math.hypot(o.tau, o.nugget))
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
    # an offset of +1.2 logit is far beyond the law's own uncertainty: weight ~1
    assert offs["silu"].shrink > 0.99
    assert silu["activation_ratio"] == pytest.approx(float(row["activation_ratio"]), abs=1e-3)
    assert silu["ratio_low"] < float(row["activation_ratio"]) < silu["ratio_high"]
    assert silu["anchored"] and silu["law_activation_ratio"] < 0.5  # the default is far off
    relu = df[df["activation"] == "relu"].iloc[0]  # no ReLU anchor: left as the law says
    assert not relu["anchored"] and relu["activation_ratio"] == relu["law_activation_ratio"]
    assert set(offs) == {"silu"}


def _full_reml_nll(o, noise2, d, tau2, nug2, c=50.0):
    """The textbook restricted likelihood of o ~ N(1 mu, V) with V = c 11' - tau^2 d / 2
    (off the diagonal) + noise: its variogram is the model's, and REML does not see c."""
    n = o.size
    V = c - tau2 * d / 2
    np.fill_diagonal(V, c + noise2 + nug2)
    Vi = np.linalg.inv(V)
    one = np.ones(n)
    s1 = one @ Vi @ one
    P = Vi - np.outer(Vi @ one, one @ Vi) / s1
    return 0.5 * (np.linalg.slogdet(V)[1] + math.log(s1) + o @ P @ o)


def test_reml_maximizes_the_restricted_likelihood():
    rng = np.random.default_rng(3)
    pts = np.column_stack([rng.uniform(8, 9.5, 9), rng.uniform(9, 12, 9), rng.uniform(1.5, 2, 9)])
    from sparsitylaws.planning.offsetfield import distances

    d = distances(pts, pts)
    noise = np.full(9, 0.01)
    o = rng.multivariate_normal(np.zeros(9), 0.3**2 * (10 - d / 2) + np.diag(np.full(9, 0.05**2)))
    tau2, nug2 = reml(o, noise, pts)
    best = _full_reml_nll(o, noise**2, d, tau2, nug2)
    for t2 in np.geomspace(1e-4, 1.0, 25):
        for n2 in np.geomspace(1e-6, 0.1, 25):
            assert best <= _full_reml_nll(o, noise**2, d, t2, n2) + 1e-6
    # two anchors: tau^2 alone, the one contrast's square over its distance (noise removed)
    t2, n2 = reml([0.0, 0.5], [0.1, 0.1], [[8.0, 10.0, 1.7], [9.0, 10.0, 1.7]])
    assert n2 == 0.0 and t2 == pytest.approx(0.25 - 0.02, rel=1e-3)


def test_pooled_spread_closed_form_and_agreeing_anchors_only_narrow():
    tau, dof = pool_tau(0.04, 6, 0.3, 3.0)
    assert dof == 8 and tau == pytest.approx(math.sqrt((3 * 0.09 + 5 * 0.04) / 8))
    assert pool_tau(math.nan, 1, 0.3, 3.0) == (0.3, 3.0)
    # anchors that agree (one offset, +0.3 logit, at every budget): each one added narrows the
    # band at a target (t quantile times kriging sd), never widens it
    budgets = [2e10, 4e10, 8e10, 1.6e11, 3.2e11]
    law = predict(1024, 20, "relu", tokens=budgets)["activation_ratio"].to_numpy()
    y = 1 / (1 + np.exp(-(np.log(law / (1 - law)) + 0.3)))
    widths = []
    for n in range(1, 6):
        an = [Anchor(f"r{i}", "relu", 1024, 20, 2.5, budgets[i], y[i]) for i in range(n)]
        df, offs = anchored_predict(1536, 28, "relu", anchor=an, tokens=2e11)
        widths.append(float(_lg(df["ratio_high"].iloc[0]) - _lg(df["ratio_low"].iloc[0])))
    assert all(w2 <= w1 + 1e-9 for w1, w2 in zip(widths, widths[1:], strict=False)), widths


@pytest.mark.parametrize("n", [3, 6])
def test_pooled_spread_covers_new_points_by_simulation(n):
    """Offsets drawn as a Brownian field whose tau^2 is drawn from the prior (scaled inverse
    chi-square, 3 dof, around tau0), plus a nugget: the kriged offset of an unseen point with
    its pooled t interval covers near its level."""
    rng = np.random.default_rng(n)
    level, reps, hits = 0.9, 400, 0
    tau0, nug0 = 0.3, 0.05
    for _ in range(reps):
        tau = tau0 * math.sqrt(3.0 / rng.chisquare(3.0))
        xs = np.sort(rng.uniform(0, 2, n + 1))
        w = np.cumsum(np.r_[rng.normal(0, 1), rng.normal(0, tau * np.sqrt(np.diff(xs)))])
        w = w + rng.normal(0, nug0, n + 1)
        t = rng.integers(n + 1)
        keep = np.arange(n + 1) != t
        pts = np.column_stack([np.full(n, 9.0), xs[keep], np.full(n, 1.7)])
        _, tau, nug, dof, how, _ = combine_offsets(w[keep], np.zeros(n), pts, prior_sd=tau0,
                                                   prior_nugget=nug0, prior_dof=3.0)
        off, sd, _ = krige(pts, w[keep], np.full(n, nug), tau, [[9.0, xs[t], 1.7]])
        sd_new = math.sqrt(sd[0] ** 2 + nug**2)  # the new point's own nugget too
        hits += abs(w[t] - off[0]) <= stats.t.ppf(0.5 + level / 2, dof) * sd_new
    assert how == "estimated" and dof == 3 + n - 1
    assert abs(hits / reps - level) < 0.04


def test_krige_closed_forms():
    # one anchor: its offset, variance tau^2 d + noise^2 (configuration or token distance)
    off, sd, d = krige([[8.0, 10.0, 1.7]], [0.4], [0.1], 0.3, [[9.0, 10.0, 1.7], [8.0, 11.0, 1.7]])
    assert off == pytest.approx([0.4, 0.4])
    assert sd == pytest.approx([math.sqrt(0.09 * 1 + 0.01)] * 2)
    assert d == pytest.approx([1.0, 1.0])
    # two noiseless anchors on a line (Brownian): linear interpolation between them, and
    # the bridge variance tau^2 * a * b / (a + b) at distances a, b from them
    off, sd, _ = krige([[0.0], [1.0]], [0.0, 1.0], [0.0, 0.0], 0.5, [[0.25], [1.0]])
    assert off == pytest.approx([0.25, 1.0])
    assert sd == pytest.approx([math.sqrt(0.25 * 0.25 * 0.75 / 1.0), 0.0], abs=1e-6)
    # token distance in the weights: a budget leans on the checkpoint nearest it
    off, _, _ = krige([[9.0, 10.0, 1.7], [9.0, 11.0, 1.7]], [0.0, 1.0], [0.0, 0.0], 0.3,
                      [[9.0, 10.1, 1.7], [9.0, 10.9, 1.7]])
    assert off == pytest.approx([0.1, 0.9])


def test_offset_weight_is_the_positive_part_james_stein_factor():
    assert offset_weight([0.5, -0.5], [0.0625, 0.0625]) == pytest.approx(0.75)
    assert offset_weight([0.1], [0.04]) == 0.0  # explained by the law's own uncertainty
    assert offset_weight([0.0], [0.01]) == 0.0


def test_several_anchors_reproduce_each_anchor():
    cfgs = [(768, 16, 0.2), (1536, 28, 0.35), (2304, 40, 0.5)]
    rows = [{"run": f"r{w}", "activation": "silu", "width": w, "depth": d, "tokens": 1e11,
             "activation_ratio": y} for w, d, y in cfgs]
    an = read_anchors(_table(rows))
    df, offs = anchored_predict([c[0] for c in cfgs], [c[1] for c in cfgs], "silu", anchor=an,
                                tokens=1e11)
    assert offs["silu"].spread == "estimated" and offs["silu"].shrink > 0.9
    assert df["activation_ratio"].to_numpy() == pytest.approx([c[2] for c in cfgs], abs=0.02)
    assert np.all((df["ratio_low"] < [c[2] for c in cfgs]) & ([c[2] for c in cfgs] < df["ratio_high"]))


def test_anchors_at_one_configuration_use_the_prior():
    o, tau, nug, dof, how, hat = combine_offsets([0.4, 0.6], [0.1, 0.1], [[8.0, 10.0, 1.7]] * 2,
                                                 prior_sd=0.2, prior_nugget=0.03)
    assert (o, how, dof, tau, nug, hat) == (pytest.approx(0.5), "prior", PRIOR_DOF, 0.2, 0.03, None)


# ------------------------------------------------------------------ published runs


@pytest.fixture(scope="module")
def published(request):
    """The published runs, each fitted (its own warm-up rule, few bootstrap draws)."""
    from sparsitylaws.runfit.run import fit_run
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    t = read_sparsinglaw_dir(request.getfixturevalue("sparsinglaw_dir"))
    fits = {run: fit_run(g["tokens"].to_numpy(float), g["activation_ratio"].to_numpy(float), run=run,
                         activation=str(g["activation"].iloc[0]), n_boot=30, compare=False,
                         backtest=False)
            for run, g in t.sort_values("tokens").groupby("run")}
    return t, fits


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_a_law_set_anchored_on_another_run_of_its_own_recipe(published, act):
    """Same recipe (the true offset is 0): a law set fitted on two published scales, anchored
    on every kept checkpoint of a third run, predicting the fourth run's kept checkpoints, over
    every such split.  Mean error no worse than unanchored by more than 0.1 pp, and bands
    at most 1.5x the unanchored ones (issue 20)."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from recipe_transfer import same_recipe_splits

    t, fits = published
    mae_un, mae_an, ratio = [], [], []
    for _, un, an, y in same_recipe_splits(t, fits, acts=(act,), n_draws=200):
        mae_un.append(np.mean(np.abs(un["activation_ratio"] - y)))
        mae_an.append(np.mean(np.abs(an["activation_ratio"] - y)))
        ratio.append(np.mean(an["ratio_high"] - an["ratio_low"])
                     / np.mean(un["ratio_high"] - un["ratio_low"]))
    assert len(ratio) == 12  # 6 pairs of law-set scales x 2 anchor/target orders
    print(act, 100 * np.mean(mae_un), 100 * np.mean(mae_an), np.round(ratio, 2))
    assert np.mean(mae_an) <= np.mean(mae_un) + 0.001
    assert max(ratio) <= 1.5


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
    # every anchor is used, or refused (below the law's fitted budgets) with a caveat
    assert offs[act].n_anchors + len(offs[act].refused) == len(an)
    assert len([c for c in df.attrs["caveats"] if "refused" in c]) == len(offs[act].refused)
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


def test_every_checkpoint_by_default_or_the_last():
    t = _table([{"run": "a", "activation": "relu", "width": 512, "depth": 8, "tokens": tk,
                 "activation_ratio": v} for tk, v in ((1e9, 0.3), (4e9, 0.2), (2e9, 0.25))])
    assert len(read_anchors(t)) == 3
    assert [(a.tokens, a.activation_ratio) for a in read_anchors(t, checkpoints="last")] == [(4e9, 0.2)]
    assert len(read_anchors(t.assign(warmup=[True, False, False]))) == 2


def test_a_warmup_anchor_is_refused_or_named():
    """An anchor below the budgets the law set's nearest run was fitted on (the default law
    set: 9.5 tokens per parameter, 5% of the paper's budget) sits in that run's warm-up: with
    other anchors it is refused, alone it is kept, and either way a caveat names it."""
    n = predict(1280, 24, "silu", tokens=1e10)["n_params"].iloc[0]
    early = Anchor("mine", "silu", 1280, 24, 2.5, 8.0 * n, 0.33)  # 8 tokens per parameter
    late = Anchor("mine", "silu", 1280, 24, 2.5, 150.0 * n, 0.38)
    df, offs = anchored_predict(1280, 24, "silu", anchor=[early, late], tokens=[1e11])
    o = offs["silu"]
    assert o.n_anchors == 1 and [a["tokens"] for a in o.refused] == [early.tokens]
    named = [c for c in df.attrs["caveats"] if "refused" in c]
    assert len(named) == 1 and "mine" in named[0] and "warm-up" in named[0]
    alone_df, alone = anchored_predict(1280, 24, "silu", anchor=[early], tokens=[1e11])
    assert alone["silu"].n_anchors == 1 and alone["silu"].refused == []
    kept = [c for c in alone_df.attrs["caveats"] if "anchor mine" in c]
    assert len(kept) == 1 and "warm-up" in kept[0] and "kept: no other anchor" in kept[0]


def test_apply_offsets_leaves_other_activations_alone():
    df = predict(1024, 20, "all", tokens=1e11)
    offs = estimate_offsets([Anchor("a", "relu", 1024, 20, 2.5, 1e11, 0.2)])
    out = apply_offsets(df, offs)
    s = out[out["activation"] == "silu"].iloc[0]
    assert not s["anchored"] and s["activation_ratio"] == df[df["activation"] == "silu"].iloc[0]["activation_ratio"]
    r = out[out["activation"] == "relu"].iloc[0]
    assert r["anchored"] and r["activation_ratio"] == pytest.approx(0.2, abs=1e-3)
    assert r["sparsity"] == pytest.approx(1 - r["activation_ratio"])


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
