"""alignkit: how well do neural network representations align with humans?

Extract a model's features into a Zarr store, score them against human
odd-one-out triplets and similarity matrices, and learn linear probes from
human judgments.

Importing this package is cheap: it loads neither torch nor compiles any
Numba kernel. Sub-packages (``alignkit.store``, ``alignkit.data``,
``alignkit.score``, ``alignkit.extract``, ``alignkit.probe``) are imported on
first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from alignkit._version import __version__
from alignkit.errors import AlignkitError

__all__ = ["__version__", "AlignkitError"]

_SUBMODULES = {"store", "data", "score", "extract", "probe", "errors", "provenance"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"alignkit.{name}")
    raise AttributeError(f"module 'alignkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
