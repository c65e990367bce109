"""Pairwise significance of JND differences from the bootstrap covariance (pwcmp's ranking test)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def significance(jod, cov) -> np.ndarray:
    """One-tailed p-values of every pairwise difference of scores.

    ``V_ij = C_ii + C_jj - 2 C_ij`` (variance of q_i - q_j from the bootstrap covariance C) and
    ``p_ij = Phi(-|q_i - q_j| / sqrt(V_ij))``. A difference is significant at 5% two-tailed when
    ``p_ij < 0.025`` (pwcmp). The diagonal is 1 (NaN where V_ij is 0 but the scores differ: 0).

    Args:
        jod: scores (N,), JND units.
        cov: N x N covariance of the scores (e.g. ``BootstrapResult.cov``), JND^2.

    Returns:
        N x N symmetric matrix of p-values.

    References:
        Perez-Ortiz & Mantiuk, arXiv:1712.03686; pwcmp ``pw_plot_ranking_triangles.m``.
    """
    q = np.asarray(jod, dtype=float)
    C = np.asarray(cov, dtype=float)
    N = q.size
    if C.shape != (N, N):
        raise ValueError(f"cov must be {N} x {N} for {N} scores, got shape {C.shape}")
    d = np.diag(C)
    V = d[:, None] + d[None, :] - 2 * C
    diff = np.abs(q[:, None] - q[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(V > 0, diff / np.sqrt(np.where(V > 0, V, 1)), np.where(diff > 0, np.inf, 0))
    p = ndtr(-z)
    np.fill_diagonal(p, 1.0)
    return p


def is_significant(p_values, alpha: float = 0.05) -> np.ndarray:
    """Boolean N x N matrix: p < alpha / 2 (two-tailed test at level alpha)."""
    return np.asarray(p_values) < alpha / 2
