"""Active sampling of comparisons by expected information gain (a simplified ASAP).

ASAP (Mikhailiuk, Wilmot, Perez-Ortiz, Yue, Mantiuk, "Active Sampling for Pairwise Comparisons
via Approximate Message Passing and Information Gain Maximization", ICPR 2020) keeps a Gaussian
posterior over the Thurstone scores, scores every pair by the expected information gain (EIG)
of one more comparison, and in batch mode picks the pairs of the minimum spanning tree of the
comparison graph weighted by 1/EIG, which keeps the design connected.

What this module does, and how it differs from ASAP:

- Posterior: a Laplace approximation (MAP by Newton's method, covariance = inverse Hessian) of
  the Thurstone Case V model P(i > j) = Phi((q_i - q_j) / SIGMA) (pwcmp's unit, SIGMA from
  ``scaling.contracts.units``) with a N(0, 2^2) prior per condition, refitted from all counts
  of the image. ASAP uses approximate message passing
  (TrueSkill-style expectation propagation) updated online; this is the main difference.
- EIG of pair (i, j): the mutual information between the outcome y and the score difference
  d = q_i - q_j ~ N(mu, v) under the posterior, I(y; d) = H(E[p]) - E[H(p)], computed by
  30-point Gauss-Hermite quadrature. ASAP's EIG is the same quantity (expected KL between the
  posterior after and before), but evaluated through its message-passing updates.
- Batch: per image, the minimum spanning tree of the complete graph weighted by 1/EIG (as in
  ASAP's batch mode); the HIT takes the ``trials_per_hit`` edges with the largest EIG over the
  trees of all images. Comparisons already handed out but not yet answered (leased HITs) count
  as half a win each way, so concurrent HITs do not all ask for the same pair.
- Budget: HITs are created on demand until ``ASAP_BUDGET`` comparisons have been handed out.
"""

from __future__ import annotations

import math
import random

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.special import ndtr
from sqlalchemy import func, select

from scaling.contracts.units import SIGMA

from . import models as m
from .design import make_hit
from .experiment import current_experiment
from .hit_pool import insert_hits
from .settings import current_settings

__all__ = ["expected_information_gain", "hit_factory", "laplace_posterior", "select_pairs"]

PRIOR_SD = 2.0
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(30)
_GH_W = _GH_W / _GH_W.sum()


def laplace_posterior(D: np.ndarray, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian (Laplace) posterior of Thurstone scores from counts ``D`` (N x N, JND units).

    ``D[i, j]`` = times i was preferred over j (may be fractional). Returns the MAP mean and
    the covariance (inverse Hessian of the negative log posterior with a N(0, 2^2) prior).
    """
    D = np.asarray(D, dtype=float)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square matrix, got shape {D.shape}")
    n = D.shape[0]
    q = np.zeros(n)
    iu, ju = np.nonzero(D)
    w = D[iu, ju]
    for _ in range(iters):
        z = (q[iu] - q[ju]) / SIGMA
        p = np.clip(ndtr(z), 1e-12, 1.0)
        phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        lam = phi / p  # d/dz log Phi(z)
        g = -q / PRIOR_SD**2
        np.add.at(g, iu, w * lam / SIGMA)
        np.add.at(g, ju, -w * lam / SIGMA)
        h = w * lam * (z + lam) / SIGMA**2  # -d2/dd2 log Phi(d/s) >= 0
        H = np.eye(n) / PRIOR_SD**2
        np.add.at(H, (iu, iu), h)
        np.add.at(H, (ju, ju), h)
        np.add.at(H, (iu, ju), -h)
        np.add.at(H, (ju, iu), -h)
        step = np.linalg.solve(H, g)
        q = q + step
        if np.max(np.abs(step)) < 1e-8:
            break
    # Hessian at the final point
    z = (q[iu] - q[ju]) / SIGMA
    p = np.clip(ndtr(z), 1e-12, 1.0)
    lam = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) / p
    h = w * lam * (z + lam) / SIGMA**2
    H = np.eye(n) / PRIOR_SD**2
    np.add.at(H, (iu, iu), h)
    np.add.at(H, (ju, ju), h)
    np.add.at(H, (iu, ju), -h)
    np.add.at(H, (ju, iu), -h)
    return q, np.linalg.inv(H)


def _entropy(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def expected_information_gain(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """EIG (nats) of one comparison of every pair: I(y; q_i - q_j) under N(mean, cov)."""
    mu = mean[:, None] - mean[None, :]
    var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    sd = np.sqrt(np.maximum(var, 1e-12))
    d = mu[..., None] + sd[..., None] * _GH_X  # quadrature nodes of d
    p = ndtr(d / SIGMA)
    eig = _entropy(p @ _GH_W) - _entropy(p) @ _GH_W
    np.fill_diagonal(eig, 0.0)
    return eig


def select_pairs(counts: dict[str, np.ndarray], k: int) -> list[tuple[str, int, int, float]]:
    """Choose ``k`` comparisons (image, i, j, eig) from per-image count matrices.

    For each image: the Laplace posterior, the EIG of every pair and the minimum spanning tree
    of 1/EIG; the ``k`` tree edges of largest EIG over all images are returned (repeating the
    best edges if there are fewer than ``k``).
    """
    edges = []
    for image, D in counts.items():
        mean, cov = laplace_posterior(D)
        eig = expected_information_gain(mean, cov)
        weights = np.triu(1.0 / np.maximum(eig, 1e-12), 1)
        tree = minimum_spanning_tree(weights).tocoo()
        for i, j in zip(tree.row, tree.col):
            edges.append((image, int(i), int(j), float(eig[i, j])))
    edges.sort(key=lambda e: -e[3])
    if not edges:
        return []
    out = []
    while len(out) < k:
        out.extend(edges[: k - len(out)])
    return out


def _counts(conn, exp) -> dict[str, np.ndarray]:
    idx = {c: n for n, c in enumerate(exp.conditions)}
    counts = {img.id: np.zeros((len(idx), len(idx))) for img in exp.images}
    rows = conn.execute(
        select(m.trials.c.image_id, m.trials.c.left, m.trials.c.right, m.answers.c.chosen_side)
        .select_from(m.trials.outerjoin(m.answers, m.answers.c.trial_id == m.trials.c.id))
        .where(m.trials.c.kind == "pair")
    ).all()
    for image, left, right, side in rows:
        a, b = idx[left], idx[right]
        if side is None or side == "tie":  # not answered yet, or a tie: half a win each way
            counts[image][a, b] += 0.5
            counts[image][b, a] += 0.5
        elif side == "left":
            counts[image][a, b] += 1
        else:
            counts[image][b, a] += 1
    return counts


def create_active_hit(conn, exp, settings) -> int | None:
    """Create one HIT by active sampling inside the caller's transaction; return its id.

    ``settings``: the app's ``Settings`` (trials and checks per HIT, practice, seed, budget);
    None once ``asap_budget`` comparisons have been handed out."""
    handed = conn.execute(
        select(func.count()).select_from(m.trials).where(m.trials.c.kind == "pair")
    ).scalar_one()
    k = settings.trials_per_hit
    if handed + k > settings.asap_budget:
        return None
    chosen = select_pairs(_counts(conn, exp), k)
    if not chosen:
        return None
    new_id = (conn.execute(select(func.max(m.hits.c.id))).scalar() or 0) + 1
    comps = [(img, exp.conditions[i], exp.conditions[j]) for img, i, j, _ in chosen]
    rng = random.Random(settings.seed * 1_000_003 + new_id)
    spec = make_hit(
        comps,
        [e.id for e in exp.images],
        settings.checks_per_hit,
        rng.randrange(2**31 - 1),
        settings.practice,
    )
    insert_hits(conn, [spec], first_id=new_id)
    return new_id


def hit_factory():
    """The HIT factory for ``store.allocate`` in the current app (None for the full design)."""
    settings = current_settings()
    if settings.design != "asap":
        return None
    exp = current_experiment()
    return lambda conn: create_active_hit(conn, exp, settings)
