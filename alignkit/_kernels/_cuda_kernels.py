"""CUDA kernels (``numba.cuda``) twinning the CPU kernels of :mod:`alignkit._kernels`.

The device code lives in one module per family, mirroring the CPU modules:

=======================================  ==================================================
CUDA                                      CPU twin
=======================================  ==================================================
:mod:`~alignkit._kernels._cuda_rng`       :mod:`~alignkit._kernels._rng` (the same source)
:mod:`~alignkit._kernels._cuda_ooo`       :mod:`~alignkit._kernels.ooo`, the direct path of
                                          :mod:`~alignkit._kernels.similarity`
:mod:`~alignkit._kernels._cuda_bootstrap` :mod:`~alignkit._kernels.bootstrap`
:mod:`~alignkit._kernels._cuda_rsa`       ``rank.pearson`` and :mod:`~alignkit._kernels.rsa`
:mod:`~alignkit._kernels._cuda_common`    launch limits, unfused products, block sums
=======================================  ==================================================

This module gathers them for the host wrappers of :mod:`alignkit._kernels.cuda` (the public
entry points). It imports :mod:`numba.cuda` at import time; only :mod:`alignkit._kernels.cuda`
imports it, and nothing imports that at package import time. The conventions shared by every
kernel are listed in :mod:`alignkit._kernels._cuda_common`.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from alignkit._kernels import _cuda_bootstrap, _cuda_ooo, _cuda_rsa
from alignkit._kernels._cuda_common import (
    LANES,
    MAX_THREADS,
    PERM_SHARED_MAX,
    index_type,
    seed_hash_host,
    splitmix64_host,
)
from alignkit._kernels._cuda_ooo import direct_kernel
from alignkit._kernels._cuda_rsa import perm_null_global, perm_null_shared

__all__ = [
    "MAX_THREADS",
    "LANES",
    "PERM_SHARED_MAX",
    "kernels",
    "direct_kernel",
    "perm_null_shared",
    "perm_null_global",
    "splitmix64_host",
    "seed_hash_host",
]


@functools.cache
def kernels(index_bits: int) -> SimpleNamespace:
    """Every kernel whose loops count in ``int32`` (``32``) or ``int64`` (``64``), by name.

    The direct odd-one-out kernels are per similarity: :func:`direct_kernel`.
    """
    index_type(index_bits)  # validates
    ooo = _cuda_ooo.kernels(index_bits)
    rsa = _cuda_rsa.kernels(index_bits)
    return SimpleNamespace(
        ooo_counts_gram=ooo.ooo_counts_gram,
        ooo_choices_gram=ooo.ooo_choices_gram,
        nll_gram=ooo.nll_gram,
        logprobs_gram=ooo.logprobs_gram,
        bootstrap_counts=_cuda_bootstrap.kernels(index_bits),
        sums2=rsa.sums2,
        moments=rsa.moments,
        perm_null_shared=perm_null_shared,
        perm_null_global=perm_null_global,
    )
