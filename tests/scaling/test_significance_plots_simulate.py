"""Significance, plots and simulation."""

import warnings

import numpy as np
import pytest
from scipy.special import ndtr

from scaling import (
    is_significant,
    plot_jod,
    plot_ranking_triangle,
    power,
    pw_scale,
    pw_scale_bootstrap,
    significance,
    simulate,
    simulate_table,
)


def test_significance_formula():
    q = np.array([0.0, 1.0, 0.1])
    C = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 0.25]])
    p = significance(q, C)
    assert p[0, 1] == pytest.approx(ndtr(-1 / np.sqrt(0.5)))
    np.testing.assert_allclose(p, p.T)
    np.testing.assert_array_equal(np.diag(p), 1)
    sig = is_significant(p)
    assert not sig[0, 2] and not sig[0, 1]  # p = 0.079 > 0.025
    # positive covariance shrinks the variance of the difference
    C2 = C + 0.2 * (1 - np.eye(3))
    assert significance(q, C2)[0, 1] < p[0, 1]
    with pytest.raises(ValueError, match="3 x 3"):
        significance(q, np.eye(2))


def test_simulate_design_and_counts():
    M = simulate([0, 1, 2], 7, trials_per_pair=3, seed=0)
    assert M.shape == (7, 3, 3) and M.dtype.kind == "i"
    np.testing.assert_array_equal((M + M.transpose(0, 2, 1))[:, 0, 1], 3)
    design = np.array([[0, 2, 0], [0, 0, 1], [0, 0, 0]])
    M = simulate([0, 1, 2], 4, design=design, seed=0)
    S = M + M.transpose(0, 2, 1)
    assert np.all(S[:, 0, 2] == 0) and np.all(S[:, 0, 1] == 2)


def test_simulation_recovers_the_true_scores():
    q = np.array([-1.0, 0.0, 0.3, 1.5])
    M = simulate(q, 400, seed=1)
    est = pw_scale(M.sum(axis=0), prior="none").jod
    np.testing.assert_allclose(est, q - q.mean(), atol=0.1)


def test_careless_observers_answer_at_random():
    M = simulate([0.0, 3.0], 2000, careless=0.5, seed=2)
    honest, careless = M[:1000].sum(axis=0), M[1000:].sum(axis=0)
    assert honest[1, 0] / 1000 > 0.95
    assert abs(careless[1, 0] / 1000 - 0.5) < 0.05


@pytest.mark.parametrize(
    "args,match",
    [(([0], 3), "at least 2"), (([0, 1], 0), "n_observers"), (([0, 1], 2, "half"), "design"),
     (([0, 1], 2, np.ones((3, 3))), "2 x 2"), (([0, np.nan], 2), "finite")],
)
def test_simulate_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        simulate(*args)


def test_simulate_table_is_a_readable_long_table():
    from scaling import read_table

    df = simulate_table({"a": 0, "b": 1, "c": 2}, 5, groups=["s1", "s2"], seed=3)
    assert list(df.columns) == ["observer", "scene", "condition_A", "condition_B", "is_A_selected"]
    assert len(df) == 5 * 2 * 3
    t = read_table(df, group="scene")
    assert t.groups == ["s1", "s2"] and t.observers[0] == "obs01"


def test_power_grows_with_observers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = power(delta=0.6, n_observers=(3, 40), n_experiments=12, n_bootstrap=30, seed=0)
    assert list(df["n_observers"]) == [3, 40]
    assert df["power"].iloc[1] > df["power"].iloc[0]
    assert df["mean_ci_width"].iloc[1] < df["mean_ci_width"].iloc[0]


def test_plots_have_labels_and_save(tmp_path):
    M = simulate([0, 0.5, 1.5, 2.0], 10, seed=4)
    r = pw_scale_bootstrap(M, 30, seed=0, n_jobs=1)
    fig = plot_jod(r.jod, r.low, r.high, list("abcd"), title="t")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "quality [JND]" and ax.get_xlabel() == "condition"
    assert [t.get_text() for t in ax.get_xticklabels()] == [list("abcd")[i] for i in np.argsort(r.jod)]
    fig.savefig(tmp_path / "jod.png")
    fig2 = plot_ranking_triangle(r.jod, significance(r.jod, r.cov), list("abcd"))
    fig2.savefig(tmp_path / "rank.png")
    texts = {t.get_text() for t in fig2.axes[0].texts}
    assert any(t.startswith("d\n") for t in texts)
    assert (tmp_path / "jod.png").stat().st_size > 1000


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text)]


def test_plots_carry_warnings_under_them():
    note = "The comparison graph is disconnected into 2 components: {a}; {b}."
    fig = plot_jod([0.0, 1.0], labels=["a", "b"], warnings=[note])
    assert any(t.startswith("warning: The comparison graph") for t in _texts(fig))
    p = significance(np.array([0.0, 1.0]), np.eye(2) * 0.1)
    many = [f"{note} {i}" for i in range(8)]
    fig2 = plot_ranking_triangle([0.0, 1.0], p, ["a", "b"], warnings=many)
    assert any("and 2 more warnings" in t for t in _texts(fig2))
    assert not any("warning:" in t for t in _texts(plot_jod([0.0, 1.0])))
