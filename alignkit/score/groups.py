"""Odd-one-out accuracy per group of triplets (levels of abstraction, any label column).

A grouping gives every triplet one label: a per-judgment column the triplets carry
(``level`` of the Levels data: ``coarse``, ``fine``, ``boundary``), or a label file with one
label per triplet (a text file, one label a line, or a CSV/TSV column, ``FILE:COLUMN``).
Each group's accuracy comes with its count and, when the scoring bootstraps, a percentile
interval from the same resamples as the overall interval
(:func:`alignkit._kernels.bootstrap.bootstrap_groups`: each drawn triplet is tallied in its
group).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignkit.errors import FormatError, InputError, MismatchError

__all__ = ["GroupBreakdown", "GroupLabels", "group_labels", "read_group_file",
           "group_breakdown", "LEVEL_ORDER"]

#: The order the Levels data's groups are shown in.
LEVEL_ORDER = ("coarse", "fine", "boundary")


@dataclass(frozen=True)
class GroupLabels:
    """One label per triplet and where the labels came from."""

    labels: np.ndarray
    source: str


@dataclass
class GroupBreakdown:
    """Accuracy per group: one row per label, in :attr:`labels` order.

    Attributes:
        labels: the group names.
        counts, n_correct: triplets and correct triplets per group.
        ci_low, ci_high: per-group percentile bootstrap interval (None without bootstrap,
            or where no resample drew the group).
        source: where the labels came from (``row_info['level']``, a file).
    """

    labels: list[str]
    counts: np.ndarray
    n_correct: np.ndarray
    source: str
    ci_low: list[float | None] | None = None
    ci_high: list[float | None] | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0

    @property
    def accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.n_correct / np.maximum(self.counts, 1), np.nan)

    def rows(self) -> list[dict[str, Any]]:
        acc = self.accuracy
        out = []
        for g, name in enumerate(self.labels):
            out.append({
                "group": name,
                "triplets": int(self.counts[g]),
                "correct": int(self.n_correct[g]),
                "accuracy": None if not np.isfinite(acc[g]) else float(acc[g]),
                "ci_low": None if self.ci_low is None else self.ci_low[g],
                "ci_high": None if self.ci_high is None else self.ci_high[g],
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ci_level": self.ci_level,
                "n_bootstrap": self.n_bootstrap, "groups": self.rows()}


def _order(labels: np.ndarray) -> list[str]:
    present = list(dict.fromkeys(labels.tolist()))
    if set(present) <= set(LEVEL_ORDER):
        return [g for g in LEVEL_ORDER if g in present]
    return sorted(present)


def read_group_file(spec: str, n: int) -> GroupLabels:
    """Labels from ``FILE`` (one label a line) or ``FILE:COLUMN`` (a CSV/TSV column).

    A ``.csv``/``.tsv`` file without ``:COLUMN`` must have a single column (its header is
    the first line).

    Raises:
        InputError: no such file, or no such column (the message lists the columns).
        FormatError: an empty label, or a table without the column.
        MismatchError: the number of labels is not the number of triplets ``n``.
    """
    path, column = spec, None
    if not os.path.isfile(path) and ":" in spec:
        path, column = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise InputError(f"--group-by {spec}: no such file (and not a column of the triplets)")
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            if ext in (".csv", ".tsv") or column is not None:
                delim = "\t" if ext == ".tsv" else ","
                reader = csv.DictReader(fh, delimiter=delim)
                header = reader.fieldnames or []
                if column is None:
                    if len(header) != 1:
                        raise InputError(
                            f"--group-by {path}: a table with {len(header)} columns "
                            f"({', '.join(header)}); name one as {path}:COLUMN")
                    column = header[0]
                if column not in header:
                    raise InputError(f"--group-by {spec}: {path} has no column {column!r} "
                                     f"(columns: {', '.join(header)})")
                values = [(row.get(column) or "").strip() for row in reader]
                first = 2
            else:
                values = [line.strip() for line in fh.read().splitlines()]
                while values and not values[-1]:
                    values.pop()
                first = 1
    except UnicodeDecodeError:
        raise FormatError(f"--group-by {path}: not a UTF-8 text file") from None
    for i, v in enumerate(values):
        if not v:
            raise FormatError(f"--group-by {path}: line {i + first} has no label")
    if len(values) != n:
        raise MismatchError(f"--group-by {spec}: {len(values)} labels for {n} triplets "
                            "(one label per triplet, in the triplets' order)")
    where = path + (f" column {column}" if column is not None else "")
    return GroupLabels(np.asarray(values, dtype=str), where)


def group_labels(spec: Any, triplets: Any) -> GroupLabels:
    """The per-triplet labels ``spec`` names for ``triplets``.

    Args:
        spec: the name of a per-judgment column the triplets carry (``"level"`` of the
            Levels data), a label file (``FILE`` or ``FILE:COLUMN``), a sequence of labels
            (one per triplet) or a :class:`GroupLabels`.
        triplets: the :class:`alignkit.data.Triplets` (or (N, 3) array) being scored.

    Raises:
        InputError: a name that is neither a column of the triplets nor a file.
        MismatchError: the number of labels differs from the number of triplets.
    """
    n = len(np.asarray(getattr(triplets, "array", triplets)))
    if isinstance(spec, GroupLabels):
        labels, source = spec.labels, spec.source
    elif isinstance(spec, str):
        info = getattr(triplets, "row_info", None) or {}
        if spec in info:
            col = np.asarray(info[spec])
            if col.ndim != 1:
                raise InputError(f"--group-by {spec}: the triplets' column {spec!r} is not one "
                                 "label per triplet")
            return GroupLabels(col.astype(str), f"row_info['{spec}'] of "
                               f"{getattr(triplets, 'source', 'the triplets')}")
        if not os.path.isfile(spec) and not (":" in spec and os.path.isfile(spec.rsplit(":", 1)[0])):
            cols = ", ".join(sorted(info)) or "none"
            raise InputError(f"--group-by {spec}: neither a column of the triplets (columns: "
                             f"{cols}) nor a label file")
        return read_group_file(spec, n)
    else:
        labels, source = np.asarray(spec).astype(str), "<labels>"
    if labels.ndim != 1 or len(labels) != n:
        raise MismatchError(f"groups: {len(labels)} labels for {n} triplets "
                            "(one label per triplet)")
    return GroupLabels(labels, source)


def group_breakdown(correct: np.ndarray, labels: np.ndarray, *, source: str,
                    n_bootstrap: int = 0, seed: int = 0, ci_level: float = 0.95,
                    device: str = "cpu") -> GroupBreakdown:
    """Per-group counts and accuracy of a correctness vector, with bootstrap intervals.

    The resamples are those of the overall interval (same seed, same draws).
    """
    correct = np.asarray(correct, dtype=np.uint8)
    labels = np.asarray(labels).astype(str)
    if labels.shape != correct.shape:
        raise MismatchError(f"{len(labels)} group labels for {len(correct)} triplets")
    names = _order(labels)
    index = {g: i for i, g in enumerate(names)}
    gid = np.fromiter((index[x] for x in labels.tolist()), dtype=np.int64, count=len(labels))
    k = len(names)
    counts = np.bincount(gid, minlength=k).astype(np.int64)
    hits = np.bincount(gid, weights=correct.astype(np.float64), minlength=k)
    out = GroupBreakdown(names, counts, np.rint(hits).astype(np.int64), source,
                         ci_level=ci_level, n_bootstrap=int(n_bootstrap))
    if n_bootstrap > 0 and len(correct):
        from alignkit._kernels.bootstrap import bootstrap_groups, percentile_ci

        means = bootstrap_groups(correct, gid, k, n_bootstrap, seed)
        lo, hi = [], []
        for g in range(k):
            col = means[:, g]
            col = col[np.isfinite(col)]
            if col.size == 0:
                lo.append(None)
                hi.append(None)
                continue
            a, b = percentile_ci(col, ci_level)
            lo.append(a)
            hi.append(b)
        out.ci_low, out.ci_high = lo, hi
    return out
