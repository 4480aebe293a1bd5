"""Slow, obvious references that the kernel tests compare against.

Each function states the documented definition as plainly as Python allows (arbitrary-precision
integers masked to 64 bits, per-row loops); the kernels must equal them exactly.
"""

from __future__ import annotations

import math

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


# ----------------------------------------------------------------------------- similarities
# One function per similarity, pair by pair, in plain Python floats; a zero row has cosine 0
# and a constant row correlation 0 with everything (themselves included).
def dot(x: np.ndarray, y: np.ndarray) -> float:
    """``<x, y>``."""
    return sum(float(a) * float(b) for a, b in zip(x, y, strict=True))


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    """``<x, y> / (|x| |y|)``, 0 when either row is zero."""
    nx, ny = math.sqrt(dot(x, x)), math.sqrt(dot(y, y))
    return 0.0 if nx == 0.0 or ny == 0.0 else dot(x, y) / (nx * ny)


def euclidean(x: np.ndarray, y: np.ndarray) -> float:
    """The negative distance ``-|x - y|``."""
    return -math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(x, y, strict=True)))


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r: the cosine of the centred rows (0 for a constant row)."""
    mx = sum(float(a) for a in x) / len(x)
    my = sum(float(b) for b in y) / len(y)
    return cosine(np.array([float(a) - mx for a in x]), np.array([float(b) - my for b in y]))


#: The reference of every similarity alignkit registers, by name.
SIMILARITIES = {"dot": dot, "cosine": cosine, "euclidean": euclidean, "correlation": correlation}


def gram(X: np.ndarray, name: str) -> np.ndarray:
    """All pairwise similarities by a double loop over rows."""
    X = np.asarray(X, dtype=np.float64)
    f = SIMILARITIES[name]
    n = X.shape[0]
    return np.array([[f(X[a], X[b]) for b in range(n)] for a in range(n)]).reshape(n, n)


def triplet_sims(X: np.ndarray, T: np.ndarray, name: str) -> np.ndarray:
    """``[s_ij, s_ik, s_jk]`` per triplet, each pair computed on its own."""
    X = np.asarray(X, dtype=np.float64)
    f = SIMILARITIES[name]
    rows = [(f(X[i], X[j]), f(X[i], X[k]), f(X[j], X[k])) for i, j, k in np.asarray(T)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 3)


def decided(sims: np.ndarray, rel: float = 1e-9) -> np.ndarray:
    """Rows that rounding cannot reorder: every two of the three are apart by more than
    ``rel`` (relative), so a kernel's choice must equal the reference's there. (Exactly
    tied rows are left out: a tie the reference finds by coincidence, e.g. cosines of
    proportional rows, need not survive the kernel's rounding; ties built from identical,
    zero or constant rows are exact on both and are checked by the tests themselves.)"""
    s = np.asarray(sims, dtype=np.float64)
    scale = np.maximum(1.0, np.abs(s).max(axis=1))
    ok = np.ones(len(s), dtype=bool)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        ok &= np.abs(s[:, a] - s[:, b]) > rel * scale
    return ok
