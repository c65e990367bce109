"""Benchmark of `scaling`: pw_scale at N = 20/40/100 and the bootstrap, against the issue's targets.

Prints a Markdown table. For a side-by-side comparison on the same machine and run, it also times
one evaluation of pwcmp's prior with its dense 2m x 2m matrix (what pwcmp builds at every step of
its optimiser, written here from pwcmp's description) against our whole ``pw_scale`` fit (its
prior has one column per distinct count pair). Octave figures for pwcmp itself come from the
issue (same 2-core machine). Only public names of ``scaling`` are used.

Run: ``python benchmarks/scaling_bench.py``
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
import warnings
from functools import partial

import numpy as np
from scipy.special import log_ndtr

from scaling import SIGMA, pw_scale, pw_scale_bootstrap, simulate
from scaling.thurstone import PRIOR_OFFSET


def full_design(N: int, K: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return simulate(rng.normal(0, 1.5, N), K, seed=rng).sum(axis=0).astype(float)


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def prior_counts(D: np.ndarray):
    """pwcmp's prior counts over the ordered compared pairs (i, j): k = wins of i over j after the
    unanimity shift (a unanimous pair: 0 -> 1 and k -> k - 1), n = comparisons of the pair."""
    S = D + D.T
    I, J = np.nonzero(S > 0)
    wins, n = D[I, J], S[I, J]
    unanimous = (wins == 0) | (wins == n)
    k = np.where(unanimous, np.where(wins == 0, 1.0, np.maximum(wins - 1, 0.0)), wins)
    return I, J, k, n


def dense_prior_value(D: np.ndarray, q: np.ndarray) -> float:
    """pwcmp's prior term with its full 2m x 2m matrix (for the side-by-side ratio only)."""
    I, J, k, n = prior_counts(D)
    z = (q[I] - q[J]) / SIGMA
    L = np.outer(log_ndtr(z), k) + np.outer(log_ndtr(-z), n - k)  # (2m x 2m)
    E = np.exp(L - L.max(axis=0))
    pi = (E / E.sum(axis=0)).sum(axis=1)
    return -np.sum(np.log(pi + PRIOR_OFFSET))


def main() -> None:
    rows = []
    targets = {20: None, 40: 0.2, 100: 2.0}
    octave = {20: "0.55 s", 40: "10.5 s", 100: "impractical (~0.8 GB prior)"}
    for N, target in targets.items():
        scale = partial(pw_scale, full_design(N))
        t = best_of(scale, 3 if N < 100 else 2)
        mem = peak_mb(scale)
        rows.append((f"pw_scale, N = {N} full design (K = 10)", f"{t:.3f} s", f"{mem:.0f} MB",
                     f"<= {target} s" + (", < 300 MB" if N == 100 else "") if target else "-",
                     octave[N]))

    # side by side: our whole fit vs one evaluation of pwcmp's dense prior (a step of its fit)
    for N in (20, 40):
        D = full_design(N)
        q = np.random.default_rng(1).normal(size=N)
        t_ours = best_of(partial(pw_scale, D), 3)
        t_dense = best_of(partial(dense_prior_value, D, q), 3)
        _, _, k, n = prior_counts(D)
        distinct = len(set(zip(k.tolist(), n.tolist())))
        rows.append((f"pw_scale whole fit vs one pwcmp dense prior evaluation, N = {N}",
                     f"{t_ours * 1e3:.1f} ms vs {t_dense * 1e3:.1f} ms",
                     f"{distinct} vs {len(k)} prior columns", "-",
                     f"our fit = {t_ours / t_dense:.1f} dense prior evaluations"))

    MM = simulate(np.linspace(0, 2, 9), 25, seed=0)
    for jobs in (1, 2):
        t = best_of(partial(pw_scale_bootstrap, MM, 500, seed=0, n_jobs=jobs), 2)
        rows.append((f"pw_scale_bootstrap 500 samples, N = 9, K = 25, {jobs} process(es)",
                     f"{t:.2f} s", "-", "<= 1.5 s" if jobs == 2 else "-",
                     "10-13 s (N = 5..9)"))

    print(f"\nscaling benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}\n")
    print("| case | time | peak memory (tracemalloc) | target | pwcmp (Octave, issue) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
