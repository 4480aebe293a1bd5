"""CUDA twins of the hot CPU kernels, as host functions taking and returning numpy arrays.

Each function reproduces the semantics of its CPU counterpart exactly:

===================================  ===============================================
CUDA                                  CPU (:mod:`alignkit._kernels`)
===================================  ===============================================
:func:`ooo_counts_cuda`               ``ooo.ooo_counts(S, T, ties)``
:func:`ooo_choices_cuda`              ``ooo.ooo_choices(S, T, ties)``
:func:`ooo_counts_direct_cuda`        ``ooo.ooo_counts(triplet_sims_direct(X, T, sim), None, ties)``
:func:`ooo_choices_direct_cuda`       ``ooo.ooo_choices(triplet_sims_direct(X, T, sim), None, ties)``
:func:`choice_logprobs_cuda`          ``ooo.choice_logprobs(S, T, temperature)``
:func:`triplet_nll_cuda`              ``ooo.triplet_nll(S, T, temperature)``
:func:`bootstrap_means_cuda`          ``bootstrap.bootstrap_means(correct, n_boot, seed)``
:func:`pearson_cuda`                  ``rank.pearson(a, b)``
:func:`rsa_permutation_ranks_cuda`    the null of ``rsa.rsa_permutation`` on ranks
===================================  ===============================================

Counts and choices are identical to the CPU's (the similarities are the same float64
numbers: gathered from the same matrix, or on the direct path summed in the CPU's order
with unfused multiplies); the bootstrap draws the same
resamples bit for bit (shared counter-based RNG), so its accuracies are identical; float
reductions (NLL, Pearson, permutation null) agree to rounding (about 1e-15 relative) and are
deterministic for a given GPU.

Large inputs (``S``, ``T``, ``X``) may also be passed as device arrays (``numba.cuda``
device arrays or any object with ``__cuda_array_interface__``, e.g. CuPy or torch CUDA
tensors); they are then used in place, without a transfer, and are not range-checked.

This module imports :mod:`numba.cuda`; import it only when the CUDA device is selected
(:func:`alignkit._kernels.device.resolve_device`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import config as _numba_config
from numba import cuda

from alignkit._kernels import _cuda_kernels as _K
from alignkit._kernels import ties as _ties
from alignkit._kernels._rng import as_seed
from alignkit._kernels.similarity import SIMILARITIES, check_triplets, prepare_rows

__all__ = [
    "LaunchConfig",
    "launch_config",
    "cuda_available",
    "ooo_counts_cuda",
    "ooo_choices_cuda",
    "ooo_counts_direct_cuda",
    "ooo_choices_direct_cuda",
    "choice_logprobs_cuda",
    "triplet_nll_cuda",
    "bootstrap_means_cuda",
    "pearson_cuda",
    "rsa_permutation_ranks_cuda",
]

_INT32_LIMIT = 2**31 - 2**24  # counts below this loop in int32 (room for the grid stride)


@dataclass(frozen=True)
class LaunchConfig:
    """Launch geometry shared by every kernel.

    Attributes:
        threads: threads per block (a power of two, at most ``MAX_THREADS``).
        blocks: the most blocks a grid-stride launch uses (enough to fill the GPU).
        simulator: whether the kernels run under the CUDA simulator.
    """

    threads: int
    blocks: int
    simulator: bool


@functools.cache
def launch_config() -> LaunchConfig:
    """The launch geometry for the current device (small grids under the simulator)."""
    if _numba_config.ENABLE_CUDASIM:
        # every simulated thread is a Python thread: keep blocks small
        return LaunchConfig(threads=32, blocks=2, simulator=True)
    sms = int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return LaunchConfig(threads=256, blocks=8 * sms, simulator=False)


def cuda_available() -> bool:
    """Whether ``numba.cuda`` can run kernels here (a GPU and driver, or the simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken driver install means "not available"
        return False


# --------------------------------------------------------------------------- helpers


def _is_device(a: Any) -> bool:
    return not isinstance(a, np.ndarray) and (
        hasattr(a, "copy_to_host") or hasattr(a, "__cuda_array_interface__")
    )


def _device(a: Any) -> Any:
    """``a`` on the device: device arrays as they are, host arrays copied (C order)."""
    if _is_device(a):
        return a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a))


def _index(n: int) -> tuple[Any, int]:
    """The loop bound as the kernel integer type, and that type's family (32 or 64 bits)."""
    if n < _INT32_LIMIT:
        return np.int32(n), 32
    return np.int64(n), 64


def _grid(n_items: int, per_block: int) -> int:
    cfg = launch_config()
    return max(1, min(cfg.blocks, -(-n_items // per_block)))


def _tie_mode(ties: str) -> int:
    return _ties.tie_mode(ties)


def _square(S: Any) -> Any:
    """Validate a similarity matrix and return it on the device."""
    if _is_device(S):
        if len(S.shape) != 2 or S.shape[0] != S.shape[1]:
            raise ValueError(f"the similarity matrix must be square (n, n), got shape {S.shape}")
        if np.dtype(S.dtype) not in (np.float32, np.float64):
            raise ValueError(f"a device similarity matrix must be float32/64, got {S.dtype}")
        return _device(S)
    S = np.asarray(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"the similarity matrix must be square (n, n), got shape {S.shape}")
    if S.dtype not in (np.float32, np.float64):
        S = S.astype(np.float64)
    return _device(S)


def _triplets(T: Any, n: int) -> Any:
    """Validate triplets (host arrays: shape, dtype and range) and return them on the device."""
    if _is_device(T):
        if len(T.shape) != 2 or T.shape[1] != 3:
            raise ValueError(f"triplets must be an (N, 3) array, got shape {T.shape}")
        if not np.issubdtype(np.dtype(T.dtype), np.integer):
            raise ValueError(f"triplets must hold integers, got dtype {T.dtype}")
        return _device(T)
    return _device(check_triplets(T, n))


def _counts_out() -> Any:
    """``[n_correct, n_two_way_ties, n_three_way_ties]`` on the device."""
    return cuda.to_device(np.zeros(3, dtype=np.int64))


# --------------------------------------------------------------------------- odd-one-out


def ooo_counts_cuda(S: Any, T: Any, ties: str = "paper") -> tuple[int, int, int]:
    """Triplets the model gets right, two-way and three-way ties, on the GPU.

    Args:
        S: similarity matrix ``(n, n)``, float32 or float64 (host or device array).
        T: triplets ``(N, 3)``, int16/int32/int64, 0-based, odd one out last.
        ties: a tie rule of :data:`alignkit._kernels.ties.TIE_RULES` (``"paper"``,
            ``"first"``, ``"any-tie-wrong"``).

    Returns:
        ``(n_correct, n_two_way_ties, n_three_way_ties)``, equal to
        ``ooo.ooo_counts(S, T, ties)``; ties are counted whatever the rule.
    """
    mode = _tie_mode(ties)
    dS = _square(S)
    dT = _triplets(T, dS.shape[0])
    N = dT.shape[0]
    if N == 0:
        return 0, 0, 0
    n, bits = _index(N)
    cfg = launch_config()
    out = _counts_out()
    _K.kernels(bits).ooo_counts_gram[_grid(N, cfg.threads), cfg.threads](dS, dT, n, mode, out)
    res = out.copy_to_host()
    return int(res[0]), int(res[1]), int(res[2])


def ooo_choices_cuda(S: Any, T: Any, ties: str = "paper") -> np.ndarray:
    """The model's odd one out per triplet (int8 position 0, 1, 2; -1 = tie), on the GPU.

    Arguments as in :func:`ooo_counts_cuda`; equal to ``ooo.ooo_choices(S, T, ties)``.
    """
    mode = _tie_mode(ties)
    dS = _square(S)
    dT = _triplets(T, dS.shape[0])
    N = dT.shape[0]
    if N == 0:
        return np.empty(0, dtype=np.int8)
    n, bits = _index(N)
    cfg = launch_config()
    out = cuda.device_array(N, dtype=np.int8)
    _K.kernels(bits).ooo_choices_gram[_grid(N, cfg.threads), cfg.threads](dS, dT, n, mode, out)
    return out.copy_to_host()


def _direct_inputs(X: Any, similarity: str) -> tuple[Any, Any]:
    """Feature rows and per-row factors ``(n,)`` for the direct kernel, on the device.

    The rows and factors are the CPU's (:func:`alignkit._kernels.similarity.prepare_rows`, as
    the similarity's registry entry declares them). Rows that are not centred go as they are
    when float32/float64 (the kernel widens each element to float64, exactly as the CPU's
    cast does); a device array is copied to the host only when its row factors are needed.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}"
        )
    sim = SIMILARITIES[similarity]
    if _is_device(X):
        dX = _device(X)
        if len(dX.shape) != 2:
            raise ValueError(f"features must be a 2-D array (n, p), got shape {dX.shape}")
        if np.dtype(dX.dtype) not in (np.float32, np.float64):
            raise ValueError(f"device features must be float32/float64, got {dX.dtype}")
        if not sim.centre_rows and sim.row_factor == "one":
            return dX, cuda.to_device(np.ones(dX.shape[0]))
        host = dX.copy_to_host()  # n x p: the row factors are computed as on the CPU
    else:
        dX = None
        host = np.asarray(X)
        if host.ndim != 2:
            raise ValueError(f"features must be a 2-D array (n, p), got shape {host.shape}")
    Y, f = prepare_rows(host, similarity)
    if sim.centre_rows:  # the centred float64 rows
        return cuda.to_device(Y), cuda.to_device(f)
    if dX is None:
        if host.dtype not in (np.float32, np.float64):
            host = host.astype(np.float64)
        dX = _device(host)
    return dX, cuda.to_device(f)


def _direct(X: Any, T: Any, similarity: str, ties: str, want_choices: bool) -> tuple[Any, Any]:
    mode = _tie_mode(ties)
    dX, df = _direct_inputs(X, similarity)
    dT = _triplets(T, dX.shape[0])
    N = dT.shape[0]
    if N == 0:
        return np.zeros(3, dtype=np.int64), np.empty(0, dtype=np.int8)
    n, bits = _index(N)
    cfg = launch_config()
    per_block = cfg.threads // _K.LANES
    choices = cuda.device_array(N if want_choices else 0, dtype=np.int8)
    out = _counts_out()
    _K.direct_kernel(similarity, bits)[_grid(N, per_block), cfg.threads](
        dX, df, dT, n, mode, choices, out
    )
    return out.copy_to_host(), (choices.copy_to_host() if want_choices else None)


def ooo_counts_direct_cuda(
    X: Any, T: Any, similarity: str = "dot", ties: str = "paper"
) -> tuple[int, int, int]:
    """Odd-one-out counts straight from features, without an ``n x n`` matrix, on the GPU.

    Each triplet's three similarities are float64 dot products of feature rows computed by a
    team of eight threads (coalesced row reads), scaled exactly as the CPU's direct path does.

    Args:
        X: features ``(n, p)`` (float32/float64 used as they are; other dtypes cast to
            float64), host or device array.
        T: triplets ``(N, 3)``, int16/int32/int64.
        similarity: ``"dot"``, ``"cosine"``, ``"euclidean"`` (negative distance) or
            ``"correlation"``.
        ties: a tie rule (``"paper"``, ``"first"``, ``"any-tie-wrong"``).

    Returns:
        ``(n_correct, n_two_way_ties, n_three_way_ties)``, equal to the CPU's
        ``ooo_counts(triplet_sims_direct(X, T, similarity), None, ties)``: the dot products
        are summed in the CPU's order with unfused multiplies, so the similarities, and the
        ties, are the CPU's bit for bit.
    """
    counts, _ = _direct(X, T, similarity, ties, want_choices=False)
    return int(counts[0]), int(counts[1]), int(counts[2])


def ooo_choices_direct_cuda(
    X: Any, T: Any, similarity: str = "dot", ties: str = "paper"
) -> np.ndarray:
    """Per-triplet choices (int8) from features; arguments as in :func:`ooo_counts_direct_cuda`."""
    _, choices = _direct(X, T, similarity, ties, want_choices=True)
    return choices


def _temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not math.isfinite(temperature):
        raise ValueError(f"the temperature must be finite, got {temperature}")
    return temperature


def choice_logprobs_cuda(S: Any, T: Any, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(temperature * [s_ij, s_ik, s_jk])`` per triplet, float64 ``(N, 3)``.

    The same stable formula as the CPU (maximum subtracted, ``log1p`` of the rest).
    """
    temp = _temperature(temperature)
    dS = _square(S)
    dT = _triplets(T, dS.shape[0])
    N = dT.shape[0]
    if N == 0:
        return np.empty((0, 3), dtype=np.float64)
    n, bits = _index(N)
    cfg = launch_config()
    out = cuda.device_array((N, 3), dtype=np.float64)
    _K.kernels(bits).logprobs_gram[_grid(N, cfg.threads), cfg.threads](dS, dT, n, temp, out)
    return out.copy_to_host()


def triplet_nll_cuda(S: Any, T: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the human choices (pair ``(i, j)``), on the GPU.

    Fused: per-block partial sums, added on the host in a fixed order (deterministic).

    Returns:
        The mean NLL in nats; ``nan`` for no triplets.
    """
    temp = _temperature(temperature)
    dS = _square(S)
    dT = _triplets(T, dS.shape[0])
    N = dT.shape[0]
    if N == 0:
        return float("nan")
    n, bits = _index(N)
    cfg = launch_config()
    grid = _grid(N, cfg.threads)
    partial = cuda.device_array(grid, dtype=np.float64)
    _K.kernels(bits).nll_gram[grid, cfg.threads](dS, dT, n, temp, partial)
    return float(math.fsum(partial.copy_to_host()) / N)


# --------------------------------------------------------------------------- bootstrap


def _pack_bits32(correct: np.ndarray) -> np.ndarray:
    """Bit-pack a 0/1 vector little-endian into uint32 words (bit ``i`` = ``correct[i]``)."""
    bits = np.packbits(np.asarray(correct).astype(np.uint8) != 0, bitorder="little")
    pad = (-bits.size) % 4
    if pad or bits.size == 0:
        bits = np.concatenate([bits, np.zeros(pad if bits.size else 4, dtype=np.uint8)])
    return bits.view("<u4").astype(np.uint32)


def bootstrap_means_cuda(correct: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Accuracy of ``n_boot`` resamples (with replacement) of per-triplet correctness.

    Resample ``b`` takes as its ``i``-th index ``bounded(draw(stream_key(seed, b), i), N)``
    (the shared RNG spec), so the counts, and hence the accuracies ``count / N``, are
    identical to the CPU's ``bootstrap_means``.

    Args:
        correct: ``(N,)`` 0/1 (uint8 or bool) per-triplet correctness.
        n_boot: number of resamples.
        seed: integer in ``[0, 2**64)``.

    Returns:
        float64 ``(n_boot,)``; all ``nan`` when ``N == 0``.
    """
    correct = np.asarray(correct)
    if correct.ndim != 1:
        raise ValueError(f"correctness must be a 1-D array, got shape {correct.shape}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    seed64 = as_seed(seed)
    N = correct.shape[0]
    if N >= 2**32:
        raise ValueError(f"at most 2**32 - 1 items can be resampled, got {N}")
    if n_boot == 0:
        return np.empty(0, dtype=np.float64)
    if N == 0:
        return np.full(n_boot, np.nan)
    cfg = launch_config()
    # split a resample over several blocks when there are few resamples (fill the GPU)
    target_units = 4 * cfg.blocks
    chunks = max(1, min(-(-target_units // n_boot), -(-N // (64 * cfg.threads))))
    chunk_len = -(-N // chunks)
    n, bits = _index(N)
    counts = cuda.to_device(np.zeros(n_boot, dtype=np.uint64))
    grid = max(1, min(cfg.blocks, n_boot * chunks))
    _K.kernels(bits).bootstrap_counts[grid, cfg.threads](
        cuda.to_device(_pack_bits32(correct)),
        n,
        np.int64(n_boot),
        np.int64(chunks),
        np.int64(chunk_len),
        _K.seed_hash_host(int(seed64)),
        counts,
    )
    return counts.copy_to_host().astype(np.float64) / N


# --------------------------------------------------------------------------- correlation


def _vector(a: Any, name: str) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {a.shape}")
    return a


def pearson_cuda(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors (two-pass float64 reductions on the GPU).

    Returns:
        The correlation clipped to ``[-1, 1]`` (as ``rank.pearson``); ``nan`` when either
        vector is constant.

    Raises:
        ValueError: different lengths, fewer than two values, NaN or infinity.
    """
    a = _vector(a, "a")
    b = _vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"vectors of different lengths: {a.shape[0]} and {b.shape[0]}")
    N = a.shape[0]
    if N < 2:
        raise ValueError("a correlation needs at least two values")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Pearson correlation of NaN or infinite values is undefined")
    if (a == a[0]).all() or (b == b[0]).all():
        return float("nan")
    n, bits = _index(N)
    cfg = launch_config()
    grid = _grid(N, cfg.threads)
    k = _K.kernels(bits)
    da, db = cuda.to_device(a), cuda.to_device(b)
    part = cuda.device_array((grid, 2), dtype=np.float64)
    k.sums2[grid, cfg.threads](da, db, n, part)
    sums = part.copy_to_host()
    ma = math.fsum(sums[:, 0]) / N
    mb = math.fsum(sums[:, 1]) / N
    part3 = cuda.device_array((grid, 3), dtype=np.float64)
    k.moments[grid, cfg.threads](da, db, n, ma, mb, part3)
    mom = part3.copy_to_host()
    sab, saa, sbb = (math.fsum(mom[:, c]) for c in range(3))
    if saa <= 0.0 or sbb <= 0.0:
        return float("nan")
    return float(min(1.0, max(-1.0, sab / math.sqrt(saa * sbb))))


def rsa_permutation_ranks_cuda(
    ranks_a: np.ndarray, ranks_b: np.ndarray, m: int, n_perm: int, seed: int
) -> np.ndarray:
    """Permutation null of the rank (or Pearson) correlation of two condensed RDMs.

    Permutation ``p`` reorders the stimuli of the second RDM by the Fisher-Yates shuffle of
    the shared RNG spec (stream ``p``): ``B_p = B[perm][:, perm]``. Since the ranks of a
    stimulus-permuted condensed vector are the permuted ranks, ``null[p]`` is the Pearson
    correlation of ``ranks_a`` with the permuted ``ranks_b``: the Spearman null when ranks are
    given, the Pearson null when raw dissimilarities are. One block per permutation, its
    permutation in shared memory up to ``PERM_SHARED_MAX`` stimuli (else global scratch).

    Args:
        ranks_a: condensed upper triangle (``k = 1``, row-major, ``m (m - 1) / 2``) of the
            first RDM's ranks.
        ranks_b: the same for the second RDM.
        m: number of stimuli.
        n_perm: number of permutations.
        seed: integer in ``[0, 2**64)``.

    Returns:
        float64 ``(n_perm,)``, each clipped to ``[-1, 1]`` (as the CPU); ``nan`` when a
        vector is constant.
    """
    a = _vector(ranks_a, "ranks_a")
    b = _vector(ranks_b, "ranks_b")
    m = int(m)
    n_perm = int(n_perm)
    seed64 = as_seed(seed)
    if m < 2:
        raise ValueError(f"a permutation test needs at least 2 stimuli, got {m}")
    npairs = m * (m - 1) // 2
    if a.shape[0] != npairs or b.shape[0] != npairs:
        raise ValueError(
            f"condensed vectors for {m} stimuli need {npairs} entries, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )
    if n_perm < 0:
        raise ValueError(f"n_perm must be >= 0, got {n_perm}")
    if n_perm == 0:
        return np.empty(0, dtype=np.float64)
    ac = a - a.mean()
    bc = b - b.mean()
    denom = math.sqrt(float(np.dot(ac, ac)) * float(np.dot(bc, bc)))
    cfg = launch_config()
    grid = max(1, min(cfg.blocks, n_perm))
    null = cuda.device_array(n_perm, dtype=np.float64)
    args = (
        cuda.to_device(ac),
        cuda.to_device(bc),
        np.int64(m),
        np.int64(n_perm),
        _K.seed_hash_host(int(seed64)),
        denom,
        null,
    )
    k = _K.kernels(64)
    if m <= _K.PERM_SHARED_MAX:
        k.perm_null_shared[grid, cfg.threads](*args)
    else:
        scratch = cuda.device_array((grid, m), dtype=np.int32)
        k.perm_null_global[grid, cfg.threads](*args, scratch)
    return null.copy_to_host()
