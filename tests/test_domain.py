"""Product domains: cell centres, time axes at daily, monthly and biannual steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uflux_xr.core.domain import Domain, time_axis


def test_grid_centres_and_shape_of_the_uk_100m_grid():
    uk = Domain("EPSG:27700", (0, 700_000), (0, 1_250_000), 100, "2020-01-01", "2020-12-31", "daily")
    assert uk.shape == (366, 12_500, 7_000)  # 2020 is a leap year
    assert uk.x()[0] == 50 and uk.x()[-1] == 699_950 and uk.y()[-1] == 1_249_950
    assert np.allclose(np.diff(uk.y()), 100)
    assert uk.dims == ("y", "x") and not uk.geographic


def test_global_quarter_degree_grid():
    world = Domain("EPSG:4326", (-180, 180), (-90, 90), 0.25, "2001-01-01", "2020-12-31", "monthly")
    assert world.shape == (240, 720, 1440)
    assert world.y()[0] == -89.875 and world.x()[-1] == 179.875
    assert world.dims == ("lat", "lon")


def test_monthly_labels_are_month_middles():
    t = time_axis("2021-01-01", "2021-12-31", "monthly")
    assert len(t) == 12
    assert t[0] == pd.Timestamp("2021-01-16 12:00") and t[1] == pd.Timestamp("2021-02-15")
    assert list(t.month) == list(range(1, 13))


def test_biannual_labels_are_half_year_middles():
    t = time_axis("2019-01-01", "2020-12-31", "biannual")
    # Summer Apr-Sep and winter Oct-Mar half-years whose middles fall in the period.
    assert list(t.strftime("%Y-%m-%d")) == ["2019-07-01", "2019-12-31", "2020-07-01", "2020-12-31"]
    summer = pd.Timestamp("2019-04-01") + (pd.Timestamp("2019-10-01") - pd.Timestamp("2019-04-01")) / 2
    assert t[0] == summer


def test_daily_labels_at_noon():
    t = time_axis("2020-02-27", "2020-03-01", "daily")
    assert list(t.strftime("%m-%d %H")) == ["02-27 12", "02-28 12", "02-29 12", "03-01 12"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step": "weekly"}, "step must be one of"),
        ({"resolution": 0}, "resolution must be positive"),
        ({"x_range": (0.0, 0.5)}, "holds fewer than 2 cells"),
    ],
)
def test_bad_domains_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Domain(**kwargs)
