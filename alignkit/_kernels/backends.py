"""One table per operation: the function that runs it on each device.

The scoring layer asks ``backend(operation, device)`` instead of branching on the device.
Entries are ``"module:function"`` names under :mod:`alignkit._kernels`, imported on first
lookup, so importing this module (or looking up a CPU entry) never imports :mod:`numba.cuda`.

==========================  ===============================================================
operation                   call
==========================  ===============================================================
``odd_one_out``             ``(X, T, similarity, ties, *, use_gram, per_triplet,
                            need_correct) -> (n_correct, n_ties2, n_ties3, choices, correct)``
``bootstrap_means``         ``(correct, n_boot, seed) -> float64 (n_boot,)``
``rsa_permutation_null``    ``(A, B, a, b, n_perm, seed, method) -> float64 (n_perm,)``: the
                            null of ``rsa.rsa_permutation`` (``a``, ``b``: condensed A, B)
==========================  ===============================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "backend"]

#: operation -> device -> ``"module:function"`` under :mod:`alignkit._kernels`.
BACKENDS: dict[str, dict[str, str]] = {
    "odd_one_out": {"cpu": "backends:_ooo_cpu", "cuda": "backends:_ooo_cuda"},
    "bootstrap_means": {"cpu": "bootstrap:bootstrap_means", "cuda": "cuda:bootstrap_means_cuda"},
    "rsa_permutation_null": {"cpu": "backends:_perm_null_cpu", "cuda": "backends:_perm_null_cuda"},
}


def backend(operation: str, device: str) -> Callable[..., Any]:
    """The function that runs ``operation`` on ``device`` (``"cpu"`` or ``"cuda"``).

    Raises:
        ValueError: an operation or device not in :data:`BACKENDS`.
    """
    if operation not in BACKENDS:
        raise ValueError(f"unknown operation {operation!r}; choose one of {', '.join(BACKENDS)}")
    table = BACKENDS[operation]
    if device not in table:
        raise ValueError(f"{operation} has no {device!r} backend; choose one of {', '.join(table)}")
    module, name = table[device].split(":")
    return getattr(importlib.import_module(f"alignkit._kernels.{module}"), name)


# --------------------------------------------------------------------------- odd-one-out
#: Largest Gram product (``n^2 p`` multiply-adds) computed on one BLAS thread before a Numba
#: pass over it. OpenBLAS's worker threads keep spinning for about 0.1 s after a threaded
#: product, taking cores from the Numba threads that gather from the matrix next; below this
#: size one BLAS thread costs less than that stall (``benches/bench_kernels.py`` measures
#: both).
GRAM_ONE_THREAD_MAX = 4e9


def _blas_controller() -> Any:
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


_CONTROLLER: Any = None


def gram_before_gather(X: np.ndarray, similarity: str) -> np.ndarray:
    """The Gram matrix of ``X`` for a Numba pass that follows: on one BLAS thread when it is
    small enough (:data:`GRAM_ONE_THREAD_MAX`), so that no BLAS thread spins beside it."""
    import contextlib

    from alignkit._kernels import similarity as ksim

    n, p = X.shape
    ctl = _blas_controller()
    small = float(n) * n * p <= GRAM_ONE_THREAD_MAX
    with ctl.limit(limits=1, user_api="blas") if (ctl and small) else contextlib.nullcontext():
        return ksim.gram(X, similarity)


def _ooo_cpu(
    X: np.ndarray, T: np.ndarray, similarity: str, ties: str, *, use_gram: bool,
    per_triplet: bool, need_correct: bool,
) -> tuple[int, int, int, np.ndarray | None, np.ndarray | None]:
    from alignkit._kernels import ooo as kooo
    from alignkit._kernels import similarity as ksim

    choices = correct = None
    if use_gram:
        S = gram_before_gather(X, similarity)
        S32 = kooo.rounded32(S) if kooo.use_two_precision(S.shape[0], T.shape[0]) else None
        n_correct, n2, n3, correct, choices = kooo.ooo_tally(
            S, T, ties, correct=need_correct or per_triplet, choices=per_triplet, S32=S32)
        return n_correct, n2, n3, choices, correct
    src = ksim.triplet_sims_direct(X, T, similarity)
    if per_triplet:
        choices = kooo.ooo_choices(src, None, ties)
        correct = (choices == 2).astype(np.uint8)
    elif need_correct:
        correct = kooo.ooo_correct(src, None, ties)
    n_correct, n2, n3 = kooo.ooo_counts(src, None, ties)
    return n_correct, n2, n3, choices, correct


def _ooo_cuda(
    X: np.ndarray, T: np.ndarray, similarity: str, ties: str, *, use_gram: bool,
    per_triplet: bool, need_correct: bool,
) -> tuple[int, int, int, np.ndarray | None, np.ndarray | None]:
    from alignkit._kernels import cuda as kcuda
    from alignkit._kernels import similarity as ksim

    choices = correct = None
    if use_gram:
        S = ksim.gram(X, similarity)
        n_correct, n2, n3 = kcuda.ooo_counts_cuda(S, T, ties)
        if need_correct or per_triplet:
            choices = kcuda.ooo_choices_cuda(S, T, ties)
    else:
        n_correct, n2, n3 = kcuda.ooo_counts_direct_cuda(X, T, similarity, ties)
        if need_correct or per_triplet:
            choices = kcuda.ooo_choices_direct_cuda(X, T, similarity, ties)
    if choices is not None:
        correct = (choices == 2).astype(np.uint8)
    return n_correct, n2, n3, choices, correct


# --------------------------------------------------------------------------- RSA


def _perm_null_cpu(
    A: np.ndarray, B: np.ndarray, a: np.ndarray, b: np.ndarray, n_perm: int, seed: int,
    method: str,
) -> np.ndarray:
    from alignkit._kernels import rsa as krsa

    return krsa.rsa_permutation(A, B, n_perm, seed, method=method)[1]


def _perm_null_cuda(
    A: np.ndarray, B: np.ndarray, a: np.ndarray, b: np.ndarray, n_perm: int, seed: int,
    method: str,
) -> np.ndarray:
    from alignkit._kernels import rank as krank
    from alignkit._kernels.cuda import rsa_permutation_ranks_cuda

    ra, rb = krank.rank_pair(a, b) if method == "spearman" else (a, b)
    return rsa_permutation_ranks_cuda(ra, rb, A.shape[0], n_perm, seed)
