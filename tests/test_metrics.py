import numpy as np
import pandas as pd
import pytest

from uflux_xr.core import metrics

PRED = np.array([1.0, 2.0, 3.0, 4.0])
OBS = np.array([1.0, 3.0, 2.0, 5.0])


def test_hand_computed_values():
    # Ō = 2.75; Σ(P−O)² = 3; Σ(O−Ō)² = 8.75; Σ(|P−Ō|+|O−Ō|)² = 26.5
    assert metrics.bias(PRED, OBS) == pytest.approx(-0.25)
    assert metrics.rmse(PRED, OBS) == pytest.approx(np.sqrt(0.75))
    assert metrics.mae(PRED, OBS) == pytest.approx(0.75)
    assert metrics.nse(PRED, OBS) == pytest.approx(1 - 3 / 8.75)
    assert metrics.ioa(PRED, OBS) == pytest.approx(1 - 3 / 26.5)


def test_pearson_and_slope_match_numpy():
    rng = np.random.default_rng(0)
    o = rng.normal(size=200)
    p = 0.7 * o + rng.normal(scale=0.3, size=200)
    assert metrics.pearson_r(p, o) == pytest.approx(np.corrcoef(p, o)[0, 1])
    assert metrics.slope(p, o) == pytest.approx(np.polyfit(o, p, 1)[0])
    m = metrics.all_metrics(p, o)
    assert m["r2"] == pytest.approx(m["r"] ** 2)
    assert m["n"] == 200


def test_perfect_prediction_and_nan_pairs_dropped():
    o = np.array([1.0, np.nan, 3.0, 4.0, 7.0])
    p = np.array([1.0, 5.0, 3.0, np.nan, 7.0])
    m = metrics.all_metrics(p, o)
    assert m["n"] == 3
    for key in ("r", "r2", "nse", "slope", "ioa"):
        assert m[key] == pytest.approx(1.0)
    assert m["rmse"] == 0 and m["bias"] == 0


def test_degenerate_inputs_give_nan_not_errors():
    assert np.isnan(metrics.pearson_r([1, 1, 1], [1, 2, 3]))
    assert np.isnan(metrics.nse([1, 2], [2, 2]))
    assert metrics.all_metrics([], [])["n"] == 0
    with pytest.raises(ValueError, match="differ in length"):
        metrics.rmse([1, 2], [1, 2, 3])


def test_metrics_table_groups():
    frame = pd.DataFrame({"pred": [1, 2, 3, 1, 2, 3.0], "obs": [1, 2, 3, 3, 2, 1.0], "site": list("aaabbb")})
    table = metrics.metrics_table(frame, "pred", "obs", by="site")
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "r"] == pytest.approx(1.0)
    assert table.loc["b", "r"] == pytest.approx(-1.0)
