"""The full pairwise design, HIT randomisation and attention checks."""

from __future__ import annotations

from collections import Counter

import pytest

from study.design import build_full_pool, full_design, make_hit
from study.experiment import CHECK_DISTORTED, CHECK_REFERENCE, load_manifest


def test_full_design_has_every_pair_on_every_image_per_pair_times(manifest):
    exp = load_manifest(manifest)
    comps = full_design(exp, 4)
    assert len(comps) == 2 * 3 * 4
    assert set(Counter(comps).values()) == {4}
    with pytest.raises(ValueError, match="per_pair"):
        full_design(exp, 0)


def test_pool_covers_the_design_with_checks_and_is_reproducible(manifest):
    exp = load_manifest(manifest)
    pool = build_full_pool(exp, per_pair=5, trials_per_hit=9, checks_per_hit=2, seed=7)
    assert len(pool) == 4  # 30 comparisons -> 3 full HITs + 1 topped up
    pairs = Counter()
    for hit in pool:
        kinds = [t.kind for t in hit.trials]
        assert kinds.count("pair") == 9 and kinds.count("check") == 2
        for t in hit.trials:
            if t.kind == "check":
                assert {t.left, t.right} == {CHECK_REFERENCE, CHECK_DISTORTED}
            else:
                pairs[(t.image_id, *sorted((t.left, t.right)))] += 1
    assert sum(pairs.values()) == 36 and min(pairs.values()) >= 5
    again = build_full_pool(exp, per_pair=5, trials_per_hit=9, checks_per_hit=2, seed=7)
    assert again == pool
    other = build_full_pool(exp, per_pair=5, trials_per_hit=9, checks_per_hit=2, seed=8)
    assert other != pool


def test_sides_and_check_positions_are_randomised(manifest):
    exp = load_manifest(manifest)
    pool = build_full_pool(exp, per_pair=40, trials_per_hit=9, checks_per_hit=1, seed=1)
    left_first = sum(t.left < t.right for hit in pool for t in hit.trials if t.kind == "pair")
    n = sum(1 for hit in pool for t in hit.trials if t.kind == "pair")
    assert 0.4 < left_first / n < 0.6
    positions = Counter(next(k for k, t in enumerate(h.trials) if t.kind == "check") for h in pool)
    assert len(positions) >= 8  # checks are not always at the same place


def test_practice_trial_comes_first(manifest):
    hit = make_hit([("astronaut", "l2", "mdf")], ["astronaut"], checks=1, seed=3, practice=True)
    assert hit.trials[0].kind == "practice" and len(hit.trials) == 3
