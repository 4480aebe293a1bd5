"""Ridge regression with the alpha of each target chosen by exact leave-one-out error.

The closed form of scikit-learn's ``RidgeCV(alphas, alpha_per_target=True)`` (intercept fitted,
not penalised; ``gcv_mode`` its default): on centred data ``Xc``, ``Yc`` the hat matrix of a
ridge fit with intercept is ``H = 11'/n + Xc (Xc'Xc + a I)^-1 Xc'`` and the leave-one-out
residual of row ``i`` is ``(y_i - yhat_i) / (1 - H_ii)``. With the eigendecomposition of the
smaller of the n x n Gram ``Xc Xc'`` and the p x p covariance ``Xc'Xc`` every alpha costs one
multiplication. For each target the alpha of least mean squared LOO residual is kept (the
first on ties, as scikit-learn). Plain numpy/LAPACK (no I/O); the bootstrap of R² is a numba
kernel on the counter-based streams of :mod:`alignkit._kernels._rng`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import as_seed, bounded, draw, stream_key

__all__ = ["ridge_loo_fit_predict", "centred_gram_blocks", "r2_columns", "bootstrap_r2"]


def _select(lam: np.ndarray, A: np.ndarray, B: np.ndarray, Yc: np.ndarray, alphas: np.ndarray,
            shrink_gram: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index of the best alpha per target and its mean squared LOO residual.

    Gram form (``shrink_gram``): ``A = U`` (n x n eigenvectors), ``B = U'Yc``; fitted values
    ``U diag(lam / (lam + a)) B``, leverage ``1/n + U^2 (lam / (lam + a))``. Covariance form:
    ``A = Xc V`` (n x p), ``B = A'Yc``; fitted ``A diag(1 / (lam + a)) B``, leverage
    ``1/n + A^2 (1 / (lam + a))``.
    """
    n, d = Yc.shape
    A2 = A * A
    best = np.full(d, np.inf)
    which = np.zeros(d, dtype=np.int64)
    for k, a in enumerate(alphas):
        w = lam / (lam + a) if shrink_gram else 1.0 / (lam + a)
        fitted = A @ (w[:, None] * B)
        lev = 1.0 / n + A2 @ w
        loo = (Yc - fitted) / (1.0 - lev)[:, None]
        err = np.mean(loo * loo, axis=0)
        better = err < best
        best[better] = err[better]
        which[better] = k
    return which, best


def centred_gram_blocks(G: np.ndarray, train: np.ndarray,
                        test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Xc_tr Xc_tr', Xc_te Xc_tr')`` from the Gram ``G = X X'``, centring by the training mean.

    ``(a - mu).(b - mu) = a.b - a.mu - mu.b + mu.mu`` with ``a.mu`` the mean of ``G[a, train]``.
    """
    Gtt = G[np.ix_(train, train)]
    Gst = G[np.ix_(test, train)]
    col = Gtt.mean(axis=0)
    grand = col.mean()
    Ktr = Gtt - col[:, None] - col[None, :] + grand
    Kte = Gst - Gst.mean(axis=1)[:, None] - col[None, :] + grand
    return 0.5 * (Ktr + Ktr.T), Kte


def ridge_loo_fit_predict(
    X_train: np.ndarray | None, Y_train: np.ndarray, X_test: np.ndarray | None,
    alphas: np.ndarray, *, gram: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for ``X_test`` of ridge fits whose alpha per target minimises the LOO error.

    Args:
        X_train, X_test: ``(n, p)`` and ``(m, p)`` features (None when ``gram`` is given).
        Y_train: ``(n, d)`` targets.
        alphas: the candidate penalties (> 0).
        gram: the centred blocks ``(Xc_tr Xc_tr', Xc_te Xc_tr')`` (see
            :func:`centred_gram_blocks`); the Gram form is used.

    Returns:
        ``(predictions (m, d), index of the chosen alpha per target (d,))``.
    """
    Y = np.asarray(Y_train, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    ym = Y.mean(axis=0)
    Yc = Y - ym
    if gram is None:
        Xtr = np.asarray(X_train, dtype=np.float64)
        mu = Xtr.mean(axis=0)
        Xc = Xtr - mu
        Xte_c = np.asarray(X_test, dtype=np.float64) - mu
        n, p = Xc.shape
        if n <= p:
            gram = (Xc @ Xc.T, Xte_c @ Xc.T)
    if gram is not None:
        Ktr, Kte = gram
        lam, U = np.linalg.eigh(Ktr)
        lam = np.maximum(lam, 0.0)
        B = U.T @ Yc
        which, _ = _select(lam, U, B, Yc, alphas, True)
        dual = np.empty_like(Yc)
        for k in np.unique(which):
            cols = which == k
            dual[:, cols] = U @ (B[:, cols] / (lam + alphas[k])[:, None])
        return Kte @ dual + ym, which
    lam, V = np.linalg.eigh(Xc.T @ Xc)
    lam = np.maximum(lam, 0.0)
    A = Xc @ V
    B = A.T @ Yc
    which, _ = _select(lam, A, B, Yc, alphas, False)
    coef = np.empty((V.shape[0], Yc.shape[1]))
    for k in np.unique(which):
        cols = which == k
        coef[:, cols] = V @ (B[:, cols] / (lam + alphas[k])[:, None])
    return Xte_c @ coef + ym, which


def r2_columns(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``1 - sum((y - p)^2) / sum((y - mean y)^2)`` per column (nan for a constant column)."""
    Y = np.asarray(Y, dtype=np.float64)
    ss_res = np.sum((Y - P) ** 2, axis=0)
    ss_tot = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


@njit(parallel=True, cache=True, fastmath=False)
def _boot_r2_kernel(Y: np.ndarray, P: np.ndarray, n_boot: int, seed: np.uint64) -> np.ndarray:
    N, d = Y.shape
    n = np.uint64(N)
    out = np.empty((n_boot, d))
    for b in prange(n_boot):
        key = stream_key(seed, np.uint64(b))
        s1 = np.zeros(d)
        s2 = np.zeros(d)
        sr = np.zeros(d)
        for i in range(N):
            idx = np.int64(bounded(draw(key, np.uint64(i)), n))
            for j in range(d):
                y = Y[idx, j]
                s1[j] += y
                s2[j] += y * y
                e = y - P[idx, j]
                sr[j] += e * e
        for j in range(d):
            tot = s2[j] - s1[j] * s1[j] / N
            out[b, j] = 1.0 - sr[j] / tot if tot > 0 else np.nan
    return out


def bootstrap_r2(Y: np.ndarray, P: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """R² per column in each bootstrap resample of the rows (objects): ``(n_boot, d)``."""
    Y = np.asarray(Y, dtype=np.float64)
    shift = Y.mean(axis=0) if Y.shape[0] else 0.0  # R² does not move; the sums lose less
    Y = np.ascontiguousarray(Y - shift)
    P = np.ascontiguousarray(np.asarray(P, dtype=np.float64) - shift)
    if Y.shape[0] == 0 or n_boot <= 0:
        return np.full((max(int(n_boot), 0), Y.shape[1]), np.nan)
    return _boot_r2_kernel(Y, P, int(n_boot), as_seed(seed))
