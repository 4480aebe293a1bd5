"""Provenance records: checksums of inputs and versions of the software.

Every stored entry and every result carries a provenance dictionary so that a
number can be traced back to the exact inputs and code that produced it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import math
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from importlib import metadata
from typing import Any

import numpy as np

from alignkit._version import __version__
from alignkit.errors import InputError

__all__ = ["sha256_file", "sha256_array", "versions", "now_utc", "base_provenance", "jsonable"]

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


@functools.cache
def _version_of(dist: str) -> str | None:
    """The installed version of a distribution (looked up once per process: reading the
    metadata costs milliseconds, and every result's provenance asks)."""
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


def jsonable(obj: Any, *, nonfinite: str = "null", unknown: str = "error",
             what: str = "value") -> Any:
    """A strictly JSON-able copy of ``obj``: the one converter of results, records and attrs.

    Mappings become dicts with ``str`` keys; lists, tuples and sets become lists (sets
    sorted when their items allow it); numpy scalars and arrays, paths, objects with a
    ``to_dict()`` and dataclasses become their plain equivalents, recursively.

    Args:
        obj: the value.
        nonfinite: what a NaN or infinite float becomes: ``"null"`` (None) or ``"error"``
            (an :class:`InputError` naming the key).
        unknown: a value of any other type: ``"error"`` (an :class:`InputError` naming the
            key and the type) or ``"keep"`` (left as it is).
        what: what the messages call ``obj`` (``"s.zarr: m/l: attrs"``).

    Raises:
        InputError: as chosen by ``nonfinite`` and ``unknown``.
    """
    if nonfinite not in ("null", "error") or unknown not in ("error", "keep"):
        raise ValueError(f"jsonable: bad nonfinite={nonfinite!r} or unknown={unknown!r}")
    return _jsonable(obj, nonfinite, unknown, what, ())


def _key_path(path: tuple[Any, ...]) -> str:
    text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    return f" at key {text!r}" if text else ""


def _jsonable(obj: Any, nonfinite: str, unknown: str, what: str, path: tuple[Any, ...]) -> Any:
    if obj is None or isinstance(obj, (str, bool, int)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, float) and not isinstance(obj, np.generic):
        if math.isfinite(obj):
            return obj
        if nonfinite == "null":
            return None
        raise InputError(f"{what}: {obj}{_key_path(path)} is not JSON-serialisable "
                         "(NaN and infinity are not allowed)")
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), nonfinite, unknown, what, path)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "iub" or (obj.dtype.kind == "f" and np.isfinite(obj).all()):
            return obj.tolist()  # nothing to convert inside
        return _jsonable(obj.tolist(), nonfinite, unknown, what, path)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, nonfinite, unknown, what, (*path, str(k)))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, nonfinite, unknown, what, (*path, i)) for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except TypeError:
            items = list(obj)
        return [_jsonable(v, nonfinite, unknown, what, (*path, i)) for i, v in enumerate(items)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, type):
        return _jsonable(to_dict(), nonfinite, unknown, what, path)
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name), nonfinite, unknown, what, (*path, f.name))
                for f in fields(obj)}
    if unknown == "keep":
        return obj
    raise InputError(f"{what}: cannot store a value of type {type(obj).__name__}"
                     f"{_key_path(path)} (not JSON-serialisable)")
