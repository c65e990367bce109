"""Active sampling (simplified ASAP): posterior, information gain, pair choice, HITs on demand."""

from __future__ import annotations

import numpy as np
import pytest

from study.active import expected_information_gain, laplace_posterior, select_pairs


def test_laplace_posterior_orders_conditions_and_shrinks_with_data():
    D = np.array([[0, 2, 1], [8, 0, 3], [9, 7, 0]], float)
    mean, cov = laplace_posterior(D)
    assert mean[0] < mean[1] < mean[2]
    _, cov10 = laplace_posterior(10 * D)
    assert np.all(np.diag(cov10) < np.diag(cov))
    with pytest.raises(ValueError, match="square"):
        laplace_posterior(np.zeros((2, 3)))


def test_information_gain_prefers_uncertain_and_close_pairs():
    mean = np.array([0.0, 0.1, 3.0])
    cov = np.diag([1.0, 1.0, 1.0])
    eig = expected_information_gain(mean, cov)
    assert eig[0, 1] > eig[0, 2] > 0 and np.allclose(eig, eig.T) and eig[0, 0] == 0
    eig_sure = expected_information_gain(mean, 0.01 * cov)
    assert eig_sure[0, 1] < eig[0, 1]


def test_selected_pairs_form_a_spanning_tree_per_image():
    counts = {"a": np.zeros((4, 4)), "b": np.full((4, 4), 20.0) - 20 * np.eye(4)}
    chosen = select_pairs(counts, 6)
    a_edges = [(i, j) for img, i, j, _ in chosen if img == "a"]
    assert len(chosen) == 6
    # the never-compared image gets priority and its edges connect all 4 conditions
    assert len(a_edges) == 3
    nodes = {0}
    for _ in range(3):
        for i, j in a_edges:
            if i in nodes or j in nodes:
                nodes |= {i, j}
    assert nodes == {0, 1, 2, 3}


def test_asap_design_creates_hits_on_demand_within_budget(make_app, h):
    app = make_app(DESIGN="asap", ASAP_BUDGET=27)
    assert h.count_rows(app, "hits") == 0
    for k in range(3):
        p = h.Participant(app.test_client(), f"w{k}")
        assert p.start().status_code == 303
        for t in p.data["trials"]:
            assert p.answer(t["id"]).status_code == 200
    assert h.count_rows(app, "hits") == 3
    assert h.Participant(app.test_client(), "late").start().status_code == 503
