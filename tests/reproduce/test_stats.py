"""Fitted slopes with intervals and bands over seeds, against numpy and scipy."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlhf_theory import InvalidInputError
from nlhf_theory.reproduce import fit_slope, seed_band


@given(st.floats(-2.0, 2.0), st.floats(-3.0, 3.0))
def test_exact_power_law_slope(slope, log_c):
    n = np.logspace(1, 4, 7)
    fit = fit_slope(n, np.exp(log_c) * n**slope)
    assert fit.slope == pytest.approx(slope, abs=1e-9)
    assert fit.intercept == pytest.approx(log_c, abs=1e-8)
    assert fit.low <= fit.slope <= fit.high


def test_slope_matches_polyfit_and_interval_covers_truth():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        x = np.repeat(np.logspace(1, 3, 5), 4)
        y = 2.0 * x**-0.5 * np.exp(0.1 * rng.standard_normal(x.size))
        fit = fit_slope(x, y)
        assert fit.slope == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0], rel=1e-10)
        covered += fit.low <= -0.5 <= fit.high
    assert 0.92 <= covered / 400 <= 0.98  # nominal 95% coverage


def test_linear_fit_and_bad_input():
    assert fit_slope([0, 1, 2], [1, 3, 5], log=False).slope == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="positive"):
        fit_slope([1, 2, 3], [1, 0, 2])
    with pytest.raises(InvalidInputError, match=">= 3 points"):
        fit_slope([1, 2], [1, 2])
    with pytest.raises(InvalidInputError, match="same length"):
        fit_slope([1, 2, 3], [1, 2])
    with pytest.raises(InvalidInputError, match="finite"):
        fit_slope([0, 1, np.nan], [1, 2, 3], log=False)


def test_seed_band_is_a_t_interval_of_the_mean():
    frame = pd.DataFrame({"n": [1, 1, 1, 2], "v": [1.0, 2.0, 3.0, 5.0],
                          "method": ["a"] * 4})
    out = seed_band(frame, "n", "v", by=["method"])
    first = out[out.n == 1].iloc[0]
    assert first["mean"] == 2.0 and first["num_seeds"] == 3
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t_{0.975, 2} * sd / sqrt(3)
    assert first["high"] - first["mean"] == pytest.approx(half)
    single = out[out.n == 2].iloc[0]
    assert single["low"] == single["high"] == single["mean"] == 5.0
    geo = seed_band(frame[frame.n == 1], "n", "v", log=True).iloc[0]
    assert geo["mean"] == pytest.approx(6.0 ** (1 / 3))
