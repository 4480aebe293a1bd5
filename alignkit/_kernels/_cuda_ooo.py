"""CUDA odd-one-out kernels, twins of :mod:`alignkit._kernels.ooo` and of the direct path of
:mod:`alignkit._kernels.similarity`.

The scalar definitions are the CPU's own Python source compiled for the device: the tie
rules (:mod:`alignkit._kernels.ties`), the per-triplet tally (:func:`alignkit._kernels.ooo.tally`)
and every registered similarity's pair function (``similarity.SIMILARITIES[name].pair``).
Imports :mod:`numba.cuda`.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import cuda, float64, int64

from alignkit._kernels import ooo as _ooo
from alignkit._kernels import ties as _ties
from alignkit._kernels._cuda_common import LANES, MAX_THREADS, block_sum, index_type, mul
from alignkit._kernels._twins import device_function
from alignkit._kernels.similarity import SIMILARITIES

__all__ = ["kernels", "direct_kernel", "PAIRS"]

# The tie rules and the tally, compiled from the same Python source as the CPU's.
_choice = device_function(_ties.choice)
_top_count = device_function(_ties.top_count)
_hit = device_function(_ties.hit)
_tally = device_function(_ooo.tally, _hit=_hit, _top_count=_top_count)

_device_pair = functools.cache(device_function)  # one device function per pair function
#: Device pair function of every registered similarity, by similarity name.
PAIRS = {name: _device_pair(sim.pair) for name, sim in SIMILARITIES.items()}


@cuda.jit(device=True)
def _neg_log_p0(a, b, c, temp):
    """``-log softmax(temp * [a, b, c])[0]``, the same operations as ``ooo._log_softmax3``."""
    x0 = mul(temp, a)
    x1 = mul(temp, b)
    x2 = mul(temp, c)
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


def _make(ity):
    """The Gram-path kernels whose loop indices have the numpy integer type ``ity``."""

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
            h, t2, t3 = _tally(np.float64(S[i, j]), np.float64(S[i, k]), np.float64(S[j, k]), mode)
            ok += h
            n2 += t2
            n3 += t3
        ok = block_sum(buf, ok)
        n2 = block_sum(buf, n2)
        n3 = block_sum(buf, n3)
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
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x] = total

    @cuda.jit
    def logprobs_gram(S, T, n, temp, out):
        """``out[r] = log softmax(temp * [s_ij, s_ik, s_jk])`` (as ``ooo._log_softmax3``)."""
        for r in range(ity(cuda.grid(1)), n, ity(cuda.gridsize(1))):
            i = T[r, 0]
            j = T[r, 1]
            k = T[r, 2]
            x0 = mul(temp, np.float64(S[i, j]))
            x1 = mul(temp, np.float64(S[i, k]))
            x2 = mul(temp, np.float64(S[j, k]))
            _v, m, lse = _neg_log_p0(x0, x1, x2, 1.0)
            out[r, 0] = (x0 - m) - lse
            out[r, 1] = (x1 - m) - lse
            out[r, 2] = (x2 - m) - lse

    return SimpleNamespace(
        ooo_counts_gram=ooo_counts_gram,
        ooo_choices_gram=ooo_choices_gram,
        nll_gram=nll_gram,
        logprobs_gram=logprobs_gram,
    )


def _make_direct(ity, pair):
    """The direct kernel of one pair function, loop indices of type ``ity``."""

    @cuda.jit
    def ooo_direct(X, f, T, n, mode, choices, out):
        """Odd-one-out counts (and optionally choices) straight from feature rows.

        A team of :data:`LANES` consecutive threads shares one triplet. Lane ``l`` sums the
        products of features ``l, l + 8, ...`` (coalesced row reads), lane 0 also the tail
        past the last multiple of 8, and the lanes are then added pairwise
        ``((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))``: exactly the order of the CPU's
        eight-accumulator dot product (:func:`_sum8`), with unfused multiplies, so the dot
        products are the CPU's bit for bit. Each similarity is then ``pair(d, f[a], f[b],
        a == b)``, the similarity's own pair function with the CPU's row factors ``f``
        (``(n,)``, from ``similarity.prepare_rows``).
        """
        b0 = cuda.shared.array(MAX_THREADS, float64)
        b1 = cuda.shared.array(MAX_THREADS, float64)
        b2 = cuda.shared.array(MAX_THREADS, float64)
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
            i = 0
            j = 0
            k = 0
            if r < n:
                i = T[r, 0]
                j = T[r, 1]
                k = T[r, 2]
                for t in range(lane, main, LANES):
                    xi = np.float64(X[i, t])
                    xj = np.float64(X[j, t])
                    xk = np.float64(X[k, t])
                    d0 += mul(xi, xj)
                    d1 += mul(xi, xk)
                    d2 += mul(xj, xk)
                if lane == 0:
                    for t in range(main, p):
                        xi = np.float64(X[i, t])
                        xj = np.float64(X[j, t])
                        xk = np.float64(X[k, t])
                        d0 += mul(xi, xj)
                        d1 += mul(xi, xk)
                        d2 += mul(xj, xk)
            b0[tid] = d0
            b1[tid] = d1
            b2[tid] = d2
            cuda.syncthreads()
            if lane == 0 and r < n:
                sa = pair(_sum8(b0, tid), f[i], f[j], i == j)
                sb = pair(_sum8(b1, tid), f[i], f[k], i == k)
                sc = pair(_sum8(b2, tid), f[j], f[k], j == k)
                if write:
                    choices[r] = _choice(sa, sb, sc, mode)
                h, t2, t3 = _tally(sa, sb, sc, mode)
                ok += h
                ties2 += t2
                ties3 += t3
            cuda.syncthreads()
        ok = block_sum(cnt, ok)
        ties2 = block_sum(cnt, ties2)
        ties3 = block_sum(cnt, ties3)
        if tid == 0:
            cuda.atomic.add(out, 0, ok)
            cuda.atomic.add(out, 1, ties2)
            cuda.atomic.add(out, 2, ties3)

    return ooo_direct


@functools.cache
def kernels(index_bits: int) -> SimpleNamespace:
    """The Gram-path kernels whose loops count in ``int32`` (``32``) or ``int64`` (``64``)."""
    return _make(index_type(index_bits))


@functools.cache
def direct_kernel(similarity: str, index_bits: int):
    """The direct kernel of a registered similarity (one per pair function and index type)."""
    return _direct_for_pair(SIMILARITIES[similarity].pair, index_bits)


@functools.cache
def _direct_for_pair(pair, index_bits: int):
    return _make_direct(index_type(index_bits), _device_pair(pair))
