"""alignkit: how well do neural network representations align with humans?

Extract a model's features into a Zarr store, score them against human
odd-one-out triplets and similarity matrices, and learn linear probes from
human judgments.

Importing this package is cheap: it loads neither torch nor compiles any
Numba kernel. Sub-packages (``alignkit.store``, ``alignkit.data``,
``alignkit.score``, ``alignkit.extract``, ``alignkit.probe``) are imported on
first attribute access.

Numba's compiled-kernel cache goes to a per-user cache folder
(``$XDG_CACHE_HOME/alignkit/numba``, ``~/.cache/alignkit/numba``,
``~/Library/Caches/alignkit/numba`` on macOS, ``%LOCALAPPDATA%\\alignkit\\Cache\\numba``
on Windows) unless ``NUMBA_CACHE_DIR`` is set: never into the installed package,
where cache files would outlive an uninstall and shadow a later install.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from alignkit._version import __version__
from alignkit.errors import AlignkitError

__all__ = ["__version__", "AlignkitError", "user_cache_dir"]


def user_cache_dir() -> Path:
    """alignkit's per-user cache folder (the platform's cache directory, then ``alignkit``)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return Path(base) / "alignkit" / "Cache"
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~")) / "Library" / "Caches" / "alignkit"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alignkit"


def _default_numba_cache() -> None:
    """Point Numba's cache at the user cache folder unless the user chose one.

    Runs at import, before any alignkit module imports numba; it only sets an
    environment variable (and numba's setting, if numba is already loaded).
    Where the folder cannot be created, numba's own choice stands.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = user_cache_dir() / "numba"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(path, os.W_OK):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", ""):
        config.CACHE_DIR = str(path)  # numba read the environment before us


_default_numba_cache()

_SUBMODULES = {"store", "data", "score", "extract", "probe", "errors", "provenance"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"alignkit.{name}")
    raise AttributeError(f"module 'alignkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
