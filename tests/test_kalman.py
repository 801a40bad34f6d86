"""Kalman gap filling: noise parameters from the data and the AR(1) smoother's known answers."""

import numpy as np
import pytest

from uflux_xr.site.gapfill.kalman import ar1_noise_parameters, kalman_fill, smooth_anomaly


def ar1_with_noise(n, phi, q, r, seed=0):
    rng = np.random.default_rng(seed)
    state = np.zeros(n)
    for t in range(1, n):
        state[t] = phi * state[t - 1] + rng.normal(0, np.sqrt(q))
    return state, state + rng.normal(0, np.sqrt(r), n)


def test_noise_parameters_are_recovered_from_the_data():
    _, y = ar1_with_noise(50_000, 0.9, 1.0, 0.5)
    y[::7] = np.nan  # gaps do not bias the moments
    phi, q, r = ar1_noise_parameters(y)
    assert phi == pytest.approx(0.9, abs=0.02)
    assert q == pytest.approx(1.0, rel=0.15)
    assert r == pytest.approx(0.5, rel=0.15)


def test_smoother_bridges_a_gap_as_the_ar1_conditional_mean():
    phi = 0.8
    y = np.array([0.0, 1.0, 0.0, 3.0, 0.0])
    good = np.array([True, True, False, True, True])
    state, variance = smooth_anomaly(y, good, phi, 1.0, 1e-12)
    # With exact measurements the missing value's mean is φ/(1+φ²) (y[t-1] + y[t+1]) and its
    # variance Q/(1+φ²).
    assert state[2] == pytest.approx(phi / (1 + phi**2) * 4.0)
    assert variance[2] == pytest.approx(1 / (1 + phi**2))
    np.testing.assert_allclose(state[good], y[good], atol=1e-9)


def test_fill_decays_to_the_input_inside_long_gaps_and_follows_neighbours_in_short_ones():
    state, y = ar1_with_noise(4000, 0.95, 1.0, 0.1, seed=1)
    system_input = np.sin(np.arange(4000) / 50.0) * 10
    values = system_input + y
    good = np.ones(4000, bool)
    good[1000:1003] = False  # short gap
    good[2000:2600] = False  # long gap
    filled, sd = kalman_fill(values, good, system_input)
    np.testing.assert_array_equal(filled[good], values[good])
    short_error = np.abs(filled[1000:1003] - (system_input + state)[1000:1003]).mean()
    input_error = np.abs(system_input[1000:1003] - (system_input + state)[1000:1003]).mean()
    assert short_error < input_error
    assert filled[2300] == pytest.approx(system_input[2300], abs=1e-3)  # φ^300: the anomaly is gone
    assert sd[1001] < sd[2300] and np.isnan(sd[good]).all()
