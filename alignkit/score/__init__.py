"""Scoring representations against human judgments (never imports torch).

* :func:`odd_one_out`: zero-shot odd-one-out accuracy with tie rules,
  bootstrap intervals, the noise-ceiling-normalised score and a per-concept
  breakdown.
* :func:`rsa` / :func:`rsa_features`: RSA against human RDMs with permutation
  tests and bootstrap over stimuli.
* :func:`compare_models_ooo` / :func:`compare_models_rsa`: two models against the same
  human data on the same resamples (difference, interval, p-values).
* :func:`cka_features` / :func:`shape_features`: CKA and shape metrics against a
  representation (one row per stimulus), :func:`compare_models` (``measure`` cka or shape) for two
  models on the same resamples, :func:`similarity_matrix` between every pair of store entries.
* :func:`score_store_ooo` / :func:`score_store_rsa`: the same over the entries
  of an embedding store, aligned by stimulus id.
"""

from alignkit.score._common import CHANCE, THINGS_CEILING, normalised_score
from alignkit.score.cka import (
    CKAResult,
    PairedComparison,
    ShapeResult,
    SimilarityMatrix,
    cka_features,
    compare_models,
    shape_features,
    similarity_matrix,
)
from alignkit.score.ooo import (
    ConceptBreakdown,
    OddOneOutResult,
    assign_concepts,
    concept_breakdown,
    odd_one_out,
)
from alignkit.score.paired import PairedOddOneOutResult, compare_models_ooo
from alignkit.score.rsa import (
    PairedRSAResult,
    RSAResult,
    check_rdm,
    compare_models_rsa,
    model_rdm,
    rsa,
    rsa_features,
)
from alignkit.score.stores import score_store_ooo, score_store_rsa, triplet_rows_for_entry

__all__ = [
    "CHANCE",
    "THINGS_CEILING",
    "normalised_score",
    "ConceptBreakdown",
    "OddOneOutResult",
    "assign_concepts",
    "concept_breakdown",
    "odd_one_out",
    "CKAResult",
    "ShapeResult",
    "PairedComparison",
    "SimilarityMatrix",
    "cka_features",
    "shape_features",
    "compare_models",
    "similarity_matrix",
    "RSAResult",
    "check_rdm",
    "model_rdm",
    "rsa",
    "rsa_features",
    "compare_models_rsa",
    "compare_models_ooo",
    "PairedOddOneOutResult",
    "PairedRSAResult",
    "score_store_ooo",
    "score_store_rsa",
    "triplet_rows_for_entry",
]
