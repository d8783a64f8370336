"""README tells a newcomer where the data comes from, what fit needs, and why torch is pinned."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


def readme_blocks(text: str = README) -> list[tuple[str, str]]:
    """Every fenced code block of the README, in order: (language, code)."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


#: Commands of the README that the test cannot run for real, and what it runs instead: the
#: install (the test runs inside the environment README describes; test_torch_pin_is_explained
#: checks the install line against pyproject), the test suite (it is what runs this test), and
#: the clone of the published data (no network: a copy of ../shared, as gen_example does).
SHIMS = {
    "python3": """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then  # a venv whose activate puts the tested one first
    mkdir -p "$3/bin"
    printf 'export PATH="%s:%s:$PATH"\\n' "$SHIMS" "$REAL_BIN" > "$3/bin/activate"
    echo "python3 -m venv $3" >> "$SHIM_LOG"; exit 0
fi
exec "$REAL_BIN/python" "$@"
""",
    "pip": """#!/bin/sh
echo "pip $*" >> "$SHIM_LOG"
""",
    "python": """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pytest" ]; then echo "python $*" >> "$SHIM_LOG"; exit 0; fi
exec "$REAL_BIN/python" "$@"
""",
    "git": """#!/bin/sh
if [ "$1" = "clone" ] && [ "$2" = "https://github.com/Raincleared-Song/SparsingLawData" ]; then
    mkdir -p SparsingLawData && cp -r "$PUBLISHED" SparsingLawData/data
    echo "git $*" >> "$SHIM_LOG"; exit 0
fi
exec "$REAL_GIT" "$@"
""",
}


def _fresh_clone(dest: Path) -> None:
    """The repository's tracked files as they are in the working tree, committed in a new
    repository: a fresh clone of what is being tested (uncommitted edits included)."""
    files = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fresh clone"], check=True)


def test_every_readme_block_runs_as_written_and_leaves_the_clone_clean(sparsinglaw_dir, tmp_path):
    """Each code block of README.md, in order, in a fresh clone; then `git status` is clean.

    Shell blocks run in one bash (errexit) with :data:`SHIMS` first on PATH; Python blocks
    with this interpreter.  Replaces the fit-on-a-fresh-clone test: the README's fit is that
    fit (the lab's runs), and then the paper's runs are fitted on their own.  The commands
    run as written; the environment asks for no bootstrap replicates (``SPARSITYLAWS_N_BOOT=0``,
    as any user may set it; the old test passed --n-boot 0), so the test costs what fitting
    38 runs costs, not minutes more.
    """
    clone = tmp_path / "clone"
    clone.mkdir()
    _fresh_clone(clone)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, body in SHIMS.items():
        (shims / name).write_text(body)
        (shims / name).chmod(0o755)
    log = tmp_path / "shims.log"
    real_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{shims}:{real_bin}:{os.environ['PATH']}", "SHIMS": str(shims),
           "REAL_BIN": str(real_bin), "REAL_GIT": shutil.which("git"), "SHIM_LOG": str(log),
           "PUBLISHED": str(sparsinglaw_dir), "PYTHONPATH": "", "SPARSITYLAWS_N_BOOT": "0"}
    blocks = [(lang, code) for lang, code in readme_blocks() if lang != "text"]  # text: a diagram
    assert [lang for lang, _ in blocks] == ["bash", "bash", "bash", "bash", "python"]
    outputs = []
    for lang, code in blocks:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        res = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
        assert res.returncode == 0, (lang, code, res.stdout[-3000:], res.stderr[-3000:])
        assert "Traceback" not in res.stderr and "error:" not in res.stderr, res.stderr[-3000:]
        outputs.append(res.stdout)
    shimmed = log.read_text().splitlines()
    assert shimmed[0] == "python3 -m venv .venv" and shimmed[1].startswith("pip install")
    assert shimmed[2:] == ["python -m pytest -q", "git clone https://github.com/Raincleared-Song/SparsingLawData"]
    from sparsitylaws.lawset.fileformat import load_lawset

    runs = load_lawset(clone / "laws.json").run_names()  # the lab's 30 runs
    for prefix, n in (("cpu-relu-", 15), ("cpu-silu-", 0), ("gpu-relu-", 12), ("gpu-silu-", 3)):
        assert len([r for r in runs if r.startswith(prefix)]) == n, (prefix, runs)
    assert len(runs) == 30 and len(load_lawset(clone / "paper.json").run_names()) == 8
    fit_out = outputs[2].split("law set written")[0]
    assert fit_out.startswith("fitted 30 run(s)") and "n_boot 0" in fit_out.splitlines()[0]
    assert len(fit_out.splitlines()) <= 80
    assert (clone / "report.html").is_file()
    assert "gpu-relu-w96-d16" in outputs[4] and "activation_ratio" in outputs[4]
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status


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
