"""Calibration kernels: temperature fitting, choice probabilities, ECE and their resamples.

Every function takes per-triplet similarities ``sims`` ``(N, 3)`` in the order
``[s_ij, s_ik, s_jk]`` (from :func:`alignkit._kernels.similarity.triplet_sims_direct` or
:func:`alignkit._kernels.ooo.triplet_sims`), where ``(i, j)`` is the human's similar pair.
Choice probabilities are ``softmax(T * sims)``; column 0 is the probability of the human's
choice. Sums run in fixed blocks, so results do not depend on the number of threads.
Resamples draw triplet indices from the counter-based streams of :mod:`alignkit._kernels._rng`
(resample ``b`` uses ``stream_key(seed, b)``), as the other bootstrap kernels do.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alignkit._kernels._rng import as_seed, bounded, draw, stream_key

__all__ = [
    "nll_grad_hess",
    "fit_temperature",
    "choice_stats",
    "ece_tally",
    "ece_from_tally",
    "bootstrap_ece_nll",
    "bootstrap_float_means",
    "PAPER_TEMPERATURES",
]

_BLOCK = 1 << 14

#: The temperatures the paper's code searches (``search_temp_scaling.py``), largest first.
PAPER_TEMPERATURES = (1.0, 0.75, 0.5, 0.25, 0.1, 0.075, 0.05, 0.025, 0.01, 0.0075, 0.005,
                      0.0025, 0.001, 0.0005, 0.0001, 0.00005, 0.00001)


@njit(cache=True, inline="always")
def _softmax3(a: float, b: float, c: float, temp: float) -> tuple[float, float, float]:
    x0, x1, x2 = temp * a, temp * b, temp * c
    m = max(x0, max(x1, x2))
    e0, e1, e2 = np.exp(x0 - m), np.exp(x1 - m), np.exp(x2 - m)
    z = e0 + e1 + e2
    return e0 / z, e1 / z, e2 / z


@njit(parallel=True, cache=True, fastmath=False)
def _nll_grad_hess_kernel(sims: np.ndarray, rows: np.ndarray, temp: float) -> tuple[float, float, float]:
    N = rows.shape[0]
    n_blocks = (N + _BLOCK - 1) // _BLOCK
    part = np.zeros((n_blocks, 3))
    for blk in prange(n_blocks):
        f = 0.0
        g = 0.0
        h = 0.0
        for r in range(blk * _BLOCK, min(N, (blk + 1) * _BLOCK)):
            t = rows[r]
            a, b, c = sims[t, 0], sims[t, 1], sims[t, 2]
            p0, p1, p2 = _softmax3(a, b, c, temp)
            x0, x1, x2 = temp * a, temp * b, temp * c
            m = max(x0, max(x1, x2))
            lse = m + np.log(np.exp(x0 - m) + np.exp(x1 - m) + np.exp(x2 - m))
            f += lse - x0
            mean = p0 * a + p1 * b + p2 * c
            g += mean - a
            h += p0 * (a - mean) ** 2 + p1 * (b - mean) ** 2 + p2 * (c - mean) ** 2
        part[blk, 0] = f
        part[blk, 1] = g
        part[blk, 2] = h
    f = 0.0
    g = 0.0
    h = 0.0
    for blk in range(n_blocks):
        f += part[blk, 0]
        g += part[blk, 1]
        h += part[blk, 2]
    return f / N, g / N, h / N


def _rows(sims: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    sims = np.ascontiguousarray(sims, dtype=np.float64)
    if sims.ndim != 2 or sims.shape[1] != 3:
        raise ValueError(f"similarities must be (N, 3), got {sims.shape}")
    if rows is None:
        rows = np.arange(sims.shape[0], dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= sims.shape[0]):
        raise ValueError("row index out of range")
    return sims, rows


def nll_grad_hess(sims: np.ndarray, temperature: float,
                  rows: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean NLL of the human choices at ``temperature`` and its first two derivatives in T.

    ``NLL(T) = mean(logsumexp(T s) - T s_0)``; ``dNLL/dT = mean(E_p[s] - s_0)`` and
    ``d2NLL/dT2 = mean(Var_p[s]) >= 0`` (the NLL is convex in T).
    """
    sims, rows = _rows(sims, rows)
    if rows.size == 0:
        return float("nan"), float("nan"), float("nan")
    return _nll_grad_hess_kernel(sims, rows, float(temperature))


def fit_temperature(sims: np.ndarray, rows: np.ndarray | None = None, *,
                    tol: float = 1e-10, max_iter: int = 200) -> float:
    """The temperature ``T >= 0`` minimising the mean NLL of the human choices.

    The NLL is convex in T, so its minimiser is the root of the (increasing) derivative:
    found by Newton steps kept inside a bracket that bisection shrinks. ``T = 0`` (uniform
    probabilities) when the derivative is not negative at 0 (the similarities predict the
    human choice no better than chance). When the human pair is the most similar in every
    triplet the NLL decreases without end; the T returned is then where its derivative is zero
    in floating point (the probabilities of the human choices are 1 to machine precision).
    """
    sims, rows = _rows(sims, rows)
    if rows.size == 0:
        return float("nan")
    _, g0, _ = _nll_grad_hess_kernel(sims, rows, 0.0)
    if not g0 < 0:
        return 0.0
    lo, hi = 0.0, 1.0 / max(float(np.abs(sims[rows]).max()), 1e-300)
    for _ in range(64):  # expand until the derivative turns positive
        _, g, _ = _nll_grad_hess_kernel(sims, rows, hi)
        if g >= 0:
            break
        lo, hi = hi, hi * 2.0
    else:
        return float(hi)  # (nearly) separable: the NLL keeps decreasing; the largest tried
    t = 0.5 * (lo + hi)
    for _ in range(max_iter):
        _, g, h = _nll_grad_hess_kernel(sims, rows, t)
        if g == 0:
            return float(t)
        if g > 0:
            hi = t
        else:
            lo = t
        step = t - g / h if h > 0 else 0.5 * (lo + hi)
        new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(new - t) <= tol * max(1.0, abs(t)) or hi - lo <= tol * max(1.0, abs(t)):
            return float(new)
        t = new
    return float(t)


@njit(parallel=True, cache=True, fastmath=False)
def _stats_kernel(sims: np.ndarray, temps: np.ndarray, probs: np.ndarray, entropy: np.ndarray,
                  nll: np.ndarray, top: np.ndarray) -> None:
    N = sims.shape[0]
    for t in prange(N):
        p0, p1, p2 = _softmax3(sims[t, 0], sims[t, 1], sims[t, 2], temps[t])
        probs[t, 0] = p0
        probs[t, 1] = p1
        probs[t, 2] = p2
        h = 0.0
        if p0 > 0:
            h -= p0 * np.log(p0)
        if p1 > 0:
            h -= p1 * np.log(p1)
        if p2 > 0:
            h -= p2 * np.log(p2)
        entropy[t] = h
        # -log p0, stably
        x0, x1, x2 = temps[t] * sims[t, 0], temps[t] * sims[t, 1], temps[t] * sims[t, 2]
        m = max(x0, max(x1, x2))
        nll[t] = m + np.log(np.exp(x0 - m) + np.exp(x1 - m) + np.exp(x2 - m)) - x0
        # the most similar pair, from the similarities (a T of 0 leaves them ordered): the
        # first maximum, -1 for a three-way tie (the odd-one-out "paper" tie rule)
        a, b, c = sims[t, 0], sims[t, 1], sims[t, 2]
        if a == b and b == c:
            top[t] = -1
        elif a >= b and a >= c:
            top[t] = 0
        elif b >= c:
            top[t] = 1
        else:
            top[t] = 2


def choice_stats(sims: np.ndarray, temperature: float | np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-triplet probabilities, entropy, NLL and the most probable pair.

    Args:
        sims: ``(N, 3)`` similarities.
        temperature: one T, or one per triplet ``(N,)``.

    Returns:
        ``(probs (N, 3), entropy (N,) in nats, nll (N,) = -log p_0 in nats, top (N,) int8:
        the position of the most similar pair, the first of a two-way tie, -1 for a
        three-way tie)``; the human's pair is position 0, so ``top == 0`` is a correct
        odd-one-out choice under the ``paper`` tie rule.
    """
    sims, _ = _rows(sims, np.empty(0, dtype=np.int64))
    N = sims.shape[0]
    temps = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (N,)).copy()
    probs = np.empty((N, 3))
    entropy = np.empty(N)
    nll = np.empty(N)
    top = np.empty(N, dtype=np.int8)
    _stats_kernel(sims, temps, probs, entropy, nll, top)
    return probs, entropy, nll, top


@njit(cache=True)
def _bin_of(p: float, n_bins: int) -> int:
    """Equal-width bin ``[b / n, (b + 1) / n)`` of ``p`` in ``[0, 1]``; 1.0 in the last."""
    b = int(np.floor(p * n_bins))
    if b > 0 and p < b / n_bins:
        b -= 1
    elif b + 1 < n_bins and p >= (b + 1) / n_bins:
        b += 1
    return min(max(b, 0), n_bins - 1)


@njit(cache=True)
def _bins_kernel(conf: np.ndarray, n_bins: int, out: np.ndarray) -> None:
    for t in range(conf.shape[0]):
        out[t] = _bin_of(conf[t], n_bins)


def ece_tally(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Per-bin counts, summed confidence and summed correctness.

    Bins are equal-width over the maximum probability: ``[b / n_bins, (b + 1) / n_bins)``,
    the last closed at 1 (the paper's code uses the borders ``b / n_bins`` and 1.1).

    Returns:
        ``(bin of each triplet (N,), counts, confidence sums, correct sums)``.
    """
    conf = np.ascontiguousarray(conf, dtype=np.float64)
    bins = np.empty(conf.shape[0], dtype=np.int64)
    _bins_kernel(conf, int(n_bins), bins)
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=np.asarray(correct, dtype=np.float64), minlength=n_bins)
    return bins, counts, conf_sum, hit_sum


def ece_from_tally(counts: np.ndarray, conf_sum: np.ndarray, hit_sum: np.ndarray) -> float:
    """``sum_b (n_b / N) |acc_b - conf_b|`` over the non-empty bins."""
    N = counts.sum()
    if N == 0:
        return float("nan")
    use = counts > 0
    return float(np.sum(np.abs(hit_sum[use] - conf_sum[use])) / N)


@njit(parallel=True, cache=True, fastmath=False)
def _boot_ece_kernel(bins: np.ndarray, conf: np.ndarray, correct: np.ndarray, nll: np.ndarray,
                     n_bins: int, n_boot: int, seed: np.uint64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    N = bins.shape[0]
    n = np.uint64(N)
    ece = np.empty(n_boot)
    mean_nll = np.empty(n_boot)
    acc = np.empty(n_boot)
    for b in prange(n_boot):
        key = stream_key(seed, np.uint64(b))
        cs = np.zeros(n_bins)
        hs = np.zeros(n_bins)
        tot_nll = 0.0
        hits = 0.0
        for i in range(N):
            idx = np.int64(bounded(draw(key, np.uint64(i)), n))
            k = bins[idx]
            cs[k] += conf[idx]
            hs[k] += correct[idx]
            tot_nll += nll[idx]
            hits += correct[idx]
        e = 0.0
        for k in range(n_bins):
            e += abs(hs[k] - cs[k])
        ece[b] = e / N
        mean_nll[b] = tot_nll / N
        acc[b] = hits / N
    return ece, mean_nll, acc


def bootstrap_ece_nll(bins: np.ndarray, conf: np.ndarray, correct: np.ndarray, nll: np.ndarray,
                      n_bins: int, n_boot: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """ECE, mean NLL and accuracy of each bootstrap resample of the triplets (same draws).

    Returns:
        ``(ece, nll, accuracy)``, each float64 ``(n_boot,)``.
    """
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    if bins.size == 0 or n_boot <= 0:
        empty = np.full(max(int(n_boot), 0), np.nan)
        return empty, empty.copy(), empty.copy()
    return _boot_ece_kernel(bins, np.ascontiguousarray(conf, dtype=np.float64),
                            np.ascontiguousarray(correct, dtype=np.float64),
                            np.ascontiguousarray(nll, dtype=np.float64), int(n_bins),
                            int(n_boot), as_seed(seed))


@njit(parallel=True, cache=True, fastmath=False)
def _boot_means_kernel(values: np.ndarray, n_boot: int, seed: np.uint64) -> np.ndarray:
    N, d = values.shape
    n = np.uint64(N)
    out = np.empty((n_boot, d))
    for b in prange(n_boot):
        key = stream_key(seed, np.uint64(b))
        acc = np.zeros(d)
        for i in range(N):
            idx = np.int64(bounded(draw(key, np.uint64(i)), n))
            for j in range(d):
                acc[j] += values[idx, j]
        for j in range(d):
            out[b, j] = acc[j] / N
    return out


def bootstrap_float_means(values: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """Column means of ``values`` ``(N,)`` or ``(N, d)`` in each bootstrap resample of the rows.

    Returns:
        float64 ``(n_boot,)`` or ``(n_boot, d)``.
    """
    v = np.asarray(values, dtype=np.float64)
    flat = v.ndim == 1
    v2 = np.ascontiguousarray(v.reshape(v.shape[0], -1))
    if v2.shape[0] == 0 or n_boot <= 0:
        out = np.full((max(int(n_boot), 0), v2.shape[1]), np.nan)
    else:
        out = _boot_means_kernel(v2, int(n_boot), as_seed(seed))
    return out[:, 0] if flat else out
