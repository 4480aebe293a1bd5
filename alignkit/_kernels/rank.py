"""Average ranks, Spearman and Pearson correlation, condensed upper triangles.

:func:`rankdata_average` equals ``scipy.stats.rankdata(x, method="average")`` exactly. It sorts
order-preserving uint64 keys of the float64 values with an LSD radix sort (16-bit digits,
passes where every key has the same digit skipped) and averages tied runs in one pass; short
vectors use a comparison sort of the same keys. ``-0.0`` and ``0.0`` tie; ``+-inf`` rank last
and first.

:func:`spearman` ranks its two vectors concurrently when they are long (one thread each,
from 2**18 values on) and correlates the ranks
with the exact rank mean ``(n + 1) / 2``. Every float reduction runs in fixed blocks, so results
do not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["rankdata_average", "rank_pair", "spearman", "pearson", "condensed", "float_keys"]

_RADIX_MIN = 1 << 14  # below this a comparison sort of the keys is faster
_PAR_MIN = 1 << 18  # rank two vectors concurrently from this length on
_BLOCK = 1 << 14  # fixed reduction block
_SIGN = np.uint64(1) << np.uint64(63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_D16 = np.uint64(0xFFFF)


@njit(cache=True, inline="always")
def _to_key(v: np.uint64) -> np.uint64:
    return v ^ _ALL if v & _SIGN else v | _SIGN


@njit(cache=True)
def float_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of float64 values: ``a < b`` iff ``key(a) < key(b)``.

    Negative numbers have all bits flipped, others the sign bit set; ``-0.0`` is first
    canonicalised to ``0.0`` (by adding ``0.0``) so the two tie. NaN is not supported.
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    for t in range(n):
        out[t] = np.float64(x[t]) + 0.0
    keys = out.view(np.uint64)
    for t in range(n):
        keys[t] = _to_key(keys[t])
    return keys


@njit(cache=True)
def _digit_histograms(keys: np.ndarray) -> np.ndarray:
    """Counts of each 16-bit digit value, for the four digits at once (one pass)."""
    hist = np.zeros((4, 65536), dtype=np.int64)
    for t in range(keys.shape[0]):
        k = keys[t]
        hist[0, k & _D16] += 1
        hist[1, (k >> np.uint64(16)) & _D16] += 1
        hist[2, (k >> np.uint64(32)) & _D16] += 1
        hist[3, k >> np.uint64(48)] += 1
    return hist


@njit(cache=True)
def _radix_argsort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable LSD radix argsort of uint64 keys with 16-bit digits.

    Keys and indices travel together as 16-byte records, so each scattered element touches
    one cache line; a pass is skipped when every key has the same digit there.

    Returns:
        ``(order, sorted_keys)``: the indices (uint64) and the keys in sorted order.
    """
    n = keys.shape[0]
    hist = _digit_histograms(keys)
    src = np.empty((n, 2), dtype=np.uint64)
    for t in range(n):
        src[t, 0] = keys[t]
        src[t, 1] = t
    dst = np.empty_like(src)
    offsets = np.empty(65536, dtype=np.int64)
    for d in range(4):
        shift = np.uint64(16 * d)
        if hist[d, (src[0, 0] >> shift) & _D16] == n:
            continue  # every key has the same digit: this pass would not move anything
        acc = 0
        for v in range(65536):
            offsets[v] = acc
            acc += hist[d, v]
        for t in range(n):
            k = src[t, 0]
            v = (k >> shift) & _D16
            pos = offsets[v]
            offsets[v] = pos + 1
            dst[pos, 0] = k
            dst[pos, 1] = src[t, 1]
        src, dst = dst, src
    return src[:, 1], src[:, 0]


@njit(cache=True)
def _rank_into(x: np.ndarray, out: np.ndarray, radix_min: int) -> None:
    """Write the average ranks (1..n, ties averaged) of ``x`` into ``out``."""
    n = x.shape[0]
    if n == 0:
        return
    keys = float_keys(x)
    if n >= radix_min:
        order, skeys = _radix_argsort(keys)
    else:
        order = np.argsort(keys, kind="mergesort").astype(np.uint64)
        skeys = keys[order]
    start = 0
    while start < n:
        kv = skeys[start]
        stop = start + 1
        while stop < n and skeys[stop] == kv:
            stop += 1
        r = 0.5 * (start + 1 + stop)  # mean of the 1-based ranks start+1 .. stop
        for q in range(start, stop):
            out[order[q]] = r
        start = stop


@njit(cache=True)
def _rank_one(x: np.ndarray, radix_min: int) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.float64)
    _rank_into(x, out, radix_min)
    return out


@njit(parallel=True, cache=True)
def _rank_two(a: np.ndarray, b: np.ndarray, radix_min: int) -> tuple[np.ndarray, np.ndarray]:
    ra = np.empty(a.shape[0], dtype=np.float64)
    rb = np.empty(b.shape[0], dtype=np.float64)
    for w in prange(2):
        if w == 0:
            _rank_into(a, ra, radix_min)
        else:
            _rank_into(b, rb, radix_min)
    return ra, rb


def _as_vector(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN; ranks are undefined")
    return x


def rankdata_average(x: np.ndarray) -> np.ndarray:
    """Average ranks ``1..n`` of a vector, ties sharing the mean of their ranks.

    Identical to ``scipy.stats.rankdata(x, method="average")``.

    Args:
        x: 1-D real vector (cast to float64); ``+-inf`` allowed.

    Returns:
        float64 ``(n,)``.

    Raises:
        ValueError: ``x`` is not 1-D or contains NaN.

    Example:
        >>> rankdata_average([3.0, -0.0, 0.0, 7.0]).tolist()
        [3.0, 1.5, 1.5, 4.0]
    """
    return _rank_one(_as_vector(x), _RADIX_MIN)


def rank_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks of two vectors, computed concurrently when they are long."""
    return _rank_pair(_as_vector(a, "a"), _as_vector(b, "b"))


def _rank_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if max(a.shape[0], b.shape[0]) >= _PAR_MIN:
        return _rank_two(a, b, _RADIX_MIN)
    return _rank_one(a, _RADIX_MIN), _rank_one(b, _RADIX_MIN)


@njit(parallel=True, cache=True, fastmath=False)
def _block_sums(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    n = a.shape[0]
    nb = (n + _BLOCK - 1) // _BLOCK
    pa = np.zeros(nb)
    pb = np.zeros(nb)
    for blk in prange(nb):
        sa = 0.0
        sb = 0.0
        for t in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            sa += a[t]
            sb += b[t]
        pa[blk] = sa
        pb[blk] = sb
    sa = 0.0
    sb = 0.0
    for blk in range(nb):
        sa += pa[blk]
        sb += pb[blk]
    return sa, sb


@njit(parallel=True, cache=True, fastmath=False)
def _centred_moments(
    a: np.ndarray, b: np.ndarray, ma: float, mb: float
) -> tuple[float, float, float]:
    n = a.shape[0]
    nb = (n + _BLOCK - 1) // _BLOCK
    pab = np.zeros(nb)
    paa = np.zeros(nb)
    pbb = np.zeros(nb)
    for blk in prange(nb):
        sab = 0.0
        saa = 0.0
        sbb = 0.0
        for t in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            da = a[t] - ma
            db = b[t] - mb
            sab += da * db
            saa += da * da
            sbb += db * db
        pab[blk] = sab
        paa[blk] = saa
        pbb[blk] = sbb
    sab = 0.0
    saa = 0.0
    sbb = 0.0
    for blk in range(nb):
        sab += pab[blk]
        saa += paa[blk]
        sbb += pbb[blk]
    return sab, saa, sbb


@njit(cache=True)
def _is_constant(x: np.ndarray) -> bool:
    for t in range(1, x.shape[0]):
        if x[t] != x[0]:
            return False
    return True


def _corr(a: np.ndarray, b: np.ndarray, ma: float, mb: float) -> float:
    sab, saa, sbb = _centred_moments(a, b, ma, mb)
    if saa == 0.0 or sbb == 0.0:
        return float("nan")
    r = sab / np.sqrt(saa * sbb)
    return float(min(1.0, max(-1.0, r)))


def _pair_vectors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_vector(a, "a"), _as_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"the vectors differ in length: {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError("a correlation needs at least two values")
    return a, b


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors (float64, two passes, fixed-block sums).

    Returns:
        The correlation clipped to ``[-1, 1]``; ``nan`` when either vector is constant.

    Raises:
        ValueError: different lengths, fewer than two values, or NaN.
    """
    a, b = _pair_vectors(a, b)
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("Pearson correlation of infinite values is undefined")
    if _is_constant(a) or _is_constant(b):
        return float("nan")
    n = a.shape[0]
    sa, sb = _block_sums(a, b)
    return _corr(a, b, sa / n, sb / n)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of the average ranks.

    Equal to ``scipy.stats.spearmanr(a, b).statistic`` to rounding; the two vectors are
    ranked concurrently when long.

    Returns:
        The correlation; ``nan`` when either vector is constant.

    Raises:
        ValueError: different lengths, fewer than two values, or NaN.
    """
    a, b = _pair_vectors(a, b)
    ra, rb = _rank_pair(a, b)
    mean = 0.5 * (a.shape[0] + 1)  # exact mean of average ranks
    return _corr(ra, rb, mean, mean)


@njit(cache=True)
def _condensed_kernel(M: np.ndarray) -> np.ndarray:
    n = M.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    pos = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            out[pos] = M[i, j]
            pos += 1
    return out


def condensed(M: np.ndarray) -> np.ndarray:
    """Upper triangle (``k = 1``) of a square matrix in row-major order, as float64.

    The order of ``scipy.spatial.distance.squareform`` / ``pdist``:
    ``(0,1), (0,2), ..., (0,n-1), (1,2), ...``.

    Raises:
        ValueError: ``M`` is not square.
    """
    M = np.asarray(M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {M.shape}")
    if M.shape[0] < 2:
        return np.empty(0, dtype=np.float64)
    return _condensed_kernel(M)
