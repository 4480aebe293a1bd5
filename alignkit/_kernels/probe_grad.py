"""Numba CPU kernels of the fast solver (compiled lazily, cached on disk).

Used by the probe's fast exact solver (:mod:`alignkit.probe._gram`), on first use.

The triplet term reads the Gram matrix ``S`` only at each triplet's three pairs
``(i, j), (i, k), (j, k)``, and its gradient with respect to ``S`` is non-zero
only there. The gradient is computed in two passes, with no per-thread n x n
slabs and no atomics:

1. :func:`gather3`, parallel over triplets: gather the three similarities
   into a flat (N, 3) array (loads only, so that cache misses overlap);
2. :func:`nll_coef`, over that array: add the NLL, count the correct ones and
   overwrite each row by the triplet's gradient coefficients ``softmax(s) - e_0``;
3. :func:`scatter_rows`, parallel over rows of ``G``: each row is owned by one
   thread, which sums (in float64) the coefficients of the triplets whose pair
   lies in that row, found through two precomputed orders (:func:`row_order`):
   the triplets grouped by their first object (pairs ``(i, j)``, ``(i, k)``) and
   by their second (pair ``(j, k)``).

:func:`nll_grad` and :func:`reduce_slabs` are the earlier one-pass kernel
(per-thread slabs); they are kept as the independent cross-check of the tests.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["row_order", "gather3", "nll_coef", "scatter_rows", "nll_grad", "reduce_slabs"]


@njit(cache=True)
def row_order(keys, n):  # pragma: no cover - compiled
    """Stable counting sort of ``keys`` (values in ``0..n-1``).

    Returns:
        ``(order, ptr)``: ``keys[order]`` is sorted, and the positions with key
        ``r`` are ``order[ptr[r]:ptr[r + 1]]``.
    """
    m = keys.shape[0]
    ptr = np.zeros(n + 1, dtype=np.int64)
    for t in range(m):
        ptr[keys[t] + 1] += 1
    for r in range(n):
        ptr[r + 1] += ptr[r]
    fill = ptr[:-1].copy()
    order = np.empty(m, dtype=np.int64)
    for t in range(m):
        r = keys[t]
        order[fill[r]] = t
        fill[r] += 1
    return order, ptr


@njit(parallel=True, cache=True)
def gather3(S, T, s):  # pragma: no cover - compiled
    """``s[t] = (S[i, j], S[i, k], S[j, k])`` for every triplet ``T[t] = (i, j, k)``.

    A loop of loads only, so that the processor overlaps the cache misses of
    many triplets (the exponentials come in a second, contiguous pass).
    """
    for t in prange(T.shape[0]):
        i = T[t, 0]
        j = T[t, 1]
        k = T[t, 2]
        s[t, 0] = S[i, j]
        s[t, 1] = S[i, k]
        s[t, 2] = S[j, k]


@njit(parallel=True, cache=True)
def nll_coef(s, want_grad, n_parts):  # pragma: no cover - compiled
    """Sum of triplet NLLs and correct count from gathered similarities ``s`` (N, 3).

    With ``want_grad``, ``s[t]`` is overwritten by the triplet's gradient
    coefficients ``softmax(s_t) - e_0`` (computed in float64, stored in the
    dtype of ``s``).
    """
    n_tri = s.shape[0]
    chunk = (n_tri + n_parts - 1) // n_parts
    loss_parts = np.zeros(n_parts, dtype=np.float64)
    correct_parts = np.zeros(n_parts, dtype=np.int64)
    for c in prange(n_parts):
        acc = 0.0
        good = 0
        lo = c * chunk
        hi = min(n_tri, lo + chunk)
        for t in range(lo, hi):
            a = np.float64(s[t, 0])
            b = np.float64(s[t, 1])
            d = np.float64(s[t, 2])
            m = max(a, max(b, d))
            ea = math.exp(a - m)
            eb = math.exp(b - m)
            ed = math.exp(d - m)
            z = ea + eb + ed
            acc += m + math.log(z) - a
            if a > b and a > d:
                good += 1
            if want_grad:
                s[t, 0] = ea / z - 1.0
                s[t, 1] = eb / z
                s[t, 2] = ed / z
        loss_parts[c] = acc
        correct_parts[c] = good
    return loss_parts.sum(), correct_parts.sum()


@njit(parallel=True, cache=True)
def scatter_rows(T, coef, ptr_i, ord_j, ptr_j, scale, G):  # pragma: no cover - compiled
    """``G[r] = scale * (sum of the coefficients at the triplets' pairs in row r)``.

    ``T`` must be grouped by its first column (``ptr_i[r]:ptr_i[r + 1]`` are the
    rows with ``T[:, 0] == r``); ``ord_j, ptr_j`` group it by its second column
    (see :func:`row_order`). Every row of ``G`` is written by one thread only.
    """
    n = G.shape[0]
    for r in prange(n):
        buf = np.zeros(n, dtype=np.float64)
        for t in range(ptr_i[r], ptr_i[r + 1]):
            buf[T[t, 1]] += coef[t, 0]
            buf[T[t, 2]] += coef[t, 1]
        for q in range(ptr_j[r], ptr_j[r + 1]):
            t = ord_j[q]
            buf[T[t, 2]] += coef[t, 2]
        for c in range(n):
            G[r, c] = buf[c] * scale


@njit(parallel=True, cache=True)
def nll_grad(S, T, scale, slabs, want_grad, n_parts):  # pragma: no cover - compiled
    """The one-pass kernel: NLL sum and correct count, gradient into per-thread slabs.

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
