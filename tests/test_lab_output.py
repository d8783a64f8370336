"""lab -o names a folder: the same rule as every command's -o (issue 12, item 11)."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import assert_one_line_error, run_cli


def test_lab_never_creates_a_folder_at_the_filesystem_root():
    target = Path("/sparsitylaws-lab-test-must-not-exist")
    assert not target.exists()
    res = run_cli("lab", "ci", "-o", target, "--print-plan")
    assert_one_line_error(res, "-o", "filesystem root")
    res = run_cli("lab", "ci", "-o", target / "out", "--mkdir", "--print-plan")
    assert_one_line_error(res, "-o", "filesystem root")
    assert not target.exists()


def test_lab_output_parent_must_exist_or_mkdir(tmp_path):
    out = tmp_path / "new" / "out"
    res = run_cli("lab", "ci", "-o", out, "--print-plan")
    assert_one_line_error(res, "-o", "does not exist", "--mkdir")
    assert not (tmp_path / "new").exists()
    deep = tmp_path / "a" / "b" / "out"
    res = run_cli("lab", "ci", "-o", deep, "--mkdir", "--print-plan")
    assert_one_line_error(res, "-o", "only the output folder's own parent")
    assert not (tmp_path / "a").exists()
    res = run_cli("lab", "ci", "-o", out, "--mkdir", "--print-plan")
    assert res.status == 0, res.stderr
    assert (tmp_path / "new").is_dir() and not out.exists()  # the run itself creates out


def test_lab_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = run_cli("lab", "ci", "-o", f, "--print-plan")
    assert_one_line_error(res, "-o", str(f))


def test_lab_existing_output_folder_is_accepted(tmp_path):
    res = run_cli("lab", "ci", "-o", tmp_path, "--print-plan")
    assert res.status == 0, res.stderr
