import numpy as np
import pytest

import uflux_xr as ux
from uflux_xr.grid.validate import site_folds

from .conftest import FEATURES


def test_folds():
    sites = ["b", "a", "c", "a", "d", "e"]
    assert [f.tolist() for f in site_folds(sites, "loso")] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    folds = site_folds(sites, "kfold", n_splits=2, random_state=1)
    assert sorted(np.concatenate(folds).tolist()) == ["a", "b", "c", "d", "e"]
    assert not set(folds[0]) & set(folds[1])
    with pytest.raises(ValueError, match="n_splits"):
        site_folds(sites, "kfold", n_splits=9)
    with pytest.raises(ValueError, match="'loso' or 'kfold'"):
        site_folds(sites, "random")


@pytest.mark.parametrize("cv", ["loso", "kfold"])
def test_each_site_held_out_once_and_tables(table, cv):
    res = ux.cross_validate(table, "GPP", FEATURES, model="lightgbm", cv=cv, n_splits=4, n_estimators=30)
    per_site = res.predictions.groupby("site")["fold"].nunique()
    assert (per_site == 1).all()
    assert set(per_site.index) == set(table["site"])
    assert len(res.predictions) == table["GPP"].notna().sum()
    assert res.metrics.loc[0, "nse"] > 0.7
    assert set(res.by_site.index) == set(table["site"])
    assert set(res.by_igbp.index) == set(table["igbp"])
    assert {"nse", "r2", "rmse", "mae", "bias", "slope", "ioa"} <= set(res.metrics.columns)


def test_held_out_site_is_not_in_training(table, monkeypatch):
    import uflux_xr.grid.validate as validate

    seen = []
    real_train = validate.train

    def spy(tab, *args, **kwargs):
        seen.append(set(tab["site"]))
        return real_train(tab, *args, **kwargs)

    monkeypatch.setattr(validate, "train", spy)
    res = ux.cross_validate(table, "GPP", FEATURES, model="lightgbm", cv="loso", n_estimators=5)
    # folds run in parallel threads, so the fits come in any order: match them by their sites
    all_sites = set(table["site"])
    assert len(seen) == res.predictions["fold"].nunique() == len(all_sites)
    for fold in res.predictions["fold"].unique():
        held = set(res.predictions.loc[res.predictions["fold"] == fold, "site"])
        assert len(held) == 1 and (all_sites - held) in seen


def test_noise_target_scores_no_skill(table):
    noisy = table.assign(NOISE=np.random.default_rng(0).normal(size=len(table)))
    res = ux.cross_validate(noisy, "NOISE", FEATURES, model="lightgbm", cv="kfold", n_splits=4, n_estimators=20)
    assert res.metrics.loc[0, "nse"] < 0.05
