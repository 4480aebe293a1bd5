"""Triplets that all (or most) representations get wrong: the paper's failure analysis.

Muttenthaler et al. (2023) list the triplets on which every model's odd one out differs
from the humans' choice, with the models' choices. Here each entry of a store (every model
and layer, or a sweep's store) is scored on the same triplets with the same similarity and
tie rule as ``alignkit score ooo`` (:func:`alignkit.score.odd_one_out`, per triplet), and a
triplet is a failure when at least ``min_fraction`` of the entries get it wrong (1.0: all of
them, the paper's criterion). Failures are ranked by the fraction of entries wrong, then by
how many of the wrong entries agree on one odd one out, then by row. Objects are named by
their concept words when the triplets' ids are THINGS concepts
(:func:`alignkit.data.load_concepts`), else by their ids.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array

__all__ = ["FailureAnalysis", "consistent_failures", "failures_from_correct", "FAILURE_COLUMNS"]

#: The columns of a failure table (CSV and table output), in order.
FAILURE_COLUMNS = ("rank", "row", "i", "j", "k", "word_i", "word_j", "word_k", "human_odd",
                   "n_wrong", "n_entries", "fraction_wrong", "model_odd", "model_odd_entries")


@dataclass
class FailureAnalysis:
    """The failures of a set of entries on one triplet set.

    Attributes:
        entries: the entries scored, ``model/layer``, in store order.
        n_triplets: triplets scored (each by every entry).
        min_fraction: a triplet is listed when at least this fraction of entries is wrong.
        failures: one dict per listed triplet (keys :data:`FAILURE_COLUMNS`, plus ``ids``
            and ``choices``: per entry the position (0-2) of its odd one out, -1 a tie).
        n_all_wrong: triplets every entry gets wrong.
        n_matching: triplets at least ``min_fraction`` of the entries get wrong (``failures``
            holds the first ``top`` of them when ``top`` is given).
        similarity, ties: the scoring's similarity and tie rule (as ``score ooo``).
        words_source: where the object names came from.
        images: the entries' image set (``root`` and ``layout``) when the store records one.
    """

    entries: list[str]
    n_triplets: int
    min_fraction: float
    failures: list[dict[str, Any]]
    n_all_wrong: int
    similarity: str
    ties: str
    words_source: str
    dataset: str | None = None
    n_matching: int | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    images: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """The failure table, one flat row per listed triplet."""
        return [{c: f[c] for c in FAILURE_COLUMNS} for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        from alignkit.score._common import jsonable

        return jsonable({
            "entries": self.entries, "n_entries": len(self.entries),
            "n_triplets": self.n_triplets, "min_fraction": self.min_fraction,
            "n_failures": self.n_matching if self.n_matching is not None else len(self.failures),
            "n_listed": len(self.failures), "n_all_wrong": self.n_all_wrong,
            "similarity": self.similarity, "ties": self.ties, "dataset": self.dataset,
            "words_source": self.words_source, "accuracy": self.accuracy,
            "images": self.images, "failures": self.failures, "provenance": self.provenance,
        })


def _names(object_ids: np.ndarray | None, n_objects: int, concepts: Any) -> tuple[list[str], str]:
    """A readable name per object: THINGS concept words by id, else the ids themselves."""
    if object_ids is None:
        return [str(t) for t in range(n_objects)], "object indices (the triplets carry no ids)"
    ids = [str(x) for x in object_ids]
    if concepts is None:
        from alignkit.data.triplets import all_things_ids

        if not all_things_ids(np.asarray(ids)):
            return ids, "object ids"
        concepts = "things-concepts"
    if isinstance(concepts, str):
        from alignkit.data import load_concepts

        concepts = load_concepts(concepts)
    word = {str(i): str(w) for i, w in zip(concepts.ids, concepts.words, strict=True)}
    return [word.get(i, i) for i in ids], f"concept words of {getattr(concepts, 'source', '')}"


def failures_from_correct(
    correct: np.ndarray, choices: np.ndarray, triplets: np.ndarray, *,
    entries: list[str], names: list[str], object_ids: np.ndarray | None = None,
    min_fraction: float = 1.0,
) -> tuple[list[dict[str, Any]], int]:
    """Failures from per-entry correctness ``(E, N)`` and choices ``(E, N)``.

    Returns the listed failures (ranked) and the number of triplets every entry gets wrong.
    """
    C = np.asarray(correct, dtype=np.int64)
    Q = np.asarray(choices, dtype=np.int64)
    T = np.asarray(triplets, dtype=np.int64)
    E, N = C.shape
    if E == 0:
        raise InputError("no entries to analyse")
    wrong = E - C.sum(axis=0)
    frac = wrong / E
    # a fraction of whole entries: k of E entries pass when k / E >= min_fraction
    need = int(np.ceil(min_fraction * E - 1e-9))
    rows = np.flatnonzero(wrong >= max(need, 1))
    out = []
    for t in rows.tolist():
        picks = Counter(int(q) for q, c in zip(Q[:, t], C[:, t], strict=True) if not c)
        (pos, agree), = sorted(picks.items(), key=lambda kv: (-kv[1], kv[0]))[:1]
        tri = T[t]
        out.append({
            "row": t + 1, "i": int(tri[0]), "j": int(tri[1]), "k": int(tri[2]),
            "ids": None if object_ids is None else [str(object_ids[x]) for x in tri],
            "word_i": names[tri[0]], "word_j": names[tri[1]], "word_k": names[tri[2]],
            "human_odd": names[tri[2]], "n_wrong": int(wrong[t]), "n_entries": E,
            "fraction_wrong": float(frac[t]),
            "model_odd": "tie" if pos < 0 else names[tri[pos]],
            "model_odd_entries": int(agree),
            "choices": {e: int(Q[ei, t]) for ei, e in enumerate(entries)},
        })
    out.sort(key=lambda f: (-f["n_wrong"], -f["model_odd_entries"], f["row"]))
    for r, f in enumerate(out, start=1):
        f["rank"] = r
    return out, int(np.count_nonzero(wrong == E))


def _images_of(entries: list[Any]) -> dict[str, Any] | None:
    """The image set the entries were extracted from, when they all name the same one."""
    seen = set()
    for e in entries:
        img = (e.attrs or {}).get("images")
        if not isinstance(img, dict) or not img.get("root"):
            return None
        seen.add((str(img["root"]), str(img.get("layout"))))
    if len(seen) != 1:
        return None
    root, layout = seen.pop()
    return {"root": root, "layout": layout}


def consistent_failures(
    store: Any, triplets: Any, options: Any = None, *, min_fraction: float = 1.0,
    model: str | None = None, layer: str | None = None, transform: str | None = None,
    object_ids: Any = None, by_position: bool = False, concepts: Any = None,
    device: str = "auto", top: int | None = None, **option_values: Any,
) -> FailureAnalysis:
    """The triplets that at least ``min_fraction`` of a store's entries get wrong.

    Args:
        store: an embedding store (path or :class:`alignkit.store.EmbeddingStore`).
        triplets: a :class:`alignkit.data.Triplets` (or (N, 3) array, with ``object_ids``).
        options: ``OddOneOutOptions`` (or a mapping): similarity, tie rule, preset; the same
            names as keywords. The bootstrap options are ignored (no interval is computed).
        min_fraction: in (0, 1]; 1.0 lists the triplets every entry gets wrong.
        model, layer: only these entries.
        transform: a probe transform applied to each entry first (by name).
        concepts: a concept table naming the objects (default: THINGS words for THINGS ids).
        top: keep only the first ``top`` failures (None: all).

    Raises:
        InputError: ``min_fraction`` outside (0, 1], or fewer than one matching entry.
        MismatchError: an entry lacks features for an object the triplets use.
    """
    from alignkit.score.stores import _open, iter_entries, score_store_ooo

    if isinstance(min_fraction, bool) or not 0.0 < float(min_fraction) <= 1.0:
        raise InputError(f"--min-fraction must lie in (0, 1], got {min_fraction!r}")
    if top is not None and (isinstance(top, bool) or int(top) < 1):
        raise InputError(f"--top must be at least 1, got {top!r}")
    st = _open(store)
    opts = dict(option_values)
    opts.update(bootstrap=0)
    results = score_store_ooo(st, triplets, options, model=model, layer=layer,
                              transform=transform, object_ids=object_ids,
                              by_position=by_position, per_triplet=True, device=device, **opts)
    entries = [f"{r.model}/{r.layer}" for r in results]
    T = np.asarray(getattr(triplets, "array", triplets))
    ids = np.asarray(object_ids).astype(str) if object_ids is not None else getattr(
        triplets, "object_ids", None)
    n_objects = int(getattr(triplets, "n_objects", int(T.max()) + 1 if T.size else 0))
    names, words_source = _names(ids, n_objects, concepts)
    if ids is not None and len(ids) != n_objects:
        raise MismatchError(f"{len(ids)} object ids for {n_objects} objects")
    C = np.stack([r.correct for r in results])
    Q = np.stack([r.choices for r in results])
    failures, n_all = failures_from_correct(C, Q, T, entries=entries, names=names,
                                            object_ids=ids, min_fraction=float(min_fraction))
    n_matching = len(failures)
    if top is not None:
        failures = failures[: int(top)]
    first = results[0]
    tinfo = first.provenance.get("triplets")
    prov = base_provenance(
        store=str(st.path), entries=entries,
        entry_checksums={f"{r.model}/{r.layer}": r.provenance.get("entry_checksum")
                         for r in results},
        triplets=tinfo, similarity=first.similarity, ties=first.ties, preset=first.preset,
        transform=transform, min_fraction=float(min_fraction), top=top,
        correct_checksum=sha256_array(C.astype(np.uint8)), words=words_source,
        analysis="triplets most entries get wrong (Muttenthaler et al. 2023, failures)")
    dataset = tinfo.get("source") if isinstance(tinfo, dict) else None
    entry_objs = list(iter_entries(st, model, layer))
    return FailureAnalysis(
        entries=entries, n_triplets=int(T.shape[0]), min_fraction=float(min_fraction),
        failures=failures, n_all_wrong=n_all, similarity=first.similarity, ties=first.ties,
        words_source=words_source, dataset=dataset, n_matching=n_matching,
        accuracy={f"{r.model}/{r.layer}": float(r.accuracy) for r in results},
        images=_images_of(entry_objs), provenance=prov)
