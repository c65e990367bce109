"""pw_scale against pwcmp's reference outputs, analytic cases, edge cases and bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.special import ndtri

from scaling import SIGMA, ScalingWarning, pw_scale, residuals
from scaling.thurstone import _Objective, iso20462_scores

REF = Path(__file__).resolve().parent / "data/pwcmp/reference_cases.json"  # recorded in the repo
CASES = json.loads(REF.read_text())["cases"]
OPTIONS = {"gaussian_mean0": ("gaussian", "mean0"), "gaussian_fix0": ("gaussian", "fix0"),
           "none_mean0": ("none", "mean0")}
# Cases where pwcmp's answer is optimiser-dependent (no finite optimum): not comparable.
ILL_POSED = {("leafunanimous3", "none_mean0")}
PARAMS = [
    pytest.param(name, key, id=f"{name}-{key}")
    for name, case in CASES.items() for key in OPTIONS if key in case and (name, key) not in ILL_POSED
]


@pytest.mark.parametrize("name,key", PARAMS)
def test_matches_pwcmp_reference(name, key):
    case = CASES[name]
    prior, reg = OPTIONS[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingWarning)
        q = pw_scale(np.array(case["D"]), prior, reg).jod
    np.testing.assert_allclose(q, case[key], atol=1e-4)


def test_readme_example_is_one_jnd_per_75_percent():
    D = np.array([[0, 25, 0], [75, 0, 25], [0, 75, 0]])
    q = pw_scale(D, prior="none").jod
    step = SIGMA * ndtri(0.75)  # 0.9999985 JND, not exactly 1
    np.testing.assert_allclose(np.diff(q), [step, step], atol=1e-6)
    assert abs(step - 0.9999985) < 1e-6


def test_mean0_and_fix0_are_the_same_optimum():
    rng = np.random.default_rng(3)
    D = rng.integers(1, 12, (5, 5)).astype(float)
    np.fill_diagonal(D, 0)
    m = pw_scale(D, regularization="mean0").jod
    f = pw_scale(D, regularization="fix0").jod
    assert abs(m.sum()) < 1e-9 and f[0] == 0
    np.testing.assert_allclose(f - f.mean(), m, atol=1e-6)


def test_permuting_conditions_permutes_scores():
    rng = np.random.default_rng(4)
    D = rng.integers(0, 9, (6, 6)).astype(float)
    np.fill_diagonal(D, 0)
    perm = rng.permutation(6)
    q = pw_scale(D).jod
    qp = pw_scale(D[np.ix_(perm, perm)]).jod
    np.testing.assert_allclose(qp, q[perm], atol=1e-5)


def test_result_does_not_depend_on_starting_point():
    D = np.array([[0, 7, 3, 9], [2, 0, 5, 6], [6, 4, 0, 8], [1, 3, 2, 0]], float)
    a = pw_scale(D).jod
    b = pw_scale(D, x0=[3.0, -2.0, 5.0, 1.0]).jod
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_gradient_is_analytic_derivative():
    rng = np.random.default_rng(5)
    D = rng.integers(0, 15, (5, 5)).astype(float)
    np.fill_diagonal(D, 0)
    D[0, 1] = 0  # a unanimous pair exercises the prior's count shift
    for prior in ("gaussian", "none"):
        obj = _Objective(D, D, prior)
        x = rng.normal(size=4)
        err = check_grad(lambda v, o=obj: o(v)[0], lambda v, o=obj: o(v)[1], x, epsilon=1e-6)
        assert err < 1e-4 * max(1.0, np.linalg.norm(obj(x)[1]))


def test_large_counts_are_finite_in_the_log_domain():
    # pwcmp underflows here and returns all zeros.
    D = np.array([[0, 700, 900], [500, 0, 650], [300, 550, 0]], float)
    q = pw_scale(D).jod
    assert np.all(np.isfinite(q)) and np.ptp(q) > 0.5
    # Without a prior the MLE depends on proportions only: a tenth of the counts, same scores.
    np.testing.assert_allclose(pw_scale(D, prior="none").jod, pw_scale(D / 10, prior="none").jod,
                               atol=1e-5)
    # Beyond any float range of p^k: still finite.
    assert np.all(np.isfinite(pw_scale(D * 100).jod))


def test_all_unanimous_warns_and_is_deterministic():
    D = np.array([[0, 10], [0, 0]], float)
    with pytest.warns(ScalingWarning, match="no finite maximum-likelihood"):
        r = pw_scale(D)
    assert r.unanimous_correction
    expected = SIGMA * ndtri(10.5 / 11)  # Haldane-Anscombe: 10.5 : 0.5
    np.testing.assert_allclose(r.jod, [expected / 2, -expected / 2], atol=1e-6)
    with pytest.warns(ScalingWarning):
        r2 = pw_scale(D, x0=[4.0, -9.0])
    np.testing.assert_allclose(r.jod, r2.jod, atol=1e-8)


def test_chain_of_unanimous_pairs_without_prior_warns():
    D = np.array([[0, 6, 0], [4, 0, 10], [0, 0, 0]], float)
    with pytest.warns(ScalingWarning, match=r"\(1, 2\)"):
        r = pw_scale(D, prior="none")
    assert np.all(np.isfinite(r.jod)) and r.jod[2] < r.jod[1] < r.jod[0]
    # With pwcmp's prior, the non-unanimous pair keeps the optimum finite: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScalingWarning)
        assert not pw_scale(D).unanimous_correction


def test_disconnected_graph_is_joined_with_a_warning_naming_components():
    D = np.array([[0, 8, 0, 0], [4, 0, 0, 0], [0, 0, 0, 3], [0, 0, 9, 0]], float)
    with pytest.warns(ScalingWarning, match=r"\{a, b\}; \{c, d\}"):
        r = pw_scale(D, labels=list("abcd"))
    assert r.components == [[0, 1], [2, 3]]
    # the representatives (best ISO 20462 score: a and d) are tied, so they score equally
    assert abs(r.jod[0] - r.jod[3]) < 1e-6
    assert iso20462_scores(D)[3] > iso20462_scores(D)[2]


def test_never_compared_condition_gets_the_best_score_of_the_rest():
    D = np.array([[0, 8, 6, 0], [4, 0, 7, 0], [6, 5, 0, 0], [0, 0, 0, 0]], float)
    with pytest.warns(ScalingWarning, match="disconnected"):
        q = pw_scale(D).jod
    assert abs(q[3] - q[:3].max()) < 1e-6


def test_half_ties_are_accepted():
    D = np.array([[0, 3.5, 2], [1.5, 0, 4.5], [1, 2.5, 0]])
    q = pw_scale(D).jod
    assert np.all(np.isfinite(q))


def test_residuals_vanish_for_a_consistent_fit_and_are_nan_elsewhere():
    D = np.array([[0, 25, 0], [75, 0, 25], [0, 75, 0]], float)
    r = pw_scale(D, prior="none")
    R = r.residuals
    assert abs(R[0, 1]) < 1e-5 and abs(R[1, 2]) < 1e-5
    assert np.isnan(R[0, 2]) and np.isnan(R[0, 0])
    np.testing.assert_allclose(R, residuals(r.jod, D), equal_nan=True)


@pytest.mark.parametrize(
    "D,match",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros(4), "square"),
        (np.array([[0.0]]), "at least 2"),
        (np.array([[0, -1], [2, 0]]), r"negative count -1.0 at \[0, 1\]"),
        (np.array([[0, np.nan], [2, 0]]), r"non-finite entry nan at \[0, 1\]"),
        (np.array([[0, 1], [np.inf, 0]]), r"non-finite entry inf at \[1, 0\]"),
        (np.array([[0, 1.3], [2, 0]]), r"non-integer count 1.3 at \[0, 1\]"),
        (np.array([[1, 1], [2, 0]]), r"non-zero diagonal entry 1.0 at \[0, 0\]"),
        (np.zeros((3, 3)), "no comparison"),
        ([["a", "b"], ["c", "d"]], "numeric"),
    ],
    ids=["non-square", "vector", "1x1", "negative", "nan", "inf", "fraction", "diagonal",
         "empty", "strings"],
)
def test_bad_matrices_raise_naming_the_entry(D, match):
    with pytest.raises(ValueError, match=match):
        pw_scale(D)


def test_bad_options_raise():
    D = np.array([[0, 2], [1, 0]])
    with pytest.raises(ValueError, match="prior"):
        pw_scale(D, prior="bayes")
    with pytest.raises(ValueError, match="regularization"):
        pw_scale(D, regularization="sum0")
    with pytest.raises(ValueError, match="labels"):
        pw_scale(D, labels=["a"])


def test_hundred_conditions_scale():
    rng = np.random.default_rng(0)
    N = 100
    q = rng.normal(0, 1.5, N)
    from scaling import simulate

    D = simulate(q, 10, seed=rng).sum(axis=0)
    est = pw_scale(D).jod
    assert np.corrcoef(est, q)[0, 1] > 0.97
