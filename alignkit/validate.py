"""The one validator of feature matrices and the one validator of triplet arrays.

Every front end (scoring, probes, the store, the data readers, transforms) checks its
features with :func:`as_features` and its triplets with :func:`as_triplets`, so that the
same mistake gets the same error class and the same words everywhere. Each message starts
with ``name`` (the argument, file or entry at fault) and gives rows 1-based (or as
``row_of`` numbers them, e.g. a text file's lines).

Errors: structural problems (dtype, shape) raise ``error`` (:class:`InputError` unless the
caller reads a file and passes :class:`FormatError`); bad values (NaN, infinity, overflow,
negative or repeated indices, empty features) raise :class:`DataError`; a shape or an index
range that does not fit another input raises :class:`MismatchError`.

The kernels' own checks (``alignkit._kernels.similarity.check_triplets``, ``as_float64``)
stay where they are: they guard the kernels and raise plain ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError, MismatchError

__all__ = ["as_features", "as_triplets", "check_fits", "check_triplet_shape", "first_nonfinite"]

_RESHAPE_HINT = ("Reshape your data: x.reshape(-1, 1) for one feature, "
                 "x.reshape(1, -1) for one object")


class _NonNumericError(InputError, TypeError):
    """Features that are not numbers (a ``TypeError`` too, as ``np.asarray`` raises)."""


def _row(r: int, row_of: Callable[[int], Any] | None) -> str:
    return f"row {row_of(r) if row_of is not None else r + 1}"


def first_nonfinite(a: np.ndarray) -> tuple[int, int] | None:
    """0-based (row, column) of the first NaN or infinity of a 2-D array, or None."""
    finite = np.isfinite(a)
    if finite.all():
        return None
    r, c = np.argwhere(~finite)[0]
    return int(r), int(c)


def as_features(
    features: Any,
    *,
    name: str = "features",
    dtype: Any = None,
    p: int | None = None,
    min_rows: int = 0,
    min_cols: int = 0,
    fits: str | None = None,
    error: type[InputError] = InputError,
    kinds: str = "fiu",
    objects: bool = False,
    axes: str = "n x p",
    rows: str = "n",
    reshape_hint: bool = False,
    row_of: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Validate a real, finite 2-D ``(n, p)`` feature matrix.

    Args:
        features: anything ``np.asarray`` takes (sparse matrices are refused).
        name: what the messages call the input (``"X"``, ``"x.npy"``, ``"store: m/l: block"``).
        dtype: the dtype returned; None keeps float32/float64 and widens float16, integers
            and booleans to float32.
        p: the number of columns required (a different one is a :class:`MismatchError`).
        min_rows, min_cols: the fewest rows and columns accepted (fewer: :class:`DataError`).
        fits: a storage dtype (``"float16"``, ``"float32"``) the values must fit in.
        error: the class raised for a wrong dtype or shape.
        kinds: the numpy dtype kinds accepted (``"fiu"``; add ``"b"`` for booleans).
        objects: convert an object array of numbers (else it is refused like any non-number).
        axes: the axes named in the shape message (``"n x p"``, ``"n, d"``).
        rows: what the ``p`` mismatch message calls the rows (``"n"``; ``"k"`` for a block).
        reshape_hint: add numpy's reshape hint to the message for a 1-D input.
        row_of: 0-based row -> the row number a message shows (default ``r + 1``).

    Returns:
        The validated array (a view when no cast was needed).

    Raises:
        InputError (``error``): sparse, complex, non-numeric or not 2-D.
        MismatchError: not ``p`` columns. DataError: empty, NaN, infinity, overflow.
    """
    if hasattr(features, "tocsr") or hasattr(features, "todense"):
        raise error(f"{name}: sparse input is not supported; pass a dense array")
    x = np.asarray(features)
    if x.dtype.kind == "c":
        raise error(f"{name}: Complex data not supported; expected real numbers, "
                    f"got dtype {x.dtype}")
    if x.dtype.kind == "O" and objects:
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise _NonNumericError(f"{name}: the entries must be numbers ({exc})") from exc
    if x.dtype.kind not in kinds:
        raise error(f"{name}: expected real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = f"; {_RESHAPE_HINT}" if reshape_hint and x.ndim == 1 else ""
        raise error(f"{name}: expected a 2-D ({axes}) array, got shape {x.shape}{hint}")
    if p is not None and x.shape[1] != p:
        raise MismatchError(f"{name}: shape {x.shape}, expects ({rows}, {p})")
    for axis, least, what in ((0, min_rows, "sample"), (1, min_cols, "feature")):
        if x.shape[axis] < least:
            raise DataError(f"{name}: empty: found an array with {x.shape[axis]} {what}(s) "
                            f"(shape={x.shape}) while a minimum of {least} is required.")
    if x.dtype.kind == "f" and x.size:
        bad = first_nonfinite(x)
        if bad is not None:
            r, c = bad
            raise DataError(f"{name}: NaN or infinity at {_row(r, row_of)}, column {c + 1} "
                            f"(value {x[r, c]})")
    if fits is not None:
        check_fits(x, fits, name, row_of)
    if dtype is None:
        if x.dtype.kind != "f" or x.dtype == np.float16:
            x = x.astype(np.float32)
    else:
        x = x.astype(dtype, copy=False)
    return x


def check_fits(x: np.ndarray, dtype: str, name: str, row_of: Callable[[int], Any] | None) -> None:
    """Refuse values that overflow ``dtype``. Casting is monotone, so checking the cast of
    the minimum and the maximum is exact."""
    if x.size == 0 or (x.dtype.kind == "f" and np.dtype(dtype).itemsize >= x.dtype.itemsize):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        ends = np.array([x.min(), x.max()]).astype(dtype)
        if np.isfinite(ends).all():
            return
        bad = first_nonfinite(x.astype(dtype))
    if bad is None:  # unreachable: the minimum or maximum overflowed
        return
    r, c = bad
    hint = "; store as float32" if dtype == "float16" else ""
    raise DataError(f"{name}: value {x[r, c]} at {_row(r, row_of)}, column {c + 1} "
                    f"overflows {dtype} (beyond the {dtype} range){hint}")


def check_triplet_shape(t: np.ndarray, name: str = "triplets",
                        error: type[InputError] = InputError) -> None:
    """Refuse an array that is not ``(N, 3)``."""
    if t.ndim != 2 or t.shape[1] != 3:
        raise error(f"{name}: expected an integer (N, 3) triplet array, got {t.dtype} "
                    f"shape {t.shape}")


def as_triplets(
    triplets: Any,
    n_objects: int | None = None,
    *,
    name: str = "triplets",
    dtype: Any = np.int64,
    allow_empty: bool = True,
    repeats: bool = False,
    error: type[InputError] = InputError,
    range_error: type[InputError] = MismatchError,
    n_what: str | None = None,
    row_of: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Validate ``(N, 3)`` integer triplets (an array or :class:`alignkit.data.Triplets`).

    Args:
        triplets: the array, or anything with an ``array`` attribute holding it.
        n_objects: indices must lie in ``0..n_objects - 1``; None: only ``>= 0`` and
            within int32.
        name: what the messages call the input (``"y (triplets)"``, ``"t.txt"``).
        dtype: the integer dtype returned; None keeps the input's.
        allow_empty: accept ``N = 0`` (else ``error``).
        repeats: refuse a triplet that lists one object twice.
        error: the class raised for a wrong dtype or shape.
        range_error: the class raised for an index ``>= n_objects``
            (:class:`MismatchError`: the count comes from another input).
        n_what: where ``n_objects`` comes from, for the message
            (default ``"n_objects = <n>"``).
        row_of: 0-based row -> the row number a message shows (default ``r + 1``).

    Returns:
        A C-contiguous integer ``(N, 3)`` array.
    """
    t = np.asarray(getattr(triplets, "array", triplets))
    if t.dtype.kind not in "iu":
        if t.ndim == 2 and t.shape[1] == 3 and t.size == 0:
            t = t.astype(np.int64)  # an empty list of lists is float64
        else:
            raise error(f"{name}: expected an integer (N, 3) triplet array, got {t.dtype} "
                        f"shape {t.shape}")
    check_triplet_shape(t, name, error)
    if dtype is not None:
        t = t.astype(dtype, copy=False)
    t = np.ascontiguousarray(t)
    if t.shape[0] == 0:
        if not allow_empty:
            raise error(f"{name}: no triplets (empty)")
        return t
    neg = t < 0
    if neg.any():
        r = int(np.flatnonzero(neg.any(axis=1))[0])
        raise DataError(f"{name}: {_row(r, row_of)}: negative object index in {t[r].tolist()}")
    hi = int(t.max())
    if n_objects is None:
        if hi > np.iinfo(np.int32).max:
            r = int(np.flatnonzero(t.max(axis=1) == hi)[0])
            raise DataError(f"{name}: {_row(r, row_of)}: object index {hi} does not fit int32")
    elif hi >= n_objects:
        n = int(n_objects)
        r = int(np.flatnonzero((t >= n).any(axis=1))[0])
        raise range_error(
            f"{name}: {_row(r, row_of)}: object index out of range in {t[r].tolist()} "
            f"({n_what or f'n_objects = {n}'}, valid 0..{n - 1})"
        )
    if repeats:
        rep = (t[:, 0] == t[:, 1]) | (t[:, 0] == t[:, 2]) | (t[:, 1] == t[:, 2])
        if rep.any():
            r = int(np.flatnonzero(rep)[0])
            raise DataError(f"{name}: {_row(r, row_of)}: an object repeats within the "
                            f"triplet {t[r].tolist()}")
    return t
