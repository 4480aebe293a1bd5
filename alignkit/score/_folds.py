"""Object folds without torch: ``KFold(k, shuffle=True, random_state)`` over objects ``0..n-1``.

The rule of :func:`alignkit.probe.cv.kfold_objects` (scikit-learn's: a
``numpy.random.RandomState(random_state)`` shuffle, then consecutive folds, the first
``n % k`` one larger), for measures that must not import the probe's torch code.
"""

from __future__ import annotations

import numpy as np

from alignkit.errors import InputError

__all__ = ["kfold_objects", "split_triplets"]


def kfold_objects(n_objects: int, k: int, random_state: int = 42) -> list[np.ndarray]:
    """Held-out objects of each fold (``k`` int64 arrays partitioning ``0..n-1``)."""
    if k < 2 or k > n_objects:
        raise InputError(f"--folds must lie in 2..{n_objects} (the number of objects), got {k}")
    idx = np.arange(n_objects)
    np.random.RandomState(random_state).shuffle(idx)
    sizes = np.full(k, n_objects // k, dtype=np.int64)
    sizes[: n_objects % k] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    return [idx[bounds[f] : bounds[f + 1]] for f in range(k)]


def split_triplets(triplets: np.ndarray, held_out: np.ndarray,
                   n_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the triplets with no held-out object and of those with only held-out objects."""
    out = np.zeros(n_objects, dtype=bool)
    out[held_out] = True
    k = out[triplets].sum(axis=1)
    return np.flatnonzero(k == 0), np.flatnonzero(k == 3)
