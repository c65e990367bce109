"""Benchmark of `scaling`: pw_scale at N = 20/40/100 and the bootstrap, against the issue's targets.

Prints a Markdown table. For a side-by-side ratio on the same machine and run, it also times the
objective with pwcmp's dense 2m x 2m prior matrix (what pwcmp builds) against ours (one column per
distinct count pair). Octave figures for pwcmp itself come from the issue (same 2-core machine).

Run: ``python benchmarks/scaling_bench.py``
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
import warnings

import numpy as np
from scipy.special import log_ndtr

from scaling import pw_scale, pw_scale_bootstrap, simulate
from scaling.thurstone import PRIOR_OFFSET, SIGMA, _Objective, _shifted_prior_counts


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


def dense_prior_value(D: np.ndarray, q: np.ndarray) -> float:
    """pwcmp's prior term with its full 2m x 2m matrix (for the side-by-side ratio only)."""
    S = D + D.T
    I, J = np.nonzero(S > 0)
    k, n = _shifted_prior_counts(D, I, J)
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
        D = full_design(N)
        t = best_of(lambda: pw_scale(D), 3 if N < 100 else 2)
        mem = peak_mb(lambda: pw_scale(D))
        rows.append((f"pw_scale, N = {N} full design (K = 10)", f"{t:.3f} s", f"{mem:.0f} MB",
                     f"<= {target} s" + (", < 300 MB" if N == 100 else "") if target else "-",
                     octave[N]))

    # side by side: one evaluation of the prior term, dense (pwcmp) vs distinct columns (ours)
    for N in (20, 40):
        D = full_design(N)
        q = np.random.default_rng(1).normal(size=N)
        obj = _Objective(D, D, "gaussian")
        t_ours = best_of(lambda: obj(q[1:] - q[0]), 5)
        t_dense = best_of(lambda: dense_prior_value(D, q), 3)
        rows.append((f"prior objective+gradient vs pwcmp dense prior value, N = {N}",
                     f"{t_ours * 1e3:.2f} ms vs {t_dense * 1e3:.1f} ms",
                     f"{len(obj.k)} vs {len(obj.I)} columns", "-",
                     f"ours {t_dense / t_ours:.0f}x faster"))

    MM = simulate(np.linspace(0, 2, 9), 25, seed=0)
    for jobs in (1, 2):
        t = best_of(lambda: pw_scale_bootstrap(MM, 500, seed=0, n_jobs=jobs), 2)
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
