"""pwcmp's negative log posterior of Thurstone Case V scores, with its analytic gradient and Hessian.

For the ordered compared pairs a = (i, j) (each unordered pair twice) and ``z_a = (q_i - q_j) / s``
(s = 1.4826), ``F(q) = -sum_a [D_ij ln Phi(z_a) + D_ji ln Phi(-z_a) + ln(pi_a + 0.1)]`` where pi_a is
pwcmp's data-driven distance prior: ``pi_a = sum_b A_ab / sum_c A_cb`` with
``A_ab = Phi(z_a)^k_b Phi(-z_a)^(n_b - k_b)`` and (k_b, n_b) the unanimity-shifted counts of pair b.
Columns b with the same (k, n) are identical, so they are kept once with their multiplicity.

The Hessian is exact: with ``B_au = A_au / sum_c A_cu`` (column-normalised), ``G_au = d ln A_au /
dz_a``, ``w_a = 1 / (pi_a + 0.1)`` and ``h_u = sum_a w_a B_au``, the prior's Hessian in z is a
diagonal plus products of the (pairs x columns) matrices B and ``B * G``, so the N x N Hessian in q
costs O(m U min(U, N) + N^2 U) for m pairs and U distinct count columns, never a 2m x 2m matrix.
Reference: Perez-Ortiz & Mantiuk, arXiv:1712.03686 (the model); the derivatives are ours.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.special import log_ndtr

from .contracts.units import SIGMA

#: Offset added to the prior before its logarithm (pwcmp).
PRIOR_OFFSET = 0.1
#: Largest prior block (rows x distinct columns) held in memory at once, in float64 entries.
_PRIOR_BLOCK = 4_000_000
#: Largest incidence matrix (conditions x ordered pairs) kept dense, in entries.
_DENSE_INCIDENCE = 200_000


def _ratio(z: np.ndarray) -> np.ndarray:
    """phi(z) / Phi(z), computed stably for any z (inverse Mills ratio)."""
    return np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_ndtr(z))


def _column_softmax(L: np.ndarray) -> np.ndarray:
    """exp(L) with each column normalised to sum 1, without overflow or underflow to all-zero."""
    E = np.exp(L - L.max(axis=0))
    return E / E.sum(axis=0)


def _shifted_prior_counts(D: np.ndarray, I: np.ndarray, J: np.ndarray):
    """pwcmp's unanimity shift for the prior: on a unanimous pair 0 -> 1 and k -> k - 1."""
    k = D[I, J].copy()
    kt = D[J, I]
    unanimous = (k == 0) | (kt == 0)
    k[unanimous] = np.where(k[unanimous] == 0, 1.0, np.maximum(k[unanimous] - 1, 0.0))
    n = D[I, J] + D[J, I]
    return k, n


class _Objective:
    """Negative log posterior of pwcmp's model, as a function of x = q[1:] (q[0] = 0).

    Calling it returns ``(F, dF/dx)``; :meth:`hess` returns ``d^2F/dx^2`` ((N-1) x (N-1)).
    ``D_lik`` holds the counts of the likelihood, ``D_prior`` those that define the prior (pwcmp's
    counts, before any correction) and the compared pairs.
    """

    def __init__(self, D_lik: np.ndarray, D_prior: np.ndarray, prior: str):
        N = D_lik.shape[0]
        S = D_prior + D_prior.T
        I, J = np.nonzero(S > 0)  # all ordered compared pairs: each unordered pair twice
        self.N, self.I, self.J = N, I, J
        self.wins = D_lik[I, J]
        self.losses = D_lik[J, I]
        self.prior = prior
        rows, m2 = np.arange(len(I)), len(I)
        # transposed incidence matrix (row a of Q is e_I - e_J, so z = Q q / SIGMA); dense when
        # small, where scipy.sparse's per-call overhead dominates
        if N * m2 <= _DENSE_INCIDENCE:
            self.QT = np.zeros((N, m2))
            self.QT[I, rows], self.QT[J, rows] = 1.0, -1.0
        else:
            self.QT = sparse.csr_matrix(
                (np.repeat([1.0, -1.0], m2), (np.concatenate([I, J]), np.tile(rows, 2))),
                shape=(N, m2),
            )
        # flat indices of the weighted Laplacian Q^T diag(v) Q: +v at (I, I) and (J, J), -v at
        # (I, J) and (J, I)
        self._lap = np.concatenate([I * N + I, J * N + J, I * N + J, J * N + I])
        self._cache = (None, None)
        if prior == "gaussian":
            k, n = _shifted_prior_counts(D_prior, I, J)
            _, first, mult = np.unique(k + 1j * n, return_index=True, return_counts=True)
            self.k, self.n, self.mult = k[first], n[first], mult.astype(float)
            U = len(self.k)
            block = max(1, _PRIOR_BLOCK // max(len(I), 1))
            self.chunks = [slice(s, min(s + block, U)) for s in range(0, U, block)]

    def _state(self, x: np.ndarray):
        """Per-pair quantities at x, cached for the Hessian at the same point:
        z, ln Phi(z), ln Phi(-z), phi/Phi(z), phi/Phi(-z), and with the prior pi, 1 / (pi + 0.1)
        and the normalised prior matrix B when it fits in one block."""
        x = np.asarray(x, dtype=float)
        if self._cache[0] is not None and np.array_equal(self._cache[0], x):
            return self._cache[1]
        q = np.concatenate([[0.0], x])
        z = (q[self.I] - q[self.J]) / SIGMA
        lp, lq = log_ndtr(z), log_ndtr(-z)
        st = [z, lp, lq, _ratio(z), _ratio(-z)]
        if self.prior == "gaussian":
            pi, B1 = self._pi(lp, lq)
            st += [pi, 1.0 / (pi + PRIOR_OFFSET), B1]
        self._cache = (x.copy(), st)
        return st

    def _blocks(self, lp, lq, cache=None):
        """Yield (column slice, B) per block of prior columns; ``cache`` is B when one block."""
        for sl in self.chunks:
            if cache is not None:
                yield sl, cache
                continue
            yield (
                sl,
                _column_softmax(np.outer(lp, self.k[sl]) + np.outer(lq, self.n[sl] - self.k[sl])),
            )

    def _pi(self, lp, lq):
        """pi_a (the prior) and, when the columns fit in one block, the normalised matrix B."""
        pi = np.zeros_like(lp)
        B1 = None
        for sl, B in self._blocks(lp, lq):
            pi += B @ self.mult[sl]
            B1 = B if len(self.chunks) == 1 else None
        return pi, B1

    def __call__(self, x: np.ndarray):
        st = self._state(x)
        _, lp, lq, rp, rq = st[:5]
        f = -np.sum(self.wins * lp + self.losses * lq)
        dz = -(self.wins * rp - self.losses * rq)
        if self.prior == "gaussian":
            pi, w, B1 = st[5:]
            f -= np.sum(np.log(pi + PRIOR_OFFSET))
            for sl, B in self._blocks(lp, lq, B1):
                k, nk = self.k[sl], self.n[sl] - self.k[sl]
                h = w @ B
                G = np.outer(rp, k) - np.outer(rq, nk)  # d log A_au / d z_a
                dz -= (G * B * (w[:, None] - h[None, :])) @ self.mult[sl]
        g = np.bincount(self.I, dz, self.N) - np.bincount(self.J, dz, self.N)
        return f, g[1:] / SIGMA

    def hess(self, x: np.ndarray) -> np.ndarray:
        """Exact Hessian of the objective w.r.t. x = q[1:] (natural log per JND^2)."""
        st = self._state(x)
        z, lp, lq, rp, rq = st[:5]
        QT = self.QT
        drp, drq = -rp * (z + rp), rq * (rq - z)  # d rp / dz and d rq / dz
        diag = self.wins * -drp + self.losses * drq  # likelihood: d^2 / dz_a^2
        N = self.N
        H = np.zeros((N, N))
        if self.prior == "gaussian":
            _, w, B1 = st[5:]
            w2 = w * w
            t = np.zeros_like(z)  # own-pair part of d pi_a / d z_a
            gram = B1 is not None and len(self.k) <= N  # then the U x U Gram route is cheaper
            Z = None if gram else np.zeros((len(z), N))  # B M S^T Q
            for sl, B in self._blocks(lp, lq, B1):
                k, nk, m = self.k[sl], self.n[sl] - self.k[sl], self.mult[sl]
                h = w @ B
                G = np.outer(rp, k) - np.outer(rq, nk)
                S = B * G
                t += S @ m
                dG = np.outer(drp, k) - np.outer(drq, nk)
                diag -= ((w[:, None] - h[None, :]) * B * (G * G + dG)) @ m
                P = QT @ S  # N x U
                PwM = (QT @ (w[:, None] * S)) * m
                H += PwM @ P.T + P @ PwM.T - (P * (2 * m * h)) @ P.T
                if not gram:
                    Z += B @ (m[:, None] * P.T)
            if gram:  # Z^T W^2 Z = P M (B^T W^2 B) M P^T and Q^T diag(t w^2) Z = R M P^T
                PM = P * m
                H += PM @ ((B.T * w2) @ B) @ PM.T
                RZ = (QT @ ((t * w2)[:, None] * B)) @ PM.T
            else:
                H += Z.T @ (w2[:, None] * Z)
                RZ = QT @ ((t * w2)[:, None] * Z)
            H -= RZ + RZ.T
            diag += t * t * w2
        H += np.bincount(self._lap, np.concatenate([diag, diag, -diag, -diag]), N * N).reshape(N, N)
        return H[1:, 1:] / SIGMA**2


def _trust_step(g: np.ndarray, H: np.ndarray, radius: float) -> np.ndarray:
    """Exact minimiser of ``g.s + s.H.s / 2`` over ``|s| <= radius``, from the eigenvectors of H
    (Nocedal & Wright, Numerical Optimization, 2nd ed., section 4.3, hard case included)."""
    try:  # the usual case near the optimum: H positive definite, Newton step inside the region
        np.linalg.cholesky(H)
        s = -np.linalg.solve(H, g)
        if s @ s <= radius * radius:
            return s
    except np.linalg.LinAlgError:
        pass
    lam, V = np.linalg.eigh(H)
    gam = V.T @ g
    # boundary step s = -(H + mu I)^-1 g; with nu = lam_0 + mu and d = lam - lam_0 >= 0 the
    # denominators d + nu stay exact near the lowest eigenvalue; nu > max(lam_0, 0)
    d = lam - lam[0]
    low = d <= 1e-12 * max(1.0, np.abs(lam).max())
    if lam[0] <= 0 and np.all(np.abs(gam[low]) <= 1e-12 * np.linalg.norm(g)):  # hard case
        s = -V[:, ~low] @ (gam[~low] / d[~low])
        if s @ s <= radius * radius:
            return s + np.sqrt(radius * radius - s @ s) * V[:, 0]
    a = max(lam[0], 0.0)
    b = a + np.linalg.norm(g) / radius  # |s(a+)| > radius >= |s(b)|
    nu = b
    for _ in range(100):  # Newton on 1/|s| - 1/radius, safeguarded by bisection
        s2 = (gam / (d + nu)) ** 2
        n = np.sqrt(s2.sum())
        if abs(n - radius) <= 1e-10 * radius:
            break
        a, b = (nu, b) if n > radius else (a, nu)
        nxt = nu + (n / radius - 1) * n * n / np.sum(s2 / (d + nu))
        nu = nxt if a < nxt < b else 0.5 * (a + b)
    return -V @ (gam / (d + nu))


def minimise(obj: _Objective, x0: np.ndarray, tol: float, max_iter: int):
    """Newton trust-region minimisation of ``obj`` on its exact gradient and Hessian from ``x0``.

    Stops when the gradient norm is at most ``tol`` (or the trust region collapses at the limit of
    floating-point precision). Returns ``(x, F, gradient, iterations)`` with the gradient at the
    returned point, so callers test convergence on it rather than on a flag.
    """
    x = np.array(x0, dtype=float)
    f, g = obj(x)
    radius, it = 1.0, 0
    while it < max_iter and np.linalg.norm(g) > tol and radius > 1e-12:
        it += 1
        H = obj.hess(x)
        s = _trust_step(g, H, radius)
        pred = -(g @ s + 0.5 * s @ H @ s)
        f_new, g_new = obj(x + s)
        rho = (f - f_new) / pred if pred > 0 else -1.0
        at_noise = abs(f - f_new) <= 1e-13 * max(1.0, abs(f))  # f no longer resolves the step
        step = np.linalg.norm(s)
        if rho < 0.25 and not at_noise:
            radius = 0.25 * step
        elif rho > 0.75 and step > 0.99 * radius:
            radius = min(2.0 * radius, 1e3)
        if rho > 0.1 or (at_noise and np.linalg.norm(g_new) < np.linalg.norm(g)):
            x, f, g = x + s, f_new, g_new
        elif at_noise:
            radius = 0.25 * step
    return x, float(f), g, it
