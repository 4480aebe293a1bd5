"""Representational similarity analysis against human dissimilarity matrices.

The model RDM is computed from feature rows (``1 - Pearson correlation``
clipped to [-1, 1] by default, as in the paper's figures; ``1 - cosine``,
euclidean distance or negative dot product otherwise) and compared with the
human RDM by the Spearman rank correlation (average ranks for ties) of the
upper triangles, Pearson optionally. Rows are always matched by stimulus id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array
from alignkit.score._common import as_features, check_choice, jsonable

__all__ = ["RSAResult", "RDM_METHODS", "COMPARE", "model_rdm", "check_rdm", "rsa", "rsa_features"]

RDM_METHODS = ("correlation", "cosine", "euclidean", "dot")
COMPARE = ("spearman", "pearson")


@dataclass
class RSAResult:
    """The outcome of comparing two RDMs.

    Attributes:
        value: the Spearman (or Pearson) correlation of the condensed upper triangles.
        p_value: one-sided permutation p-value ``(1 + #(null >= value)) / (1 + n)``
            from permuting the stimuli of the second RDM (None without permutations).
        ci_low, ci_high: percentile interval of a bootstrap over stimuli
            (pairs of a stimulus with its own copy are dropped).
    """

    value: float
    compare: str
    n_stimuli: int
    n_pairs: int
    rdm_method: str | None = None
    p_value: float | None = None
    n_permutations: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    seed: int | None = None
    model: str | None = None
    layer: str | None = None
    transform: str | None = None
    reference: str | None = None
    null: np.ndarray | None = field(default=None, repr=False)
    bootstrap_values: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("null", "bootstrap_values")
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "layer": self.layer,
            "transform": self.transform,
            "reference": self.reference,
            "rdm_method": self.rdm_method,
            "compare": self.compare,
            "stimuli": self.n_stimuli,
            "rsa": self.value,
            "p_value": self.p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


def model_rdm(features: Any, method: str = "correlation") -> np.ndarray:
    """Dissimilarity matrix (n x n, float64) of feature rows.

    ``correlation``: ``1 - r`` with ``r`` clipped to [-1, 1]; ``cosine``:
    ``1 - cos``; ``euclidean``: the distance; ``dot``: ``-<x_i, x_j>``.
    """
    from alignkit._kernels import similarity as ksim

    check_choice(method, RDM_METHODS, "method")
    X = as_features(features)
    if method == "correlation":
        D = 1.0 - np.clip(ksim.gram(X, "correlation"), -1.0, 1.0)
    elif method == "cosine":
        D = 1.0 - ksim.gram(X, "cosine")
    elif method == "euclidean":
        D = -ksim.gram(X, "euclidean")
    else:
        D = -ksim.gram(X, "dot")
    if method != "dot":
        np.fill_diagonal(D, 0.0)
    return D


def check_rdm(rdm: Any, name: str = "RDM", atol: float = 1e-8) -> np.ndarray:
    """Validate a square, symmetric, finite matrix; return it as float64."""
    M = np.asarray(rdm, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise DataError(f"{name} must be a square matrix, got shape {M.shape}")
    if M.shape[0] < 3:
        raise DataError(f"{name} needs at least 3 stimuli, got {M.shape[0]}")
    from alignkit._kernels.checks import all_finite, worst_asymmetry

    if not all_finite(M):
        raise DataError(f"{name} contains NaN or inf")
    scale = max(1.0, float(np.abs(M).max()))
    worst, i, j = worst_asymmetry(M)
    if worst > atol * scale:
        raise DataError(
            f"{name} is not symmetric: entry ({i + 1}, {j + 1}) = {M[i, j]!r} but "
            f"({j + 1}, {i + 1}) = {M[j, i]!r}"
        )
    return M


def _reference_info(reference: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    if hasattr(reference, "matrix"):
        info = {
            "source": getattr(reference, "source", None),
            "checksum": getattr(reference, "checksum", None),
            "kind_read": getattr(reference, "kind_read", None),
        }
        ids = getattr(reference, "ids", None)
        return np.asarray(reference.matrix), None if ids is None else np.asarray(ids), info
    M = np.asarray(reference, dtype=np.float64)
    return M, None, {"source": "<array>", "checksum": sha256_array(M)}


def rsa(
    rdm_a: Any,
    rdm_b: Any,
    *,
    compare: str = "spearman",
    permutations: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    device: str = "auto",
    rdm_method: str | None = None,
    model: str | None = None,
    layer: str | None = None,
    transform: str | None = None,
    reference: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> RSAResult:
    """Compare two aligned square RDMs (same stimuli, same order).

    Args:
        rdm_a, rdm_b: (m, m) symmetric dissimilarity matrices.
        compare: ``spearman`` (average ranks for ties) or ``pearson``.
        permutations: stimulus permutations of ``rdm_b`` for a p-value (0: none).
        bootstrap: bootstrap resamples of the stimuli for an interval (0: none).
        seed: seed of the counter-based generator behind both.
        device: ``auto``, ``cpu`` or ``cuda`` for the permutation test (the
            same permutations, hence the same null distribution, on both).
    """
    from alignkit._kernels import rank as krank
    from alignkit._kernels.device import resolve_device
    from alignkit.measures import get_measure

    # validated as the measure's options (messages name the argument)
    get_measure("rsa").options(rdm_method=rdm_method or "correlation", compare=compare,
                               permutations=permutations, bootstrap=bootstrap,
                               ci_level=ci_level, seed=seed)
    A = check_rdm(rdm_a, "the first RDM")
    B = check_rdm(rdm_b, "the second RDM")
    if A.shape != B.shape:
        raise MismatchError(f"RDM shapes differ: {A.shape} vs {B.shape}")
    m = A.shape[0]
    a, b = krank.condensed(A), krank.condensed(B)
    value = float(krank.spearman(a, b) if compare == "spearman" else krank.pearson(a, b))
    dev = resolve_device(device)
    p_value, null = _permutation_test(A, B, a, b, compare, permutations, seed, dev)
    ci_low, ci_high, boots = _bootstrap_interval(A, B, compare, bootstrap, seed, ci_level)
    used_seed = seed if (permutations or bootstrap) else None
    prov = base_provenance(
        rdm_a_checksum=sha256_array(A), rdm_b_checksum=sha256_array(B), compare=compare,
        rdm_method=rdm_method, permutations=permutations, bootstrap=bootstrap, seed=used_seed,
        device=dev, transform=transform,
        protocol="RSA: upper triangles (k=1), average ranks for ties",
    )
    prov.update(provenance or {})
    return RSAResult(
        value=value, compare=compare, n_stimuli=m, n_pairs=m * (m - 1) // 2,
        rdm_method=rdm_method, p_value=p_value, n_permutations=permutations, ci_low=ci_low,
        ci_high=ci_high, ci_level=ci_level, n_bootstrap=bootstrap, seed=used_seed, model=model,
        layer=layer, transform=transform, reference=reference, null=null,
        bootstrap_values=boots, provenance=prov,
    )


def _permutation_test(A: np.ndarray, B: np.ndarray, a: np.ndarray, b: np.ndarray, compare: str,
                      permutations: int, seed: int, dev: str) -> tuple[float | None, Any]:
    """One-sided p-value ``(1 + #(null >= observed)) / (1 + n)`` and the null (None: none)."""
    if not permutations:
        return None, None
    from alignkit._kernels import rsa as krsa
    from alignkit._kernels.backends import backend

    # the observed value is recomputed by the null's own summation, so that
    # the identity permutation compares equal to it
    observed, _ = krsa.rsa_permutation(A, B, 0, seed, method=compare)
    null = backend("rsa_permutation_null", dev)(A, B, a, b, permutations, seed, compare)
    return float((1 + np.count_nonzero(null >= observed)) / (1 + permutations)), null


def _bootstrap_interval(A: np.ndarray, B: np.ndarray, compare: str, bootstrap: int, seed: int,
                        ci_level: float) -> tuple[float | None, float | None, Any]:
    """Percentile interval of a bootstrap over stimuli, and the resampled values."""
    if not bootstrap:
        return None, None, None
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import rsa as krsa

    boots = krsa.rsa_bootstrap_stimuli(A, B, bootstrap, seed, method=compare)
    finite = boots[np.isfinite(boots)]
    if not finite.size:
        return None, None, boots
    lo, hi = (float(v) for v in kboot.percentile_ci(finite, ci_level))
    return lo, hi, boots


def rsa_features(
    features: Any,
    ids: Any,
    reference: Any,
    *,
    reference_ids: Any = None,
    rdm_method: str = "correlation",
    compare: str = "spearman",
    permutations: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    device: str = "auto",
    transform: Any = None,
    transform_name: str | None = None,
    model: str | None = None,
    layer: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> RSAResult:
    """RSA between a model's features and a human RDM, matched by stimulus id.

    Args:
        features: (n, p) features; ``ids`` names their rows.
        reference: an :class:`alignkit.data.RDM` (carrying its ids) or an (m, m)
            dissimilarity matrix with ``reference_ids``.
        transform: optional object with ``apply(X)`` (a probe transform),
            applied to the features before the model RDM; ``transform_name``
            names it in the result.
    """
    from alignkit.data import align_by_ids

    X = as_features(features)
    ids = np.asarray(ids).astype(str)
    if len(ids) != X.shape[0]:
        raise MismatchError(f"{len(ids)} ids for {X.shape[0]} feature rows")
    M, ref_ids, ref_info = _reference_info(reference)
    if reference_ids is not None:
        ref_ids = np.asarray(reference_ids).astype(str)
    if ref_ids is None:
        raise InputError("the reference RDM has no stimulus ids: give its ids to align by")
    M = check_rdm(M, f"reference RDM {ref_info.get('source') or ''}".strip())
    if len(ref_ids) != M.shape[0]:
        raise MismatchError(f"{len(ref_ids)} reference ids for a {M.shape[0]} x {M.shape[0]} RDM")
    idx_feat, idx_ref = align_by_ids(ids, ref_ids)
    tname = None
    if transform is not None:
        X = np.asarray(transform.apply(X), dtype=np.float64)
        tname = transform_name or "transform"
    D = model_rdm(X[idx_feat], rdm_method)
    H = M[np.ix_(idx_ref, idx_ref)]
    prov = {"reference": ref_info, "features_checksum": sha256_array(X)}
    if provenance:
        prov.update(provenance)
    return rsa(
        D,
        H,
        compare=compare,
        permutations=permutations,
        bootstrap=bootstrap,
        seed=seed,
        ci_level=ci_level,
        device=device,
        rdm_method=rdm_method,
        model=model,
        layer=layer,
        transform=tname,
        reference=ref_info.get("source"),
        provenance=prov,
    )
