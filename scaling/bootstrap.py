"""Confidence intervals of JND scores by resampling observers (pwcmp's ``pw_scale_bootstrp``)."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ._validate import check_stack
from .thurstone import PRIORS, REGULARIZATIONS, ScaleResult, ScalingWarning, pw_scale


@dataclass(frozen=True)
class BootstrapResult:
    """Result of :func:`pw_scale_bootstrap` (all scores in JND units).

    Attributes:
        jod: point estimate from the full data (not the bootstrap mean), shape (N,).
        low, high: percentile confidence interval bounds (alpha/2, 1 - alpha/2; Hazen rule), (N,).
        cov: N x N covariance of the bootstrap samples.
        samples: B x N bootstrap scores.
        alpha: the significance level of the interval.
        point: the full :class:`~scaling.thurstone.ScaleResult` of the point estimate.
        n_warned: number of resamples whose scaling raised a warning (disconnected or unanimous).
        warned_by_condition: per condition, in how many resamples it was what a warning was
            about (outside the largest component of a disconnected resample, or in a unanimous
            pair of a resample without a finite optimum), shape (N,).
    """

    jod: np.ndarray
    low: np.ndarray
    high: np.ndarray
    cov: np.ndarray
    samples: np.ndarray
    alpha: float
    point: ScaleResult
    n_warned: int = 0
    warned_by_condition: np.ndarray | None = None

    @property
    def se(self) -> np.ndarray:
        """Bootstrap standard error of each score (JND)."""
        return self.samples.std(axis=0, ddof=1)


def round_ties(D: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round x.5 tie counts randomly per pair, keeping each pair's total (as pwcmp's bootstrap)."""
    D = np.array(D, dtype=float)
    frac = (D % 1) != 0
    if not frac.any():
        return D
    iu = np.argwhere(np.triu(frac | frac.T, 1))
    up = rng.random(len(iu)) < 0.5
    for (i, j), u in zip(iu, up):
        total = D[i, j] + D[j, i]
        D[i, j] = np.ceil(D[i, j]) if u else np.floor(D[i, j])
        D[j, i] = total - D[i, j]
    return D


def _involved(result: ScaleResult, D: np.ndarray) -> np.ndarray:
    """The conditions a resample's warnings are about: outside the largest component of a
    disconnected design, in the unanimous pairs of data without a finite optimum, and in the
    groups whose scores the data do not identify (``ScaleResult.not_identified``)."""
    involved = np.zeros(D.shape[0], dtype=bool)
    if len(result.components) > 1:
        largest = max(result.components, key=len)
        for comp in result.components:
            if comp is not largest:
                involved[comp] = True
    if result.unanimous_correction:
        involved |= (((D + D.T) > 0) & ((D == 0) | (D.T == 0))).any(axis=1)
    for group in result.not_identified:
        involved[list(group)] = True
    return involved


def _scale_chunk(args):
    """Worker: scale a list of resamples. Returns (B_chunk x N scores, number that warned,
    per condition the number of resamples whose warnings were about it)."""
    MM, index_rows, seeds, prior, regularization, x0 = args
    out = np.empty((len(index_rows), MM.shape[1]))
    n_warned, by_condition = 0, np.zeros(MM.shape[1], dtype=int)
    for b, (rows, seed) in enumerate(zip(index_rows, seeds)):
        D = round_ties(MM[rows].sum(axis=0), np.random.default_rng(seed))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = pw_scale(D, prior, regularization, x0=x0)
        out[b] = res.jod
        if caught:
            n_warned += 1
            by_condition += _involved(res, D)
    return out, n_warned, by_condition


def _warned_summary(n_warned: int, n_samples: int, by_condition: np.ndarray, labels) -> str:
    """The bootstrap's warning: how many resamples warned, and about which conditions."""
    order = [int(i) for i in np.argsort(-by_condition, kind="stable") if by_condition[i]]
    names = [f"{labels[i] if labels is not None else i} in {by_condition[i]}" for i in order[:10]]
    more = f" and {len(order) - 10} more" if len(order) > 10 else ""
    about = f"; conditions involved: {', '.join(names)}{more}" if names else ""
    return (
        f"{n_warned} of {n_samples} bootstrap resamples were disconnected, had no finite "
        f"optimum or scores the data do not identify (see pw_scale{about}); their CIs are less "
        "reliable. Collect more comparisons."
    )


def _single_thread_blas():
    """Worker initializer: one BLAS thread per process (OpenBLAS threads spin against each other
    after a fork and made a 2-process bootstrap 15x slower than a serial one on 2 cores)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def pw_scale_bootstrap(
    MM,
    n_samples: int = 500,
    alpha: float = 0.05,
    seed=None,
    prior: str = "gaussian",
    regularization: str = "mean0",
    *,
    n_jobs: int | None = None,
    labels=None,
    progress: bool = False,
) -> BootstrapResult:
    """Bootstrap confidence intervals of JND scores by resampling observers with replacement.

    Each of ``n_samples`` resamples draws K observers with replacement from the K per-observer count
    matrices, sums them, rounds x.5 ties randomly per pair and scales the sum with :func:`pw_scale`
    (same options). The interval is the Hazen-rule percentile interval (MATLAB's ``prctile``) at
    ``alpha/2`` and ``1 - alpha/2``; the point estimate is the scaling of the full data.

    Results are identical for a given ``seed`` whatever ``n_jobs`` is: every resample gets its own
    random stream derived from the seed.

    Args:
        MM: per-observer counts, K x N x N, or pwcmp's K x N^2 layout (rows = column-major matrices).
        n_samples: number of bootstrap resamples B (pwcmp's table API uses 500).
        alpha: 1 - confidence level of the interval (0.05 -> 95% CI).
        seed: seed or ``numpy.random.Generator`` for reproducibility.
        prior, regularization: passed to :func:`pw_scale`.
        n_jobs: worker processes (default: all cores when B >= 50, else 1).
        labels: optional condition names (named in the warnings).
        progress: show a tqdm progress bar.

    Returns:
        :class:`BootstrapResult` with ``.jod``, ``.low``, ``.high``, ``.cov``, ``.samples`` (JND),
        and ``.n_warned``: how many resamples warned (a :class:`~scaling.thurstone.ScalingWarning`
        then says so, naming the conditions involved).

    References:
        Perez-Ortiz & Mantiuk, arXiv:1712.03686, section on confidence intervals; pwcmp
        ``pw_scale_bootstrp.m``.
    """
    MM = check_stack(MM)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"regularization must be one of {REGULARIZATIONS}, got {regularization!r}")
    if int(n_samples) != n_samples or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n_samples = int(n_samples)
    K, N = MM.shape[0], MM.shape[1]

    point = pw_scale(MM.sum(axis=0), prior, regularization, labels=labels)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rows = rng.integers(0, K, size=(n_samples, K))
    seeds = rng.integers(0, 2**63 - 1, size=n_samples)

    if n_jobs is None:
        n_jobs = (os.cpu_count() or 1) if n_samples >= 50 else 1
    n_jobs = max(1, min(int(n_jobs), n_samples))
    n_chunks = n_jobs if not progress else max(n_jobs, min(n_samples, 20 * n_jobs))
    bounds = np.linspace(0, n_samples, n_chunks + 1).astype(int)
    tasks = [
        (MM, rows[a:b], seeds[a:b], prior, regularization, point.jod)
        for a, b in pairwise(bounds)
        if b > a
    ]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_samples, desc="bootstrap", unit="sample")
    parts = []
    if n_jobs == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for t in tasks:
                parts.append(_scale_chunk(t))
                if bar is not None:
                    bar.update(len(t[1]))
    else:
        with ProcessPoolExecutor(n_jobs, mp_context=_pool_context(),
                                 initializer=_single_thread_blas) as pool:
            for part, t in zip(pool.map(_scale_chunk, tasks), tasks):
                parts.append(part)
                if bar is not None:
                    bar.update(len(t[1]))
    if bar is not None:
        bar.close()
    samples = np.concatenate([p[0] for p in parts])
    n_warned = sum(p[1] for p in parts)
    by_condition = np.sum([p[2] for p in parts], axis=0)
    if n_warned:
        warnings.warn(_warned_summary(n_warned, n_samples, by_condition, labels), ScalingWarning,
                      stacklevel=2)
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0,
                              method="hazen")
    return BootstrapResult(
        jod=point.jod,
        low=low,
        high=high,
        cov=np.atleast_2d(np.cov(samples, rowvar=False)).reshape(N, N),
        samples=samples,
        alpha=alpha,
        point=point,
        n_warned=n_warned,
        warned_by_condition=by_condition,
    )
