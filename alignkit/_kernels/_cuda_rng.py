"""The counter-based RNG of :mod:`alignkit._kernels._rng` as CUDA device functions.

Not a copy: each function is the plain-Python source of its CPU twin (``_rng.SCALARS``)
compiled with ``numba.cuda.jit(device=True)``, its calls to the other RNG functions bound to
their device versions (:func:`alignkit._kernels._twins.device_functions`). Imports
:mod:`numba.cuda`.
"""

from __future__ import annotations

from alignkit._kernels import _rng
from alignkit._kernels._twins import device_functions

__all__ = ["splitmix64", "stream_key", "draw", "bounded", "uniform01", "shuffle_index"]

_DEVICE = device_functions(_rng.SCALARS)

splitmix64 = _DEVICE["splitmix64"]
stream_key = _DEVICE["stream_key"]
draw = _DEVICE["draw"]
bounded = _DEVICE["bounded"]
uniform01 = _DEVICE["uniform01"]
shuffle_index = _DEVICE["shuffle_index"]
