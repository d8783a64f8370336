"""README tells a newcomer where the data comes from, what fit needs, and why torch is pinned."""

from __future__ import annotations

import os
import re
import shutil

import tomllib
from cli_helpers import assert_one_line_error, run_cli
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_names_the_published_data_and_the_exact_ingest_command():
    assert "Raincleared-Song/SparsingLawData" in README
    assert "git clone https://github.com/Raincleared-Song/SparsingLawData" in README
    assert re.search(r"^sparsitylaws ingest sparsinglaw-data SparsingLawData/data -o measurements/sparsinglaw\.parquet$",
                     README, re.M)


def test_readme_ingest_command_works_on_the_published_files(sparsinglaw_dir, tmp_path):
    line = next(ln for ln in README.splitlines() if ln.startswith("sparsitylaws ingest sparsinglaw-data"))
    args = line.split()[1:]
    args[args.index("SparsingLawData/data")] = str(sparsinglaw_dir)
    (tmp_path / "measurements").mkdir()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = run_cli(*args)
    finally:
        os.chdir(old)
    assert res.status == 0, res.stderr
    assert (tmp_path / "measurements" / "sparsinglaw.parquet").is_file()


def test_fit_on_a_fresh_clone_fits_the_lab_runs(tmp_path):
    """A fresh clone's measurements/ holds the lab's cpu and gpu runs: fit with no argument fits them."""
    shutil.copytree(REPO_ROOT / "measurements", tmp_path / "measurements")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = run_cli("fit", "-o", "laws.json", "--n-boot", "0", "--no-backtest")
    finally:
        os.chdir(old)
    assert res.status == 0, res.stderr
    from sparsitylaws.lawset.fileformat import load_lawset

    runs = load_lawset(tmp_path / "laws.json").run_names()
    assert len([r for r in runs if r.startswith("cpu-relu-")]) == 11
    assert len([r for r in runs if r.startswith("cpu-silu-")]) == 4
    assert len([r for r in runs if r.startswith("gpu-relu-")]) == 12
    assert len([r for r in runs if r.startswith("gpu-silu-")]) == 3


def test_fit_without_curves_says_what_to_do(tmp_path):
    """Without the lab tables only the single-checkpoint SmolLM2 table is left: nothing to fit."""
    shutil.copytree(REPO_ROOT / "measurements", tmp_path / "measurements",
                    ignore=shutil.ignore_patterns("lab-*"))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = run_cli("fit", "-o", "laws.json")
    finally:
        os.chdir(old)
    assert_one_line_error(res, "nothing to fit", "SparsingLawData", "sparsitylaws ingest sparsinglaw-data")
    assert not (tmp_path / "laws.json").exists()


def test_torch_pin_is_explained():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    spec = [d for group in deps.get("optional-dependencies", {}).values() for d in group] + deps["dependencies"]
    torch_spec = next(d for d in spec if d.replace(" ", "").startswith("torch"))
    assert torch_spec.replace(" ", "") in README  # README states pyproject's own range
    pin = re.search(r'torch==([0-9.]+)', README).group(1)
    assert re.search(rf"pin `torch=={re.escape(pin)}`.*\n?.*CPU", README)


def test_python_snippet_says_where_laws_json_comes_from():
    before = README.split("```python", 1)[0].rstrip().rsplit("\n\n", 1)[-1]
    assert "laws.json" in before and "fit" in before
