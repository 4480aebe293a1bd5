"""Object folds: ``KFold(k, shuffle=True, random_state)`` over objects ``0..n-1``.

scikit-learn's rule (a ``numpy.random.RandomState(random_state)`` shuffle, then consecutive
folds, the first ``n % k`` one larger), in a module without torch: the probe's
cross-validation (:mod:`alignkit.probe.cv`) and the measures that fold over objects
(calibration, concept-ridge) all split with these two functions.
"""

from __future__ import annotations

import numpy as np

from alignkit.errors import InputError

__all__ = ["kfold_objects", "split_triplets"]


def kfold_objects(n_objects: int, k: int, random_state: int = 42) -> list[np.ndarray]:
    """Held-out objects of each fold, as ``KFold(k, shuffle=True, random_state)``.

    Returns:
        ``k`` int64 arrays (in the shuffled order), partitioning ``0..n-1``.
    """
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
    """Row indices of the pure training and pure held-out triplets.

    Args:
        triplets: (N, 3) object indices.
        held_out: the held-out objects.
        n_objects: number of objects.

    Returns:
        ``(train_rows, test_rows)``; rows mixing both sets are in neither.
    """
    out = np.zeros(n_objects, dtype=bool)
    out[held_out] = True
    k = out[triplets].sum(axis=1)
    return np.flatnonzero(k == 0), np.flatnonzero(k == 3)
