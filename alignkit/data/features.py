"""Readers for feature matrices and stimulus id lists made outside alignkit.

``load_features`` turns a ``.npy``, ``.npz``, ``.pt``/``.pth`` or text table
(``.txt``, ``.tsv``, ``.csv``) into a C-contiguous ``(n, p)`` float32 array;
``load_ids`` reads the matching stimulus ids. Both refuse bad input with an
:class:`~alignkit.errors.AlignkitError` naming the file and the 1-based row
(for text files: the line, as a text editor shows it) and column at fault.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.validate import as_features

__all__ = ["FEATURE_FORMATS", "load_features", "load_ids"]

#: File name extensions ``load_features`` reads, and what each holds.
FEATURE_FORMATS: dict[str, str] = {
    ".npy": "a NumPy array",
    ".npz": "NumPy archive (the single array, or the one named by key)",
    ".pt": "torch.save file: a tensor, or a dict of tensors (pick one with key)",
    ".pth": "same as .pt",
    ".txt": "text table, whitespace or comma separated, optional header line",
    ".tsv": "text table, tab separated, optional header line",
    ".csv": "text table, comma separated, optional header line",
}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$", re.I)


def _check_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such {what} file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a {what} file")
    return p


def load_features(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Read a feature matrix from a file.

    Args:
        path: a ``.npy``, ``.npz``, ``.pt``/``.pth``, ``.txt``, ``.tsv`` or
            ``.csv`` file (see :data:`FEATURE_FORMATS`). Text tables may have
            one non-numeric header line and ``#`` comments; a trailing
            delimiter at the end of a line is ignored.
        key: the array to take from a ``.npz`` file or a dict saved in a
            ``.pt`` file; optional when the file holds exactly one.

    Returns:
        A C-contiguous float32 array of shape ``(n, p)``, ``n, p >= 1``.

    Raises:
        InputError: the file is missing, or ``key`` names no array in it.
        FormatError: unknown extension (the message lists the known ones),
            unreadable content, a non-numeric value, ragged rows, or an
            array that is not 2-D and real.
        DataError: NaN or infinity (the first bad row and column, 1-based),
            values beyond float32's range, or no rows at all.

    Example:
        >>> x = load_features("vgg16_fc7.npy")                    # doctest: +SKIP
        >>> x = load_features("features.npz", key="penultimate")  # doctest: +SKIP
    """
    p = _check_file(path, "features")
    ext = p.suffix.lower()
    if ext not in FEATURE_FORMATS:
        known = ", ".join(FEATURE_FORMATS)
        raise FormatError(f"{p}: unknown feature file format {p.suffix or '(no extension)'!r}; "
                          f"supported: {known}")
    if key is not None and ext not in (".npz", ".pt", ".pth"):
        raise InputError(f"{p}: key {key!r} applies only to .npz and .pt/.pth files")
    row_of = None
    if ext == ".npy":
        arr = _load_npy(p)
    elif ext == ".npz":
        arr = _load_npz(p, key)
    elif ext in (".pt", ".pth"):
        arr = _load_torch(p, key)
    else:
        arr, row_of = _load_text(p, "\t" if ext == ".tsv" else "," if ext == ".csv" else "auto")
    return _finish(arr, p, key, row_of)


def _finish(arr: np.ndarray, path: Path, key: str | None, row_of: Any) -> np.ndarray:
    where = f"{path}" + (f" [{key}]" if key is not None else "")
    out = as_features(arr, name=where, dtype=np.float32, min_rows=1, min_cols=1, fits="float32",
                      error=FormatError, kinds="fiub", row_of=row_of)
    return np.ascontiguousarray(out)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _head(path: Path, n: int = 6) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _load_npy(path: Path) -> np.ndarray:
    head = _head(path)
    if not head:
        raise FormatError(f"{path}: empty file, not a .npy array")
    if not head.startswith(_NPY_MAGIC):
        raise FormatError(f"{path}: not a .npy file (no NumPy header); save it with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise FormatError(f"{path}: cannot be read as numbers: it holds Python objects "
                              "(dtype object); save a numeric array") from None
        raise FormatError(f"{path}: cannot be read as a .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise FormatError(f"{path}: cannot be read as a .npy array ({exc})") from None


def _pick(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise InputError(f"{path}: no array named {key!r} (arrays: {', '.join(names) or 'none'})")
        return key
    if len(names) != 1:
        raise InputError(
            f"{path}: holds {len(names)} arrays ({', '.join(names) or 'none'}); "
            "choose one with key (--key)"
        )
    return names[0]


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    head = _head(path, 4)
    if not head:
        raise FormatError(f"{path}: empty file, not a .npz archive")
    if not head.startswith(_ZIP_MAGIC):
        raise FormatError(f"{path}: not a .npz archive (not a zip file); save it with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as npz:
            name = _pick(list(npz.files), key, path)
            return npz[name]
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        if "allow_pickle" in str(exc):
            raise FormatError(f"{path}: an array in it holds Python objects (dtype object), "
                              "not numbers") from None
        raise FormatError(f"{path}: cannot be read as a .npz archive ({exc})") from None


def _load_torch(path: Path, key: str | None) -> np.ndarray:
    import torch

    from alignkit._torchio import torch_load

    obj = torch_load(path, str(path))
    if isinstance(obj, dict):
        names = [str(k) for k in obj]
        name = _pick(names, key, path)
        obj = obj[next(k for k in obj if str(k) == name)]
    elif key is not None:
        raise InputError(f"{path}: holds a single {type(obj).__name__}, not a dict; drop key")
    if not isinstance(obj, torch.Tensor):
        raise FormatError(f"{path}: expected a tensor, found a {type(obj).__name__}")
    if obj.layout != torch.strided:
        raise FormatError(f"{path}: holds a sparse tensor ({str(obj.layout).replace('torch.', '')}); "
                          "save a dense one (tensor.to_dense())")
    t = obj.detach().cpu()
    if t.is_complex():
        raise FormatError(f"{path}: features must be real numbers, got dtype {t.dtype}")
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, content)`` of the non-blank, non-comment lines."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                content = line.split("#", 1)[0].strip()
                if content:
                    yield lineno, content
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not a UTF-8 text table ({exc.reason})") from None


def _tokens(content: str, delim: str | None) -> list[str]:
    if delim is None:
        return content.split()
    toks = [t.strip() for t in content.split(delim)]
    if len(toks) > 1 and toks[-1] == "":  # a trailing delimiter
        toks.pop()
    return toks


def _load_text(path: Path, delim: str | None) -> tuple[np.ndarray, Any]:
    """Parse a numeric table; returns the float64 array and a record -> line mapper."""
    lines = _data_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file (no feature rows)")
    lineno, content = first
    if delim == "auto":
        delim = "," if "," in content else None
    elif delim == "\t" and "\t" not in content:
        delim = None
    skip = 0
    if not any(_NUMBER.match(t) for t in _tokens(content, delim)):
        skip = lineno  # a header line
        second = next(lines, None)
        if second is None:
            raise DataError(f"{path}: only a header line, no feature rows")
    lines.close()

    def records() -> Iterator[str]:
        for ln, text in _data_lines(path):
            if ln > skip:
                yield ",".join(_tokens(text, delim))

    try:
        arr = np.loadtxt(records(), dtype=np.float64, delimiter=",", ndmin=2, comments=None)
    except ValueError:
        _diagnose(path, delim, skip)
        raise  # _diagnose always raises; kept for the type checker
    return arr, _row_mapper(path, skip)


def _diagnose(path: Path, delim: str | None, skip: int) -> None:
    """Find the first bad line of a text table and raise an error naming it."""
    ncol: int | None = None
    first_line = 0
    for lineno, content in _data_lines(path):
        if lineno <= skip:
            continue
        toks = _tokens(content, delim)
        if ncol is None:
            ncol, first_line = len(toks), lineno
        elif len(toks) != ncol:
            raise FormatError(f"{path}: row {lineno}: {len(toks)} columns, expected {ncol} "
                              f"like row {first_line}")
        for col, tok in enumerate(toks, start=1):
            if not _NUMBER.match(tok):
                raise FormatError(f"{path}: row {lineno}, column {col}: {tok!r} is not a number")
    raise FormatError(f"{path}: cannot be read as a numeric table")


def _row_mapper(path: Path, skip: int) -> Any:
    """Map a 0-based record index to its 1-based line (computed on error only)."""

    def row_of(k: int) -> int:
        count = -1
        for lineno, _ in _data_lines(path):
            if lineno > skip:
                count += 1
                if count == k:
                    return lineno
        return k + 1 + skip

    return row_of


def load_ids(source: str | os.PathLike[str], n: int | None = None) -> np.ndarray:
    """Read stimulus ids: a text file with one id a line, or ``"things"``.

    Args:
        source: a text file (UTF-8; surrounding whitespace of each line is
            dropped, trailing blank lines are allowed), or ``"things"`` for the
            1854 THINGS uniqueIDs in canonical order (this name wins over a
            file called ``things`` in the working directory).
        n: the number of feature rows the ids must match.

    Returns:
        A numpy ``str`` array of unique, non-empty ids.

    Raises:
        InputError: the file is missing.
        FormatError: a blank line between ids, or a file that is not UTF-8.
        MismatchError: the number of ids differs from ``n``.
        DataError: an id occurs twice (the message names it and both rows).

    Example:
        >>> ids = load_ids("things", n=1854)                       # doctest: +SKIP
    """
    if isinstance(source, str) and source == "things":
        from alignkit.data import things_ids

        ids = [str(x) for x in things_ids()]
        label, what = "ids 'things'", "THINGS uniqueIDs"
    else:
        path = _check_file(source, "ids")
        label, what = f"ids file {path}", "ids"
        try:
            with open(path, encoding="utf-8-sig") as fh:
                ids = [line.strip() for line in fh]
        except UnicodeDecodeError as exc:
            raise FormatError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
        while ids and not ids[-1]:
            ids.pop()
        for i, value in enumerate(ids):
            if not value:
                raise FormatError(f"{path}: row {i + 1}: blank line between ids "
                                  "(it would shift every later id)")
    if n is not None and len(ids) != n:
        raise MismatchError(f"{label} has {len(ids)} {what} but features have {n} rows")
    seen: dict[str, int] = {}
    for i, value in enumerate(ids):
        if value in seen:
            raise DataError(f"{label}: id {value!r} occurs twice (rows {seen[value] + 1} "
                            f"and {i + 1}); ids must be unique")
        seen[value] = i
    if not ids:
        raise DataError(f"{label}: no ids")
    return np.array(ids, dtype=str)
