"""Scoring the entries of an embedding store, matched to human data by id."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError
from alignkit.score.align import align_triplets
from alignkit.score.ooo import OddOneOutResult, odd_one_out
from alignkit.score.rsa import RSAResult, rsa_features

__all__ = [
    "triplet_rows_for_entry",
    "score_store_ooo",
    "score_store_rsa",
    "load_probe_transform",
    "iter_entries",
]

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
) -> np.ndarray:
    """Map the triplets' object indices onto the rows of an entry, by id.

    Args:
        entry_ids: the entry's stimulus ids (one per feature row).
        triplets: an ``alignkit.data.Triplets`` carrying ``object_ids`` (THINGS releases
            do), or an array together with ``object_ids``.
        object_ids: ids of the triplets' objects 0..n_objects-1 (overrides the triplets').

    Returns:
        An int64 array ``rows`` with ``rows[t]`` = the entry row of object ``t``
        (``-1`` for objects the entry lacks and no triplet uses).

    Raises:
        MismatchError: the object ids are unknown, or an object used by a triplet is
            missing from the entry.
    """
    T = np.asarray(getattr(triplets, "array", triplets))
    if object_ids is None:
        object_ids = getattr(triplets, "object_ids", None)
    al = align_triplets(T, len(entry_ids), feature_ids=entry_ids, object_ids=object_ids)
    assert al.rows is not None
    return al.rows


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


def _weights_of(entry: Any) -> str | None:
    """The weights id the entry's model was built with (``none``: random init), if recorded."""
    model = (getattr(entry, "attrs", None) or {}).get("model")
    w = model.get("weights") if isinstance(model, dict) else None
    return w if isinstance(w, str) else None


def _open(store: Any) -> Any:
    if isinstance(store, (str, os.PathLike)):
        from alignkit.store import EmbeddingStore

        return EmbeddingStore(store, mode="r")
    return store


def score_store_ooo(
    store: Any,
    triplets: Any,
    options: Any = None,
    *,
    model: str | None = None,
    layer: str | None = None,
    object_ids: Any = None,
    by_position: bool = False,
    subset: str = "all",
    transform: str | None = None,
    **kwargs: Any,
) -> list[OddOneOutResult]:
    """:func:`alignkit.score.odd_one_out` for every (matching) entry of a store.

    Feature rows are matched to the triplets' objects by stimulus id (the triplets'
    ``object_ids`` or ``object_ids=``); ``by_position`` pairs object ``t`` with row ``t``
    instead, and ``subset="covered"`` scores only the triplets whose objects all have
    features. ``options`` (an ``OddOneOutOptions``) and the other keyword arguments go to
    :func:`alignkit.score.odd_one_out`.
    """
    st = _open(store)
    results = []
    for entry in iter_entries(st, model, layer):
        X = entry.features()
        checksum = entry.checksum
        in_sample = None
        if transform is not None:
            tf = load_probe_transform(entry, transform)
            X = tf.apply(X)
            checksum = None  # the transformed features are not the entry's
            trained_on = _train_checksum(tf)
            scored = getattr(triplets, "checksum", None)
            if trained_on is not None and scored is not None:
                in_sample = trained_on == scored
        prov = {
            "store": str(st.path),
            "entry": f"{entry.model}/{entry.layer}",
            "entry_checksum": entry.checksum,
            "entry_weights": _weights_of(entry),
            "transform": transform,
        }
        res = odd_one_out(
            X, triplets, options, ids=entry.ids, object_ids=object_ids, by_position=by_position,
            subset=subset, model=entry.model, layer=entry.layer, features_checksum=checksum,
            provenance=prov, **kwargs,
        )
        res.in_sample = in_sample
        if in_sample:
            res.notes.append(f"in-sample: the transform {transform!r} was trained on these triplets")
        results.append(res)
    return results


def _train_checksum(tf: Any) -> str | None:
    """The checksum of the triplets a probe transform was trained on, when its attrs say."""
    value = (getattr(tf, "attrs", None) or {}).get("train_triplets_checksum")
    return str(value) if value else None


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
            "entry_weights": _weights_of(entry),
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
