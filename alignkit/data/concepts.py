"""Concept lists (THINGS) and human concept embeddings (SPoSE / VICE).

The canonical THINGS order is the row order of ``things_concepts.tsv`` (the
same as ``unique_id.txt``): row ``c`` is object index ``c`` in every triplet.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.data.bundled import BUNDLED, bundled_path, resolve_source
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_file
from alignkit.validate import as_features

__all__ = [
    "Concepts",
    "ConceptEmbedding",
    "load_concepts",
    "load_embedding",
    "things_ids",
    "read_lines",
]


@dataclass(frozen=True, eq=False)
class Concepts:
    """A table of concepts, one row per object, in the file's order.

    Attributes:
        ids: ``(n,)`` unique concept ids (THINGS: the ``uniqueID`` column).
        words: ``(n,)`` the concept words (THINGS: the ``Word`` column).
        definitions: ``(n,)`` definitions (empty strings when the table has none).
        table: every column as ``name -> list of n strings``, in file order.
        source: the path or bundled name read.
        checksum: ``"sha256:..."`` of the file.
    """

    ids: np.ndarray
    words: np.ndarray
    definitions: np.ndarray
    table: dict[str, list[str]] = field(repr=False)
    source: str = ""
    checksum: str = ""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def columns(self) -> list[str]:
        """Column names in file order."""
        return list(self.table)

    def rows(self) -> list[dict[str, str]]:
        """The table as a list of ``{column: value}`` dicts, one per concept."""
        names = self.columns
        return [dict(zip(names, values, strict=True)) for values in zip(*self.table.values(), strict=True)]

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """0-based row indices of the given ids.

        Raises:
            MismatchError: an id is not in the table (up to 5 are listed).
        """
        lookup = {v: i for i, v in enumerate(self.ids.tolist())}
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise MismatchError(
                f"{self.source}: {len(missing)} id(s) not found, e.g. {', '.join(map(repr, missing[:5]))}"
            )
        return np.array([lookup[i] for i in ids], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class ConceptEmbedding:
    """A human concept embedding: one non-negative row per object.

    Attributes:
        values: ``float64 (n, d)``.
        ids: ``(n,)`` object ids (THINGS uniqueIDs for the bundled SPoSE).
        labels: ``(d,)`` dimension labels (``dim1..dimd`` when none are known).
        source: the path or bundled name read.
        checksum: ``"sha256:..."`` of the file.
        convention: how the file was read (ids and labels origin).
    """

    values: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    source: str = ""
    checksum: str = ""
    convention: str = ""

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: source, shape, convention, checksum."""
        return {
            "kind": "embedding",
            "source": self.source,
            "shape": list(self.shape),
            "n_objects": self.shape[0],
            "min": float(self.values.min()),
            "max": float(self.values.max()),
            "labels": self.labels[:5].tolist() + (["..."] if self.labels.size > 5 else []),
            "convention": self.convention,
            "checksum": self.checksum,
        }


def read_lines(source: str | os.PathLike[str], what: str = "ids") -> list[str]:
    """Read a text file with one entry a line (trailing blank lines dropped).

    Args:
        source: a path or a bundled name; ``"things"`` (or ``"things-concepts"``)
            gives the 1854 THINGS uniqueIDs.
        what: a word for error messages.

    Raises:
        DataError: a blank line in the middle (it would shift every later row).
    """
    path, name = resolve_source(source)
    if name == "things-concepts":
        return list(_things_ids_cached())
    with open(path, encoding="utf-8-sig") as fh:
        lines = [line.rstrip("\r\n").strip() for line in fh]
    while lines and not lines[-1]:
        lines.pop()
    for i, line in enumerate(lines):
        if not line:
            raise DataError(f"{path}: row {i + 1}: blank line in a list of {what}")
    return lines


@lru_cache(maxsize=1)
def _things_ids_cached() -> tuple[str, ...]:
    return tuple(read_lines(bundled_path("things-ids"), "uniqueIDs"))


def things_ids() -> np.ndarray:
    """The 1854 THINGS uniqueIDs in canonical order (a fresh array each call).

    Example:
        >>> things_ids()[:2].tolist()
        ['aardvark', 'abacus']
    """
    return np.array(_things_ids_cached())


def load_concepts(source: str | os.PathLike[str] = "things-concepts") -> Concepts:
    """Read a concept table (tab separated, header row).

    Ids come from a ``uniqueID`` (or ``id``) column, words from ``Word`` (or
    ``word``), definitions from the first column whose name contains
    ``definition`` (any case).

    Args:
        source: a ``.tsv`` path or a bundled name (``"things-concepts"``,
            alias ``"things"``).

    Returns:
        :class:`Concepts`.

    Raises:
        FormatError: no header, no id column, or a row with a different
            number of fields (its 1-based line is named).
        DataError: repeated or empty ids.
    """
    path, name = resolve_source(source)
    where = name or str(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if len(rows) < 2:
        raise FormatError(f"{where}: a concept table needs a header row and at least one concept")
    header = [h.strip() for h in rows[0]]
    width = len(header)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise FormatError(f"{where}: row {i}: {len(row)} fields, the header has {width}")
    lower = [h.lower() for h in header]
    id_col = _find_col(lower, ("uniqueid", "unique_id", "id"))
    if id_col is None:
        raise FormatError(f"{where}: no uniqueID (or id) column in the header")
    word_col = _find_col(lower, ("word", "name", "concept"))
    def_col = next((i for i, h in enumerate(lower) if "definition" in h), None)
    columns = {h: [r[j].strip() for r in rows[1:]] for j, h in enumerate(header)}
    ids = np.array(columns[header[id_col]])
    empty = np.flatnonzero(ids == "")
    if empty.size:
        raise DataError(f"{where}: row {int(empty[0]) + 2}: empty id")
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        rows_dup = (np.flatnonzero(ids == dup) + 2).tolist()
        raise DataError(f"{where}: rows {rows_dup}: id {dup!r} repeats")
    n = ids.size
    words = np.array(columns[header[word_col]]) if word_col is not None else ids.copy()
    defs = np.array(columns[header[def_col]]) if def_col is not None else np.full(n, "")
    return Concepts(ids, words, defs, columns, where, sha256_file(path))


def _find_col(lower: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in lower:
            return lower.index(name)
    return None


def load_embedding(
    source: str | os.PathLike[str] = "spose-49d",
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    *,
    ids: Sequence[str] | str | os.PathLike[str] | None = None,
    warn_negative: bool = False,
) -> ConceptEmbedding:
    """Read a human concept embedding (SPoSE / VICE).

    Args:
        source: a text file (space separated floats, one object a row,
            trailing spaces fine), a ``.npy`` array, a ``.npz`` with key
            ``values`` (or a single array), or a bundled name (``"spose-49d"``).
        labels: dimension labels: a list, a file with one a line, or ``None``
            (the 49 SPoSE short labels for the bundled embedding, else
            ``dim1..dimd``).
        ids: object ids: a list, a file with one a line, ``"things"``, or
            ``None`` (THINGS uniqueIDs when there are 1854 rows, else
            ``"0".."n-1"``).
        warn_negative: warn (``UserWarning``) when a value is negative. SPoSE
            and VICE embeddings are meant to be non-negative, but the published
            SPoSE 49d file holds 68 values slightly below zero (down to -0.0013);
            negative values are always kept as read and counted in ``convention``.

    Returns:
        :class:`ConceptEmbedding` with ``float64`` values.

    Raises:
        FormatError: unreadable text (row named), wrong dimensionality.
        DataError: NaN or infinite values (row named).
        MismatchError: the number of labels or ids does not fit.
    """
    path, name = resolve_source(source)
    where = name or str(path)
    if name is not None and BUNDLED[name].kind != "embedding":
        raise InputError(f"bundled data set {name!r} is not an embedding (it is {BUNDLED[name].kind})")
    values, desc = _embedding_values(path, where)
    n_neg = int((values < 0).sum())
    if warn_negative and n_neg:
        r = int(np.flatnonzero((values < 0).any(axis=1))[0])
        warnings.warn(
            f"{where}: row {r + 1}: negative value; SPoSE/VICE embeddings are non-negative",
            UserWarning,
            stacklevel=2,
        )
    n, d = values.shape
    label_arr, label_note = _embedding_labels(labels, name, d, where)
    id_arr, id_note = _embedding_ids(ids, n, where)
    prefix = f"bundled {name!r}: " if name else ""
    neg_note = (
        f"; {n_neg} negative value(s) kept as read (min {values.min():.3g})" if n_neg else ""
    )
    return ConceptEmbedding(
        values,
        id_arr,
        label_arr,
        where,
        sha256_file(path),
        f"{prefix}{desc}; {id_note}; {label_note}{neg_note}",
    )


def _embedding_values(path: Path, where: str) -> tuple[np.ndarray, str]:
    """The embedding file's finite ``(objects, dimensions)`` float64 values and its layout."""
    ext = path.suffix.lower()
    if ext == ".npy":
        values = _np_load(path, where)
        desc = "NumPy .npy array (objects x dimensions)"
    elif ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "values" if "values" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise FormatError(f"{where}: .npz has keys {keys}; expected 'values' or a single array")
            values = z[key]
        desc = f".npz array {key!r} (objects x dimensions)"
    else:
        values = _read_float_table(path, where)
        desc = "text, whitespace separated floats (objects x dimensions)"
    values = np.ascontiguousarray(as_features(
        values, name=where, dtype=np.float64, min_rows=1, min_cols=1, error=FormatError,
        axes="objects x dimensions"))
    return values, desc


def _embedding_labels(labels: Any, name: str | None, d: int, where: str) -> tuple[np.ndarray, str]:
    """The dimension labels (given, SPoSE's for the bundled embedding, or ``dim1..``) and a note."""
    if labels is None and name == "spose-49d":
        labels = read_lines(bundled_path("spose-49d-labels"), "labels")
        label_note = "labels: the 49 SPoSE short labels"
    elif labels is None:
        labels = [f"dim{i + 1}" for i in range(d)]
        label_note = f"labels: dim1..dim{d}"
    else:
        labels = read_lines(labels, "labels") if isinstance(labels, (str, os.PathLike)) else list(labels)
        label_note = "labels: given"
    if len(labels) != d:
        raise MismatchError(f"{where}: {len(labels)} labels for {d} dimensions")
    return np.array(labels), label_note


def _embedding_ids(ids: Any, n: int, where: str) -> tuple[np.ndarray, str]:
    """The object ids (given, THINGS uniqueIDs for 1854 rows, or positions) and a note."""
    if ids is None:
        if n == len(_things_ids_cached()):
            return things_ids(), "ids: THINGS uniqueIDs (1854 rows, canonical order)"
        return np.array([str(i) for i in range(n)]), "ids: row positions 0..n-1"
    if isinstance(ids, (str, os.PathLike)):
        id_arr = np.array(read_lines(ids, "ids"))
    else:
        id_arr = np.array([str(i) for i in ids])
    if id_arr.size != n:
        raise MismatchError(f"{where}: {id_arr.size} ids for {n} rows")
    return id_arr, "ids: given"


def _np_load(path: Path, where: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise FormatError(f"{where}: not a plain numeric .npy array ({exc})") from None


def _read_float_table(path: Path, where: str) -> np.ndarray:
    """Parse a whitespace (or comma) separated float table; name the bad row on failure."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    delim = "," if "," in first else None
    try:
        return np.loadtxt(path, dtype=np.float64, delimiter=delim, ndmin=2, comments="#",
                          encoding="utf-8-sig")
    except ValueError as exc:
        ncol = None
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                content = line.split("#", 1)[0].strip()
                if not content:
                    continue
                toks = content.split(delim) if delim else content.split()
                if ncol is None:
                    ncol = len(toks)
                elif len(toks) != ncol:
                    raise FormatError(
                        f"{where}: row {lineno}: {len(toks)} columns, the first row has {ncol}"
                    ) from None
                for col, tok in enumerate(toks, start=1):
                    try:
                        float(tok)
                    except ValueError:
                        raise FormatError(
                            f"{where}: row {lineno}: non-numeric value {tok.strip()!r} in column {col}"
                        ) from None
        raise FormatError(f"{where}: cannot be read as a float table ({exc})") from None
