"""Experimental design: which comparisons each HIT holds, in which order and on which side.

The full pairwise design (the paper's protocol, Mustafa et al. WACV 2022 section 4.3) compares,
on every image, every condition with every other one, ``per_pair`` times. The comparisons are
shuffled with a recorded seed and cut into HITs of ``trials_per_hit`` trials; each HIT gets
``checks_per_hit`` attention checks (reference vs. a heavily distorted copy) at random positions,
and every trial's left/right sides are drawn at random. Each HIT stores its own seed so that the
order and sides can be reproduced from the study seed alone.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from .experiment import CHECK_DISTORTED, CHECK_REFERENCE, Experiment

__all__ = ["HitSpec", "TrialSpec", "build_full_pool", "full_design", "make_hit"]


@dataclass(frozen=True)
class TrialSpec:
    """One trial: ``kind`` is pair/check/practice; ``left``/``right`` are condition ids."""

    kind: str
    image_id: str
    left: str
    right: str


@dataclass(frozen=True)
class HitSpec:
    """A HIT: its seed and its trials in display order."""

    seed: int
    trials: tuple[TrialSpec, ...]


def full_design(exp: Experiment, per_pair: int) -> list[tuple[str, str, str]]:
    """All comparisons of the full design: (image, condition_a, condition_b), ``per_pair`` each."""
    if not isinstance(per_pair, int) or per_pair < 1:
        raise ValueError(f"per_pair must be a positive integer, got {per_pair!r}")
    pairs = list(itertools.combinations(exp.conditions, 2))
    return [(img.id, a, b) for img in exp.images for a, b in pairs for _ in range(per_pair)]


def make_hit(
    comparisons: list[tuple[str, str, str]],
    image_ids: list[str],
    checks: int,
    seed: int,
    practice: bool = False,
) -> HitSpec:
    """Randomise one HIT: shuffle ``comparisons``, insert ``checks`` checks, draw every side.

    A check shows the reference itself against a heavily distorted copy of it (an obvious
    answer). A practice trial, if asked for, is a check-like trial placed first.
    """
    if checks < 0:
        raise ValueError(f"checks must be >= 0, got {checks}")
    rng = random.Random(seed)
    order = list(comparisons)
    rng.shuffle(order)
    n_total = len(order) + checks
    check_pos = set(rng.sample(range(n_total), checks)) if checks else set()
    trials = []
    it = iter(order)
    for pos in range(n_total):
        if pos in check_pos:
            img = rng.choice(image_ids)
            kind, a, b = "check", CHECK_REFERENCE, CHECK_DISTORTED
        else:
            img, a, b = next(it)
            kind = "pair"
        if rng.random() < 0.5:
            a, b = b, a
        trials.append(TrialSpec(kind, img, a, b))
    if practice:
        img = rng.choice(image_ids)
        a, b = CHECK_REFERENCE, CHECK_DISTORTED
        if rng.random() < 0.5:
            a, b = b, a
        trials.insert(0, TrialSpec("practice", img, a, b))
    return HitSpec(seed, tuple(trials))


def build_full_pool(
    exp: Experiment,
    per_pair: int,
    trials_per_hit: int,
    checks_per_hit: int,
    seed: int,
    practice: bool = False,
) -> list[HitSpec]:
    """Cut the shuffled full design into HITs of exactly ``trials_per_hit`` comparisons.

    The last HIT is topped up with comparisons drawn from a second shuffle, so a few pairs get one
    comparison more than ``per_pair``. Deterministic given ``seed``.
    """
    if trials_per_hit < 1:
        raise ValueError(f"trials_per_hit must be >= 1, got {trials_per_hit}")
    rng = random.Random(seed)
    comps = full_design(exp, per_pair)
    rng.shuffle(comps)
    rest = len(comps) % trials_per_hit
    if rest:
        extra = full_design(exp, 1)
        rng.shuffle(extra)
        while len(extra) < trials_per_hit - rest:
            extra += extra
        comps += extra[: trials_per_hit - rest]
    image_ids = [img.id for img in exp.images]
    pool = []
    for k in range(0, len(comps), trials_per_hit):
        pool.append(
            make_hit(
                comps[k : k + trials_per_hit],
                image_ids,
                checks_per_hit,
                rng.randrange(2**31 - 1),
                practice,
            )
        )
    return pool
