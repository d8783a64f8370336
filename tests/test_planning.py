"""Planning: parameter counts, regimes, extrapolation distance and vectorized predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparsitylaws import paper
from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.planning import compare_shapes, predict
from sparsitylaws.planning.configs import extrapolation_distance, parameter_counts, regime


@pytest.mark.parametrize("scale", sorted(paper.CONFIGS))
def test_counts_match_the_papers_configurations(scale):
    c = paper.CONFIGS[scale]
    n, total = parameter_counts(c.width, c.depth)
    assert float(n) == pytest.approx(paper.NONEMB_COEF * c.width**2 * c.depth)
    assert float(n) == pytest.approx(c.n_params, rel=0.02)  # published, rounded to 3 digits
    assert float(total - n) == pytest.approx(paper.VOCAB_SIZE * c.width)


def test_counts_from_explicit_matrices():
    d, L, h, kv, hd, fr = 4096, 32, 32, 8, 128, 3.5
    # independent count: every weight matrix of a layer, spelled out
    q = d * h * hd
    k = v = d * kv * hd
    o = h * hd * d
    gate = up = down = d * int(fr * d)
    want = L * (q + k + v + o + gate + up + down)
    n, _ = parameter_counts(d, L, ffn_ratio=fr, n_heads=h, n_kv_heads=kv, head_dim=hd)
    assert float(n) == want
    n2, _ = parameter_counts(d, L, ffn_ratio=fr, gated=False, n_heads=h, n_kv_heads=kv, head_dim=hd)
    assert float(n2) == want - L * gate
    _, tot = parameter_counts(d, L, vocab_size=32000, tie_embeddings=False)
    assert float(tot) == pytest.approx(11.5 * d * d * L + 2 * 32000 * d)


def test_regime_boundaries():
    reg = regime(np.array([50.0, 74.0, 113.9, 114.0, 282.0, 300.0]), 114.0, (74.0, 282.0))
    assert list(reg["bottleneck_side"]) == ["below", "below", "below", "above", "above", "above"]
    assert list(reg["stable_band"]) == ["outside", "inside", "inside", "inside", "inside", "outside"]


def test_extrapolation_distance():
    d = extrapolation_distance(np.array([50.0, 100.0, 400.0, 25.0]), (50.0, 200.0))
    assert np.allclose(d, [0.0, 0.0, math.log10(2), math.log10(2)])
    assert np.isnan(extrapolation_distance(np.array([1.0]), None)).all()


def test_headline_configuration_on_the_default_law_set():
    df = predict(4096, 48)
    assert list(df["activation"]) == ["relu", "silu"]
    r = df.iloc[0]
    assert r["n_params"] == pytest.approx(9.26e9, rel=0.005)
    assert r["width_depth_ratio"] == pytest.approx(85.333, abs=1e-3)
    assert r["tokens"] == pytest.approx(190 * r["n_params"])
    assert r["bottleneck_side"] == "below" and r["stable_band"] == "inside"
    for _, row in df.iterrows():
        assert row["a0_low"] < row["a0"] < row["a0_high"]
        assert row["ratio_low"] <= row["activation_ratio"] <= row["ratio_high"]
        assert "above the largest fitted scale" in row["warning"]  # 9.3e9 is beyond the published scales
    relu, silu = df.iloc[0], df.iloc[1]
    assert relu["activation_ratio"] < 0.2 < silu["activation_ratio"]
    assert df["lawset"].iloc[0].startswith("default")


def test_vectorized_equals_row_by_row():
    rng = np.random.default_rng(0)
    W = rng.integers(4, 40, 25) * 128
    L = rng.integers(8, 80, 25)
    T = rng.uniform(1e10, 3e12, 25)
    vec = predict(W, L, tokens=T, activation="relu")
    rows = pd.concat([predict(int(w), int(d), tokens=t, activation="relu") for w, d, t in zip(W, L, T, strict=True)],
                     ignore_index=True)
    cols = ["n_params", "a0", "a0_low", "a0_high", "activation_ratio", "ratio_low", "ratio_high", "extrapolation"]
    np.testing.assert_allclose(vec[cols].to_numpy(float), rows[cols].to_numpy(float), rtol=1e-12)


def test_relu_deeper_is_sparser_below_the_bottleneck_only():
    # same N, ratios 48 and 96 (both below 114): deeper (lower ratio) has lower A0
    df = predict([3072, 3840], [64, 40], activation="relu", tokens=1e12)
    assert df["a0"].iloc[0] < df["a0"].iloc[1]
    # both above the bottleneck: the width/depth law is flat there
    flat = predict([3840, 5376], [24, 12], activation="relu", tokens=1e12)
    assert flat["a0"].iloc[0] == pytest.approx(flat["a0"].iloc[1], abs=2e-3)


def test_compare_shapes_marks_sparsest_and_band():
    df = compare_shapes(7e9, [16, 24, 32, 48, 64])
    assert set(df["activation"]) == {"relu", "silu"}
    assert (df.groupby("activation")["sparsest"].sum() == 1).all()
    assert ((df["n_params"] / 7e9 - 1).abs() < 0.15).all()
    relu = df[df["activation"] == "relu"]
    assert relu.loc[relu["sparsest"], "activation_ratio"].iloc[0] == relu["activation_ratio"].min()
    assert set(relu.loc[relu["stable_band"] == "outside", "depth"]) == {16, 64}


@pytest.mark.parametrize("kw,match", [
    ({"width": 0, "depth": 4}, "width"),
    ({"width": 4096, "depth": -1}, "depth"),
    ({"width": 4096, "depth": 48.5}, "whole number"),
    ({"width": 4096, "depth": 48, "activation": "gelu"}, "activation"),
    ({"width": 4096, "depth": 48, "tokens": 0}, "tokens"),
    ({"width": 4096, "depth": 48, "level": 1.5}, "level"),
    ({"width": 4096, "depth": 48, "ffn_ratio": -2}, "ffn_ratio"),
])
def test_bad_input(kw, match):
    with pytest.raises(SparsityLawsError, match=match):
        predict(**kw)


def test_public_api_export():
    import sparsitylaws

    assert sparsitylaws.predict is predict
    assert sparsitylaws.load_lawset(None).architecture is not None


def test_extrapolation_distance_slack_and_log_units():
    from sparsitylaws.planning.configs import extrapolation_distance

    d = extrapolation_distance(np.array([4.522e8, 4.52e8 * 0.995, 4.52e9, 4.52e7, 9.0e8]), (4.52e8, 9.0e8))
    assert d[0] == 0.0 and d[1] == 0.0 and d[4] == 0.0  # inside, or within 1% of an end
    assert d[2] == pytest.approx(np.log10(4.52e9 / 9.0e8))
    assert d[3] == pytest.approx(1.0)
    assert np.isnan(extrapolation_distance(np.array([1.0]), None)).all()
