"""FAO-56 Penman-Monteith: the worked examples of Allen et al. (1998) and the crop coefficient."""

import numpy as np
import pytest

from uflux_xr.core.variables import latent_heat_of_vaporization
from uflux_xr.site.gapfill import fao_pm


def as_et0(le0, ta, seconds):
    """LE0 [W m-2] back to ET0 [mm per period]."""
    return le0 * seconds / latent_heat_of_vaporization(ta)


def test_hourly_reference_et_matches_fao56_example_19():
    # N'Diaye, Senegal, 2 October: 14-15 h and 02-03 h (FAO-56 example 19; γ = 0.0673 kPa K-1).
    rn_day, rn_night = 1.749 / 0.0036, -0.100 / 0.0036  # MJ m-2 h-1 -> W m-2
    pa = 0.0673 / 0.665e-3
    fao56 = (0.34, 0.34)  # FAO-56 eq. 53 as printed
    day = fao_pm.reference_latent_heat(rn_day, 38.0, 31.80, pa, 3.3, 1800.0, hourly_cd=fao56)
    night = fao_pm.reference_latent_heat(rn_night, 28.0, 3.78, pa, 1.9, 1800.0, hourly_cd=fao56)
    assert as_et0(day, 38.0, 3600) == pytest.approx(0.63, abs=0.01)
    assert as_et0(night, 28.0, 3600) == pytest.approx(0.0, abs=0.01)
    # The ASCE-EWRI default (Cd 0.24 by day), by hand from the example's Δ = 0.358, γ = 0.0673:
    # (0.408 · 0.358 · 1.574 + 0.0673 · 37/311 · 3.3 · 3.180) / (0.358 + 0.0673 (1 + 0.24 · 3.3)) = 0.656
    asce = fao_pm.reference_latent_heat(rn_day, 38.0, 31.80, pa, 3.3, 1800.0)
    assert as_et0(asce, 38.0, 3600) == pytest.approx(0.656, abs=0.003)


def test_daily_reference_et_matches_fao56_example_18():
    # Brussels, 6 July: Rn 13.28 MJ m-2 d-1, G 0, T 16.9 °C, u2 2.078 m s-1, es - ea 0.589 kPa, γ 0.0666.
    le0 = fao_pm.reference_latent_heat(13.28 / 0.0864, 16.9, 5.89, 0.0666 / 0.665e-3, 2.078, 86400.0)
    assert as_et0(le0, 16.9, 86400) == pytest.approx(3.9, abs=0.05)


def test_net_radiation_of_the_reference_surface():
    # 400 W m-2 sunshine, 300 W m-2 sky, 10 °C: 0.77 * 400 + 0.98 * (300 - σ 283.15^4).
    expected = 308.0 + 0.98 * (300.0 - 5.670374419e-8 * 283.15**4)
    assert fao_pm.net_radiation(400.0, 300.0, 10.0) == pytest.approx(expected)


def test_crop_coefficient_is_the_observed_ratio_limited_and_smoothed():
    day = np.repeat(np.arange(20), 4)
    le0 = np.tile([0.0, 100.0, 200.0, -10.0], 20)
    good = np.ones(day.size, bool)
    kc, in_window = fao_pm.crop_coefficient(0.7 * le0, le0, good, day, 3)
    np.testing.assert_allclose(kc, 0.7)
    assert in_window.all()
    kc, _ = fao_pm.crop_coefficient(5 * le0, le0, good, day, 3)
    np.testing.assert_allclose(kc, 2.0)  # limited to 0.05-2
    ramp = np.where(day < 10, 0.5, 1.0)[:, None].ravel() * le0
    kc, _ = fao_pm.crop_coefficient(ramp, le0, good, day, 1)
    assert kc[day == 9][0] == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # centred ±1-day mean
    good[(day >= 5) & (day < 15)] = False  # ten unmeasured days: interpolated, outside the window
    kc, in_window = fao_pm.crop_coefficient(ramp, le0, good, day, 1)
    assert not in_window[day == 10].any() and in_window[day == 5].all()
    assert 0.5 < kc[day == 10][0] < 1.0
