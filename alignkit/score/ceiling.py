"""Noise ceilings computed from the data they belong to.

* :func:`ooo_noise_ceiling`: the odd-one-out ceiling of a triplet set with repeated triplets
  (the THINGS release has a repeat set). Responses are grouped by their unordered triple
  ``{i, j, k}``; a triple's agreement is the share of its responses that pick its majority odd
  one out (``max count / n``; a tied majority gives the same share whichever wins); the
  ceiling is the mean agreement over the triples answered at least ``min_repeats`` times. No
  model can agree with every response of a triple more often than its majority does, so this
  is the accuracy of an ideal model that always predicts the majority choice.
* :func:`rsa_noise_ceiling`: lower and upper bounds of the RSA noise ceiling from per-subject
  RDMs, as rsatoolbox defines them (``boot_noise_ceiling``, Nili et al. 2014): the upper bound
  is the mean over subjects of ``compare(pool(all subjects), subject)``, the lower bound that
  of ``compare(pool(the other subjects), subject)`` (leave one subject out). ``pool`` is the
  RDM that is best under the comparison: the mean of the subjects' rank-transformed vectors
  for Spearman, of their z-scored vectors for Pearson, of their vectors divided by their root
  mean square for cosine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError
from alignkit.validate import as_triplets

__all__ = [
    "OddOneOutCeiling",
    "RSACeiling",
    "ooo_noise_ceiling",
    "rsa_noise_ceiling",
    "RSA_CEILING_COMPARISONS",
]

#: Comparisons :func:`rsa_noise_ceiling` knows how to pool for.
RSA_CEILING_COMPARISONS = ("spearman", "pearson", "cosine")


@dataclass
class OddOneOutCeiling:
    """The odd-one-out noise ceiling of a triplet set with repeats.

    Attributes:
        ceiling: mean majority agreement over the repeated triples (None without any).
        se: its standard error over triples.
        n_repeated: triples answered at least ``min_repeats`` times.
        n_responses: responses to those triples.
        n_triplets: all rows read.
        source, checksum: where the triplets came from.
    """

    ceiling: float | None
    se: float | None
    n_repeated: int
    n_responses: int
    n_triplets: int
    min_repeats: int
    source: str = "<array>"
    checksum: str | None = None
    definition: str = (
        "mean over triples answered >= min_repeats times of the share of responses that pick "
        "the triple's majority odd one out"
    )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ceiling": self.ceiling,
            "se": self.se,
            "repeated_triplets": self.n_repeated,
            "responses": self.n_responses,
            "rows": self.n_triplets,
        }


@dataclass
class RSACeiling:
    """Lower and upper bound of the RSA noise ceiling (rsatoolbox's definition)."""

    lower: float
    upper: float
    compare: str
    n_subjects: int
    n_stimuli: int
    per_subject_lower: np.ndarray = field(repr=False)
    per_subject_upper: np.ndarray = field(repr=False)
    source: str = "<array>"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["per_subject_lower"] = self.per_subject_lower.tolist()
        d["per_subject_upper"] = self.per_subject_upper.tolist()
        return d

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "compare": self.compare,
            "lower": self.lower,
            "upper": self.upper,
            "subjects": self.n_subjects,
            "stimuli": self.n_stimuli,
        }


def ooo_noise_ceiling(triplets: Any, *, min_repeats: int = 2) -> OddOneOutCeiling:
    """The odd-one-out noise ceiling from repeated triplets (see the module docstring).

    Args:
        triplets: an :class:`alignkit.data.Triplets` or an ``(N, 3)`` integer array, odd one
            out last; repeats of a triple may list its first two objects in any order.
        min_repeats: the fewest responses a triple needs to count (at least 2).

    Raises:
        InputError: ``min_repeats`` below 2.
    """
    if isinstance(min_repeats, bool) or not isinstance(min_repeats, (int, np.integer)) or (
        min_repeats < 2
    ):
        raise InputError(f"--min-repeats must be an integer >= 2, got {min_repeats!r}")
    T = as_triplets(triplets, None, name="triplets")
    N = len(T)
    source = str(getattr(triplets, "source", "<array>"))
    checksum = getattr(triplets, "checksum", None)
    if N == 0:
        return OddOneOutCeiling(None, None, 0, 0, 0, int(min_repeats), source, checksum)
    triple = np.sort(T, axis=1)
    _, group = np.unique(triple, axis=0, return_inverse=True)
    group = group.ravel()
    # count responses per (triple, chosen odd one out)
    pairs, counts = np.unique(np.stack([group, T[:, 2]], axis=1), axis=0, return_counts=True)
    n_groups = int(group.max()) + 1
    sizes = np.bincount(group, minlength=n_groups)
    majority = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(majority, pairs[:, 0], counts)
    use = sizes >= min_repeats
    if not use.any():
        return OddOneOutCeiling(None, None, 0, 0, N, int(min_repeats), source, checksum)
    agreement = majority[use] / sizes[use]
    se = float(agreement.std(ddof=1) / np.sqrt(agreement.size)) if agreement.size > 1 else None
    return OddOneOutCeiling(
        float(agreement.mean()), se, int(use.sum()), int(sizes[use].sum()), N,
        int(min_repeats), source, checksum,
    )


def _condensed_stack(rdms: Any) -> np.ndarray:
    """``(S, m)`` upper triangles (k = 1, row-major) of a stack of square RDMs, or the stack
    as given when it is already condensed."""
    A = np.asarray(rdms, dtype=np.float64)
    if A.ndim == 3:
        if A.shape[1] != A.shape[2]:
            raise InputError(f"per-subject RDMs must be subjects x n x n, got shape {A.shape}")
        iu = np.triu_indices(A.shape[1], k=1)
        A = A[:, iu[0], iu[1]]
    elif A.ndim != 2:
        raise InputError(
            f"per-subject RDMs must be subjects x n x n or subjects x n(n-1)/2, got {A.shape}"
        )
    if A.shape[0] < 2:
        raise InputError(f"a noise ceiling needs at least 2 subjects, got {A.shape[0]}")
    if not np.isfinite(A).all():
        s = int(np.flatnonzero(~np.isfinite(A).all(axis=1))[0])
        raise DataError(f"the RDM of subject {s + 1} holds NaN or inf")
    return A


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v, axis=-1)


def _pool(V: np.ndarray, compare: str) -> np.ndarray:
    if compare == "spearman":
        return _ranks(V).mean(axis=0)
    if compare == "pearson":
        Z = V - V.mean(axis=1, keepdims=True)
        return (Z / Z.std(axis=1, keepdims=True)).mean(axis=0)
    return (V / np.sqrt((V**2).mean(axis=1, keepdims=True))).mean(axis=0)


def _compare(a: np.ndarray, B: np.ndarray, compare: str) -> np.ndarray:
    """``compare(a, b)`` for a vector ``a`` against each row of ``B``."""
    if compare == "spearman":
        a, B = _ranks(a), _ranks(B)
        compare = "pearson"
    if compare == "pearson":
        a = a - a.mean()
        B = B - B.mean(axis=1, keepdims=True)
    return (B @ a) / (np.linalg.norm(B, axis=1) * np.linalg.norm(a))


def rsa_noise_ceiling(
    rdms: Any, *, compare: str = "spearman", source: str = "<array>"
) -> RSACeiling:
    """Lower and upper bound of the RSA noise ceiling from per-subject RDMs.

    Args:
        rdms: ``subjects x n x n`` dissimilarity matrices, or ``subjects x n(n-1)/2`` upper
            triangles (row-major, k = 1), all over the same stimuli in the same order.
        compare: ``spearman``, ``pearson`` or ``cosine`` (the RSA comparison the ceiling is
            for).
        source: a name for provenance.

    Returns:
        :class:`RSACeiling`; ``lower`` (leave one subject out) <= ``upper`` for Pearson and
        cosine, and in practice for Spearman.

    Raises:
        InputError: fewer than 2 subjects, a bad shape or an unknown comparison.
        DataError: NaN or inf in a subject's RDM.
    """
    if compare not in RSA_CEILING_COMPARISONS:
        raise InputError(
            f"--compare must be one of {', '.join(RSA_CEILING_COMPARISONS)}; got {compare!r}"
        )
    V = _condensed_stack(rdms)
    S = V.shape[0]
    upper = np.empty(S)
    lower = np.empty(S)
    pooled = _pool(V, compare)
    upper[:] = _compare(pooled, V, compare)
    for s in range(S):
        others = np.delete(V, s, axis=0)
        lower[s] = _compare(_pool(others, compare), V[s : s + 1], compare)[0]
    m = V.shape[1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    return RSACeiling(
        float(lower.mean()), float(upper.mean()), compare, S, n, lower, upper, source
    )
