"""Human data: odd-one-out triplets, concept lists and embeddings, RDMs, bundled samples.

Importing this package loads numpy only; ``scipy.io`` is imported inside the
``.mat`` reader. Every loader accepts a path or a bundled name (see
:data:`BUNDLED` and ``alignkit data ls``).

Example:
    >>> from alignkit.data import load_triplets, load_embedding, load_rdm
    >>> t = load_triplets("things-test20k")          # int32 (20000, 3), odd one out last
    >>> e = load_embedding("spose-49d")              # float64 (1854, 49)
    >>> r = load_rdm("rdm48")                        # 48 x 48 dissimilarities, THINGS ids
"""

from __future__ import annotations

import importlib
from typing import Any

from alignkit.data.bundled import BUNDLED, BundledItem, bundled_path, resolve_source
from alignkit.data.concepts import (
    ConceptEmbedding,
    Concepts,
    load_concepts,
    load_embedding,
    read_lines,
    things_ids,
)
from alignkit.data.rdm import RDM, align_by_ids, load_rdm, squareform_vector, upper_triangle
from alignkit.data.triplets import (
    THINGS_N_OBJECTS,
    Triplets,
    concat_triplets,
    load_sortindex,
    load_triplets,
    split_by_subject,
)

__all__ = [
    "BUNDLED",
    "BundledItem",
    "bundled_path",
    "resolve_source",
    "Triplets",
    "load_triplets",
    "concat_triplets",
    "split_by_subject",
    "load_sortindex",
    "THINGS_N_OBJECTS",
    "Concepts",
    "ConceptEmbedding",
    "load_concepts",
    "load_embedding",
    "things_ids",
    "read_lines",
    "RDM",
    "load_rdm",
    "align_by_ids",
    "squareform_vector",
    "upper_triangle",
    "load_features",
    "load_ids",
    "synthetic_triplets",
    "read_format",
]

# Names provided by sibling modules, imported on first access so that a module
# that is absent or fails to import never breaks ``import alignkit.data``.
_LAZY: dict[str, str] = {
    "load_features": "alignkit.data.features",
    "load_ids": "alignkit.data.features",
    "synthetic_triplets": "alignkit.data.synthetic",
    "read_format": "alignkit.data.formats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alignkit.data' has no attribute {name!r}")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise AttributeError(f"alignkit.data.{name} is unavailable: {exc}") from exc
    value = getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
