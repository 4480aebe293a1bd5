"""Sample human data shipped inside the package, addressed by short names.

Every loader in :mod:`alignkit.data` accepts either a path or one of the names
in :data:`BUNDLED`, so ``load_triplets("things-test20k")`` works offline.
Attribution and licences are in ``alignkit/data/sample_data/README.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from alignkit.errors import InputError

__all__ = ["BundledItem", "BUNDLED", "BUNDLED_DIR", "SAMPLE_IMAGES", "bundled_path", "resolve_source"]

#: Folder holding the bundled files.
BUNDLED_DIR = Path(__file__).resolve().parent / "sample_data"

_THINGS_CITE = (
    "Hebart, M. N. et al. (2019). THINGS: A database of 1,854 object concepts and "
    "more than 26,000 naturalistic object images. PLOS ONE 14(10): e0223792."
)
_SPOSE_CITE = (
    "Hebart, M. N., Zheng, C. Y., Pereira, F. & Baker, C. I. (2020). Revealing the "
    "multidimensional mental representations of natural objects underlying human "
    "similarity judgements. Nature Human Behaviour 4, 1173-1185 (OSF z2784)."
)
_TRIPLETS_CITE = (
    "Hebart, M. N. et al. (2023). THINGS-data, a multimodal collection of large-scale "
    "datasets for investigating object representations in human brain and behavior. "
    "eLife 12: e82580; split as published with VICE (Muttenthaler, L. et al. (2022), "
    "NeurIPS)."
)

_TRIPLETS_TERMS = "public research data; terms of the THINGS-data release (Hebart et al. 2023)"


class BundledItem(NamedTuple):
    """One bundled data set.

    Attributes:
        file: file name inside :data:`BUNDLED_DIR`.
        kind: what it is read as: ``triplets``, ``concepts``, ``embedding``,
            ``sortindex``, ``rdm`` or ``ids``.
        description: one line saying what the data is.
        citation: the reference to cite when using it.
        licence: its licence.
    """

    file: str
    kind: str
    description: str
    citation: str
    licence: str


#: Bundled data sets: name -> :class:`BundledItem`.
BUNDLED: dict[str, BundledItem] = {
    "things-test20k": BundledItem(
        "triplets_test20k_0based_oddlast.npy",
        "triplets",
        "20,000 human odd-one-out judgments on the 1854 THINGS concepts "
        "(held-out test split; int32, 0-based canonical, odd one out last)",
        _TRIPLETS_CITE,
        _TRIPLETS_TERMS,
    ),
    "things-concepts": BundledItem(
        "things_concepts.tsv",
        "concepts",
        "the 1854 THINGS concepts in canonical (alphabetical uniqueID) order: word, "
        "uniqueID, categories, WordNet ids, definition",
        _THINGS_CITE,
        "MIT (copy distributed with thingsvision)",
    ),
    "things-ids": BundledItem(
        "unique_id.txt",
        "ids",
        "the 1854 THINGS uniqueIDs in canonical order, one a line",
        _THINGS_CITE,
        "THINGS concept ids (the uniqueID column of things-concepts)",
    ),
    "spose-49d": BundledItem(
        "spose_embedding_49d_sorted.npz",
        "embedding",
        "SPoSE human concept embedding: 1854 THINGS concepts x 49 non-negative "
        "dimensions, canonical order (float64, exact copy of the published text)",
        _SPOSE_CITE,
        "CC-BY 4.0",
    ),
    "spose-49d-labels": BundledItem(
        "labels_49d_short.txt",
        "labels",
        "short labels of the 49 SPoSE dimensions, one a line",
        _SPOSE_CITE,
        "CC-BY 4.0",
    ),
    "things-sortindex": BundledItem(
        "vice_sortindex.txt",
        "sortindex",
        "permutation between the raw published THINGS triplet order and the "
        "canonical order: canonical row c = raw row sortindex[c] (0-based)",
        _TRIPLETS_CITE,
        _TRIPLETS_TERMS,
    ),
    "rdm48": BundledItem(
        "RDM48_triplet.mat",
        "rdm",
        "human dissimilarity matrix of 48 THINGS objects from exhaustively sampled "
        "triplets (key RDM48_triplet; ids = uniqueIDs from rdm48_order.tsv)",
        _SPOSE_CITE,
        "CC-BY 4.0",
    ),
    "rdm48-order": BundledItem(
        "rdm48_order.tsv",
        "table",
        "row order of rdm48: rdm_pos, things_index0, uniqueID, image_name",
        _SPOSE_CITE,
        "CC-BY 4.0",
    ),
}

#: Folder of nine small sample photographs (scikit-image's, downscaled) used by the demo.
SAMPLE_IMAGES = BUNDLED_DIR / "images"

#: Aliases accepted wherever a bundled name is.
ALIASES: dict[str, str] = {"things": "things-concepts"}


def bundled_path(name: str) -> Path:
    """Path of a bundled data file.

    Args:
        name: a key of :data:`BUNDLED` (or an alias such as ``"things"``).

    Returns:
        The absolute path of the file inside the installed package.

    Raises:
        InputError: the name is not a bundled data set.

    Example:
        >>> bundled_path("things-test20k").name
        'triplets_test20k_0based_oddlast.npy'
    """
    key = ALIASES.get(name, name)
    if key not in BUNDLED:
        known = ", ".join(sorted(BUNDLED))
        raise InputError(f"unknown bundled data set {name!r}; known: {known}")
    return BUNDLED_DIR / BUNDLED[key].file


def resolve_source(source: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Turn a path, a bundled name or a fetched public data set name into a path.

    A string that names a bundled data set and is not an existing file is
    read as that data set; one that names a public data set
    (:mod:`alignkit.data.public`) is read from the cache when it was fetched.

    Args:
        source: a file path, a key of :data:`BUNDLED` or a public data set name.

    Returns:
        ``(path, name)`` where ``name`` is the bundled name or ``None`` (also
        for a fetched data set, whose path is its verified cached file).

    Raises:
        InputError: the file does not exist (the message names it).
        DownloadError: a public data set that is not fetched
            (``not fetched: run alignkit data fetch NAME``).
    """
    if isinstance(source, str) and ALIASES.get(source, source) in BUNDLED:
        if not os.path.exists(source):
            key = ALIASES.get(source, source)
            return bundled_path(key), key
    if isinstance(source, str) and not os.path.exists(source):
        from alignkit.data.public import is_public_name, resolve_public

        if is_public_name(source):
            return resolve_public(source), None
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file (nor a bundled data set name)")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    return path, None
