"""Tests for ``sparsitylaws report``: HTML (self-contained) and Markdown, from the default
law set, from tables (fitted here), from a law set plus tables, and from a fresh clone."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from test_plots import (
    PNG_SIGNATURE,
    check_png,
    synthetic_curves,
    synthetic_single_checkpoint,
    write_synthetic,
)

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("Data summary", "Data laws", "Architecture laws", "Predictions for standard configurations",
            "Warnings and caveats", "Provenance")
FIT_SECTIONS = ("Comparison of law forms", "Backtests")


class _Page(HTMLParser):
    """Collects headings, image sources, external references and unclosed tags."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.stack: list[str] = []
        self._in_h = False
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("script", "link", "iframe"):
            self.external.append(f"<{tag}>")
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag in ("h1", "h2", "h3"):
            self._in_h, self._text = True, ""

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()
        if tag in ("h1", "h2", "h3"):
            self.headings.append(self._text)
            self._in_h = False

    def handle_data(self, data):
        if self._in_h:
            self._text += data


def parse_report(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    return page


def check_self_contained(path: Path, min_images: int) -> _Page:
    """Well-formed, no external resources, every image an inline, non-blank PNG."""
    page = parse_report(path)
    assert page.external == [], page.external
    assert len(page.images) >= min_images
    for i, src in enumerate(page.images):
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == PNG_SIGNATURE
        tmp = path.parent / f"_img{i}.png"
        tmp.write_bytes(png)
        check_png(tmp)
        tmp.unlink()
    return page


def _cli(tmp_path: Path, *args) -> None:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        res = run_cli("report", *args)
    finally:
        os.chdir(old)
    assert res.status == 0, res.stderr
    return res


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def default_report(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("default")  # no ./measurements/ here
    _cli(d, "-o", "report.html")
    return d / "report.html"


@pytest.fixture(scope="module")
def mixed_measurements(tmp_path_factory) -> Path:
    """A folder like measurements/: training curves plus a single-checkpoint table."""
    d = tmp_path_factory.mktemp("proj")
    write_synthetic(d / "measurements" / "curves.parquet", synthetic_curves())
    write_synthetic(d / "measurements" / "tiny.parquet", synthetic_single_checkpoint())
    return d


@pytest.fixture(scope="module")
def mixed_report(mixed_measurements) -> Path:
    _cli(mixed_measurements, "--n-boot", "15", "-o", "report.html")
    return mixed_measurements / "report.html"


# --------------------------------------------------------------------------- content


def test_default_lawset_report(default_report):
    page = check_self_contained(default_report, min_images=4)
    for s in SECTIONS:
        assert any(h.startswith(s) for h in page.headings), (s, page.headings)
    text = default_report.read_text()
    assert "packaged default law set" in text
    assert "0.1b_relu" in text and "1.2b_silu" in text  # the published scale-law runs
    assert "7B-like, 48 layers" in text  # standard configurations predicted
    assert "seed" in text and "20241104" in text  # provenance: the default set's seed
    assert "Not available" not in text


def test_report_from_measurements_dir_fits_and_describes_unfittable(mixed_report):
    page = check_self_contained(mixed_report, min_images=6)
    for s in SECTIONS + FIT_SECTIONS + ("Measurements without a fitted law",):
        assert any(h.startswith(s) for h in page.headings), (s, page.headings)
    text = mixed_report.read_text()
    assert "fitted here from 2 table(s)" in text
    for run in ("s1_relu", "s2_silu"):
        assert f"<td>{run}</td>" in text
    assert "tiny-model" in text and "not fitted" in text
    assert 'id="fig-layers"' in text  # the unfittable run's depth profile
    assert 'id="fig-residuals"' in text
    assert re.search(r"Overall \d+/\d+ held-out points", text)
    assert re.search(r"<td>[0-9a-f]{64}</td>", text)  # data and file hashes


def test_only_unfittable_measurements_fall_back_to_default(tmp_path):
    write_synthetic(tmp_path / "measurements" / "tiny.parquet", synthetic_single_checkpoint())
    _cli(tmp_path, "-o", "r.html")
    page = check_self_contained(tmp_path / "r.html", min_images=3)
    text = (tmp_path / "r.html").read_text()
    assert "could not be fitted" in text and "packaged default law set" in text
    assert any(h.startswith("Measurements without a fitted law") for h in page.headings)
    assert 'id="fig-layers"' in text
    # the default law set's prediction for this shape, next to the measured ppl-p ratio
    assert "Measured against predicted" in page.headings
    assert "<td>11.80%</td>" in text  # mean of the synthetic ppl-p layer ratios


def test_laws_plus_tables_and_hash_check(tmp_path):
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.io import read_table

    table = write_synthetic(tmp_path / "t.parquet", synthetic_curves())
    laws = fit_table(read_table(table), n_boot=10, name="given").save(tmp_path / "laws.json")
    other = write_synthetic(tmp_path / "other" / "t2.parquet", synthetic_curves(seed=7))
    _cli(tmp_path, str(other), "--laws", str(laws), "-o", "r.html")
    text = (tmp_path / "r.html").read_text()
    assert "law set file" in text and "given" in text
    assert "hashes differ" in text  # the table is not the data the laws were fitted on
    _cli(tmp_path, str(table), "--laws", str(laws), "-o", "same.html")
    assert "hashes differ" not in (tmp_path / "same.html").read_text()


def test_markdown_with_images_beside_it(tmp_path, mixed_measurements):
    _cli(mixed_measurements, "--laws", str(_laws_for(mixed_measurements)), "--format", "md",
         "-o", str(tmp_path / "rep.md"))
    md = (tmp_path / "rep.md").read_text()
    for s in SECTIONS + FIT_SECTIONS:
        assert re.search(rf"^## {re.escape(s)}", md, re.M), s
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 5
    for rel in links:
        assert rel.startswith("rep_files/")
        check_png(tmp_path / rel)
    assert re.search(r"^\| run \|", md, re.M)  # tables are Markdown tables


def _laws_for(project: Path) -> Path:
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.io import read_table

    p = project / "laws.json"
    if not p.exists():
        fit_table(read_table(project / "measurements" / "curves.parquet"), n_boot=10).save(p)
    return p


# --------------------------------------------------------------------------- fresh clone (README)


def test_report_and_plot_fit_the_measurements_they_find(tmp_path):
    """report and plot without --laws in a project whose measurements/ holds tables (one of
    them unfittable), as real processes: the tables are fitted and described.  (README's own
    commands, report included, run in order in a fresh clone in tests/test_readme.py.)"""
    env = {**os.environ, "MPLBACKEND": "Agg"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sparsitylaws", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    write_synthetic(tmp_path / "measurements" / "zz_synth_curves.parquet", synthetic_curves())
    write_synthetic(tmp_path / "measurements" / "zz_synth_tiny.parquet", synthetic_single_checkpoint())
    res = run("report", "--n-boot", "20", "-o", "report2.html")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "report2.html").read_text()
    assert "fitted here from" in text and "s1_relu" in text and "tiny-model" in text
    check_self_contained(tmp_path / "report2.html", min_images=3)
    res = run("plot", "--kind", "curves", "--n-boot", "50", "-o", "curves.png")
    assert res.returncode == 0, res.stderr
    check_png(tmp_path / "curves.png")


# --------------------------------------------------------------------------- headless browser


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium absent)")
def test_report_opens_in_headless_chromium(default_report, tmp_path):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = default_report.resolve().as_uri()
    dom = subprocess.run([str(CHROMIUM), *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]  # page errors are logged so
    assert console == [], console
    for s in SECTIONS:
        assert s in dom.stdout
    assert dom.stdout.count("<img") >= 4
    shot = tmp_path / "shot.png"
    res = subprocess.run([str(CHROMIUM), *flags, "--window-size=1200,2400", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2400, 1200)
    rgb = img[..., :3]
    assert np.mean(np.any(rgb < 0.9, axis=-1)) > 0.05  # text, tables and figures were drawn


# --------------------------------------------------------------------------- bad input


def test_report_errors(tmp_path):
    res = run_cli("report", "--laws", tmp_path / "missing.json", "-o", tmp_path / "r.html")
    assert_one_line_error(res, "missing.json")
    res = run_cli("report", "-o", tmp_path / "no" / "dir" / "r.html")
    assert_one_line_error(res, "-o", "does not exist")
    res = run_cli("report", tmp_path / "nope.parquet", "-o", tmp_path / "r.html")
    assert_one_line_error(res, "nope.parquet")
    res = run_cli("report", "--format", "pdf", "-o", tmp_path / "r.pdf")
    assert res.status == 2
    assert not (tmp_path / "r.html").exists()


def test_many_runs_are_capped_in_per_run_figures(monkeypatch, tmp_path):
    """Per-run figures stop at MAX_PANELS runs and say so; tables still list every run."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.views import report
    from sparsitylaws.views.report import fits

    table = read_table(write_synthetic(tmp_path / "t.parquet", synthetic_curves()))
    ls = fit_table(table, n_boot=0, backtest=False, architecture=False)
    monkeypatch.setattr(fits, "MAX_PANELS", 2)  # where fit_blocks looks it up
    blocks = report.build_blocks(report.ReportInputs(ls, table, [], "test"))
    texts = [b.text for b in blocks if b.kind == "p"]
    assert any("first 2 runs" in t for t in texts)
    fit_table_block = next(b for b in blocks if b.kind == "table" and "points kept" in b.frame.columns)
    assert len(fit_table_block.frame) == 4


# --------------------------------------------------------------------------- layout (issue 12)


def test_warnings_are_grouped_by_the_run_they_name():
    """Every message kept once; a message goes to the first run it names as a whole word
    (a run whose name extends another's is not confused with it); others stay general."""
    from sparsitylaws.views.report import group_by_run

    runs = ["cpu-relu-w48-d1", "cpu-relu-w48-d10", "0.1b_relu"]
    items = ["run 'cpu-relu-w48-d10': alpha at bound", "cpu-relu-w48-d1: c weak",
             "run 0.1b_relu skipped: 2 points", "relu: scale trend from 4 runs",
             "0.1b_relu: A0 near cpu-relu-w48-d1's", "x0.1b_relu_2: another run's"]
    general, per_run = group_by_run(items, runs)
    assert general == ["relu: scale trend from 4 runs", "x0.1b_relu_2: another run's"]
    assert per_run == {"cpu-relu-w48-d1": ["cpu-relu-w48-d1: c weak"],
                       "cpu-relu-w48-d10": ["run 'cpu-relu-w48-d10': alpha at bound"],
                       "0.1b_relu": ["run 0.1b_relu skipped: 2 points", "0.1b_relu: A0 near cpu-relu-w48-d1's"]}
    assert sorted(general + [m for v in per_run.values() for m in v]) == sorted(items)


@pytest.mark.parametrize(("n", "text"), [(45_100, "45.1K"), (2.27e6, "2.27M"), (4.16e10, "41.6B"),
                                         (2e12, "2T"), (512, "512"), (None, "n/a")])
def test_counts_in_the_data_summary_read_as_people_write_them(n, text):
    from sparsitylaws.views.report import _count

    assert _count(n) == text


def test_interval_ends_without_a_bound_read_inf_and_missing_values_n_a():
    """A parameter with no bound on one side (b, or alpha/c upward) keeps an infinite end after
    failed bootstrap replicates: the report says so instead of hiding it as missing."""
    from sparsitylaws.views.report import _g, _interval

    assert _interval(-1.5, float("-inf"), 2.0) == "-1.5 [-inf, 2]"
    assert _interval(0.5, 0.1, float("inf")) == "0.5 [0.1, inf]"
    assert _g(float("nan")) == "n/a" and _g(None) == "n/a"


def test_a_near_tied_forecast_choice_is_among_the_report_caveats():
    """The committed lab-gpu law set's ReLU forecast weights are a near-tie (docs/lab.md): the
    report says so as `fit` does."""
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.views.report.caveats import warning_blocks
    from sparsitylaws.views.report.inputs import ReportInputs

    ls = load_lawset(Path(__file__).resolve().parents[1] / "measurements" / "lab-gpu.laws.json")
    items = [m for b in warning_blocks(ReportInputs(ls, None, [], "test")) if b.kind == "list" for m in b.items]
    assert any(m.startswith("relu: forecast weights chosen on a near-tie") for m in items)
