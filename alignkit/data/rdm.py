"""Human representational dissimilarity matrices (RDMs) and id alignment.

:func:`load_rdm` always returns a **dissimilarity** matrix (``float64 n x n``)
with one stimulus id per row. Similarity inputs (Peterson et al., or any file
read with ``kind="similarity"``) are converted by ``D = max(S) - S``: a
strictly decreasing map of every entry, so the rank order of the pairs is
exactly reversed and any rank-based comparison (Spearman RSA) equals the one
on ``-S``; the values stay non-negative and the diagonal is zero wherever the
self-similarity is the maximum.

Layouts read (``.mat`` files are read with ``scipy.io.loadmat(squeeze_me=False)``):

* square ``.npy`` / ``.csv`` / ``.txt`` / ``.tsv`` matrices, or a condensed
  upper-triangle vector of length ``n(n-1)/2`` in ``scipy.spatial.distance.pdist``
  order (row-major ``i < j``);
* ``.mat`` with an explicit ``key`` (a square matrix, a condensed vector, a
  ``participants x n x n`` stack or a ``participants x n(n-1)/2`` table, averaged
  over participants);
* Cichy et al. 2019: ``judgments`` (participants x 118 x 118), mean over axis 0;
* King et al. 2019: ``BEHAVIOR[set][0,0]['pairwisedistances'][0,0]``
  (participants x condensed), mean over axis 0, squareform; ``set_name``;
* Peterson et al. 2016/2018: the variable whose name contains ``sim`` (and not
  ``dissim``) holds a similarity matrix;
* the bundled ``RDM48_triplet.mat`` (key ``RDM48_triplet``; ids = THINGS
  uniqueIDs from ``rdm48_order.tsv``);
* Meadows multi-arrangement exports (rsatoolbox): ``rdmutv_<participant>``
  condensed vectors and ``stimuli_<participant>`` names; mean over participants
  (aligned by stimulus name) or one participant with ``key=<participant>``;
* rsatoolbox model RDM collections (``92_modelRDMs.mat``): a struct array
  with fields ``RDM`` and ``name``; select a model with ``key=<name>``.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.data.bundled import BUNDLED, bundled_path, resolve_source
from alignkit.data.concepts import read_lines
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_array, sha256_file

__all__ = [
    "RDM", "load_rdm", "load_subject_rdms", "align_by_ids", "squareform_vector", "upper_triangle",
    "KINDS",
]

#: Values accepted by ``load_rdm(kind=...)``.
KINDS = ("dissimilarity", "similarity")

_SYM_RTOL = 1e-8
_TEXT_EXTENSIONS = (".txt", ".csv", ".tsv", ".dat")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class RDM:
    """A dissimilarity matrix with one stimulus id per row.

    Attributes:
        matrix: ``float64 (n, n)``, symmetric, dissimilarities (larger = less
            similar); the diagonal as read (or as converted from similarities).
        ids: ``(n,)`` stimulus ids as strings, unique.
        kind_read: ``"dissimilarity"`` or ``"similarity"``: what the source held.
        source: the path, bundled name or ``"<array>"``.
        checksum: ``"sha256:..."`` of the source file (of the array for
            in-memory data).
        convention: a sentence saying how the source was read and converted.
    """

    matrix: np.ndarray
    ids: np.ndarray
    kind_read: str
    source: str
    checksum: str
    convention: str

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n(self) -> int:
        """Number of stimuli."""
        return int(self.matrix.shape[0])

    def upper(self) -> np.ndarray:
        """The strict upper triangle (``k = 1``) in ``pdist`` order, length ``n(n-1)/2``."""
        return upper_triangle(self.matrix)

    def select(self, ids: Sequence[str]) -> RDM:
        """The sub-matrix for ``ids``, rows in that order.

        Raises:
            MismatchError: an id is missing (up to 5 are listed).
        """
        idx, _ = align_by_ids(self.ids, ids, require_all=True)
        m = self.matrix[np.ix_(idx, idx)]
        return RDM(
            np.ascontiguousarray(m),
            self.ids[idx].copy(),
            self.kind_read,
            self.source,
            self.checksum,
            self.convention + f"; {len(idx)} of {self.n} stimuli selected by id",
        )

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: source, shape, kind read, convention, checksum."""
        up = self.upper()
        return {
            "kind": "rdm",
            "source": self.source,
            "shape": list(self.matrix.shape),
            "n_objects": self.n,
            "kind_read": self.kind_read,
            "ids": self.ids[:5].tolist() + (["..."] if self.n > 5 else []),
            "min_offdiag": float(up.min()) if up.size else None,
            "max_offdiag": float(up.max()) if up.size else None,
            "convention": self.convention,
            "checksum": self.checksum,
        }


# ---------------------------------------------------------------------------
# helpers on matrices


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """Strict upper triangle of a square matrix in ``pdist`` (row-major) order."""
    n = matrix.shape[0]
    iu = np.triu_indices(n, k=1)
    return np.ascontiguousarray(matrix[iu])


def squareform_vector(vector: np.ndarray, where: str = "<vector>") -> np.ndarray:
    """Square symmetric matrix (zero diagonal) from a condensed ``pdist``-order vector.

    Args:
        vector: length ``n(n-1)/2``.
        where: a name for error messages.

    Raises:
        FormatError: the length is not a triangular number ``n(n-1)/2`` with ``n >= 2``.
    """
    v = np.asarray(vector, dtype=np.float64).ravel()
    m = v.size
    n = (1 + math.isqrt(1 + 8 * m)) // 2
    if m == 0 or n * (n - 1) // 2 != m:
        raise FormatError(
            f"{where}: a vector of length {m} is not a condensed RDM (length n(n-1)/2 for some n >= 2)"
        )
    out = np.zeros((n, n), dtype=np.float64)
    iu = np.triu_indices(n, k=1)
    out[iu] = v
    out[(iu[1], iu[0])] = v
    return out


def align_by_ids(
    ids_a: Sequence[str] | np.ndarray,
    ids_b: Sequence[str] | np.ndarray,
    *,
    require_all: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions that pair equal ids of two lists.

    Returns ``(idx_a, idx_b)`` with ``ids_a[idx_a] == ids_b[idx_b]`` over the ids
    common to both, in the order of ``ids_b``.

    Args:
        ids_a: the ids of the rows to pick from (e.g. a model's stimuli).
        ids_b: the reference ids (e.g. a human RDM's stimuli).
        require_all: raise when an id of ``ids_b`` is missing from ``ids_a``.

    Returns:
        Two ``int64`` index arrays of equal length.

    Raises:
        DataError: an id repeats within one list.
        MismatchError: ``require_all`` and ids of ``ids_b`` are missing from
            ``ids_a`` (up to 5 are listed), or no id is shared at all.

    Example:
        >>> ia, ib = align_by_ids(["b", "a", "c"], ["a", "b"])
        >>> ia.tolist(), ib.tolist()
        ([1, 0], [0, 1])
    """
    a = np.asarray(ids_a).astype(str).ravel()
    b = np.asarray(ids_b).astype(str).ravel()
    for name, arr in (("first", a), ("second", b)):
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            dups = uniq[counts > 1][:5].tolist()
            raise DataError(f"ids repeat in the {name} list: {', '.join(map(repr, dups))}")
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    pos = np.searchsorted(sorted_a, b)
    pos_c = np.minimum(pos, max(a.size - 1, 0))
    found = (pos < a.size) & (sorted_a[pos_c] == b) if a.size else np.zeros(b.size, bool)
    if require_all and not found.all():
        missing = b[~found]
        raise MismatchError(
            f"{missing.size} of {b.size} ids are missing, e.g. {', '.join(map(repr, missing[:5].tolist()))}"
        )
    idx_b = np.flatnonzero(found).astype(np.int64)
    if idx_b.size == 0 and b.size:
        raise MismatchError(f"the two id lists share no id (e.g. {b[0]!r} vs {a[0] if a.size else None!r})")
    idx_a = order[pos_c[found]].astype(np.int64)
    return idx_a, idx_b


# ---------------------------------------------------------------------------
# the reader


def load_rdm(
    source: Any,
    *,
    key: str | None = None,
    ids: Sequence[str] | str | os.PathLike[str] | None = None,
    kind: str | None = None,
    set_name: str | None = None,
    domain: str | None = None,
) -> RDM:
    """Read a human RDM and return it as dissimilarities with stimulus ids.

    Args:
        source: a path (``.npy``, ``.csv``, ``.txt``, ``.tsv``, ``.mat``), a bundled
            name (``"rdm48"``) or an in-memory square matrix / condensed vector.
        key: for ``.mat``: the variable to read, a Meadows participant, or a
            model name in a ``Models``-style struct array.
        ids: stimulus ids: a list or a text file (one a line). Default: the ids
            stored with the data (Meadows stimuli, bundled RDM48 uniqueIDs, a
            text header row), else ``"0".."n-1"``.
        kind: ``"dissimilarity"`` or ``"similarity"``; default: ``"similarity"``
            for a Peterson-style ``*sim*`` variable, else ``"dissimilarity"``.
        set_name: King et al. 2019 stimulus set (``"set1"`` or ``"set2"``).
        domain: Peterson et al. domain (e.g. ``"animals"``): picks the ``*sim*``
            variable naming it when a file holds several, and is recorded.

    Returns:
        :class:`RDM`.

    Raises:
        InputError: a bad option (``kind``, ``set_name``, ``key``).
        FormatError: not square, not a condensed length, unknown layout or
            extension (the file and key are named).
        DataError: NaN/inf or an asymmetric matrix (the first bad entry is named).
        MismatchError: the number of ids does not fit.

    Example:
        >>> rdm = load_rdm("rdm48")
        >>> rdm.matrix.shape, rdm.ids[0]
        ((48, 48), 'pizza')
    """
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown RDM kind {kind!r}; expected dissimilarity or similarity")
    raw = _read_rdm_source(source, key, ids, set_name, domain)
    where, data, lines = raw.where, raw.data, raw.lines
    matrix = _to_square(data, where)
    checksum = raw.checksum or sha256_array(matrix)
    kind_read = kind or raw.inferred
    same_rows = lines is not None and data.ndim == 2 and data.shape[0] == len(lines) == matrix.shape[0]
    _check_matrix(matrix, where, lines if same_rows else None)
    matrix, conv = _as_dissimilarity(matrix, kind_read)
    id_arr, id_note = _rdm_ids(ids, raw.file_ids, matrix.shape[0], where)
    dom = f"; domain {domain}" if domain else ""
    return RDM(
        np.ascontiguousarray(matrix, dtype=np.float64),
        id_arr,
        kind_read,
        where,
        checksum,
        f"{raw.layout}; {conv}; {id_note}{dom}",
    )


@dataclass
class _RawRDM:
    """An RDM source as read, before it is checked and converted."""

    data: np.ndarray
    where: str
    checksum: str  # "" for an in-memory array (then the matrix's own)
    layout: str
    inferred: str  # the kind the source suggests
    file_ids: list[str] | None = None
    lines: list[int] | None = None  # 1-based file lines of the data rows (text)


def _read_rdm_source(source: Any, key: str | None, ids: Any, set_name: str | None,
                     domain: str | None) -> _RawRDM:
    """Read an RDM path, bundled name or in-memory matrix (see :func:`load_rdm`)."""
    if not isinstance(source, (str, os.PathLike)):
        return _RawRDM(np.asarray(source), "<array>", "", "in-memory array", "dissimilarity")
    path, name = resolve_source(source)
    where = name or str(path)
    if name is not None and BUNDLED[name].kind != "rdm":
        raise InputError(f"bundled data set {name!r} is not an RDM (it is {BUNDLED[name].kind})")
    checksum = sha256_file(path)
    ext = path.suffix.lower()
    if ext != ".mat" and (key is not None or set_name is not None):
        option = "key" if key is not None else "set_name"
        raise InputError(f"{where}: {option}= applies to .mat files only")
    if ext == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FormatError(f"{where}: not a plain numeric .npy array ({exc})") from None
        return _RawRDM(data, where, checksum, "NumPy .npy array", "dissimilarity")
    if ext in _TEXT_EXTENSIONS:
        data, file_ids = _read_text_matrix(path, where)
        lines = _data_line_numbers(path, header=file_ids is not None)
        layout = "text table" + (" with an id header row" if file_ids else "")
        return _RawRDM(data, where, checksum, layout, "dissimilarity", file_ids, lines)
    if ext == ".mat":
        data, file_ids, inferred, layout = _read_mat(path, where, key, set_name, domain)
        if name == "rdm48" and ids is None:
            file_ids = _rdm48_ids()
            layout += "; ids = THINGS uniqueIDs from rdm48_order.tsv"
        return _RawRDM(data, where, checksum, layout, inferred, file_ids)
    raise FormatError(
        f"{where}: unknown RDM file extension {ext or '(none)'!r}; expected .npy, .mat "
        f"or text ({', '.join(_TEXT_EXTENSIONS)})"
    )


def _as_dissimilarity(matrix: np.ndarray, kind_read: str) -> tuple[np.ndarray, str]:
    """Dissimilarities (``max(S) - S`` for similarities) and how they were made."""
    if kind_read != "similarity":
        return matrix, "dissimilarity as read"
    smax = float(matrix.max())
    conv = (
        f"similarity converted to dissimilarity as max(S) - S (max(S) = {smax:.6g}); a "
        "decreasing map, so pair ranks are reversed exactly and Spearman RSA equals "
        "that on -S"
    )
    return smax - matrix, conv


def _rdm_ids(ids: Any, file_ids: list[str] | None, n: int, where: str) -> tuple[np.ndarray, str]:
    """The stimulus ids (given, from the file, or positions), checked; and a note on them."""
    if ids is not None:
        if isinstance(ids, (str, os.PathLike)):
            id_list = read_lines(ids, "ids")
        else:
            id_list = [str(i) for i in ids]
        id_note = "ids given"
    elif file_ids is not None:
        id_list, id_note = file_ids, "ids from the file"
    else:
        id_list, id_note = [str(i) for i in range(n)], "ids: positions 0..n-1"
    if len(id_list) != n:
        raise MismatchError(f"{where}: {len(id_list)} ids for a {n} x {n} RDM")
    id_arr = np.array(id_list, dtype=str)
    uniq, counts = np.unique(id_arr, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: stimulus id {uniq[counts > 1][0]!r} repeats")
    return id_arr, id_note


def _rdm48_ids() -> list[str]:
    path = bundled_path("rdm48-order")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    rows.sort(key=lambda r: int(r["rdm_pos"]))
    return [r["uniqueID"] for r in rows]


def _to_square(data: np.ndarray, where: str) -> np.ndarray:
    """A square float64 matrix from a square array or a condensed vector."""
    if data.dtype.kind not in "fiub":
        raise FormatError(f"{where}: expected numbers, got dtype {data.dtype}")
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape and arr.shape != (1, 1):
        arr = arr.ravel()
    if arr.ndim == 1:
        if not np.isfinite(arr).all():
            k = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise DataError(f"{where}: entry {k + 1} of the condensed vector is NaN or infinite")
        return squareform_vector(arr, where)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise FormatError(
            f"{where}: an RDM must be square (n x n) or a condensed vector, got shape {arr.shape}"
        )
    if arr.shape[0] < 2:
        raise FormatError(f"{where}: an RDM needs at least 2 stimuli, got shape {arr.shape}")
    return arr


def _data_line_numbers(path: Path, header: bool) -> list[int]:
    """The 1-based file lines of a text table's data rows (blank, comment and header lines skipped)."""
    out = []
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.split("#", 1)[0].strip():
                out.append(lineno)
    return out[1:] if header else out


def _check_matrix(m: np.ndarray, where: str, lines: list[int] | None = None) -> None:
    """Refuse NaN, infinity and asymmetry; ``lines`` maps matrix rows to the file's lines."""

    def row(r: int) -> str:
        return f"row {lines[r]}" if lines is not None else f"row {r + 1}"

    finite = np.isfinite(m)
    if not finite.all():
        r, c = (int(x) for x in np.argwhere(~finite)[0])
        raise DataError(f"{where}: {row(r)}, column {c + 1}: NaN or infinite value")
    scale = float(np.abs(m).max()) if m.size else 0.0
    diff = np.abs(m - m.T)
    bad = diff > _SYM_RTOL * scale
    if bad.any():
        r, c = (int(x) for x in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: not symmetric: {row(r)}, column {c + 1} is {float(m[r, c]):g} but "
            f"{row(c)}, column {r + 1} is {float(m[c, r]):g} (relative tolerance {_SYM_RTOL:g})"
        )


def _read_text_matrix(path: Path, where: str) -> tuple[np.ndarray, list[str] | None]:
    """A numeric table (comma, tab or space separated), with an optional header row of ids.

    Parsed with numpy's C reader; a line-by-line scan names the first bad row only
    when that fails.
    """
    first: tuple[int, str] | None = None
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            content = line.split("#", 1)[0].strip()
            if content:
                first = (lineno, content)
                break
    if first is None:
        raise FormatError(f"{where}: empty file")
    lineno, content = first
    delim = "," if "," in content else ("\t" if "\t" in content else None)
    toks = _split(content, delim)
    header: list[str] | None = None
    skip = 0
    if not any(_NUMBER.match(t) for t in toks if t):
        header = [t for t in toks if t != ""] if delim is None else toks
        skip = lineno
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            data = np.loadtxt(fh, dtype=np.float64, delimiter=delim, skiprows=skip, ndmin=2,
                              comments="#")
    except ValueError as exc:
        _diagnose_float_table(path, where, delim, skip)
        raise FormatError(f"{where}: cannot be read as a numeric table ({exc})") from None
    if data.size == 0:
        raise FormatError(f"{where}: only a header line, no values" if header else f"{where}: empty file")
    if header is not None and len(header) != data.shape[1]:
        raise FormatError(
            f"{where}: the header row has {len(header)} names for {data.shape[1]} columns"
        )
    return data, header


def _split(content: str, delim: str | None) -> list[str]:
    return [t.strip() for t in content.split(delim)] if delim else content.split()


def _diagnose_float_table(path: Path, where: str, delim: str | None, skip: int) -> None:
    """Raise a FormatError naming the first ragged or non-numeric row of a text table."""
    width: int | None = None
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            content = line.split("#", 1)[0].strip()
            if lineno <= skip or not content:
                continue
            toks = _split(content, delim)
            if width is None:
                width = len(toks)
            elif len(toks) != width:
                raise FormatError(f"{where}: row {lineno}: {len(toks)} columns, the first row has {width}")
            bad = next((t for t in toks if not _is_float(t)), None)
            if bad is not None:
                raise FormatError(f"{where}: row {lineno}: non-numeric value {bad!r}")


def _is_similarity_name(name: str) -> bool:
    """Peterson et al.'s convention: a variable named ``*sim*`` (but not ``*dissim*``)."""
    low = name.lower()
    return "sim" in low.replace("dissim", "")


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _as_str(value: Any) -> str:
    """A MATLAB string as loaded by loadmat (a 1-element array of str, or str)."""
    v = value
    while isinstance(v, np.ndarray):
        if v.size != 1:
            if v.dtype.kind == "U":
                return "".join(v.ravel().tolist()).strip()
            raise FormatError(f"expected a string, got an array of shape {v.shape}")
        v = v.ravel()[0]
    return str(v).strip()


def _mean_over_participants(arr: np.ndarray) -> np.ndarray:
    """Average a stack: (p, n, n) -> (n, n); (p, m) condensed -> (m,)."""
    return np.asarray(arr, dtype=np.float64).mean(axis=0)


def _numeric(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and value.size > 0


def _from_array_var(arr: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Interpret a numeric .mat variable: square, condensed, or a participant stack."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 3:
        if a.shape[1] != a.shape[2]:
            raise FormatError(f"{where}: a 3-D RDM stack must be participants x n x n, got {a.shape}")
        return _mean_over_participants(a), f"mean over {a.shape[0]} participants (axis 0)"
    if a.ndim == 2 and a.shape[0] != a.shape[1] and 1 not in a.shape:
        m = a.shape[1]
        n = (1 + math.isqrt(1 + 8 * m)) // 2
        if n * (n - 1) // 2 == m:
            return _mean_over_participants(a), f"mean over {a.shape[0]} participants' condensed vectors"
        raise FormatError(f"{where}: an RDM must be square or condensed, got shape {a.shape}")
    return a, "as stored"


def _read_mat(
    path: Path, where: str, key: str | None, set_name: str | None, domain: str | None
) -> tuple[np.ndarray, list[str] | None, str, str]:
    """Read a .mat RDM; return (data, ids or None, inferred kind, layout sentence)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=False)
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise FormatError(
            f"{where}: MATLAB v7.3 (HDF5) files are not supported; re-save with "
            f"save(..., '-v7') or export the matrix as .npy ({exc})"
        ) from None
    except Exception as exc:  # scipy raises many types on a corrupt file
        raise FormatError(
            f"{where}: not a readable MATLAB file ({type(exc).__name__}: {exc})"
        ) from None
    variables = {k: v for k, v in mat.items() if not k.startswith("__")}
    if not variables:
        raise FormatError(f"{where}: the .mat file holds no variables")
    meadows = sorted(k for k in variables if k.startswith("rdmutv_"))

    # King et al. 2019
    if "BEHAVIOR" in variables and key in (None, "BEHAVIOR"):
        return _read_king(variables["BEHAVIOR"], where, set_name)
    if set_name is not None:
        raise InputError(f"{where}: set_name applies to King et al. BEHAVIOR files only")

    # Meadows export
    if meadows and (key is None or key not in variables or key.startswith("rdmutv_")):
        return _read_meadows(variables, meadows, where, key)

    if key is not None:
        if key in variables:
            value = variables[key]
            if _numeric(value):
                data, how = _from_array_var(value, f"{where} [{key}]")
                kind = "similarity" if _is_similarity_name(key) else "dissimilarity"
                return data, None, kind, f"MATLAB variable {key!r} ({how})"
            raise FormatError(f"{where}: variable {key!r} is not a numeric matrix")
        found = _find_model(variables, key, where)
        if found is not None:
            return found
        raise InputError(f"{where}: no variable or model named {key!r}; variables: {', '.join(sorted(variables))}")

    # Cichy et al. 2019
    if "judgments" in variables and _numeric(variables["judgments"]):
        data, how = _from_array_var(variables["judgments"], f"{where} [judgments]")
        return data, None, "dissimilarity", f"Cichy et al. 2019 'judgments' ({how})"

    # Peterson et al.: the variable whose name contains "sim"
    sims = [k for k in variables if _is_similarity_name(k) and _numeric(variables[k])]
    if domain is not None and len(sims) > 1:
        sims = [k for k in sims if domain.lower() in k.lower()] or sims
    if len(sims) == 1:
        data, how = _from_array_var(variables[sims[0]], f"{where} [{sims[0]}]")
        return data, None, "similarity", f"Peterson et al. similarity variable {sims[0]!r} ({how})"
    if len(sims) > 1:
        raise InputError(f"{where}: several similarity variables ({', '.join(sims)}); pass key= or domain=")

    structs = [k for k in variables if _is_model_struct(variables[k])]
    if structs:
        names = [_as_str(e["name"]) for e in variables[structs[0]].ravel()]
        raise InputError(f"{where}: holds {len(names)} model RDMs; choose one with key=: {', '.join(names)}")
    numeric = [k for k in variables if _numeric(variables[k])]
    if len(numeric) == 1:
        data, how = _from_array_var(variables[numeric[0]], f"{where} [{numeric[0]}]")
        return data, None, "dissimilarity", f"MATLAB variable {numeric[0]!r} ({how})"
    raise FormatError(
        f"{where}: cannot tell which variable holds the RDM ({', '.join(sorted(variables))}); pass key="
    )


def _read_king(
    behavior: np.ndarray, where: str, set_name: str | None
) -> tuple[np.ndarray, list[str] | None, str, str]:
    fields = list(behavior.dtype.names or ())
    if not fields:
        raise FormatError(f"{where}: BEHAVIOR is not a struct with stimulus sets")
    if set_name is None:
        if len(fields) != 1:
            raise InputError(f"{where}: BEHAVIOR holds sets {', '.join(fields)}; choose one with set_name=")
        set_name = fields[0]
    if set_name not in fields:
        raise InputError(f"{where}: no stimulus set {set_name!r} in BEHAVIOR; sets: {', '.join(fields)}")
    try:
        inner = behavior[set_name][0, 0]
        pdists = inner["pairwisedistances"][0, 0]
    except (KeyError, IndexError, ValueError) as exc:
        raise FormatError(
            f"{where}: BEHAVIOR[{set_name!r}] has no pairwisedistances ({exc})"
        ) from None
    if not _numeric(pdists):
        raise FormatError(f"{where}: BEHAVIOR[{set_name!r}].pairwisedistances is not numeric")
    a = np.asarray(pdists, dtype=np.float64)
    if a.ndim == 2 and a.shape[0] > 1 and a.shape[1] > 1:
        vec = a.mean(axis=0)
        how = f"mean over {a.shape[0]} participants (axis 0) of condensed pdist-order vectors"
    else:
        vec, how = a.ravel(), "one condensed pdist-order vector"
    return vec, None, "dissimilarity", f"King et al. 2019 BEHAVIOR[{set_name!r}] pairwisedistances ({how}), squareform"


def _read_meadows(
    variables: dict[str, Any], utv_keys: list[str], where: str, key: str | None
) -> tuple[np.ndarray, list[str] | None, str, str]:
    participants = [k[len("rdmutv_"):] for k in utv_keys]
    if key is not None:
        who = key[len("rdmutv_"):] if key.startswith("rdmutv_") else key
        if who not in participants:
            raise InputError(f"{where}: no participant {key!r}; participants: {', '.join(participants)}")
        participants = [who]
    mats, ref_ids = _meadows_matrices(variables, participants, where)
    data = np.mean(mats, axis=0)
    who_note = (
        f"participant {participants[0]}" if len(participants) == 1
        else f"mean over {len(participants)} participants (aligned by stimulus name)"
    )
    return data, ref_ids, "dissimilarity", f"Meadows export rdmutv_* condensed vectors, {who_note}"


def _meadows_matrices(
    variables: dict[str, Any], participants: list[str], where: str
) -> tuple[list[np.ndarray], list[str] | None]:
    """Each participant's square RDM of a Meadows export, rows aligned by stimulus name to
    the first participant's order (which is returned as the ids)."""
    ref_ids: list[str] | None = None
    mats: list[np.ndarray] = []
    for who in participants:
        vec = np.asarray(variables["rdmutv_" + who], dtype=np.float64).ravel()
        mat = squareform_vector(vec, f"{where} [rdmutv_{who}]")
        stim_key = "stimuli_" + who
        if stim_key in variables:
            names = [_as_str(s) for s in np.asarray(variables[stim_key]).ravel()]
            if len(names) != mat.shape[0]:
                raise MismatchError(f"{where}: {stim_key} has {len(names)} names for {mat.shape[0]} stimuli")
            if ref_ids is None:
                ref_ids = names
            elif names != ref_ids:
                ia, _ = align_by_ids(names, ref_ids)
                mat = mat[np.ix_(ia, ia)]
        mats.append(mat)
    return mats, ref_ids


def _is_model_struct(value: Any) -> bool:
    names = getattr(getattr(value, "dtype", None), "names", None) or ()
    return "RDM" in names and "name" in names


def _find_model(
    variables: dict[str, Any], key: str, where: str
) -> tuple[np.ndarray, list[str] | None, str, str] | None:
    for var, value in variables.items():
        if not _is_model_struct(value):
            continue
        for element in value.ravel():
            if _as_str(element["name"]) == key:
                rdm = element["RDM"]
                if not _numeric(rdm):
                    raise FormatError(f"{where}: {var} entry {key!r} has no numeric RDM")
                data, how = _from_array_var(rdm, f"{where} [{var}:{key}]")
                return data, None, "dissimilarity", f"model RDM {key!r} from struct array {var!r} ({how})"
    return None


def load_subject_rdms(source: str | os.PathLike[str], key: str | None = None) -> tuple[np.ndarray, str]:
    """Per-subject RDMs as a stack, for noise ceilings.

    Args:
        source: a ``.npy`` array (``subjects x n x n`` or ``subjects x n(n-1)/2``) or a
            ``.mat`` file: the variable ``key`` (such a stack; Cichy et al. 2019 keep
            ``judgments``), or a Meadows export's ``rdmutv_<participant>`` vectors (aligned
            by stimulus name).
        key: the ``.mat`` variable.

    Returns:
        ``(stack, description)``: float64 ``subjects x n x n`` or ``subjects x m``.

    Raises:
        InputError: a missing file or variable; FormatError: not a stack.
    """
    path = Path(source)
    if not path.is_file():
        raise InputError(f"no such file {str(source)!r}")
    ext = path.suffix.lower()
    if ext == ".npy":
        arr = np.load(path, allow_pickle=False)
        how = f"{path} ({' x '.join(map(str, arr.shape))})"
    elif ext == ".mat":
        from scipy.io import loadmat

        try:
            variables = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        except (ValueError, NotImplementedError, OSError) as exc:
            raise FormatError(f"{path}: not a readable MATLAB file ({exc})") from None
        utv = sorted(k for k in variables if k.startswith("rdmutv_"))
        if key is None and utv:
            mats, _ = _meadows_matrices(variables, [k[len("rdmutv_"):] for k in utv], str(path))
            arr = np.stack(mats)
            how = f"{path} (Meadows export, {len(utv)} participants, aligned by stimulus name)"
        else:
            if key is None:
                raise InputError(
                    f"{path}: give --key, the variable holding the per-subject stack "
                    f"(variables: {', '.join(variables)})"
                )
            if key not in variables:
                raise InputError(f"{path}: no variable {key!r} (variables: {', '.join(variables)})")
            arr = np.asarray(variables[key])
            how = f"{path} [{key}]"
    else:
        raise FormatError(f"{path}: per-subject RDMs are read from .npy or .mat, not {ext!r}")
    if not np.issubdtype(arr.dtype, np.number) or arr.ndim not in (2, 3):
        raise FormatError(
            f"{how}: expected a numeric subjects x n x n or subjects x n(n-1)/2 array, "
            f"got {arr.dtype} {arr.shape}"
        )
    return np.asarray(arr, dtype=np.float64), how
