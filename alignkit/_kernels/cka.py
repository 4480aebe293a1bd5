"""Centred kernel alignment (CKA) and shape metrics between two representations.

Everything takes two row-aligned matrices ``X`` (n, p) and ``Y`` (n, q) and an optional
vector ``w`` of non-negative integer row weights: the multiplicities of a bootstrap
resample (``w = bincount(idx, minlength=n)``), so that a resample is computed without
copying the rows it repeats. ``w = None`` means every row once.

* Linear CKA (Kornblith et al. 2019) in feature space: with the centred cross-products
  ``Sxy = Xc^T Yc``, ``Sxx = Xc^T Xc``, ``Syy = Yc^T Yc``,
  ``CKA = ||Sxy||_F^2 / (||Sxx||_F ||Syy||_F)``; no n x n matrix is formed.
* Debiased linear CKA: the unbiased HSIC estimator (Song et al. 2012) in place of the
  biased one, as in Nguyen et al. 2021; in feature space it needs, besides the
  cross-products, the squared row norms and the column sums (still no n x n matrix).
* RBF CKA: n x n kernels ``exp(-d^2 / (2 sigma^2))`` with
  ``sigma = fraction * sqrt(median of the non-zero squared distances)``, as in
  Muttenthaler et al. 2023 (``fraction = 1``) and Kornblith et al. 2019 (``threshold``).
* Shape metrics (Williams et al. 2021, as in netrep's ``LinearMetric``): optional column
  centring, partial whitening with ``alpha`` (1: none, Procrustes; 0: full, CCA; the
  whitening matrix scaled to keep the total variance), the narrower matrix zero-padded to
  the wider width, then the angle ``arccos(||Xw^T Yw||_* / (||Xw||_F ||Yw||_F))`` or the
  Procrustes distance ``min_Q ||Xw Q - Yw||_F = sqrt(||Xw||^2 + ||Yw||^2 - 2 ||Xw^T Yw||_*)``,
  all from p x q cross-covariances.

Sums run in float64 over blocks of rows, whatever the input dtype. Wrong arguments raise
:class:`ValueError`. This module uses numpy, scipy's BLAS and numba; no I/O.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from alignkit._kernels._rng import bounded, draw, permutation, stream_key

__all__ = [
    "CrossProducts",
    "cross_products",
    "linear_cka",
    "linear_cka_from",
    "reduce_width",
    "weighted_gram_cka",
    "median_sigma",
    "rbf_gram",
    "linear_gram",
    "hsic_biased",
    "hsic_unbiased",
    "kernel_cka",
    "shape_distance",
    "shape_from",
    "resample_counts",
    "permutation_index",
    "EIGVAL_TOL",
]

#: Eigenvalues of a covariance are clipped to this before partial whitening (as netrep).
EIGVAL_TOL = 1e-7
#: Rows per block of the float64 cross-product sums.
BLOCK_ROWS = 2048


def _check_pair(X: np.ndarray, Y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"expected two matrices, got shapes {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"row counts differ: {X.shape[0]} vs {Y.shape[0]}")
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 rows, got {X.shape[0]}")
    if X.dtype.kind not in "fiu" or Y.dtype.kind not in "fiu":
        raise ValueError("features must be real numbers")
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (X.shape[0],):
            raise ValueError(f"weights must have shape ({X.shape[0]},), got {w.shape}")
        if (w < 0).any() or w.sum() < 2:
            raise ValueError("weights must be non-negative and sum to at least 2")
    return X, Y, w


class CrossProducts:
    """Weighted, centred cross-products of two row-aligned matrices (float64).

    Attributes:
        n: total weight (number of rows of the resample).
        xy: ``Xc^T W Yc`` (p, q); xx, yy: ``Xc^T W Xc`` (p, p) and ``Yc^T W Yc`` (q, q)
            (None when not asked for); tx, ty: ``trace`` of those (always computed);
        rx, ry: squared norms of the centred rows (n,), only for the debiased estimator;
        sx, sy: column sums of the centred rows (zero up to rounding), for the same.
    """

    __slots__ = ("n", "xy", "xx", "yy", "tx", "ty", "rx", "ry", "w")

    def __init__(self, **kw: object) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def _gram_acc(C: np.ndarray | None, B: np.ndarray) -> np.ndarray:
    """``C + B^T B`` (numpy hands ``B.T @ B`` of one buffer to BLAS ``syrk``)."""
    G = B.T @ B
    if C is None:
        return G
    C += G
    return C


def _weighted_mean(X: np.ndarray, w: np.ndarray | None, n: float) -> np.ndarray:
    m = np.zeros(X.shape[1])
    for s in range(0, X.shape[0], BLOCK_ROWS):
        B = np.asarray(X[s:s + BLOCK_ROWS], dtype=np.float64)
        m += B.sum(axis=0) if w is None else w[s:s + BLOCK_ROWS] @ B
    return m / n


def cross_products(X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None, *,
                   xx: bool = True, yy: bool = True, rows: bool = False,
                   centre: bool = True) -> CrossProducts:
    """The centred (weighted) cross-products of ``X`` and ``Y`` in float64, by row blocks.

    Args:
        w: row weights (bootstrap multiplicities) or None.
        xx, yy: also compute ``Xc^T W Xc`` / ``Yc^T W Yc``.
        rows: also return the squared norms of the centred rows (debiased CKA).
        centre: subtract the (weighted) column means first.
    """
    X, Y, w = _check_pair(X, Y, w)
    if w is not None:
        keep = np.flatnonzero(w)
        if keep.size < X.shape[0]:
            X, Y, w = X[keep], Y[keep], w[keep]
    n = float(X.shape[0] if w is None else w.sum())
    mx = _weighted_mean(X, w, n) if centre else np.zeros(X.shape[1])
    my = _weighted_mean(Y, w, n) if centre else np.zeros(Y.shape[1])
    Sxy = np.zeros((X.shape[1], Y.shape[1]))
    Sxx = Syy = None
    tx = ty = 0.0
    rx = np.empty(X.shape[0]) if rows else None
    ry = np.empty(X.shape[0]) if rows else None
    for s in range(0, X.shape[0], BLOCK_ROWS):
        A = np.asarray(X[s:s + BLOCK_ROWS], dtype=np.float64) - mx
        B = np.asarray(Y[s:s + BLOCK_ROWS], dtype=np.float64) - my
        ra = np.einsum("ij,ij->i", A, A)
        rb = np.einsum("ij,ij->i", B, B)
        if rows:
            rx[s:s + A.shape[0]] = ra
            ry[s:s + A.shape[0]] = rb
        if w is None:
            Aw, Bw = A, B
            tx += ra.sum()
            ty += rb.sum()
        else:
            ws = w[s:s + BLOCK_ROWS]
            sq = np.sqrt(ws)[:, None]
            Aw, Bw = A * sq, B * sq
            tx += ws @ ra
            ty += ws @ rb
        Sxy += Aw.T @ Bw
        if xx:
            Sxx = _gram_acc(Sxx, Aw)
        if yy:
            Syy = _gram_acc(Syy, Bw)
    return CrossProducts(n=n, xy=Sxy, xx=Sxx, yy=Syy, tx=float(tx), ty=float(ty),
                         rx=rx, ry=ry, w=w)


def _hsic_u_feature(S: np.ndarray, ra: np.ndarray, rb: np.ndarray, sa: np.ndarray,
                    sb: np.ndarray, A_s: np.ndarray, B_s: np.ndarray, w: np.ndarray,
                    m: np.ndarray, n: float) -> float:
    """Unbiased HSIC (times n(n-3)) of linear kernels from feature-space pieces.

    ``S = A^T W B``, ``ra``/``rb`` the squared row norms (``K_ii``), ``sa``/``sb`` the
    weighted column sums, ``A_s[i] = a_i . sa``. ``m``: how many entries of the expanded
    kernel each row's ``K_ii`` is removed from, per copy (1: only the diagonal; ``w``: every
    pair of a stimulus with a copy of itself as well).
    """
    tr = float(np.sum(S * S)) - float(w @ (m * ra * rb))  # tr(K~ L~)
    ka = float(sa @ sa) - float(w @ (m * ra))  # 1^T K~ 1
    lb = float(sb @ sb) - float(w @ (m * rb))
    a = A_s - m * ra  # (K~ 1)_i
    b = B_s - m * rb
    kl = float(w @ (a * b))  # 1^T K~ L~ 1
    return tr + ka * lb / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)


def _rows_dot(X: np.ndarray, v: np.ndarray, mean: np.ndarray) -> np.ndarray:
    out = np.empty(X.shape[0])
    for s in range(0, X.shape[0], BLOCK_ROWS):
        out[s:s + BLOCK_ROWS] = (np.asarray(X[s:s + BLOCK_ROWS], dtype=np.float64) - mean) @ v
    return out


def linear_cka(X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None, *,
               debiased: bool = False, drop_copies: bool = False) -> float:
    """Linear CKA of ``X`` (n, p) and ``Y`` (n, q), optionally of a weighted resample.

    ``drop_copies`` (with ``w``): leave out the pairs of a stimulus with a copy of itself
    (``False``: exactly the CKA of the rows repeated ``w`` times). The biased form keeps the
    diagonal (a stimulus with itself, once per copy, as without repeats); the debiased form
    zeroes every kernel entry between copies of one stimulus, its diagonal included, of the
    features centred on the resample. Either way a resample's CKA stays centred on the
    full-sample value, where plain repetition pulls it away (towards the kernel's diagonal).
    """
    X, Y, w = _check_pair(X, Y, w)
    if w is not None:
        keep = np.flatnonzero(w)
        if keep.size < X.shape[0]:
            X, Y, w = X[keep], Y[keep], w[keep]
    drop = drop_copies and w is not None
    cp = cross_products(X, Y, w, rows=debiased or drop)
    if not debiased:
        if not drop:
            return linear_cka_from(cp)
        extra = w * (w - 1.0)  # the copy pairs' diagonal terms, counted once each
        num = float(np.sum(cp.xy * cp.xy)) - float(extra @ (cp.rx * cp.ry))
        dx = float(np.sum(cp.xx * cp.xx)) - float(extra @ (cp.rx * cp.rx))
        dy = float(np.sum(cp.yy * cp.yy)) - float(extra @ (cp.ry * cp.ry))
        return num / np.sqrt(dx * dy) if dx > 0 and dy > 0 else float("nan")
    n = cp.n
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 rows, got {n:g}")
    mx = _weighted_mean(X, w, n)
    my = _weighted_mean(Y, w, n)
    ww = np.ones(X.shape[0]) if w is None else w
    m = ww if drop else np.ones_like(ww)
    # column sums of the centred rows are zero; kept for exactness under rounding
    sx = np.zeros(X.shape[1])
    sy = np.zeros(Y.shape[1])
    for s in range(0, X.shape[0], BLOCK_ROWS):
        sx += ww[s:s + BLOCK_ROWS] @ (np.asarray(X[s:s + BLOCK_ROWS], dtype=np.float64) - mx)
        sy += ww[s:s + BLOCK_ROWS] @ (np.asarray(Y[s:s + BLOCK_ROWS], dtype=np.float64) - my)
    xs = _rows_dot(X, sx, mx)
    ys = _rows_dot(Y, sy, my)
    hxy = _hsic_u_feature(cp.xy, cp.rx, cp.ry, sx, sy, xs, ys, ww, m, n)
    hxx = _hsic_u_feature(cp.xx, cp.rx, cp.rx, sx, sx, xs, xs, ww, m, n)
    hyy = _hsic_u_feature(cp.yy, cp.ry, cp.ry, sy, sy, ys, ys, ww, m, n)
    den = hxx * hyy
    return float(hxy / np.sqrt(den)) if den > 0 else float("nan")


def linear_cka_from(cp: CrossProducts) -> float:
    """Biased linear CKA from :func:`cross_products` (with ``xx`` and ``yy``)."""
    num = float(np.sum(cp.xy * cp.xy))
    den = float(np.linalg.norm(cp.xx) * np.linalg.norm(cp.yy))
    return num / den if den > 0 else float("nan")


def _centre_weighted(A: np.ndarray, w: np.ndarray, N: float) -> np.ndarray:
    """The kernel of the features centred by their ``w``-weighted mean."""
    r = A @ w / N
    return A - r[:, None] - r[None, :] + float(w @ r) / N


def weighted_gram_cka(K: np.ndarray, L: np.ndarray, w: np.ndarray | None = None, *,
                      debiased: bool = False, drop_copies: bool = False) -> float:
    """CKA of two n x n kernel matrices over a weighted resample of their rows, in
    ``O(n^2)``: equal to :func:`kernel_cka` of ``K[idx][:, idx]``, ``L[idx][:, idx]`` with
    ``w = bincount(idx)``, without forming those (``drop_copies``: as in
    :func:`linear_cka`)."""
    if w is None:
        return kernel_cka(K, L, debiased=debiased)
    w = np.asarray(w, dtype=np.float64)
    keep = np.flatnonzero(w)
    K, L, w = K[np.ix_(keep, keep)], L[np.ix_(keep, keep)], w[keep]
    N = float(w.sum())
    m = w if drop_copies else np.ones_like(w)
    if not debiased:
        Kc, Lc = _centre_weighted(K, w, N), _centre_weighted(L, w, N)
        extra = w * (m - 1.0)

        def h(A: np.ndarray, B: np.ndarray) -> float:
            return float(w @ (A * B) @ w) - float(extra @ (np.diag(A) * np.diag(B)))

        den = h(Kc, Kc) * h(Lc, Lc)
        return float(h(Kc, Lc) / np.sqrt(den)) if den > 0 else float("nan")
    if N < 4:
        raise ValueError(f"debiased CKA needs at least 4 rows, got {N:g}")
    if drop_copies:  # centred on the resample, as the feature-space form is
        K, L = _centre_weighted(K, w, N), _centre_weighted(L, w, N)

    def hu(A: np.ndarray, B: np.ndarray) -> float:
        da, db = np.diag(A), np.diag(B)
        tr = float(w @ (A * B) @ w) - float(w @ (m * da * db))
        a1 = A @ w - m * da
        b1 = B @ w - m * db
        ka = float(w @ A @ w) - float(w @ (m * da))
        lb = float(w @ B @ w) - float(w @ (m * db))
        return tr + ka * lb / ((N - 1) * (N - 2)) - 2.0 * float(w @ (a1 * b1)) / (N - 2)

    den = hu(K, K) * hu(L, L)
    return float(hu(K, L) / np.sqrt(den)) if den > 0 else float("nan")


def reduce_width(X: np.ndarray) -> np.ndarray:
    """``X V`` (n, n) for a matrix wider than tall: the same rows in an orthonormal basis
    of their span, so that every measure here invariant to rotations of the features
    (linear CKA, Procrustes and angular distance) is unchanged and cheaper."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] <= X.shape[0]:
        return X
    # the eigenvectors of the n x n Gram give X V = U S without the p x p problem
    G = X @ X.T
    lam, U = np.linalg.eigh(G)
    lam = np.maximum(lam, 0.0)
    return U * np.sqrt(lam)[None, :]


# -- kernel (n x n) forms -------------------------------------------------------------


def linear_gram(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def median_sigma(X: np.ndarray, fraction: float = 1.0) -> float:
    """``fraction * sqrt(median of the non-zero squared distances between rows)``."""
    X = np.asarray(X, dtype=np.float64)
    G = X @ X.T
    g = np.diag(G)
    D2 = (g[None, :] - G) + (g[None, :] - G).T
    iu = np.triu_indices(X.shape[0], 1)
    d = D2[iu]
    d = d[d != 0]
    if not d.size:
        raise ValueError("all rows are equal: no bandwidth")
    return float(fraction) * float(np.sqrt(np.median(d)))


def rbf_gram(X: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-||x_i - x_j||^2 / (2 sigma^2))`` (n, n)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    X = np.asarray(X, dtype=np.float64)
    G = X @ X.T
    g = np.diag(G)
    D2 = (g[None, :] - G) + (g[None, :] - G).T
    D2 *= -0.5 / sigma**2
    return np.exp(D2)


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """``sum(H K H * H L H)``: the biased HSIC up to the factor ``1/(n-1)^2``."""
    Kc = K - K.mean(axis=0)[None, :] - K.mean(axis=1)[:, None] + K.mean()
    Lc = L - L.mean(axis=0)[None, :] - L.mean(axis=1)[:, None] + L.mean()
    return float(np.sum(Kc * Lc))


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. 2012 times ``n (n - 3)``."""
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 rows, got {n}")
    Kt = K.copy()
    Lt = L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    k1 = Kt.sum(axis=1)
    l1 = Lt.sum(axis=1)
    return float(np.sum(Kt * Lt) + k1.sum() * l1.sum() / ((n - 1) * (n - 2))
                 - 2.0 * (k1 @ l1) / (n - 2))


def kernel_cka(K: np.ndarray, L: np.ndarray, *, debiased: bool = False) -> float:
    """CKA of two n x n kernel matrices."""
    h = hsic_unbiased if debiased else hsic_biased
    den = h(K, K) * h(L, L)
    return float(h(K, L) / np.sqrt(den)) if den > 0 else float("nan")


# -- shape metrics ------------------------------------------------------------------


def _whitening(S: np.ndarray, alpha: float, width: int) -> tuple[np.ndarray | None, float]:
    """Partial whitening matrix of covariance ``S`` (netrep's ``whiten``, variance kept) and
    the total variance after it. ``width``: the padded width (missing eigenvalues are 0)."""
    lam_true, V = np.linalg.eigh(S)
    lam_true = np.maximum(lam_true, 0.0)
    lam = np.maximum(lam_true, EIGVAL_TOL)
    n_pad = width - lam.size
    d = alpha + (1 - alpha) * lam ** -0.5
    # the eigenvalues of the padded columns count in the variance of the whitened data
    lam_all = np.concatenate([lam, np.full(n_pad, EIGVAL_TOL)])
    new_var = np.sum(alpha**2 * lam_all + 2 * alpha * (1 - alpha) * lam_all**0.5
                     + (1 - alpha) ** 2)
    d = d * np.sqrt(np.sum(lam_all) / new_var)
    Z = (V * d[None, :]) @ V.T
    return Z, float(np.sum(d * d * lam_true))


def shape_from(cp: CrossProducts, *, metric: str = "angular", alpha: float = 1.0,
               width: int | None = None, normalise: bool = True) -> float:
    """A shape metric from :func:`cross_products` (``xx``/``yy`` needed when alpha < 1).

    ``width``: the common padded width (default ``max(p, q)``).
    """
    if metric not in ("angular", "procrustes"):
        raise ValueError(f"metric must be angular or procrustes, got {metric!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    p, q = cp.xy.shape
    width = max(p, q) if width is None else int(width)
    M = cp.xy
    vx, vy = cp.tx, cp.ty
    if alpha <= 1 - EIGVAL_TOL:
        if cp.xx is None or cp.yy is None:
            raise ValueError("partial whitening needs xx and yy")
        Zx, vx = _whitening(cp.xx, alpha, width)
        Zy, vy = _whitening(cp.yy, alpha, width)
        M = Zx @ M @ Zy
    nuc = float(np.sum(np.linalg.svd(M, compute_uv=False)))
    nx, ny = np.sqrt(max(vx, 0.0)), np.sqrt(max(vy, 0.0))
    if nx == 0 or ny == 0:
        return float("nan")
    cos = min(1.0, max(-1.0, nuc / (nx * ny)))
    if metric == "angular":
        return float(np.arccos(cos))
    if normalise:
        return float(np.sqrt(max(0.0, 2.0 - 2.0 * cos)))
    return float(np.sqrt(max(0.0, vx + vy - 2.0 * nuc)))


def shape_distance(X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None, *,
                   metric: str = "angular", alpha: float = 1.0, centre: bool = True,
                   normalise: bool = True, width: int | None = None) -> float:
    """Angular shape metric or Procrustes distance of ``X`` (n, p) and ``Y`` (n, q).

    ``normalise`` (Procrustes only): scale both to unit Frobenius norm after whitening,
    so that the distance is ``sqrt(2 - 2 cos theta)`` and invariant to isotropic scaling;
    without it, the distance in the data's units (netrep's ``score_method="euclidean"``).
    """
    need = alpha <= 1 - EIGVAL_TOL
    X, Y, w = _check_pair(X, Y, w)
    width = max(X.shape[1], Y.shape[1]) if width is None else width
    cp = cross_products(X, Y, w, xx=need, yy=need, centre=centre)
    return shape_from(cp, metric=metric, alpha=alpha, width=width, normalise=normalise)


# -- resampling --------------------------------------------------------------------


@njit(cache=True)
def _counts_kernel(n: int, b: int, seed: np.uint64) -> np.ndarray:
    out = np.zeros(n, np.int64)
    key = stream_key(seed, np.uint64(b))
    nn = np.uint64(n)
    for i in range(n):
        out[bounded(draw(key, np.uint64(i)), nn)] += 1
    return out


def resample_counts(n: int, b: int, seed: int) -> np.ndarray:
    """Multiplicities of bootstrap resample ``b`` of ``n`` rows: its ``i``-th index is
    ``bounded(draw(stream_key(seed, b), i), n)`` (the shared stream spec)."""
    if n < 1 or n >= 2**32:
        raise ValueError(f"n must lie in [1, 2**32), got {n}")
    return _counts_kernel(int(n), int(b), np.uint64(seed))


def permutation_index(n: int, p: int, seed: int) -> np.ndarray:
    """Permutation ``p`` of ``n`` rows (Fisher-Yates on the stream ``stream_key(seed, p)``)."""
    if n < 1 or n >= 2**32:
        raise ValueError(f"n must lie in [1, 2**32), got {n}")
    return _perm_kernel(int(n), int(p), np.uint64(seed))


@njit(cache=True)
def _perm_kernel(n: int, p: int, seed: np.uint64) -> np.ndarray:
    return permutation(stream_key(seed, np.uint64(p)), n)
