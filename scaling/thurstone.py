"""Thurstone Case V scaling of pairwise comparisons into JND units, as pwcmp's ``pw_scale``.

The model (Perez-Ortiz & Mantiuk, "A practical guide and software for analysing pairwise comparison
experiments", arXiv:1712.03686) says that condition i is preferred over condition j with probability

.. math:: P(i \\succ j) = \\Phi\\left(\\frac{q_i - q_j}{\\sigma}\\right),\\qquad \\sigma = 1.4826,

so a difference of one unit is chosen by about 75% of people: one JND (pwcmp calls it JOD). The
scores maximise the likelihood of the counts, optionally times pwcmp's data-driven "gaussian" distance
prior, under a ``mean0`` (zero mean) or ``fix0`` (first condition at 0) constraint.

Unlike pwcmp this implementation

* works in the log domain (counts over ~1000 per pair no longer underflow to all-zero scores);
* builds the prior from the distinct (wins, total) count pairs only, not pwcmp's 2m x 2m matrix;
* detects data without a finite optimum (e.g. every pair unanimous) and returns a documented,
  deterministic answer with a warning instead of wherever the optimiser stopped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph
from scipy.special import log_ndtr, ndtri

from ._validate import check_matrix
from .contracts.units import SIGMA

#: Offset added to the prior before its logarithm (pwcmp).
PRIOR_OFFSET = 0.1
#: Counts added to each side of a unanimous pair when the data have no finite optimum.
UNANIMOUS_CORRECTION = 0.5
#: Largest prior block (rows x distinct columns) held in memory at once, in float64 entries.
_PRIOR_BLOCK = 4_000_000

PRIORS = ("gaussian", "none")
REGULARIZATIONS = ("mean0", "fix0")


class ScalingWarning(UserWarning):
    """Data that pwcmp would scale silently but whose result needs care (see the message)."""


@dataclass(frozen=True)
class ScaleResult:
    """Result of :func:`pw_scale`.

    Attributes:
        jod: scores in JND (JOD) units, shape (N,).
        residuals: N x N matrix, ``(q_i - q_j) - 1.4826 * Phi^-1(D_ij / (D_ij + D_ji))`` in JND for
            pairs with votes in both directions, NaN elsewhere (as pwcmp).
        prior, regularization: the options used.
        components: connected components of the comparison graph (lists of condition indices);
            more than one means representatives were tied to join them, as pwcmp does.
        unanimous_correction: True when the data had no finite optimum and every unanimous pair got
            +0.5 counts on both sides (see :func:`pw_scale`).
        converged: whether the optimiser met its tolerance.
        n_iter: optimiser iterations.
        neg_log_posterior: value of the minimised objective (natural log).
    """

    jod: np.ndarray
    residuals: np.ndarray
    prior: str
    regularization: str
    components: list = field(default_factory=list)
    unanimous_correction: bool = False
    converged: bool = True
    n_iter: int = 0
    neg_log_posterior: float = float("nan")


def _names(idx, labels) -> str:
    return ", ".join(str(labels[i]) if labels is not None else str(i) for i in idx)


def iso20462_scores(D: np.ndarray) -> np.ndarray:
    """Provisional ISO 20462 scores used by pwcmp to pick a component's representative.

    ``M_ij = D_ij / (D_ij + D_ji)`` (0.5 where never compared) and
    ``score_j = sum_i -(12/pi * asin(sqrt(M_ij)) - 3) / 2`` (JND-like units; higher is better).
    """
    D = np.asarray(D, dtype=float)
    S = D + D.T
    with np.errstate(invalid="ignore", divide="ignore"):
        M = np.where(S > 0, D / np.where(S > 0, S, 1), 0.5)
    return np.sum(-(12 / np.pi * np.arcsin(np.sqrt(M)) - 3) / 2, axis=0)


def comparison_components(D: np.ndarray) -> list[list[int]]:
    """Connected components of the comparison graph ``(D + D^T) > 0``, each a sorted index list."""
    D = np.asarray(D, dtype=float)
    adj = (D + D.T) > 0
    lab = np.arange(D.shape[0])
    while True:  # label propagation: each node takes the smallest label among its neighbours
        nxt = np.minimum(lab, np.where(adj, lab[None, :], lab.size).min(axis=1))
        if np.array_equal(nxt, lab):
            break
        lab = nxt
    return [np.flatnonzero(lab == c).tolist() for c in np.unique(lab)]


def _join_components(D: np.ndarray, comps, labels) -> np.ndarray:
    """pwcmp's handling of a disconnected design: tie the best condition of each component 1:1."""
    scores = iso20462_scores(D)
    reps = [c[int(np.argmax(scores[c]))] for c in comps]
    D = D.copy()
    for a, b in combinations(reps, 2):
        D[a, b] += 1
        D[b, a] += 1
    desc = "; ".join("{" + _names(c, labels) + "}" for c in comps)
    warnings.warn(
        f"The comparison graph is disconnected into {len(comps)} components: {desc}. As pwcmp does, "
        f"the best condition of each ({_names(reps, labels)}) was tied 1:1 to the others; scores "
        "across components are not comparable.",
        ScalingWarning,
        stacklevel=3,
    )
    return D


def _shifted_prior_counts(D: np.ndarray, I: np.ndarray, J: np.ndarray):
    """pwcmp's unanimity shift for the prior: on a unanimous pair 0 -> 1 and k -> k - 1."""
    k = D[I, J].copy()
    kt = D[J, I]
    unanimous = (k == 0) | (kt == 0)
    k[unanimous] = np.where(k[unanimous] == 0, 1.0, np.maximum(k[unanimous] - 1, 0.0))
    n = D[I, J] + D[J, I]
    return k, n


def _ill_posed(D: np.ndarray, prior: str) -> bool:
    """True when the (connected) data have no finite optimum.

    Without a prior the maximum-likelihood scores are finite iff the "beats" digraph (i -> j when i
    won at least once against j) is strongly connected (Zermelo 1929; Ford 1957). With pwcmp's
    prior they are finite as long as one compared pair is not unanimous.
    """
    S = D + D.T
    iu = np.triu_indices_from(D, 1)
    compared = S[iu] > 0
    split = (D[iu] > 0) & (D.T[iu] > 0)
    if prior == "gaussian":
        return not np.any(split[compared])
    n, _ = csgraph.connected_components(sparse.csr_matrix(D > 0), directed=True, connection="strong")
    return n > 1


def _ratio(z: np.ndarray) -> np.ndarray:
    """phi(z) / Phi(z), computed stably for any z (inverse Mills ratio)."""
    return np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_ndtr(z))


def _column_softmax(L: np.ndarray) -> np.ndarray:
    """exp(L) with each column normalised to sum 1, without overflow or underflow to all-zero."""
    E = np.exp(L - L.max(axis=0))
    return E / E.sum(axis=0)


class _Objective:
    """Negative log posterior of pwcmp's model and its gradient, as a function of q[1:] (q[0] = 0)."""

    def __init__(self, D_lik: np.ndarray, D_prior: np.ndarray, prior: str):
        N = D_lik.shape[0]
        S = D_prior + D_prior.T
        I, J = np.nonzero(S > 0)  # all ordered compared pairs: each unordered pair twice
        self.N, self.I, self.J = N, I, J
        self.wins = D_lik[I, J]
        self.losses = D_lik[J, I]
        self.prior = prior
        if prior == "gaussian":
            k, n = _shifted_prior_counts(D_prior, I, J)
            _, first, mult = np.unique(k + 1j * n, return_index=True, return_counts=True)
            self.k, self.n, self.mult = k[first], n[first], mult.astype(float)
            rows = max(len(I), 1)
            self.block = max(1, _PRIOR_BLOCK // rows)

    def __call__(self, x: np.ndarray):
        q = np.concatenate([[0.0], x])
        z = (q[self.I] - q[self.J]) / SIGMA
        lp, lq = log_ndtr(z), log_ndtr(-z)
        rp, rq = _ratio(z), _ratio(-z)
        f = -np.sum(self.wins * lp + self.losses * lq)
        dz = -(self.wins * rp - self.losses * rq)
        if self.prior == "gaussian":
            fp, dzp = self._prior(lp, lq, rp, rq)
            f += fp
            dz += dzp
        g = np.bincount(self.I, dz, self.N) - np.bincount(self.J, dz, self.N)
        return f, g[1:] / SIGMA

    def _prior(self, lp, lq, rp, rq):
        """-sum_a log(pi_a + 0.1) and its derivative w.r.t. z_a.

        pi_a = sum_b A_ab / sum_c A_cb with A_ab = p_a^k_b (1 - p_a)^(n_b - k_b); columns b with the
        same (k, n) are identical, so they are summed once with their multiplicity.
        """
        U = len(self.k)
        chunks = [slice(s, min(s + self.block, U)) for s in range(0, U, self.block)]
        pi = np.zeros_like(lp)
        cache = []
        for sl in chunks:
            k, nk = self.k[sl], self.n[sl] - self.k[sl]
            B = _column_softmax(np.outer(lp, k) + np.outer(lq, nk))
            pi += np.dot(B, self.mult[sl]) if B.size > 65536 else (B * self.mult[sl]).sum(axis=1)
            cache.append(B if len(chunks) == 1 else None)
        w = 1.0 / (pi + PRIOR_OFFSET)
        f = -np.sum(np.log(pi + PRIOR_OFFSET))
        dz = np.zeros_like(lp)
        for sl, B in zip(chunks, cache):
            k, nk = self.k[sl], self.n[sl] - self.k[sl]
            if B is None:
                B = _column_softmax(np.outer(lp, k) + np.outer(lq, nk))
            h = np.dot(w, B) if B.size > 65536 else (w[:, None] * B).sum(axis=0)
            G = np.outer(rp, k) - np.outer(rq, nk)  # d log A_au / d z_a
            dz -= np.sum(self.mult[sl] * G * B * (w[:, None] - h[None, :]), axis=1)
        return f, dz


def pw_scale(
    D,
    prior: str = "gaussian",
    regularization: str = "mean0",
    *,
    labels=None,
    x0=None,
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> ScaleResult:
    """Scale a pairwise-comparison count matrix into JND units (pwcmp's ``pw_scale``).

    Maximises ``sum_a [ln l_a + ln(pi_a + 0.1)]`` over the ordered compared pairs a = (i, j), with
    ``l_a = p_a^D_ij (1 - p_a)^D_ji``, ``p_a = Phi((q_i - q_j) / 1.4826)`` and pi_a pwcmp's distance
    prior (``prior="gaussian"``; pi = 1 for ``"none"``). The result has mean 0 (``"mean0"``) or
    q_0 = 0 (``"fix0"``); both are translations of the same optimum.

    Data pwcmp mishandles:

    * disconnected comparison graphs: as pwcmp, each component's best condition (provisional ISO
      20462 score) is tied 1:1 to the other representatives, with a :class:`ScalingWarning` naming
      the components;
    * no finite optimum (with the prior: every compared pair unanimous; without it: the "beats" graph
      is not strongly connected): pwcmp returns an optimiser-dependent point. Here a
      :class:`ScalingWarning` lists the unanimous pairs and 0.5 is added to both counts of each
      unanimous pair in the likelihood (the Haldane-Anscombe correction), which makes the optimum
      finite and unique; a single 10:0 pair then scales to 2.51 JND.
    * large counts: the likelihood and prior are computed in the log domain, so counts of any size
      give finite scores (pwcmp underflows beyond ~1000 comparisons per pair).

    Args:
        D: N x N counts, ``D[i, j]`` = times condition i was preferred over j (x.5 ties allowed).
        prior: ``"gaussian"`` (pwcmp's data-driven distance prior, its default) or ``"none"``.
        regularization: ``"mean0"`` (scores sum to zero) or ``"fix0"`` (first score is 0).
        labels: optional condition names, used in warnings.
        x0: optional starting scores (length N); the optimum does not depend on it.
        tol: gradient tolerance of the L-BFGS optimiser.
        max_iter: iteration limit of the optimiser.

    Returns:
        :class:`ScaleResult` with ``.jod`` (JND units) and ``.residuals``.

    Raises:
        ValueError: for a malformed matrix (names the offending entry) or unknown option.

    References:
        Perez-Ortiz, Mantiuk, "A practical guide and software for analysing pairwise comparison
        experiments", arXiv:1712.03686 (2017); github mantiuk/pwcmp.
    """
    D = check_matrix(D)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"regularization must be one of {REGULARIZATIONS}, got {regularization!r}")
    N = D.shape[0]
    if labels is not None and len(labels) != N:
        raise ValueError(f"labels has {len(labels)} names for N = {N} conditions")
    S = D + D.T
    if not np.any(S > 0):
        raise ValueError("D holds no comparison at all (every entry is 0)")

    comps = comparison_components(D)
    D_work = _join_components(D, comps, labels) if len(comps) > 1 else D

    D_lik = D_work
    corrected = False
    if _ill_posed(D_work, prior):
        corrected = True
        iu = np.triu_indices(N, 1)
        S_w = D_work + D_work.T
        una = (S_w[iu] > 0) & ((D_work[iu] == 0) | (D_work.T[iu] == 0))
        pairs = [(int(i), int(j)) for i, j, u in zip(*iu, una) if u]
        D_lik = D_work.copy()
        for i, j in pairs:
            D_lik[i, j] += UNANIMOUS_CORRECTION
            D_lik[j, i] += UNANIMOUS_CORRECTION
        shown = ", ".join(
            f"({labels[i] if labels is not None else i}, {labels[j] if labels is not None else j})"
            for i, j in pairs[:10]
        )
        more = f" and {len(pairs) - 10} more" if len(pairs) > 10 else ""
        why = (
            "every compared pair is unanimous"
            if prior == "gaussian"
            else "some conditions were never beaten by (or never beat) the rest"
        )
        warnings.warn(
            f"These data have no finite maximum-likelihood scores ({why}); pwcmp would return an "
            f"optimiser-dependent result. Added {UNANIMOUS_CORRECTION} to both counts of each "
            f"unanimous pair {shown}{more} (Haldane-Anscombe correction) to get a deterministic "
            "answer; treat the distances involving these pairs as lower bounds.",
            ScalingWarning,
            stacklevel=2,
        )

    obj = _Objective(D_lik, D_work, prior)
    start = np.zeros(N) if x0 is None else np.asarray(x0, dtype=float)
    if start.shape != (N,) or not np.all(np.isfinite(start)):
        raise ValueError(f"x0 must be {N} finite starting scores, got shape {start.shape}")
    res = optimize.minimize(
        obj,
        start[1:] - start[0],
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20},
    )
    q = np.concatenate([[0.0], res.x])
    grad_ok = np.max(np.abs(res.jac), initial=0.0) < 1e-4
    converged = bool(res.success or grad_ok)
    if not converged:
        warnings.warn(
            f"pw_scale did not converge after {res.nit} iterations ({res.message}); "
            "scores may be inaccurate.",
            RuntimeWarning,
            stacklevel=2,
        )
    if regularization == "mean0":
        q = q - q.mean()
    return ScaleResult(
        jod=q,
        residuals=residuals(q, D),
        prior=prior,
        regularization=regularization,
        components=comps,
        unanimous_correction=corrected,
        converged=converged,
        n_iter=int(res.nit),
        neg_log_posterior=float(res.fun),
    )


def residuals(jod, D) -> np.ndarray:
    """Residuals of the fit, as pwcmp: ``(q_i - q_j) - 1.4826 * Phi^-1(D_ij / (D_ij + D_ji))``.

    In JND units; defined for pairs with votes in both directions, NaN elsewhere.
    """
    D = np.asarray(D, dtype=float)
    q = np.asarray(jod, dtype=float)
    S = D + D.T
    both = (D > 0) & (D.T > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        emp = SIGMA * ndtri(np.where(both, D / np.where(S > 0, S, 1), 0.5))
    R = (q[:, None] - q[None, :]) - emp
    R[~both] = np.nan
    return R


def preference_probability(jod) -> np.ndarray:
    """N x N matrix of P(i preferred over j) = Phi((q_i - q_j) / 1.4826) predicted by the scores."""
    from scipy.special import ndtr

    q = np.asarray(jod, dtype=float)
    return ndtr((q[:, None] - q[None, :]) / SIGMA)
