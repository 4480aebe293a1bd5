"""CUDA correlation and RSA permutation kernels, twins of ``rank.pearson`` and of the null
of :func:`alignkit._kernels.rsa.rsa_permutation`.

The Fisher-Yates draws are the shared RNG's (:mod:`alignkit._kernels._cuda_rng`:
``shuffle_index`` is the CPU's source compiled for the device). Imports :mod:`numba.cuda`.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import cuda, float64, int32

from alignkit._kernels._cuda_common import (
    MAX_THREADS,
    PERM_SHARED_MAX,
    block_sum,
    index_type,
)
from alignkit._kernels._cuda_rng import shuffle_index, splitmix64

__all__ = ["kernels", "perm_null_shared", "perm_null_global"]


def _make(ity):
    @cuda.jit
    def sums2(a, b, n, partial):
        """``partial[block] = (sum a, sum b)`` over the block's elements."""
        buf = cuda.shared.array(MAX_THREADS, float64)
        sa = 0.0
        sb = 0.0
        for t in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            sa += a[t]
            sb += b[t]
        sa = block_sum(buf, sa)
        sb = block_sum(buf, sb)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x, 0] = sa
            partial[cuda.blockIdx.x, 1] = sb

    @cuda.jit
    def moments(a, b, n, ma, mb, partial):
        """``partial[block] = (sum da db, sum da^2, sum db^2)`` with ``da = a - ma``."""
        buf = cuda.shared.array(MAX_THREADS, float64)
        sab = 0.0
        saa = 0.0
        sbb = 0.0
        for t in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            da = a[t] - ma
            db = b[t] - mb
            sab += da * db
            saa += da * da
            sbb += db * db
        sab = block_sum(buf, sab)
        saa = block_sum(buf, saa)
        sbb = block_sum(buf, sbb)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x, 0] = sab
            partial[cuda.blockIdx.x, 1] = saa
            partial[cuda.blockIdx.x, 2] = sbb

    return SimpleNamespace(sums2=sums2, moments=moments)


@functools.cache
def kernels(index_bits: int) -> SimpleNamespace:
    """``sums2`` and ``moments`` whose loops count in ``int32`` (``32``) or ``int64`` (``64``)."""
    return _make(index_type(index_bits))


@cuda.jit(device=True)
def _perm_null_body(perm, buf, ac, bc, m, n_perm, seed_hash, denom, null):
    """Null correlations of the permutations ``blockIdx.x, blockIdx.x + gridDim.x, ...``.

    ``perm`` (``m`` int32) is this block's scratch, in shared or global memory. ``ac`` and
    ``bc`` are the centred condensed vectors; the permuted second vector at pair ``(i, j)``
    is ``bc[pair(perm[i], perm[j])]``, i.e. ``B[perm][:, perm]`` in square form.
    """
    tid = cuda.threadIdx.x
    bdim = cuda.blockDim.x
    m64 = np.int64(m)
    npairs = m64 * (m64 - 1) // 2
    for p in range(cuda.blockIdx.x, n_perm, cuda.gridDim.x):
        for t in range(tid, m, bdim):
            perm[t] = t
        cuda.syncthreads()
        if tid == 0:  # Fisher-Yates is sequential; m - 1 draws
            key = splitmix64(seed_hash ^ np.uint64(p))
            for t in range(m - 1, 0, -1):
                s = shuffle_index(key, t)
                tmp = perm[t]
                perm[t] = perm[s]
                perm[s] = tmp
        cuda.syncthreads()
        # walk the condensed pairs c = tid, tid + bdim, ... tracking (row i, column j)
        i = 0
        j = 1 + tid
        while j >= m and i < m - 1:
            j = j - m + i + 2
            i += 1
        acc = 0.0
        for c in range(tid, npairs, bdim):
            pi = np.int64(perm[i])
            pj = np.int64(perm[j])
            if pi < pj:
                lo = pi
                hi = pj
            else:
                lo = pj
                hi = pi
            acc += ac[c] * bc[lo * (2 * m64 - lo - 1) // 2 + hi - lo - 1]
            j += bdim
            while j >= m and i < m - 1:
                j = j - m + i + 2
                i += 1
        total = block_sum(buf, acc)
        if tid == 0:
            if denom > 0.0:
                r = total / denom
                if r > 1.0:
                    r = 1.0
                elif r < -1.0:
                    r = -1.0
                null[p] = r
            else:
                null[p] = math.nan


@cuda.jit
def perm_null_shared(ac, bc, m, n_perm, seed_hash, denom, null):
    """RSA permutation null, permutation in shared memory (``m <= PERM_SHARED_MAX``)."""
    perm = cuda.shared.array(PERM_SHARED_MAX, int32)
    buf = cuda.shared.array(MAX_THREADS, float64)
    _perm_null_body(perm, buf, ac, bc, m, n_perm, seed_hash, denom, null)


@cuda.jit
def perm_null_global(ac, bc, m, n_perm, seed_hash, denom, null, scratch):
    """RSA permutation null, permutation in ``scratch[blockIdx.x]`` (any ``m``)."""
    buf = cuda.shared.array(MAX_THREADS, float64)
    _perm_null_body(scratch[cuda.blockIdx.x], buf, ac, bc, m, n_perm, seed_hash, denom, null)
