"""pwcmp's long table <-> count stacks, and bad tables."""


import numpy as np
import pandas as pd
import pytest

from scaling import read_matrix, read_table, simulate, to_table


def test_ex3_table_gives_pwcmps_matrix(ex3_csv, pwcmp_cases):
    case = pwcmp_cases["ex3_all"]
    t = read_table(ex3_csv, group="scene")
    assert t.conditions == case["labels"][1:8]
    assert t.groups == ["corridor", "exhibition", "rivoli", "students", "window"]
    np.testing.assert_array_equal(t.counts(), case["D"])
    assert t.n_comparisons == 1213


def test_round_trip_through_the_long_table(tmp_path):
    stacks = np.stack([simulate([0, 1, 2, 0.5], 4, trials_per_pair=2, seed=s) for s in range(3)])
    df = to_table(stacks, list("abcd"), ["o1", "o2", "o3", "o4"], ["x", "y", "z"], "scene")
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    t = read_table(path, group="scene")
    np.testing.assert_array_equal(t.stacks, stacks)
    assert t.observers == ["o1", "o2", "o3", "o4"] and t.conditions == list("abcd")
    np.testing.assert_array_equal(t.stack("y"), stacks[1])
    np.testing.assert_array_equal(read_table(df).counts(), stacks.sum(axis=(0, 1)))


def test_selection_values_and_sides():
    df = pd.DataFrame({"observer": ["a", "a", "b"], "condition_A": ["x", "y", "x"],
                       "condition_B": ["y", "x", "y"], "is_A_selected": ["1", "true", 0]})
    D = read_table(df).counts()
    np.testing.assert_array_equal(D, [[0, 1], [2, 0]])  # x>y once; y>x twice


def good():
    return pd.DataFrame({"observer": ["a"], "scene": ["s"], "condition_A": ["x"],
                         "condition_B": ["y"], "is_A_selected": [1]})


@pytest.mark.parametrize(
    "mutate,kwargs,match",
    [
        (lambda d: d.iloc[0:0], {}, "empty"),
        (lambda d: d.drop(columns=["condition_B"]), {}, r"lacks column\(s\) \['condition_B'\]"),
        (lambda d: d.assign(condition_B="x"), {}, "compares condition 'x' with itself"),
        (lambda d: d.assign(is_A_selected=2), {}, "is_A_selected must be 1/0"),
        (lambda d: d.assign(observer=""), {}, "column 'observer' is empty"),
        (lambda d: d, {"conditions": ["x", "z"]}, "unknown condition 'y'"),
        (lambda d: d, {"group": "image"}, r"lacks column\(s\) \['image'\]"),
    ],
    ids=["empty", "missing-column", "self-comparison", "bad-selection", "blank", "unknown-condition",
         "unknown-group"],
)
def test_bad_tables_raise(mutate, kwargs, match):
    with pytest.raises(ValueError, match=match):
        read_table(mutate(good()), **kwargs)


def test_bad_files_raise(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_table(empty)
    with pytest.raises(TypeError):
        read_table(42)


def test_read_matrix_with_and_without_header(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("a,b,c\n0,3,1\n2,0,4\n5,1,0\n")
    D, names = read_matrix(p)
    assert names == ["a", "b", "c"] and D[2, 0] == 5
    p.write_text("0,3\n2,0\n")
    D, names = read_matrix(p)
    assert names == ["c0", "c1"]
    p.write_text("0,3,1\n2,0,4\n")
    with pytest.raises(ValueError, match="not N x N"):
        read_matrix(p)


def test_a_tie_is_half_a_vote_to_each_side_as_pwcmp_counts_it():
    df = pd.DataFrame({"observer": ["a", "a", "a"], "condition_A": ["x", "x", "y"],
                       "condition_B": ["y", "y", "x"], "is_A_selected": ["0.5", "1", "tie"]})
    t = read_table(df)
    # x-y tie: +0.5 each; x preferred: D[x, y] += 1; y-x tie: +0.5 each
    np.testing.assert_array_equal(t.counts(), [[0, 2], [1, 0]])
    assert t.n_comparisons == 3
    with pytest.raises(ValueError, match="or 0.5 for a tie"):
        read_table(df.assign(is_A_selected=["0.25", "1", "1"]))
