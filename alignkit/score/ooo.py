"""Zero-shot odd-one-out accuracy of a representation on human triplets.

For a triplet ``(i, j, k)`` (the human chose ``k`` as the odd one out) the
model's odd one out is the item outside its most similar pair. Accuracy is the
fraction of triplets where the two agree. Ties between the most similar pairs
count as wrong under the paper's rule (``ties="wrong"``) or are broken by the
first maximum in the order ``[s_ij, s_ik, s_jk]`` (``ties="first"``, as
Brain-Score does); their number is always reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array
from alignkit.score._common import (
    CHANCE,
    SIMILARITIES,
    THINGS_CEILING,
    TIE_RULES,
    as_features,
    check_choice,
    jsonable,
    normalised_score,
)

__all__ = [
    "OddOneOutResult",
    "ConceptBreakdown",
    "odd_one_out",
    "concept_breakdown",
    "assign_concepts",
    "DEFAULT_MEMORY_BUDGET",
]

#: Largest n x n float64 similarity matrix (bytes) built before switching to
#: the direct per-triplet path.
DEFAULT_MEMORY_BUDGET = 2 << 30


@dataclass
class ConceptBreakdown:
    """Accuracy per human concept dimension (the paper's concept-level analysis).

    Each triplet is assigned to the dimension that dominates its human-chosen
    similar pair: the argmax of the mean of the two objects' rows of a
    non-negative concept embedding (SPoSE or VICE).
    """

    labels: list[str]
    counts: np.ndarray
    n_correct: np.ndarray
    source: str
    top: int = 1

    @property
    def accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.n_correct / np.maximum(self.counts, 1), np.nan)

    def rows(self) -> list[dict[str, Any]]:
        acc = self.accuracy
        return [
            {
                "dimension": d + 1,
                "label": self.labels[d],
                "triplets": int(self.counts[d]),
                "correct": int(self.n_correct[d]),
                "accuracy": None if not np.isfinite(acc[d]) else float(acc[d]),
            }
            for d in range(len(self.labels))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "top": self.top, "dimensions": self.rows()}


@dataclass
class OddOneOutResult:
    """The outcome of scoring one representation on a triplet set.

    Attributes:
        accuracy: fraction of triplets where the model's odd one out is the human's.
        n_triplets, n_correct, n_ties: counts (ties are counted under both tie rules).
        normalised: ``max(0, (accuracy - 1/3) / (ceiling - 1/3))`` or None without a ceiling.
        ci_low, ci_high: percentile bootstrap interval (None without bootstrap).
        choices: per-triplet int8 choices (0, 1, 2 = position of the model's odd one
            out, -1 = tie), only when requested.
        correct: per-triplet uint8 correctness, only when requested.
        provenance: inputs' checksums, options and versions.
    """

    accuracy: float
    n_triplets: int
    n_correct: int
    n_ties: int
    similarity: str
    ties: str
    ceiling: float | None
    normalised: float | None
    chance: float = CHANCE
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    seed: int | None = None
    device: str = "cpu"
    method: str = "gram"
    model: str | None = None
    layer: str | None = None
    per_concept: ConceptBreakdown | None = None
    choices: np.ndarray | None = field(default=None, repr=False)
    correct: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """A JSON-able dict; per-triplet arrays only with ``include_arrays``."""
        out = jsonable(
            {k: v for k, v in self.__dict__.items() if k not in ("choices", "correct", "per_concept")}
        )
        out["per_concept"] = self.per_concept.to_dict() if self.per_concept is not None else None
        if include_arrays:
            out["choices"] = None if self.choices is None else self.choices.tolist()
            out["correct"] = None if self.correct is None else self.correct.tolist()
        return out

    def row(self) -> dict[str, Any]:
        """One flat table row (for ``--format table|csv``)."""
        return {
            "model": self.model,
            "layer": self.layer,
            "similarity": self.similarity,
            "ties": self.ties,
            "triplets": self.n_triplets,
            "accuracy": self.accuracy,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_ties": self.n_ties,
            "normalised": self.normalised,
            "ceiling": self.ceiling,
        }


def _triplet_array(triplets: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Accept an ``alignkit.data.Triplets`` or an (N, 3) integer array."""
    info: dict[str, Any] = {}
    if hasattr(triplets, "array") and hasattr(triplets, "n_objects"):
        T = np.asarray(triplets.array)
        info = {
            "source": getattr(triplets, "source", None),
            "checksum": getattr(triplets, "checksum", None),
            "n_objects": int(triplets.n_objects),
            "convention": getattr(triplets, "convention", None),
        }
    else:
        T = np.asarray(triplets)
        if T.ndim != 2 or T.shape[1] != 3:
            raise InputError(f"triplets must be an (N, 3) array, got shape {T.shape}")
        if T.size and not np.issubdtype(T.dtype, np.integer):
            raise InputError(f"triplets must be integers, got dtype {T.dtype}")
        info = {"source": "<array>", "checksum": sha256_array(T)}
    if T.ndim != 2 or T.shape[1] != 3:
        raise InputError(f"triplets must be an (N, 3) array, got shape {T.shape}")
    if T.size == 0:
        T = T.reshape(0, 3).astype(np.int32)
    if not T.flags.c_contiguous:
        T = np.ascontiguousarray(T)
    return T, info


def _check_range(T: np.ndarray, n: int) -> None:
    if T.size == 0:
        return
    lo, hi = int(T.min()), int(T.max())
    if lo < 0 or hi >= n:
        bad = int(np.flatnonzero(((T < 0) | (T >= n)).any(axis=1))[0])
        raise MismatchError(
            f"triplet row {bad + 1} indexes object {int(T[bad].max()) if hi >= n else lo}, "
            f"but the features have {n} rows (valid indices 0..{n - 1})"
        )


def assign_concepts(triplets: np.ndarray, embedding: np.ndarray, top: int = 1) -> np.ndarray:
    """Dimension that dominates each triplet's human-chosen similar pair.

    Args:
        triplets: (N, 3) indices, odd one out last (so ``(i, j)`` is the similar pair).
        embedding: (n, d) non-negative human concept embedding (SPoSE/VICE).
        top: 1 for the argmax dimension; 2 returns the two largest, (N, 2).

    Returns:
        int64 array (N,) (or (N, top)) of dimension indices.
    """
    E = np.asarray(embedding, dtype=np.float64)
    T = np.asarray(triplets)
    out = np.empty((len(T), top) if top > 1 else len(T), dtype=np.int64)
    block = 1 << 18  # bounded memory: block x d float64
    for s in range(0, len(T), block):
        t = T[s : s + block]
        m = E[t[:, 0]] + E[t[:, 1]]  # the mean up to a factor 2: same argmax
        if top == 1:
            out[s : s + block] = np.argmax(m, axis=1)
        else:
            part = np.argpartition(-m, top - 1, axis=1)[:, :top]
            order = np.argsort(-np.take_along_axis(m, part, axis=1), axis=1, kind="stable")
            out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def concept_breakdown(
    triplets: np.ndarray,
    correct: np.ndarray,
    embedding: np.ndarray,
    labels: list[str] | None = None,
    *,
    source: str = "<array>",
) -> ConceptBreakdown:
    """Per-dimension accuracy and counts (see :class:`ConceptBreakdown`)."""
    E = np.asarray(embedding, dtype=np.float64)
    T = np.asarray(triplets)
    if T.size and int(T.max()) >= E.shape[0]:
        raise MismatchError(
            f"the concept embedding has {E.shape[0]} rows but the triplets index object {int(T.max())}"
        )
    d = E.shape[1]
    labels = list(labels) if labels is not None else [f"dim{i + 1}" for i in range(d)]
    if len(labels) != d:
        raise MismatchError(f"{len(labels)} labels for a {d}-dimensional concept embedding")
    dims = assign_concepts(T, E)
    counts = np.bincount(dims, minlength=d).astype(np.int64)
    hits = np.bincount(dims, weights=np.asarray(correct, dtype=np.float64), minlength=d)
    return ConceptBreakdown(labels, counts, np.rint(hits).astype(np.int64), source)


def _concept_inputs(concepts: Any) -> tuple[np.ndarray, list[str] | None, str]:
    if isinstance(concepts, str):
        from alignkit.data import load_embedding

        concepts = load_embedding(concepts)
    if hasattr(concepts, "values") and hasattr(concepts, "labels"):
        return (
            np.asarray(concepts.values),
            list(concepts.labels),
            str(getattr(concepts, "source", "<embedding>")),
        )
    return np.asarray(concepts), None, "<array>"


def odd_one_out(
    features: Any,
    triplets: Any,
    *,
    similarity: str = "cosine",
    ties: str = "wrong",
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    ceiling: float | None = THINGS_CEILING,
    per_triplet: bool = False,
    concepts: Any = None,
    device: str = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    model: str | None = None,
    layer: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> OddOneOutResult:
    """Zero-shot odd-one-out accuracy of ``features`` on human ``triplets``.

    Args:
        features: (n, p) array; row ``t`` is the object that triplets call ``t``.
        triplets: an :class:`alignkit.data.Triplets` or an (N, 3) integer array,
            odd one out last.
        similarity: ``cosine`` (the paper code's default), ``dot``, ``euclidean``
            (negative distance) or ``correlation``.
        ties: ``wrong`` (the paper: a tie between the most similar pairs is an
            error) or ``first`` (the first maximum wins, as Brain-Score).
        bootstrap: number of bootstrap resamples of the triplets for a
            percentile confidence interval (0: none).
        seed: seed of the bootstrap's counter-based generator.
        ci_level: coverage of the interval.
        ceiling: noise ceiling for the normalised score (None: do not normalise).
        per_triplet: keep per-triplet choices and correctness in the result.
        concepts: a concept embedding (name such as ``"spose-49d"``, a
            ``ConceptEmbedding`` or an (n, d) array) for the per-dimension breakdown.
        device: ``auto``, ``cpu`` or ``cuda``.
        memory_budget: bytes allowed for the n x n similarity matrix; above it
            similarities are computed per triplet.

    Returns:
        An :class:`OddOneOutResult`.

    Example:
        >>> from alignkit.data import load_embedding, load_triplets
        >>> emb = load_embedding("spose-49d")
        >>> odd_one_out(emb.values, load_triplets("things-test20k"), similarity="dot").accuracy
        0.63475
    """
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import ooo as kooo
    from alignkit._kernels import similarity as ksim
    from alignkit._kernels.device import resolve_device

    check_choice(similarity, SIMILARITIES, "--similarity")
    check_choice(ties, TIE_RULES, "--ties")
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {bootstrap}")
    if not 0.0 < ci_level < 1.0:
        raise InputError(f"the confidence level must lie in (0, 1), got {ci_level}")
    X = as_features(features)
    T, tinfo = _triplet_array(triplets)
    _check_range(T, X.shape[0])
    if concepts is not None:
        E, labels, csource = _concept_inputs(concepts)
    dev = resolve_device(device)
    N = len(T)
    need_correct = per_triplet or bootstrap > 0 or concepts is not None
    use_gram = ksim.gram_bytes(X.shape[0]) <= memory_budget
    method = "gram" if use_gram else "direct"
    correct = choices = None
    if dev == "cuda":
        from alignkit._kernels import cuda as kcuda

        if use_gram:
            S = ksim.gram(X, similarity)
            n_correct, n_ties = kcuda.ooo_counts_cuda(S, T, ties)
            if need_correct:
                choices = kcuda.ooo_choices_cuda(S, T, ties)
        else:
            n_correct, n_ties = kcuda.ooo_counts_direct_cuda(X, T, similarity, ties)
            if need_correct:
                choices = kcuda.ooo_choices_direct_cuda(X, T, similarity, ties)
        if choices is not None:
            correct = (choices == 2).astype(np.uint8)
    else:
        src = ksim.gram(X, similarity) if use_gram else ksim.triplet_sims_direct(X, T, similarity)
        tri = T if use_gram else None
        if per_triplet:
            choices = kooo.ooo_choices(src, tri, ties)
            correct = (choices == 2).astype(np.uint8)
            n_correct = int(correct.sum())
            n_ties = int((choices == -1).sum()) if ties == "wrong" else int(
                kooo.ooo_counts(src, tri, ties)[1]
            )
        elif need_correct:
            correct = kooo.ooo_correct(src, tri, ties)
            n_correct, n_ties = kooo.ooo_counts(src, tri, ties)
        else:
            n_correct, n_ties = kooo.ooo_counts(src, tri, ties)
    n_correct, n_ties = int(n_correct), int(n_ties)
    accuracy = n_correct / N if N else float("nan")
    ci_low = ci_high = None
    if bootstrap > 0 and N > 0:
        assert correct is not None
        if dev == "cuda":
            means = kcuda.bootstrap_means_cuda(correct, bootstrap, seed)
        else:
            means = kboot.bootstrap_means(correct, bootstrap, seed)
        ci_low, ci_high = (float(v) for v in kboot.percentile_ci(means, ci_level))
    breakdown = None
    if concepts is not None:
        assert correct is not None
        breakdown = concept_breakdown(T, correct, E, labels, source=csource)
    prov = base_provenance(
        features_checksum=sha256_array(np.ascontiguousarray(X, dtype=np.float32)),
        triplets=tinfo,
        similarity=similarity,
        ties=ties,
        bootstrap=bootstrap,
        seed=seed if bootstrap else None,
        ceiling=ceiling,
        device=dev,
        method=method,
        protocol="zero-shot odd-one-out (Muttenthaler et al. 2023)",
    )
    if provenance:
        prov.update(provenance)
    return OddOneOutResult(
        accuracy=accuracy,
        n_triplets=N,
        n_correct=n_correct,
        n_ties=n_ties,
        similarity=similarity,
        ties=ties,
        ceiling=ceiling,
        normalised=None if N == 0 else normalised_score(accuracy, ceiling),
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=ci_level,
        n_bootstrap=bootstrap,
        seed=seed if bootstrap else None,
        device=dev,
        method=method,
        model=model,
        layer=layer,
        per_concept=breakdown,
        choices=choices if per_triplet else None,
        correct=correct if per_triplet else None,
        provenance=prov,
    )
