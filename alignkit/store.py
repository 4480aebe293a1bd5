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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from alignkit.errors import (
    DataError,
    EntryExistsError,
    EntryNotFoundError,
    IncompleteEntryError,
    InputError,
    MismatchError,
    NotAStoreError,
    StoreError,
)
from alignkit.provenance import now_utc, versions

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
]

#: Version of the on-disk layout written by this module.
FORMAT_VERSION = 1
#: Key under which alignkit keeps its attributes in every group it writes.
ATTR_KEY = "alignkit"
STORE_KIND = "embedding-store"
ENTRY_KIND = "embedding-entry"
PROBE_KIND = "probe"
PROBES_GROUP = "probes"

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
    ``%2E``, and ``zarr.json`` becomes ``zarr%2Ejson``. :func:`decode_name`
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
    return out


def decode_name(node_name: str) -> str:
    """Invert :func:`encode_name`: the original name of a node on disk."""
    return unquote(node_name)


# --------------------------------------------------------------------------- helpers
def default_chunk_rows(n: int, p: int, dtype: str = "float32") -> int:
    """Rows per chunk so that one chunk holds about 8 MiB (at least one row, at most n)."""
    row_bytes = max(1, p * np.dtype(dtype).itemsize)
    return int(max(1, min(n, _TARGET_CHUNK_BYTES // row_bytes)))


def features_checksum(features: np.ndarray) -> str:
    """``"sha256:<hex>"`` of the features as little-endian float32, C order.

    This is the ``features_checksum`` recorded when an entry is finalized; it
    equals ``hashlib.sha256(entry.features().astype("<f4").tobytes())``.
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features, dtype="<f4"))
    return "sha256:" + h.hexdigest()


def _jsonable(attrs: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A JSON round-tripped copy of ``attrs`` (numpy scalars and paths made plain)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, os.PathLike):
            return os.fspath(obj)
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    if not isinstance(attrs, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(attrs).__name__}")
    try:
        return json.loads(json.dumps(dict(attrs), default=default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be JSON-serialisable: {exc}") from None


def _first_nonfinite(block: np.ndarray) -> tuple[int, int] | None:
    """0-based (row, column) of the first NaN or infinity of a 2-D array, or None."""
    finite = np.isfinite(block)
    if finite.all():
        return None
    r, c = np.argwhere(~finite)[0]
    return int(r), int(c)


def _check_values(x: np.ndarray, dtype: str, where: str, row0: int = 0) -> None:
    """Refuse NaN, infinity and values that overflow the storage dtype.

    Row numbers in messages are 1-based and offset by ``row0``. Casting is
    monotone, so checking the cast of the minimum and maximum is exact.
    """
    if x.dtype.kind == "f":
        bad = _first_nonfinite(x)
        if bad is not None:
            raise DataError(
                f"{where}: value {x[bad]} at row {row0 + bad[0] + 1}, column {bad[1] + 1}; "
                "NaN and infinity are not allowed"
            )
    if x.size == 0 or (x.dtype.kind == "f" and np.dtype(dtype).itemsize >= x.dtype.itemsize):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        ends = np.array([x.min(), x.max()]).astype(dtype)
        if np.isfinite(ends).all():
            return
        bad = _first_nonfinite(x.astype(dtype))
    if bad is None:  # unreachable: the minimum or maximum overflowed
        return
    hint = "; store as float32" if dtype == "float16" else ""
    raise DataError(
        f"{where}: value {x[bad]} at row {row0 + bad[0] + 1}, column {bad[1] + 1} "
        f"overflows {dtype}{hint}"
    )


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
    empty = np.flatnonzero(arr == "")
    if empty.size:
        raise DataError(f"{where}: id {int(empty[0]) + 1} is an empty string")
    if np.unique(arr).size != arr.size:
        seen: dict[str, int] = {}
        for row, value in enumerate(arr.tolist()):
            if value in seen:
                raise DataError(
                    f"{where}: id {value!r} occurs more than once (rows {seen[value] + 1} "
                    f"and {row + 1}); ids must be unique"
                )
            seen[value] = row
    return arr


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
            if not local.exists() or not any(local.iterdir()):
                if mode == "r":
                    what = "does not exist" if not local.exists() else "is an empty directory"
                    raise NotAStoreError(f"{name}: {what}, not an alignkit store")
                return self._create_root(path)
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
    def entries(self) -> list[tuple[str, str]]:
        """All (model, layer) pairs of the store, complete or not, sorted."""
        out: list[tuple[str, str]] = []
        with warnings.catch_warnings():
            # the results table (results.jsonl) sits beside the groups; zarr
            # warns about any file it does not know when listing members
            warnings.filterwarnings("ignore", message=r".*results\.jsonl.*")
            for _, model_group in self._root.groups():
                for _, layer_group in model_group.groups():
                    meta = _meta(layer_group)
                    if meta is not None and meta.get("kind") == ENTRY_KIND:
                        out.append((str(meta["model"]), str(meta["layer"])))
        return sorted(out)

    def has(self, model: str, layer: str) -> bool:
        """Whether the store holds an entry (complete or not) for ``model``/``layer``."""
        return self._entry_group(model, layer) is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and self.has(*key)

    def _entry_group(self, model: str, layer: str) -> zarr.Group | None:
        import zarr

        key = f"{encode_name(model, 'model')}/{encode_name(layer, 'layer')}"
        try:
            node = self._root[key]
        except KeyError:
            return None
        if not isinstance(node, zarr.Group):
            return None
        meta = _meta(node)
        return node if meta is not None and meta.get("kind") == ENTRY_KIND else None

    def entry(self, model: str, layer: str) -> Entry:
        """The entry for ``model``/``layer``.

        Raises:
            EntryNotFoundError: no such entry; the message lists what the store holds.
        """
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

        existing = self._entry_group(model, layer)
        if existing is not None:
            writer = self._reuse(existing, where, n, p, dtype, chunk_rows, ids_arr, user,
                                 overwrite=overwrite, resume=resume)
            if writer is not None:
                return writer
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
            "created": now_utc(),
            "completed": None,
            "provenance": user,
            "versions": versions(),
        }
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
        return EntryWriter(Entry(self, group))

    def _reuse(
        self, group: zarr.Group, where: str, n: int, p: int, dtype: str,
        chunk_rows: int | None, ids: np.ndarray, user: dict[str, Any], *,
        overwrite: bool, resume: bool,
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
        return EntryWriter(Entry(self, group))

    @staticmethod
    def _create_arrays(
        group: zarr.Group, n: int, p: int, dtype: str, chunk_rows: int, ids: np.ndarray
    ) -> None:
        ids_arr = group.create_array(
            "ids", shape=(n,), chunks=(min(n, 1 << 20),), dtype=str, overwrite=True,
            dimension_names=("stimulus",),
        )
        ids_arr[:] = ids
        group.create_array(
            "features", shape=(n, p), chunks=(chunk_rows, p), dtype=dtype,
            fill_value=np.nan, overwrite=True,
            dimension_names=("stimulus", "feature"),
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
        if x.ndim != 2:
            raise InputError(f"{where}: features must be 2-D (n x p), got shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise InputError(f"{where}: features must be real numbers, got dtype {x.dtype}")
        if dtype is None:
            dtype = "float16" if x.dtype == np.float16 else "float32"
        dtype = _storage_dtype(dtype, where)
        _check_values(x, dtype, where)  # before anything is created or replaced
        writer = self.create(
            model, layer, n=x.shape[0], p=x.shape[1], ids=ids, dtype=dtype, attrs=attrs,
            chunk_rows=chunk_rows, overwrite=overwrite,
        )
        cr = writer.chunk_rows
        step = cr * max(1, _BLOCK_BYTES // (cr * x.shape[1] * np.dtype(dtype).itemsize))
        for start in range(0, x.shape[0], step):
            writer._write(start, x[start:start + step], check=False)
        return writer.finalize()

    def delete(self, model: str, layer: str) -> None:
        """Remove an entry (complete or not) and its probes; an emptied model group goes too.

        Raises:
            EntryNotFoundError: no such entry.
        """
        self._require_writable()
        self.entry(model, layer)  # raises if missing
        model_key = encode_name(model, "model")
        del self._root[f"{model_key}/{encode_name(layer, 'layer')}"]
        if not any(True for _ in self._root[model_key].group_keys()):
            del self._root[model_key]


# --------------------------------------------------------------------------- entry
class Entry:
    """One (model, layer) of a store: its features, ids, attributes and probes.

    Metadata (``n``, ``complete``, ``rows_done``, ...) is a snapshot taken when
    the entry was opened; open it again to see a concurrent writer's progress.
    """

    def __init__(self, store: EmbeddingStore, group: zarr.Group) -> None:
        self.store = store
        self._group = group
        self._meta: dict[str, Any] = _meta(group) or {}
        self._ids: np.ndarray | None = None

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
        """The ``n`` stimulus ids as a numpy string array (read once, then cached)."""
        if self._ids is None:
            if "ids" not in self._group.array_keys():
                raise StoreError(f"{self._where}: the ids array is missing (interrupted at creation)")
            self._ids = _str_array(self._group["ids"][:])
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

    def _array(self) -> zarr.Array:
        if "features" not in self._group.array_keys():
            raise StoreError(f"{self._where}: the features array is missing")
        return self._group["features"]

    def features(self, allow_incomplete: bool = False) -> np.ndarray:
        """The features as a float32 ``(n, p)`` array.

        Args:
            allow_incomplete: for an interrupted entry, return the first
                ``rows_done`` rows instead of raising.

        Raises:
            IncompleteEntryError: the entry was not finalized.
        """
        rows = self._readable_rows(allow_incomplete)
        if rows == 0:
            return np.empty((0, self.p), dtype=np.float32)
        data = self._array()[:rows]
        return np.ascontiguousarray(data, dtype=np.float32)

    def features_iter(
        self, block_rows: int | None = None, allow_incomplete: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Read the features block by block without loading them all.

        Args:
            block_rows: rows per block; default a multiple of the chunk rows
                of about 64 MiB.
            allow_incomplete: iterate over the ``rows_done`` rows of an
                interrupted entry instead of raising.

        Yields:
            ``(start, block)``: the 0-based first row and a float32 block.
        """
        rows = self._readable_rows(allow_incomplete)
        if block_rows is None:
            cr = self.chunk_rows
            block_rows = cr * max(1, _BLOCK_BYTES // (cr * self.p * np.dtype(self.dtype).itemsize))
        if isinstance(block_rows, bool) or int(block_rows) < 1:
            raise InputError(f"block_rows must be a positive integer, got {block_rows!r}")
        arr = self._array() if rows else None
        for start in range(0, rows, int(block_rows)):
            stop = min(rows, start + int(block_rows))
            yield start, np.ascontiguousarray(arr[start:stop], dtype=np.float32)

    def verify(self) -> str:
        """Recompute the features checksum from disk and compare it with the record.

        Returns:
            The checksum.

        Raises:
            IncompleteEntryError: the entry is incomplete.
            StoreError: the data on disk no longer matches the recorded checksum.
        """
        self._readable_rows(False)
        h = hashlib.sha256()
        for _, block in self.features_iter():
            h.update(np.ascontiguousarray(block, dtype="<f4"))
        got = "sha256:" + h.hexdigest()
        if self.checksum is not None and got != self.checksum:
            raise StoreError(
                f"{self._where}: features checksum {got} does not match the recorded "
                f"{self.checksum}; the data changed after it was written"
            )
        return got

    # ---- probes
    def _probes_group(self, create: bool) -> zarr.Group | None:
        if PROBES_GROUP in set(self._group.group_keys()):
            return self._group[PROBES_GROUP]
        if not create:
            return None
        return self._group.create_group(PROBES_GROUP, attributes={ATTR_KEY: {"kind": "probes"}})

    def probes(self) -> list[str]:
        """Names of the finished probes fitted on this entry, sorted."""
        group = self._probes_group(create=False)
        if group is None:
            return []
        names = []
        for _, g in group.groups():
            meta = _meta(g)
            if meta and meta.get("kind") == PROBE_KIND and meta.get("complete"):
                names.append(str(meta["name"]))
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

        group = self._probes_group(create=True)
        if key in set(group.group_keys()):
            if not overwrite:
                raise EntryExistsError(f"{where}: probe already exists; pass overwrite=True")
            del group[key]
        meta = {
            "kind": PROBE_KIND,
            "format_version": FORMAT_VERSION,
            "name": name,
            "p": self.p,
            "q": int(q),
            "has_bias": bias is not None,
            "mean": scalars["mean"],
            "std": scalars["std"],
            "complete": False,
            "created": now_utc(),
            "features_checksum": self.checksum,
            "attrs": user,
            "versions": versions(),
        }
        pg = group.create_group(key, attributes={ATTR_KEY: meta})
        for label, arr in arrays.items():
            z = pg.create_array(label, shape=arr.shape, chunks=arr.shape, dtype=arr.dtype)
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
        """
        group = self._probes_group(create=False)
        key = encode_name(name, "probe")
        pg = group[key] if group is not None and key in set(group.group_keys()) else None
        meta = _meta(pg) if pg is not None else None
        if meta is None or not meta.get("complete"):
            held = ", ".join(self.probes()) or "none"
            raise EntryNotFoundError(
                f"{self._where}: no probe named {name!r} (probes: {held})"
            )
        arrays = set(pg.array_keys())

        def read(label: str) -> np.ndarray:
            return np.asarray(pg[label][...])

        return {
            "name": meta["name"],
            "weights": read("weights"),
            "bias": read("bias") if "bias" in arrays else None,
            "mean": meta["mean"] if meta.get("mean") is not None else read("mean"),
            "std": meta["std"] if meta.get("std") is not None else read("std"),
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
        if group is None or key not in set(group.group_keys()):
            raise EntryNotFoundError(f"{self._where}: no probe named {name!r}")
        del group[key]


# --------------------------------------------------------------------------- writer
class EntryWriter:
    """Writes the rows of a new (or resumed) entry in chunk-aligned blocks.

    Rows are written in order: each block starts at a multiple of
    ``chunk_rows`` no later than ``rows_done`` and spans whole chunks (the
    last block may end at ``n``). ``rows_done`` is saved after each block's
    data, so a process killed between the two never claims unwritten rows.

    Example:
        >>> w = st.create("vgg16", "fc7", n=n, p=4096, ids=ids)   # doctest: +SKIP
        >>> for start in range(w.rows_done, n, w.chunk_rows):    # doctest: +SKIP
        ...     w.write_rows(start, compute(start, start + w.chunk_rows))
        >>> entry = w.finalize()                                   # doctest: +SKIP
    """

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self._group = entry._group
        self._meta = entry._meta
        self._array = entry._array()
        self._hash = hashlib.sha256() if self.rows_done == 0 else None
        self._hashed_rows = 0

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
        where = self.entry._where
        x = np.asarray(block)
        cr, n = self.chunk_rows, self.n
        if x.ndim != 2 or x.shape[1] != self.p or x.shape[0] < 1:
            raise InputError(f"{where}: block must be (k, {self.p}) with k >= 1, got {x.shape}")
        if x.dtype.kind not in "fiu":
            raise InputError(f"{where}: block must hold real numbers, got dtype {x.dtype}")
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
        if check:
            _check_values(x, self.entry.dtype, where, start)
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
            return Entry(self.entry.store, self._group)
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
        return Entry(self.entry.store, self._group)
