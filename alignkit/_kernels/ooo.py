"""Odd-one-out kernels: triplet similarities, choices, accuracy counts and log-likelihoods.

A triplet row ``i j k`` means the human chose ``k`` as the odd one out, so ``(i, j)`` is the
pair the human judged most similar. Its pair similarities are taken in the fixed order
``[s_ij, s_ik, s_jk]``. The model's odd one out is the item outside the most similar pair and
is reported as a position in the row: pair ``(i, j)`` most similar -> ``2``, ``(i, k)`` ->
``1``, ``(j, k)`` -> ``0``; the model agrees with the human when the choice is ``2``.

Tie rules (a tie = the maximum similarity attained by two or three pairs, exact float64
equality) are defined once in :mod:`alignkit._kernels.ties`: ``"paper"`` (the paper's code:
only a three-way tie is wrong), ``"first"`` (Brain-Score: first maximum) and
``"any-tie-wrong"`` (every tie is wrong; ``"wrong"`` is its deprecated alias). Counting
functions report two-way and three-way ties separately.

Every function takes either a similarity matrix ``S`` (``n x n``, float32/float64, e.g. from
:func:`alignkit._kernels.similarity.gram`) together with the triplets ``T``, or, with
``T=None``, precomputed per-triplet similarities ``sims`` ``(N, 3)`` (the direct path).
Triplets may be int16, int32 or int64 and are never copied. All kernels run in parallel
(``prange``) and give the same result for any number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels import ties as _ties
from alignkit._kernels.similarity import check_triplets

__all__ = [
    "TIE_RULES",
    "ooo_tally",
    "rounded32",
    "use_two_precision",
    "triplet_sims",
    "ooo_choices",
    "ooo_correct",
    "ooo_counts",
    "ooo_choices_sims",
    "ooo_correct_sims",
    "ooo_counts_sims",
    "choice_logprobs",
    "choice_logprobs_sims",
    "triplet_nll",
    "triplet_nll_sims",
]

TIE_RULES = tuple(_ties.TIE_RULES)
_BLOCK = 1 << 14  # fixed reduction block: float sums do not depend on the thread count


def _tie_mode(ties: str) -> int:
    return _ties.tie_mode(ties)


_choice = njit(cache=True, inline="always")(_ties.choice)
_top_count = njit(cache=True, inline="always")(_ties.top_count)
_hit = njit(cache=True, inline="always")(_ties.hit)


def tally(a: float, b: float, c: float, mode: int) -> tuple[np.int64, np.int64, np.int64]:
    """One triplet's ``(correct, two-way tie, three-way tie)`` as int64 0/1, branch-free.

    Plain Python, compiled here with ``njit`` and by :mod:`alignkit._kernels._cuda_ooo` with
    ``numba.cuda.jit(device=True)`` (``_hit`` and ``_top_count`` bound to that target's tie
    functions), so every counting kernel on either target counts alike. Branch-free
    (:func:`alignkit._kernels.ties.hit`): mispredicted branches would stall the random
    gathers of the counting pass (1.8x faster on 4.7M triplets).
    """
    n_top = _top_count(a, b, c)
    return np.int64(_hit(a, b, c, mode)), np.int64(n_top == 2), np.int64(n_top == 3)


_tally = njit(cache=True, inline="always")(tally)


@njit(cache=True, inline="always")
def _gather(S: np.ndarray, T: np.ndarray, t: int) -> tuple[float, float, float]:
    i = np.int64(T[t, 0])
    j = np.int64(T[t, 1])
    k = np.int64(T[t, 2])
    return np.float64(S[i, j]), np.float64(S[i, k]), np.float64(S[j, k])


@njit(parallel=True, cache=True, fastmath=False)
def _gather_kernel(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    N = T.shape[0]
    out = np.empty((N, 3), dtype=np.float64)
    for t in prange(N):
        a, b, c = _gather(S, T, t)
        out[t, 0] = a
        out[t, 1] = b
        out[t, 2] = c
    return out


@njit(parallel=True, cache=True, fastmath=False)
def _choices_kernel(S: np.ndarray, T: np.ndarray, mode: int, out: np.ndarray) -> None:
    """Writes each triplet's choice into ``out`` (counts come from :func:`_counts_kernel`)."""
    for t in prange(T.shape[0]):
        a, b, c = _gather(S, T, t)
        out[t] = _choice(a, b, c, mode)


@njit(parallel=True, cache=True, fastmath=False)
def _counts_kernel(S: np.ndarray, T: np.ndarray, mode: int, out: np.ndarray) -> tuple[int, int, int]:
    """Counts ``(n_correct, n_two_way_ties, n_three_way_ties)``; writes per-triplet correctness
    when ``out`` is not empty. Each triplet is counted by :func:`tally` (branch-free)."""
    write = out.shape[0] > 0
    n_correct = 0
    n_tie2 = 0
    n_tie3 = 0
    for t in prange(T.shape[0]):
        a, b, c = _gather(S, T, t)
        h, t2, t3 = _tally(a, b, c, mode)
        if write:
            out[t] = h
        n_correct += h
        n_tie2 += t2
        n_tie3 += t3
    return n_correct, n_tie2, n_tie3


@njit(cache=True, inline="always")
def _gather2(S32: np.ndarray, S: np.ndarray, T: np.ndarray, t: int) -> tuple[float, float, float]:
    """A triplet's similarities from the float32 rounding ``S32`` of ``S``, or from ``S``
    itself when two of the rounded values are equal.

    Rounding to float32 is monotone (``a <= b`` implies ``fl(a) <= fl(b)``), so three
    distinct rounded values are ordered as the exact ones and hold no tie: every decision
    of :func:`tally` and :func:`_choice` is then the same on either. Only an equality
    between rounded values leaves the order open, and those triplets are read again in
    float64. The result is exactly that of :func:`_gather` on ``S``; the float32 matrix
    takes half the memory traffic of the random reads.
    """
    i = np.int64(T[t, 0])
    j = np.int64(T[t, 1])
    k = np.int64(T[t, 2])
    a = S32[i, j]
    b = S32[i, k]
    c = S32[j, k]
    if a == b or a == c or b == c:
        return np.float64(S[i, j]), np.float64(S[i, k]), np.float64(S[j, k])
    return np.float64(a), np.float64(b), np.float64(c)


@njit(parallel=True, cache=True, fastmath=False)
def _counts2_kernel(S32: np.ndarray, S: np.ndarray, T: np.ndarray, mode: int,
                    out: np.ndarray) -> tuple[int, int, int]:
    """:func:`_counts_kernel` reading :func:`_gather2` (the same counts, bit for bit)."""
    write = out.shape[0] > 0
    n_correct = 0
    n_tie2 = 0
    n_tie3 = 0
    for t in prange(T.shape[0]):
        a, b, c = _gather2(S32, S, T, t)
        h, t2, t3 = _tally(a, b, c, mode)
        if write:
            out[t] = h
        n_correct += h
        n_tie2 += t2
        n_tie3 += t3
    return n_correct, n_tie2, n_tie3


@njit(parallel=True, cache=True, fastmath=False)
def _choices2_kernel(S32: np.ndarray, S: np.ndarray, T: np.ndarray, mode: int,
                     out: np.ndarray) -> tuple[int, int, int]:
    """Each triplet's choice into ``out`` and the counts, reading :func:`_gather2`."""
    n_correct = 0
    n_tie2 = 0
    n_tie3 = 0
    for t in prange(T.shape[0]):
        a, b, c = _gather2(S32, S, T, t)
        out[t] = _choice(a, b, c, mode)
        h, t2, t3 = _tally(a, b, c, mode)
        n_correct += h
        n_tie2 += t2
        n_tie3 += t3
    return n_correct, n_tie2, n_tie3


@njit(parallel=True, cache=True)
def _round32(S: np.ndarray) -> np.ndarray:
    n, m = S.shape
    out = np.empty((n, m), dtype=np.float32)
    for r in prange(n):
        for c in range(m):
            out[r, c] = np.float32(S[r, c])
    return out


def rounded32(S: np.ndarray) -> np.ndarray:
    """The float32 rounding of a float64 similarity matrix (the companion of the
    ``*_two_precision`` functions)."""
    S = np.ascontiguousarray(_check_S(S), dtype=np.float64)
    return _round32(S)


#: Fewest triplets per matrix entry for which reading a float32 copy pays for making it.
TWO_PRECISION_MIN_RATIO = 0.25
#: Smallest matrix (rows) whose float64 random reads miss the caches enough to gain.
TWO_PRECISION_MIN_ROWS = 1024


def use_two_precision(n: int, n_triplets: int) -> bool:
    """Whether :func:`ooo_tally` reads a float32 copy first for ``n`` objects."""
    return n >= TWO_PRECISION_MIN_ROWS and n_triplets >= TWO_PRECISION_MIN_RATIO * n * n


def ooo_tally(S: np.ndarray, T: np.ndarray, ties: str = "paper", *, correct: bool = False,
              choices: bool = False, S32: np.ndarray | None = None
              ) -> tuple[int, int, int, np.ndarray | None, np.ndarray | None]:
    """Counts, and per-triplet correctness and/or choices, in one pass over the triplets.

    With ``S32`` (the float32 rounding of ``S``, :func:`rounded32`), triplets are read
    from it and only those with two equal rounded values from ``S``: the results equal
    those from ``S`` alone exactly (see :func:`_gather2`).

    Returns:
        ``(n_correct, n_two_way_ties, n_three_way_ties, correct or None, choices or None)``
        where ``correct`` is uint8 0/1 and ``choices`` int8 positions (-1: a tie wrong by
        rule); ``correct`` is ``choices == 2`` when both are asked for.
    """
    mode = _tie_mode(ties)
    S, T = _inputs(S, T)
    assert T is not None
    if S32 is not None and (S32.shape != S.shape or S32.dtype != np.float32):
        raise ValueError(f"S32 must be float32 {S.shape}, got {S32.dtype} {S32.shape}")
    N = T.shape[0]
    if N == 0:
        return (0, 0, 0, np.empty(0, np.uint8) if correct else None,
                np.empty(0, np.int8) if choices else None)
    ch = cor = None
    if choices:
        ch = np.empty(N, dtype=np.int8)
        if S32 is None:
            _choices_kernel(S, T, mode, ch)
            n_c, n2, n3 = _counts_kernel(S, T, mode, np.empty(0, dtype=np.uint8))
        else:
            n_c, n2, n3 = _choices2_kernel(S32, S, T, mode, ch)
        if correct:
            cor = (ch == 2).astype(np.uint8)
    else:
        out = np.empty(N if correct else 0, dtype=np.uint8)
        if S32 is None:
            n_c, n2, n3 = _counts_kernel(S, T, mode, out)
        else:
            n_c, n2, n3 = _counts2_kernel(S32, S, T, mode, out)
        cor = out if correct else None
    return int(n_c), int(n2), int(n3), cor, ch


@njit(parallel=True, cache=True, fastmath=False)
def _counts_sims_kernel(sims: np.ndarray, mode: int, out: np.ndarray) -> tuple[int, int, int]:
    """:func:`_counts_kernel` over precomputed similarities ``(N, 3)``."""
    write = out.shape[0] > 0
    n_correct = 0
    n_tie2 = 0
    n_tie3 = 0
    for t in prange(sims.shape[0]):
        a = sims[t, 0]
        b = sims[t, 1]
        c = sims[t, 2]
        h, t2, t3 = _tally(a, b, c, mode)
        if write:
            out[t] = h
        n_correct += h
        n_tie2 += t2
        n_tie3 += t3
    return n_correct, n_tie2, n_tie3


@njit(parallel=True, cache=True, fastmath=False)
def _choices_sims_kernel(sims: np.ndarray, mode: int, out: np.ndarray) -> None:
    """:func:`_choices_kernel` over precomputed similarities ``(N, 3)``."""
    for t in prange(sims.shape[0]):
        out[t] = _choice(sims[t, 0], sims[t, 1], sims[t, 2], mode)


@njit(cache=True, inline="always")
def _log_softmax3(a: float, b: float, c: float, temp: float) -> tuple[float, float, float]:
    """Stable ``log softmax(temp * [a, b, c])``: max-subtracted, ``log1p`` of the rest."""
    x0 = temp * a
    x1 = temp * b
    x2 = temp * c
    if x0 >= x1 and x0 >= x2:
        m = x0
        rest = np.exp(x1 - m) + np.exp(x2 - m)
    elif x1 >= x2:
        m = x1
        rest = np.exp(x0 - m) + np.exp(x2 - m)
    else:
        m = x2
        rest = np.exp(x0 - m) + np.exp(x1 - m)
    lse = np.log1p(rest)
    return (x0 - m) - lse, (x1 - m) - lse, (x2 - m) - lse


@njit(parallel=True, cache=True, fastmath=False)
def _logprob_kernel(S: np.ndarray, T: np.ndarray, temp: float, out: np.ndarray) -> float:
    """Mean of ``-logprob[:, 0]``; also writes all log-probabilities when ``out`` is not empty.

    The sum runs in fixed blocks, so it does not depend on the number of threads.
    """
    N = T.shape[0]
    write = out.shape[0] > 0
    n_blocks = (N + _BLOCK - 1) // _BLOCK
    partial = np.zeros(n_blocks)
    for blk in prange(n_blocks):
        acc = 0.0
        for t in range(blk * _BLOCK, min(N, (blk + 1) * _BLOCK)):
            a, b, c = _gather(S, T, t)
            l0, l1, l2 = _log_softmax3(a, b, c, temp)
            if write:
                out[t, 0] = l0
                out[t, 1] = l1
                out[t, 2] = l2
            acc -= l0
        partial[blk] = acc
    total = 0.0
    for blk in range(n_blocks):
        total += partial[blk]
    return total / N if N > 0 else np.nan


@njit(parallel=True, cache=True, fastmath=False)
def _logprob_sims_kernel(sims: np.ndarray, temp: float, out: np.ndarray) -> float:
    """:func:`_logprob_kernel` over precomputed similarities ``(N, 3)``."""
    N = sims.shape[0]
    write = out.shape[0] > 0
    n_blocks = (N + _BLOCK - 1) // _BLOCK
    partial = np.zeros(n_blocks)
    for blk in prange(n_blocks):
        acc = 0.0
        for t in range(blk * _BLOCK, min(N, (blk + 1) * _BLOCK)):
            l0, l1, l2 = _log_softmax3(sims[t, 0], sims[t, 1], sims[t, 2], temp)
            if write:
                out[t, 0] = l0
                out[t, 1] = l1
                out[t, 2] = l2
            acc -= l0
        partial[blk] = acc
    total = 0.0
    for blk in range(n_blocks):
        total += partial[blk]
    return total / N if N > 0 else np.nan


def _check_S(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"the similarity matrix must be square (n, n), got shape {S.shape}")
    if S.dtype not in (np.float32, np.float64):
        S = S.astype(np.float64)
    return S


def _check_sims(sims: np.ndarray) -> np.ndarray:
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[1] != 3:
        raise ValueError(f"triplet similarities must be an (N, 3) array, got shape {sims.shape}")
    if sims.dtype not in (np.float32, np.float64):
        sims = sims.astype(np.float64)
    return sims


def _inputs(S: np.ndarray, T: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if T is None:
        return _check_sims(S), None
    S = _check_S(S)
    return S, check_triplets(T, S.shape[0])


def _counts(
    S: np.ndarray, T: np.ndarray | None, mode: int, out: np.ndarray
) -> tuple[int, int, int]:
    if (S.shape[0] if T is None else T.shape[0]) == 0:
        return 0, 0, 0
    if T is None:
        n_correct, n_tie2, n_tie3 = _counts_sims_kernel(S, mode, out)
    else:
        n_correct, n_tie2, n_tie3 = _counts_kernel(S, T, mode, out)
    return int(n_correct), int(n_tie2), int(n_tie3)


def _logprob(S: np.ndarray, T: np.ndarray | None, temperature: float, out: np.ndarray) -> float:
    if (S.shape[0] if T is None else T.shape[0]) == 0:
        return float("nan")
    if T is None:
        return float(_logprob_sims_kernel(S, temperature, out))
    return float(_logprob_kernel(S, T, temperature, out))


def triplet_sims(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Gather ``[s_ij, s_ik, s_jk]`` for every triplet from a similarity matrix.

    Args:
        S: ``(n, n)`` similarity matrix (float32 or float64).
        T: triplets ``(N, 3)``, int16/int32/int64, 0-based, odd one out last.

    Returns:
        float64 ``(N, 3)``.
    """
    S, T = _inputs(S, T)
    return _gather_kernel(S, T)


def ooo_choices(S: np.ndarray, T: np.ndarray | None, ties: str = "paper") -> np.ndarray:
    """The model's odd one out per triplet, as a position ``0``, ``1``, ``2`` (``-1``: tie).

    Args:
        S: similarity matrix ``(n, n)``, or per-triplet similarities ``(N, 3)`` when ``T``
            is None.
        T: triplets ``(N, 3)`` or None.
        ties: a tie rule of :data:`alignkit._kernels.ties.TIE_RULES`: ``"paper"`` (a
            three-way tie gives ``-1``, a two-way tie the first pair), ``"first"`` (first
            maximum) or ``"any-tie-wrong"`` (every tie gives ``-1``).

    Returns:
        int8 ``(N,)``.

    Example:
        >>> import numpy as np
        >>> S = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
        >>> ooo_choices(S, np.array([[0, 1, 2], [2, 0, 1]])).tolist()
        [2, 0]
    """
    mode = _tie_mode(ties)
    S, T = _inputs(S, T)
    out = np.empty(S.shape[0] if T is None else T.shape[0], dtype=np.int8)
    if out.shape[0] == 0:
        return out
    if T is None:
        _choices_sims_kernel(S, mode, out)
    else:
        _choices_kernel(S, T, mode, out)
    return out


def ooo_correct(S: np.ndarray, T: np.ndarray | None, ties: str = "paper") -> np.ndarray:
    """Per-triplet agreement with the human (choice == 2) as uint8 ``(N,)`` of 0/1.

    Arguments as in :func:`ooo_choices`.
    """
    mode = _tie_mode(ties)
    S, T = _inputs(S, T)
    out = np.empty(S.shape[0] if T is None else T.shape[0], dtype=np.uint8)
    _counts(S, T, mode, out)
    return out


def ooo_counts(
    S: np.ndarray, T: np.ndarray | None, ties: str = "paper"
) -> tuple[int, int, int]:
    """Triplets the model gets right, two-way ties and three-way ties, in one fused pass.

    A two-way tie is a maximum similarity attained by exactly two pairs, a three-way tie one
    attained by all three; they are counted whatever the tie rule (under ``"paper"`` and
    ``"first"`` a two-way tie can still count as correct). No per-triplet array is
    allocated. Arguments as in :func:`ooo_choices`.

    Returns:
        ``(n_correct, n_two_way_ties, n_three_way_ties)``; zeros for no triplets.
    """
    mode = _tie_mode(ties)
    S, T = _inputs(S, T)
    return _counts(S, T, mode, np.empty(0, dtype=np.uint8))


def ooo_choices_sims(sims: np.ndarray, ties: str = "paper") -> np.ndarray:
    """:func:`ooo_choices` from per-triplet similarities ``(N, 3)``."""
    return ooo_choices(sims, None, ties)


def ooo_correct_sims(sims: np.ndarray, ties: str = "paper") -> np.ndarray:
    """:func:`ooo_correct` from per-triplet similarities ``(N, 3)``."""
    return ooo_correct(sims, None, ties)


def ooo_counts_sims(sims: np.ndarray, ties: str = "paper") -> tuple[int, int, int]:
    """:func:`ooo_counts` from per-triplet similarities ``(N, 3)``."""
    return ooo_counts(sims, None, ties)


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not np.isfinite(temperature):
        raise ValueError(f"the temperature must be finite, got {temperature}")
    return temperature


def choice_logprobs(S: np.ndarray, T: np.ndarray | None, temperature: float = 1.0) -> np.ndarray:
    """Log choice probabilities ``log softmax(temperature * [s_ij, s_ik, s_jk])`` per triplet.

    Column 0 is the log-probability that ``(i, j)`` is the most similar pair (the human's
    choice), i.e. that ``k`` is the odd one out. Computed stably (maximum subtracted,
    ``log1p`` of the remaining terms), finite whenever ``temperature * s`` is.

    Args:
        S: similarity matrix ``(n, n)``, or per-triplet similarities ``(N, 3)`` when ``T``
            is None.
        T: triplets ``(N, 3)`` or None.
        temperature: the inverse temperature multiplying the similarities.

    Returns:
        float64 ``(N, 3)``.
    """
    temperature = _check_temperature(temperature)
    S, T = _inputs(S, T)
    out = np.empty((S.shape[0] if T is None else T.shape[0], 3), dtype=np.float64)
    _logprob(S, T, temperature, out)
    return out


def choice_logprobs_sims(sims: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """:func:`choice_logprobs` from per-triplet similarities ``(N, 3)``."""
    return choice_logprobs(sims, None, temperature)


def triplet_nll(S: np.ndarray, T: np.ndarray | None, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the human choices, ``mean(-choice_logprobs[:, 0])``.

    Fused (no per-triplet array) and summed in fixed blocks, so the value does not depend
    on the number of threads. Arguments as in :func:`choice_logprobs`.

    Returns:
        The mean NLL in nats; ``nan`` for no triplets.
    """
    temperature = _check_temperature(temperature)
    S, T = _inputs(S, T)
    return _logprob(S, T, temperature, np.empty((0, 3), dtype=np.float64))


def triplet_nll_sims(sims: np.ndarray, temperature: float = 1.0) -> float:
    """:func:`triplet_nll` from per-triplet similarities ``(N, 3)``."""
    return triplet_nll(sims, None, temperature)
