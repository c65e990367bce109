"""One-call analysis of a comparison table: JND with CIs per group, and outlier observers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .bootstrap import pw_scale_bootstrap
from .outliers import OUTLIER_THRESHOLD, pw_outlier_analysis
from .tables import ALL, ComparisonTable
from .thurstone import pw_scale

#: What the pooled scaling of a table with groups is called (its warnings start with it).
POOLED = "pooled over all groups"


def scale_table(
    table: ComparisonTable,
    n_bootstrap: int = 500,
    alpha: float = 0.05,
    seed=None,
    prior: str = "gaussian",
    regularization: str = "mean0",
    per_group: bool = True,
    n_jobs: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Scale a :class:`~scaling.tables.ComparisonTable` into JND, pooled and per group.

    The pooled scaling (group "all") sums every group; with ``per_group`` each group is also scaled
    on its own. With ``n_bootstrap > 0`` each scaling gets percentile CIs by resampling observers
    (:func:`~scaling.bootstrap.pw_scale_bootstrap`); with 0, low/high are NaN.

    Warnings of a table with groups start with the group they are about ("pooled over all
    groups: ...", "image 'i2': ...").

    Returns:
        Tidy DataFrame: group, condition, jod, low, high, se (JND), n_comparisons (of the group).
    """
    grouped = table.groups != [ALL]
    targets = [None] + (list(table.groups) if per_group and grouped else [])
    rng = np.random.default_rng(seed)
    frames = []
    for g in targets:
        MM = table.stack(g)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if n_bootstrap:
                res = pw_scale_bootstrap(MM, n_bootstrap, alpha, rng, prior, regularization,
                                         n_jobs=n_jobs, labels=table.conditions, progress=progress)
                jod, low, high, se = res.jod, res.low, res.high, res.se
            else:
                jod = pw_scale(MM.sum(axis=0), prior, regularization, labels=table.conditions).jod
                low = high = se = np.full(jod.shape, np.nan)
        where = POOLED if g is None else f"{table.group_column or 'group'} {g!r}"
        for w in caught:
            warnings.warn(f"{where}: {w.message}" if grouped else w.message, w.category,
                          stacklevel=2)
        frames.append(pd.DataFrame({
            "group": ALL if g is None else g,
            "condition": table.conditions,
            "jod": jod, "low": low, "high": high, "se": se,
            "n_comparisons": round(MM.sum()),
        }))
    return pd.concat(frames, ignore_index=True)


def outlier_table(table: ComparisonTable, prior: str = "gaussian") -> pd.DataFrame:
    """Outlier analysis of every observer of a table, over its groups (pwcmp's defaults).

    Returns:
        DataFrame: observer, L (log10 likelihood per pair), dist_L (IQRs below Q1), n_pairs,
        outlier (dist_L > 1.5), sorted by decreasing dist_L.
    """
    res = pw_outlier_analysis(list(table.stacks), prior=prior)
    df = pd.DataFrame({
        "observer": table.observers, "L": res.L, "dist_L": res.dist_L,
        "n_pairs": res.n_pairs.astype(int), "outlier": res.dist_L > OUTLIER_THRESHOLD,
    })
    return df.sort_values("dist_L", ascending=False, kind="stable").reset_index(drop=True)
