"""Bootstrap of odd-one-out accuracy: resampling inside the kernel with the shared RNG.

Resample ``b`` draws ``N`` triplet indices with replacement, the ``i``-th being
``bounded(draw(stream_key(seed, b), i), N)`` (see :mod:`alignkit._kernels._rng`), and its
accuracy is the mean correctness of the drawn triplets. The CUDA twin draws the same indices,
so both give identical accuracies for the same seed.

The correctness vector is bit-packed (4.7M triplets take 590 kB, which stays in the L2
cache), and the work is split into fixed (resample, chunk) items summed as integers, so the
result is identical for any number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import GOLDEN, as_seed, splitmix64, stream_key

__all__ = ["bootstrap_means", "bootstrap_counts", "bootstrap_groups", "percentile_ci", "pack_bits"]

_CHUNK = 1 << 20  # draws per work item
_S32 = np.uint64(32)
_S6 = np.uint64(6)
_M63 = np.uint64(63)
_ONE = np.uint64(1)


@njit(cache=True)
def pack_bits(correct: np.ndarray) -> np.ndarray:
    """Pack a 0/1 vector into uint64 words: bit ``t % 64`` of word ``t // 64`` is ``correct[t]``."""
    N = correct.shape[0]
    words = np.zeros((N + 63) // 64, dtype=np.uint64)
    for t in range(N):
        if correct[t] != 0:
            words[t >> 6] |= np.uint64(1) << np.uint64(t & 63)
    return words


@njit(cache=True, inline="always")
def _count_range(words: np.ndarray, key: np.uint64, start: int, stop: int, n: np.uint64) -> int:
    """Number of set bits among the draws ``start <= i < stop`` of the stream ``key``."""
    cnt = np.uint64(0)
    x = key + np.uint64(start) * GOLDEN
    for _ in range(stop - start):
        u = splitmix64(x)
        idx = ((u >> _S32) * n) >> _S32
        cnt += (words[idx >> _S6] >> (idx & _M63)) & _ONE
        x += GOLDEN
    return cnt


@njit(parallel=True, cache=True, fastmath=False)
def _boot_kernel(words: np.ndarray, N: int, n_boot: int, seed: np.uint64) -> np.ndarray:
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    partial = np.zeros(n_boot * n_chunks, dtype=np.int64)
    n = np.uint64(N)
    for item in prange(n_boot * n_chunks):
        b = item // n_chunks
        c = item - b * n_chunks
        key = stream_key(seed, np.uint64(b))
        start = c * _CHUNK
        stop = min(N, start + _CHUNK)
        partial[item] = _count_range(words, key, start, stop, n)
    counts = np.zeros(n_boot, dtype=np.int64)
    for item in range(n_boot * n_chunks):
        counts[item // n_chunks] += partial[item]
    return counts


def _check_correct(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct)
    if correct.ndim != 1:
        raise ValueError(f"the correctness vector must be 1-D, got shape {correct.shape}")
    if correct.dtype != np.uint8:
        if correct.dtype == np.bool_:
            correct = correct.view(np.uint8)
        else:
            correct = correct.astype(np.uint8)
    if correct.shape[0] >= 2**32:
        raise ValueError("the bootstrap supports fewer than 2**32 items")
    return correct


def bootstrap_counts(correct: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """Number of correct triplets in each of ``n_boot`` resamples (int64 ``(n_boot,)``).

    Args:
        correct: per-triplet correctness, uint8 (or bool) 0/1, ``(N,)``.
        n_boot: number of resamples (>= 0).
        seed: integer in ``[0, 2**64)``.
    """
    correct = _check_correct(correct)
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"the number of resamples must be >= 0, got {n_boot}")
    N = correct.shape[0]
    if N == 0 or n_boot == 0:
        return np.zeros(n_boot, dtype=np.int64)
    return _boot_kernel(pack_bits(correct), N, n_boot, as_seed(seed))


def bootstrap_means(correct: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """Accuracy of each of ``n_boot`` bootstrap resamples of the triplets.

    Each resample draws ``N`` triplets with replacement inside the kernel, per the shared
    RNG spec, in parallel over resamples; the result is identical for any thread count
    and on the CUDA twin.

    Args:
        correct: per-triplet correctness, uint8 (or bool) 0/1, ``(N,)``.
        n_boot: number of resamples.
        seed: integer in ``[0, 2**64)``.

    Returns:
        float64 ``(n_boot,)``; all ``nan`` when ``N == 0``.

    Example:
        >>> import numpy as np
        >>> m = bootstrap_means(np.array([1, 0, 1, 1], dtype=np.uint8), 1000, seed=0)
        >>> bool(abs(m.mean() - 0.75) < 0.02)
        True
    """
    correct = _check_correct(correct)
    counts = bootstrap_counts(correct, n_boot, seed)
    N = correct.shape[0]
    if N == 0:
        return np.full(counts.shape[0], np.nan)
    return counts / N


@njit(parallel=True, cache=True, fastmath=False)
def _groups_kernel(
    correct: np.ndarray, groups: np.ndarray, n_groups: int, n_boot: int, seed: np.uint64
) -> tuple[np.ndarray, np.ndarray]:
    N = correct.shape[0]
    n = np.uint64(N)
    hits = np.zeros((n_boot, n_groups), dtype=np.int64)
    totals = np.zeros((n_boot, n_groups), dtype=np.int64)
    for b in prange(n_boot):
        key = stream_key(seed, np.uint64(b))
        x = key
        for _ in range(N):
            u = splitmix64(x)
            idx = np.int64(((u >> _S32) * n) >> _S32)
            g = groups[idx]
            if g >= 0:
                totals[b, g] += 1
                hits[b, g] += correct[idx]
            x += GOLDEN
    return hits, totals


def bootstrap_groups(
    correct: np.ndarray, group_ids: np.ndarray, n_groups: int, n_boot: int, seed: int = 0
) -> np.ndarray:
    """Per-group accuracy in each bootstrap resample (e.g. per concept dimension).

    The resamples are exactly those of :func:`bootstrap_means` (same seed, same draws);
    each drawn triplet is tallied in its group.

    Args:
        correct: per-triplet correctness, uint8 0/1, ``(N,)``.
        group_ids: the group of each triplet, integers in ``[0, n_groups)``; a negative
            id leaves the triplet out of every group (it still takes part in the draw).
        n_groups: number of groups.
        n_boot: number of resamples.
        seed: integer in ``[0, 2**64)``.

    Returns:
        float64 ``(n_boot, n_groups)``; ``nan`` where a resample drew no triplet of a group.
    """
    correct = _check_correct(correct)
    groups = np.asarray(group_ids)
    if groups.shape != correct.shape or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError("group ids must be integers, one per triplet")
    n_groups, n_boot = int(n_groups), int(n_boot)
    if n_groups < 0 or n_boot < 0:
        raise ValueError("n_groups and n_boot must be >= 0")
    if groups.size and groups.max() >= n_groups:
        raise ValueError(f"group id {int(groups.max())} out of range for {n_groups} groups")
    if correct.shape[0] == 0:
        return np.full((n_boot, n_groups), np.nan)
    hits, totals = _groups_kernel(
        correct, groups.astype(np.int64, copy=False), n_groups, n_boot, as_seed(seed)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile confidence interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.

    Plain :func:`numpy.percentile` (linear interpolation) of the bootstrap values.

    Raises:
        ValueError: ``level`` outside ``(0, 1)`` or no values.
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"the confidence level must lie in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to take a confidence interval of")
    # rounded so that e.g. level 0.95 asks for exactly the 2.5th and 97.5th percentiles
    q_lo = round(50.0 * (1.0 - level), 10)
    lo, hi = np.percentile(values, [q_lo, 100.0 - q_lo])
    return float(lo), float(hi)
