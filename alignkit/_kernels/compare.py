"""RDM comparison kernels: every comparison method, its permutation null, stimulus bootstrap
and the paired bootstrap of two model RDMs against one reference.

Vectors are condensed upper triangles (``k = 1``, row-major, ``pdist`` order) of ``m``
stimuli. The methods (the definitions of rsatoolbox's ``rdm.compare``):

``spearman``          Pearson correlation of the average ranks (:func:`rank.spearman`).
``pearson``           Pearson correlation (:func:`rank.pearson`).
``kendall-tau-b``     Kendall's tau-b, ``(C - D) / sqrt((n0 - n1) (n0 - n2))`` with ``n0`` the
                      number of pairs of entries, ``n1`` / ``n2`` the pairs tied in the first /
                      second vector; Knight's O(n log n) algorithm (a sort by both keys, then a
                      merge sort counting the discordant pairs).
``tau-a``             Kendall's tau-a, ``(C - D) / n0``: no tie correction (Nili et al. 2014).
``rho-a``             ``12 sum (r_a - mean) (r_b - mean) / (n^3 - n)`` of the average ranks: the
                      Spearman correlation without tie correction in the denominator.
``cosine``            ``<a, b> / (|a| |b|)`` of the dissimilarities themselves.
``whitened-cosine``   the cosine after whitening by the covariance of RDM entries under i.i.d.
                      pattern noise (Diedrichsen et al. 2020, ``Sigma_k = I``): equal to the
                      cosine, in the Frobenius product, of the double-centred matrices
                      ``G = -H D H / 2`` (``H = I - 11'/m``, ``D`` the full RDM, zero diagonal).
``whitened-pearson``  the same after subtracting each vector's mean from its dissimilarities.

The whitened inner product is computed from the condensed vectors in O(n):
``<HAH, HBH> = 2 <a, b> - (2 / m) sum_i s_a[i] s_b[i] + S_a S_b / m^2`` with ``s[i]`` the row sums
of the full matrix and ``S`` their total (the factor 1/4 cancels in the cosine).

Permutation ``p`` relabels the stimuli of the second RDM with the Fisher-Yates permutation of
stream ``p`` (as :mod:`alignkit._kernels.rsa`): the same permutations for every method.
Bootstrap resample ``b`` draws ``m`` stimuli with replacement exactly as
:func:`alignkit._kernels.rsa.rsa_bootstrap_stimuli`, so every method (and both models of a
paired comparison) sees the same resamples. The pairs of a stimulus with a copy of itself are
dropped; the whitened methods double-centre the resampled RDM over the entries present (see
:func:`_whitened_resampled`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import as_seed, bounded, draw, stream_key
from alignkit._kernels.rank import _radix_argsort, _rank_into, float_keys, pearson, spearman
from alignkit._kernels.rsa import (
    _RADIX_MIN,
    _cindex,
    _corr_of,
    _null_kernel,
    _pair,
    _permuted_dot,
    _shuffle,
)

__all__ = [
    "METHODS",
    "compare",
    "permutation_null",
    "bootstrap_stimuli",
    "paired_bootstrap_stimuli",
    "kendall_counts",
    "bootstrap_subjects",
]

METHODS = (
    "spearman",
    "pearson",
    "kendall-tau-b",
    "tau-a",
    "rho-a",
    "cosine",
    "whitened-cosine",
    "whitened-pearson",
)
_SPEARMAN, _PEARSON, _TAU_B, _TAU_A, _RHO_A, _COSINE, _WCOS, _WPEAR = range(8)
_CODE = {name: i for i, name in enumerate(METHODS)}


def _code(method: str) -> int:
    if method not in _CODE:
        raise ValueError(f"unknown comparison method {method!r}; choose one of {', '.join(METHODS)}")
    return _CODE[method]


# --------------------------------------------------------------------------- Kendall


@njit(cache=True)
def _argsort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, sorted keys)`` of uint64 keys: radix sort when long, else a comparison sort."""
    if keys.shape[0] >= _RADIX_MIN:
        return _radix_argsort(keys)
    order = np.argsort(keys, kind="mergesort").astype(np.uint64)
    return order, keys[order]


@njit(cache=True)
def _dense_ranks(x: np.ndarray) -> np.ndarray:
    """0-based dense ranks (equal values share a rank) as int64."""
    n = x.shape[0]
    order, skeys = _argsort_keys(float_keys(x))
    out = np.empty(n, dtype=np.int64)
    r = -1
    for q in range(n):
        if q == 0 or skeys[q] != skeys[q - 1]:
            r += 1
        out[order[q]] = r
    return out


@njit(cache=True)
def _tied_pairs(ranks: np.ndarray) -> np.int64:
    """Number of pairs of entries sharing a dense rank."""
    n = ranks.shape[0]
    cnt = np.zeros(n, dtype=np.int64)
    for q in range(n):
        cnt[ranks[q]] += 1
    tot = np.int64(0)
    for q in range(n):
        c = cnt[q]
        tot += c * (c - 1) // 2
    return tot


@njit(cache=True)
def _discordant(ra: np.ndarray, rb: np.ndarray, nb: np.int64) -> tuple[np.int64, np.int64]:
    """``(discordant pairs, pairs tied in both)`` of two dense-rank vectors (Knight 1966).

    Sorting by ``(ra, rb)`` leaves a pair discordant exactly when it is an inversion of the
    sorted ``rb`` sequence (ties in ``ra`` are in ``rb`` order, so they add none); the
    inversions are counted by a bottom-up merge sort.
    """
    n = ra.shape[0]
    keys = np.empty(n, dtype=np.uint64)
    for q in range(n):
        keys[q] = np.uint64(ra[q] * nb + rb[q])
    order, skeys = _argsort_keys(keys)
    seq = np.empty(n, dtype=np.int64)
    joint = np.int64(0)
    run = np.int64(1)
    for q in range(n):
        seq[q] = rb[order[q]]
        if q > 0:
            if skeys[q] == skeys[q - 1]:
                run += 1
            else:
                joint += run * (run - 1) // 2
                run = 1
    joint += run * (run - 1) // 2
    buf = np.empty(n, dtype=np.int64)
    dis = np.int64(0)
    width = 1
    src = seq
    dst = buf
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if src[j] < src[i]:
                    dst[k] = src[j]
                    dis += mid - i
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
            lo = hi
        tmp = src
        src = dst
        dst = tmp
        width *= 2
    return dis, joint


@njit(cache=True)
def _tau_value(n: int, xtie: np.int64, ytie: np.int64, joint: np.int64, dis: np.int64,
               b_variant: bool) -> float:
    tot = np.int64(n) * (n - 1) // 2
    con_minus_dis = tot - xtie - ytie + joint - 2 * dis
    if b_variant:
        if xtie == tot or ytie == tot:
            return np.nan
        tau = con_minus_dis / np.sqrt(float(tot - xtie)) / np.sqrt(float(tot - ytie))
    else:
        if tot == 0:
            return np.nan
        tau = con_minus_dis / float(tot)
    return min(1.0, max(-1.0, tau))


@njit(cache=True)
def _tau_of(va: np.ndarray, vb: np.ndarray, b_variant: bool) -> float:
    n = va.shape[0]
    if n < 2:
        return np.nan
    ra = _dense_ranks(va)
    rb = _dense_ranks(vb)
    dis, joint = _discordant(ra, rb, np.int64(n))
    return _tau_value(n, _tied_pairs(ra), _tied_pairs(rb), joint, dis, b_variant)


def kendall_counts(a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """Pair counts behind Kendall's tau: total, tied in a, tied in b, tied in both, discordant."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    ra, rb = _dense_ranks(a), _dense_ranks(b)
    dis, joint = _discordant(ra, rb, np.int64(a.shape[0]))
    n = a.shape[0]
    return {"total": n * (n - 1) // 2, "tied_a": int(_tied_pairs(ra)),
            "tied_b": int(_tied_pairs(rb)), "tied_both": int(joint), "discordant": int(dis)}


# --------------------------------------------------------------------------- simple values


@njit(cache=True)
def _cosine_of(va: np.ndarray, vb: np.ndarray) -> float:
    sab = 0.0
    saa = 0.0
    sbb = 0.0
    for q in range(va.shape[0]):
        sab += va[q] * vb[q]
        saa += va[q] * va[q]
        sbb += vb[q] * vb[q]
    if saa == 0.0 or sbb == 0.0:
        return np.nan
    return min(1.0, max(-1.0, sab / np.sqrt(saa * sbb)))


@njit(cache=True)
def _rho_a_of(va: np.ndarray, vb: np.ndarray) -> float:
    n = va.shape[0]
    if n < 2:
        return np.nan
    ra = np.empty(n)
    rb = np.empty(n)
    _rank_into(va, ra, _RADIX_MIN)
    _rank_into(vb, rb, _RADIX_MIN)
    mean = 0.5 * (n + 1)
    s = 0.0
    for q in range(n):
        s += (ra[q] - mean) * (rb[q] - mean)
    fn = float(n)
    return min(1.0, max(-1.0, 12.0 * s / (fn * fn * fn - fn)))


@njit(cache=True)
def _gathered_value(va: np.ndarray, vb: np.ndarray, cnt: int, code: int) -> float:
    """The value of a rank or correlation method on the first ``cnt`` entries."""
    if code == _SPEARMAN or code == _PEARSON:
        return _corr_of(va, vb, cnt, code == _SPEARMAN)
    if cnt < 2:
        return np.nan
    if code == _COSINE:
        return _cosine_of(va[:cnt], vb[:cnt])
    if code == _RHO_A:
        return _rho_a_of(va[:cnt], vb[:cnt])
    return _tau_of(va[:cnt], vb[:cnt], code == _TAU_B)


# --------------------------------------------------------------------------- whitened


@njit(cache=True)
def _row_sums(v: np.ndarray, m: int) -> np.ndarray:
    s = np.zeros(m)
    pos = 0
    for i in range(m - 1):
        for j in range(i + 1, m):
            s[i] += v[pos]
            s[j] += v[pos]
            pos += 1
    return s


@njit(cache=True)
def _centre_inner(dot: float, sa: np.ndarray, sb: np.ndarray, perm: np.ndarray, m: int) -> float:
    """``<HAH, HBH>`` (times 4) from ``<a, b>`` over pairs and the row sums (``sb`` permuted)."""
    cross = 0.0
    ta = 0.0
    tb = 0.0
    for i in range(m):
        cross += sa[i] * sb[perm[i]]
        ta += sa[i]
        tb += sb[i]
    return 2.0 * dot - 2.0 * cross / m + ta * tb / (float(m) * m)


@njit(cache=True)
def _whitened_prep(a: np.ndarray, b: np.ndarray, m: int, centred: bool):
    if centred:
        a = a - np.mean(a)
        b = b - np.mean(b)
    sa = _row_sums(a, m)
    sb = _row_sums(b, m)
    ident = np.arange(m)
    aa = _centre_inner(np.dot(a, a), sa, sa, ident, m)
    bb = _centre_inner(np.dot(b, b), sb, sb, ident, m)
    return a, b, sa, sb, aa, bb


@njit(cache=True)
def _whitened_value(a: np.ndarray, b: np.ndarray, m: int, centred: bool) -> float:
    a, b, sa, sb, aa, bb = _whitened_prep(a, b, m, centred)
    if aa <= 0.0 or bb <= 0.0:
        return np.nan
    perm = np.arange(m)
    ab = _centre_inner(_permuted_dot(a, b, perm, m), sa, sb, perm, m)
    return min(1.0, max(-1.0, ab / np.sqrt(aa * bb)))


@njit(parallel=True, cache=True)
def _whitened_null(a: np.ndarray, b: np.ndarray, m: int, centred: bool, n_perm: int,
                   seed: np.uint64) -> np.ndarray:
    a, b, sa, sb, aa, bb = _whitened_prep(a, b, m, centred)
    null = np.empty(n_perm)
    if aa <= 0.0 or bb <= 0.0:
        null[:] = np.nan
        return null
    denom = np.sqrt(aa * bb)
    for p in prange(n_perm):
        perm = np.empty(m, dtype=np.int64)
        _shuffle(stream_key(seed, np.uint64(p)), perm)
        ab = _centre_inner(_permuted_dot(a, b, perm, m), sa, sb, perm, m)
        null[p] = min(1.0, max(-1.0, ab / denom))
    return null


@njit(cache=True)
def _whitened_resampled(a: np.ndarray, b: np.ndarray, w: np.ndarray, m: int,
                        centred: bool) -> float:
    """The whitened method on the RDMs of a resampled pattern set.

    ``w[i]`` copies of stimulus ``i`` among the ``m`` drawn positions. The dissimilarity of
    two copies of one stimulus is missing (as the rank methods drop such pairs); the double
    centring subtracts the row and grand means over the entries present (the zero diagonal
    included), which is ``H D H`` exactly when every stimulus is drawn once.
    """
    ca = 0.0
    cb = 0.0
    if centred:
        cnt = 0.0
        pos = 0
        for i in range(m - 1):
            for j in range(i + 1, m):
                ww = w[i] * w[j]
                if ww:
                    ca += ww * a[pos]
                    cb += ww * b[pos]
                    cnt += ww
                pos += 1
        if cnt == 0.0:
            return np.nan
        ca /= cnt
        cb /= cnt
    ra = np.zeros(m)
    rb = np.zeros(m)
    pos = 0
    for i in range(m - 1):
        for j in range(i + 1, m):
            if w[i] and w[j]:
                x = a[pos] - ca
                y = b[pos] - cb
                ra[i] += w[j] * x
                ra[j] += w[i] * x
                rb[i] += w[j] * y
                rb[j] += w[i] * y
            pos += 1
    ta = 0.0
    tb = 0.0
    n_present = 0.0
    for i in range(m):
        if w[i]:
            ta += w[i] * ra[i]
            tb += w[i] * rb[i]
            n_present += w[i] * (m - w[i] + 1.0)
            ra[i] /= m - w[i] + 1.0  # row mean over the entries present, diagonal included
            rb[i] /= m - w[i] + 1.0
    ga = ta / n_present
    gb = tb / n_present
    ab = 0.0
    aa = 0.0
    bb = 0.0
    pos = 0
    for i in range(m - 1):
        for j in range(i + 1, m):
            ww = w[i] * w[j]
            if ww:
                x = a[pos] - ca - ra[i] - ra[j] + ga
                y = b[pos] - cb - rb[i] - rb[j] + gb
                ab += 2.0 * ww * x * y
                aa += 2.0 * ww * x * x
                bb += 2.0 * ww * y * y
            pos += 1
    for i in range(m):
        if w[i]:
            x = ga - 2.0 * ra[i]
            y = gb - 2.0 * rb[i]
            ab += w[i] * x * y
            aa += w[i] * x * x
            bb += w[i] * y * y
    if aa <= 0.0 or bb <= 0.0:
        return np.nan
    return min(1.0, max(-1.0, ab / np.sqrt(aa * bb)))


# --------------------------------------------------------------------------- public


def compare(rdm_a: np.ndarray, rdm_b: np.ndarray, method: str = "spearman") -> float:
    """The comparison ``method`` of two RDMs (square symmetric or condensed, same size).

    Returns ``nan`` where the method is undefined (a constant vector, all pairs tied).

    Example:
        >>> import numpy as np
        >>> a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        >>> compare(a, a[::-1], "tau-a"), compare(a, 2 * a, "cosine")
        (-1.0, 1.0)
    """
    code = _code(method)
    a, b, m = _pair(rdm_a, rdm_b)
    if code == _SPEARMAN:
        return float(spearman(a, b))
    if code == _PEARSON:
        return float(pearson(a, b))
    if code in (_WCOS, _WPEAR):
        return float(_whitened_value(a, b, m, code == _WPEAR))
    return float(_gathered_value(a, b, a.shape[0], code))


@njit(parallel=True, cache=True)
def _tau_null(a: np.ndarray, b: np.ndarray, m: int, n_perm: int, seed: np.uint64,
              b_variant: bool) -> np.ndarray:
    n = a.shape[0]
    ra = _dense_ranks(a)
    rb = _dense_ranks(b)
    xtie = _tied_pairs(ra)
    ytie = _tied_pairs(rb)
    null = np.empty(n_perm)
    for p in prange(n_perm):
        perm = np.empty(m, dtype=np.int64)
        _shuffle(stream_key(seed, np.uint64(p)), perm)
        rp = np.empty(n, dtype=np.int64)
        pos = 0
        for i in range(m - 1):
            pi = perm[i]
            for j in range(i + 1, m):
                rp[pos] = rb[_cindex(pi, perm[j], m)]
                pos += 1
        dis, joint = _discordant(ra, rp, np.int64(n))
        null[p] = _tau_value(n, xtie, ytie, joint, dis, b_variant)
    return null


def _linear_parts(a: np.ndarray, b: np.ndarray, code: int):
    """Centred vectors and the permutation-invariant denominator of cosine and rho-a."""
    if code == _COSINE:
        denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
        return a, b, denom
    ra = np.empty(a.shape[0])
    rb = np.empty(b.shape[0])
    _rank_into(a, ra, _RADIX_MIN)
    _rank_into(b, rb, _RADIX_MIN)
    n = float(a.shape[0])
    mean = 0.5 * (n + 1)
    return ra - mean, rb - mean, (n * n * n - n) / 12.0


def permutation_null(rdm_a: np.ndarray, rdm_b: np.ndarray, n_perm: int, seed: int = 0,
                     method: str = "spearman") -> tuple[float, np.ndarray]:
    """Observed value and its null under stimulus permutation of ``rdm_b``.

    ``spearman`` and ``pearson`` are :func:`alignkit._kernels.rsa.rsa_permutation`; the other
    methods use the same permutations. The observed value is computed by the null's own
    summation, so that the identity permutation reproduces it exactly.
    """
    from alignkit._kernels import rsa as krsa

    code = _code(method)
    n_perm = int(n_perm)
    if n_perm < 0:
        raise ValueError(f"the number of permutations must be >= 0, got {n_perm}")
    if code in (_SPEARMAN, _PEARSON):
        return krsa.rsa_permutation(rdm_a, rdm_b, n_perm, seed, method=method)
    a, b, m = _pair(rdm_a, rdm_b)
    key = as_seed(seed)
    if code in (_WCOS, _WPEAR):
        observed = float(_whitened_value(a, b, m, code == _WPEAR))
        return observed, _whitened_null(a, b, m, code == _WPEAR, n_perm, key)
    if code in (_TAU_A, _TAU_B):
        observed = float(_tau_of(a, b, code == _TAU_B))
        return observed, _tau_null(a, b, m, n_perm, key, code == _TAU_B)
    ca, cb, denom = _linear_parts(a, b, code)
    if denom == 0.0:
        return float("nan"), np.full(n_perm, np.nan)
    observed = float(krsa._identity_corr(ca, cb, m, denom))
    if n_perm == 0:
        return observed, np.empty(0)
    return observed, _null_kernel(ca, cb, m, denom, n_perm, key)


@njit(cache=True)
def _draw_positions(key: np.uint64, m: int) -> np.ndarray:
    idx = np.empty(m, dtype=np.int64)
    for t in range(m):
        idx[t] = bounded(draw(key, np.uint64(t)), np.uint64(m))
    return idx


@njit(parallel=True, cache=True, fastmath=False)
def _boot_multi(models: np.ndarray, h: np.ndarray, m: int, n_boot: int, seed: np.uint64,
                code: int) -> np.ndarray:
    """``out[r, k]``: method ``code`` of model ``k`` against ``h`` on resample ``r``."""
    k_models = models.shape[0]
    L = h.shape[0]
    out = np.empty((n_boot, k_models))
    for r in prange(n_boot):
        idx = _draw_positions(stream_key(seed, np.uint64(r)), m)
        if code == _WCOS or code == _WPEAR:
            w = np.zeros(m)
            for t in range(m):
                w[idx[t]] += 1.0
            for k in range(k_models):
                out[r, k] = _whitened_resampled(models[k], h, w, m, code == _WPEAR)
            continue
        va = np.empty((k_models, L))
        vb = np.empty(L)
        cnt = 0
        for s in range(m - 1):
            x = idx[s]
            for t in range(s + 1, m):
                y = idx[t]
                if x != y:
                    q = _cindex(x, y, m)
                    for k in range(k_models):
                        va[k, cnt] = models[k, q]
                    vb[cnt] = h[q]
                    cnt += 1
        for k in range(k_models):
            out[r, k] = _gathered_value(va[k], vb, cnt, code)
    return out


def bootstrap_stimuli(rdm_a: np.ndarray, rdm_b: np.ndarray, n_boot: int, seed: int = 0,
                      method: str = "spearman") -> np.ndarray:
    """The comparison over bootstrap resamples of the stimuli (float64 ``(n_boot,)``).

    ``spearman`` and ``pearson`` are :func:`alignkit._kernels.rsa.rsa_bootstrap_stimuli`
    (bit for bit); ``nan`` marks a resample where the method is undefined.
    """
    from alignkit._kernels import rsa as krsa

    code = _code(method)
    if code in (_SPEARMAN, _PEARSON):
        return krsa.rsa_bootstrap_stimuli(rdm_a, rdm_b, n_boot, seed, method=method)
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"the number of resamples must be >= 0, got {n_boot}")
    a, b, m = _pair(rdm_a, rdm_b)
    if n_boot == 0:
        return np.empty(0)
    return _boot_multi(a[None, :].copy(), b, m, n_boot, as_seed(seed), code)[:, 0]


def paired_bootstrap_stimuli(rdm_a: np.ndarray, rdm_b: np.ndarray, rdm_ref: np.ndarray,
                             n_boot: int, seed: int = 0,
                             method: str = "spearman") -> np.ndarray:
    """Both models' comparison with ``rdm_ref`` on the same stimulus resamples.

    Returns:
        float64 ``(n_boot, 2)``: column 0 model a, column 1 model b; each column equals
        :func:`bootstrap_stimuli` of that model with the same seed.
    """
    code = _code(method)
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"the number of resamples must be >= 0, got {n_boot}")
    a, h, m = _pair(rdm_a, rdm_ref)
    b, _h, _m = _pair(rdm_b, rdm_ref)
    if code == _PEARSON and (np.isinf(a).any() or np.isinf(b).any() or np.isinf(h).any()):
        raise ValueError("Pearson correlation of infinite values is undefined")
    if n_boot == 0:
        return np.empty((0, 2))
    return _boot_multi(np.stack([a, b]), h, m, n_boot, as_seed(seed), code)


#: Stream offset of the subject bootstrap: its resample ``r`` uses stream ``r + 2**62`` of the
#: seed, apart from the stimulus resamples and the permutations (streams from 0).
SUBJECT_STREAM = np.uint64(1) << np.uint64(62)


@njit(parallel=True, cache=True, fastmath=False)
def _boot_subjects(models: np.ndarray, stack: np.ndarray, m: int, n_boot: int, seed: np.uint64,
                   code: int) -> np.ndarray:
    k_models = models.shape[0]
    n_sub, L = stack.shape
    out = np.empty((n_boot, k_models))
    for r in prange(n_boot):
        key = stream_key(seed, SUBJECT_STREAM + np.uint64(r))
        pick = np.empty(n_sub, dtype=np.int64)
        for t in range(n_sub):
            pick[t] = bounded(draw(key, np.uint64(t)), np.uint64(n_sub))
        mean = np.empty(L)
        va = np.empty((k_models, L))
        cnt = 0
        for q in range(L):
            acc = 0.0
            c = 0
            for t in range(n_sub):
                v = stack[pick[t], q]
                if not np.isnan(v):
                    acc += v
                    c += 1
            mean[q] = acc / c if c else np.nan
            if c:
                for k in range(k_models):
                    va[k, cnt] = models[k, q]
                cnt += 1
        if code == _WCOS or code == _WPEAR:
            for k in range(k_models):
                out[r, k] = _whitened_value(models[k], mean, m, code == _WPEAR) if cnt == L else np.nan
            continue
        vb = np.empty(cnt)
        pos = 0
        for q in range(L):
            if not np.isnan(mean[q]):
                vb[pos] = mean[q]
                pos += 1
        for k in range(k_models):
            out[r, k] = _gathered_value(va[k], vb, cnt, code)
    return out


def bootstrap_subjects(models: np.ndarray, stack: np.ndarray, n_boot: int, seed: int = 0,
                       method: str = "spearman") -> np.ndarray:
    """Models' comparison with the mean RDM of subjects drawn with replacement.

    Args:
        models: ``(k, L)`` condensed model RDMs (``L = m (m - 1) / 2``).
        stack: ``(s, L)`` condensed per-subject RDMs; NaN marks a pair a subject did not
            judge (the mean is over the drawn subjects who did; a pair none of them judged is
            dropped). The whitened methods need complete RDMs.
        n_boot: number of resamples of the ``s`` subjects.

    Returns:
        float64 ``(n_boot, k)``; all models see the same resamples.
    """
    code = _code(method)
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"the number of resamples must be >= 0, got {n_boot}")
    models = np.ascontiguousarray(np.atleast_2d(models), dtype=np.float64)
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    if stack.ndim != 2 or stack.shape[1] != models.shape[1]:
        raise ValueError(f"the subjects' stack {stack.shape} does not match the models "
                         f"{models.shape}")
    from alignkit._kernels.rsa import n_stimuli

    m = n_stimuli(models.shape[1])
    if code in (_WCOS, _WPEAR) and np.isnan(stack).any():
        raise ValueError(f"{method} needs complete subject RDMs (the stack has missing pairs)")
    if n_boot == 0:
        return np.empty((0, models.shape[0]))
    return _boot_subjects(models, stack, m, n_boot, as_seed(seed), code)
