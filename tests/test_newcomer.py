"""Issue 12 (a newcomer's pass): the report and figures say what they show.

Data summary in the fitted metric, not-for-fitting runs kept out of predictions, poor backtest
coverage flagged, --laws intervals shown as saved, titles naming who fitted, a table of
contents, the log axis label.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from cli_helpers import run_cli
from conftest import REPO_ROOT
from test_plots import synthetic_curves, write_synthetic

from sparsitylaws.lawset.fileformat import load_lawset
from sparsitylaws.tables.io import read_table
from sparsitylaws.views import report

SHIPPED = REPO_ROOT / "measurements" / "smollm2-135m.parquet"


def _html_of(blocks) -> str:
    return report.render_html(blocks, "t")


def test_data_summary_uses_the_fitted_metric_on_the_shipped_table():
    inp = report.gather([SHIPPED], n_boot=0)
    html = _html_of(report.data_summary(inp))
    t = read_table(SHIPPED)
    ppl = t[(t["run"] == "smollm2-135m-silu") & (t["metric"] == "ppl-p")]["activation_ratio"].iloc[0]
    fat = t[(t["run"] == "smollm2-135m-silu") & (t["metric"] == "fat")]["activation_ratio"].iloc[0]
    assert f"{100 * ppl:.2f}% (ppl-p 1)" in html
    assert f"{100 * fat:.2f}%" not in html


def test_not_for_fitting_runs_are_marked_and_not_compared_with_predictions():
    inp = report.gather([SHIPPED], n_boot=0)
    summary = _html_of(report.data_summary(inp))
    assert re.search(r"smollm2-135m-relu-swapped</td>.*not for fitting: activation swapped", summary)
    mvp = _html_of(report.measured_vs_predicted(inp, ["smollm2-135m-silu", "smollm2-135m-relu-swapped"]))
    assert "smollm2-135m-silu" in mvp and "relu-swapped" not in mvp
    unfitted = _html_of(report.unfitted_blocks(inp))
    assert "marked not for fitting" in unfitted


def _fake_lawset(covered: list[bool]):
    bt = [{"cutoff": 0.7, "tokens_b": float(i + 1), "error": 0.001 * (i + 1), "covered": c}
          for i, c in enumerate(covered)]
    run = SimpleNamespace(backtest=bt, level=0.9, warnings=[], form="logspace_power", activation="relu")
    return SimpleNamespace(runs={"r": run}, run_names=lambda: ["r"], run_info={}, provenance={},
                           architecture=None)


@pytest.mark.parametrize("covered, poor", [([False] * 7, True), ([True] * 3 + [False] * 12, True),
                                           ([True] * 6 + [False], False), ([True] * 12, False)])
def test_poor_backtest_coverage_is_flagged_in_report_and_fit(covered, poor):
    html = _html_of(report.backtest_blocks(_fake_lawset(covered)))
    assert ("POOR coverage" in html) == poor
    warnings = _html_of(report.warning_blocks(report.ReportInputs(_fake_lawset(covered), None, [], "x")))
    assert (f"POOR backtest coverage at 70% ({sum(covered)}/{len(covered)}" in warnings) == poor
    from sparsitylaws.cli.fit import _backtest_line

    line = _backtest_line(_fake_lawset(covered).runs["r"].backtest, 0.9)
    assert (f"covered {sum(covered)}/{len(covered)} POOR" in line) == poor


def test_binomial_rule_against_brute_force():
    from math import comb

    from sparsitylaws.runfit.coverage import coverage_tail

    for k, n in ((0, 7), (3, 15), (6, 7), (14, 20)):
        brute = sum(comb(n, i) * 0.9 ** i * 0.1 ** (n - i) for i in range(k + 1))
        assert coverage_tail(k, n, 0.9) == pytest.approx(brute, rel=1e-9)


def test_report_with_laws_shows_the_law_sets_own_intervals(tmp_path):
    from sparsitylaws.lawset.build import fit_table

    table = write_synthetic(tmp_path / "t.parquet", synthetic_curves())
    laws = fit_table(read_table(table), n_boot=40, seed=3, name="given", backtest=False).save(tmp_path / "l.json")
    ls = load_lawset(laws)
    out = tmp_path / "r.html"
    res = run_cli("report", table, "--laws", laws, "-o", out, "--n-boot", "5")  # --n-boot unused with --laws
    assert res.status == 0, res.stderr
    html = out.read_text()
    f = ls.runs["s1_relu"]
    i = f.param_names.index("b")
    assert f"{f.boot_low[i]:.4g}, {f.boot_high[i]:.4g}]" in html


def test_fitted_here_title_names_the_command(tmp_path):
    from sparsitylaws.views.plots import lawset_label

    table = write_synthetic(tmp_path / "t.parquet", synthetic_curves())
    for who in ("sparsitylaws report", "sparsitylaws plot"):
        ls = report.gather([table], n_boot=0, fitted_by=who).lawset
        assert lawset_label(ls) == f"fitted by {who}"
    assert "report fit" not in lawset_label(ls)
    assert lawset_label(load_lawset(None)).startswith("law set: default")


def test_log_axis_label_and_table_of_contents(tmp_path):
    from sparsitylaws.views import plots

    fig = plots.plot_curves(load_lawset(None), None, log_x=True)
    labels = {ax.get_xlabel() for ax in fig.axes if ax.get_visible()} | {t.get_text() for t in fig.texts}
    assert "tokens trained (billions, log scale)" in labels
    assert not any("(billions) (log scale)" in x for x in labels)
    blocks = [report.Block("h1", "T"), report.Block("p", "x"), report.Block("h2", "Data summary"),
              report.Block("h2", "Architecture laws: width/depth and scale"), report.Block("h2", "Data summary")]
    html = _html_of(blocks)
    nav = re.search(r'<nav id="contents">(.*?)</nav>', html).group(1)
    targets = re.findall(r'href="#([^"]+)"', nav)
    ids = re.findall(r'<h2 id="([^"]+)"', html)
    assert targets == ids and len(set(ids)) == 3
    assert html.index("<nav") < html.index('<h2 id="')


def test_layers_figure_one_panel_per_run_laws_metric_only():
    from sparsitylaws.views import plots

    t = read_table(SHIPPED)
    fig = plots.plot_layers(t, runs=sorted(set(t["run"])), metric="ppl-p")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(panels) == 2
    for ax in panels:
        assert len(ax.lines) == 1  # one metric per panel
    titles = " ".join(ax.get_title() for ax in panels)
    assert "not for fitting" in titles
    np.testing.assert_allclose(
        sorted(float(np.mean(ax.lines[0].get_ydata())) for ax in panels),
        sorted(100 * np.mean(v) for v in t[t["metric"] == "ppl-p"]["layer_ratios"]), rtol=1e-9)




def test_report_and_fit_pair_the_combined_forecast_with_the_naive_ones():
    """The backtest section says, per activation, what the runs certify about the combined
    forecast against the last value and the local line (mean difference, interval, runs won),
    and `fit` prints the same line (from the committed lab-gpu law set, 12 ReLU + 3 SiLU runs)."""
    from sparsitylaws.cli.fit import forecast_lines

    ls = load_lawset(REPO_ROOT / "measurements" / "lab-gpu.laws.json")
    html = _html_of(report.backtest_blocks(ls))
    m = re.search(r"relu: last value ([+-]\d+\.\d\d) \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\] (\w+), won (\d+)/12", html)
    assert m, html[:2000]
    mean, lo, hi = (float(m.group(i)) for i in (1, 2, 3))
    assert lo <= mean <= hi
    assert m.group(4) == ("better" if hi < 0 else "worse" if lo > 0 else "undecided")
    assert "silu: last value" in html and "won" in html
    fit_text = "\n".join(forecast_lines(ls))
    assert m.group(0) in fit_text.replace("relu: combined minus naive per run (pp, 90% paired t interval; weights in-sample): ", "relu: ")
