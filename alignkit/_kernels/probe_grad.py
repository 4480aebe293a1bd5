"""Numba CPU kernels of the fast solver (compiled lazily, cached on disk).

Used by the probe's fast exact solver (:mod:`alignkit.probe._gram`), on first use.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["nll_grad", "reduce_slabs"]


@njit(parallel=True, cache=True)
def nll_grad(S, T, scale, slabs, want_grad, n_parts):  # pragma: no cover - compiled
    """Sum of triplet NLLs and correct count from Gram matrix ``S``.

    With ``want_grad``, part ``c`` of the triplets scatters ``scale * (softmax -
    e_0)`` into ``slabs[c]`` (one slab per part, so no two threads write the
    same memory); ``n_parts`` must then equal ``slabs.shape[0]``.
    """
    n_tri = T.shape[0]
    chunk = (n_tri + n_parts - 1) // n_parts
    loss_parts = np.zeros(n_parts, dtype=np.float64)
    correct_parts = np.zeros(n_parts, dtype=np.int64)
    for c in prange(n_parts):
        acc = 0.0
        good = 0
        lo = c * chunk
        hi = min(n_tri, lo + chunk)
        for t in range(lo, hi):
            i = T[t, 0]
            j = T[t, 1]
            k = T[t, 2]
            a = np.float64(S[i, j])
            b = np.float64(S[i, k])
            d = np.float64(S[j, k])
            m = max(a, max(b, d))
            ea = math.exp(a - m)
            eb = math.exp(b - m)
            ed = math.exp(d - m)
            z = ea + eb + ed
            acc += m + math.log(z) - a
            if a > b and a > d:
                good += 1
            if want_grad:
                slabs[c, i, j] += (ea / z - 1.0) * scale
                slabs[c, i, k] += (eb / z) * scale
                slabs[c, j, k] += (ed / z) * scale
        loss_parts[c] = acc
        correct_parts[c] = good
    return loss_parts.sum(), correct_parts.sum()


@njit(parallel=True, cache=True)
def reduce_slabs(slabs):  # pragma: no cover - compiled
    """Sum ``slabs[1:]`` into ``slabs[0]`` in place, rows in parallel."""
    n_slab, n, _ = slabs.shape
    for r in prange(n):
        for c in range(1, n_slab):
            for q in range(n):
                slabs[0, r, q] += slabs[c, r, q]
