"""Scoring the entries of an embedding store, matched to human data by id."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError
from alignkit.score.ooo import OddOneOutResult, odd_one_out
from alignkit.score.rsa import RSAResult, rsa_features

__all__ = [
    "triplet_rows_for_entry",
    "score_store_ooo",
    "score_store_rsa",
    "load_probe_transform",
    "iter_entries",
]

THINGS_N = 1854


def load_probe_transform(
    entry: Any,
    name: str,
    *,
    mean: float | None = None,
    std: float | None = None,
) -> Any:
    """A probe transform stored under ``entry`` by name, or read from a ``.npz``/``.npy``.

    Returns an :class:`alignkit.probe.transform.Transform` (applied as
    ``((x - mean) / std) @ weights + bias``; loading it imports no torch),
    validated against the entry: its input width must be the entry's ``p``.

    A ``.npy`` holds the paper's ``[W | b]`` array (``p x (p + 1)``) without
    mean and std: ``mean``/``std`` are used when given, otherwise the global
    scalar mean and std of ``entry``'s features (recorded in the transform's
    attrs). ``mean``/``std`` are refused for the other sources, which hold their own.
    """
    from alignkit.probe.transform import load_transform

    text = str(name)
    suffix = os.path.splitext(text)[1].lower()
    if suffix in (".npz", ".npy"):
        if not os.path.exists(text):
            raise InputError(f"--transform: no such file {text!r}")
        if suffix == ".npy":
            feats = entry.features() if (mean is None or std is None) else None
            tf = load_transform(text, mean=mean, std=std, features=feats)
        else:
            tf = load_transform(text, mean=mean, std=std)
    else:
        if mean is not None or std is not None:
            raise InputError(f"--transform {name!r}: --mean/--std apply only to a .npy transform")
        if name not in entry.probes():
            raise InputError(
                f"--transform {name!r}: entry {entry.model}/{entry.layer} has no such probe "
                f"(available: {', '.join(entry.probes()) or 'none'})"
            )
        tf = load_transform(entry, name)
    if tf.p != entry.p:
        raise MismatchError(
            f"--transform {name!r}: the transform expects {tf.p} features, entry "
            f"{entry.model}/{entry.layer} has {entry.p}"
        )
    return tf


def triplet_rows_for_entry(
    entry_ids: np.ndarray,
    triplets: Any,
    object_ids: Any = None,
) -> np.ndarray | None:
    """Map the triplets' object indices onto the rows of an entry, by id.

    Args:
        entry_ids: the entry's stimulus ids (one per feature row).
        triplets: an ``alignkit.data.Triplets`` (or array; then ``object_ids`` or
            positional matching is used).
        object_ids: ids of the triplets' objects 0..n_objects-1. When omitted
            and the triplets are over the 1854 THINGS concepts while the entry's
            ids are THINGS uniqueIDs, the canonical THINGS order is used.

    Returns:
        An int64 array ``rows`` with ``rows[t]`` = the entry row of object ``t``
        (``-1`` for objects the entry lacks), or None for positional matching.

    Raises:
        MismatchError: an object used by a triplet is missing from the entry.
    """
    entry_ids = np.asarray(entry_ids).astype(str)
    T = np.asarray(getattr(triplets, "array", triplets))
    n_objects = int(getattr(triplets, "n_objects", (int(T.max()) + 1) if T.size else 0))
    if object_ids is None and n_objects == THINGS_N:
        from alignkit.data import things_ids

        things = things_ids()
        if np.isin(entry_ids, things).all():
            object_ids = things
    if object_ids is None:
        return None
    object_ids = np.asarray(object_ids).astype(str)
    if len(object_ids) < n_objects:
        raise MismatchError(
            f"{len(object_ids)} object ids given but the triplets index {n_objects} objects"
        )
    pos = {s: i for i, s in enumerate(entry_ids)}
    rows = np.fromiter((pos.get(s, -1) for s in object_ids), dtype=np.int64, count=len(object_ids))
    used = np.unique(T) if T.size else np.empty(0, dtype=np.int64)
    missing = used[rows[used] < 0]
    if missing.size:
        shown = ", ".join(object_ids[missing[:5]])
        raise MismatchError(
            f"{missing.size} objects used by the triplets are missing from the features' ids "
            f"(e.g. {shown})"
        )
    return rows


def _check_positional(n_rows: int, triplets: Any) -> None:
    T = np.asarray(getattr(triplets, "array", triplets))
    if T.size and int(T.max()) >= n_rows:
        raise MismatchError(
            f"the triplets index object {int(T.max())} but the features have {n_rows} rows "
            "and their ids do not name the triplets' objects (give --object-ids)"
        )


def iter_entries(store: Any, model: str | None, layer: str | None) -> Iterator[Any]:
    """The store's entries, optionally restricted to one model and/or layer."""
    pairs = [
        (m, lay)
        for m, lay in store.entries()
        if (model is None or m == model) and (layer is None or lay == layer)
    ]
    if not pairs:
        what = "/".join(x for x in (model, layer) if x) or "any entry"
        raise InputError(f"store {store.path}: no entry matches {what}")
    for m, lay in pairs:
        yield store.entry(m, lay)


def _open(store: Any) -> Any:
    if isinstance(store, (str, os.PathLike)):
        from alignkit.store import EmbeddingStore

        return EmbeddingStore(store, mode="r")
    return store


def score_store_ooo(
    store: Any,
    triplets: Any,
    *,
    model: str | None = None,
    layer: str | None = None,
    object_ids: Any = None,
    transform: str | None = None,
    **kwargs: Any,
) -> list[OddOneOutResult]:
    """:func:`alignkit.score.odd_one_out` for every (matching) entry of a store."""
    st = _open(store)
    results = []
    for entry in iter_entries(st, model, layer):
        X = entry.features()
        try:
            rows = triplet_rows_for_entry(entry.ids, triplets, object_ids)
            if rows is None:
                _check_positional(X.shape[0], triplets)
        except MismatchError as exc:
            raise MismatchError(
                f"entry {entry.model}/{entry.layer}: {exc} (use --model/--layer to pick entries)"
            ) from exc
        if rows is not None:
            X = np.where((rows >= 0)[:, None], X[np.maximum(rows, 0)], 0)
        if transform is not None:
            X = load_probe_transform(entry, transform).apply(X)
        prov = {
            "store": str(st.path),
            "entry": f"{entry.model}/{entry.layer}",
            "entry_checksum": entry.checksum,
            "id_matching": "positional" if rows is None else "by id",
            "transform": transform,
        }
        results.append(
            odd_one_out(X, triplets, model=entry.model, layer=entry.layer, provenance=prov, **kwargs)
        )
    return results


def score_store_rsa(
    store: Any,
    reference: Any,
    *,
    model: str | None = None,
    layer: str | None = None,
    transform: str | None = None,
    **kwargs: Any,
) -> list[RSAResult]:
    """:func:`alignkit.score.rsa_features` for every (matching) entry of a store."""
    st = _open(store)
    results = []
    for entry in iter_entries(st, model, layer):
        tf = load_probe_transform(entry, transform) if transform is not None else None
        prov = {
            "store": str(st.path),
            "entry": f"{entry.model}/{entry.layer}",
            "entry_checksum": entry.checksum,
        }
        results.append(
            rsa_features(
                entry.features(),
                entry.ids,
                reference,
                transform=tf,
                transform_name=transform,
                model=entry.model,
                layer=entry.layer,
                provenance=prov,
                **kwargs,
            )
        )
    return results
