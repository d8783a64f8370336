"""`sparsitylaws predict` through the real entry point: output and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sparsitylaws.lawset.fileformat import load_lawset


def run_subprocess(*args: str) -> subprocess.CompletedProcess:
    """The console entry point in a fresh interpreter (as a user runs it)."""
    return subprocess.run([sys.executable, "-c", "from sparsitylaws.cli import main; main()", "predict", *args],
                          capture_output=True, text=True)


@pytest.fixture
def run(capsys):
    """The same entry point, in-process (fast): returns returncode, stdout, stderr."""
    from types import SimpleNamespace

    from sparsitylaws.cli import main

    def _run(*args: str):
        with pytest.raises(SystemExit) as exc:
            main(["predict", *args])
        cap = capsys.readouterr()
        return SimpleNamespace(returncode=exc.value.code, stdout=cap.out, stderr=cap.err)

    return _run


def test_headline_prediction_on_a_fresh_install():
    p = run_subprocess("--width", "4096", "--depth", "48")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "law set: default" in out
    assert re.search(r"non-embedding 9\.26\d*e\+09", out)
    assert "width/depth 85.3" in out
    assert "below bottleneck 114" in out and "inside stable band 74-282" in out
    for act in ("relu", "silu"):
        line = next(ln for ln in out.splitlines() if ln.startswith(act))
        # limit and A(D), each "x% [lo%, hi%]"
        assert len(re.findall(r"\d+\.\d+% \[\d+\.\d+%, \d+\.\d+%\]", line)) == 2, line
    assert "caveats" in out


def test_json_output_is_parseable_and_complete(run):
    p = run("--width", "2048", "--depth", "32", "--activation", "relu", "--tokens", "5e11", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["lawset"].startswith("default")
    (row,) = data["predictions"]
    assert row["tokens"] == 5e11 and row["activation"] == "relu"
    assert row["a0_low"] < row["a0"] < row["a0_high"]


def test_grid_and_fixed_budget(run, tmp_path):
    grid = tmp_path / "configs.csv"
    grid.write_text("width,depth,tokens\n1024,16,1e11\n4096,48,2e12\n8192,80,4e12\n")
    out = tmp_path / "pred.csv"
    p = run("--grid", str(grid), "-o", str(out))
    assert p.returncode == 0, p.stderr
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 6 and set(df["activation"]) == {"relu", "silu"}
    p = run("--params", "7e9", "--depths", "16,24,32,48,64")
    assert p.returncode == 0, p.stderr
    assert "sparsest" in p.stdout and "outside stable band" in p.stdout


def test_user_lawset_replaces_the_default(run, tmp_path):
    ls = load_lawset(None)
    ls.name = "my-laws"
    path = ls.save(tmp_path / "laws.json")
    p = run("--width", "4096", "--depth", "48", "--laws", str(path))
    assert p.returncode == 0, p.stderr
    assert "law set: my-laws" in p.stdout


def _bad_version(tmp_path):
    data = json.loads(load_lawset(None).to_json())
    data["format_version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    return path


def _bad_arch_version(tmp_path):
    data = json.loads(load_lawset(None).to_json())
    data["architecture"]["format_version"] = 99
    path = tmp_path / "future_arch.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("case", [
    "width0", "depth0", "depthfrac", "activation", "tokens", "version", "archversion",
    "gridcols", "nomode", "kvheads", "gridvalue"])
def test_bad_input_is_one_line_exit_2(run, case, tmp_path):
    args = {
        "width0": ["--width", "0", "--depth", "48"],
        "depth0": ["--width", "4096", "--depth", "-2"],
        "depthfrac": ["--width", "4096", "--depth", "48.5"],
        "activation": ["--width", "4096", "--depth", "48", "--activation", "gelu"],
        "tokens": ["--width", "4096", "--depth", "48", "--tokens", "-1e9"],
        "nomode": [],
        "kvheads": ["--width", "4096", "--depth", "48", "--heads", "32", "--kv-heads", "7"],
    }.get(case)
    expect = {"width0": "width", "depth0": "depth", "depthfrac": "depth", "activation": "gelu",
              "tokens": "tokens", "version": "version 99", "archversion": "version 99",
              "gridcols": "depth", "nomode": "--width", "kvheads": "must divide 'heads'",
              "gridvalue": "column 'width' row 2: not a number ('abc')"}[case]
    if case == "version":
        args = ["--width", "4096", "--depth", "48", "--laws", str(_bad_version(tmp_path))]
    if case == "archversion":
        args = ["--width", "4096", "--depth", "48", "--laws", str(_bad_arch_version(tmp_path))]
    if case == "gridcols":
        g = tmp_path / "g.csv"
        g.write_text("width,layers\n4096,48\n")
        args = ["--grid", str(g)]
    if case == "gridvalue":
        g = tmp_path / "g.csv"
        g.write_text("width,depth,tokens\n4096,48,\nabc,48,1e12\n")
        args = ["--grid", str(g)]
    p = run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "np." not in p.stderr and "float64" not in p.stderr  # no numpy internals
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("sparsitylaws: error:")
    assert expect in lines[0]
    assert "Traceback" not in p.stderr


def test_bad_input_through_a_real_process():
    p = run_subprocess("--width", "4096", "--depth", "0")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "depth" in p.stderr


LAB_GPU = Path(__file__).resolve().parents[1] / "measurements" / "lab-gpu.laws.json"


def test_a_measured_run_is_forecast_at_the_tokens_asked(tmp_path):
    """`predict --run NAME --tokens T`: the run's calibrated forecast past its data, the same
    numbers as LawSet.predict (the API), in text, JSON and a written table."""
    from cli_helpers import run_cli

    ls = load_lawset(LAB_GPU)
    want = ls.predict(run="gpu-relu-w112-d3", tokens=[2e8]).iloc[0]
    assert bool(want["forecast"])
    res = run_cli("predict", "--laws", LAB_GPU, "--run", "gpu-relu-w112-d3", "--tokens", "2e8")
    assert res.status == 0, res.stderr
    assert "a forecast past the data" in res.stdout
    assert f"90% band [{100 * want['pred_low']:.2f}%, {100 * want['pred_high']:.2f}%]" in res.stdout
    assert "forecast weights chosen on a near-tie" in res.stdout  # lab-gpu's ReLU choice (docs/lab.md)
    res = run_cli("predict", "--laws", LAB_GPU, "--run", "gpu-relu-w112-d3", "--run", "gpu-silu-w64-d2",
                  "--tokens", "1e7", "--json", "-o", tmp_path / "runs.csv")
    assert res.status == 0, res.stderr
    rows = {r["run"]: r for r in json.loads(res.stdout)["runs"]}
    inside = ls.predict(run="gpu-relu-w112-d3", tokens=[1e7]).iloc[0]
    assert not rows["gpu-relu-w112-d3"]["forecast"]  # 1e7 lies inside its measured range
    assert rows["gpu-relu-w112-d3"]["activation_ratio"] == pytest.approx(inside["activation_ratio"], rel=1e-12)
    assert rows["gpu-silu-w64-d2"]["forecast"] and rows["gpu-silu-w64-d2"]["forecast_weights"] == {"line": 1.0}
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 2


@pytest.mark.parametrize(("args", "fragment"), [
    (("--run", "gpu-relu-w112-d3", "--width", "4096", "--tokens", "1e8"), "--width"),
    (("--run", "gpu-relu-w112-d3", "--anchor", "x.parquet", "--tokens", "1e8"), "--anchor"),
    (("--run", "gpu-relu-w112-d3"), "--tokens"),
    (("--run", "nope", "--tokens", "1e8"), "no run 'nope'"),
    (("--run", "gpu-relu-w112-d3", "--tokens", "0"), "--tokens"),
])
def test_run_forecast_bad_input_is_one_line_exit_2(args, fragment):
    from cli_helpers import assert_one_line_error, run_cli

    assert_one_line_error(run_cli("predict", "--laws", LAB_GPU, *args), fragment)


def test_run_forecast_on_a_law_set_without_runs_says_so():
    from cli_helpers import assert_one_line_error, run_cli

    assert_one_line_error(run_cli("predict", "--run", "0.4b_relu", "--tokens", "1e12"), "holds no measured runs")
