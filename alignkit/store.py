"""The embedding store: model features in a Zarr v3 group, readable without alignkit.

Layout (see ``docs/store-format.md`` for the full specification)::

    <store>/                       root group, attrs {"alignkit": {"kind": "embedding-store", ...}}
      <model>/                     one group per model
        <layer>/                   one group per layer: the *entry*, attrs {"alignkit": {...}}
          features                 (n, p) float32 or float16, chunks (chunk_rows, p)
          ids                      (n,) variable-length UTF-8 strings, unique
          probes/<name>/           linear transforms fitted on this entry
            weights (p, q), bias (q,), mean and std (scalars in attrs or (p,) arrays)

An entry is written in chunk-aligned blocks. Its ``rows_done`` counter is
updated only after the data of a block is stored, and ``complete`` is set only
by :meth:`EntryWriter.finalize`, so an interrupted write is never mistaken for a
finished one: :meth:`Entry.features` refuses it and ``create(..., resume=True)``
continues from ``rows_done``.

Model, layer and probe names are kept literally (dots included) except for the
characters that are unsafe in a path, which are percent-encoded in the group
name on disk (``%`` ``/`` ``\\`` ``:`` ``*`` ``?`` ``"`` ``<`` ``>`` ``|``);
the exact names are always recorded in the attributes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from alignkit.errors import (
    CorruptEntryError,
    DataError,
    EntryExistsError,
    EntryNotFoundError,
    EntryReplacedError,
    IncompleteEntryError,
    InputError,
    MismatchError,
    NotAStoreError,
    StoreError,
    StoreInUseError,
)
from alignkit.provenance import features_checksum, jsonable, now_utc, versions
from alignkit.validate import as_features, check_fits

if TYPE_CHECKING:
    import zarr

__all__ = [
    "FORMAT_VERSION",
    "EmbeddingStore",
    "Entry",
    "EntryWriter",
    "encode_name",
    "decode_name",
    "default_chunk_rows",
    "features_checksum",
    "ids_checksum",
]

#: Version of the on-disk layout written by this module.
FORMAT_VERSION = 1
#: Key under which alignkit keeps its attributes in every group it writes.
ATTR_KEY = "alignkit"
STORE_KIND = "embedding-store"
ENTRY_KIND = "embedding-entry"
PROBE_KIND = "probe"
PROBES_GROUP = "probes"
#: Name of the entry's copy of its ids named after their dimension, so that xarray takes it
#: as the index coordinate of ``stimulus`` (entries written before it was added lack it).
STIMULUS_COORD = "stimulus"

_TARGET_CHUNK_BYTES = 8 << 20  # chunks of about 8 MiB (4-16 MiB is the useful range)
_BLOCK_BYTES = 64 << 20  # rows handled per block by one-shot writes and block reads
_STORAGE_DTYPES = ("float32", "float16")
_UNSAFE = {c: f"%{ord(c):02X}" for c in '%/\\:*?"<>|'}
_StoreLike = Any  # a path, an fsspec URL or a zarr store object


# --------------------------------------------------------------------------- names
def encode_name(name: str, what: str = "name") -> str:
    """Turn a model, layer or probe name into a safe Zarr node name.

    Dots and every other character are kept literally, except ``%``, ``/``,
    ``\\``, ``:``, ``*``, ``?``, ``"``, ``<``, ``>`` and ``|``, which become
    ``%XX`` (their hexadecimal code). Names Zarr reserves are escaped too: a
    leading ``__`` becomes ``%5F_``, a name of dots only has its dots written
    ``%2E``, ``zarr.json`` becomes ``zarr%2Ejson`` and ``.alignkit`` (the
    store's folder of locks) becomes ``%2Ealignkit``. :func:`decode_name`
    inverts it exactly.

    Args:
        name: the name as the user gave it.
        what: what the name is ("model", "layer", "probe"), for error messages.

    Returns:
        The node name used on disk.

    Raises:
        InputError: the name is empty, not a string, or holds a control character.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} name must be a non-empty string, got {name!r}")
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise InputError(f"{what} name {name!r} holds the control character {bad!r}")
    out = "".join(_UNSAFE.get(c, c) for c in name)
    if out.startswith("__"):
        out = "%5F" + out[1:]
    if set(out) == {"."}:
        out = out.replace(".", "%2E")
    if out == "zarr.json":
        out = "zarr%2Ejson"
    if out == INTERNAL_DIR:
        out = "%2E" + out[1:]
    return out


def decode_name(node_name: str) -> str:
    """Invert :func:`encode_name`: the original name of a node on disk."""
    return unquote(node_name)


# --------------------------------------------------------------------------- helpers
def default_chunk_rows(n: int, p: int, dtype: str = "float32") -> int:
    """Rows per chunk so that one chunk holds about 8 MiB (at least one row, at most n)."""
    row_bytes = max(1, p * np.dtype(dtype).itemsize)
    return int(max(1, min(n, _TARGET_CHUNK_BYTES // row_bytes)))


def _jsonable(attrs: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A plain JSON copy of ``attrs``; NaN, infinity and other types are refused by key."""
    if not isinstance(attrs, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(attrs).__name__}")
    return jsonable(dict(attrs), nonfinite="error", unknown="error", what=what)


def _as_ids(ids: Any, n: int | None, where: str) -> np.ndarray:
    """Validate ids: 1-D, non-empty strings, unique; returns a ``<U`` array."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputError(f"{where}: ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "UT" and not (
        arr.dtype == object and all(isinstance(x, str) for x in arr)
    ):
        raise InputError(f"{where}: ids must be strings, got dtype {arr.dtype}")
    arr = _str_array(arr)
    if n is not None and arr.shape[0] != n:
        raise MismatchError(f"{where}: {arr.shape[0]} ids given for {n} rows")
    problem = _ids_fault(arr)
    if problem is not None:
        raise DataError(f"{where}: {problem}")
    return arr


def _ids_fault(arr: np.ndarray) -> str | None:
    """What is wrong with a ``<U`` id array (an empty or repeated id), or None."""
    empty = np.flatnonzero(arr == "")
    if empty.size:
        more = f" ({empty.size} empty ids)" if empty.size > 1 else ""
        return f"id {int(empty[0]) + 1} is an empty string{more}"
    if np.unique(arr).size != arr.size:
        seen: dict[str, int] = {}
        for row, value in enumerate(arr.tolist()):
            if value in seen:
                return (f"id {value!r} occurs more than once (rows {seen[value] + 1} "
                        f"and {row + 1}); ids must be unique")
            seen[value] = row
    return None


def _record_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with an entry record read from disk, or None."""
    if not meta:
        return f"the entry record (attribute {ATTR_KEY!r}) is missing"

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key in ("model", "layer"):
        if not isinstance(meta.get(key), str) or not meta.get(key):
            return f"the entry record's {key!r} is {meta.get(key)!r}, not a name"
    for key in ("n", "p", "chunk_rows"):
        if not is_int(meta.get(key)) or meta[key] < 1:
            return f"the entry record's {key!r} is {meta.get(key)!r}, not a positive integer"
    if meta.get("dtype") not in _STORAGE_DTYPES:
        return f"the entry record's 'dtype' is {meta.get('dtype')!r}, not float32 or float16"
    if not isinstance(meta.get("complete"), bool):
        return f"the entry record's 'complete' is {meta.get('complete')!r}, not true or false"
    done = meta.get("rows_done", 0)
    if not is_int(done) or not 0 <= done <= meta["n"] or (meta["complete"] and done != meta["n"]):
        return f"the entry record's 'rows_done' is {done!r} for n={meta['n']}"
    for key in ("features_checksum", "ids_checksum"):
        v = meta.get(key)
        if v is not None and not (isinstance(v, str) and v.startswith("sha256:")):
            return f"the entry record's {key!r} is {v!r}, not a sha256 checksum"
    return None


def _str_array(values: Any) -> np.ndarray:
    """A fixed-width ``<U`` copy of a string array (also from numpy's StringDType)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "T":
        width = int(np.strings.str_len(arr).max()) if arr.size else 1
        return arr.astype(f"<U{max(width, 1)}")
    return np.array(arr.tolist(), dtype=str)


def _storage_dtype(dtype: Any, where: str) -> str:
    """The storage dtype's name, ``"float32"`` or ``"float16"``."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in _STORAGE_DTYPES:
        raise InputError(f"{where}: dtype must be float32 or float16, got {dtype!r}")
    return name


def _local_path(path: _StoreLike) -> Path | None:
    """The local filesystem path of ``path``, or None for URLs and store objects."""
    if isinstance(path, os.PathLike):
        return Path(os.fspath(path))
    if isinstance(path, str) and "://" not in path:
        return Path(path)
    return None


def _meta(group: zarr.Group) -> dict[str, Any] | None:
    meta = group.attrs.get(ATTR_KEY)
    return dict(meta) if isinstance(meta, Mapping) else None


def _one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def ids_checksum(ids: Sequence[str] | np.ndarray) -> str:
    """``"sha256:<hex>"`` of the ids as a compact JSON list of strings (UTF-8).

    This is the ``ids_checksum`` recorded when an entry is created; it equals
    ``hashlib.sha256(json.dumps(list(ids), ensure_ascii=False,
    separators=(",", ":")).encode())``.
    """
    text = json.dumps([str(v) for v in np.asarray(ids).tolist()], ensure_ascii=False,
                      separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _probe_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """``"sha256:<hex>"`` over a probe's arrays: name, dtype, shape and bytes of each, by name."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in "<|=" else a.dtype
        head = f"{name}\0{np.dtype(dt).str}\0{list(a.shape)}\0"
        h.update(head.encode("utf-8"))
        h.update(np.ascontiguousarray(a, dtype=np.dtype(dt).newbyteorder("<")).tobytes())
    return "sha256:" + h.hexdigest()


def _chunk_codecs() -> dict[str, Any]:
    """Codecs of new arrays: zarr's default zstd, then a crc32c checksum per chunk."""
    import zarr.codecs

    return {"compressors": (zarr.codecs.ZstdCodec(level=0), zarr.codecs.Crc32cCodec())}


# --------------------------------------------------------------------------- locks
#: Folder inside a local store that holds locks and the staging area of overwrites.
INTERNAL_DIR = ".alignkit"
_HOST = socket.gethostname()


def _process_start(pid: int) -> int | None:
    """The start time (clock ticks after boot) of a process from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(info: Mapping[str, Any]) -> bool:
    """Whether the process a lock record names may still run (True when it cannot be told)."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if host != _HOST:
        return True  # another machine: its processes cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return True
    started = info.get("process_start")
    if isinstance(started, int):
        now = _process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True


def _read_lock_info(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return {} if text.strip() else None
    return info if isinstance(info, dict) else {}


#: How long a lock whose recorded owner is dead may stay held by processes it forked.
ORPHAN_LOCK_WAIT_S = 30.0


def _flock_or_wait_for_orphans(fcntl: Any, fd: int, path: Path) -> bool:
    """Take ``flock`` on ``fd``; True on success.

    A process's forked children (data-loader workers) inherit its lock, so a writer killed
    with SIGKILL can leave the lock held for a few seconds by workers that have not yet
    noticed their parent is gone. When the lock file names a dead owner, wait up to
    :data:`ORPHAN_LOCK_WAIT_S` for them to exit instead of reporting the entry in use.
    """
    import time

    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            pass
        if deadline is None:
            info = _read_lock_info(path)
            if not info or _owner_alive(info):
                return False
            deadline = time.monotonic() + ORPHAN_LOCK_WAIT_S
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class _Lock:
    """An exclusive lock file with its owner's pid and host.

    Mutual exclusion between processes comes from ``flock`` on the file (the
    kernel drops it when the owner dies); the JSON record names the owner for
    messages and lets a lock left by a dead process be taken over. Where
    ``fcntl`` is missing the file is created with ``O_EXCL`` instead.
    """

    def __init__(self, path: Path, what: str, store_name: str) -> None:
        self.path = path
        self.what = what
        self.store_name = store_name
        self.fd: int | None = None
        self.info: dict[str, Any] = {}
        self.stale: dict[str, Any] | None = None

    def _busy(self, info: Mapping[str, Any] | None) -> StoreInUseError:
        info = info or {}
        owner = (f"process {info.get('pid', '?')} on host {info.get('host', '?')} since "
                 f"{info.get('acquired', '?')}") if info else "another process"
        return StoreInUseError(
            f"{self.store_name}: {self.what} is in use: {owner} is writing it (lock file "
            f"{self.path}); wait for it to finish, or delete the lock file if that process is gone"
        )

    def acquire(self, **extra: Any) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            fcntl = None  # type: ignore[assignment]
        for _ in range(20):
            if fcntl is None:  # pragma: no cover
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    info = _read_lock_info(self.path)
                    if info is None:
                        continue
                    if info and _owner_alive(info):
                        raise self._busy(info) from None
                    self.path.unlink(missing_ok=True)
                    self.stale = info
                    continue
            else:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                if not _flock_or_wait_for_orphans(fcntl, fd, self.path):
                    os.close(fd)
                    raise self._busy(_read_lock_info(self.path)) from None
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:  # released and removed while we waited: try the new file
                    os.close(fd)
                    continue
                with open(fd, "rb", closefd=False) as fh:
                    text = fh.read().decode("utf-8", "replace")
                if text.strip():
                    try:
                        info = json.loads(text)
                    except ValueError:
                        info = {}
                    info = info if isinstance(info, dict) else {}
                    if info and _owner_alive(info):
                        os.close(fd)
                        raise self._busy(info)
                    self.stale = info
            break
        else:  # pragma: no cover - the file kept changing under us
            raise self._busy(_read_lock_info(self.path))
        self.fd = fd
        if self.stale is not None:
            s = self.stale
            warnings.warn(
                f"{self.store_name}: {self.what}: taking over the lock left by process "
                f"{s.get('pid', '?')} on host {s.get('host', '?')} (since {s.get('acquired', '?')}), "
                "which is no longer running",
                UserWarning, stacklevel=3,
            )
        self.info = {
            "pid": os.getpid(), "host": _HOST, "process_start": _process_start(os.getpid()),
            "acquired": now_utc(), "what": self.what, "argv": list(sys.argv), **extra,
        }
        self._write()
        return self

    def _write(self) -> None:
        assert self.fd is not None
        data = json.dumps(self.info).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def update(self, **extra: Any) -> None:
        self.info.update(extra)
        self._write()

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            self.path.unlink(missing_ok=True)  # before closing: the lock is still ours
        finally:
            os.close(fd)


def _holds_nothing(local: Path) -> bool:
    """Whether a directory is empty but for alignkit's folder of locks."""
    return all(p.name == INTERNAL_DIR for p in local.iterdir())


def _ensure_internal(local: Path) -> Path:
    """The store's ``.alignkit`` folder, made a Zarr group so that zarr lists it quietly."""
    folder = local / INTERNAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "zarr.json"
    if not marker.exists():
        meta = {"zarr_format": 3, "node_type": "group", "attributes": {ATTR_KEY: {
            "kind": "internal", "note": "locks and the staging area of alignkit writers"}}}
        tmp = folder / f".zarr.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, marker)
    return folder


def _complete_on_disk(folder: Path) -> bool:
    """Whether ``folder/zarr.json`` holds a complete entry record."""
    try:
        meta = json.loads((folder / "zarr.json").read_text(encoding="utf-8"))
        return bool(meta["attributes"][ATTR_KEY]["complete"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


#: lock path -> the state of the writer of this process that holds it
_OPEN_WRITERS: weakref.WeakValueDictionary[str, _WriterState] = weakref.WeakValueDictionary()


class _WriterState:
    """What an unfinished :class:`EntryWriter` holds: its lock and its staging folder."""

    def __init__(self, lock: _Lock | None, staging: Path | None) -> None:
        self.lock = lock
        self.staging = staging
        self.closed = False
        self.superseded = False
        if lock is not None:
            _OPEN_WRITERS[str(lock.path)] = self

    def close(self) -> None:
        self.closed = True
        staging, self.staging = self.staging, None
        if staging is not None:  # an unfinished overwrite: the old entry stays
            _rmtree(staging)
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release()


# --------------------------------------------------------------------------- store
class EmbeddingStore:
    """A Zarr v3 store of model features, one entry per (model, layer).

    Args:
        path: a local directory, an fsspec URL or a zarr store object.
        mode: ``"r"`` to read an existing store; ``"a"`` to open one for
            writing, creating it when the path does not exist (or is an
            empty directory).

    Raises:
        NotAStoreError: the path is missing (mode ``"r"``), is a file, a
            non-empty directory without a Zarr group, a Zarr array, or a
            Zarr group without alignkit's marker.
        InputError: ``mode`` is neither ``"r"`` nor ``"a"``.

    Example:
        >>> st = EmbeddingStore("features.zarr", mode="a")        # doctest: +SKIP
        >>> st.write("vgg16", "classifier.3", x, ids)              # doctest: +SKIP
        >>> EmbeddingStore("features.zarr").entry("vgg16", "classifier.3").features()  # doctest: +SKIP
    """

    def __init__(self, path: _StoreLike, mode: str = "r") -> None:
        if mode not in ("r", "a"):
            raise InputError(f"store mode must be 'r' or 'a', got {mode!r}")
        self.path = path
        self.mode = mode
        #: the store's local directory (locks and the overwrite swap need one), or None
        self._local = _local_path(path)
        self._root = self._open_root(path, mode)

    # ---- opening
    @property
    def name(self) -> str:
        """The store's path or URL as a string, for messages."""
        return os.fspath(self.path) if isinstance(self.path, (str, os.PathLike)) else repr(self.path)

    def _open_root(self, path: _StoreLike, mode: str) -> zarr.Group:
        import zarr
        import zarr.errors

        name = self.name
        local = _local_path(path)
        if local is not None:
            if local.exists() and not local.is_dir():
                raise NotAStoreError(f"{name}: is a file, not an alignkit store (a Zarr directory)")
            if not local.exists() or _holds_nothing(local):
                if mode == "r":
                    what = "does not exist" if not local.exists() else "is an empty directory"
                    raise NotAStoreError(f"{name}: {what}, not an alignkit store")
                return self._create_local_root(local, path)
        try:
            root = zarr.open_group(path, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            if local is not None:
                raise NotAStoreError(
                    f"{name}: is a non-empty directory without a Zarr group, "
                    "not an alignkit store"
                ) from None
            if mode == "r":
                raise NotAStoreError(f"{name}: no Zarr group there, not an alignkit store") from None
            return self._create_root(path)
        except zarr.errors.ContainsArrayError:
            raise NotAStoreError(f"{name}: holds a Zarr array, not an alignkit store") from None
        except (ValueError, OSError, zarr.errors.BaseZarrError) as exc:
            raise NotAStoreError(f"{name}: cannot be read as a Zarr group ({exc})") from None
        if root.metadata.zarr_format != 3:
            raise NotAStoreError(
                f"{name}: is a Zarr v{root.metadata.zarr_format} group, not an alignkit "
                "store (Zarr v3)"
            )
        marker = _meta(root)
        if marker is None or marker.get("kind") != STORE_KIND:
            raise NotAStoreError(
                f"{name}: is a Zarr group without the alignkit store marker "
                f"(attribute {ATTR_KEY!r} with kind {STORE_KIND!r}), not an alignkit store"
            )
        version = marker.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise NotAStoreError(
                f"{name}: store format_version {version!r} is newer than this alignkit "
                f"reads ({FORMAT_VERSION}); upgrade alignkit"
            )
        if mode == "a":
            root = zarr.open_group(path, mode="r+")
        return root

    def _create_local_root(self, local: Path, path: _StoreLike) -> zarr.Group:
        """Create the root of a new local store, under the store-creation lock."""
        local.mkdir(parents=True, exist_ok=True)
        _ensure_internal(local)
        lock = _Lock(local / INTERNAL_DIR / "locks" / "store.lock", "store creation", self.name)
        lock.acquire()
        try:
            if (local / "zarr.json").exists():  # another writer created it meanwhile
                return self._open_root(path, self.mode)
            if not _holds_nothing(local):
                raise NotAStoreError(
                    f"{self.name}: is a non-empty directory without a Zarr group, "
                    "not an alignkit store"
                )
            import zarr

            # mode "a": the folder already holds .alignkit; no root exists (checked under the lock)
            marker = {ATTR_KEY: {"kind": STORE_KIND, "format_version": FORMAT_VERSION}}
            return zarr.open_group(path, mode="a", zarr_format=3, attributes=marker)
        finally:
            lock.release()

    @staticmethod
    def _create_root(path: _StoreLike) -> zarr.Group:
        import zarr

        marker = {ATTR_KEY: {"kind": STORE_KIND, "format_version": FORMAT_VERSION}}
        return zarr.open_group(path, mode="w-", zarr_format=3, attributes=marker)

    def _require_writable(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.name}: store opened read-only; open it with mode='a' to write")

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.name!r}, mode={self.mode!r})"

    # ---- listing
    def _children(self, prefix: str) -> list[str]:
        """The names directly under ``prefix`` in the underlying store, sorted."""
        from zarr.core.sync import sync

        store = self._root.store

        async def names() -> list[str]:
            return [k async for k in store.list_dir(prefix)]

        return sorted(sync(names()))

    def _has_key(self, key: str) -> bool:
        from zarr.core.sync import sync

        return bool(sync(self._root.store.exists(key)))

    def _damaged_node(self, model_key: str, layer_key: str, detail: str) -> CorruptEntryError:
        entry = f"{decode_name(model_key)}/{decode_name(layer_key)}"
        detail = _one_line(detail)
        return CorruptEntryError(
            f"{self.name}: {entry}: damaged entry: {detail}; remove it (alignkit store rm) "
            "and write it again",
            store=self.name, entry=entry, detail=detail,
        )

    def _lookup(self, model_key: str, layer_key: str) -> zarr.Group | None:
        """The entry group at ``model_key/layer_key``; None when there is none.

        Raises:
            CorruptEntryError: a node is there whose ``zarr.json`` cannot be read,
                or a group that holds an entry's arrays but no entry record.
        """
        import zarr

        key = f"{model_key}/{layer_key}"
        has_arrays = None
        try:
            node = self._root[key]
        except KeyError:
            if self._has_key(f"{key}/zarr.json"):
                raise self._damaged_node(model_key, layer_key,
                                         "its zarr.json is not valid Zarr group metadata") from None
            if any(self._has_key(f"{key}/{a}/zarr.json") for a in ("features", "ids")):
                raise self._damaged_node(model_key, layer_key, "its zarr.json is missing") from None
            return None
        except MemoryError:
            raise
        except Exception as exc:
            raise self._damaged_node(
                model_key, layer_key,
                f"its zarr.json cannot be read ({type(exc).__name__}: {exc})") from None
        if not isinstance(node, zarr.Group):
            return None
        meta = _meta(node)
        if meta is not None and meta.get("kind") == ENTRY_KIND:
            return node
        has_arrays = all(self._has_key(f"{key}/{a}/zarr.json") for a in ("features", "ids"))
        if meta is None and has_arrays:
            raise self._damaged_node(
                model_key, layer_key,
                f"its zarr.json has lost the entry record (attribute {ATTR_KEY!r})")
        return None

    def entries(self) -> list[tuple[str, str]]:
        """All (model, layer) pairs of the store, complete, incomplete or damaged, sorted.

        A damaged entry (its ``zarr.json`` unreadable) is listed under the names
        its folders decode to, so that reading it raises
        :class:`~alignkit.errors.CorruptEntryError` instead of leaving it out.
        """
        out: list[tuple[str, str]] = []
        for model_key in self._children(""):
            if model_key in ("zarr.json", INTERNAL_DIR):
                continue
            for layer_key in self._children(model_key):
                if layer_key == "zarr.json":
                    continue
                try:
                    group = self._lookup(model_key, layer_key)
                except CorruptEntryError:
                    out.append((decode_name(model_key), decode_name(layer_key)))
                    continue
                if group is not None:
                    meta = _meta(group) or {}
                    model, layer = meta.get("model"), meta.get("layer")
                    if not isinstance(model, str) or not isinstance(layer, str):
                        model, layer = decode_name(model_key), decode_name(layer_key)
                    out.append((model, layer))
        return sorted(out)

    def has(self, model: str, layer: str) -> bool:
        """Whether the store holds an entry (complete, incomplete or damaged) for ``model``/``layer``."""
        try:
            return self._entry_group(model, layer) is not None
        except CorruptEntryError:
            return True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and self.has(*key)

    def _entry_group(self, model: str, layer: str) -> zarr.Group | None:
        return self._lookup(encode_name(model, "model"), encode_name(layer, "layer"))

    def _lock_path(self, model_key: str, layer_key: str) -> Path | None:
        if self._local is None:
            return None
        return self._local / INTERNAL_DIR / "locks" / "entries" / model_key / f"{layer_key}.lock"

    def entry(self, model: str, layer: str) -> Entry:
        """The entry for ``model``/``layer``.

        Raises:
            EntryNotFoundError: no such entry; the message lists what the store holds.
        """
        group = self._entry_group(model, layer)
        lock = self._lock_path(encode_name(model, "model"), encode_name(layer, "layer"))
        if group is None and lock is not None and _owner_alive(_read_lock_info(lock) or {}):
            # a writer may be between the two renames of an overwrite (where the
            # platform has no atomic exchange): look again for a moment
            import time

            for _ in range(200):
                time.sleep(0.01)
                group = self._entry_group(model, layer)
                if group is not None or not lock.exists():
                    break
            else:
                group = self._entry_group(model, layer)
        if group is None:
            held = ", ".join(f"{m}/{ly}" for m, ly in self.entries()) or "nothing"
            raise EntryNotFoundError(
                f"{self.name}: no entry for model {model!r} layer {layer!r} (the store holds: {held})"
            )
        return Entry(self, group)

    # ---- writing
    def create(
        self,
        model: str,
        layer: str,
        *,
        n: int,
        p: int,
        ids: Sequence[str] | np.ndarray,
        dtype: str = "float32",
        attrs: Mapping[str, Any] | None = None,
        chunk_rows: int | None = None,
        overwrite: bool = False,
        resume: bool = False,
    ) -> EntryWriter:
        """Create an entry (or resume an interrupted one) and return its writer.

        Args:
            model: model name (kept literally; see :func:`encode_name`).
            layer: layer name, e.g. ``"classifier.3"``.
            n: number of rows (stimuli).
            p: number of features per row.
            ids: the ``n`` stimulus ids, unique non-empty strings.
            dtype: storage dtype, ``"float32"`` or ``"float16"``.
            attrs: JSON-able provenance (weights id, preprocessing, image root,
                ids source, ...), stored as the entry's ``provenance``. A
                ``"fingerprint"`` key identifies the job for ``resume``.
            chunk_rows: rows per chunk; default about 8 MiB per chunk.
            overwrite: replace an existing entry.
            resume: continue an existing incomplete entry with identical n, p,
                dtype, ids, chunk rows (when given) and fingerprint (when given).

        Returns:
            An :class:`EntryWriter` whose ``rows_done`` says where to continue.

        Raises:
            EntryExistsError: the entry exists (complete; or incomplete and not
                resumable with these arguments) and ``overwrite`` is False.
            InputError: invalid sizes, dtype, names, ids or attrs.
        """
        self._require_writable()
        where = f"{self.name}: {model}/{layer}"
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"{where}: n must be a positive integer, got {n!r}")
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
            raise InputError(f"{where}: p must be a positive integer, got {p!r}")
        n, p = int(n), int(p)
        dtype = _storage_dtype(dtype, where)
        if chunk_rows is not None and (
            isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
            or chunk_rows < 1
        ):
            raise InputError(f"{where}: chunk_rows must be a positive integer, got {chunk_rows!r}")
        ids_arr = _as_ids(ids, n, where)
        user = _jsonable(attrs or {}, f"{where}: attrs")
        model_key, layer_key = encode_name(model, "model"), encode_name(layer, "layer")
        lock = self._lock_entry(model_key, layer_key, f"{model}/{layer}", supersede=True)
        try:
            return self._create_locked(
                model, layer, model_key, layer_key, where, n=n, p=p, dtype=dtype,
                chunk_rows=chunk_rows, ids_arr=ids_arr, user=user, overwrite=overwrite,
                resume=resume, lock=lock,
            )
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _lock_entry(
        self, model_key: str, layer_key: str, what: str, supersede: bool = False
    ) -> _Lock | None:
        """Take the entry's lock (local stores); clean up after a dead writer it replaces.

        With ``supersede`` an open writer of the same entry in this process is
        closed first (it then refuses to write); writers of other processes
        always make this raise :class:`~alignkit.errors.StoreInUseError`.
        """
        path = self._lock_path(model_key, layer_key)
        if path is None:
            return None
        older = _OPEN_WRITERS.get(str(path))
        if supersede and older is not None and not older.closed:
            older.superseded = True
            older.close()
        _ensure_internal(self._local)
        lock = _Lock(path, f"entry {what}", self.name).acquire()
        if lock.stale:
            try:
                self._recover(model_key, layer_key, lock.stale)
            except BaseException:
                lock.release()
                raise
        return lock

    def _recover(self, model_key: str, layer_key: str, stale: Mapping[str, Any]) -> None:
        """Finish or undo the overwrite of a writer that died holding the entry's lock."""
        assert self._local is not None
        internal = (self._local / INTERNAL_DIR).resolve()
        left = []
        for key in ("staging", "trash"):
            rel = stale.get(key)
            if isinstance(rel, str) and rel:
                path = (self._local / rel).resolve()
                if internal in path.parents:
                    left.append(path)
        target = self._local / model_key / layer_key
        if not target.exists():  # died between the two renames of a swap
            for cand in left:  # the new entry (staging) first, then the old one (trash)
                if _complete_on_disk(cand):
                    os.rename(cand, target)
                    break
        for path in left:
            _rmtree(path)

    def _create_locked(
        self, model: str, layer: str, model_key: str, layer_key: str, where: str, *,
        n: int, p: int, dtype: str, chunk_rows: int | None, ids_arr: np.ndarray,
        user: dict[str, Any], overwrite: bool, resume: bool, lock: _Lock | None,
    ) -> EntryWriter:
        try:
            existing = self._entry_group(model, layer)
        except CorruptEntryError:
            if not overwrite:
                raise
            self._remove_node(model_key, layer_key)  # damaged: nothing there to keep readable
            existing = None
        staged = False
        if existing is not None:
            writer = self._reuse(existing, where, n, p, dtype, chunk_rows, ids_arr, user,
                                 overwrite=overwrite, resume=resume, lock=lock)
            if writer is not None:
                return writer
            if self._local is not None and (_meta(existing) or {}).get("complete"):
                staged = True  # written beside the old entry, swapped in by finalize
            else:
                del self._root[f"{model_key}/{layer_key}"]

        rows = int(min(chunk_rows, n)) if chunk_rows is not None else default_chunk_rows(n, p, dtype)
        meta = {
            "kind": ENTRY_KIND,
            "format_version": FORMAT_VERSION,
            "model": model,
            "layer": layer,
            "n": n,
            "p": p,
            "dtype": dtype,
            "chunk_rows": rows,
            "complete": False,
            "rows_done": 0,
            "features_checksum": None,
            "ids_checksum": ids_checksum(ids_arr),
            "created": now_utc(),
            "completed": None,
            "provenance": user,
            "versions": versions(),
        }
        if staged:
            import uuid

            import zarr

            assert self._local is not None and lock is not None
            rel = f"{INTERNAL_DIR}/staging/{uuid.uuid4().hex}"
            (self._local / INTERNAL_DIR / "staging").mkdir(parents=True, exist_ok=True)
            lock.update(staging=rel)
            group = zarr.open_group(self._root.store, path=rel, mode="w-", zarr_format=3,
                                    attributes={ATTR_KEY: meta})
            self._create_arrays(group, n, p, dtype, rows, ids_arr)
            return EntryWriter(Entry(self, group), _lock=lock, _staging=self._local / rel,
                               _target=(model_key, layer_key))
        model_group = self._root.require_group(model_key)
        if _meta(model_group) is None:
            model_group.attrs[ATTR_KEY] = {"kind": "model", "model": model}
        # the entry's attributes exist (complete=False) before any array does
        if layer_key in set(model_group.keys()):
            raise StoreError(
                f"{where}: {model_key}/{layer_key} holds a Zarr node that is not an alignkit "
                "entry; remove it with zarr or choose another name"
            )
        group = model_group.create_group(layer_key, attributes={ATTR_KEY: meta})
        self._create_arrays(group, n, p, dtype, rows, ids_arr)
        return EntryWriter(Entry(self, group), _lock=lock)

    def _remove_node(self, model_key: str, layer_key: str) -> None:
        """Delete whatever is at ``model_key/layer_key``, readable or not."""
        if self._local is not None:
            _rmtree(self._local / model_key / layer_key)
        else:
            del self._root[f"{model_key}/{layer_key}"]

    def _reuse(
        self, group: zarr.Group, where: str, n: int, p: int, dtype: str,
        chunk_rows: int | None, ids: np.ndarray, user: dict[str, Any], *,
        overwrite: bool, resume: bool, lock: _Lock | None = None,
    ) -> EntryWriter | None:
        """Decide what to do with an existing entry: a writer to resume, or None to replace."""
        meta = _meta(group) or {}
        if meta.get("complete"):
            if overwrite:
                return None
            raise EntryExistsError(
                f"{where}: entry already exists and is complete; pass overwrite=True "
                "(--overwrite) to replace it"
            )
        done, total = int(meta.get("rows_done", 0)), int(meta.get("n", 0))
        if not resume:
            if overwrite:
                return None
            raise EntryExistsError(
                f"{where}: an interrupted entry exists ({done} of {total} rows); pass "
                "resume=True to continue it or overwrite=True to replace it"
            )
        problems = []
        for key, want in (("n", n), ("p", p), ("dtype", dtype)):
            if meta.get(key) != want:
                problems.append(f"{key} {meta.get(key)!r} != {want!r}")
        if chunk_rows is not None and meta.get("chunk_rows") != min(chunk_rows, n):
            problems.append(f"chunk_rows {meta.get('chunk_rows')!r} != {min(chunk_rows, n)!r}")
        if "fingerprint" in user and (meta.get("provenance") or {}).get("fingerprint") != user[
            "fingerprint"
        ]:
            problems.append("fingerprint differs")
        arrays_ok = "features" in group.array_keys() and "ids" in group.array_keys()
        if not problems and arrays_ok:
            stored = _str_array(group["ids"][:])
            if stored.shape != ids.shape or not np.array_equal(stored, ids):
                problems.append("ids differ")
        if problems:
            if overwrite:
                return None
            raise EntryExistsError(
                f"{where}: cannot resume the interrupted entry ({done} of {total} rows): "
                + "; ".join(problems) + "; pass overwrite=True to replace it"
            )
        if not arrays_ok:
            if done:
                raise StoreError(f"{where}: entry claims {done} rows but its arrays are missing")
            self._create_arrays(group, n, p, dtype, int(meta["chunk_rows"]), ids)
        meta.setdefault("resumed", []).append({"at": now_utc(), "rows_done": done})
        group.attrs[ATTR_KEY] = meta
        return EntryWriter(Entry(self, group), _lock=lock)

    @staticmethod
    def _create_arrays(
        group: zarr.Group, n: int, p: int, dtype: str, chunk_rows: int, ids: np.ndarray
    ) -> None:
        ids_arr = group.create_array(
            "ids", shape=(n,), chunks=(min(n, 1 << 20),), dtype=str, overwrite=True,
            dimension_names=("stimulus",), **_chunk_codecs(),
        )
        ids_arr[:] = ids
        coord = group.create_array(
            STIMULUS_COORD, shape=(n,), chunks=(min(n, 1 << 20),), dtype=str, overwrite=True,
            dimension_names=("stimulus",), **_chunk_codecs(),
        )
        coord[:] = ids
        group.create_array(
            "features", shape=(n, p), chunks=(chunk_rows, p), dtype=dtype,
            fill_value=np.nan, overwrite=True,
            dimension_names=("stimulus", "feature"), **_chunk_codecs(),
        )

    def write(
        self,
        model: str,
        layer: str,
        features: np.ndarray,
        ids: Sequence[str] | np.ndarray,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        *,
        dtype: str | None = None,
        chunk_rows: int | None = None,
    ) -> Entry:
        """Write a whole feature matrix as a complete entry in one call.

        Args:
            model: model name.
            layer: layer name.
            features: ``(n, p)`` real array without NaN or infinity.
            ids: ``n`` unique stimulus ids.
            attrs: JSON-able provenance stored with the entry.
            overwrite: replace an existing entry.
            dtype: storage dtype; default float16 for float16 input, else float32.
            chunk_rows: rows per chunk (default about 8 MiB per chunk).

        Returns:
            The finished :class:`Entry`.

        Raises:
            InputError: bad shape or dtype; DataError: NaN or infinity (the
                first bad row and column, 1-based); MismatchError: ids count.
            EntryExistsError: the entry exists and ``overwrite`` is False.
        """
        self._require_writable()
        x = np.asarray(features)
        where = f"{self.name}: {model}/{layer}"
        # NaN, infinity and overflow are refused before anything is created or replaced
        x = as_features(x, name=f"{where}: features", dtype=x.dtype)
        if dtype is None:
            dtype = "float16" if x.dtype == np.float16 else "float32"
        dtype = _storage_dtype(dtype, where)
        check_fits(x, dtype, f"{where}: features", None)
        writer = self.create(
            model, layer, n=x.shape[0], p=x.shape[1], ids=ids, dtype=dtype, attrs=attrs,
            chunk_rows=chunk_rows, overwrite=overwrite,
        )
        cr = writer.chunk_rows
        step = cr * max(1, _BLOCK_BYTES // (cr * x.shape[1] * np.dtype(dtype).itemsize))
        for start in range(0, x.shape[0], step):
            writer._write(start, x[start:start + step], check=False)
        return writer.finalize()

    def check(self, probes: bool = True) -> list[dict[str, Any]]:
        """Check every entry (and its probes) on disk, reading all of its data.

        Returns:
            One record per entry and per probe, sorted by entry:
            ``{"entry": "model/layer", "probe": name or None, "status": s,
            "detail": text}`` where ``s`` is ``"ok"`` (``detail``: the
            checksum), ``"damaged"`` (``detail``: what is wrong),
            ``"incomplete"`` (an interrupted write; its ids are checked, its
            features cannot be) or ``"changed"`` (replaced while checked).
        """
        out: list[dict[str, Any]] = []

        def rec(name: str, probe: str | None, status: str, detail: str) -> None:
            out.append({"entry": name, "probe": probe, "status": status, "detail": detail})

        for model, layer in self.entries():
            name = f"{model}/{layer}"
            try:
                e = self.entry(model, layer)
                if not e.complete:
                    e.ids  # noqa: B018
                    rec(name, None, "incomplete",
                        f"interrupted after {e.rows_done} of {e.n} rows; not checked")
                    continue
                got = e.verify(probes=False)
                rec(name, None, "ok", got if e.checksum is not None
                    else f"{got} (no checksum recorded: chunks decoded, values not verified)")
            except CorruptEntryError as exc:
                rec(name, None, "damaged", exc.detail or str(exc))
                continue
            except EntryReplacedError:
                rec(name, None, "changed", "replaced by another writer while it was checked")
                continue
            if probes:
                try:
                    names = e.probes()
                except CorruptEntryError as exc:
                    rec(name, "*", "damaged", exc.detail or str(exc))
                    continue
                for probe in names:
                    try:
                        e.load_probe(probe)
                        rec(name, probe, "ok", "")
                    except CorruptEntryError as exc:
                        rec(name, probe, "damaged", exc.detail or str(exc))
        return out

    def delete(self, model: str, layer: str) -> None:
        """Remove an entry (complete or not) and its probes; an emptied model group goes too.

        Raises:
            EntryNotFoundError: no such entry.
        """
        self._require_writable()
        model_key, layer_key = encode_name(model, "model"), encode_name(layer, "layer")
        lock = self._lock_entry(model_key, layer_key, f"{model}/{layer}", supersede=True)
        try:
            if not self.has(model, layer):
                self.entry(model, layer)  # raises EntryNotFoundError listing the entries
            self._remove_node(model_key, layer_key)
            if not [k for k in self._children(model_key) if k != "zarr.json"]:
                del self._root[model_key]
        finally:
            if lock is not None:
                lock.release()


# --------------------------------------------------------------------------- entry
class Entry:
    """One (model, layer) of a store: its features, ids, attributes and probes.

    Metadata (``n``, ``complete``, ``rows_done``, ...) is a snapshot taken when
    the entry was opened; open it again to see a concurrent writer's progress.

    Reads are verified against that snapshot: :meth:`features` and
    :meth:`features_iter` check the recorded ``features_checksum`` and
    :attr:`ids` checks the ids (count, empty, repeated, ``ids_checksum``), so
    damaged data raises :class:`~alignkit.errors.CorruptEntryError` instead of
    being returned, and data of an entry replaced meanwhile by an overwrite
    raises :class:`~alignkit.errors.EntryReplacedError`.

    Raises:
        CorruptEntryError: the entry record is missing keys or holds values of
            the wrong type.
    """

    def __init__(self, store: EmbeddingStore, group: zarr.Group) -> None:
        self.store = store
        self._group = group
        self._meta: dict[str, Any] = _meta(group) or {}
        self._ids: np.ndarray | None = None
        problem = _record_problem(self._meta)
        if problem is not None:
            name = str(getattr(group, "path", "") or "?")
            raise CorruptEntryError(
                f"{store.name}: {name}: damaged entry: {problem}; remove it (alignkit store rm) "
                "and write it again",
                store=store.name, entry=name, detail=problem,
            )

    def _damaged(self, detail: str) -> None:
        """Raise for damaged data: EntryReplacedError if the entry changed meanwhile, else CorruptEntryError."""
        if self._replaced():
            raise EntryReplacedError(
                f"{self._where}: the entry was replaced or removed by another writer while it was "
                "being read; read it again"
            )
        detail = _one_line(detail)
        raise CorruptEntryError(
            f"{self._where}: damaged entry: {detail}; rewrite it (--overwrite) or remove it "
            "(alignkit store rm); `alignkit store verify` checks every entry",
            store=self.store.name, entry=f"{self.model}/{self.layer}", detail=detail,
        )

    def _replaced(self) -> bool:
        """Whether the entry on disk is no longer the one this object was opened on."""
        try:
            group = self.store._entry_group(self.model, self.layer)
        except CorruptEntryError:
            return False
        if group is None:
            return True
        return _meta(group) != self._meta and bool(self._meta.get("complete"))

    # ---- metadata
    @property
    def meta(self) -> dict[str, Any]:
        """The entry's full alignkit attribute record (a copy)."""
        return json.loads(json.dumps(self._meta))

    @property
    def model(self) -> str:
        """Model name."""
        return str(self._meta["model"])

    @property
    def layer(self) -> str:
        """Layer name."""
        return str(self._meta["layer"])

    @property
    def n(self) -> int:
        """Number of rows (stimuli)."""
        return int(self._meta["n"])

    @property
    def p(self) -> int:
        """Number of features per row."""
        return int(self._meta["p"])

    @property
    def dtype(self) -> str:
        """Storage dtype, ``"float32"`` or ``"float16"``."""
        return str(self._meta["dtype"])

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk of the ``features`` array."""
        return int(self._meta["chunk_rows"])

    @property
    def complete(self) -> bool:
        """Whether the entry was finalized (every row written and checked)."""
        return bool(self._meta.get("complete"))

    @property
    def rows_done(self) -> int:
        """Rows ``[0, rows_done)`` are known to be written."""
        return int(self._meta.get("rows_done", 0))

    @property
    def checksum(self) -> str | None:
        """``"sha256:<hex>"`` of the features as float32 (set at finalize), or None."""
        return self._meta.get("features_checksum")

    @property
    def attrs(self) -> dict[str, Any]:
        """The user provenance given at creation (weights id, preprocessing, ...)."""
        return dict(self._meta.get("provenance") or {})

    @property
    def created(self) -> str | None:
        """Creation time (ISO 8601, UTC)."""
        return self._meta.get("created")

    @property
    def completed(self) -> str | None:
        """Completion time (ISO 8601, UTC), or None while incomplete."""
        return self._meta.get("completed")

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"INCOMPLETE {self.rows_done}/{self.n}"
        return f"<Entry {self.model}/{self.layer} {self.n}x{self.p} {self.dtype} {state}>"

    # ---- data
    @property
    def ids(self) -> np.ndarray:
        """The ``n`` stimulus ids as a numpy string array (read once, checked, then cached).

        Raises:
            CorruptEntryError: the ids array is missing or unreadable, has the
                wrong length, holds an empty or repeated id, or does not match
                the recorded ``ids_checksum``.
        """
        if self._ids is None:
            arr = self._node("ids", "the ids array is missing (interrupted at creation)")
            if tuple(arr.shape) != (self.n,):
                held = arr.shape[0] if len(arr.shape) == 1 else tuple(arr.shape)
                self._damaged(f"the ids array holds {held} ids for n={self.n} rows")
            try:
                raw = arr[:]
            except MemoryError:
                raise
            except Exception as exc:
                self._damaged(f"an ids chunk cannot be decoded ({type(exc).__name__}: {exc})")
            values = np.asarray(raw)
            if values.dtype.kind not in "UT" and not (
                values.dtype == object and all(isinstance(v, str) for v in values.tolist())
            ):
                self._damaged(f"the ids array holds {values.dtype} values, not strings")
            values = _str_array(values)
            problem = _ids_fault(values)
            if problem is not None:
                self._damaged(f"{problem} (a missing or edited ids chunk?)")
            recorded = self._meta.get("ids_checksum")
            if recorded is not None and ids_checksum(values) != recorded:
                self._damaged(
                    f"ids checksum {ids_checksum(values)} does not match the recorded {recorded}; "
                    "the ids changed after they were written"
                )
            self._ids = values
        return self._ids

    @property
    def _where(self) -> str:
        return f"{self.store.name}: {self.model}/{self.layer}"

    def _readable_rows(self, allow_incomplete: bool) -> int:
        if self.complete:
            return self.n
        if not allow_incomplete:
            raise IncompleteEntryError(
                f"{self._where}: entry is incomplete: its write was interrupted after "
                f"{self.rows_done} of {self.n} rows; rerun the extraction (it resumes) "
                "or pass allow_incomplete=True to read the rows written"
            )
        return self.rows_done

    def _node(self, name: str, missing: str) -> zarr.Array:
        """The array ``name`` of the entry; damage (unreadable or missing) raises."""
        import zarr

        try:
            arr = self._group[name]
        except KeyError:
            if not self.complete and self.rows_done == 0:
                raise StoreError(f"{self._where}: {missing}") from None
            self._damaged(f"the {name} array is missing")
        except MemoryError:
            raise
        except Exception as exc:
            self._damaged(f"{name}/zarr.json cannot be read ({type(exc).__name__}: {exc})")
        if not isinstance(arr, zarr.Array):
            self._damaged(f"{name} is not a Zarr array")
        return arr

    def _check_stimulus_coord(self) -> None:
        """The ``stimulus`` coordinate, where the entry has one, must hold the ids."""
        ids = self.ids
        if not self.store._has_key(f"{self._group.path}/{STIMULUS_COORD}/zarr.json"):
            return  # written before the coordinate was added
        arr = self._node(STIMULUS_COORD, "the stimulus array is missing")
        try:
            values = _str_array(np.asarray(arr[:]))
        except MemoryError:
            raise
        except Exception as exc:
            self._damaged(f"a stimulus chunk cannot be decoded ({type(exc).__name__}: {exc})")
        if values.shape != ids.shape or not np.array_equal(values, ids):
            self._damaged("the stimulus coordinate (the ids for xarray) differs from the ids array")

    def _array(self) -> zarr.Array:
        arr = self._node("features", "the features array is missing")
        if tuple(arr.shape) != (self.n, self.p) or arr.dtype != np.dtype(self.dtype):
            self._damaged(
                f"the features array is {tuple(arr.shape)} {arr.dtype}; the entry record says "
                f"({self.n}, {self.p}) {self.dtype}"
            )
        return arr

    def _read_rows(self, arr: zarr.Array, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as float32; a chunk that cannot be decoded raises."""
        try:
            return np.ascontiguousarray(arr[start:stop], dtype=np.float32)
        except MemoryError:
            raise
        except Exception as exc:
            cr = self.chunk_rows
            for c in range(start // cr, -(-stop // cr)):  # name the first bad chunk
                try:
                    arr[c * cr:min(self.n, (c + 1) * cr)]
                except MemoryError:
                    raise
                except Exception as bad:
                    self._damaged(
                        f"features chunk {c} (rows {c * cr + 1}..{min(self.n, (c + 1) * cr)}) "
                        f"cannot be decoded ({type(bad).__name__}: {bad})"
                    )
            self._damaged(f"features rows {start + 1}..{stop} cannot be read "
                          f"({type(exc).__name__}: {exc})")
            raise  # unreachable: _damaged raises

    def _check_digest(self, got: str, data: np.ndarray | None = None) -> None:
        if self.checksum is None or got == self.checksum:
            return
        hint = ""
        if data is not None:
            nan_rows = np.flatnonzero(np.isnan(data).all(axis=1))
            if nan_rows.size:
                hint = (f"; rows {nan_rows[0] + 1}..{nan_rows[-1] + 1} read as NaN "
                        "(a chunk file is missing?)")
        self._damaged(
            f"features checksum {got} does not match the recorded {self.checksum}; the data "
            f"changed after it was written{hint}"
        )

    def features(self, allow_incomplete: bool = False, verify: bool = True) -> np.ndarray:
        """The features as a float32 ``(n, p)`` array, checked against the entry's checksum.

        Args:
            allow_incomplete: for an interrupted entry, return the first
                ``rows_done`` rows instead of raising (no checksum exists yet;
                the chunks and ids are still checked).
            verify: compare the sha256 of the rows read with the recorded
                ``features_checksum`` and check the ids (see :attr:`ids`).
                Costs one hash of the data read (about 30 ms for 1854 x 4096
                float32); turn off only for data checked otherwise.

        Raises:
            IncompleteEntryError: the entry was not finalized.
            CorruptEntryError: a chunk cannot be decoded, the checksum does not
                match, or the ids are damaged.
            EntryReplacedError: an overwrite replaced the entry while it was read.
        """
        rows = self._readable_rows(allow_incomplete)
        if verify:
            self.ids  # noqa: B018 - checks the ids of this snapshot
        if rows == 0:
            return np.empty((0, self.p), dtype=np.float32)
        data = self._read_rows(self._array(), 0, rows)
        if verify and rows == self.n and self.complete:
            self._check_digest(features_checksum(data), data)
        return data

    def features_iter(
        self, block_rows: int | None = None, allow_incomplete: bool = False, verify: bool = True
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Read the features block by block without loading them all.

        With ``verify`` the blocks are hashed as they are read and the
        recorded checksum is compared after the last block: a loop that runs
        to its end has read verified data, and damage raises
        :class:`~alignkit.errors.CorruptEntryError` from the loop before it
        ends. Each chunk written by this version also carries a crc32c that
        zarr checks when the chunk is decoded, so a damaged chunk raises as
        soon as its block is read.

        Args:
            block_rows: rows per block; default a multiple of the chunk rows
                of about 64 MiB.
            allow_incomplete: iterate over the ``rows_done`` rows of an
                interrupted entry instead of raising.
            verify: check the ids first and the checksum at the end.

        Yields:
            ``(start, block)``: the 0-based first row and a float32 block.
        """
        rows = self._readable_rows(allow_incomplete)
        if block_rows is None:
            cr = self.chunk_rows
            block_rows = cr * max(1, _BLOCK_BYTES // (cr * self.p * np.dtype(self.dtype).itemsize))
        if isinstance(block_rows, bool) or int(block_rows) < 1:
            raise InputError(f"block_rows must be a positive integer, got {block_rows!r}")
        if verify:
            self.ids  # noqa: B018
        arr = self._array() if rows else None
        h = hashlib.sha256() if verify and rows == self.n and self.complete else None
        for start in range(0, rows, int(block_rows)):
            stop = min(rows, start + int(block_rows))
            block = self._read_rows(arr, start, stop)
            if h is not None:
                h.update(np.ascontiguousarray(block, dtype="<f4"))
                if stop == rows:
                    self._check_digest("sha256:" + h.hexdigest())
            yield start, block

    def verify(self, probes: bool = True) -> str:
        """Check the whole entry on disk: ids, every features chunk, the checksum, the probes.

        Args:
            probes: also load and check every probe of the entry.

        Returns:
            The features checksum computed from disk.

        Raises:
            IncompleteEntryError: the entry is incomplete.
            CorruptEntryError: what is damaged (the checksum does not match,
                a chunk cannot be decoded, the ids or a probe are damaged).
        """
        self._readable_rows(False)
        self.ids  # noqa: B018
        arr = self._array()
        h = hashlib.sha256()
        step = self.chunk_rows * max(
            1, _BLOCK_BYTES // (self.chunk_rows * self.p * np.dtype(self.dtype).itemsize))
        for start in range(0, self.n, step):
            h.update(np.ascontiguousarray(self._read_rows(arr, start, min(self.n, start + step)),
                                          dtype="<f4"))
        got = "sha256:" + h.hexdigest()
        self._check_digest(got)
        self._check_stimulus_coord()
        if probes:
            for name in self.probes():
                self.load_probe(name)
        return got

    # ---- probes
    def _probes_group(self, create: bool) -> zarr.Group | None:
        import zarr

        try:
            group = self._group[PROBES_GROUP]
        except KeyError:
            group = None
        except MemoryError:
            raise
        except Exception as exc:
            self._damaged(f"probes/zarr.json cannot be read ({type(exc).__name__}: {exc})")
        if isinstance(group, zarr.Group):
            return group
        if not create:
            return None
        return self._group.create_group(PROBES_GROUP, attributes={ATTR_KEY: {"kind": "probes"}})

    def _probe_group(self, key: str) -> tuple[zarr.Group | None, dict[str, Any] | None]:
        """A probe's group and record; None, None when absent. Damage raises."""
        import zarr

        group = self._probes_group(create=False)
        if group is None:
            return None, None
        try:
            pg = group[key]
        except KeyError:
            if self.store._has_key(f"{group.path}/{key}/zarr.json"):
                self._probe_damaged(decode_name(key), "its zarr.json is not valid Zarr metadata")
            return None, None
        except MemoryError:
            raise
        except Exception as exc:
            self._probe_damaged(decode_name(key),
                                f"its zarr.json cannot be read ({type(exc).__name__}: {exc})")
        if not isinstance(pg, zarr.Group):
            return None, None
        meta = _meta(pg)
        if meta is None or meta.get("kind") != PROBE_KIND:
            return None, None
        return pg, meta

    def _probe_damaged(self, name: str, detail: str) -> None:
        detail = _one_line(detail)
        what = f"{self.model}/{self.layer} probe {name!r}"
        raise CorruptEntryError(
            f"{self.store.name}: {what}: damaged probe: {detail}; fit and save it again "
            "(--overwrite) or delete it",
            store=self.store.name, entry=what, detail=detail,
        )

    def probes(self) -> list[str]:
        """Names of the finished probes fitted on this entry, sorted.

        A probe whose ``zarr.json`` cannot be read is listed too (by its folder
        name), so that :meth:`load_probe` reports the damage.
        """
        group = self._probes_group(create=False)
        if group is None:
            return []
        names = []
        for key in self.store._children(group.path):
            if key == "zarr.json":
                continue
            try:
                _, meta = self._probe_group(key)
            except CorruptEntryError:
                names.append(decode_name(key))
                continue
            if meta and meta.get("complete"):
                names.append(str(meta.get("name", decode_name(key))))
        return sorted(names)

    def save_probe(
        self,
        name: str,
        *,
        weights: np.ndarray,
        bias: np.ndarray | None = None,
        mean: float | np.ndarray,
        std: float | np.ndarray,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        """Store a linear transform fitted on this entry's features.

        The transform maps a feature row ``x`` to ``((x - mean) / std) @ weights + bias``.

        Args:
            name: probe name (escaped like model names).
            weights: ``(p, q)`` matrix.
            bias: ``(q,)`` vector, or None.
            mean: a scalar or a ``(p,)`` vector subtracted from the features.
            std: a positive scalar or ``(p,)`` vector dividing the centred features.
            attrs: JSON-able configuration and metrics (protocol, lambda, seed,
                accuracies, ...).
            overwrite: replace an existing probe of that name.

        Raises:
            IncompleteEntryError: the entry is not complete.
            MismatchError: shapes do not fit the entry or each other.
            DataError: NaN or infinity, or a non-positive std.
            EntryExistsError: the probe exists and ``overwrite`` is False.
        """
        self.store._require_writable()
        self._readable_rows(False)
        where = f"{self._where}: probe {name!r}"
        key = encode_name(name, "probe")
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[0] != self.p or w.dtype.kind not in "fiu":
            raise MismatchError(
                f"{where}: weights must be a real ({self.p}, q) matrix, got shape {w.shape} "
                f"dtype {w.dtype}"
            )
        store_dtype = np.float64 if w.dtype == np.float64 else np.float32
        arrays: dict[str, np.ndarray] = {"weights": w.astype(store_dtype)}
        q = w.shape[1]
        if bias is not None:
            b = np.asarray(bias)
            if b.shape != (q,) or b.dtype.kind not in "fiu":
                raise MismatchError(f"{where}: bias must be a real ({q},) vector, got shape {b.shape}")
            arrays["bias"] = b.astype(store_dtype)
        scalars: dict[str, float | None] = {}
        for label, value in (("mean", mean), ("std", std)):
            v = np.asarray(value)
            if v.ndim == 0 and v.dtype.kind in "fiu":
                scalars[label] = float(v)
            elif v.shape == (self.p,) and v.dtype.kind in "fiu":
                scalars[label] = None
                arrays[label] = v.astype(np.float64)
            else:
                raise MismatchError(
                    f"{where}: {label} must be a scalar or a ({self.p},) vector, got shape {v.shape}"
                )
        values = {**arrays, **{k: np.asarray(v) for k, v in scalars.items() if v is not None}}
        for label, arr in values.items():
            if not np.isfinite(arr).all():
                raise DataError(f"{where}: {label} holds NaN or infinity")
        if not (values["std"] > 0).all():
            raise DataError(f"{where}: std must be positive")
        user = _jsonable(attrs or {}, f"{where}: attrs")
        store = self.store
        lock = store._lock_entry(encode_name(self.model, "model"), encode_name(self.layer, "layer"),
                                 f"{self.model}/{self.layer}")
        try:
            self._save_probe_locked(name, key, where, arrays, scalars, q, bias is not None,
                                    user, overwrite)
        finally:
            if lock is not None:
                lock.release()

    def _save_probe_locked(
        self, name: str, key: str, where: str, arrays: dict[str, np.ndarray],
        scalars: dict[str, float | None], q: int, has_bias: bool, user: dict[str, Any],
        overwrite: bool,
    ) -> None:
        group = self._probes_group(create=True)
        try:
            held = key in set(self.store._children(group.path))
        except Exception:  # pragma: no cover - listing failed: treat as present
            held = True
        if held:
            if not overwrite:
                raise EntryExistsError(f"{where}: probe already exists; pass overwrite=True")
            del group[key]
        meta = {
            "kind": PROBE_KIND,
            "format_version": FORMAT_VERSION,
            "name": name,
            "p": self.p,
            "q": int(q),
            "has_bias": has_bias,
            "mean": scalars["mean"],
            "std": scalars["std"],
            "complete": False,
            "created": now_utc(),
            "features_checksum": self.checksum,
            "arrays_checksum": _probe_checksum(arrays),
            "attrs": user,
            "versions": versions(),
        }
        pg = group.create_group(key, attributes={ATTR_KEY: meta})
        for label, arr in arrays.items():
            z = pg.create_array(label, shape=arr.shape, chunks=arr.shape, dtype=arr.dtype,
                                **_chunk_codecs())
            z[...] = arr
        meta["complete"] = True
        pg.attrs[ATTR_KEY] = meta

    def load_probe(self, name: str) -> dict[str, Any]:
        """Read a probe saved with :meth:`save_probe`.

        Returns:
            A dict with ``name``, ``weights`` ``(p, q)``, ``bias`` ``(q,)`` or
            None, ``mean`` and ``std`` (float or ``(p,)`` float64 array),
            ``attrs`` (the configuration and metrics) and ``meta`` (the full
            attribute record).

        Raises:
            EntryNotFoundError: no finished probe of that name.
            CorruptEntryError: the probe's record or arrays are damaged (an
                unreadable chunk or ``zarr.json``, wrong shapes, NaN, a
                mismatch with the recorded ``arrays_checksum``), or it was
                fitted on features other than the entry's.
        """
        key = encode_name(name, "probe")
        pg, meta = self._probe_group(key)
        if meta is None or not meta.get("complete"):
            held = ", ".join(self.probes()) or "none"
            raise EntryNotFoundError(
                f"{self._where}: no probe named {name!r} (probes: {held})"
            )
        bad = lambda detail: self._probe_damaged(name, detail)  # noqa: E731
        q = meta.get("q")
        if meta.get("p") != self.p or not isinstance(q, int) or q < 1:
            bad(f"its record says p={meta.get('p')!r} q={q!r} for an entry of p={self.p}")
        if meta.get("features_checksum") != self.checksum:
            bad(f"it was fitted on features {meta.get('features_checksum')} but the entry holds "
                f"{self.checksum}")
        want = {"weights": (self.p, q)}
        if meta.get("has_bias"):
            want["bias"] = (q,)
        for label in ("mean", "std"):
            if meta.get(label) is None:
                want[label] = (self.p,)
        arrays: dict[str, np.ndarray] = {}
        for label, shape in want.items():
            try:
                arr = pg[label]
                arrays[label] = np.asarray(arr[...])
            except KeyError:
                bad(f"its {label} array is missing")
            except MemoryError:
                raise
            except Exception as exc:
                bad(f"its {label} array cannot be read ({type(exc).__name__}: {exc})")
            if arrays[label].shape != shape:
                bad(f"its {label} array is {arrays[label].shape}, expected {shape}")
        recorded = meta.get("arrays_checksum")
        if recorded is not None and _probe_checksum(arrays) != recorded:
            bad(f"arrays checksum {_probe_checksum(arrays)} does not match the recorded {recorded}")
        for label, arr in arrays.items():
            if arr.dtype.kind != "f" or not np.isfinite(arr).all():
                bad(f"its {label} array holds NaN, infinity or non-float values")
        std = meta["std"] if meta.get("std") is not None else arrays.get("std")
        if not np.all(np.asarray(std, dtype=float) > 0):
            bad("its std is not positive")
        return {
            "name": meta["name"],
            "weights": arrays["weights"],
            "bias": arrays.get("bias"),
            "mean": meta["mean"] if meta.get("mean") is not None else arrays["mean"],
            "std": meta["std"] if meta.get("std") is not None else arrays["std"],
            "attrs": dict(meta.get("attrs") or {}),
            "meta": meta,
        }

    def delete_probe(self, name: str) -> None:
        """Remove a probe.

        Raises:
            EntryNotFoundError: no probe of that name.
        """
        self.store._require_writable()
        group = self._probes_group(create=False)
        key = encode_name(name, "probe")
        if group is None or key not in set(self.store._children(group.path)):
            raise EntryNotFoundError(f"{self._where}: no probe named {name!r}")
        lock = self.store._lock_entry(encode_name(self.model, "model"),
                                      encode_name(self.layer, "layer"), f"{self.model}/{self.layer}")
        try:
            del group[key]
        finally:
            if lock is not None:
                lock.release()


# --------------------------------------------------------------------------- writer
class EntryWriter:
    """Writes the rows of a new (or resumed) entry in chunk-aligned blocks.

    Rows are written in order: each block starts at a multiple of
    ``chunk_rows`` no later than ``rows_done`` and spans whole chunks (the
    last block may end at ``n``). ``rows_done`` is saved after each block's
    data, so a process killed between the two never claims unwritten rows.

    On a local store the writer holds the entry's lock file until
    :meth:`finalize` or :meth:`close` (or until it is garbage collected or the
    process exits); a second writer of the entry gets
    :class:`~alignkit.errors.StoreInUseError`. An overwrite of a complete
    entry is written into the store's staging area and swapped in by
    :meth:`finalize`; closing the writer before that leaves the old entry as
    it was. A writer is also a context manager that closes it on exit.

    Example:
        >>> w = st.create("vgg16", "fc7", n=n, p=4096, ids=ids)   # doctest: +SKIP
        >>> for start in range(w.rows_done, n, w.chunk_rows):    # doctest: +SKIP
        ...     w.write_rows(start, compute(start, start + w.chunk_rows))
        >>> entry = w.finalize()                                   # doctest: +SKIP
    """

    def __init__(
        self, entry: Entry, *, _lock: _Lock | None = None, _staging: Path | None = None,
        _target: tuple[str, str] | None = None,
    ) -> None:
        self._state = _WriterState(_lock, _staging)
        self._closer = weakref.finalize(self, self._state.close)
        self.entry = entry
        self._group = entry._group
        self._meta = entry._meta
        self._array = entry._array()
        self._hash = hashlib.sha256() if self.rows_done == 0 else None
        self._hashed_rows = 0
        self._target = _target
        self._final: Entry | None = None

    def _check_open(self) -> None:
        if self._state.closed:
            why = ("a newer writer of the entry in this process took over"
                   if self._state.superseded else "it was closed")
            dropped = "; its unfinished overwrite was dropped" if self._target is not None else ""
            raise StoreError(f"{self.entry._where}: this writer can no longer write: {why}{dropped}")

    def close(self) -> None:
        """Release the entry's lock. An unfinished overwrite is dropped (the old entry stays);
        an unfinished new entry stays incomplete on disk, to be resumed."""
        self._closer()

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def n(self) -> int:
        """Number of rows of the entry."""
        return self.entry.n

    @property
    def p(self) -> int:
        """Number of features per row."""
        return self.entry.p

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk: block starts and lengths are multiples of it."""
        return self.entry.chunk_rows

    @property
    def rows_done(self) -> int:
        """Rows ``[0, rows_done)`` are written; the next block starts here."""
        return int(self._meta["rows_done"])

    def write_rows(self, start: int, block: np.ndarray) -> int:
        """Write rows ``[start, start + len(block))``.

        Args:
            start: first row, a multiple of ``chunk_rows`` and at most ``rows_done``.
            block: ``(k, p)`` real array; ``k`` a multiple of ``chunk_rows``
                unless the block ends at row ``n``.

        Returns:
            The new ``rows_done``.

        Raises:
            InputError: unaligned, out of order or out of range; wrong shape.
            DataError: NaN or infinity (first bad row and column, 1-based), or
                values that overflow float16 storage.
        """
        return self._write(start, block, check=True)

    def _write(self, start: int, block: np.ndarray, *, check: bool) -> int:
        """:meth:`write_rows`; ``check=False`` skips the value checks done by the caller."""
        if self._meta.get("complete"):
            raise StoreError(f"{self.entry._where}: entry is already finalized")
        self._check_open()
        where = self.entry._where
        x = np.asarray(block)
        cr, n = self.chunk_rows, self.n
        if check:  # NaN, infinity, overflow of the storage dtype; rows numbered in the entry
            row0 = int(start) if isinstance(start, (int, np.integer)) and not isinstance(
                start, bool) else 0
            x = as_features(x, name=f"{where}: block", dtype=x.dtype, p=self.p, rows="k",
                            min_rows=1, fits=self.entry.dtype, row_of=lambda r: row0 + r + 1)
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise InputError(f"{where}: start must be an integer, got {start!r}")
        start, k = int(start), int(x.shape[0])
        if start < 0 or start + k > n:
            raise InputError(f"{where}: rows {start}..{start + k} fall outside 0..{n}")
        if start % cr or (k % cr and start + k != n):
            raise InputError(
                f"{where}: unaligned write of rows {start}..{start + k}: blocks must start at a "
                f"multiple of chunk_rows={cr} and span whole chunks (or end at n={n})"
            )
        if start > self.rows_done:
            raise InputError(
                f"{where}: rows must be written in order: next row is {self.rows_done}, "
                f"got a block starting at {start}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            data = np.ascontiguousarray(x, dtype=self.entry.dtype)
        self._array[start:start + k] = data
        if self._hash is not None:
            if start == self._hashed_rows:
                self._hash.update(np.ascontiguousarray(data, dtype="<f4"))
                self._hashed_rows += k
            else:  # a rewrite out of sequence: hash from disk at finalize
                self._hash = None
        if start + k > self.rows_done:
            self._meta["rows_done"] = start + k
            self._group.attrs[ATTR_KEY] = self._meta  # only after the data is stored
        return self.rows_done

    def finalize(self, checksum: bool = True) -> Entry:
        """Mark the entry complete once every row is written.

        Args:
            checksum: record ``features_checksum`` (sha256 of the float32
                features); computed while writing, or read back after a resume.

        Returns:
            The finished :class:`Entry`.

        Raises:
            IncompleteEntryError: fewer than ``n`` rows were written.
        """
        where = self.entry._where
        if self.rows_done != self.n:
            raise IncompleteEntryError(
                f"{where}: cannot finalize: {self.rows_done} of {self.n} rows written"
            )
        if self._meta.get("complete"):
            return self._final or Entry(self.entry.store, self._group)
        self._check_open()
        if checksum:
            if self._hash is not None and self._hashed_rows == self.n:
                digest = "sha256:" + self._hash.hexdigest()
            else:
                h = hashlib.sha256()
                stop = self.n
                step = self.chunk_rows * max(
                    1, _BLOCK_BYTES // (self.chunk_rows * self.p * np.dtype(self.entry.dtype).itemsize)
                )
                for s in range(0, stop, step):
                    h.update(np.ascontiguousarray(self._array[s:s + step], dtype="<f4"))
                digest = "sha256:" + h.hexdigest()
            self._meta["features_checksum"] = digest
        self._meta["completed"] = now_utc()
        self._group.attrs[ATTR_KEY] = self._meta
        self._meta["complete"] = True  # the completion marker is the last thing written
        self._group.attrs[ATTR_KEY] = self._meta
        store = self.entry.store
        if self._target is not None:
            self._swap_in()
            group = store._lookup(*self._target)
            assert group is not None
            self._final = Entry(store, group)
        else:
            self._final = Entry(store, self._group)
        self.close()
        return self._final

    def _swap_in(self) -> None:
        """Put the finished staged entry where the old one is, in one rename where possible."""
        store = self.entry.store
        staging, lock = self._state.staging, self._state.lock
        assert store._local is not None and staging is not None and self._target is not None
        target = store._local.joinpath(*self._target)
        trash_rel = f"{INTERNAL_DIR}/trash/{staging.name}"
        trash = store._local / trash_rel
        trash.parent.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.update(trash=trash_rel)
        if not target.exists():
            os.rename(staging, target)
        elif _exchange(staging, target):
            os.rename(staging, trash)  # staging now holds the old entry
        else:  # no atomic exchange: readers may miss the entry for a moment, never mix them
            os.rename(target, trash)
            os.rename(staging, target)
        self._state.staging = None
        _rmtree(trash)
