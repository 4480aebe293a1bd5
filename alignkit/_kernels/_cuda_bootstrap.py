"""CUDA bootstrap of odd-one-out accuracy, twin of :mod:`alignkit._kernels.bootstrap`.

The draws are the shared RNG's (:mod:`alignkit._kernels._cuda_rng`, the CPU's source compiled
for the device), so every resample is the CPU's bit for bit. Imports :mod:`numba.cuda`.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import cuda, uint64

from alignkit._kernels._cuda_common import MAX_THREADS, block_sum, index_type
from alignkit._kernels._cuda_rng import bounded, splitmix64
from alignkit._kernels._rng import GOLDEN

__all__ = ["kernels"]

_S5 = np.uint64(5)
_MASK5 = np.uint64(31)
_ONE = np.uint64(1)


def _make(ity):
    @cuda.jit
    def bootstrap_counts(words, n, n_boot, chunks, chunk_len, seed_hash, counts):
        """``counts[b] +=`` number of correct triplets among resample ``b``'s draws.

        ``words`` holds the 0/1 correctness bit-packed little-endian into uint32. Work unit
        ``w`` covers draws ``[c * chunk_len, (c + 1) * chunk_len)`` of resample
        ``b = w // chunks`` (``c = w % chunks``), so few resamples still fill the GPU.
        Stream ``b``'s key is ``splitmix64(seed_hash ^ b)`` (``seed_hash =
        splitmix64(seed)``, from the host) and its ``i``-th draw ``splitmix64(key + i G)``.
        """
        buf = cuda.shared.array(MAX_THREADS, uint64)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        nu = np.uint64(n)
        step = np.uint64(bdim) * GOLDEN
        for w in range(cuda.blockIdx.x, n_boot * chunks, cuda.gridDim.x):
            b = w // chunks
            lo = (w - b * chunks) * chunk_len
            hi = lo + chunk_len
            if hi > n:
                hi = n
            key = splitmix64(seed_hash ^ np.uint64(b))
            x = key + np.uint64(lo + tid) * GOLDEN
            cnt = np.uint64(0)
            for _i in range(ity(lo + tid), ity(hi), ity(bdim)):
                idx = bounded(splitmix64(x), nu)
                x += step
                cnt += (np.uint64(words[idx >> _S5]) >> (idx & _MASK5)) & _ONE
            total = block_sum(buf, cnt)
            if tid == 0:
                cuda.atomic.add(counts, b, total)

    return bootstrap_counts


@functools.cache
def kernels(index_bits: int):
    """``bootstrap_counts`` whose loops count in ``int32`` (``32``) or ``int64`` (``64``)."""
    return _make(index_type(index_bits))
