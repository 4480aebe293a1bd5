"""Pairwise similarities of feature rows: a BLAS Gram matrix or a direct per-triplet kernel.

Four similarities, all computed in float64 whatever the input dtype:

* ``"dot"``: ``<x_a, x_b>``.
* ``"cosine"``: ``<x_a, x_b> / (|x_a| |x_b|)``; a zero row has cosine 0 with everything
  (itself included).
* ``"euclidean"``: the NEGATIVE euclidean distance ``-|x_a - x_b|`` (so larger is more
  similar), from ``|x_a|^2 + |x_b|^2 - 2 <x_a, x_b>`` with tiny negative squared distances
  clipped to 0 and an exact 0 on the diagonal.
* ``"correlation"``: the Pearson correlation between rows, i.e. the cosine of the row-centred
  rows; a constant row has correlation 0 with everything.

The Gram path (:func:`gram`) costs ``8 n^2`` bytes; :func:`triplet_sims_direct` computes the
three similarities of every triplet without an ``n x n`` matrix, for stimulus sets too large
for one. :func:`use_gram` decides between them by a byte budget.

:data:`SIMILARITIES` is the registry: one :class:`Similarity` per name, declaring its row
preparation (centred rows or not, which per-row factor), its Gram path (scaled rows or not, and how the product becomes the similarities), and its
pair function
``pair(d, fa, fb, same)``: a plain-Python scalar over the dot product ``d`` of two prepared
rows and their factors (``same``: the two rows are one object). The CPU direct kernel compiles
the pair function with ``njit`` and :mod:`alignkit._kernels._cuda_ooo` with
``numba.cuda.jit(device=True)``, so both targets apply one definition. Adding a similarity is
one pair function and one registry entry.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from alignkit._kernels._twins import specialise

__all__ = [
    "Similarity",
    "SIMILARITIES",
    "ROW_FACTORS",
    "DEFAULT_GRAM_BUDGET",
    "as_float64",
    "gram",
    "gram_bytes",
    "SYRK_MAX_ROWS",
    "use_gram",
    "prepare_rows",
    "triplet_sims_direct",
    "triplet_sims_auto",
    "check_triplets",
]

DEFAULT_GRAM_BUDGET = 2 * 1024**3  # bytes


def as_float64(X: np.ndarray) -> np.ndarray:
    """Return ``X`` as a C-contiguous float64 matrix (copying only when needed).

    Raises:
        ValueError: ``X`` is not a 2-D array of real numbers.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array (n, p), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"features must be real numbers, got dtype {X.dtype}")
    return np.ascontiguousarray(X, dtype=np.float64)


def _check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}"
        )


def _inverse_norms(X: np.ndarray) -> np.ndarray:
    """``1 / |x_a|`` per row, 0 for a zero row."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    inv = np.zeros_like(norms)
    np.divide(1.0, norms, out=inv, where=norms > 0)
    return inv


def prepare_rows(X: np.ndarray, similarity: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and per-row factors from which every similarity is a scaled dot product.

    Returns ``(Y, f)`` with ``Y`` float64 C-contiguous and ``f`` float64 ``(n,)``, as the
    similarity's entry in :data:`SIMILARITIES` declares:

    * dot: ``Y = X``, ``f`` unused (ones);
    * cosine: ``Y = X``, ``f = 1 / |x|`` (0 for a zero row);
    * correlation: ``Y = X - row means``, ``f = 1 / |Y row|`` (0 for a constant row);
    * euclidean: ``Y = X``, ``f = |x|^2`` (summed in the direct kernel's own order, so that
      identical rows are at distance exactly 0 on the direct path too).

    O(n p); used by both the Gram and the direct path so that they agree.
    """
    _check_similarity(similarity)
    sim = SIMILARITIES[similarity]
    Y = as_float64(X)
    if sim.centre_rows:
        Y = Y - Y.mean(axis=1, keepdims=True)
    return Y, ROW_FACTORS[sim.row_factor](Y)


def gram(X: np.ndarray, similarity: str = "dot") -> np.ndarray:
    """All pairwise similarities of the rows of ``X`` as a float64 ``(n, n)`` matrix.

    Args:
        X: features ``(n, p)``, float16/32/64 (cast to float64 first).
        similarity: ``"dot"``, ``"cosine"``, ``"euclidean"`` (negative distance) or
            ``"correlation"``.

    Returns:
        The symmetric similarity matrix: one BLAS product ``Y @ Y.T`` (a ``syrk``) up to
        :data:`SYRK_MAX_ROWS` rows; above, row blocks of the upper triangle as ``gemm``
        products, mirrored into the lower one, so the matrix stays exactly symmetric.
        (OpenBLAS 0.3.31's threaded ``dsyrk`` crashes the process for about 15,500 to
        16,400 rows of 768 columns.)

    Example:
        >>> import numpy as np
        >>> gram(np.array([[3.0, 4.0], [0.0, 1.0]]), "cosine").round(2).tolist()
        [[1.0, 0.8], [0.8, 1.0]]
    """
    Y, f = prepare_rows(X, similarity)  # validates the name
    sim = SIMILARITIES[similarity]
    if sim.gram_scaled:
        Y = Y * f[:, None]  # rebound: the unscaled rows are freed before the product
    S = _product(Y)
    return S if sim.gram_finish is None else sim.gram_finish(S)


def _product(Y: np.ndarray) -> np.ndarray:
    """``Y @ Y.T``: one ``syrk`` up to :data:`SYRK_MAX_ROWS` rows, else ``gemm`` blocks."""
    return Y @ Y.T if Y.shape[0] <= SYRK_MAX_ROWS else _blocked_gram(Y)


def _negative_distance_from_product(S: np.ndarray) -> np.ndarray:
    """``-sqrt(|a|^2 + |b|^2 - 2 <a, b>)`` in place of ``S = Y Y^T``, clipped at 0, exactly 0
    on the diagonal."""
    # the squared norms are the Gram diagonal itself, so identical rows give exactly 0;
    # (|a|^2 + |b|^2) - 2 d, as the direct path, in row blocks: symmetric bit for bit
    sq = np.diagonal(S).copy()
    for s in range(0, S.shape[0], _GRAM_BLOCK):
        block = S[s : s + _GRAM_BLOCK]
        np.subtract(sq[s : s + _GRAM_BLOCK, None] + sq[None, :], 2.0 * block, out=block)
    np.maximum(S, 0.0, out=S)
    np.sqrt(S, out=S)
    np.negative(S, out=S)
    np.fill_diagonal(S, 0.0)
    return S


#: Largest row count whose Gram matrix is one ``syrk``; larger ones go in ``gemm`` blocks.
SYRK_MAX_ROWS = 8192
_GRAM_BLOCK = 4096


def _blocked_gram(Y: np.ndarray) -> np.ndarray:
    """``Y @ Y.T`` by row blocks of the upper triangle (``gemm``: the operands differ),
    each mirrored into the lower triangle."""
    n = Y.shape[0]
    S = np.empty((n, n))
    for s in range(0, n, _GRAM_BLOCK):
        e = min(n, s + _GRAM_BLOCK)
        np.matmul(Y[s:e], Y[s:].T, out=S[s:e, s:])
        S[e:, s:e] = S[s:e, e:].T
    # the diagonal blocks are gemm results too: make them exactly symmetric
    for s in range(0, n, _GRAM_BLOCK):
        e = min(n, s + _GRAM_BLOCK)
        block = S[s:e, s:e]
        lower = np.tril_indices(e - s, -1)
        block[lower] = block.T[lower]
    return S


def gram_bytes(n: int) -> int:
    """Bytes taken by a float64 ``n x n`` Gram matrix."""
    return 8 * int(n) * int(n)


def use_gram(n: int, budget: int = DEFAULT_GRAM_BUDGET) -> bool:
    """Whether the Gram path fits the byte ``budget`` for ``n`` stimuli (else go direct)."""
    return gram_bytes(n) <= budget


def check_triplets(T: np.ndarray, n: int | None = None) -> np.ndarray:
    """Validate a triplet array ``(N, 3)`` of integers (without copying) and return it.

    Args:
        T: int16/int32/int64 (or other integer) triplets, 0-based object indices.
        n: the number of objects; when given, every index must lie in ``[0, n)``.

    Raises:
        ValueError: wrong shape or dtype, or an index out of range.
    """
    T = np.asarray(T)
    if T.ndim != 2 or T.shape[1] != 3:
        raise ValueError(f"triplets must be an (N, 3) array, got shape {T.shape}")
    if not np.issubdtype(T.dtype, np.integer):
        raise ValueError(f"triplets must hold integers, got dtype {T.dtype}")
    if T.dtype.itemsize == 8 and T.dtype.kind == "u":
        T = T.astype(np.int64)
    if n is not None and T.shape[0] > 0:
        lo, hi = int(T.min()), int(T.max())  # numpy's SIMD reductions beat one Numba pass
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(f"triplet index {bad} out of range for {n} objects")
    return T


@njit(cache=True, inline="always")
def _dot(Y: np.ndarray, a: int, b: int) -> float:
    """Dot product of rows ``a`` and ``b`` with eight interleaved accumulators.

    The summation order is fixed (it depends on ``p`` only), so results are reproducible;
    the independent accumulators let the compiler vectorise without reassociating.
    """
    p = Y.shape[1]
    ya = Y[a]
    yb = Y[b]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    q = 0
    while q + 8 <= p:
        a0 += ya[q] * yb[q]
        a1 += ya[q + 1] * yb[q + 1]
        a2 += ya[q + 2] * yb[q + 2]
        a3 += ya[q + 3] * yb[q + 3]
        a4 += ya[q + 4] * yb[q + 4]
        a5 += ya[q + 5] * yb[q + 5]
        a6 += ya[q + 6] * yb[q + 6]
        a7 += ya[q + 7] * yb[q + 7]
        q += 8
    while q < p:
        a0 += ya[q] * yb[q]
        q += 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@njit(cache=True)
def _row_sq_norms(Y: np.ndarray) -> np.ndarray:
    out = np.empty(Y.shape[0])
    for a in range(Y.shape[0]):
        out[a] = _dot(Y, a, a)
    return out


@njit(cache=True, inline="always")
def _dot3(Y: np.ndarray, i: int, j: int, k: int) -> tuple[float, float, float]:
    """``(<y_i, y_j>, <y_i, y_k>, <y_j, y_k>)`` in one pass over the three rows.

    Each product is taken in float64 (exact for float32 rows) and each dot is summed exactly
    as :func:`_dot` sums it (eight accumulators by ``q mod 8``, then the same tree), so the
    values equal three :func:`_dot` calls bit for bit (and the CUDA direct kernel's); each
    row is read once instead of twice.
    """
    p = Y.shape[1]
    yi = Y[i]
    yj = Y[j]
    yk = Y[k]
    u0 = u1 = u2 = u3 = u4 = u5 = u6 = u7 = 0.0
    v0 = v1 = v2 = v3 = v4 = v5 = v6 = v7 = 0.0
    w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
    q = 0
    while q + 8 <= p:
        a = np.float64(yi[q + 0])
        b = np.float64(yj[q + 0])
        c = np.float64(yk[q + 0])
        u0 += a * b
        v0 += a * c
        w0 += b * c
        a = np.float64(yi[q + 1])
        b = np.float64(yj[q + 1])
        c = np.float64(yk[q + 1])
        u1 += a * b
        v1 += a * c
        w1 += b * c
        a = np.float64(yi[q + 2])
        b = np.float64(yj[q + 2])
        c = np.float64(yk[q + 2])
        u2 += a * b
        v2 += a * c
        w2 += b * c
        a = np.float64(yi[q + 3])
        b = np.float64(yj[q + 3])
        c = np.float64(yk[q + 3])
        u3 += a * b
        v3 += a * c
        w3 += b * c
        a = np.float64(yi[q + 4])
        b = np.float64(yj[q + 4])
        c = np.float64(yk[q + 4])
        u4 += a * b
        v4 += a * c
        w4 += b * c
        a = np.float64(yi[q + 5])
        b = np.float64(yj[q + 5])
        c = np.float64(yk[q + 5])
        u5 += a * b
        v5 += a * c
        w5 += b * c
        a = np.float64(yi[q + 6])
        b = np.float64(yj[q + 6])
        c = np.float64(yk[q + 6])
        u6 += a * b
        v6 += a * c
        w6 += b * c
        a = np.float64(yi[q + 7])
        b = np.float64(yj[q + 7])
        c = np.float64(yk[q + 7])
        u7 += a * b
        v7 += a * c
        w7 += b * c
        q += 8
    while q < p:
        a = np.float64(yi[q])
        b = np.float64(yj[q])
        c = np.float64(yk[q])
        u0 += a * b
        v0 += a * c
        w0 += b * c
        q += 1
    return (((u0 + u1) + (u2 + u3)) + ((u4 + u5) + (u6 + u7)),
            ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)),
            ((w0 + w1) + (w2 + w3)) + ((w4 + w5) + (w6 + w7)))


def _ones(Y: np.ndarray) -> np.ndarray:
    return np.ones(Y.shape[0])


#: Per-row factors of the prepared rows, by the name a :class:`Similarity` declares.
ROW_FACTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "one": _ones,
    "inverse_norm": _inverse_norms,
    "squared_norm": _row_sq_norms,
}


# --------------------------------------------------------------------------- pair functions
# Plain Python scalars over the dot product ``d`` of two prepared rows, their factors ``fa``
# and ``fb`` and whether they are one object (``same``); compiled for both targets.


def dot_pair(d: float, fa: float, fb: float, same: bool) -> float:
    """``s = d``: the dot product ``<x_a, x_b>`` itself."""
    return d


def scaled_pair(d: float, fa: float, fb: float, same: bool) -> float:
    """``s = (d * f_a) * f_b`` with ``f = 1 / |y|`` (0 for a zero row): the cosine of the
    prepared rows (cosine; correlation, whose rows are centred)."""
    return d * fa * fb


def negative_distance_pair(d: float, fa: float, fb: float, same: bool) -> float:
    """``s = -sqrt((f_a + f_b) - 2 d)`` with ``f = |x|^2``, a tiny negative square clipped to
    0, and exactly 0 for the same object."""
    if same:
        return 0.0
    sq = fa + fb - 2.0 * d
    return -math.sqrt(sq) if sq > 0.0 else 0.0


@dataclass(frozen=True)
class Similarity:
    """One similarity: what it is, how its rows are prepared, and its two paths.

    Attributes:
        name: the name users give (``--similarity``).
        summary: what it computes, one line (CLI help).
        reference: where it comes from, or who uses it.
        pair: plain-Python ``pair(d, fa, fb, same) -> float`` (the direct paths, CPU and CUDA).
        centre_rows: the rows are centred (``Y = X - row means``) before anything else.
        row_factor: the per-row factor ``f`` of the prepared rows, a key of
            :data:`ROW_FACTORS`: ``"one"``, ``"inverse_norm"`` (``1 / |y|``, 0 for a zero
            row) or ``"squared_norm"`` (``|y|^2``, in the direct kernel's summation order).
        gram_scaled: the Gram path multiplies each prepared row by its factor before the
            product ``S = Y Y^T`` (one BLAS ``syrk``, or ``gemm`` blocks).
        gram_finish: ``S -> S``, what turns that product into the similarities (in place),
            or None when the product is the answer.
    """

    name: str
    summary: str
    reference: str
    pair: Callable[[float, float, float, bool], float]
    centre_rows: bool
    row_factor: str
    gram_scaled: bool
    gram_finish: Callable[[np.ndarray], np.ndarray] | None


#: Every similarity a user can name, by name, in the order dot, cosine, euclidean, correlation.
SIMILARITIES: dict[str, Similarity] = {
    s.name: s
    for s in (
        Similarity(
            "dot",
            "the dot product <x_a, x_b>",
            "the odd-one-out analysis of Muttenthaler et al. (ICLR 2023)",
            dot_pair,
            centre_rows=False,
            row_factor="one",
            gram_scaled=False,
            gram_finish=None,
        ),
        Similarity(
            "cosine",
            "the cosine <x_a, x_b> / (|x_a| |x_b|); a zero row has cosine 0 with everything",
            "Brain-Score's odd-one-out benchmark",
            scaled_pair,
            centre_rows=False,
            row_factor="inverse_norm",
            gram_scaled=True,
            gram_finish=None,
        ),
        Similarity(
            "euclidean",
            "the negative euclidean distance -|x_a - x_b| (larger is more similar)",
            "the euclidean RDMs of representational similarity analysis",
            negative_distance_pair,
            centre_rows=False,
            row_factor="squared_norm",
            gram_scaled=False,
            gram_finish=_negative_distance_from_product,
        ),
        Similarity(
            "correlation",
            "the Pearson correlation of the rows; a constant row has correlation 0",
            "the correlation-distance RDMs of representational similarity analysis",
            scaled_pair,
            centre_rows=True,
            row_factor="inverse_norm",
            gram_scaled=True,
            gram_finish=None,
        ),
    )
}


_SORT_CHUNKS = 16  # fixed: the order does not depend on the number of threads


@njit(parallel=True, cache=True)
def _bucket_order(T: np.ndarray, rows_per_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Triplets grouped by the (sorted) row blocks of their three objects.

    Returns ``(order, starts)``: ``order[starts[b]:starts[b + 1]]`` are the triplets whose
    objects lie in the ``b``-th triple of blocks, in their original order, the triples in
    lexicographic order (so consecutive groups share two blocks). A stable counting sort,
    O(N), over a fixed number of chunks in parallel.
    """
    N = T.shape[0]
    m = 0
    for t in range(N):
        for c in range(3):
            if T[t, c] > m:
                m = T[t, c]
    G = np.int64(m) // rows_per_block + 1
    K = G * G * G
    chunk = (N + _SORT_CHUNKS - 1) // _SORT_CHUNKS
    keys = np.empty(N, dtype=np.int32)
    hist = np.zeros((_SORT_CHUNKS, K), dtype=np.int64)
    for c in prange(_SORT_CHUNKS):
        for t in range(c * chunk, min(N, (c + 1) * chunk)):
            a = np.int64(T[t, 0]) // rows_per_block
            b = np.int64(T[t, 1]) // rows_per_block
            d = np.int64(T[t, 2]) // rows_per_block
            if a > b:
                a, b = b, a
            if b > d:
                b, d = d, b
            if a > b:
                a, b = b, a
            key = (a * G + b) * G + d
            keys[t] = key
            hist[c, key] += 1
    starts = np.zeros(K + 1, dtype=np.int64)
    offset = np.empty((_SORT_CHUNKS, K), dtype=np.int64)
    run = 0
    for key in range(K):
        starts[key] = run
        for c in range(_SORT_CHUNKS):
            offset[c, key] = run
            run += hist[c, key]
    starts[K] = run
    order = np.empty(N, dtype=np.int64)
    for c in prange(_SORT_CHUNKS):
        for t in range(c * chunk, min(N, (c + 1) * chunk)):
            key = keys[t]
            order[offset[c, key]] = t
            offset[c, key] += 1
    return order, starts


def _sims_direct_blocked(Y: np.ndarray, f: np.ndarray, T: np.ndarray, order: np.ndarray,
                         n_threads: int) -> np.ndarray:
    """Template of the cache-blocked direct kernel (``_pair`` bound per similarity).

    The triplets are taken in ``order`` (grouped by row blocks, :func:`_bucket_order`), in
    chunks dealt round-robin to the threads, so that all threads work on neighbouring
    groups and read the same blocks of rows while they are in cache."""
    N = T.shape[0]
    out = np.empty((N, 3), dtype=np.float64)
    step = n_threads * _CHUNK
    for c in prange(n_threads):
        for base in range(c * _CHUNK, N, step):
            for u in range(base, min(N, base + _CHUNK)):
                t = order[u]
                i = np.int64(T[t, 0])
                j = np.int64(T[t, 1])
                k = np.int64(T[t, 2])
                dij, dik, djk = _dot3(Y, i, j, k)
                out[t, 0] = _pair(dij, f[i], f[j], i == j)  # noqa: F821 - bound per similarity
                out[t, 1] = _pair(dik, f[i], f[k], i == k)  # noqa: F821
                out[t, 2] = _pair(djk, f[j], f[k], j == k)  # noqa: F821
    return out


_CHUNK = 256


@functools.cache
def _blocked_kernel(pair: Callable[..., float]) -> Callable[..., np.ndarray]:
    """The cache-blocked CPU direct kernel of a pair function (see :func:`_direct_kernel`)."""
    return njit(parallel=True, cache=True, fastmath=False)(
        specialise(_sims_direct_blocked, pair.__name__ + "_blocked",
                   _pair=njit(cache=True, inline="always")(pair))
    )


#: Bytes of feature rows the blocked direct kernel keeps in cache at once (three blocks of
#: rows, read by every thread): a part of a typical last-level cache.
DIRECT_CACHE_BYTES = 16 * 1024**2
#: Fewest triplets for which grouping them by row blocks pays for the counting sort.
DIRECT_BLOCKED_MIN_TRIPLETS = 100_000


def _sims_direct(Y: np.ndarray, f: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Template of the direct kernel: ``_pair`` is bound to one similarity's compiled pair
    function by :func:`_direct_kernel`."""
    N = T.shape[0]
    out = np.empty((N, 3), dtype=np.float64)
    for t in prange(N):
        i = np.int64(T[t, 0])
        j = np.int64(T[t, 1])
        k = np.int64(T[t, 2])
        dij, dik, djk = _dot3(Y, i, j, k)
        out[t, 0] = _pair(dij, f[i], f[j], i == j)  # noqa: F821 - bound per similarity
        out[t, 1] = _pair(dik, f[i], f[k], i == k)  # noqa: F821
        out[t, 2] = _pair(djk, f[j], f[k], j == k)  # noqa: F821
    return out


@functools.cache
def _direct_kernel(pair: Callable[..., float]) -> Callable[..., np.ndarray]:
    """The CPU direct kernel of a pair function (built on first use, compiled on first call,
    cached on disk under its own name)."""
    return njit(parallel=True, cache=True, fastmath=False)(
        specialise(_sims_direct, pair.__name__, _pair=njit(cache=True, inline="always")(pair))
    )


def triplet_sims_direct(X: np.ndarray, T: np.ndarray, similarity: str = "dot") -> np.ndarray:
    """Similarities ``[s_ij, s_ik, s_jk]`` of every triplet, without an ``n x n`` matrix.

    Each similarity is a float64 dot product of two rows, scaled by per-row factors
    precomputed in O(n p) (see :func:`prepare_rows`); the result equals the Gram path
    gathered per triplet to rounding (about 1e-15 relative).

    Args:
        X: features ``(n, p)``.
        T: triplets ``(N, 3)``, int16/int32/int64, 0-based.
        similarity: as in :func:`gram`.

    Returns:
        float64 ``(N, 3)``.
    """
    Y, f = prepare_rows(X, similarity)
    sim = SIMILARITIES[similarity]
    Xa = np.asarray(X)
    if not sim.centre_rows and Xa.dtype == np.float32:
        # the same values in half the bytes: the kernel multiplies in float64, exactly
        Y = np.ascontiguousarray(Xa)
    T = check_triplets(T, Y.shape[0])
    if T.shape[0] < DIRECT_BLOCKED_MIN_TRIPLETS or Y.nbytes <= DIRECT_CACHE_BYTES:
        return _direct_kernel(sim.pair)(Y, f, T)
    rows = max(1, DIRECT_CACHE_BYTES // (3 * Y.shape[1] * Y.itemsize))
    import numba

    order, _ = _bucket_order(T, rows)
    return _blocked_kernel(sim.pair)(Y, f, T, order, numba.get_num_threads())


def triplet_sims_auto(
    X: np.ndarray, T: np.ndarray, similarity: str = "dot", budget: int = DEFAULT_GRAM_BUDGET
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pick the Gram or direct path by ``budget``.

    Returns:
        ``(S, T)`` with the Gram matrix when it fits, else ``(sims, None)`` with the
        per-triplet similarities; either pair can be passed to the functions of
        :mod:`alignkit._kernels.ooo`.
    """
    X = np.asarray(X)
    if X.ndim == 2 and use_gram(X.shape[0], budget):
        return gram(X, similarity), check_triplets(T, X.shape[0])
    return triplet_sims_direct(X, T, similarity), None
