"""Matching feature rows to the objects that triplets index, by stimulus id.

Triplets index objects ``0..n-1``; features are rows with stimulus ids. A score is only
meaningful when object ``t`` of the triplets is the stimulus of the feature row it is paired
with, so the pairing is made by id: the triplets' object ids (THINGS releases carry the THINGS
uniqueIDs; other files take them from ``--object-ids``) are looked up among the features' ids.
Pairing by position is available only when asked for (``by_position=True``,
``--by-position``) and is recorded. When some objects have no features, the triplets are
refused unless the caller asks to score the covered subset (``subset="covered"``), and the
number of triplets kept is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError

__all__ = ["Alignment", "align_triplets", "SUBSETS"]

#: Values of ``subset=``: refuse when objects are missing, or keep the covered triplets.
SUBSETS = ("all", "covered")


@dataclass
class Alignment:
    """How triplet objects map onto feature rows.

    Attributes:
        rows: ``rows[t]`` = the feature row of object ``t`` (``-1``: no features), or None
            when features are used in the triplets' object order as given.
        keep: boolean mask of the triplets kept (None: all).
        info: provenance (``id_matching``, counts of kept and dropped triplets).
    """

    rows: np.ndarray | None
    keep: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)


_HINT = (
    "give --object-ids FILE (the ids of objects 0..n-1, one a line), --object-ids things "
    "for the 1854 THINGS concepts in canonical order, or --by-position to pair object t "
    "with feature row t"
)


def align_triplets(
    T: np.ndarray,
    n_rows: int,
    *,
    feature_ids: Any = None,
    object_ids: Any = None,
    by_position: bool = False,
    subset: str = "all",
    where: str = "features",
) -> Alignment:
    """Pair the triplets' objects with feature rows.

    Args:
        T: ``(N, 3)`` triplet indices.
        n_rows: the number of feature rows.
        feature_ids: the features' stimulus ids (None: features come without ids, in the
            triplets' object order, as the array API takes them).
        object_ids: the triplets' object ids (None: unknown).
        by_position: pair object ``t`` with row ``t`` even though ids are known or missing.
        subset: ``"all"`` (refuse when an object lacks features) or ``"covered"`` (keep only
            the triplets whose three objects have features).
        where: how messages name the features (``"entry resnet50/avgpool"``).

    Raises:
        MismatchError: ids unknown, or objects used by the triplets missing from the features.
    """
    if subset not in SUBSETS:
        raise InputError(f"subset must be one of {', '.join(SUBSETS)}; got {subset!r}")
    if by_position or feature_ids is None:
        how = "by position (--by-position)" if by_position else "in the given order (array API)"
        _check_positional(T, n_rows, where)
        return Alignment(None, None, {"id_matching": how})
    if object_ids is None:
        raise MismatchError(
            f"{where}: the triplets do not say which stimuli their objects are, so their "
            f"features cannot be matched by id; {_HINT}"
        )
    fids = np.asarray(feature_ids).astype(str)
    oids = np.asarray(object_ids).astype(str)
    pos = {s: i for i, s in enumerate(fids)}
    rows = np.fromiter((pos.get(s, -1) for s in oids), dtype=np.int64, count=len(oids))
    used = np.unique(T) if T.size else np.empty(0, dtype=np.int64)
    if used.size and int(used[-1]) >= len(oids):
        raise MismatchError(
            f"{where}: the triplets index object {int(used[-1])} but only {len(oids)} object ids "
            "are known"
        )
    missing = used[rows[used] < 0]
    info: dict[str, Any] = {"id_matching": "by id"}
    keep = None
    if missing.size:
        covered = (rows[T] >= 0).all(axis=1)
        n_keep = int(covered.sum())
        if subset == "all":
            shown = ", ".join(oids[missing[:3]])
            raise MismatchError(
                f"{where}: {missing.size} of the {used.size} objects the triplets use have no "
                f"features (e.g. {shown}); --subset covered scores the {n_keep} of {len(T)} "
                "triplets whose objects all have features"
            )
        keep = covered
        info.update(
            subset="covered",
            n_triplets_given=int(len(T)),
            n_triplets_kept=n_keep,
            n_objects_missing=int(missing.size),
        )
    return Alignment(rows, keep, info)


def _check_positional(T: np.ndarray, n_rows: int, where: str) -> None:
    if T.size and int(T.max()) >= n_rows:
        bad = int(np.flatnonzero((T >= n_rows).any(axis=1))[0])
        raise MismatchError(
            f"{where}: triplet row {bad + 1} indexes object {int(T[bad].max())}, but there are "
            f"{n_rows} feature rows (valid indices 0..{n_rows - 1})"
        )
