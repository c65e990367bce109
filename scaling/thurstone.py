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
  deterministic answer with a warning instead of wherever the optimiser stopped;
* minimises with a Newton trust-region method on the exact gradient and Hessian, and detects groups
  of conditions that won (or lost) all their comparisons and that only the nearly flat tail of the
  prior holds (:mod:`scaling.identifiability`): these get a warning and the same correction, so
  the scores never depend on the start point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.special import ndtri

from ._validate import check_matrix
from .contracts.units import SIGMA
from .identifiability import IDENTIFIED_NATS, barrier, beats_components, escape_groups, link_pairs
from .objective import PRIOR_OFFSET, _Objective, _shifted_prior_counts, minimise

# PRIOR_OFFSET, _Objective and _shifted_prior_counts are re-exported for the tests and
# benchmarks/scaling_bench.py (they live in scaling.objective).
__all__ = [
    "PRIORS", "PRIOR_OFFSET", "REGULARIZATIONS", "SIGMA", "UNANIMOUS_CORRECTION", "ScaleResult",
    "ScalingWarning", "_Objective", "_shifted_prior_counts", "comparison_components",
    "iso20462_scores", "preference_probability", "pw_scale", "residuals",
]  # fmt: skip

#: Counts added to each side of a unanimous pair when the data have no finite optimum.
UNANIMOUS_CORRECTION = 0.5

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
        not_identified: groups of conditions (index lists) that won or lost all their comparisons
            with the others and whose distance to them the data did not identify; the pairs linking
            each group to the rest got +0.5 counts on both sides (see :func:`pw_scale`).
        converged: whether the gradient of the objective vanished at the result (see ``tol``).
        n_iter: optimiser iterations.
        neg_log_posterior: value of the minimised objective (natural log).
    """

    jod: np.ndarray
    residuals: np.ndarray
    prior: str
    regularization: str
    components: list = field(default_factory=list)
    unanimous_correction: bool = False
    not_identified: list = field(default_factory=list)
    converged: bool = True
    n_iter: int = 0
    neg_log_posterior: float = float("nan")


def _names(idx, labels) -> str:
    return ", ".join(str(labels[i]) if labels is not None else str(i) for i in idx)


def _pair_list(pairs, labels) -> str:
    shown = ", ".join(f"({_names([i], labels)}, {_names([j], labels)})" for i, j in pairs[:10])
    return shown + (f" and {len(pairs) - 10} more" if len(pairs) > 10 else "")


def _corrected(D: np.ndarray, pairs) -> np.ndarray:
    """D with the Haldane-Anscombe correction (+0.5 to both counts) on each of ``pairs``."""
    D = D.copy()
    for i, j in pairs:
        D[i, j] += UNANIMOUS_CORRECTION
        D[j, i] += UNANIMOUS_CORRECTION
    return D


def _hold_unidentified(obj, fit, D_lik, D_work, prior, tol, max_iter):
    """Correct the groups whose distance to the rest only the prior's flat tail holds, and refit.

    ``fit`` is ``minimise``'s (x, F, gradient, iterations) on ``obj``. Repeats until every group of
    :func:`escape_groups` is held by at least IDENTIFIED_NATS (each correction merges components of
    the beats digraph, so this ends). Returns the final fit, the corrected groups with their sign
    and the corrected pairs.
    """
    (x, f, g, nit), loose, pairs = fit, [], []
    groups = escape_groups(D_lik)
    while groups:
        q = np.concatenate([[0.0], x])
        new = [(grp, sign) for grp, sign in groups if barrier(obj, q, grp, sign) < IDENTIFIED_NATS]
        if not new:
            break
        fresh = sorted({p for grp, _ in new for p in link_pairs(D_lik, grp)} - set(pairs))
        loose, pairs = loose + new, pairs + fresh
        D_lik = _corrected(D_lik, fresh)
        obj = _Objective(D_lik, D_work, prior)
        x, f, g, n = minimise(obj, np.zeros(D_lik.shape[0] - 1), tol, max_iter)
        nit += n
        groups = escape_groups(D_lik)
    return (x, f, g, nit), loose, sorted(pairs)


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
    return bool(beats_components(D).max() > 0)


def pw_scale(
    D,
    prior: str = "gaussian",
    regularization: str = "mean0",
    *,
    labels=None,
    x0=None,
    tol: float = 1e-9,
    max_iter: int = 500,
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
    * scores the data do not identify (with the prior): a group of conditions that won (or lost)
      every comparison with the others (:func:`~scaling.identifiability.escape_groups`) is held
      only by the prior, whose tail is nearly flat, so pwcmp's answer depends on the start point
      (up to 17 JND apart for a condition that won its ~10 single comparisons). A group
      counts as identified when moving it infinitely far, the other scores held, raises the
      objective by at least 1.92 (the 95% likelihood-ratio cut; pwcmp's answer is kept then).
      Otherwise a :class:`ScalingWarning` names the group, 0.5 is added to both counts of each
      pair linking it to the rest (as above) and ``.not_identified`` lists it; its distance to
      the rest is then a lower bound.
    * large counts: the likelihood and prior are computed in the log domain, so counts of any size
      give finite scores (pwcmp underflows beyond ~1000 comparisons per pair).

    Args:
        D: N x N counts, ``D[i, j]`` = times condition i was preferred over j (x.5 ties allowed).
        prior: ``"gaussian"`` (pwcmp's data-driven distance prior, its default) or ``"none"``.
        regularization: ``"mean0"`` (scores sum to zero) or ``"fix0"`` (first score is 0).
        labels: optional condition names, used in warnings.
        x0: optional starting scores (length N) for the optimiser, used only where every start
            reaches the same optimum (the beats digraph is strongly connected, so the likelihood
            bounds every difference); elsewhere the optimiser starts at 0, as pwcmp does. The
            result does not depend on it.
        tol: gradient-norm tolerance of the Newton trust-region optimiser (exact Hessian). The
            result counts as converged when the largest gradient entry is at most 1e-6 times the
            largest number of comparisons of one condition (``.converged``; else a RuntimeWarning).
        max_iter: iteration limit of each Newton run.

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
        D_lik = _corrected(D_work, pairs)
        why = (
            "every compared pair is unanimous"
            if prior == "gaussian"
            else "some conditions were never beaten by (or never beat) the rest"
        )
        warnings.warn(
            f"These data have no finite maximum-likelihood scores ({why}); pwcmp would return an "
            f"optimiser-dependent result. Added {UNANIMOUS_CORRECTION} to both counts of each "
            f"unanimous pair {_pair_list(pairs, labels)} (Haldane-Anscombe correction) to get a "
            "deterministic answer; treat the distances involving these pairs as lower bounds.",
            ScalingWarning,
            stacklevel=2,
        )

    start = np.zeros(N) if x0 is None else np.asarray(x0, dtype=float)
    if start.shape != (N,) or not np.all(np.isfinite(start)):
        raise ValueError(f"x0 must be {N} finite starting scores, got shape {start.shape}")
    obj = _Objective(D_lik, D_work, prior)
    # x0 only warm-starts a problem whose optimum is the same from any start (strongly connected
    # beats digraph); elsewhere the prior's flat tail would keep a group wherever x0 put it.
    free = beats_components(D_lik).max() > 0  # only with pwcmp's prior, after the corrections above
    fit = minimise(obj, np.zeros(N - 1) if free else start[1:] - start[0], tol, max_iter)
    (x, f, g, nit), loose, pairs = _hold_unidentified(obj, fit, D_lik, D_work, prior, tol, max_iter)
    if loose:
        verb = {1: "won", -1: "lost"}
        desc = "; ".join(f"{{{_names(grp, labels)}}} {verb[sign]} all" for grp, sign in loose[:8])
        desc += f" (and {len(loose) - 8} more groups)" if len(loose) > 8 else ""
        warnings.warn(
            f"Scores not identified by the data: {desc} of their comparisons with the other "
            f"conditions. pwcmp's prior holds these groups less than {IDENTIFIED_NATS} nats (the "
            "95% likelihood-ratio cut) away from infinitely far, so their optimum would depend on "
            f"the optimiser's start point. Added {UNANIMOUS_CORRECTION} to both counts of each "
            f"pair linking them to the rest {_pair_list(pairs, labels)} (Haldane-Anscombe "
            "correction) to get a deterministic answer; their distances to the rest are lower "
            "bounds. Collect more comparisons of these conditions.",
            ScalingWarning,
            stacklevel=2,
        )
    q = np.concatenate([[0.0], x])
    scale = max(1.0, float((D_lik + D_lik.T).sum(axis=1).max()))
    converged = bool(np.max(np.abs(g), initial=0.0) <= 1e-6 * scale)
    if not converged:
        warnings.warn(
            f"pw_scale did not converge after {nit} iterations (largest gradient "
            f"{np.max(np.abs(g)):.2g}); scores may be inaccurate.",
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
        not_identified=[grp for grp, _ in loose],
        converged=converged,
        n_iter=nit,
        neg_log_posterior=f,
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
