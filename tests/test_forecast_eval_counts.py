"""benchmarks/forecast_eval.py counts the issue's must-show over its cells; docs/fitting.md
quotes the counts, so they are checked here against cells whose answer is known."""

from __future__ import annotations

from forecast_helpers import benchmark

METHODS = ("combined", "naive_last", "naive_line", "naive_nearest",
           "naive_last_sym", "naive_line_sym", "naive_nearest_sym")


def _cell(*scores: float) -> tuple:
    return ("s", "leave one run out", "relu", {m: {"interval_score": v} for m, v in zip(METHODS, scores, strict=True)}, {})


def test_must_show_counts_by_hand() -> None:
    fe = benchmark("forecast_eval")
    cells = [
        _cell(1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0),  # no worse than anything
        _cell(1.0, 1.0, 3.0, 0.5, 0.9, 3.0, 3.0),  # a tie with the last value counts; the nearest run wins
        _cell(1.0, 0.99, 3.0, 3.0, 3.0, 3.0, 0.5),  # the last value banded our way wins; the +-q h rulers lose but one
    ]
    text = fe.must_show_counts(cells)
    assert "banded our way, 2 of 3;" in text
    assert "all three naive forecasts banded our way, 1 of 3;" in text
    assert "(the last value and the local line with +-q h), 2 of 3;" in text
    assert "all three with +-q h, 1 of 3." in text
    # a cell without a nearest run is judged on the forecasts it has
    no_near = ("s", "k", "silu", {m: {"interval_score": v} for m, v in
                                  (("combined", 1.0), ("naive_last", 2.0), ("naive_line", 2.0),
                                   ("naive_last_sym", 2.0), ("naive_line_sym", 2.0))}, {})
    assert "all three naive forecasts banded our way, 1 of 1;" in fe.must_show_counts([no_near])
    # the combined forecast that chose the last value alone is its band: a sum in another order
    # (a relative 1e-15 apart) is a tie, a real difference of 1e-6 is not
    tie = _cell(0.1 + 0.2, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert 0.1 + 0.2 > 0.3 and "banded our way, 1 of 1;" in fe.must_show_counts([tie])
    assert "banded our way, 0 of 1;" in fe.must_show_counts([_cell(0.300001, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0)])
