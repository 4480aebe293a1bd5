"""Slow, obvious references that the kernel tests compare against.

Each function states the documented definition as plainly as Python allows (arbitrary-precision
integers masked to 64 bits, per-row loops); the kernels must equal them exactly.
"""

from __future__ import annotations

import numpy as np

MASK = (1 << 64) - 1
#: The golden-ratio increment of SplitMix64.
G = 0x9E3779B97F4A7C15


# ----------------------------------------------------------------------------- random streams
def splitmix64(x: int) -> int:
    """SplitMix64 of a Python integer (the spec in docs/architecture.md)."""
    z = (x + G) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def splitmix64_vec(x: np.ndarray) -> np.ndarray:
    """The same over uint64 arrays (numpy wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(G)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """``splitmix64(splitmix64(seed) ^ stream)``: the key of resample/permutation ``stream``."""
    return splitmix64(splitmix64(seed) ^ stream)


def draw(seed: int, stream: int, i: int) -> int:
    """The ``i``-th 64-bit draw of a stream."""
    return splitmix64((stream_key(seed, stream) + i * G) & MASK)


def bounded(u: int, m: int) -> int:
    """``((u >> 32) * m) >> 32``, a draw in ``[0, m)``."""
    return ((u >> 32) * m) >> 32


# ----------------------------------------------------------------------------- odd-one-out
def choices(sims: np.ndarray, ties: str) -> np.ndarray:
    """The model's odd one out per row of ``[s_ij, s_ik, s_jk]``, each tie rule as stated.

    paper (the published code): ``argmin`` over the distances ``-s`` (first minimum), -1 only
    when all three are equal; first (Brain-Score): ``argmax``, the first maximum; any-tie-wrong:
    -1 whenever the maximum is attained more than once. Pair 0 -> 2, 1 -> 1, 2 -> 0.
    """
    out = np.empty(len(sims), dtype=np.int8)
    for t, row in enumerate(np.asarray(sims, dtype=np.float64)):
        n_top = int(np.count_nonzero(row == row.max()))
        if ties == "paper":
            out[t] = -1 if row[0] == row[1] == row[2] else 2 - int(np.argmin(-row))
        elif ties == "first":
            out[t] = 2 - int(np.argmax(row))
        elif ties == "any-tie-wrong":
            out[t] = -1 if n_top > 1 else 2 - int(np.argmax(row))
        else:
            raise ValueError(ties)
    return out


def tie_counts(sims: np.ndarray) -> tuple[int, int]:
    """``(two-way ties, three-way ties)`` at the top of each row."""
    tops = [int(np.count_nonzero(row == row.max())) for row in np.asarray(sims)]
    return tops.count(2), tops.count(3)
