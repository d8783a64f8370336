"""A forecast band's validity, checked alike wherever a test builds one."""

from __future__ import annotations

import numpy as np


def assert_monotone_valid_band(b: dict, activation: str) -> None:
    """Estimate and both band ends move only in the law's direction (ReLU down, SiLU up), lie in
    [0, 1], and the band holds the estimate."""
    s = -1 if activation == "relu" else 1
    for k in ("estimate", "low", "high"):
        assert np.all(s * np.diff(b[k]) >= -1e-12), k
        assert np.all((b[k] >= 0) & (b[k] <= 1)), k
    assert np.all(b["low"] <= b["estimate"] + 1e-15) and np.all(b["estimate"] <= b["high"] + 1e-15)
