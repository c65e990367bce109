"""Simulated pairwise-comparison experiments under Thurstone Case V, for tests and power analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .thurstone import SIGMA


def simulate(
    jod,
    n_observers: int,
    design="full",
    trials_per_pair: int = 1,
    careless: float = 0,  # an int: that many observers; a float: their fraction
    seed=None,
) -> np.ndarray:
    """Draw a pairwise-comparison experiment from Thurstone Case V with the given true scores.

    Observer k compares conditions i and j ``T_ij`` times and prefers i each time with probability
    ``Phi((q_i - q_j) / 1.4826)`` (so 1 JND = 75% preference). Careless observers answer at random
    (probability 0.5), as people who fail attention checks do.

    Args:
        jod: true scores q (N,), JND units.
        n_observers: number of observers K.
        design: ``"full"`` (every pair ``trials_per_pair`` times) or an N x N array of trials per
            observer per pair (the upper triangle is used; entries must be non-negative integers).
        trials_per_pair: trials per pair and observer for the full design.
        careless: number of careless observers (int) or their fraction (float in [0, 1)); they are
            the last observers of the stack.
        seed: seed or ``numpy.random.Generator``.

    Returns:
        K x N x N integer counts, ``M[k, i, j]`` = times observer k preferred i over j.
    """
    q = np.asarray(jod, dtype=float)
    if q.ndim != 1 or q.size < 2 or not np.all(np.isfinite(q)):
        raise ValueError(f"jod must be a 1-D array of at least 2 finite scores, got {jod!r}")
    if int(n_observers) != n_observers or n_observers < 1:
        raise ValueError(f"n_observers must be a positive integer, got {n_observers!r}")
    N, K = q.size, int(n_observers)
    if isinstance(design, str):
        if design != "full":
            raise ValueError(f"design must be 'full' or an N x N array, got {design!r}")
        if int(trials_per_pair) != trials_per_pair or trials_per_pair < 1:
            raise ValueError(f"trials_per_pair must be a positive integer, got {trials_per_pair!r}")
        T = np.triu(np.full((N, N), int(trials_per_pair)), 1)
    else:
        T = np.asarray(design)
        if T.shape != (N, N):
            raise ValueError(f"design must be {N} x {N} for {N} scores, got shape {T.shape}")
        if np.any(T < 0) or np.any(T != np.round(T)):
            raise ValueError("design must hold non-negative integer trial counts")
        T = np.triu(T.astype(int), 1)
    n_careless = round(careless * K) if isinstance(careless, float) else int(careless)
    if not 0 <= n_careless <= K:
        raise ValueError(f"careless must be between 0 and {K} observers, got {careless!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    P = ndtr((q[:, None] - q[None, :]) / SIGMA)
    Pk = np.broadcast_to(P, (K, N, N)).copy()
    Pk[K - n_careless:] = 0.5
    wins = rng.binomial(np.broadcast_to(T, (K, N, N)), Pk)  # zero below the diagonal (T = 0)
    losses = T[None] - wins
    return wins + losses.transpose(0, 2, 1)


def simulate_table(
    jod: dict,
    n_observers: int,
    groups=("scene1",),
    trials_per_pair: int = 1,
    careless: int = 0,
    group_column: str = "scene",
    seed=None,
) -> pd.DataFrame:
    """Simulate a full-design study and return pwcmp's long table (one row per trial, shuffled).

    Args:
        jod: mapping condition name -> true score (JND).
        n_observers: observers, named ``obs01``...; the last ``careless`` answer at random.
        groups: group names (e.g. scenes); every observer compares every pair in every group.
        trials_per_pair, careless, seed: as :func:`simulate`.
        group_column: name of the group column.

    Returns:
        DataFrame with columns observer, <group_column>, condition_A, condition_B, is_A_selected;
        the side each condition was shown on (A or B) is random.
    """
    from .tables import to_table

    names = list(jod)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    stacks = np.stack(
        [simulate([jod[c] for c in names], n_observers, "full", trials_per_pair, careless, rng)
         for _ in groups]
    )
    observers = [f"obs{k + 1:02d}" for k in range(n_observers)]
    df = to_table(stacks, names, observers, list(groups), group_column)
    flip = rng.random(len(df)) < 0.5
    a, b = df["condition_A"].copy(), df["condition_B"].copy()
    df.loc[flip, "condition_A"], df.loc[flip, "condition_B"] = b[flip], a[flip]
    df.loc[flip, "is_A_selected"] = 1 - df.loc[flip, "is_A_selected"]
    return df.sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)


def power(
    delta: float = 0.3,
    n_observers=(5, 10, 20, 40),
    n_conditions: int = 2,
    trials_per_pair: int = 1,
    n_experiments: int = 100,
    n_bootstrap: int = 100,
    alpha: float = 0.05,
    seed=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Monte-Carlo power: how often a difference of ``delta`` JND is found significant.

    Conditions are spaced ``delta`` JND apart; each simulated experiment (full design) is scaled with
    a bootstrap of ``n_bootstrap`` resamples and the difference between the first two conditions is
    tested as in :func:`~scaling.significance.significance` (two-tailed, level ``alpha``).

    Cost: ``len(n_observers) * n_experiments * n_bootstrap`` scalings (about 1-2 ms each at N <= 5).

    Returns:
        DataFrame with columns n_observers, power (fraction significant), mean_ci_width (JND).
    """
    from .bootstrap import pw_scale_bootstrap
    from .significance import significance

    if n_conditions < 2:
        raise ValueError(f"n_conditions must be >= 2, got {n_conditions}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    q = np.arange(n_conditions) * float(delta)
    rows = []
    todo = [(k, e) for k in n_observers for e in range(n_experiments)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="power", unit="experiment")
    import warnings

    for k in n_observers:
        hits, widths = 0, []
        for _ in range(n_experiments):
            MM = simulate(q, k, "full", trials_per_pair, 0, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = pw_scale_bootstrap(MM, n_bootstrap, alpha, rng, n_jobs=1)
            p = significance(res.jod, res.cov)[0, 1]
            hits += p < alpha / 2
            widths.append(res.high[1] - res.low[1])
            if bar is not None:
                bar.update(1)
        rows.append({"n_observers": k, "power": hits / n_experiments,
                     "mean_ci_width": float(np.mean(widths))})
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)
