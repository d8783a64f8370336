"""Tests for the figures (sparsitylaws.views.plots) and the ``plot`` command.

Every kind is rendered from the paper's published runs (../shared, skipped when absent),
from the packaged default law set, and from tiny synthetic tables built here; the files
must be valid images of the requested size and not blank.  The synthetic builders are
also used by tests/test_report.py.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.lawset.fileformat import load_lawset
from sparsitylaws.views import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_BOOT = 15

# --------------------------------------------------------------------------- synthetic data

#: (run, activation, width, depth, law parameters in the paper's form)
SYNTH_RUNS = (
    ("s1_relu", "relu", 256, 8, {"alpha": 0.5, "b": -3.0, "c": 0.4, "A0": 0.070}),
    ("s2_relu", "relu", 512, 10, {"alpha": 0.7, "b": -3.2, "c": 0.15, "A0": 0.074}),
    ("s1_silu", "silu", 256, 8, {"alpha": 0.6, "c": 0.12, "A0": 0.40}),
    ("s2_silu", "silu", 512, 10, {"alpha": 0.8, "c": 0.20, "A0": 0.39}),
)


def _law(act: str, d: np.ndarray, p: dict) -> np.ndarray:
    if act == "relu":
        return np.exp(-p["c"] * d ** p["alpha"] + p["b"]) + p["A0"]
    return -p["c"] * d ** (-p["alpha"]) + p["A0"]


def synthetic_curves(n_points: int = 14, seed: int = 1) -> pd.DataFrame:
    """Training curves of four small runs (2 ReLU, 2 SiLU, two scales) with small noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for run, act, w, depth, p in SYNTH_RUNS:
        n_params = int(11.5 * w * w * depth)
        tokens = np.unique(np.round(np.geomspace(0.5e9, 40e9, n_points))).astype(np.int64)
        ratio = _law(act, tokens / 1e9, p) + rng.normal(0, 3e-4, tokens.size)
        for i, (t, a) in enumerate(zip(tokens, ratio, strict=True)):
            rows.append({"run": run, "checkpoint": f"step-{i}", "tokens": int(t), "activation": act,
                         "metric": "ppl-p", "metric_arg": 1.0, "activation_ratio": float(a),
                         "width": w, "depth": depth, "n_params": n_params})
    return pd.DataFrame(rows)


def synthetic_single_checkpoint(run: str = "tiny-model", depth: int = 12) -> pd.DataFrame:
    """One checkpoint of one model, several metrics, per-layer ratios (like a measured table)."""
    layers = np.linspace(0.12, 0.35, depth) + 0.03 * np.sin(np.arange(depth))
    rows = []
    for metric, arg, scale in (("zero", np.nan, 1.0), ("cett", 0.2, 0.6), ("ppl-p", 1.0, 0.5)):
        lr = (layers * scale).tolist()
        rows.append({"run": run, "checkpoint": "final", "tokens": 2_000_000_000_000, "activation": "silu",
                     "metric": metric, "metric_arg": arg, "activation_ratio": float(np.mean(lr)),
                     "width": 576, "depth": depth, "n_params": int(11.5 * 576 * 576 * depth),
                     "layer_ratios": lr, "ppl_dense": 20.0, "ppl_sparse": 20.0 * (1 + 0.01 * scale)})
    return pd.DataFrame(rows)


def write_synthetic(path: Path, frame: pd.DataFrame) -> Path:
    from sparsitylaws.tables.io import write_table

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_table(frame, path)


# --------------------------------------------------------------------------- image checks


def check_png(path: Path, size: tuple[int, int] | None = None) -> None:
    """A PNG of ``size`` (w, h) pixels whose content is not a blank page."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    if size is not None:
        assert (img.shape[1], img.shape[0]) == size, img.shape
    rgb = img[..., :3]
    non_white = np.mean(np.any(rgb < 0.95, axis=-1))
    assert non_white > 0.03, f"{path}: only {non_white:.1%} non-white pixels"
    assert float(rgb.std()) > 0.05
    dark = np.mean(np.all(rgb < 0.5, axis=-1))
    assert dark > 0.002, f"{path}: no dark ink (text/lines) at all"


def check_svg(path: Path, size_pt: tuple[float, float] | None = None) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    if size_pt is not None:
        w = float(root.attrib["width"].removesuffix("pt"))
        h = float(root.attrib["height"].removesuffix("pt"))
        assert (w, h) == pytest.approx(size_pt, abs=0.6)
    n_paths = sum(1 for el in root.iter() if el.tag.endswith("path") or el.tag.endswith("use"))
    assert n_paths > 30, f"{path}: only {n_paths} drawn paths"


def check_pdf(path: Path, size_pt: tuple[float, float] | None = None) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.rstrip().endswith(b"%%EOF")
    assert len(data) > 5000
    if size_pt is not None:
        m = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", data)
        assert m, "no MediaBox"
        assert (float(m.group(1)), float(m.group(2))) == pytest.approx(size_pt, abs=0.6)


def check_image(path: Path, px: tuple[int, int], dpi: int = 150) -> None:
    pt = (px[0] * 72 / dpi, px[1] * 72 / dpi)
    {"png": lambda: check_png(path, px), "svg": lambda: check_svg(path, pt),
     "pdf": lambda: check_pdf(path, pt)}[path.suffix[1:]]()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def synth_table(tmp_path_factory) -> pd.DataFrame:
    from sparsitylaws.tables.io import read_table

    d = tmp_path_factory.mktemp("synth")
    path = write_synthetic(d / "curves.parquet", synthetic_curves())
    return read_table(path)


@pytest.fixture(scope="module")
def synth_laws(synth_table, tmp_path_factory) -> Path:
    """The synthetic curves fitted (first checkpoint dropped as warm-up), saved as JSON."""
    from sparsitylaws.lawset.build import fit_table

    ls = fit_table(synth_table, n_boot=N_BOOT, drop_first=1, name="synthetic")
    return ls.save(tmp_path_factory.mktemp("laws") / "synth_laws.json")


@pytest.fixture(scope="module")
def synth_layers(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("layers")
    return write_synthetic(d / "single.parquet", synthetic_single_checkpoint())


@pytest.fixture(scope="module")
def published(sparsinglaw_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(table, law set) from the paper's published runs: ingested and fitted once."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    d = tmp_path_factory.mktemp("published")
    df = read_sparsinglaw_dir(sparsinglaw_dir)
    table = write_synthetic(d / "published.parquet", df)
    laws = fit_table(df, n_boot=N_BOOT, name="published").save(d / "laws.json")
    return table, laws


# --------------------------------------------------------------------------- rendering via the CLI

SIZE = (900, 600)


@pytest.mark.parametrize("kind", ["curves", "width-depth", "scale", "residuals"])
def test_each_kind_from_published_runs(published, tmp_path, kind):
    table, laws = published
    out = tmp_path / f"{kind}.png"
    res = run_cli("plot", "--laws", laws, "--data", table, "--kind", kind, "-o", out, "--size", f"{SIZE[0]}x{SIZE[1]}")
    assert res.status == 0, res.stderr
    check_image(out, SIZE)


def test_layers_of_published_runs_say_why_not(published, tmp_path):
    """The published files hold no per-layer ratios: a clear error, not an empty figure."""
    table, _ = published
    res = run_cli("plot", "--data", table, "--kind", "layers", "-o", tmp_path / "l.png")
    assert_one_line_error(res, "layers", "layer_ratios")
    assert not (tmp_path / "l.png").exists()


@pytest.mark.parametrize(("kind", "fmt"), [
    ("curves", "png"), ("curves", "svg"), ("width-depth", "pdf"), ("scale", "svg"),
    ("residuals", "png"), ("residuals", "pdf"), ("layers", "png"), ("layers", "svg"),
])
def test_each_kind_from_synthetic_tables(synth_laws, synth_table, synth_layers, tmp_path, kind, fmt):
    out = tmp_path / f"{kind}.{fmt}"
    data = synth_layers if kind == "layers" else None
    args = ["plot"] + ([] if kind == "layers" else ["--laws", synth_laws]) + ["--kind", kind, "-o", out,
                                                                     "--width", "800", "--height", "500"]
    if kind == "layers":
        args += ["--data", data]
    elif kind != "width-depth":
        args += ["--data", _synth_path(synth_table, tmp_path)]
    res = run_cli(*args)
    assert res.status == 0, res.stderr
    check_image(out, (800, 500))


def _synth_path(df: pd.DataFrame, tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "synth.parquet", df)


@pytest.mark.parametrize("kind", ["curves", "width-depth", "scale"])
def test_default_lawset_kinds_without_data(tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    res = run_cli("plot", "--kind", kind, "-o", out, "--dpi", "100")
    assert res.status == 0, res.stderr
    check_png(out)


def test_overlay_and_log_x(synth_laws, synth_table, tmp_path):
    out = tmp_path / "ov.png"
    res = run_cli("plot", "--laws", synth_laws, "--data", _synth_path(synth_table, tmp_path), "--kind", "curves",
                  "--overlay", "--log-x", "-o", out, "--size", "1000x450")
    assert res.status == 0, res.stderr
    check_png(out, (1000, 450))


def test_data_without_laws_is_fitted_here(synth_table, synth_layers, tmp_path):
    """plot --data TABLE (no law set): the table is fitted, its runs drawn."""
    out = tmp_path / "auto.png"
    res = run_cli("plot", "--data", _synth_path(synth_table, tmp_path), "--kind", "curves", "--run", "s2_silu",
                  "--n-boot", "10", "-o", out)
    assert res.status == 0, res.stderr
    check_png(out)
    # nothing fittable: a note, and the default law set is drawn
    res = run_cli("plot", "--data", synth_layers, "--kind", "width-depth", "-o", out)
    assert res.status == 0, res.stderr
    assert "could not be fitted" in res.stderr


def test_width_only_keeps_aspect(tmp_path):
    out = tmp_path / "w.png"
    fig = plots.make_figure("width-depth", load_lawset())
    w_in, h_in = fig.get_size_inches()
    res = run_cli("plot", "--kind", "width-depth", "-o", out, "--width", "700", "--dpi", "100")
    assert res.status == 0, res.stderr
    check_png(out, (700, round(700 * h_in / w_in)))


# --------------------------------------------------------------------------- what the figures show


def _visible_axes(fig):
    """Panels that show data (an axes turned off only holds a legend)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def test_warmup_points_marked_apart_from_kept_points(synth_laws, synth_table):
    ls = load_lawset(synth_laws)
    fig = plots.plot_curves(ls, synth_table)
    axes = _visible_axes(fig)
    assert len(axes) == 4
    for ax in axes:
        by_label = {ln.get_label(): ln for ln in ax.get_lines()}
        hollow = by_label["warm-up (weight < 1/2)"]
        kept = by_label["measured (fitted)"]
        assert len(hollow.get_xdata()) == 1  # drop_first=1
        assert len(kept.get_xdata()) == 13
        assert hollow.get_markerfacecolor() != kept.get_markerfacecolor()
        assert min(hollow.get_xdata()) < min(kept.get_xdata())
        assert "backtest" in ax.get_title()


def test_log_x_and_overlay_layout(synth_laws, synth_table):
    ls = load_lawset(synth_laws)
    fig = plots.plot_curves(ls, synth_table, overlay=True, log_x=True)
    axes = _visible_axes(fig)
    assert len(axes) == 2  # one per activation
    assert all(ax.get_xscale() == "log" for ax in axes)
    labels = {t.get_text() for ax in axes for t in ax.get_legend().get_texts()}
    assert {"s1_relu", "s2_relu", "s1_silu", "s2_silu"} <= labels


def test_every_axis_names_its_unit(synth_laws, synth_table, synth_layers):
    from sparsitylaws.tables.io import read_table

    ls = load_lawset(synth_laws)
    figs = [plots.make_figure(k, ls, synth_table) for k in ("curves", "residuals", "width-depth", "scale")]
    figs.append(plots.make_figure("layers", None, read_table(synth_layers)))
    figs += [plots.make_figure(k, load_lawset()) for k in ("curves", "width-depth", "scale")]
    for fig in figs:
        for ax in _visible_axes(fig):
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert re.search(r"\(.+\)", label), f"axis label without a unit: {label!r}"


def test_styles_survive_grayscale():
    """Series differ in lightness (monotonically), marker and line style."""
    for n in (2, 4, 6):
        st = plots.series_styles(n)
        light = [_luma(s["color"]) for s in st]
        assert all(b - a > 0.04 for a, b in zip(light, light[1:], strict=False)), light
        assert len({s["marker"] for s in st}) == n
        assert len({str(s["linestyle"]) for s in st}) == min(n, len(plots.LINESTYLES))


def _luma(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_width_depth_shows_hinge_breakpoint_plateau_and_band():
    fig = plots.plot_width_depth(load_lawset())
    relu = next(ax for ax in _visible_axes(fig) if ax.get_title().startswith("relu"))
    silu = next(ax for ax in _visible_axes(fig) if ax.get_title().startswith("silu"))
    assert not fig.legends  # one legend per panel: the panels' laws and sizes differ
    labels = [t.get_text() for t in relu.get_legend().get_texts()]
    for needle in ("stable training band 74", "breakpoint 114", "breakpoint 90% interval", "plateau ",
                   "A0 law (hinge)"):
        assert any(needle in lab for lab in labels), (needle, labels)
    # the hinge's own plateau is named exactly when the drawn line levels off elsewhere
    drawn = next(lab for lab in labels if lab.startswith("plateau "))
    differs = abs(float(drawn.split()[1].rstrip("%")) - 8.0) >= 0.05
    assert ("hinge's own: 8.0%" in drawn) == differs, drawn
    silu_labels = [t.get_text() for t in silu.get_legend().get_texts()]
    assert not any("breakpoint" in lab or "hinge" in lab for lab in silu_labels), silu_labels
    # the law's legend entry shows both line styles the panel draws (solid, dashed)
    law = next(t for t in labels if "A0 law" in t)
    assert "solid" in law and "dashed" in law
    styles = {ln.get_linestyle() for ln in relu.get_lines() if ln.get_label().startswith("_")}
    assert {"-", "--"} <= styles
    xs = [ln.get_xdata() for ln in relu.get_lines() if ln.get_label() == "breakpoint 114"]
    assert xs and float(np.asarray(xs[0])[0]) == pytest.approx(114.0)
    # the dotted plateau sits where the drawn A0 line levels off beyond the breakpoint
    # (A0 composed in log-odds at the panel's scale), not at the hinge's own 8.0%
    plateau = next(ln for ln in relu.get_lines() if ln.get_label().startswith("plateau "))
    dashed = next(ln for ln in relu.get_lines() if ln.get_label().startswith("_") and ln.get_linestyle() == "--")
    x, y = np.asarray(dashed.get_xdata(), float), np.asarray(dashed.get_ydata(), float)
    far = y[np.isfinite(x) & (x > 200)]
    assert np.ptp(far) < 1e-6 and float(plateau.get_ydata()[0]) == pytest.approx(far[0], abs=1e-9)
    assert f"plateau {far[0]:.1f}%" in plateau.get_label()


def test_layers_profile_values(synth_layers):
    from sparsitylaws.tables.io import read_table

    df = read_table(synth_layers)
    fig = plots.plot_layers(df, metric="zero")
    ax = _visible_axes(fig)[0]
    line = ax.get_lines()[0]
    expected = 100 * np.asarray(synthetic_single_checkpoint()["layer_ratios"].iloc[0])
    np.testing.assert_allclose(line.get_ydata(), expected)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))


def test_residuals_are_measured_minus_fitted(synth_laws, synth_table):
    ls = load_lawset(synth_laws)
    fig = plots.plot_residuals(ls, synth_table, runs=["s1_relu"])
    ax = _visible_axes(fig)[0]
    pts = next(ln for ln in ax.get_lines() if ln.get_label() == "fitted point")
    rows = synth_table[synth_table["run"] == "s1_relu"].sort_values("tokens").iloc[1:]
    fitted = ls.runs["s1_relu"].predict(rows["tokens"].to_numpy(float))["estimate"].to_numpy()
    np.testing.assert_allclose(pts.get_ydata(), 100 * (rows["activation_ratio"].to_numpy() - fitted))


# --------------------------------------------------------------------------- bad input


def test_unknown_kind(tmp_path):
    res = run_cli("plot", "--kind", "histogram", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "--kind histogram", "unknown kind", "curves")


def test_unwritable_output(tmp_path):
    res = run_cli("plot", "--kind", "scale", "-o", tmp_path / "no" / "such" / "dir" / "x.png")
    assert_one_line_error(res, "-o", "does not exist")
    res = run_cli("plot", "--kind", "scale", "-o", tmp_path)  # a directory, no image suffix
    assert res.status == 2
    (tmp_path / "d.png").mkdir()
    res = run_cli("plot", "--kind", "scale", "-o", tmp_path / "d.png")
    assert_one_line_error(res, "is a directory")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = run_cli("plot", "--kind", "scale", "-o", ro / "x.png")
        assert_one_line_error(res, "not writable")
    finally:
        ro.chmod(0o700)


def test_unknown_image_format(tmp_path):
    res = run_cli("plot", "--kind", "scale", "-o", tmp_path / "x.gif")
    assert_one_line_error(res, "x.gif", "png")


def test_lawset_without_the_run_asked_for(synth_laws, tmp_path):
    res = run_cli("plot", "--laws", synth_laws, "--kind", "curves", "--run", "nosuchrun", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "nosuchrun", "s1_relu")
    res = run_cli("plot", "--kind", "curves", "--run", "nosuchrun", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "nosuchrun", "0.1b_relu")
    assert not (tmp_path / "x.png").exists()


def test_run_with_scale_is_refused(tmp_path):
    res = run_cli("plot", "--kind", "scale", "--run", "0.1b_relu", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "--run", "scale")
    assert not (tmp_path / "x.png").exists()


def test_missing_lawset_file_and_missing_data(tmp_path):
    res = run_cli("plot", "--laws", tmp_path / "nope.json", "--kind", "curves", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "nope.json")
    res = run_cli("plot", "--kind", "residuals", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "residuals", "--data")
    res = run_cli("plot", "--kind", "layers", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "layers", "--data")


def test_lawset_without_architecture_for_width_depth(synth_laws, tmp_path):
    import json

    d = json.loads(Path(synth_laws).read_text())
    d["architecture"] = None
    p = tmp_path / "noarch.json"
    p.write_text(json.dumps(d))
    res = run_cli("plot", "--laws", p, "--kind", "width-depth", "-o", tmp_path / "x.png")
    assert_one_line_error(res, "width-depth", "architecture")


@pytest.mark.parametrize("args", [["--size", "big"], ["--size", "800x600", "--width", "300"],
                                  ["--width", "10"]])
def test_bad_size(tmp_path, args):
    res = run_cli("plot", "--kind", "scale", "-o", tmp_path / "x.png", *args)
    assert res.status == 2
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


def test_library_errors_are_sparsitylaws_errors():
    with pytest.raises(SparsityLawsError, match="unknown kind"):
        plots.make_figure("pie")
    with pytest.raises(SparsityLawsError, match="layer"):
        plots.plot_layers(None)


def synthetic_sweep(seed: int = 3) -> pd.DataFrame:
    """Eight ReLU runs at ~0.1B parameters, width/depth 24-220, A0 on a hinge at 110."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in (24, 36, 48, 64, 90, 120, 160, 220):
        d = int(round((1e8 * r / 11.5) ** (1 / 3) / 64) * 64)
        depth = max(2, round(d / r))
        a0 = 0.08 + 0.0004 * (min(r, 110) - 110)
        toks = np.geomspace(1e9, 40e9, 12)
        y = np.exp(-0.4 * (toks / 1e9) ** 0.5 - 3.0) + a0 + rng.normal(0, 3e-4, toks.size)
        for j, (t, a) in enumerate(zip(toks, y, strict=True)):
            rows.append({"run": f"wd{r}_relu", "checkpoint": f"s{j}", "tokens": int(t), "activation": "relu",
                         "metric": "ppl-p", "metric_arg": 1.0, "activation_ratio": float(a), "width": d,
                         "depth": depth, "n_params": int(11.5 * d * d * depth)})
    return pd.DataFrame(rows)


def test_width_depth_of_a_fitted_sweep(tmp_path):
    """A law set fitted on a width/depth sweep: hinge, its fitted breakpoint, every run's A0."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.io import read_table

    table = read_table(write_synthetic(tmp_path / "sweep.parquet", synthetic_sweep()))
    ls = fit_table(table, n_boot=10, backtest=False)
    wd = ls.architecture["activations"]["relu"]["widthdepth"]
    assert wd["model"] == "hinge"
    fig = plots.plot_width_depth(ls)
    ax = _visible_axes(fig)[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    rb = wd["point"]["breakpoint"]
    assert f"breakpoint {rb:.0f}" in labels
    assert any(lab.startswith("breakpoint 90% interval") for lab in labels)
    pts = [c for c in ax.containers if c.get_label().startswith("sweep runs' A0")]
    assert len(pts) == 1 and len(pts[0].lines[0].get_xdata()) == 8
    assert not [c for c in ax.containers if c.get_label().startswith("other runs")]  # all 8 are the sweep
    assert ax.get_xscale() == "log"  # the sweep spans decades of width/depth
    lo, hi = ax.get_ylim()
    a0 = np.asarray(pts[0].lines[0].get_ydata(), float)  # percent
    assert lo == 0 and a0.max() < hi <= 100
    out = plots.save_figure(fig, tmp_path / "wd.png", dpi=80)
    check_png(out)


# --------------------------------------------------------------------------- reviewer's pass (issue 12)

REPO = Path(__file__).resolve().parents[1]
LAB_TABLE = REPO / "measurements" / "lab-gpu.parquet"  # a scale series, ReLU and SiLU
LAB_LAWS = REPO / "measurements" / "lab-gpu.laws.json"


def _drawn_labels(ax) -> set[str]:
    """Labels of the artists drawn on ``ax`` (lines with data, filled areas, error bars)."""
    out = {ln.get_label() for ln in ax.get_lines() if len(ln.get_xdata())}
    out |= {c.get_label() for c in ax.collections if len(c.get_paths())}
    out |= {c.get_label() for c in ax.containers}
    return {lab for lab in out if lab and not lab.startswith("_")}


def _fill_ys(ax) -> list[np.ndarray]:
    from matplotlib.collections import FillBetweenPolyCollection, PolyCollection

    kinds = (FillBetweenPolyCollection, PolyCollection)
    return [p.vertices[:, 1] for c in ax.collections if isinstance(c, kinds) for p in c.get_paths()]


@pytest.fixture(scope="module")
def lab_scale_fig():
    if not LAB_LAWS.is_file():
        pytest.skip("measurements/lab-gpu.laws.json not in this checkout")
    return plots.plot_scale(load_lawset(LAB_LAWS))


def test_scale_legends_name_exactly_what_each_row_draws(lab_scale_fig):
    """Every row's legend lists each drawn kind of thing once, and nothing undrawn."""
    fig = lab_scale_fig
    for row in range(2):
        panels = [ax for ax in fig.axes if ax.axison and ax.get_visible()
                  and ax.get_subplotspec().rowspan.start == row]
        legends = [ax.get_legend() for ax in fig.axes
                   if ax.get_legend() and ax.get_subplotspec().rowspan.start == row]
        assert len(legends) == 1
        shown = {t.get_text() for t in legends[0].get_texts()}
        assert shown == set().union(*(_drawn_labels(ax) for ax in panels))


def test_scale_bands_stay_in_the_frame_and_cuts_are_said(lab_scale_fig):
    """A0 is a share of neurons: its panels stay within 0-100%; bands are drawn inside the
    frame only, and a panel whose band reaches the frame edge says it was cut."""
    cut_panels = 0
    for ax in _visible_axes(lab_scale_fig):
        lo, hi = ax.get_ylim()
        if "A0" in ax.get_ylabel():
            assert 0.0 <= lo < hi <= 100.0
        ys = _fill_ys(ax)
        assert ys, ax.get_title()
        tol = 1e-9 * max(abs(lo), abs(hi))
        for y in ys:
            assert y.min() >= lo - tol and y.max() <= hi + tol
        # a band clipped at the frame has vertices on it; one inside has none there
        touches = any(np.sum(np.isclose(y, lo, rtol=1e-9, atol=0) | np.isclose(y, hi, rtol=1e-9, atol=0)) > 2 for y in ys)
        assert (plots.CUT_NOTE in ax.get_title()) == touches, ax.get_title()
        cut_panels += touches
    assert cut_panels >= 1  # the lab law set has runaway bootstrap draws: something is cut


def test_default_scale_figure_is_not_marked_cut_where_nothing_is():
    fig = plots.plot_scale(load_lawset())
    for ax in _visible_axes(fig):
        lo, hi = ax.get_ylim()
        touches = any(np.sum(np.isclose(y, lo, rtol=1e-9, atol=0) | np.isclose(y, hi, rtol=1e-9, atol=0)) > 2
                      for y in _fill_ys(ax))
        assert (plots.CUT_NOTE in ax.get_title()) == touches, ax.get_title()


def test_curves_of_a_run_of_a_few_million_tokens_start_at_its_first_point():
    """The law's line spans the measured tokens even for tiny runs, and the token axis uses
    a unit the ticks read well in (millions here, not 0.0005 billions)."""
    if not (LAB_TABLE.is_file() and LAB_LAWS.is_file()):
        pytest.skip("lab tables not in this checkout")
    from sparsitylaws.tables.io import read_table

    table = read_table(LAB_TABLE)
    run = "gpu-relu-w64-d2"
    for log_x in (False, True):
        fig = plots.plot_curves(load_lawset(LAB_LAWS), table, runs=[run], log_x=log_x)
        ax = _visible_axes(fig)[0]
        by = {ln.get_label(): ln for ln in ax.get_lines()}
        pts = np.concatenate([by[k].get_xdata() for k in ("measured (fitted)", "warm-up (weight < 1/2)") if k in by])
        law = np.asarray(by["fitted law"].get_xdata(), float)
        assert law.min() <= pts.min() and law.max() >= pts.max()
        assert "millions" in ax.get_xlabel()
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(len(t) <= 5 for t in labels), labels  # not 0.0005
        if log_x:
            assert not [t for t in ax.xaxis.get_minorticklabels() if t.get_text()]


@pytest.mark.parametrize(("max_b", "unit"), [(300.0, "billions"), (1.0, "billions"), (0.002, "millions"),
                                             (0.0009, "thousands"), (1e-7, "thousands")])
def test_token_unit(max_b, unit):
    assert plots.token_unit(max_b)[1] == unit


@pytest.mark.parametrize(("n", "text"), [(1.2e4, "12K params"), (1.89e5, "189K params"),
                                         (2.7e6, "2.7M params"), (1.08e8, "0.11B params"),
                                         (7.6e8, "0.76B params"), (2.4e9, "2.4B params")])
def test_parameter_counts_read_as_people_write_them(n, text):
    assert plots.format_params(n) == text


def test_overlay_legend_shows_markers_only_for_runs_with_points(synth_laws, synth_table):
    """Without measurements (the default law set) the overlay's legend has lines, no markers;
    with them, each run's entry shows the marker its points are drawn with."""
    for ls, table, with_points in ((load_lawset(), None, False), (load_lawset(synth_laws), synth_table, True)):
        fig = plots.plot_curves(ls, table, overlay=True)
        for ax in _visible_axes(fig):
            runs = {s.run for s in plots.curve_sources(ls)}
            entries = [h for h, lab in zip(*ax.get_legend_handles_labels(), strict=True) if lab in runs]
            assert entries
            assert all((h.get_marker() not in ("", "None", None)) == with_points for h in entries)


def test_curve_panels_say_when_a_band_is_cut():
    """The default law set's scale-law bands run off some panels; those panels say so."""
    fig = plots.plot_curves(load_lawset())
    for ax in _visible_axes(fig):
        lo, hi = ax.get_ylim()
        ys = np.concatenate(_fill_ys(ax))
        beyond = ys.min() < lo - 1e-6 * (hi - lo) or ys.max() > hi + 1e-6 * (hi - lo)
        assert (plots.CUT_NOTE in ax.get_title()) == beyond, ax.get_title()


def test_a_degenerate_run_coefficient_does_not_set_the_scale_panel():
    """One run's b = 2e5 among values near -3 (a degenerate fit) is counted off scale; the
    panel's range holds every other run."""
    import copy

    ls = copy.deepcopy(load_lawset())
    sc = ls.architecture["activations"]["relu"]["scale"]
    j = sc["param_names"].index("b")
    theta = np.asarray(sc["theta"], float)
    theta[2, j] = 2e5
    sc["theta"] = theta.tolist()
    fig = plots.plot_scale(ls)
    ax = next(a for a in _visible_axes(fig) if a.get_title().startswith("relu: b"))
    lo, hi = ax.get_ylim()
    others = np.delete(theta[:, j], 2)
    assert lo <= others.min() and others.max() <= hi and hi < 1e3
    notes = [t.get_text() for t in ax.texts]
    assert any(n.startswith("1 run(s) off scale (2e+05)") for n in notes), notes
    untouched = next(a for a in _visible_axes(plots.plot_scale(load_lawset())) if a.get_title().startswith("relu: b"))
    assert not [t for t in untouched.texts if "off scale" in t.get_text()]


def test_layers_legends_sit_below_the_panels_and_name_the_checkpoint_once():
    """No legend box over the depth profiles; a panel's shared checkpoint is in its title."""
    path = REPO / "measurements" / "smollm2-135m.parquet"
    if not path.is_file():
        pytest.skip("measurements/smollm2-135m.parquet not in this checkout")
    from sparsitylaws.tables.io import read_table

    fig = plots.plot_layers(read_table(path))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in _visible_axes(fig):
        leg = ax.get_legend()
        labels = [t.get_text() for t in leg.get_texts()]
        assert len(labels) >= 2 and not any(" @ " in lab for lab in labels), labels
        assert "checkpoint " in ax.get_title()
        assert leg.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


def test_overlay_legends_are_below_the_panels(synth_laws, synth_table):
    """Runs overlaid in one panel: the legend sits under it, never over the curves."""
    ls = load_lawset(synth_laws)
    for fig in (plots.plot_curves(ls, synth_table, overlay=True),
                plots.plot_residuals(ls, synth_table, overlay=True)):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        for ax in _visible_axes(fig):
            assert ax.get_legend().get_window_extent(r).y1 <= ax.get_window_extent(r).y0


def test_each_panel_names_its_own_token_unit():
    """A figure holding a run of 2M tokens and one of 200B: millions on one, billions on the other."""
    fig = plots._new_figure((6, 3))
    small, big = fig.subplots(1, 2)
    small.plot([0.0001, 0.002], [1, 2])
    big.plot([1, 200], [1, 2])
    plots._token_axes([small, big], log_x=False)
    assert "millions" in small.get_xlabel() and "billions" in big.get_xlabel()
    fig.canvas.draw()
    assert "2" in [t.get_text() for t in small.get_xticklabels()]  # 0.002 billion read as 2 million


def test_a_small_figure_shrinks_its_text_instead_of_collapsing(synth_laws, synth_table):
    """Seven panels asked for at 800x500 pixels: constrained layout still fits them (no
    'axes sizes collapsed' warning) because every text shrinks by the share of the natural
    size the figure has; at its natural size nothing changes."""
    import io
    import warnings

    from sparsitylaws.cli.plot import apply_size
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.views import plots

    ls = load_lawset(synth_laws)
    fig = plots.make_figure("scale", ls, synth_table)
    natural = tuple(fig.get_size_inches())
    title = fig.axes[0].title.get_fontsize()
    apply_size(fig, 800, 500, 150)
    r = max(plots.common.MIN_TEXT_SCALE, min(800 / 150 / natural[0], 500 / 150 / natural[1]))
    assert fig.axes[0].title.get_fontsize() == pytest.approx(title * r, rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=150)
    same = plots.make_figure("scale", ls, synth_table)
    assert plots.common.shrink_text(same, natural) == 1.0


def test_points_the_fit_all_but_ignores_are_drawn_as_warm_up() -> None:
    """Hollow ("warm-up") are the points dropped and those the warm-up average weights below
    1/2; a point at 0.6 stays filled.  Matched to the table's raw tokens to 1e-9, relative (the
    down-weighted records carry tokens in billions).  On the committed lab-gpu law set the run
    whose first checkpoints the law passes far from (w96-d16) gets them hollow."""
    from types import SimpleNamespace

    from sparsitylaws.views.plots.curves import HOLLOW_BELOW, _is_warmup, _warmup_tokens

    fit = SimpleNamespace(
        dropped=[{"index": 0, "tokens": 1e6, "tokens_b": 1e-3}],
        extra={"warmup_average": {"downweighted": [
            {"index": 1, "tokens_b": 2.000000001e-3, "weight": 0.2},
            {"index": 2, "tokens_b": 3e-3, "weight": 0.6}]}})
    toks = _warmup_tokens(fit)
    src = SimpleNamespace(warmup_tokens=toks)
    assert HOLLOW_BELOW == 0.5
    assert _is_warmup(np.array([1e6, 2.000000001e6, 3e6, 4e6]), src).tolist() == [True, True, False, False]
    ls = load_lawset(Path(__file__).resolve().parents[1] / "measurements" / "lab-gpu.laws.json")
    (src,) = [s for s in plots.curve_sources(ls) if s.run == "gpu-relu-w96-d16"]
    w = ls.runs["gpu-relu-w96-d16"].extra["warmup_average"]["downweighted"]
    light = [d["tokens_b"] for d in w if d["weight"] < 0.5]
    assert light and _is_warmup(np.asarray(light) * 1e9, src).all()
