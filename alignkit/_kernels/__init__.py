"""Compute kernels: Numba CPU kernels (``njit``/``prange``) and their CUDA twins.

Modules (each imported on first access; importing this package loads nothing heavy):

* :mod:`~alignkit._kernels._rng`: the counter-based RNG shared with the CUDA kernels.
* :mod:`~alignkit._kernels.similarity`: Gram matrices and direct per-triplet similarities.
* :mod:`~alignkit._kernels.ooo`: odd-one-out choices, accuracy counts, log-probabilities.
* :mod:`~alignkit._kernels.bootstrap`: in-kernel bootstrap of accuracy, percentile CIs.
* :mod:`~alignkit._kernels.rank`: average ranks (radix sort), Spearman, Pearson, condensed RDMs.
* :mod:`~alignkit._kernels.rsa`: stimulus permutation test and stimulus bootstrap for RSA.
* :mod:`~alignkit._kernels.compare`: every RDM comparison method (rsatoolbox's), its
  permutation null, stimulus and subject bootstraps, and the paired bootstrap of two models.
* :mod:`~alignkit._kernels.synthetic`: synthetic odd-one-out triplets from an embedding.
* :mod:`~alignkit._kernels.backends`: per operation, the function that runs it on each device.

The kernels depend on numpy and numba only: no I/O, no torch, nothing from the rest of
alignkit. Wrong arguments raise :class:`ValueError`. Every kernel is compiled with
``cache=True`` (set ``NUMBA_CACHE_DIR`` for read-only installs) and gives the same result
for any number of threads: random draws are counter-based and float reductions use fixed
blocks.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["bootstrap", "compare", "ooo", "rank", "rsa", "similarity", "synthetic"]

_MODULES = {"_rng", "backends", "bootstrap", "compare", "ooo", "rank", "rsa", "similarity", "synthetic", "cuda", "device"}


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"alignkit._kernels.{name}")
    raise AttributeError(f"module 'alignkit._kernels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _MODULES)
