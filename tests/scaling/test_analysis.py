"""scale_table and outlier_table on long tables: pooled and per group, and their warnings."""

import warnings

import numpy as np
import pandas as pd
import pytest

from scaling import ScalingWarning, outlier_table, read_table, scale_table, simulate_table


def two_images() -> pd.DataFrame:
    """Image i1 compares every pair; image i2 only (a, b) and (c, d): disconnected on its own."""
    full = simulate_table({"a": 0, "b": 0.5, "c": 1, "d": 1.5}, 6, groups=["i1"],
                          group_column="image", seed=3)
    rows = [("o1", "i2", "a", "b", 1), ("o2", "i2", "a", "b", 0), ("o3", "i2", "c", "d", 1),
            ("o4", "i2", "c", "d", 0)]
    part = pd.DataFrame(rows, columns=["observer", "image", "condition_A", "condition_B",
                                       "is_A_selected"])
    return pd.concat([full.assign(observer="o" + full["observer"].str[-1]), part])


def test_each_warning_says_which_group_it_is_about():
    table = read_table(two_images(), group="image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = scale_table(table, n_bootstrap=0)
    msgs = [str(w.message) for w in caught if issubclass(w.category, ScalingWarning)]
    assert msgs and all(m.startswith("image 'i2': ") for m in msgs), msgs
    assert "{a, b}; {c, d}" in msgs[0]
    assert set(df["group"]) == {"all", "i1", "i2"}
    assert abs(df[df.group == "all"]["jod"].sum()) < 1e-9


def test_a_table_without_groups_keeps_the_message_as_it_is():
    df = two_images()
    table = read_table(df[df["image"] == "i2"])
    with pytest.warns(ScalingWarning, match=r"^The comparison graph is disconnected"):
        scale_table(table, n_bootstrap=0)


def test_outlier_table_is_sorted_by_distance():
    df = simulate_table({"a": 0, "b": 1, "c": 2}, 8, groups=["s1", "s2"], careless=2, seed=1)
    out = outlier_table(read_table(df, group="scene"))
    assert list(out.columns) == ["observer", "L", "dist_L", "n_pairs", "outlier"]
    assert np.all(np.diff(out["dist_L"].to_numpy()) <= 0)
