"""Curation and splits by city."""

import numpy as np
import pandas as pd
import pytest

from geolib import curation


def make_pool(n_countries=6, cities=3, per_city=10):
    rows = []
    for c in range(n_countries):
        for k in range(cities):
            for i in range(per_city):
                rows.append({"image_id": f"{c}_{k}_{i}", "country": f"C{c}", "city": f"city{c}_{k}"})
    return pd.DataFrame(rows)


def test_split_by_city_keeps_cities_whole_and_every_country_in_train():
    pool = make_pool()
    split = curation.split_by_city(pool, (0.6, 0.1, 0.3), seed=1)
    curation.check_disjoint_cities(split, pool)
    assert set(split) == {"train", "val", "test"}
    assert set(pool.loc[split == "train", "country"]) == set(pool["country"])
    assert set(pool.loc[split == "test", "country"]) <= set(pool.loc[split == "train", "country"])
    shares = split.value_counts(normalize=True)
    assert shares["train"] >= 0.33 and shares["test"] > 0.1


def test_split_is_deterministic_and_seed_dependent():
    pool = make_pool(n_countries=10)
    a = curation.split_by_city(pool, seed=3)
    assert a.equals(curation.split_by_city(pool, seed=3))
    assert not a.equals(curation.split_by_city(pool, seed=4))


def test_single_city_countries_are_train_only():
    pool = make_pool(cities=1)
    assert (curation.split_by_city(pool) == "train").all()


def test_check_disjoint_cities_catches_leak():
    pool = make_pool(n_countries=1, cities=1, per_city=4)
    with pytest.raises(AssertionError, match="more than one split"):
        curation.check_disjoint_cities(pd.Series(["train", "test", "train", "train"]), pool)


@pytest.mark.parametrize("shares", [(0.5, 0.5, 0.5), (1, 0), (-0.1, 0.6, 0.5)])
def test_bad_shares(shares):
    with pytest.raises(ValueError, match="shares"):
        curation.split_by_city(make_pool(), shares)


def test_threshold_sweep_and_curation():
    scores = np.array([0.1, 0.5, 0.4, np.nan, 0.9])
    keep = curation.curate_by_locatability(scores, 0.4)
    assert keep.tolist() == [False, True, True, False, True]  # >= threshold; NaN dropped
    sweep = curation.threshold_sweep(scores[[0, 1, 2, 4]], ["A", "B", "B", "C"], [0.0, 0.4, 0.6, 1.0])
    assert sweep["n_kept"].tolist() == [4, 3, 1, 0]
    assert sweep["countries_covered"].tolist() == [3, 2, 1, 0]
    assert sweep.loc[1, "mean_score_kept"] == pytest.approx((0.5 + 0.4 + 0.9) / 3)
    assert np.isnan(sweep.loc[3, "mean_score_kept"])


def test_uncurated_sample_same_size_same_cities():
    pool = make_pool()
    sample = curation.uncurated_sample(pool, 25, seed=0)
    assert len(sample) == 25 and sample.index.isin(pool.index).all()
    with pytest.raises(ValueError):
        curation.uncurated_sample(pool, len(pool) + 1)


def test_matched_threshold_keeps_the_reference_share():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, 1000)
    ours = 0.5 + 0.2 * ref + rng.normal(0, 0.01, 1000)  # another scale, same order (roughly)
    t = curation.matched_threshold(ours, ref, 0.4)
    assert abs((ours >= t).mean() - (ref >= 0.4).mean()) < 0.01
    assert curation.matched_threshold(ours, ref, 2.0) > ours.max()  # reference keeps nothing
    with pytest.raises(ValueError):
        curation.matched_threshold(ours[:10], ref, 0.4)


def test_quality_mixes_one_size_growing_share_nested():
    train = pd.DataFrame({"image_id": [f"i{k}" for k in range(30)]})
    keep = np.arange(30) < 12  # 12 highly locatable, 18 others
    mixes = curation.quality_mixes(train, keep, [0.0, 0.25, 0.5, 0.75, 1.0], seed=0)
    assert sorted(mixes) == [0, 25, 50, 75, 100]
    assert {len(f) for f in mixes.values()} == {12}  # the smaller group's size
    flag = dict(zip(train["image_id"], keep))
    shares = {pct: np.mean([flag[i] for i in f["image_id"]]) for pct, f in mixes.items()}
    assert shares == {0: 0.0, 25: 0.25, 50: 0.5, 75: 0.75, 100: 1.0}
    high = [set(f["image_id"]) & {i for i, k in flag.items() if k} for f in mixes.values()]
    assert all(a <= b for a, b in zip(high, high[1:]))  # neighbouring shares overlap as much as they can
    assert curation.quality_mixes(train, keep, [0.5], n=4, seed=0)[50].shape[0] == 4
    assert curation.quality_mixes(train, keep, [0.5], seed=0)[50].equals(mixes[50])
    for bad in ([1.5], []):
        with pytest.raises(ValueError, match="shares"):
            curation.quality_mixes(train, keep, bad)
    with pytest.raises(ValueError, match="n must be"):
        curation.quality_mixes(train, keep, [0.5], n=13)
    with pytest.raises(ValueError, match="n must be"):
        curation.quality_mixes(train, np.ones(30, bool), [0.5])


def test_shared_cities_names_the_cities_of_both_frames():
    a = pd.DataFrame({"country": ["DE", "DE", "FR"], "city": ["Berlin", "Bonn", "Paris"]})
    b = pd.DataFrame({"country": ["FR", "US"], "city": ["Paris", "Berlin"]})  # Berlin of another country is another city
    assert curation.shared_cities(a, b) == {("FR", "Paris")}
    assert not curation.shared_cities(a.iloc[:2], b)
