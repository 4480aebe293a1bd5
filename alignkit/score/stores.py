"""Scoring the entries of an embedding store, matched to human data by id."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError
from alignkit.score.ooo import OddOneOutResult, odd_one_out
from alignkit.score.rsa import RSAResult, rsa_features

__all__ = [
    "triplet_rows_for_entry",
    "score_store_ooo",
    "score_store_rsa",
    "ProbeTransform",
    "load_probe_transform",
    "iter_entries",
]

THINGS_N = 1854


@dataclass
class ProbeTransform:
    """A linear probe transform ``((x - mean) / std) @ weights + bias``."""

    name: str
    weights: np.ndarray
    bias: np.ndarray | None
    mean: float
    std: float

    def apply(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != self.weights.shape[0]:
            raise MismatchError(
                f"transform {self.name!r} expects {self.weights.shape[0]} features, got {X.shape[1]}"
            )
        Z = ((X - self.mean) / self.std) @ self.weights
        return Z + self.bias if self.bias is not None else Z


def load_probe_transform(entry: Any, name: str) -> ProbeTransform:
    """A transform by probe name stored under ``entry``, or from a ``.npz`` file.

    The ``.npz`` layout is the one published with the follow-up work: keys
    ``weights`` (p x q), ``bias`` (q,), ``mean`` and ``std`` (scalars).
    """
    if str(name).endswith(".npz"):
        if not os.path.exists(name):
            raise InputError(f"--transform: no such file {name!r}")
        with np.load(name) as z:
            missing = {"weights", "mean", "std"} - set(z.files)
            if missing:
                raise InputError(f"--transform {name}: missing keys {sorted(missing)}")
            bias = np.asarray(z["bias"], dtype=np.float64) if "bias" in z.files else None
            return ProbeTransform(
                os.path.basename(name),
                np.asarray(z["weights"], dtype=np.float64),
                bias,
                float(z["mean"]),
                float(z["std"]),
            )
    if name not in entry.probes():
        raise InputError(
            f"--transform {name!r}: entry {entry.model}/{entry.layer} has no such probe "
            f"(available: {', '.join(entry.probes()) or 'none'})"
        )
    d = entry.load_probe(name)
    bias = d.get("bias")
    return ProbeTransform(
        name,
        np.asarray(d["weights"], dtype=np.float64),
        None if bias is None else np.asarray(bias, dtype=np.float64),
        float(d["mean"]),
        float(d["std"]),
    )


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
        rows = triplet_rows_for_entry(entry.ids, triplets, object_ids)
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
                model=entry.model,
                layer=entry.layer,
                provenance=prov,
                **kwargs,
            )
        )
    return results
