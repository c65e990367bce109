"""Bootstrap CIs: reproducibility, layouts, pwcmp agreement and coverage on simulated data."""

import warnings

import numpy as np
import pytest

from scaling import ScalingWarning, pw_scale, pw_scale_bootstrap, simulate
from scaling.bootstrap import round_ties


@pytest.fixture(scope="module")
def MM():
    return simulate([0.0, 0.4, 1.0, 1.5], 12, seed=11)


def test_same_seed_same_samples_whatever_the_workers(MM):
    a = pw_scale_bootstrap(MM, 60, seed=7, n_jobs=1)
    b = pw_scale_bootstrap(MM, 60, seed=7, n_jobs=2)
    c = pw_scale_bootstrap(MM, 60, seed=8, n_jobs=1)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


def test_point_estimate_is_the_full_data_scaling(MM):
    r = pw_scale_bootstrap(MM, 20, seed=0, n_jobs=1)
    np.testing.assert_allclose(r.jod, pw_scale(MM.sum(axis=0)).jod)
    assert r.samples.shape == (20, 4) and r.cov.shape == (4, 4)
    assert np.all(r.low <= r.high)
    np.testing.assert_allclose(r.se, np.sqrt(np.diag(r.cov)))


def test_percentiles_use_the_hazen_rule(MM):
    r = pw_scale_bootstrap(MM, 40, alpha=0.1, seed=1, n_jobs=1)
    np.testing.assert_allclose(r.low, np.percentile(r.samples, 5, axis=0, method="hazen"))
    np.testing.assert_allclose(r.high, np.percentile(r.samples, 95, axis=0, method="hazen"))


def test_pwcmp_column_major_layout_is_accepted(MM):
    flat = np.stack([m.flatten(order="F") for m in MM])
    a = pw_scale_bootstrap(MM, 10, seed=3, n_jobs=1)
    b = pw_scale_bootstrap(flat, 10, seed=3, n_jobs=1)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_agrees_with_pwcmp_bootstrap_within_monte_carlo_noise(pwcmp_cases):
    case = pwcmp_cases["rand5"]
    MM = np.array(case["MM"])
    ref = case["bootstrap_2000_octave_seed0"]
    r = pw_scale_bootstrap(MM, 2000, seed=0)
    np.testing.assert_allclose(r.low, ref["low"], atol=0.06)
    np.testing.assert_allclose(r.high, ref["high"], atol=0.06)
    np.testing.assert_allclose(r.se, ref["se"], atol=0.03)


def test_ties_are_rounded_randomly_keeping_totals():
    D = np.array([[0, 2.5, 1], [3.5, 0, 0.5], [2, 1.5, 0]])
    rng = np.random.default_rng(0)
    outs = [round_ties(D, rng) for _ in range(50)]
    for R in outs:
        assert np.all(R == np.round(R))
        np.testing.assert_array_equal(R + R.T, D + D.T)
    assert len({R.tobytes() for R in outs}) > 1


def test_bootstrap_with_ties_runs():
    MM = np.array([[[0, 0.5], [0.5, 0]], [[0, 1], [0, 0]], [[0, 0], [1, 0]], [[0, 2], [1, 0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pw_scale_bootstrap(MM, 20, seed=0, n_jobs=1)
    assert np.all(np.isfinite(r.samples))


@pytest.mark.slow
def test_coverage_on_simulated_experiments():
    true = np.array([0.0, 0.5, 1.0, 2.0])
    centred = true - true.mean()
    rng = np.random.default_rng(2024)
    hits = total = 0
    for _ in range(20):
        MM = simulate(true, 20, trials_per_pair=2, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = pw_scale_bootstrap(MM, 100, seed=rng, n_jobs=2)
        hits += np.sum((r.low <= centred) & (centred <= r.high))
        total += true.size
    assert hits / total >= 0.85, f"95% CIs covered the truth only {hits}/{total} times"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"MM": np.zeros((2, 3, 4))}, "K x N x N"),
        ({"MM": np.zeros((2, 7))}, "square number"),
        ({"n_samples": 1}, "n_samples"),
        ({"alpha": 1.5}, "alpha"),
        ({"MM": -np.ones((2, 2, 2))}, "negative"),
    ],
    ids=["not-square", "bad-flat", "too-few-samples", "alpha", "negative"],
)
def test_bad_input(kwargs, match, MM):
    args = {"MM": MM, "n_samples": 10, "alpha": 0.05}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pw_scale_bootstrap(args.pop("MM"), **args)


def test_resamples_that_warned_are_counted_and_named():
    # observers 0-5 compare a and b only; observer 6 alone links c: resamples without it are
    # disconnected, and the warning says so, naming c
    ab = np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]])
    bc = np.array([[0, 0, 0], [0, 0, 2], [0, 1, 0]])
    MM = np.stack([ab] * 6 + [bc])
    with pytest.warns(ScalingWarning, match=r"of 40 bootstrap resamples .*involved: c in \d+\)"):
        r = pw_scale_bootstrap(MM, 40, seed=0, n_jobs=1, labels=list("abc"))
    assert 0 < r.n_warned < 40
    np.testing.assert_array_equal(r.warned_by_condition, [0, 0, r.n_warned])


def test_all_unanimous_resamples_name_both_conditions():
    MM = np.array([[[0, 1], [0, 0]]] * 3)
    with pytest.warns(ScalingWarning) as caught:
        r = pw_scale_bootstrap(MM, 20, seed=0, n_jobs=1, labels=["x", "y"])
    msgs = [str(w.message) for w in caught]
    assert any("no finite maximum-likelihood" in m for m in msgs)  # the point estimate's
    assert any("20 of 20 bootstrap" in m and "involved: x in 20, y in 20)" in m for m in msgs)
    assert r.n_warned == 20


def test_conditions_of_unidentified_groups_count_as_involved():
    from scaling.bootstrap import _involved

    # condition 0 won its three comparisons; 1-3 are well mixed: 0's score is not identified
    D = np.array([[0, 1, 1, 1], [0, 0, 5, 4], [0, 3, 0, 6], [0, 5, 2, 0]], dtype=float)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        res = pw_scale(D)
    assert res.not_identified == [[0]] and not res.unanimous_correction
    assert _involved(res, D).tolist() == [True, False, False, False]
