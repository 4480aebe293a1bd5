"""Synthetic odd-one-out triplets sampled from a concept embedding.

Triplet ``t`` uses the RNG stream ``key = stream_key(seed, t)`` (see
:mod:`alignkit._kernels._rng`) and its first four draws ``u0..u3``:

1. three distinct objects, uniformly among the ``n`` objects:
   ``i = bounded(u0, n)``; ``j = bounded(u1, n - 1)``, plus 1 if ``j >= i``;
   ``k = bounded(u2, n - 2)``, plus 1 if ``k >= min(i, j)``, plus 1 more if then
   ``k >= max(i, j)``;
2. dot-product similarities ``[s_ij, s_ik, s_jk]`` and the choice probabilities
   ``p = softmax(temperature * s)``;
3. with ``u = uniform01(u3)``, the most similar pair is ``(i, j)`` if ``u < p0``, else
   ``(i, k)`` if ``u < p0 + p1``, else ``(j, k)``;
4. the row is written with that pair first and the odd one out last:
   ``(i, j, k)``, ``(i, k, j)`` or ``(j, k, i)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import as_seed, bounded, draw, stream_key, uniform01

__all__ = ["sample_triplets"]


@njit(cache=True, inline="always")
def _dot(E: np.ndarray, a: int, b: int) -> float:
    acc = 0.0
    for q in range(E.shape[1]):
        acc += E[a, q] * E[b, q]
    return acc


@njit(parallel=True, cache=True, fastmath=False)
def _sample_kernel(E: np.ndarray, n_triplets: int, seed: np.uint64, temp: float) -> np.ndarray:
    n = E.shape[0]
    out = np.empty((n_triplets, 3), dtype=np.int32)
    for t in prange(n_triplets):
        key = stream_key(seed, np.uint64(t))
        i = np.int64(bounded(draw(key, np.uint64(0)), np.uint64(n)))
        j = np.int64(bounded(draw(key, np.uint64(1)), np.uint64(n - 1)))
        if j >= i:
            j += 1
        k = np.int64(bounded(draw(key, np.uint64(2)), np.uint64(n - 2)))
        lo = min(i, j)
        hi = max(i, j)
        if k >= lo:
            k += 1
        if k >= hi:
            k += 1
        x0 = temp * _dot(E, i, j)
        x1 = temp * _dot(E, i, k)
        x2 = temp * _dot(E, j, k)
        m = max(x0, max(x1, x2))
        e0 = np.exp(x0 - m)
        e1 = np.exp(x1 - m)
        e2 = np.exp(x2 - m)
        total = e0 + e1 + e2
        u = uniform01(draw(key, np.uint64(3)))
        if u < e0 / total:
            out[t, 0] = i
            out[t, 1] = j
            out[t, 2] = k
        elif u < (e0 + e1) / total:
            out[t, 0] = i
            out[t, 1] = k
            out[t, 2] = j
        else:
            out[t, 0] = j
            out[t, 1] = k
            out[t, 2] = i
    return out


def sample_triplets(
    E: np.ndarray, n_triplets: int, seed: int = 0, temperature: float = 1.0
) -> np.ndarray:
    """Sample odd-one-out triplets from the embedding ``E`` (see the module docstring).

    Args:
        E: concept embedding ``(n, d)``, ``n >= 3`` (cast to float64).
        n_triplets: number of triplets (< 2**63).
        seed: integer in ``[0, 2**64)``.
        temperature: inverse temperature of the choice softmax.

    Returns:
        int32 ``(n_triplets, 3)``: 0-based rows, the sampled odd one out last.
    """
    E = np.ascontiguousarray(E, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] < 3:
        raise ValueError(f"the embedding must be (n, d) with n >= 3, got shape {E.shape}")
    if E.shape[0] > np.iinfo(np.int32).max:
        raise ValueError("too many objects for int32 triplets")
    if not np.isfinite(E).all():
        raise ValueError("the embedding contains NaN or infinite values")
    n_triplets = int(n_triplets)
    if n_triplets < 0:
        raise ValueError(f"the number of triplets must be >= 0, got {n_triplets}")
    temperature = float(temperature)
    if not np.isfinite(temperature):
        raise ValueError(f"the temperature must be finite, got {temperature}")
    return _sample_kernel(E, n_triplets, as_seed(seed), temperature)
