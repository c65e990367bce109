"""Outlier observers against pwcmp and on simulated careless observers."""


import numpy as np
import pytest

from scaling import outlier_table, pw_outlier_analysis, read_table, simulate


def test_matches_pwcmp_on_rand5(pwcmp_cases):
    case = pwcmp_cases["rand5"]
    r = pw_outlier_analysis(np.array(case["MM"]))
    np.testing.assert_allclose(r.L, case["outlier_L_log10_per_pair"], atol=1e-3)
    np.testing.assert_allclose(r.dist_L, case["outlier_dist_L"], atol=5e-3)


def test_ex3_flags_exactly_two_observers(ex3_csv):
    table = read_table(ex3_csv, group="scene")
    df = outlier_table(table)
    assert sorted(df.loc[df["outlier"], "observer"]) == ["M02", "bab"]


def test_careless_observers_are_found():
    rng = np.random.default_rng(8)
    q = np.array([0.0, 0.6, 1.2, 1.8, 2.4, 3.0])
    groups = [simulate(q, 18, careless=3, seed=rng) for _ in range(5)]
    r = pw_outlier_analysis(groups)
    worst = set(np.argsort(-r.dist_L)[:3].tolist())
    assert worst == {15, 16, 17}
    assert set(r.outliers.tolist()) <= {15, 16, 17} and len(r.outliers) >= 2
    assert np.all(r.dist_L[:15] <= 1.5)


def test_groups_must_share_observers():
    a = simulate([0, 1, 2], 5, seed=0)
    b = simulate([0, 1, 2], 4, seed=1)
    with pytest.raises(ValueError, match="same observers"):
        pw_outlier_analysis([a, b])
    with pytest.raises(ValueError, match="at least 3 observers"):
        pw_outlier_analysis(a[:2])
