"""Outlier observers: how well each observer agrees with the others (pwcmp's ``pw_outlier_analysis``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, log_ndtr

from ._validate import check_stack
from .thurstone import SIGMA, pw_scale

#: Observers further than this many IQRs below the first quartile deserve a look (pwcmp).
OUTLIER_THRESHOLD = 1.5


@dataclass(frozen=True)
class OutlierResult:
    """Result of :func:`pw_outlier_analysis`.

    Attributes:
        L: per-observer mean log10-likelihood per compared pair of their answers under the scores of
            all the other observers (higher = more typical), shape (K,).
        dist_L: ``(Q1 - L) / IQR`` when ``L < Q1`` else 0 (Hazen quartiles over observers), (K,).
        q1, iqr: the first quartile and inter-quartile range of L.
        n_pairs: compared pairs counted for each observer (summed over groups), (K,).
    """

    L: np.ndarray
    dist_L: np.ndarray
    q1: float
    iqr: float
    n_pairs: np.ndarray

    @property
    def outliers(self) -> np.ndarray:
        """Indices of observers with ``dist_L > 1.5``."""
        return np.flatnonzero(self.dist_L > OUTLIER_THRESHOLD)


def _log10_binom_pmf(k, n, p_log, q_log):
    """log10 of the binomial pmf C(n, k) p^k (1-p)^(n-k) from log p and log(1-p) (k may be x.5)."""
    ln = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * p_log + (n - k) * q_log
    return ln / np.log(10)


def pw_outlier_analysis(groups, prior: str = "gaussian", regularization: str = "mean0") -> OutlierResult:
    """Per-observer likelihood of their answers given everybody else's, and an outlier distance.

    For each group (e.g. scene) and observer o, the other observers' summed counts are scaled
    (:func:`pw_scale`), giving ``P_ij = Phi((q_i - q_j) / 1.4826)``. Over o's compared pairs
    ``i < j`` (``n_ij = M_ij + M_ji > 0``), the log10 binomial probabilities
    ``log10 binopdf(M_ij; n_ij, P_ij)`` are summed over pairs and groups and divided by the number of
    compared pairs: that is ``L_o``. With Q1 and IQR the Hazen quartiles of L,
    ``dist_L_o = (Q1 - L_o) / IQR`` below Q1 and 0 otherwise; values over 1.5 flag an observer.

    Args:
        groups: a list of K x N x N (or K x N^2) per-observer count stacks, one per group, with the
            same observers in the same order; or a single stack (one group).
        prior, regularization: options of :func:`pw_scale` for scaling the other observers.

    Returns:
        :class:`OutlierResult` (L in log10 units per pair; dist_L in IQRs).

    References:
        Perez-Ortiz, Mikhailiuk, Zerman, Hulusic, Valenzise, Mantiuk, "From pairwise comparisons and
        rating to a unified quality scale", IEEE TIP 2019; pwcmp ``pw_outlier_analysis.m``.
    """
    if isinstance(groups, np.ndarray) and groups.ndim in (2, 3):
        groups = [groups]
    elif isinstance(groups, np.ndarray) and groups.ndim == 4:
        groups = list(groups)
    stacks = [check_stack(g, f"groups[{i}]") for i, g in enumerate(groups)]
    if not stacks:
        raise ValueError("groups is empty: pass at least one K x N x N stack")
    K = stacks[0].shape[0]
    for i, s in enumerate(stacks):
        if s.shape[0] != K:
            raise ValueError(
                f"groups[{i}] has {s.shape[0]} observers but groups[0] has {K}: every group must "
                "list the same observers in the same order (use zero matrices for missing data)"
            )
    if K < 3:
        raise ValueError(f"outlier analysis needs at least 3 observers, got {K}")
    total = np.zeros(K)
    n_pairs = np.zeros(K)
    for MM in stacks:
        N = MM.shape[1]
        iu = np.triu_indices(N, 1)
        full = MM.sum(axis=0)
        for o in range(K):
            M = MM[o]
            n = M[iu] + M.T[iu]
            sel = n > 0
            if not sel.any():
                continue
            rest = full - M
            if not np.any(rest + rest.T > 0):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = pw_scale(rest, prior, regularization).jod
            z = (q[iu[0]] - q[iu[1]])[sel] / SIGMA
            total[o] += np.sum(_log10_binom_pmf(M[iu][sel], n[sel], log_ndtr(z), log_ndtr(-z)))
            n_pairs[o] += sel.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        L = np.where(n_pairs > 0, total / np.where(n_pairs > 0, n_pairs, 1), np.nan)
    valid = L[np.isfinite(L)]
    q1, q3 = np.percentile(valid, [25, 75], method="hazen")
    iqr = float(q3 - q1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(L < q1, (q1 - L) / iqr if iqr > 0 else np.inf, 0.0)
    dist = np.where(np.isfinite(L), dist, np.nan)
    return OutlierResult(L=L, dist_L=dist, q1=float(q1), iqr=iqr, n_pairs=n_pairs)
