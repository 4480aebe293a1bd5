"""The counter-based random number generator shared by the CPU and CUDA kernels.

Every random choice in alignkit's kernels (bootstrap resamples, permutations,
synthetic triplets) is a pure function of ``(seed, stream, index)``, so a
result does not depend on the number of threads, on the order in which work is
scheduled, or on the device: the CUDA twins reproduce the same streams bit for
bit. All arithmetic is modulo 2**64 on unsigned 64-bit integers.

Let ``G = 0x9E3779B97F4A7C15``::

    splitmix64(x):  z = x + G
                    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
                    return z ^ (z >> 31)
    stream_key(seed, s) = splitmix64(splitmix64(seed) ^ s)
    draw(key, i)        = splitmix64(key + i * G)       # i-th draw of a stream
    bounded(u, m)       = ((u >> 32) * m) >> 32          # integer in [0, m), m < 2**32
    uniform01(u)        = float64(u >> 11) * 2**-53      # in [0, 1)

Bootstrap resample ``b`` of ``N`` items takes, as its ``i``-th index,
``bounded(draw(stream_key(seed, b), i), N)``. Permutation ``p`` of ``m`` items
is a Fisher-Yates shuffle: ``perm = arange(m)``; for ``t = m-1`` down to ``1``,
``j = bounded(draw(stream_key(seed, p), t), t + 1)`` and ``perm[t], perm[j]``
are swapped.

The scalar functions below are written once, in plain Python over ``numpy.uint64``
scalars: here they are Numba ``njit`` functions, callable from other kernels (where they
are inlined) and from Python with ``numpy.uint64`` arguments; :mod:`alignkit._kernels._cuda_rng`
compiles the same Python source (``fn.py_func``) with ``numba.cuda.jit(device=True)``
through :func:`alignkit._kernels._twins.device_function`, so the CPU and the GPU draw from
one definition.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "GOLDEN",
    "splitmix64",
    "stream_key",
    "draw",
    "bounded",
    "uniform01",
    "shuffle_index",
    "SCALARS",
    "as_seed",
    "permutation",
]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO_M53 = 2.0**-53


@njit(cache=True, inline="always")
def splitmix64(x: np.uint64) -> np.uint64:
    """One SplitMix64 step: the finaliser applied to ``x + G``."""
    z = np.uint64(x) + GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def stream_key(seed: np.uint64, s: np.uint64) -> np.uint64:
    """Key of stream ``s`` (a resample, permutation or triplet index) under ``seed``."""
    return splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(s))


@njit(cache=True, inline="always")
def draw(key: np.uint64, i: np.uint64) -> np.uint64:
    """The ``i``-th 64-bit draw of the stream with key ``key``."""
    return splitmix64(np.uint64(key) + np.uint64(i) * GOLDEN)


@njit(cache=True, inline="always")
def bounded(u: np.uint64, m: np.uint64) -> np.uint64:
    """Map a draw to an integer in ``[0, m)`` (``m < 2**32``) by a 32-bit multiply-shift."""
    return ((np.uint64(u) >> _S32) * np.uint64(m)) >> _S32


@njit(cache=True, inline="always")
def uniform01(u: np.uint64) -> float:
    """Map a draw to a float64 in ``[0, 1)`` with 53 random bits."""
    return float(np.uint64(u) >> _S11) * _TWO_M53


@njit(cache=True, inline="always")
def shuffle_index(key: np.uint64, t: int) -> np.uint64:
    """The partner ``j`` in ``[0, t]`` that Fisher-Yates step ``t`` swaps with ``t``."""
    return bounded(draw(key, np.uint64(t)), np.uint64(t) + _ONE)


#: The scalar functions both targets compile, in dependency order (each may call the
#: ones before it by its module-global name).
SCALARS = (splitmix64, stream_key, draw, bounded, uniform01, shuffle_index)


@njit(cache=True)
def permutation(key: np.uint64, m: int) -> np.ndarray:
    """The Fisher-Yates permutation of ``m`` items for the stream with key ``key``."""
    perm = np.arange(m)
    _shuffle_into(key, perm)
    return perm


@njit(cache=True, inline="always")
def _shuffle_into(key: np.uint64, perm: np.ndarray) -> None:
    """Shuffle ``perm`` in place (it must hold ``arange(m)``) per the spec."""
    for t in range(perm.shape[0] - 1, 0, -1):
        j = shuffle_index(key, t)
        tmp = perm[t]
        perm[t] = perm[j]
        perm[j] = tmp


def as_seed(seed: int | np.integer) -> np.uint64:
    """Validate a user seed (an integer in ``[0, 2**64)``) and return it as ``numpy.uint64``.

    Raises:
        InputError: (a ValueError) the seed is not an integer or lies outside ``[0, 2**64)``.
    """
    from alignkit.errors import InputError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"the seed must be an integer, got {seed!r}")
    value = int(seed)
    if not 0 <= value < 2**64:
        raise InputError(f"the seed must lie in [0, 2**64), got {value}")
    return np.uint64(value)
