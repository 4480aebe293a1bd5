"""Physical limits of this machine, measured in the same run as a benchmark.

Each is the best of several timed calls of a minimal kernel doing only the unavoidable work:

* ``blas_gflops``: float64 GEMM rate (``A @ B``, 2048 x 2048 x 2048, numpy's BLAS);
* ``stream_gbs``: memory read bandwidth (a parallel Numba sum over 512 MiB of float64);
* ``random_reads_per_s``: independent 8-byte reads at random places of an ``n x n`` float64
  matrix (a parallel Numba sum; the addresses come from a cheap hash, so no index array is
  streamed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        return "unknown"


def timings(fn: Callable[[], Any], repeat: int = 7, warm: bool = True) -> tuple[float, float, Any]:
    """``(median, min, last result)`` of ``repeat`` wall times (after an untimed warm-up)."""
    if warm:
        fn()
    ts = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(min(ts)), out


@njit(parallel=True, cache=True)
def _stream_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    acc = 0.0
    for i in prange(a.shape[0]):
        acc += a[i]
    return acc


@njit(parallel=True, cache=True)
def _random_sum(S: np.ndarray, n_reads: int) -> float:  # pragma: no cover - compiled
    flat = S.ravel()
    size = np.uint64(flat.shape[0])
    acc = 0.0
    for t in prange(n_reads):
        h = np.uint64(t) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        acc += flat[np.int64(h % size)]
    return acc


def blas_gflops(repeat: int = 3) -> float:
    a = np.random.default_rng(0).normal(size=(2048, 2048))
    _, best, _ = timings(lambda: a @ a, repeat)
    return 2 * 2048**3 / best / 1e9


def stream_gbs(repeat: int = 5) -> float:
    a = np.ones(64 * 1024**2)  # 512 MiB
    _, best, _ = timings(lambda: _stream_sum(a), repeat)
    return a.nbytes / best / 1e9


def random_reads_per_s(n: int, n_reads: int, repeat: int = 5) -> float:
    S = np.random.default_rng(1).normal(size=(n, n))
    _, best, _ = timings(lambda: _random_sum(S, n_reads), repeat)
    return n_reads / best
