"""Provenance records: checksums of inputs and versions of the software.

Every stored entry and every result carries a provenance dictionary so that a
number can be traced back to the exact inputs and code that produced it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np

from alignkit._version import __version__

__all__ = ["sha256_file", "sha256_array", "versions", "now_utc", "base_provenance"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return ``"sha256:<hex>"`` of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def sha256_array(array: np.ndarray) -> str:
    """Return ``"sha256:<hex>"`` of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return "sha256:" + h.hexdigest()


def features_checksum(features: np.ndarray) -> str:
    """``"sha256:<hex>"`` of features as little-endian float32 in C order.

    The checksum an embedding-store entry records for its features (it equals
    ``hashlib.sha256(entry.features().astype("<f4").tobytes())``), so a result computed from
    an entry's features carries the entry's checksum and links to it.
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features, dtype="<f4"))
    return "sha256:" + h.hexdigest()


def _version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of Python, alignkit and the numerical stack (no heavy imports)."""
    names = ("numpy", "scipy", "numba", "zarr") + tuple(extra)
    out: dict[str, str | None] = {
        "alignkit": __version__,
        "python": platform.python_version(),
    }
    for name in names:
        out[name] = _version_of(name)
    return out


def now_utc() -> str:
    """Current time as an ISO 8601 string in UTC, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def base_provenance(**fields: Any) -> dict[str, Any]:
    """A provenance dict: the given fields plus versions, time and command line."""
    prov: dict[str, Any] = dict(fields)
    prov.setdefault("versions", versions())
    prov.setdefault("created", now_utc())
    prov.setdefault("argv", list(sys.argv))
    return prov
