"""CUDA kernels (``numba.cuda``) twinning the CPU kernels of :mod:`alignkit._kernels`.

This module imports :mod:`numba.cuda` at import time; only :mod:`alignkit._kernels.cuda`
imports it, and nothing imports that at package import time. The host wrappers in
:mod:`alignkit._kernels.cuda` are the public entry points; this module holds the device code.

Conventions shared by every kernel:

* Grid-stride loops, so any grid size gives the same result; a block's threads finish each
  reduction in shared memory and then one thread writes (integer counts: one atomic add per
  block; float64 sums: one partial per block, added on the host in a fixed order, so a float
  result does not depend on scheduling).
* Block sizes are powers of two and at most :data:`MAX_THREADS`.
* Index arithmetic of the main loops uses the integer type of the item count ``n`` the host
  passes: ``int32`` when the count fits (cheaper loop counters), else ``int64``. Every kernel
  therefore exists twice; :func:`kernels` builds and caches both families.
* The random streams follow the shared counter-based spec of :mod:`alignkit._kernels._rng`
  (SplitMix64 in uint64 arithmetic; every constant and operand is a ``numpy.uint64`` so that
  Numba never mixes signed and unsigned integers).
* Only features the CUDA simulator also offers are used (no warp shuffles), so the same code
  runs under ``NUMBA_ENABLE_CUDASIM=1`` for tests on machines without a GPU.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import config, cuda, float64, int32, int64, uint64

from alignkit._kernels import ties as _ties

__all__ = [
    "MAX_THREADS",
    "LANES",
    "PERM_SHARED_MAX",
    "SIM_CODES",
    "kernels",
    "splitmix64_host",
    "seed_hash_host",
]

#: Largest block size any kernel is launched with (the static shared buffers' length).
MAX_THREADS = 256
#: Largest number of stimuli whose permutation lives in shared memory (16 KiB of int32).
PERM_SHARED_MAX = 4096
#: Threads per triplet on the direct path: the CPU dot product's eight accumulators.
LANES = 8
#: Similarity name -> code used by the direct odd-one-out kernel.
SIM_CODES = {"dot": 0, "cosine": 1, "correlation": 1, "euclidean": 2}

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S5 = np.uint64(5)
_MASK5 = np.uint64(31)
_ONE = np.uint64(1)
_MASK64 = (1 << 64) - 1


def splitmix64_host(x: int) -> int:
    """SplitMix64 on Python integers (host side; used to precompute seed hashes)."""
    z = (int(x) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_hash_host(seed: int) -> np.uint64:
    """``splitmix64(uint64(seed))``: the part of every stream key shared by all streams."""
    return np.uint64(splitmix64_host(int(seed)))


# --------------------------------------------------------------------------- device helpers

if config.ENABLE_CUDASIM:  # the simulator has no libdevice; Python never fuses anyway

    @cuda.jit(device=True)
    def _mul(a, b):
        return a * b

else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def _mul(a, b):
        """``a * b`` rounded on its own: never contracted into an FMA (as on the CPU)."""
        return libdevice.dmul_rn(a, b)


@cuda.jit(device=True)
def _splitmix64(x):
    z = x + _G
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def _bounded(u, m):
    return ((u >> _S32) * m) >> _S32


@cuda.jit(device=True)
def _block_sum(buf, val):
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


# The tie rules' scalar definitions, compiled from the same Python source as the CPU's.
_choice = cuda.jit(device=True)(_ties.choice)
_top_count = cuda.jit(device=True)(_ties.top_count)


@cuda.jit(device=True)
def _neg_log_p0(a, b, c, temp):
    """``-log softmax(temp * [a, b, c])[0]``, the same operations as ``ooo._log_softmax3``."""
    x0 = _mul(temp, a)
    x1 = _mul(temp, b)
    x2 = _mul(temp, c)
    if x0 >= x1 and x0 >= x2:
        m = x0
        rest = math.exp(x1 - m) + math.exp(x2 - m)
    elif x1 >= x2:
        m = x1
        rest = math.exp(x0 - m) + math.exp(x2 - m)
    else:
        m = x2
        rest = math.exp(x0 - m) + math.exp(x1 - m)
    lse = math.log1p(rest)
    return lse - (x0 - m), m, lse


@cuda.jit(device=True)
def _sum8(buf, t0):
    """``((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7))`` of ``buf[t0 : t0 + 8]``."""
    return ((buf[t0] + buf[t0 + 1]) + (buf[t0 + 2] + buf[t0 + 3])) + (
        (buf[t0 + 4] + buf[t0 + 5]) + (buf[t0 + 6] + buf[t0 + 7])
    )


@cuda.jit(device=True)
def _neg_dist(na, nb, d, same):
    """``-sqrt(na + nb - 2 d)`` clipped at 0, exactly 0 for the same object (as the CPU)."""
    if same:
        return 0.0
    sq = na + nb - 2.0 * d
    return -math.sqrt(sq) if sq > 0.0 else 0.0


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
            key = _splitmix64(seed_hash ^ np.uint64(p))
            for t in range(m - 1, 0, -1):
                tu = np.uint64(t)
                s = _bounded(_splitmix64(key + tu * _G), tu + _ONE)
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
        total = _block_sum(buf, acc)
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


# --------------------------------------------------------------------------- kernel families


def _make(ity):
    """Build the kernel family whose loop indices have the numpy integer type ``ity``."""

    @cuda.jit
    def ooo_counts_gram(S, T, n, mode, out):
        """``out[0] += #correct``, ``out[1] += #two-way ties``, ``out[2] += #three-way ties``
        over triplets ``0..n-1``."""
        buf = cuda.shared.array(MAX_THREADS, int64)
        ok = np.int64(0)
        n2 = np.int64(0)
        n3 = np.int64(0)
        for r in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            i = T[r, 0]
            j = T[r, 1]
            k = T[r, 2]
            a = np.float64(S[i, j])
            b = np.float64(S[i, k])
            c = np.float64(S[j, k])
            if _choice(a, b, c, mode) == 2:
                ok += 1
            top = _top_count(a, b, c)
            if top == 2:
                n2 += 1
            elif top == 3:
                n3 += 1
        ok = _block_sum(buf, ok)
        n2 = _block_sum(buf, n2)
        n3 = _block_sum(buf, n3)
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(out, 0, ok)
            cuda.atomic.add(out, 1, n2)
            cuda.atomic.add(out, 2, n3)

    @cuda.jit
    def ooo_choices_gram(S, T, n, mode, choices):
        """``choices[r]`` = odd-one-out position of triplet ``r`` (int8; -1 = tie)."""
        for r in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            i = T[r, 0]
            j = T[r, 1]
            k = T[r, 2]
            choices[r] = _choice(
                np.float64(S[i, j]), np.float64(S[i, k]), np.float64(S[j, k]), mode
            )

    @cuda.jit
    def ooo_direct(X, f, T, n, kind, mode, choices, out):
        """Odd-one-out counts (and optionally choices) straight from feature rows.

        A team of :data:`LANES` consecutive threads shares one triplet. Lane ``l`` sums the
        products of features ``l, l + 8, ...`` (coalesced row reads), lane 0 also the tail
        past the last multiple of 8, and the lanes are then added pairwise
        ``((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))``: exactly the order of the CPU's
        eight-accumulator dot product (:func:`_sum8`), with unfused multiplies, so the similarities are the
        CPU's bit for bit. ``kind``: 0 dot, 1 scaled dot ``d * f[a] * f[b]`` (cosine;
        correlation with centred rows), 2 negative euclidean distance from
        ``|a|^2 + |b|^2 - 2 d``, the squared norms summed in the same order.
        """
        b0 = cuda.shared.array(MAX_THREADS, float64)
        b1 = cuda.shared.array(MAX_THREADS, float64)
        b2 = cuda.shared.array(MAX_THREADS, float64)
        q0 = cuda.shared.array(MAX_THREADS, float64)
        q1 = cuda.shared.array(MAX_THREADS, float64)
        q2 = cuda.shared.array(MAX_THREADS, float64)
        cnt = cuda.shared.array(MAX_THREADS, int64)
        tid = cuda.threadIdx.x
        lane = tid % LANES
        slot = tid // LANES
        per_block = cuda.blockDim.x // LANES
        p = X.shape[1]
        main = p - p % LANES
        write = choices.shape[0] > 0
        ok = np.int64(0)
        ties2 = np.int64(0)
        ties3 = np.int64(0)
        n_groups = ity((n + per_block - 1) // per_block)
        for g in range(ity(cuda.blockIdx.x), n_groups, ity(cuda.gridDim.x)):
            r = g * per_block + slot
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            n0 = 0.0
            n1 = 0.0
            n2 = 0.0
            i = 0
            j = 0
            k = 0
            if r < n:
                i = T[r, 0]
                j = T[r, 1]
                k = T[r, 2]
                if kind == 2:
                    for t in range(lane, main, LANES):
                        xi = np.float64(X[i, t])
                        xj = np.float64(X[j, t])
                        xk = np.float64(X[k, t])
                        d0 += _mul(xi, xj)
                        d1 += _mul(xi, xk)
                        d2 += _mul(xj, xk)
                        n0 += _mul(xi, xi)
                        n1 += _mul(xj, xj)
                        n2 += _mul(xk, xk)
                    if lane == 0:
                        for t in range(main, p):
                            xi = np.float64(X[i, t])
                            xj = np.float64(X[j, t])
                            xk = np.float64(X[k, t])
                            d0 += _mul(xi, xj)
                            d1 += _mul(xi, xk)
                            d2 += _mul(xj, xk)
                            n0 += _mul(xi, xi)
                            n1 += _mul(xj, xj)
                            n2 += _mul(xk, xk)
                else:
                    for t in range(lane, main, LANES):
                        xi = np.float64(X[i, t])
                        xj = np.float64(X[j, t])
                        xk = np.float64(X[k, t])
                        d0 += _mul(xi, xj)
                        d1 += _mul(xi, xk)
                        d2 += _mul(xj, xk)
                    if lane == 0:
                        for t in range(main, p):
                            xi = np.float64(X[i, t])
                            xj = np.float64(X[j, t])
                            xk = np.float64(X[k, t])
                            d0 += _mul(xi, xj)
                            d1 += _mul(xi, xk)
                            d2 += _mul(xj, xk)
            b0[tid] = d0
            b1[tid] = d1
            b2[tid] = d2
            q0[tid] = n0
            q1[tid] = n1
            q2[tid] = n2
            cuda.syncthreads()
            if lane == 0 and r < n:
                sa = _sum8(b0, tid)
                sb = _sum8(b1, tid)
                sc = _sum8(b2, tid)
                if kind == 1:
                    sa = sa * f[i] * f[j]
                    sb = sb * f[i] * f[k]
                    sc = sc * f[j] * f[k]
                elif kind == 2:
                    na = _sum8(q0, tid)
                    nb = _sum8(q1, tid)
                    nc = _sum8(q2, tid)
                    sa = _neg_dist(na, nb, sa, i == j)
                    sb = _neg_dist(na, nc, sb, i == k)
                    sc = _neg_dist(nb, nc, sc, j == k)
                ch = _choice(sa, sb, sc, mode)
                if write:
                    choices[r] = ch
                if ch == 2:
                    ok += 1
                top = _top_count(sa, sb, sc)
                if top == 2:
                    ties2 += 1
                elif top == 3:
                    ties3 += 1
            cuda.syncthreads()
        ok = _block_sum(cnt, ok)
        ties2 = _block_sum(cnt, ties2)
        ties3 = _block_sum(cnt, ties3)
        if tid == 0:
            cuda.atomic.add(out, 0, ok)
            cuda.atomic.add(out, 1, ties2)
            cuda.atomic.add(out, 2, ties3)

    @cuda.jit
    def nll_gram(S, T, n, temp, partial):
        """``partial[block]`` = sum over its triplets of ``-log p(human pair)``."""
        buf = cuda.shared.array(MAX_THREADS, float64)
        acc = 0.0
        for r in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            i = T[r, 0]
            j = T[r, 1]
            k = T[r, 2]
            v, _m, _l = _neg_log_p0(
                np.float64(S[i, j]), np.float64(S[i, k]), np.float64(S[j, k]), temp
            )
            acc += v
        total = _block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x] = total

    @cuda.jit
    def logprobs_gram(S, T, n, temp, out):
        """``out[r] = log softmax(temp * [s_ij, s_ik, s_jk])`` (as ``ooo._log_softmax3``)."""
        for r in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            i = T[r, 0]
            j = T[r, 1]
            k = T[r, 2]
            x0 = _mul(temp, np.float64(S[i, j]))
            x1 = _mul(temp, np.float64(S[i, k]))
            x2 = _mul(temp, np.float64(S[j, k]))
            _v, m, lse = _neg_log_p0(x0, x1, x2, 1.0)
            out[r, 0] = (x0 - m) - lse
            out[r, 1] = (x1 - m) - lse
            out[r, 2] = (x2 - m) - lse

    @cuda.jit
    def bootstrap_counts(words, n, n_boot, chunks, chunk_len, seed_hash, counts):
        """``counts[b] +=`` number of correct triplets among resample ``b``'s draws.

        ``words`` holds the 0/1 correctness bit-packed little-endian into uint32. Work unit
        ``w`` covers draws ``[c * chunk_len, (c + 1) * chunk_len)`` of resample
        ``b = w // chunks`` (``c = w % chunks``), so few resamples still fill the GPU.
        """
        buf = cuda.shared.array(MAX_THREADS, uint64)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        nu = np.uint64(n)
        step = np.uint64(bdim) * _G
        for w in range(cuda.blockIdx.x, n_boot * chunks, cuda.gridDim.x):
            b = w // chunks
            lo = (w - b * chunks) * chunk_len
            hi = lo + chunk_len
            if hi > n:
                hi = n
            key = _splitmix64(seed_hash ^ np.uint64(b))
            x = key + np.uint64(lo + tid) * _G
            cnt = np.uint64(0)
            for _i in range(ity(lo + tid), ity(hi), ity(bdim)):
                idx = _bounded(_splitmix64(x), nu)
                x += step
                cnt += (np.uint64(words[idx >> _S5]) >> (idx & _MASK5)) & _ONE
            total = _block_sum(buf, cnt)
            if tid == 0:
                cuda.atomic.add(counts, b, total)

    @cuda.jit
    def sums2(a, b, n, partial):
        """``partial[block] = (sum a, sum b)`` over the block's elements."""
        buf = cuda.shared.array(MAX_THREADS, float64)
        sa = 0.0
        sb = 0.0
        for t in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            sa += a[t]
            sb += b[t]
        sa = _block_sum(buf, sa)
        sb = _block_sum(buf, sb)
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
        sab = _block_sum(buf, sab)
        saa = _block_sum(buf, saa)
        sbb = _block_sum(buf, sbb)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x, 0] = sab
            partial[cuda.blockIdx.x, 1] = saa
            partial[cuda.blockIdx.x, 2] = sbb

    return SimpleNamespace(
        ooo_counts_gram=ooo_counts_gram,
        ooo_choices_gram=ooo_choices_gram,
        ooo_direct=ooo_direct,
        nll_gram=nll_gram,
        logprobs_gram=logprobs_gram,
        bootstrap_counts=bootstrap_counts,
        sums2=sums2,
        moments=moments,
    )


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


@functools.cache
def kernels(index_bits: int) -> SimpleNamespace:
    """The kernel family whose loops count in ``int32`` (``32``) or ``int64`` (``64``)."""
    if index_bits not in (32, 64):
        raise ValueError(f"index_bits must be 32 or 64, got {index_bits}")
    ns = _make(np.int32 if index_bits == 32 else np.int64)
    ns.perm_null_shared = perm_null_shared
    ns.perm_null_global = perm_null_global
    return ns
