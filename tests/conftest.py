"""Shared test fixtures: paths to the repository and to ../shared (skipped when absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "reference" / "sparsinglaw-data"

#: Marks a test that trains or measures a model (the [measure] extra's packages).
torch_needed = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "accelerate")),
    reason="needs the [measure] extra")


@pytest.fixture(scope="session")
def sparsinglaw_dir() -> Path:
    """The paper's published measurements in ../shared; the test is skipped without them."""
    if not (SHARED_DATA.is_dir() and any(SHARED_DATA.glob("*.json"))):
        pytest.skip(f"published Sparsing Law data not found at {SHARED_DATA} (../shared is absent)")
    return SHARED_DATA
