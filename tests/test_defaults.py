"""The packaged default law set: equal to what its builder builds, honest about its sources."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsitylaws import paper
from sparsitylaws.architecture import check_section
from sparsitylaws.lawset import packaged as defaults
from sparsitylaws.lawset.fileformat import default_lawset_text, load_lawset
from sparsitylaws.planning import default_lawset


def test_packaged_json_equals_the_build():
    """The packaged file is what its builder writes: the same text, numbers within the stated
    tolerance of tests/textcompare.py (other CPUs differ in the last bits of a float)."""
    from textcompare import text_differences

    diff = text_differences(default_lawset_text(), default_lawset.default_json_text())
    assert not diff, ("sparsitylaws/lawset/default_lawset.json is stale: run "
                      f"python -m sparsitylaws.planning.default_lawset ({'; '.join(diff)})")


def test_default_lawset_loads_and_names_its_source():
    ls = load_lawset(None)
    assert ls.name == defaults.DEFAULT_NAME
    assert paper.CITATION in ls.provenance["source"]
    assert any("width/depth slope" in c for c in ls.provenance["caveats"])
    sec = check_section(ls.architecture)
    assert set(sec["activations"]) == {"relu", "silu"}
    assert sec["activations"]["silu"]["widthdepth"] is None
    json.dumps(ls.to_dict())


def test_scale_trends_reproduce_table2_through_their_lines():
    """The trend lines are least squares through the Table 2 values (independent polyfit)."""
    sec = load_lawset(None).architecture
    for act in ("relu", "silu"):
        sc = sec["activations"][act]["scale"]
        rows = [(paper.CONFIGS[s].n_params, v) for (a, s), v in paper.TABLE2.items() if a == act]
        x = np.log10([n for n, _ in rows])
        for j, name in enumerate(sc["param_names"]):
            vals = np.array([v[name] for _, v in rows])
            g = np.log(vals) if name in ("alpha", "c") else vals
            slope, icpt = np.polyfit(x - x.mean(), g, 1)
            assert sc["coef"][1][j] == pytest.approx(slope, rel=1e-9, abs=1e-12)
            assert sc["coef"][0][j] == pytest.approx(icpt, rel=1e-9, abs=1e-12)


def test_widthdepth_slope_follows_from_the_published_numbers():
    wd = load_lawset(None).architecture["activations"]["relu"]["widthdepth"]
    c01 = paper.CONFIGS["0.1b"]
    want = (paper.PLATEAU_ACTIVATION_RATIO_RELU - paper.TABLE2[("relu", "0.1b")]["A0"]) / (
        paper.BOTTLENECK_WIDTH_DEPTH - c01.width_depth_ratio)
    assert wd["point"]["slope"] == pytest.approx(want)
    lo, hi = wd["slope_interval_90"]
    assert lo < want < hi
    assert hi - lo > 0.5 * want  # few published points: the interval must be wide


def test_default_reproduces_published_limits_at_published_scales():
    from sparsitylaws.planning import predict

    for (act, scale), coef in paper.TABLE2.items():
        c = paper.CONFIGS[scale]
        row = predict(c.width, c.depth, activation=act).iloc[0]
        # the limit interval at a published scale contains the published A0
        assert row["a0_low"] <= coef["A0"] <= row["a0_high"], (act, scale, row["a0_low"], row["a0_high"])


def test_no_published_run_enters_as_exact():
    sc = load_lawset(None).architecture["activations"]
    for act in ("relu", "silu"):
        draws = np.asarray(sc[act]["scale"]["run_draws"])  # (draws, runs, params)
        names = sc[act]["scale"]["param_names"]
        spread = draws[:, :, names.index("A0")].std(axis=0)
        assert np.all(spread > 0.001), (act, spread)  # every run's A0 is uncertain (> 0.1 point)
        # the draws are the published values moved by whole refit-shift vectors
        theta = np.asarray(sc[act]["scale"]["theta"])
        shifts = np.array(list(defaults.REFIT_SHIFTS[act].values()))
        ia0 = names.index("A0")
        moved = np.unique(np.round(np.abs(draws[:, 0, ia0] - theta[0, ia0]), 6))
        assert set(moved) <= set(np.round(np.abs(shifts[:, ia0]), 6))


def test_refit_shifts_are_what_a_refit_gives(sparsinglaw_dir):
    got = defaults.refit_shifts(sparsinglaw_dir)
    for act, runs in defaults.REFIT_SHIFTS.items():
        for scale, want in runs.items():
            # the stored shifts were produced by this command; the fitter may move a little
            assert np.allclose(got[act][scale], want, atol=0.02), (act, scale, got[act][scale], want)
