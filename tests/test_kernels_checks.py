"""The matrix checks against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from alignkit._kernels.checks import all_finite, worst_asymmetry


@pytest.mark.parametrize("seed", range(5))
def test_worst_asymmetry_equals_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    A = rng.normal(size=(n, n))
    M = A + A.T
    assert worst_asymmetry(M) == (0.0, -1, -1)
    i, j = sorted(rng.choice(n, 2, replace=False))
    M[j, i] += 1e-3 * (seed + 1)
    M[rng.integers(n), rng.integers(n)] += 0.0  # no-op
    want = np.abs(M - M.T).max()
    got, gi, gj = worst_asymmetry(M)
    assert got == want and (gi, gj) == (i, j)
    assert abs(M[gi, gj] - M[gj, gi]) == want


def test_nan_and_inf() -> None:
    M = np.zeros((4, 4))
    assert all_finite(M)
    M[1, 3] = np.nan
    assert not all_finite(M) and worst_asymmetry(M)[1:] == (1, 3)
    M[1, 3] = np.inf
    assert not all_finite(M)
    assert worst_asymmetry(np.zeros((1, 1))) == (0.0, -1, -1)
