"""THINGS-scale synthetic odd-one-out triplets for benchmarks and scale tests.

The full 4.7M THINGS triplet set is not distributed with alignkit. A realistic stand-in
samples triplets of distinct objects uniformly and draws the human's choice from the
SPoSE choice probabilities ``softmax([s_ij, s_ik, s_jk])`` with dot-product similarities;
the SPoSE embedding then predicts about 64% of the choices, as on the real data.
The exact sampling procedure is documented in :mod:`alignkit._kernels.synthetic`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from alignkit.errors import InputError
from alignkit.validate import as_features

if TYPE_CHECKING:
    from alignkit.data.triplets import Triplets

__all__ = ["THINGS_FULL_SIZE", "synthetic_triplets"]

THINGS_FULL_SIZE = 4_699_160  # triplets in the full THINGS odd-one-out set


def _embedding_values(embedding: Any) -> tuple[np.ndarray, str]:
    if embedding is None:
        from alignkit.data import load_embedding

        return load_embedding("spose-49d").values, "spose-49d"
    if isinstance(embedding, str):
        from alignkit.data import load_embedding

        return load_embedding(embedding).values, embedding
    values = getattr(embedding, "values", embedding)
    name = str(getattr(embedding, "source", "<array>"))
    return as_features(values, name="the embedding", axes="n, d"), name


def synthetic_triplets(
    embedding: Any = None,
    n: int = THINGS_FULL_SIZE,
    seed: int = 0,
    n_objects: int | None = None,
    temperature: float = 1.0,
) -> Triplets:
    """Sample odd-one-out triplets whose choices follow an embedding's softmax probabilities.

    Args:
        embedding: a :class:`~alignkit.data.ConceptEmbedding`, an ``(n, d)`` array, a
            bundled name or path for :func:`~alignkit.data.load_embedding`, or None for the
            bundled SPoSE 49d embedding.
        n: number of triplets, at least 1 (default: the size of the full THINGS set, 4,699,160).
        seed: integer in ``[0, 2**64)``; the same seed gives the same triplets on any
            machine and thread count.
        n_objects: draw objects among the first ``n_objects`` rows only (default: all).
        temperature: inverse temperature of the choice softmax (1 = the SPoSE model).

    Returns:
        :class:`~alignkit.data.Triplets` (int32, odd one out last) over the embedding's
        objects.

    Raises:
        InputError: a bad embedding, count, seed, temperature or ``n_objects``.

    Example:
        >>> from alignkit.data import synthetic_triplets
        >>> t = synthetic_triplets(n=1000, seed=1)
        >>> t.array.shape, t.n_objects
        ((1000, 3), 1854)
    """
    from alignkit._kernels.synthetic import sample_triplets
    from alignkit.data.triplets import Triplets

    values, name = _embedding_values(embedding)
    total = values.shape[0]
    if n_objects is None:
        n_objects = total
    n_objects = int(n_objects)
    if not 3 <= n_objects <= total:
        raise InputError(
            f"n_objects must lie between 3 and the embedding's {total} rows, got {n_objects}"
        )
    if int(n) < 1:
        raise InputError(f"the number of triplets must be >= 1, got {n}")
    try:
        array = sample_triplets(values[:n_objects], int(n), seed, temperature)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    source = f"synthetic(embedding={name}, n={int(n)}, seed={int(seed)}, T={float(temperature):g})"
    convention = (
        f"synthetic: {int(n)} triplets of distinct objects drawn uniformly among "
        f"{n_objects} objects, the odd one out sampled from softmax({float(temperature):g} x "
        "dot-product similarities) of the embedding; odd one out in column 3"
    )
    return Triplets.from_array(array, n_objects=n_objects, source=source, convention=convention)
