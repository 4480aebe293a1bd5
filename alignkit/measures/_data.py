"""Loaders of the human data kinds (:data:`alignkit.measures.DATA_KINDS`)."""

from __future__ import annotations

from typing import Any


def load_triplet_set(source: str, *, ids: str | None = None, format: str | None = None) -> Any:
    """Triplets from a file or bundled name, with their objects' ids from ``ids`` when given."""
    import os

    from alignkit.data import load_ids, load_triplets
    from alignkit.data.formats import guess_format, read_format

    if format == "levels" or (format in (None, "auto") and os.path.exists(source)
                              and guess_format(source) == "levels"):
        t = read_format(source, "levels")  # jsPsych records, with a 'level' per judgment
        return t.with_object_ids(load_ids(ids)) if ids else t
    kw: dict[str, Any] = {"format": format or "auto"}
    if ids:
        kw["object_ids"] = load_ids(ids)
    return load_triplets(source, **kw)


def load_rdm_set(source: str, *, ids: str | None = None, key: str | None = None) -> Any:
    """A human RDM from a file or bundled name, with its rows' ids from ``ids`` when given."""
    from alignkit.data import load_ids, load_rdm

    return load_rdm(source, key=key, ids=load_ids(ids) if ids else None)


def load_embedding_set(source: str, *, ids: str | None = None, labels: str | None = None) -> Any:
    """A representation (n x d, one row per stimulus) from a file or bundled name, with its
    rows' ids from ``ids`` and its dimensions' labels from ``labels`` when given."""
    from alignkit.data import load_embedding, load_ids

    return load_embedding(source, labels=labels, ids=load_ids(ids) if ids else None)
