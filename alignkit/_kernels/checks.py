"""Input checks that would otherwise make full temporary copies of large matrices."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["worst_asymmetry", "all_finite"]


@njit(parallel=True, cache=True)
def _row_asymmetry(M: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n = M.shape[0]
    out = np.zeros(n)
    for i in prange(n):
        worst = 0.0
        for j in range(i + 1, n):
            d = abs(M[i, j] - M[j, i])
            if d > worst or d != d:  # NaN counts as the worst
                worst = d if d == d else np.inf
        out[i] = worst
    return out


def worst_asymmetry(M: np.ndarray) -> tuple[float, int, int]:
    """``max |M[i, j] - M[j, i]|`` over a square float64 matrix, and where it is.

    One pass over the upper triangle against the lower one, without the temporaries of
    ``np.allclose(M, M.T)`` (which copies the matrix twice). Returns ``(0.0, -1, -1)`` for an
    exactly symmetric matrix.
    """
    M = np.ascontiguousarray(M, dtype=np.float64)
    if M.shape[0] < 2:
        return 0.0, -1, -1
    rows = _row_asymmetry(M)
    i = int(np.argmax(rows))
    if rows[i] == 0.0:
        return 0.0, -1, -1
    diff = np.abs(M[i, i + 1:] - M[i + 1:, i])
    j = i + 1 + int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
    return float(rows[i]), i, j


@njit(parallel=True, cache=True)
def _finite_rows(M: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n = M.shape[0]
    out = np.ones(n, dtype=np.bool_)
    for i in prange(n):
        for j in range(M.shape[1]):
            if not np.isfinite(M[i, j]):
                out[i] = False
                break
    return out


def all_finite(M: np.ndarray) -> bool:
    """Whether every entry of a 2-D float64 matrix is finite (no temporary array)."""
    return bool(_finite_rows(np.ascontiguousarray(M, dtype=np.float64)).all())
