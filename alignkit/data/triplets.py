"""Odd-one-out triplets: reading, validating and saving.

Every reader returns a :class:`Triplets` whose ``array`` is ``int32 (N, 3)``
with 0-based canonical object indices and the human's **odd one out last**:
a row ``i j k`` means the pair ``(i, j)`` was judged the most similar. The
``convention`` attribute says in one sentence how the source was read.

Formats (``format=``):

* ``npy``: an ``(N, 3)`` integer array (integral floats are accepted).
* ``text`` / ``csv``: ``N x 3`` integers separated by whitespace or commas;
  a first line made only of non-numeric tokens is a header and is skipped;
  blank lines and ``#`` comments are ignored.
* ``things-validation``: the THINGS ``validationset.csv`` release, header
  ``img1,img2,ooo``; 0-based canonical indices, ``ooo`` is the odd one out.
* ``raw``: the raw published format, 5 tab-separated columns: three 1-based
  indices in the raw (pre-sort) object order, the position (1-3) of the chosen
  odd one out and a worker-batch id. Raw index ``r`` (0-based) maps to the
  canonical index ``c`` with ``sortindex[c] == r``; the chosen item moves last
  and the other two keep their order.
* ``auto`` (default): by extension (``.npy`` or text) and content (a header
  ``img1,img2,ooo`` means ``things-validation``; 5 columns whose 4th is in 1..3
  mean ``raw``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.data.bundled import BUNDLED, bundled_path, resolve_source
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_array, sha256_file
from alignkit.validate import as_triplets, check_triplet_shape

__all__ = [
    "Triplets", "load_triplets", "load_sortindex", "concat_triplets", "split_by_subject",
    "THINGS_N_OBJECTS", "FORMATS",
]

#: Number of THINGS object concepts.
THINGS_N_OBJECTS = 1854

#: Values accepted by ``load_triplets(format=...)``.
FORMATS = ("auto", "npy", "text", "csv", "things-validation", "raw")

_TEXT_EXTENSIONS = (".txt", ".tsv", ".csv", ".dat", ".tab")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
# raw chosen position (0, 1, 2) -> column order that moves it last, others kept
_ODD_LAST = np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]], dtype=np.intp)


@dataclass(frozen=True, eq=False)
class Triplets:
    """Human odd-one-out judgments in the canonical convention.

    Attributes:
        array: ``int32 (N, 3)``, 0-based object indices, odd one out last.
        n_objects: number of objects the indices refer to (all indices are
            smaller).
        source: where the triplets came from (a path, a bundled name or
            ``"<array>"``).
        checksum: ``"sha256:..."`` of the source file (of the array's bytes for
            in-memory data).
        convention: a sentence saying how the source was read.
        object_ids: the stimulus ids of objects ``0..n_objects-1`` (a ``str`` array), or
            None when the source does not say which objects its indices mean. THINGS
            releases carry the THINGS uniqueIDs in canonical order; other files get them
            from ``object_ids=`` (``--object-ids``). Scoring matches features to triplets
            by these ids.
        subjects: ``(N,)`` str array, the participant who gave each judgment, or None
            when the source does not say (see :func:`split_by_subject`).
        row_info: per-judgment columns the source carries besides the triplet (e.g.
            ``noise_ceiling`` and ``dataset`` of the raw 2023 release, ``level`` of the
            Levels data, ``similarities`` of AligNet), each an ``(N,)`` or ``(N, k)``
            array, or None.
    """

    array: np.ndarray
    n_objects: int
    source: str
    checksum: str
    convention: str
    object_ids: np.ndarray | None = None
    subjects: np.ndarray | None = None
    row_info: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        a = self.array
        if not isinstance(a, np.ndarray) or a.dtype != np.int32 or a.ndim != 2 or a.shape[1] != 3:
            raise InputError(
                f"{self.source}: Triplets.array must be an int32 (N, 3) array; "
                "use Triplets.from_array to convert and validate"
            )
        if int(self.n_objects) < 3:
            raise InputError(f"{self.source}: n_objects must be at least 3, got {self.n_objects}")
        ids = self.object_ids
        if ids is not None and (not isinstance(ids, np.ndarray) or len(ids) != int(self.n_objects)):
            raise MismatchError(
                f"{self.source}: {len(ids)} object ids for {self.n_objects} objects; "
                "give one id per object 0..n-1"
            )
        n = int(a.shape[0])
        if self.subjects is not None and len(self.subjects) != n:
            raise MismatchError(f"{self.source}: {len(self.subjects)} subject ids for {n} triplets")
        for k, v in (self.row_info or {}).items():
            if len(v) != n:
                raise MismatchError(f"{self.source}: row_info {k!r} has {len(v)} rows for {n} triplets")

    def select(self, rows: Any, *, note: str | None = None) -> Triplets:
        """The judgments at ``rows`` (a boolean mask or indices), with their subjects and row info.

        The checksum stays the source file's; the convention says how many rows were kept.
        """
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp)
        info = None if self.row_info is None else {k: v[idx] for k, v in self.row_info.items()}
        conv = self.convention + f"; {len(idx)} of {len(self)} judgments kept" + (f" ({note})" if note else "")
        return Triplets(
            np.ascontiguousarray(self.array[idx]), self.n_objects, self.source, self.checksum, conv,
            self.object_ids, None if self.subjects is None else self.subjects[idx], info,
        )

    @property
    def is_things(self) -> bool:
        """True when the object ids are THINGS uniqueIDs (checked id by id, any order)."""
        return self.object_ids is not None and all_things_ids(self.object_ids)

    def with_object_ids(self, ids: Any, *, label: str | None = None) -> Triplets:
        """The same triplets with the ids of their objects (``"things"``, a file or a list).

        Raises:
            MismatchError: fewer ids than the objects the triplets index.
            DataError: repeated or empty ids.
        """
        arr, label = _object_ids(ids, label)
        if len(arr) < int(self.n_objects):
            raise MismatchError(
                f"{self.source}: {label} names {len(arr)} objects but the triplets index "
                f"{self.n_objects} (objects 0..{int(self.n_objects) - 1})"
            )
        return Triplets(
            self.array, len(arr), self.source, self.checksum,
            f"{self.convention}; object ids from {label}", arr, self.subjects, self.row_info,
        )

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __repr__(self) -> str:
        return (
            f"Triplets(n={len(self)}, n_objects={self.n_objects}, source={self.source!r}, "
            f"checksum={self.checksum[:19]}...)"
        )

    @classmethod
    def from_array(
        cls,
        a: Any,
        n_objects: int | None = None,
        source: str = "<array>",
        convention: str | None = None,
    ) -> Triplets:
        """Validate an in-memory ``(N, 3)`` array of 0-based indices, odd one out last.

        Args:
            a: array-like of integers (integral floats are accepted).
            n_objects: number of objects; default ``max + 1``.
            source: a name for messages and provenance.
            convention: overrides the default description.

        Returns:
            A validated :class:`Triplets` with a checksum of the int32 array.

        Raises:
            FormatError: wrong shape or a non-numeric dtype.
            DataError: non-integer values, out-of-range indices or a repeated
                object within a triplet (the message gives the 1-based row).
        """
        arr = _as_int(np.asarray(a), source)
        n = _validate(arr, n_objects, source, _row_plain)
        out = arr.astype(np.int32)
        conv = convention or (
            "in-memory array (N x 3): 0-based indices, odd one out in column 3 (as given); "
            + _n_note(n_objects, n)
        )
        return cls(out, n, source, sha256_array(out), conv)

    @property
    def similar_pairs(self) -> np.ndarray:
        """The ``(N, 2)`` pairs judged most similar (a view of the first two columns)."""
        return self.array[:, :2]

    @property
    def odd(self) -> np.ndarray:
        """The ``(N,)`` odd-one-out objects (a view of the last column)."""
        return self.array[:, 2]

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: source, shape, n_objects, convention, checksum."""
        return {
            "kind": "triplets",
            "source": self.source,
            "shape": list(self.array.shape),
            "n_triplets": len(self),
            "n_objects": int(self.n_objects),
            "objects_used": int(np.count_nonzero(np.bincount(self.array.ravel(), minlength=1))),
            "convention": self.convention,
            "checksum": self.checksum,
            "object_ids": _ids_note(self.object_ids),
            **({"subjects": int(len(np.unique(self.subjects)))} if self.subjects is not None else {}),
            **({"row_info": sorted(self.row_info)} if self.row_info else {}),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the triplets as ``.npy`` (int32) or ``.txt`` (space separated).

        Both round-trip through :func:`load_triplets` (give ``n_objects`` to keep
        a value other than ``max + 1``).

        Args:
            path: destination ending in ``.npy`` or ``.txt``.

        Returns:
            The path written.

        Raises:
            FormatError: any other extension.
        """
        p = Path(path)
        ext = p.suffix.lower()
        if ext == ".npy":
            np.save(p, self.array)
        elif ext == ".txt":
            np.savetxt(p, self.array, fmt="%d", delimiter=" ")
        else:
            raise FormatError(f"{p}: cannot save triplets as {ext or 'no extension'!r}; use .npy or .txt")
        return p


# ---------------------------------------------------------------------------
# public readers


def split_by_subject(triplets: Triplets, subjects: Any = None) -> dict[str, Triplets]:
    """The judgments of each participant as a separate :class:`Triplets`.

    Args:
        triplets: triplets read from a source that records participants
            (``Triplets.subjects``; e.g. the raw THINGS 2023 release or the Levels data).
        subjects: only these participants (any iterable of ids); default all, in
            sorted order.

    Raises:
        InputError: the triplets carry no subject ids.
        MismatchError: a requested participant has no judgment.
    """
    if triplets.subjects is None:
        raise InputError(
            f"{triplets.source}: these triplets carry no subject ids (read a file that records "
            "participants, e.g. the raw THINGS 2023 CSV or the Levels data)"
        )
    subj = np.asarray(triplets.subjects).astype(str)
    wanted = sorted(np.unique(subj).tolist()) if subjects is None else [str(s) for s in subjects]
    out: dict[str, Triplets] = {}
    for s in wanted:
        mask = subj == s
        if not mask.any():
            raise MismatchError(f"{triplets.source}: no judgment by subject {s!r}")
        out[s] = triplets.select(mask, note=f"subject {s}")
    return out


def concat_triplets(parts: Sequence[Triplets]) -> Triplets:
    """Several triplet sets as one (e.g. THINGS ``train_90`` + ``test_10``).

    The paper's zero-shot accuracy is computed on all triplets. The result's
    checksum is the sha256 of the parts' checksums in order, its source the
    parts' sources joined by ``" + "``.

    Raises:
        MismatchError: the parts disagree on the number of objects.
    """
    parts = list(parts)
    if not parts:
        raise InputError("no triplet sets to join")
    if len(parts) == 1:
        return parts[0]
    sizes = {int(p.n_objects) for p in parts}
    if len(sizes) > 1:
        raise MismatchError(
            "the triplet sets index different numbers of objects: "
            + ", ".join(f"{p.source} ({p.n_objects})" for p in parts)
        )
    ids = [p.object_ids for p in parts]
    if any((a is None) != (ids[0] is None) or (a is not None and not np.array_equal(a, ids[0]))
           for a in ids):
        raise MismatchError(
            "the triplet sets name their objects differently: "
            + ", ".join(f"{p.source} ({_ids_note(p.object_ids) or 'no object ids'})" for p in parts)
        )
    digest = hashlib.sha256("|".join(p.checksum for p in parts).encode()).hexdigest()
    conventions = list(dict.fromkeys(p.convention for p in parts))
    return Triplets(
        np.concatenate([p.array for p in parts], axis=0),
        sizes.pop(),
        " + ".join(p.source for p in parts),
        "sha256:" + digest,
        "; ".join(conventions),
        ids[0],
        np.concatenate([p.subjects for p in parts]) if all(p.subjects is not None for p in parts) else None,
        _concat_info([p.row_info for p in parts]),
    )


def _concat_info(infos: list[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray] | None:
    """Row info columns that every part has, joined; None when none is shared."""
    if any(i is None for i in infos):
        return None
    keys = set.intersection(*(set(i) for i in infos if i is not None))
    return {k: np.concatenate([i[k] for i in infos if i is not None]) for k in sorted(keys)} or None


def load_sortindex(source: Any = "things-sortindex") -> np.ndarray:
    """Read a raw-to-canonical permutation (canonical row ``c`` = raw row ``sortindex[c]``).

    Args:
        source: an integer array, a text/``.npy`` file or a bundled name
            (default: the THINGS ``vice_sortindex.txt``).

    Returns:
        ``int64 (n,)``, a permutation of ``0..n-1``.

    Raises:
        DataError: not a permutation (the message names the first bad row).
    """
    if isinstance(source, (str, os.PathLike)):
        path, _ = resolve_source(source)
        where = str(path)
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            try:
                values = np.loadtxt(path, dtype=np.int64, ndmin=1, comments="#",
                                    encoding="utf-8-sig")
            except ValueError as exc:
                raise FormatError(f"{path}: sortindex must be one integer a line ({exc})") from None
    else:
        values, where = np.asarray(source), "sortindex"
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0:
        raise FormatError(f"{where}: sortindex must be a non-empty 1-D list of integers")
    values = _as_int(values.reshape(-1, 1), where).ravel()
    n = values.size
    bad = np.flatnonzero((values < 0) | (values >= n))
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{where}: row {r + 1}: sortindex value {values[r]} is outside 0..{n - 1}")
    counts = np.bincount(values, minlength=n)
    if (counts != 1).any():
        dup = int(np.flatnonzero(counts > 1)[0])
        r = int(np.flatnonzero(values == dup)[1])
        raise DataError(f"{where}: row {r + 1}: sortindex value {dup} repeats; not a permutation")
    return values


def load_triplets(
    source: Any,
    *,
    format: str = "auto",
    n_objects: int | None = None,
    sortindex: Any = None,
    object_ids: Any = None,
) -> Triplets:
    """Read odd-one-out triplets into the canonical convention.

    Args:
        source: a path (``.npy``, ``.txt``, ``.tsv``, ``.csv``, ``.dat``), a
            bundled name (``"things-test20k"``) or an in-memory ``(N, 3)`` array.
        format: one of :data:`FORMATS` (see the module docstring).
        n_objects: number of objects; default 1854 for bundled THINGS data, the
            THINGS validation release and raw files read with the THINGS
            sortindex, else ``len(sortindex)`` for raw files, else ``max + 1``.
        sortindex: for the raw format only: an array, a file or a bundled name;
            default the bundled THINGS sortindex (when ``n_objects`` is 1854 or
            unspecified).
        object_ids: the stimulus ids of objects ``0..n-1``: ``"things"`` (the 1854 THINGS
            uniqueIDs in canonical order), a text file (one id a line) or a sequence.
            Bundled THINGS triplets, the THINGS validation release and raw files read with
            the THINGS sortindex carry the THINGS ids without it; any other file has no
            object ids unless given, and scoring it against stored features needs them.

    Returns:
        :class:`Triplets` (``int32 (N, 3)``, 0-based canonical, odd one out last).

    Raises:
        InputError: unknown ``format`` or a missing file.
        FormatError: unknown extension, empty file, wrong column count,
            non-numeric values or a raw file without a usable sortindex.
        DataError: non-integer values, out-of-range indices, a repeated object
            within a triplet or a bad chosen position; the 1-based row is named.

    Example:
        >>> t = load_triplets("things-test20k")
        >>> t.array.shape, t.n_objects
        ((20000, 3), 1854)
    """
    if format not in FORMATS:
        raise InputError(f"unknown triplet format {format!r}; expected one of {', '.join(FORMATS)}")
    if not isinstance(source, (str, os.PathLike)):
        if format not in ("auto", "npy"):
            raise InputError(f"format={format!r} applies to files, not to an in-memory array")
        out = Triplets.from_array(source, n_objects=n_objects)
        return out if object_ids is None else out.with_object_ids(object_ids)
    if isinstance(source, str) and not os.path.exists(source):
        from alignkit.data.public import reader_defaults  # a fetched public data set's name

        pub = reader_defaults(source, "triplets")
        if format == "auto" and pub.get("format") not in (None, *FORMATS):
            # a published format with a reader of its own (the raw 2023 CSV, the splits, ...)
            from alignkit.data.formats import read_format

            t = read_format(resolve_source(source)[0], pub["format"])
            if n_objects is not None and int(n_objects) != int(t.n_objects):
                raise InputError(f"{source}: n_objects={n_objects} given, but its reader "
                                 f"({pub['format']}) reads {t.n_objects} objects")
            return t if object_ids is None else t.with_object_ids(object_ids)
        if n_objects is None and object_ids is None:
            n_objects, object_ids = pub.get("n_objects"), pub.get("object_ids")
        format = pub["format"] if format == "auto" and pub.get("format") in FORMATS else format
    path, name = resolve_source(source)
    if name is not None and BUNDLED[name].kind != "triplets":
        raise InputError(f"bundled data set {name!r} is not a triplet set (it is {BUNDLED[name].kind})")
    where = name if name is not None else str(path)
    fmt = _resolve_format(format, path, name)
    if fmt == "npy":
        arr = _read_npy(path, where)
        row_of = _row_plain
        desc = "NumPy .npy array (N x 3): 0-based indices, odd one out in column 3 (as stored)"
    else:
        arr, fmt, row_of, desc = _read_text_triplets(path, fmt, auto=format == "auto")
    things = False
    if fmt == "raw":
        arr, n, desc = _from_raw(arr, path, row_of, n_objects, sortindex)
        note = f"n_objects = {n} (" + ("given)" if n_objects is not None else "length of the sortindex)")
        things = sortindex is None  # canonical THINGS order via the bundled sortindex
    else:
        if sortindex is not None:
            raise InputError(f"{where}: sortindex applies to the raw format only, not to {fmt}")
        things = n_objects is None and (name is not None or fmt == "things-validation")
        n = _validate(arr, THINGS_N_OBJECTS if things else n_objects, where, row_of)
        note = _n_note(n_objects, n, things=things)
    if name is not None:
        desc = f"bundled {name!r}: " + desc
    out = Triplets(np.ascontiguousarray(arr, dtype=np.int32), n, where, sha256_file(path),
                   f"{desc}; {note}")
    if object_ids is not None:
        return out.with_object_ids(object_ids)
    if things and n == THINGS_N_OBJECTS:
        return out.with_object_ids("things", label="the THINGS release (canonical order)")
    return out


def _resolve_format(format: str, path: Path, name: str | None) -> str:
    """The concrete format of a file: from ``format=`` or, for auto, the extension."""
    ext = path.suffix.lower()
    if name is not None:  # bundled triplets are stored as .npy
        if format not in ("auto", "npy"):
            raise InputError(f"bundled {name!r} is stored as .npy; format={format!r} does not apply")
        return "npy"
    if format != "auto":
        return format
    if ext == ".npy":
        return "npy"
    if ext in _TEXT_EXTENSIONS:
        return "text"
    raise FormatError(
        f"{path}: unknown triplet file extension {ext or '(none)'!r}; expected .npy or "
        f"text ({', '.join(_TEXT_EXTENSIONS)}), or pass format="
    )


def _read_text_triplets(path: Path, fmt: str, *, auto: bool) -> tuple[np.ndarray, str, Any, str]:
    """Read a text triplet file; return (int array, concrete format, row mapper, description).

    The array has the file's columns except for ``things-validation``, whose
    columns are already reordered to ``img1, img2, ooo``; raw rows keep their 5
    columns for :func:`_from_raw`.
    """
    arr, header, skip, delim = _read_text(path)
    row_of = _text_row_mapper(path, skip)
    ncol = arr.shape[1]
    lower = [h.strip().lower() for h in header] if header else []
    is_validation = {"img1", "img2", "ooo"} <= set(lower)
    if fmt == "things-validation" and not is_validation:
        raise FormatError(f"{path}: THINGS validation format needs the header img1,img2,ooo")
    if fmt == "things-validation" or (auto and is_validation):
        arr = arr[:, [lower.index("img1"), lower.index("img2"), lower.index("ooo")]]
        desc = (
            "THINGS validationset.csv (header img1,img2,ooo): 0-based canonical indices, "
            "odd one out = column ooo, placed last"
        )
        return arr, "things-validation", row_of, desc
    if fmt == "raw" or (auto and ncol == 5):
        if ncol != 5:
            raise FormatError(
                f"{path}: raw format needs 5 columns (3 indices, chosen position, batch id), "
                f"found {ncol}"
            )
        pos = arr[:, 3]
        bad = np.flatnonzero((pos < 1) | (pos > 3))
        if bad.size:
            r = int(bad[0])
            if auto:
                raise FormatError(
                    f"{path}: row {row_of(r)}: 5 columns but column 4 ({pos[r]}) is not a chosen "
                    "position 1-3, so this is neither a 3-column triplet file nor the raw format"
                )
            raise DataError(f"{path}: row {row_of(r)}: chosen position {pos[r]} is not 1, 2 or 3")
        return arr, "raw", row_of, "raw"
    if ncol != 3:
        raise FormatError(
            f"{path}: row {row_of(0)}: expected 3 columns (i j odd), or 5 for the raw format, "
            f"found {ncol}"
        )
    sep = "comma" if delim == "," else "whitespace"
    hdr = ", header skipped" if header else ""
    desc = f"text, {sep} separated (N x 3{hdr}): 0-based indices, odd one out in column 3 (as stored)"
    return arr, fmt, row_of, desc


# ---------------------------------------------------------------------------
# helpers


def all_things_ids(ids: np.ndarray) -> bool:
    """Whether every id (at least one) is a THINGS uniqueID, checked one by one."""
    from alignkit.data.concepts import things_ids

    ids = np.asarray(ids)
    return bool(ids.size) and bool(np.isin(ids, things_ids()).all())


def _object_ids(ids: Any, label: str | None) -> tuple[np.ndarray, str]:
    """Object ids from ``"things"``, a file or a sequence, checked unique and non-empty."""
    if isinstance(ids, str) and ids == "things":
        from alignkit.data.concepts import things_ids

        return things_ids().astype(str), label or "THINGS uniqueIDs (canonical order)"
    if isinstance(ids, (str, os.PathLike)):
        from alignkit.data.features import load_ids

        return np.asarray(load_ids(ids)).astype(str), label or f"ids file {ids}"
    arr = np.asarray(ids).astype(str)
    if arr.ndim != 1:
        raise FormatError(f"object ids must be a 1-D list, got shape {arr.shape}")
    where = label or "the given object ids"
    if (np.char.str_len(np.char.strip(arr)) == 0).any():
        r = int(np.flatnonzero(np.char.str_len(np.char.strip(arr)) == 0)[0])
        raise DataError(f"{where}: id {r + 1} is empty")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: id {uniq[counts > 1][0]!r} occurs {counts[counts > 1][0]} times")
    return arr, where


def _ids_note(ids: np.ndarray | None) -> str | None:
    if ids is None:
        return None
    from alignkit.data.concepts import things_ids

    canon = things_ids()
    if len(ids) == len(canon) and np.array_equal(ids, canon):
        return f"THINGS uniqueIDs, canonical order ({len(ids)})"
    return f"{len(ids)} ids ({', '.join(map(str, ids[:3]))}{', ...' if len(ids) > 3 else ''})"


def _n_note(given: int | None, n: int, things: bool = False) -> str:
    if given is not None:
        return f"n_objects = {n} (given)"
    if things:
        return f"n_objects = {n} (THINGS)"
    return f"n_objects = {n} (largest index + 1)"


def _row_plain(k: int) -> int:
    return k + 1


def _as_int(a: np.ndarray, where: str) -> np.ndarray:
    """Integer indices: signed ints as they are (no copy), others cast to int64.

    Refuses non-numeric data and non-integral values.
    """
    if a.dtype.kind == "i":
        return a
    if a.dtype.kind == "u":
        if a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise DataError(f"{where}: index too large for int64")
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        integral = finite & (a == np.round(np.where(finite, a, 0)))
        if not integral.all():
            bad = np.argwhere(~integral.reshape(a.shape[0], -1))[0]
            r, c = int(bad[0]), int(bad[1])
            value = a.reshape(a.shape[0], -1)[r, c]
            raise DataError(f"{where}: row {r + 1}: value {value!r} in column {c + 1} is not an integer")
        return a.astype(np.int64)
    raise FormatError(f"{where}: expected integer object indices, got dtype {a.dtype}")


def _validate(
    arr: np.ndarray, n_objects: int | None, where: str, row_of: Any
) -> int:
    """Check shape, range and repeats of an int64 (N, 3) array; return n_objects."""
    if n_objects is not None and not 3 <= int(n_objects) <= np.iinfo(np.int32).max:
        check_triplet_shape(arr, where, FormatError)
        raise InputError(f"n_objects must be between 3 and 2**31 - 1, got {int(n_objects)}")
    t = as_triplets(arr, n_objects, name=where, dtype=None, allow_empty=False, repeats=True,
                    error=FormatError, range_error=DataError, row_of=row_of)
    return int(t.max()) + 1 if n_objects is None else int(n_objects)


def _read_npy(path: Path, where: str) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise FormatError(f"{where}: not a plain numeric .npy array ({exc})") from None
    except OSError as exc:
        raise FormatError(f"{where}: not a readable .npy file ({exc})") from None
    if not isinstance(a, np.ndarray):
        raise FormatError(f"{where}: expected one array in a .npy file")
    check_triplet_shape(a, where, FormatError)
    if a.shape[0] == 0:
        raise FormatError(f"{where}: no triplets (empty)")
    return _as_int(a, where)


def _data_lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """Yield ``(1-based line number, content)`` of non-blank, non-comment lines.

    A UTF-8 byte-order mark at the start of the file is dropped.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            content = line.split("#", 1)[0].strip()
            if content:
                yield lineno, content


def _tokens(content: str, delim: str | None) -> list[str]:
    if delim is None:
        return content.split()
    return [t.strip() for t in content.split(delim)]


def _read_text(path: Path) -> tuple[np.ndarray, list[str] | None, int, str | None]:
    """Parse an integer table; return (int64 array, header tokens, lines to skip, delimiter)."""
    lines = _data_lines(path)
    first = next(lines, None)
    if first is None:
        raise FormatError(f"{path}: empty file (no triplets)")
    lineno, content = first
    delim = "," if "," in content else None
    toks = _tokens(content, delim)
    header: list[str] | None = None
    skip = 0
    if not any(_NUMBER.match(t) for t in toks):
        header, skip = toks, lineno
        second = next(lines, None)
        if second is None:
            raise FormatError(f"{path}: only a header line, no triplets")
        delim = "," if "," in second[1] else delim
    lines.close()

    def records() -> Generator[str, None, None]:  # the lines after the header, BOM dropped
        for ln, text in _data_lines(path):
            if ln > skip:
                yield ",".join(_tokens(text, delim))

    try:
        arr = np.loadtxt(records(), dtype=np.int64, delimiter=",", ndmin=2, comments=None)
    except ValueError as exc:
        _diagnose_text(path, delim, skip)
        raise FormatError(f"{path}: cannot be read as an integer table ({exc})") from None
    if arr.shape[0] == 0:
        raise FormatError(f"{path}: empty file (no triplets)")
    return arr, header, skip, delim


def _diagnose_text(path: Path, delim: str | None, skip: int) -> None:
    """Find the first bad line of a text table and raise an error naming it."""
    ncol: int | None = None
    for lineno, content in _data_lines(path):
        if lineno <= skip:
            continue
        toks = _tokens(content, delim)
        if ncol is None:
            ncol = len(toks)
        elif len(toks) != ncol:
            raise FormatError(
                f"{path}: row {lineno}: found {len(toks)} columns, expected {ncol} like the first row"
            )
        for col, tok in enumerate(toks, start=1):
            if not _INT.match(tok):
                kind = "non-numeric" if not _NUMBER.match(tok) else "non-integer"
                cls = FormatError if kind == "non-numeric" else DataError
                raise cls(f"{path}: row {lineno}: {kind} value {tok!r} in column {col}")
            if not _INT64_MIN <= int(tok) <= _INT64_MAX:
                raise DataError(f"{path}: row {lineno}: value {tok} in column {col} is too large "
                                "for an object index (beyond int64)")


def _text_row_mapper(path: Path, skip: int) -> Any:
    """Map a 0-based record index to its 1-based line in the file (computed on error only)."""

    def row_of(k: int) -> int:
        count = -1
        for lineno, _ in _data_lines(path):
            if lineno <= skip:
                continue
            count += 1
            if count == k:
                return lineno
        return k + 1 + skip

    return row_of


def _from_raw(
    arr: np.ndarray, path: Path, row_of: Any, n_objects: int | None, sortindex: Any
) -> tuple[np.ndarray, int, str]:
    """Convert raw-format rows (1-based raw indices, chosen position) to canonical triplets."""
    if sortindex is None:
        if n_objects is not None and int(n_objects) != THINGS_N_OBJECTS:
            raise FormatError(
                f"{path}: raw format with n_objects = {n_objects} needs a sortindex "
                f"(the bundled one is for the {THINGS_N_OBJECTS} THINGS objects)"
            )
        perm = load_sortindex("things-sortindex")
        which = f"the bundled THINGS sortindex ({bundled_path('things-sortindex').name})"
    else:
        perm = load_sortindex(sortindex)
        which = (
            f"the sortindex {sortindex}" if isinstance(sortindex, (str, os.PathLike))
            else "the given sortindex"
        )
    n = perm.size
    if n_objects is not None and int(n_objects) != n:
        raise MismatchError(f"{path}: n_objects = {n_objects} but the sortindex has {n} entries")
    idx = arr[:, :3]
    bad = (idx < 1) | (idx > n)
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(
            f"{path}: row {row_of(r)}: raw object index out of range in {idx[r].tolist()} "
            f"(1-based, valid 1..{n})"
        )
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.arange(n, dtype=np.int64)
    canon = inverse[idx - 1]
    order = _ODD_LAST[arr[:, 3] - 1]
    out = np.take_along_axis(canon, order, axis=1)
    _validate(out, n, str(path), row_of)
    desc = (
        "raw VICE format: 1-based raw order, chosen position column, canonical via sortindex "
        f"({which}; canonical c = raw r where sortindex[c] == r); the chosen odd one out moved "
        "last, the other two kept in order; batch id column ignored"
    )
    return out, n, desc
