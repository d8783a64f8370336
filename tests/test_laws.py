"""Law forms: evaluation against independent closed forms, bounds, starts, transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.errors import FitInputError, SparsityLawsError
from sparsitylaws.runfit.forms import FORMS, default_form_for, get_form, known_forms

D = [0.8, 3.0, 17.5, 120.0, 1000.0]


def closed_form(name: str, d: float, t: list[float]) -> float:
    """Scalar, math-module versions of the formulas in docs/laws.md (independent of laws.py)."""
    if name == "logspace_power":
        alpha, b, c, a0 = t
        return math.exp(-c * d**alpha + b) + a0
    if name == "convergent_power":
        alpha, c, a0 = t
        return -c * d ** (-alpha) + a0
    if name == "power_offset":
        alpha, c, a0 = t
        return c * d ** (-alpha) + a0
    if name == "log":
        a, c, a0 = t
        return c * math.log(a * d + 1.0) + a0
    if name == "sigmoid":
        a, c, dd = t
        return a - 1.0 / (1.0 + math.exp(c * d + dd))
    if name == "constant":
        return t[0]
    raise AssertionError(name)


THETAS = {
    "logspace_power": [0.45, -3.05, 0.286, 0.0674],
    "convergent_power": [0.84, 0.208, 0.39],
    "power_offset": [0.5, 0.05, 0.07],
    "log": [0.2, -0.004, 0.1],
    "sigmoid": [1.07, -0.03, 2.0],
    "constant": [0.3],
}


def test_every_form_has_a_closed_form_case() -> None:
    assert set(THETAS) == set(FORMS) == set(known_forms())


@pytest.mark.parametrize("name", list(THETAS))
def test_evaluate_matches_closed_form(name: str) -> None:
    form = get_form(name)
    t = THETAS[name]
    got = form.evaluate(D, np.array(t))
    want = [closed_form(name, d, t) for d in D]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert got.shape == (len(D),)


@pytest.mark.parametrize("name", list(THETAS))
def test_evaluate_broadcasts_draws(name: str) -> None:
    form = get_form(name)
    rng = np.random.default_rng(0)
    base = np.array(THETAS[name])
    draws = base * (1 + 0.05 * rng.standard_normal((7, base.size)))
    got = form.evaluate(D, draws)
    assert got.shape == (7, len(D))
    for i in range(7):
        np.testing.assert_allclose(got[i], [closed_form(name, d, list(draws[i])) for d in D], rtol=1e-13)


def test_single_point_and_scalar_D() -> None:
    form = get_form("convergent_power")
    assert form.evaluate(10.0, np.array(THETAS["convergent_power"])).shape == (1,)


def test_evaluate_rejects_wrong_theta_length() -> None:
    with pytest.raises(FitInputError, match="3 values"):
        get_form("convergent_power").evaluate(D, np.array([1.0, 2.0]))


@pytest.mark.parametrize("name", list(THETAS))
def test_transform_roundtrip(name: str) -> None:
    form = get_form(name)
    t = np.array(THETAS[name])
    if not form.in_bounds(t):
        pytest.skip("example outside bounds")
    u = form.to_unconstrained(t)
    np.testing.assert_allclose(form.from_unconstrained(u), t, rtol=1e-10, atol=1e-14)
    J = form.dtheta_du(u)
    # independent check of the Jacobian with a wider central difference
    h = 1e-4
    for j in range(t.size):
        e = np.zeros(t.size)
        e[j] = h
        col = (form.from_unconstrained(u + e) - form.from_unconstrained(u - e)) / (2 * h)
        np.testing.assert_allclose(J[:, j], col, rtol=1e-5, atol=1e-9)


@given(u=st.lists(st.floats(-30, 30), min_size=4, max_size=4))
@settings(max_examples=200, deadline=None)
def test_unconstrained_always_maps_inside_bounds(u: list[float]) -> None:
    for form in FORMS.values():
        th = form.from_unconstrained(np.array(u[: form.n_params]))
        finite = np.all(np.isfinite(th))
        if finite:
            for p, v in zip(form.parameters, th, strict=True):
                assert p.lower <= v <= p.upper


def test_bounds_are_physical() -> None:
    for form in FORMS.values():
        names = form.param_names
        for p in form.parameters:
            if p.name == "A0" and form.limit_param == "A0":
                assert (p.lower, p.upper) == (0.0, 1.0)
            if p.name == "alpha":
                assert p.lower == 0.0
        if form.name in ("logspace_power", "convergent_power", "power_offset"):
            assert form.parameters[names.index("c")].lower == 0.0


def _curves() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    out = []
    for name, t in THETAS.items():
        for dmax in (40.0, 270.0):
            d = dmax * np.arange(1, 31) / 30
            y = get_form(name).evaluate(d, np.array(t)) + 3e-4 * rng.standard_normal(30)
            out.append((name, d, np.clip(y, 0.0, 1.0)))
    return out


@pytest.mark.parametrize("name,d,y", _curves())
def test_starting_points_finite_and_inside_bounds(name: str, d: np.ndarray, y: np.ndarray) -> None:
    for form in FORMS.values():  # every form's starts on every curve shape
        starts = form.starting_points(d, y)
        assert starts.ndim == 2 and starts.shape[1] == form.n_params and starts.shape[0] >= 1
        assert np.all(np.isfinite(starts))
        assert all(form.in_bounds(s) for s in starts)
        assert np.all(np.isfinite(form.evaluate(d, starts)))


def test_limit_parameter() -> None:
    assert get_form("logspace_power").limit_param == "A0"
    assert get_form("convergent_power").limit_index() == 2
    assert get_form("log").limit_param is None
    assert get_form("sigmoid").limit_index() is None


def test_get_form_unknown_lists_known_names() -> None:
    with pytest.raises(FitInputError) as err:
        get_form("cubic")
    msg = str(err.value)
    assert "cubic" in msg and "logspace_power" in msg and "convergent_power" in msg
    assert isinstance(err.value, SparsityLawsError)


@pytest.mark.parametrize("act,form", [("relu", "logspace_power"), ("ReLU", "logspace_power"),
                                      ("relu2", "logspace_power"), ("silu", "convergent_power"),
                                      ("gelu", "convergent_power"), ("swish", "convergent_power")])
def test_default_form_for(act: str, form: str) -> None:
    assert default_form_for(act) == form
