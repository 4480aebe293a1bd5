"""What every CUDA kernel family shares: launch limits, unfused products, block reductions.

Imports :mod:`numba.cuda`; only the ``_cuda_*`` modules import this one, and only
:mod:`alignkit._kernels.cuda` imports those (nothing at package import time).

Conventions shared by every kernel:

* Grid-stride loops, so any grid size gives the same result; a block's threads finish each
  reduction in shared memory and then one thread writes (integer counts: one atomic add per
  block; float64 sums: one partial per block, added on the host in a fixed order, so a float
  result does not depend on scheduling).
* Block sizes are powers of two and at most :data:`MAX_THREADS`.
* Index arithmetic of the main loops uses the integer type of the item count ``n`` the host
  passes: ``int32`` when the count fits (cheaper loop counters), else ``int64``. Every kernel
  whose loops count items therefore exists twice (see ``kernels(index_bits)`` of each family).
* Scalar helpers are plain Python compiled for both targets (:mod:`alignkit._kernels._twins`).
* Only features the CUDA simulator also offers are used (no warp shuffles), so the same code
  runs under ``NUMBA_ENABLE_CUDASIM=1`` for tests on machines without a GPU.
"""

from __future__ import annotations

import numpy as np
from numba import config, cuda

__all__ = [
    "MAX_THREADS",
    "LANES",
    "PERM_SHARED_MAX",
    "index_type",
    "mul",
    "block_sum",
    "splitmix64_host",
    "seed_hash_host",
]

#: Largest block size any kernel is launched with (the static shared buffers' length).
MAX_THREADS = 256
#: Largest number of stimuli whose permutation lives in shared memory (16 KiB of int32).
PERM_SHARED_MAX = 4096
#: Threads per triplet on the direct path: the CPU dot product's eight accumulators.
LANES = 8

_MASK64 = (1 << 64) - 1


def index_type(index_bits: int) -> type:
    """The numpy integer type of a family's loop indices (``32`` or ``64`` bits)."""
    if index_bits not in (32, 64):
        raise ValueError(f"index_bits must be 32 or 64, got {index_bits}")
    return np.int32 if index_bits == 32 else np.int64


def splitmix64_host(x: int) -> int:
    """SplitMix64 on Python integers (host side; used to precompute seed hashes)."""
    z = (int(x) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_hash_host(seed: int) -> np.uint64:
    """``splitmix64(uint64(seed))``: the part of every stream key shared by all streams."""
    return np.uint64(splitmix64_host(int(seed)))


if config.ENABLE_CUDASIM:  # the simulator has no libdevice; Python never fuses anyway

    @cuda.jit(device=True)
    def mul(a, b):
        return a * b

else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def mul(a, b):
        """``a * b`` rounded on its own: never contracted into an FMA (as on the CPU)."""
        return libdevice.dmul_rn(a, b)


@cuda.jit(device=True)
def block_sum(buf, val):
    """Sum ``val`` over the block (power-of-two size) through the shared buffer ``buf``.

    Every thread of the block must call it; every thread gets the total. Ends with a
    barrier, so ``buf`` may be reused at once.
    """
    tid = cuda.threadIdx.x
    buf[tid] = val
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            buf[tid] += buf[tid + s]
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()
    return total
