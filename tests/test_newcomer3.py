"""Issue 21 (a newcomer's third pass): nothing read silently wrong, a bottom line first.

Each test names the item of the issue it checks; every one of them failed before the fix.
The bad-input battery (one clear line, exit status 2) grows by the cases of the issue.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import REPO_ROOT
from test_plots import synthetic_curves, write_synthetic

from sparsitylaws.lawset.fileformat import LawSet, load_lawset
from sparsitylaws.planning import predict

LAB_GPU = REPO_ROOT / "measurements" / "lab-gpu.laws.json"
#: The first lab-gpu law set (commit a928105, before issue 19's fitter): SiLU limits at their bound
#: 100% and alpha at 0, the cases whose flags these tests check (draws thinned).
FIRST_FIT = REPO_ROOT / "tests" / "data" / "lab-gpu-first-fit.laws.json"


# ------------------------------------------------------------------ the bad-input battery


def _grid(tmp_path, text: str, name: str = "g.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_PREDICT = {
    # a gated cell that is neither true nor false used to be read as True
    "grid-gated-maybe": (["--grid", "{grid}"], "width,depth,gated\n4096,48,maybe\n",
                         ["column 'gated' row 1", "'maybe'"]),
    # a misspelt or unknown column used to be dropped (the default budget then used)
    "grid-misspelt": (["--grid", "{grid}"], "width,depth,token\n4096,48,1e12\n",
                      ["unknown column 'token'", "did you mean 'tokens'"]),
    "grid-unknown": (["--grid", "{grid}"], "width,depth,colour\n4096,48,red\n", ["unknown column 'colour'"]),
    # --tokens beside a grid's tokens column used to be silently overridden
    "grid-tokens-twice": (["--grid", "{grid}", "--tokens", "1e12"], "width,depth,tokens\n4096,48,2e12\n",
                          ["--tokens", "'tokens' column"]),
    "grid-gated-twice": (["--grid", "{grid}", "--no-gated"], "width,depth,gated\n4096,48,yes\n",
                         ["--gated/--no-gated", "'gated' column"]),
    # a 'nan' cell used to be called blank
    "grid-nan": (["--grid", "{grid}"], "width,depth\nnan,48\n", ["column 'width' row 1", "not a finite number",
                                                                 "'nan'"]),
    "width-abc": (["--width", "abc", "--depth", "48"], None, ["--width", "'abc' is not a number"]),
    # heads not dividing the width, kv-heads or depths without what they need: used to be accepted
    "heads-7": (["--width", "4096", "--depth", "48", "--heads", "7"], None, ["'heads' must divide 'width'"]),
    "kv-heads-alone": (["--width", "4096", "--depth", "48", "--kv-heads", "8"], None, ["--kv-heads needs --heads"]),
    "depths-alone": (["--width", "4096", "--depth", "48", "--depths", "16,32"], None,
                     ["--depths goes with --params"]),
    # a configuration of 5.5e26 parameters used to be answered (with a warning)
    "width-1e12": (["--width", "1e12", "--depth", "48"], None, ["5.52e+26 non-embedding parameters", "1e+14"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICT))
def test_predict_refuses_what_it_used_to_read_wrong(case, tmp_path):
    args, grid, fragments = BAD_PREDICT[case]
    if grid is not None:
        g = _grid(tmp_path, grid)
        args = [a.replace("{grid}", str(g)) for a in args]
    assert_one_line_error(run_cli("predict", *args), *fragments)


def test_grid_gated_cells_are_read_as_written(tmp_path):
    g = _grid(tmp_path, "width,depth,gated\n4096,48,no\n4096,48,yes\n4096,48,False\n4096,48,1\n4096,48,\n")
    r = run_cli("predict", "--grid", g, "--activation", "relu", "--json")
    assert r.status == 0, r.stderr
    rows = json.loads(r.stdout)["predictions"]
    assert [p["gated"] for p in rows] == [False, True, False, True, True]  # blank: the default
    d, L = 4096, 48  # independent count: attention 4 d^2, FFN (3 or 2) x d x 2.5 d, per layer
    assert rows[0]["n_params"] == pytest.approx(L * (4 * d * d + 2 * d * 2.5 * d), rel=1e-12)
    assert rows[1]["n_params"] == pytest.approx(L * (4 * d * d + 3 * d * 2.5 * d), rel=1e-12)


def test_tab_separated_grid_and_tokens_applied_to_a_grid_without_the_column(tmp_path):
    g = _grid(tmp_path, "width\tdepth\n2048\t24\n4096\t48\n", "g.tsv")
    r = run_cli("predict", "--grid", g, "--activation", "relu", "--tokens", "1e12", "--json")
    assert r.status == 0, r.stderr
    rows = json.loads(r.stdout)["predictions"]
    assert [(p["width"], p["depth"], p["tokens"]) for p in rows] == [(2048, 24, 1e12), (4096, 48, 1e12)]
    g2 = _grid(tmp_path, "width;depth\n2048;24\n", "g2.csv")  # a semicolon CSV, as spreadsheets write
    assert run_cli("predict", "--grid", g2).status == 0


def test_a_lawset_without_its_runs_section_is_refused(tmp_path):
    data = json.loads(LAB_GPU.read_text())
    del data["runs"]
    (tmp_path / "a.json").write_text(json.dumps(data))
    r = run_cli("predict", "--width", "256", "--depth", "4", "--laws", tmp_path / "a.json")
    assert_one_line_error(r, "no 'runs' section")
    data["runs"] = {}  # emptied: the runs it was fitted on are gone
    (tmp_path / "b.json").write_text(json.dumps(data))
    r = run_cli("predict", "--width", "256", "--depth", "4", "--laws", tmp_path / "b.json")
    assert_one_line_error(r, "lacks 15 run(s) the law set was fitted on")
    load_lawset(None)  # the packaged default has an empty runs section: still fine


def test_a_parquet_table_given_as_laws_is_named(tmp_path):
    table = REPO_ROOT / "measurements" / "smollm2-135m.parquet"
    r = run_cli("predict", "--width", "576", "--depth", "30", "--laws", table)
    assert_one_line_error(r, "is a Parquet measurement table, not a law set")
    assert "codec" not in r.stderr


def test_ingest_tokens_scale_on_raw_counts_and_percent_on_fractions(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("tokens,activation_ratio\n" + "".join(f"{t},{r}\n" for t, r in
                                                          ((1e10, 0.2), (2e10, 0.15), (4e10, 0.12))))
    out = tmp_path / "t.parquet"
    r = run_cli("ingest", "csv", csv, "-o", out, "--set", "run=mine-relu", "--tokens-scale", "1e9")
    assert_one_line_error(r, "--tokens-scale 1e+09", "raw token counts")
    assert not out.exists()
    r = run_cli("ingest", "csv", csv, "-o", out, "--set", "run=mine-relu", "--ratio-percent")
    assert r.status == 0, r.stderr
    assert "warning:" in r.stderr and "below 1" in r.stderr and "--ratio-percent" in r.stderr
    pct = tmp_path / "pct.csv"
    pct.write_text("tokens,activation_ratio\n1e10,20\n2e10,15\n")
    r = run_cli("ingest", "csv", pct, "-o", tmp_path / "p.parquet", "--set", "run=p-relu", "--ratio-percent")
    assert r.status == 0 and r.stderr == ""


def test_plot_size_errors_name_size(tmp_path):
    r = run_cli("plot", "--kind", "scale", "-o", tmp_path / "s.png", "--size", "0x0")
    assert_one_line_error(r, "--size 0x0")
    assert "--width" not in r.stderr


def test_fit_on_an_unknown_activation_fails_before_fitting(tmp_path, monkeypatch):
    from sparsitylaws.lawset import build

    df = synthetic_curves()
    flat = df[df["run"] == df["run"].iloc[0]].copy()
    flat["run"], flat["activation"] = "zz-tanh", "tanh"
    flat["activation_ratio"] = 0.3 + 1e-4 * np.sin(np.arange(len(flat)))  # no direction
    path = write_synthetic(tmp_path / "t.parquet", pd.concat([df, flat]))

    def no_fit(*a, **k):
        raise AssertionError("a run was fitted before the bad input was found")

    monkeypatch.setattr(build, "_fit_one", no_fit)
    r = run_cli("fit", path, "-o", tmp_path / "l.json")
    assert_one_line_error(r, "zz-tanh", "--form")


# ------------------------------------------------------------------ one vocabulary


def test_lawset_predict_and_predict_share_one_vocabulary():
    ls = load_lawset(LAB_GPU)
    fit = ls.runs["gpu-relu-w96-d16"]
    inside = math.sqrt(fit.tokens_b_min * fit.tokens_b_max) * 1e9
    a = ls.predict(run="gpu-relu-w96-d16", tokens=[inside, 1e9])
    b = predict(96, 16, activation="relu", lawset=ls)
    shared = {"tokens", "activation_ratio", "ratio_low", "ratio_high", "sparsity", "level", "extrapolation",
              "warning"}
    assert shared <= set(a.columns) and shared <= set(b.columns)
    assert "estimate" not in a.columns and "conf_low" not in a.columns
    for df in (a, b):  # extrapolation: log10 units outside the fitted range, a float in both
        assert df["extrapolation"].dtype == float
    assert a["extrapolation"].iloc[0] == 0.0 and a["warning"].iloc[0] == ""
    assert a["extrapolation"].iloc[1] == pytest.approx(math.log10(1e9 / (fit.tokens_b_max * 1e9)), rel=1e-12)
    np.testing.assert_allclose(a["sparsity"], 1 - a["activation_ratio"], rtol=0, atol=0)


def test_predict_broadcast_errors_name_the_arguments():
    from sparsitylaws.errors import SparsityLawsError

    with pytest.raises(SparsityLawsError, match=r"'width' shape \(2,\), 'depth' shape \(3,\)"):
        predict([2048, 4096], [16, 24, 32])
    with pytest.raises(SparsityLawsError, match=r"'tokens' shape \(3,\)"):
        predict([2048, 4096], 24, tokens=[1e11, 2e11, 3e11])


def test_text_columns_are_categoricals_with_every_activation():
    df = predict([2048, 4096], [24, 48], activation="all")
    assert set(df["activation"]) == {"relu", "silu"}
    from sparsitylaws.planning.configs import CATEGORICAL_COLUMNS

    for col in CATEGORICAL_COLUMNS:
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    doc = (REPO_ROOT / "docs" / "planning.md").read_text()
    listed = doc.split("The few-valued text columns (", 1)[1].split(")", 1)[0]
    assert {c.strip(" `\n") for c in listed.split(",")} == set(CATEGORICAL_COLUMNS)


# ------------------------------------------------------------------ the law set's own budget, regime, bounds


def test_default_budget_is_the_lawsets_own_recipe():
    ls = load_lawset(LAB_GPU)
    hi = max(e["ranges"]["tokens_per_param"][1] for e in ls.architecture["activations"].values())
    row = predict(256, 4, activation="relu", lawset=ls).iloc[0]
    assert row["tokens_per_param"] == pytest.approx(hi, rel=1e-12)
    assert 60 < hi < 66  # the lab's runs saw about 63 tokens per parameter, not 190
    assert "tokens" not in row["warning"]  # the default budget is inside the fitted budgets
    r = run_cli("predict", "--width", "256", "--depth", "4", "--laws", LAB_GPU)
    assert f"default: {hi:.0f} per non-embedding parameter" in r.stdout
    assert predict(4096, 48).iloc[0]["tokens_per_param"] == pytest.approx(190.0)  # the packaged default


def test_regime_line_without_a_supported_breakpoint():
    ls = load_lawset(LAB_GPU)
    assert ls.architecture["activations"]["relu"]["widthdepth"]["model"] != "hinge"
    r = run_cli("predict", "--width", "4096", "--depth", "48", "--laws", LAB_GPU)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("regime (relu"))
    assert "fitted" not in line and "paper" not in line and "114" not in line
    assert "no breakpoint" in line
    row = predict(4096, 48, activation="relu", lawset=ls).iloc[0]
    assert row["bottleneck_side"] == "n/a" and "114" not in row["regime"]


def test_a0_at_its_bound_is_widened_to_what_the_curve_guarantees():
    from sparsitylaws.planning.configs import A0_BOUND_TOL, a0_at_bound

    pr = {"a0": np.array([0.9999, 0.5, 1e-4]), "a0_low": np.array([0.998, 0.4, 0.0]),
          "a0_high": np.array([1.0, 0.6, 2e-4]), "ratio_low": np.array([0.38, 0.45, 0.05]),
          "ratio_high": np.array([0.43, 0.55, 0.09])}
    flags = a0_at_bound(pr)
    assert flags.tolist() == [True, False, True]
    assert (pr["a0_low"][0], pr["a0_high"][0]) == (0.38, 1.0)  # at the top: down to A(D)'s low end
    assert (pr["a0_low"][2], pr["a0_high"][2]) == (0.0, 0.09)  # at the bottom: up to A(D)'s high end
    assert (pr["a0_low"][1], pr["a0_high"][1]) == (0.4, 0.6)  # inside: untouched
    assert A0_BOUND_TOL <= 0.01


def test_a0_at_its_bound_is_flagged_in_every_output(tmp_path):
    ls = load_lawset(FIRST_FIT)
    row = predict(4096, 48, activation="silu", lawset=ls).iloc[0]
    assert row["a0"] >= 0.995 and row["a0_at_bound"]
    assert row["a0_high"] - row["a0_low"] > 0.2  # not a tight, certain answer
    assert "sits at its bound 100%" in row["warning"]
    r = run_cli("predict", "--width", "4096", "--depth", "48", "--laws", FIRST_FIT)
    silu = next(ln for ln in r.stdout.splitlines() if ln.startswith("silu "))
    assert "A0 at its bound" in silu
    r = run_cli("predict", "--width", "4096", "--depth", "48", "--laws", FIRST_FIT, "--json")
    p = next(p for p in json.loads(r.stdout)["predictions"] if p["activation"] == "silu")
    assert p["a0_at_bound"] and any("sits at its bound" in w for w in p["warnings"])
    from sparsitylaws.cli.fit import headline_lines

    assert any(ln.startswith("  silu: A0") and "AT ITS BOUND" in ln for ln in headline_lines(ls))


# ------------------------------------------------------------------ fit: a bottom line first


def test_fit_summary_comes_first_counts_warnings_and_fits_in_80_lines():
    from sparsitylaws.cli.fit import MAX_LINES, render_summary

    ls = load_lawset(LAB_GPU)
    text = render_summary(ls, "laws.json")
    lines = text.splitlines()
    assert lines[0].startswith("fitted 15 run(s)") and len(lines) <= MAX_LINES == 80
    assert lines.index("laws across runs:") < next(i for i, ln in enumerate(lines) if ln.startswith("runs ("))
    for code in ("weakly_identified", "param_at_bound"):  # counted against a brute-force count
        k = sum(any(w.get("code") == code for w in f.warnings) for f in ls.runs.values())
        if k:
            assert any(ln.split() == [code, str(k), "run(s)"] for ln in lines), code
    many = LawSet(name="many", runs={f"{n}-{i}": f for i in range(7) for n, f in ls.runs.items()},
                  run_info={}, architecture=ls.architecture, provenance=ls.provenance)
    lines = render_summary(many).splitlines()
    assert len(lines) <= MAX_LINES and "more runs: 'fit -v' lists each" in lines[-1]


def test_fit_prints_the_summary_and_details_only_with_v(tmp_path):
    path = write_synthetic(tmp_path / "t.parquet", synthetic_curves())
    r = run_cli("fit", path, "-o", tmp_path / "l.json", "--n-boot", "0", "--no-backtest")
    assert r.status == 0, r.stderr
    assert r.stdout.startswith("fitted 4 run(s)") and "parameter     estimate" not in r.stdout
    v = run_cli("fit", path, "-o", tmp_path / "l.json", "--n-boot", "0", "--no-backtest", "-v")
    assert v.stdout.startswith("fitted 4 run(s)") and "parameter     estimate" in v.stdout


def test_fit_progress_is_quiet_at_first_then_paced():
    from sparsitylaws.cli.progress import LOG_EVERY, QUIET_SECONDS, FitProgress

    now = [0.0]
    out = io.StringIO()
    p = FitProgress(out, clock=lambda: now[0])
    for t, run in ((0.5, "a"), (QUIET_SECONDS + 0.1, "b"), (QUIET_SECONDS + 1, "c"),
                   (QUIET_SECONDS + LOG_EVERY + 0.2, "d")):
        now[0] = t
        p(run, 1, 4)
    p.close()
    lines = out.getvalue().splitlines()
    assert [ln.rsplit(" ", 1)[-1] for ln in lines] == ["b", "d"]  # not before 3 s, then every 10 s
    assert lines[0].startswith("fit: 1/4 runs fitted, 3 s")


# ------------------------------------------------------------------ report reuses a law set


def test_report_reuses_a_matching_laws_json_and_says_why_it_does_not(tmp_path, monkeypatch):
    from sparsitylaws.lawset import build
    from sparsitylaws.tables.io import read_table

    monkeypatch.chdir(tmp_path)
    table = write_synthetic(tmp_path / "measurements" / "t.parquet", synthetic_curves())
    build.fit_table(read_table(table), n_boot=0, backtest=False, name="laws",
                    sources=[str(table)]).save(tmp_path / "laws.json")
    calls = []
    real = build.fit_table
    monkeypatch.setattr(build, "fit_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = run_cli("report", "-o", "r.md", "--n-boot", "0")
    assert r.status == 0, r.stderr
    assert calls == [] and "laws.json, fitted on these same measurements" in r.stderr
    changed = synthetic_curves(seed=2)  # other measurements of the same runs
    write_synthetic(table, changed)
    r = run_cli("report", "-o", "r.md", "--n-boot", "0")
    assert r.status == 0, r.stderr
    assert calls == [1] and "laws.json was not used" in r.stderr and "measurements changed" in r.stderr


# ------------------------------------------------------------------ crosscheck's table


def test_crosscheck_table_keeps_its_columns_apart_and_prints_percent():
    from sparsitylaws.cli.check import table_lines

    res = pd.DataFrame([{"run": "gpu-relu-w96-d16", "method": m, "n_points": 20, "mae": 0.01,
                         "max_abs_error": 0.02, "bias": -0.005, "coverage_curve": 0.9,
                         "coverage_point": 1.0, "a0_predicted": 0.1, "a0_low": 0.08, "a0_high": 0.12,
                         "a0_fitted": 0.095} for m in ("coef", "excess")])
    lines = table_lines(res, 0.9)
    assert all("gpu-relu-w96-d16coef" not in ln for ln in lines)
    row = lines[1].split()
    assert row[:3] == ["gpu-relu-w96-d16", "coef", "20"]
    assert "10.00% [8.00%, 12.00%] vs 9.50%" in lines[1]
    header = lines[0]
    assert header.index("method") > header.index("run") + len("gpu-relu-w96-d16")


# ------------------------------------------------------------------ hygiene


def test_the_readmes_outputs_are_ignored_and_measurements_readme_stays_inside():
    ignore = (REPO_ROOT / ".gitignore").read_text().splitlines()
    for entry in ("/laws.json", "/report.html", "/lab-ci/", "/SparsingLawData/"):
        assert entry in ignore, entry
    text = (REPO_ROOT / "measurements" / "README.md").read_text()
    assert "../shared" not in text  # the converted table's command uses the README's own clone
    assert "sparsitylaws ingest sparsinglaw-data SparsingLawData/data" in text


# ------------------------------------------------------------------ figures


def test_sign_runs_pvalue_against_brute_force():
    from itertools import permutations

    from sparsitylaws.views.plots.common import sign_runs_pvalue

    for signs in ([1, 1, 1, -1, -1, -1, 1], [1, -1, 1, -1, 1, 1], [1, 1, 1, 1, -1, -1, -1, -1],
                  [-1, 1, 1, -1, -1, 1, 1, 1]):
        runs, p = sign_runs_pvalue(np.asarray(signs, float) * 0.3)
        want = 1 + sum(a != b for a, b in zip(signs, signs[1:], strict=False))
        orders = set(permutations(signs))  # every arrangement of the same signs, equally likely
        few = sum(1 + sum(a != b for a, b in zip(o, o[1:], strict=False)) <= want for o in orders)
        assert runs == want and p == pytest.approx(few / len(orders), rel=1e-12)


def test_scale_figure_keeps_runs_at_their_bound_out_of_the_range():
    from sparsitylaws.views.plots import plot_scale
    from sparsitylaws.views.plots.scale import LOG_ROOM, _at_bound

    ls = load_lawset(FIRST_FIT)
    sc = ls.architecture["activations"]["silu"]["scale"]
    bound = _at_bound(ls, sc, "alpha")
    assert bound.any()  # the lab's SiLU fits left alpha at 0 in some runs
    fig = plot_scale(ls)
    ax = next(a for a in fig.axes if a.get_title().startswith("silu: alpha"))
    lo, hi = ax.get_ylim()
    names = sc["param_names"]
    theta = np.asarray(sc["theta"], float)[:, names.index("alpha")]
    free = theta[~bound]
    assert math.log10(hi / lo) <= math.log10(free.max() / free.min()) + 2 * LOG_ROOM + 2
    assert any(ln.get_marker() == "X" for ln in ax.lines)


def test_u_shaped_residuals_get_a_remark_and_flat_noise_does_not():
    from matplotlib.figure import Figure

    from sparsitylaws.views.plots.curves import _systematic_note

    x = np.linspace(-1, 1, 20)
    ax = Figure().subplots()
    assert _systematic_note(ax, 4 * x ** 2 - 1.3)  # U-shaped: 3 sign runs in 20 points
    assert "systematic: 3 sign runs in 20 points" in ax.texts[0].get_text()
    ax2 = Figure().subplots()
    assert not _systematic_note(ax2, np.resize([0.2, -0.1, 0.3, -0.2], 20)) and not ax2.texts


def test_lawset_predict_flags_a_run_whose_fit_sits_at_a_bound():
    ls = load_lawset(FIRST_FIT)
    at = [n for n, f in ls.runs.items() if any(w.get("code") == "param_at_bound" for w in f.warnings)]
    free = [n for n, f in ls.runs.items() if n not in at]
    assert at and free
    fit = ls.runs[at[0]]
    inside = math.sqrt(fit.tokens_b_min * fit.tokens_b_max) * 1e9
    assert "at its bound" in ls.predict(run=at[0], tokens=[inside])["warning"].iloc[0]
    f2 = ls.runs[free[0]]
    assert ls.predict(run=free[0], tokens=[math.sqrt(f2.tokens_b_min * f2.tokens_b_max) * 1e9])["warning"].iloc[0] == ""
