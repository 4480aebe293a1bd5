"""RSA inference kernels: stimulus-permutation test and stimulus bootstrap.

Both compare two RDMs over the same ``m`` stimuli through their condensed upper triangles
(``k = 1``, row-major, the order of ``scipy.spatial.distance.pdist``), by Spearman (Pearson
of average ranks) or Pearson correlation. The RDMs must be symmetric; a square matrix or
its condensed vector may be given.

Permutation ``p`` relabels the stimuli of the second RDM: with ``perm`` the Fisher-Yates
permutation of stream ``p`` (see :mod:`alignkit._kernels._rng`), the permuted RDM is
``B[perm][:, perm]``, i.e. its pair ``(i, j)`` takes the value of pair
``(perm[i], perm[j])``. Its condensed vector is a rearrangement of the original one, so its
ranks are the rearranged ranks and both the mean and the sum of squares are unchanged: the
vectors are ranked and centred once, and each permutation costs one gathered dot product.

Bootstrap resample ``b`` draws ``m`` stimuli with replacement, the ``t``-th being
``bounded(draw(stream_key(seed, b), t), m)``; every pair ``s < t`` of drawn positions whose
original stimuli differ contributes the two RDMs' values for those stimuli (pairs of a
stimulus with a copy of itself are dropped), and the correlation is recomputed, re-ranking
for Spearman.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import as_seed, bounded, draw, shuffle_index, stream_key
from alignkit._kernels.rank import (
    _as_vector,
    _block_sums,
    _centred_moments,
    _is_constant,
    _rank_into,
    _rank_pair,
    condensed,
)

__all__ = [
    "METHODS",
    "as_condensed",
    "n_stimuli",
    "rsa_permutation",
    "rsa_bootstrap_stimuli",
    "permutation_pvalue",
]

METHODS = ("spearman", "pearson")
_RADIX_MIN = 1 << 14


def n_stimuli(length: int) -> int:
    """Number of stimuli ``m`` whose condensed vector has ``length = m (m - 1) / 2`` entries.

    Raises:
        ValueError: ``length`` is not a triangular number.
    """
    m = (1 + math.isqrt(1 + 8 * int(length))) // 2
    if m * (m - 1) // 2 != length:
        raise ValueError(f"{length} is not the length of a condensed RDM (m (m - 1) / 2)")
    return m


def as_condensed(rdm: np.ndarray, name: str = "rdm") -> np.ndarray:
    """The condensed float64 upper triangle of a square RDM, or a condensed vector as is."""
    rdm = np.asarray(rdm)
    if rdm.ndim == 2:
        return condensed(rdm)
    if rdm.ndim == 1:
        n_stimuli(rdm.shape[0])
        return _as_vector(rdm, name)
    raise ValueError(f"{name} must be a square matrix or a condensed vector, got shape {rdm.shape}")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


@njit(cache=True, inline="always")
def _cindex(i: int, j: int, m: int) -> int:
    """Position of pair ``(i, j)``, ``i != j``, in a condensed vector of ``m`` stimuli."""
    if i > j:
        i, j = j, i
    return i * m - (i * (i + 1)) // 2 + j - i - 1


@njit(cache=True, inline="always")
def _permuted_dot(ca: np.ndarray, cb: np.ndarray, perm: np.ndarray, m: int) -> float:
    """``sum over pairs (i < j) of ca[(i, j)] * cb[(perm[i], perm[j])]``, in pair order."""
    acc = 0.0
    pos = 0
    for i in range(m - 1):
        pi = perm[i]
        for j in range(i + 1, m):
            acc += ca[pos] * cb[_cindex(pi, perm[j], m)]
            pos += 1
    return acc


@njit(cache=True, inline="always")
def _shuffle(key: np.uint64, perm: np.ndarray) -> None:
    m = perm.shape[0]
    for t in range(m):
        perm[t] = t
    for t in range(m - 1, 0, -1):
        j = shuffle_index(key, t)
        tmp = perm[t]
        perm[t] = perm[j]
        perm[j] = tmp


@njit(parallel=True, cache=True, fastmath=False)
def _null_kernel(
    ca: np.ndarray, cb: np.ndarray, m: int, denom: float, n_perm: int, seed: np.uint64
) -> np.ndarray:
    null = np.empty(n_perm, dtype=np.float64)
    for p in prange(n_perm):
        perm = np.empty(m, dtype=np.int64)
        _shuffle(stream_key(seed, np.uint64(p)), perm)
        r = _permuted_dot(ca, cb, perm, m) / denom
        null[p] = min(1.0, max(-1.0, r))
    return null


@njit(cache=True)
def _identity_corr(ca: np.ndarray, cb: np.ndarray, m: int, denom: float) -> float:
    perm = np.arange(m)
    r = _permuted_dot(ca, cb, perm, m) / denom
    return min(1.0, max(-1.0, r))


def _centred(a: np.ndarray, b: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Centred (ranks or values) of both vectors and ``sqrt(ssa * ssb)`` (0: a constant input)."""
    if method == "spearman":
        va, vb = _rank_pair(a, b)
        ma = mb = 0.5 * (a.shape[0] + 1)
    else:
        if np.isinf(a).any() or np.isinf(b).any():
            raise ValueError("Pearson correlation of infinite values is undefined")
        if _is_constant(a) or _is_constant(b):
            return a, b, 0.0
        va, vb = a, b
        sa, sb = _block_sums(a, b)
        ma, mb = sa / a.shape[0], sb / b.shape[0]
    _sab, saa, sbb = _centred_moments(va, vb, ma, mb)
    return va - ma, vb - mb, float(np.sqrt(saa * sbb))


def _pair(rdm_a: np.ndarray, rdm_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    a = as_condensed(rdm_a, "rdm_a")
    b = as_condensed(rdm_b, "rdm_b")
    if a.shape != b.shape:
        raise ValueError(
            f"the RDMs differ in size: {n_stimuli(a.shape[0])} and {n_stimuli(b.shape[0])} stimuli"
        )
    m = n_stimuli(a.shape[0])
    if m < 3:
        raise ValueError(f"RSA needs at least 3 stimuli, got {m}")
    return a, b, m


def _check_count(n: int, what: str) -> int:
    n = int(n)
    if n < 0:
        raise ValueError(f"the number of {what} must be >= 0, got {n}")
    return n


def rsa_permutation(
    rdm_a: np.ndarray,
    rdm_b: np.ndarray,
    n_perm: int,
    seed: int = 0,
    method: str = "spearman",
) -> tuple[float, np.ndarray]:
    """Observed RSA correlation and its null distribution under stimulus permutation.

    Args:
        rdm_a: first RDM, square symmetric ``(m, m)`` or condensed ``(m (m - 1) / 2,)``.
        rdm_b: second RDM (its stimuli are permuted), same form and size.
        n_perm: number of permutations.
        seed: integer in ``[0, 2**64)``.
        method: ``"spearman"`` or ``"pearson"``.

    Returns:
        ``(observed, null)`` with ``null`` float64 ``(n_perm,)``; all ``nan`` when either RDM
        is constant. The observed value is computed by the same summation as the null, so a
        permutation that is the identity reproduces it exactly.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(20, 5))
        >>> D = ((X[:, None] - X[None]) ** 2).sum(-1)
        >>> obs, null = rsa_permutation(D, D, 100, seed=1)
        >>> obs, bool(null.max() < obs)
        (1.0, True)
    """
    _check_method(method)
    n_perm = _check_count(n_perm, "permutations")
    a, b, m = _pair(rdm_a, rdm_b)
    ca, cb, denom = _centred(a, b, method)
    if denom == 0.0:
        return float("nan"), np.full(n_perm, np.nan)
    observed = float(_identity_corr(ca, cb, m, denom))
    if n_perm == 0:
        return observed, np.empty(0, dtype=np.float64)
    return observed, _null_kernel(ca, cb, m, denom, n_perm, as_seed(seed))


@njit(cache=True, inline="always")
def _corr_of(va: np.ndarray, vb: np.ndarray, cnt: int, spearman: bool) -> float:
    """Correlation of the first ``cnt`` entries (ranked first for Spearman), sequential sums."""
    if cnt < 2:
        return np.nan
    if spearman:
        ra = np.empty(cnt)
        rb = np.empty(cnt)
        _rank_into(va[:cnt], ra, _RADIX_MIN)
        _rank_into(vb[:cnt], rb, _RADIX_MIN)
        ma = mb = 0.5 * (cnt + 1)
    else:
        ra = va[:cnt]
        rb = vb[:cnt]
        sa = 0.0
        sb = 0.0
        for q in range(cnt):
            sa += ra[q]
            sb += rb[q]
        ma = sa / cnt
        mb = sb / cnt
        const_a = True
        const_b = True
        for q in range(1, cnt):
            if ra[q] != ra[0]:
                const_a = False
            if rb[q] != rb[0]:
                const_b = False
        if const_a or const_b:
            return np.nan
    sab = 0.0
    saa = 0.0
    sbb = 0.0
    for q in range(cnt):
        da = ra[q] - ma
        db = rb[q] - mb
        sab += da * db
        saa += da * da
        sbb += db * db
    if saa == 0.0 or sbb == 0.0:
        return np.nan
    r = sab / np.sqrt(saa * sbb)
    return min(1.0, max(-1.0, r))


@njit(parallel=True, cache=True, fastmath=False)
def _boot_kernel(
    a: np.ndarray, b: np.ndarray, m: int, n_boot: int, seed: np.uint64, spearman: bool
) -> np.ndarray:
    out = np.empty(n_boot, dtype=np.float64)
    L = a.shape[0]
    for r in prange(n_boot):
        key = stream_key(seed, np.uint64(r))
        idx = np.empty(m, dtype=np.int64)
        for t in range(m):
            idx[t] = bounded(draw(key, np.uint64(t)), np.uint64(m))
        va = np.empty(L)
        vb = np.empty(L)
        cnt = 0
        for s in range(m - 1):
            x = idx[s]
            for t in range(s + 1, m):
                y = idx[t]
                if x != y:
                    q = _cindex(x, y, m)
                    va[cnt] = a[q]
                    vb[cnt] = b[q]
                    cnt += 1
        out[r] = _corr_of(va, vb, cnt, spearman)
    return out


def rsa_bootstrap_stimuli(
    rdm_a: np.ndarray,
    rdm_b: np.ndarray,
    n_boot: int,
    seed: int = 0,
    method: str = "spearman",
) -> np.ndarray:
    """RSA correlation over bootstrap resamples of the stimuli.

    Args:
        rdm_a: first RDM, square symmetric ``(m, m)`` or condensed.
        rdm_b: second RDM, same form and size.
        n_boot: number of resamples.
        seed: integer in ``[0, 2**64)``.
        method: ``"spearman"`` (re-ranked per resample) or ``"pearson"``.

    Returns:
        float64 ``(n_boot,)``; ``nan`` for a resample with fewer than two distinct-stimulus
        pairs or a constant side.
    """
    _check_method(method)
    n_boot = _check_count(n_boot, "resamples")
    a, b, m = _pair(rdm_a, rdm_b)
    if method == "pearson" and (np.isinf(a).any() or np.isinf(b).any()):
        raise ValueError("Pearson correlation of infinite values is undefined")
    if n_boot == 0:
        return np.empty(0, dtype=np.float64)
    return _boot_kernel(a, b, m, n_boot, as_seed(seed), method == "spearman")


def permutation_pvalue(null: np.ndarray, observed: float) -> float:
    """One-sided permutation p-value ``(1 + #(null >= observed)) / (1 + n_perm)``.

    Returns ``nan`` when ``observed`` is ``nan``; ``nan`` entries of the null never count.
    """
    null = np.asarray(null, dtype=np.float64)
    if not np.isfinite(observed):
        return float("nan")
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.shape[0]))
