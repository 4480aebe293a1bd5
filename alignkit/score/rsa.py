"""Representational similarity analysis against human dissimilarity matrices.

The model RDM is computed from feature rows (``1 - Pearson correlation``
clipped to [-1, 1] by default, as in the paper's figures; ``1 - cosine``,
the Euclidean distance, rsatoolbox's ``euclidean`` (the squared distance over
the number of channels, here ``sqeuclidean-mean``) or the negative dot product
otherwise) and compared with the human RDM through the upper triangles by
one of the comparison methods of rsatoolbox (``COMPARE``; Spearman with average
ranks for ties by default; see :mod:`alignkit._kernels.compare`). Rows are
always matched by stimulus id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array
from alignkit.score._common import as_features, check_choice, jsonable, paired_pvalue

__all__ = ["RSAResult", "PairedRSAResult", "RDM_METHODS", "COMPARE", "model_rdm", "check_rdm", "rsa",
           "rsa_features", "compare_models_rsa", "paired_pvalue", "subject_stack"]

RDM_METHODS = ("correlation", "cosine", "euclidean", "sqeuclidean-mean", "dot")
#: The comparison methods, as :data:`alignkit._kernels.compare.METHODS` (named here so that
#: importing this module compiles nothing).
COMPARE = ("spearman", "pearson", "kendall-tau-b", "tau-a", "rho-a", "cosine",
           "whitened-cosine", "whitened-pearson")
#: The methods whose permutation test has a CUDA twin.
_CUDA_COMPARE = ("spearman", "pearson")


@dataclass
class RSAResult:
    """The outcome of comparing two RDMs.

    Attributes:
        value: the comparison ``compare`` (Spearman by default) of the condensed upper
            triangles.
        p_value: one-sided permutation p-value ``(1 + #(null >= value)) / (1 + n)``
            from permuting the stimuli of the second RDM (None without permutations).
        ci_low, ci_high: percentile interval of a bootstrap over stimuli
            (pairs of a stimulus with its own copy are dropped).
        subject_ci_low, subject_ci_high: percentile interval of a bootstrap over the
            subjects whose RDMs average to the reference (None without one).
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
    n_subjects: int | None = None
    n_subject_bootstrap: int = 0
    subject_ci_low: float | None = None
    subject_ci_high: float | None = None
    subject_bootstrap_values: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("null", "bootstrap_values", "subject_bootstrap_values")
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
    ``1 - cos``; ``euclidean``: the Euclidean distance ``|x_i - x_j|``;
    ``sqeuclidean-mean``: ``|x_i - x_j|^2 / p`` for ``p`` channels (what rsatoolbox's
    ``calc_rdm(method="euclidean")`` computes); ``dot``: ``-<x_i, x_j>``.
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
    elif method == "sqeuclidean-mean":
        from scipy.spatial.distance import pdist, squareform

        # differences, not the Gram expansion: no cancellation for nearby rows
        D = squareform(pdist(X, "sqeuclidean") / X.shape[1])
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


def _checked_reference(reference: Any, reference_ids: Any
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The human RDM as a checked matrix, its rows' ids (``reference_ids`` overriding its own)
    and what it is, for matching model rows to it by id.

    Raises:
        InputError: the RDM has no ids to match by.
        DataError: not a square symmetric finite matrix.
        MismatchError: the number of ids differs from its rows.
    """
    M, ref_ids, ref_info = _reference_info(reference)
    if reference_ids is not None:
        ref_ids = np.asarray(reference_ids).astype(str)
    if ref_ids is None:
        raise InputError("the reference RDM has no stimulus ids: give its ids to align by")
    M = check_rdm(M, f"reference RDM {ref_info.get('source') or ''}".strip())
    if len(ref_ids) != M.shape[0]:
        raise MismatchError(f"{len(ref_ids)} reference ids for a {M.shape[0]} x {M.shape[0]} RDM")
    return M, ref_ids, ref_info


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
    subjects: Any = None,
    subject_bootstrap: int = 0,
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
        compare: one of :data:`COMPARE` (rsatoolbox's definitions): ``spearman`` (average
            ranks for ties), ``pearson``, ``kendall-tau-b``, ``tau-a``, ``rho-a``,
            ``cosine``, ``whitened-cosine``, ``whitened-pearson``.
        permutations: stimulus permutations of ``rdm_b`` for a p-value (0: none).
        bootstrap: bootstrap resamples of the stimuli for an interval (0: none).
        seed: seed of the counter-based generator behind both (the same permutations and
            resamples for every method).
        device: ``auto``, ``cpu`` or ``cuda`` for the permutation test (the
            same permutations, hence the same null distribution, on both; the methods
            other than spearman and pearson run on the CPU).
        subjects: per-subject RDMs whose mean is ``rdm_b`` (``s x m x m`` or ``s x
            m (m - 1) / 2``, rows in ``rdm_b``'s order; NaN: a pair a subject did not judge),
            for ``subject_bootstrap`` resamples of the subjects.
    """
    from alignkit._kernels import compare as kcmp
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
    if compare == "spearman":
        value = float(krank.spearman(a, b))
    elif compare == "pearson":
        value = float(krank.pearson(a, b))
    else:
        value = kcmp.compare(a, b, compare)
    dev = resolve_device(device)
    perm_dev = dev if compare in _CUDA_COMPARE else "cpu"
    p_value, null = _permutation_test(A, B, a, b, compare, permutations, seed, perm_dev)
    ci_low, ci_high, boots = _bootstrap_interval(A, B, compare, bootstrap, seed, ci_level)
    stack = None if subjects is None else subject_stack(subjects, m)
    sub_lo, sub_hi, sub_boots = _subject_interval(a, stack, compare, subject_bootstrap, seed,
                                                  ci_level)
    used_seed = seed if (permutations or bootstrap or subject_bootstrap) else None
    prov = base_provenance(
        rdm_a_checksum=sha256_array(A), rdm_b_checksum=sha256_array(B), compare=compare,
        rdm_method=rdm_method, permutations=permutations, bootstrap=bootstrap, seed=used_seed,
        device=perm_dev, transform=transform,
        protocol="RSA: upper triangles (k=1), average ranks for ties",
    )
    if stack is not None:
        prov["subjects_checksum"] = sha256_array(stack)
        prov["subject_bootstrap"] = subject_bootstrap
    prov.update(provenance or {})
    return RSAResult(
        value=value, compare=compare, n_stimuli=m, n_pairs=m * (m - 1) // 2,
        rdm_method=rdm_method, p_value=p_value, n_permutations=permutations, ci_low=ci_low,
        ci_high=ci_high, ci_level=ci_level, n_bootstrap=bootstrap, seed=used_seed, model=model,
        layer=layer, transform=transform, reference=reference, null=null,
        bootstrap_values=boots, n_subjects=None if stack is None else int(stack.shape[0]),
        n_subject_bootstrap=subject_bootstrap if stack is not None else 0,
        subject_ci_low=sub_lo, subject_ci_high=sub_hi, subject_bootstrap_values=sub_boots,
        provenance=prov,
    )


def subject_stack(subjects: Any, m: int) -> np.ndarray:
    """Per-subject RDMs as a float64 ``(s, m (m - 1) / 2)`` stack of condensed vectors."""
    S = np.asarray(subjects, dtype=np.float64)
    L = m * (m - 1) // 2
    if S.ndim == 3:
        if S.shape[1:] != (m, m):
            raise MismatchError(f"the subjects' RDMs are {S.shape[1]} x {S.shape[2]}, the "
                                f"reference {m} x {m}")
        iu = np.triu_indices(m, 1)
        S = S[:, iu[0], iu[1]]
    elif S.ndim != 2 or S.shape[1] != L:
        raise MismatchError(f"the subjects' RDMs must be s x {m} x {m} or s x {L}, got shape "
                            f"{S.shape}")
    if S.shape[0] < 2:
        raise DataError(f"a bootstrap over subjects needs at least 2 subjects, got {S.shape[0]}")
    if np.isinf(S).any():
        raise DataError("the subjects' RDMs contain inf")
    return np.ascontiguousarray(S)


def _subject_interval(a: np.ndarray, stack: np.ndarray | None, compare: str, n_boot: int,
                      seed: int, ci_level: float) -> tuple[float | None, float | None, Any]:
    if not n_boot:
        return None, None, None
    if stack is None:
        raise InputError("subject_bootstrap needs the per-subject RDMs (subjects=...)")
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import compare as kcmp

    boots = kcmp.bootstrap_subjects(a[None, :], stack, n_boot, seed, compare)[:, 0]
    finite = boots[np.isfinite(boots)]
    if not finite.size:
        return None, None, boots
    lo, hi = (float(v) for v in kboot.percentile_ci(finite, ci_level))
    return lo, hi, boots


def _permutation_test(A: np.ndarray, B: np.ndarray, a: np.ndarray, b: np.ndarray, compare: str,
                      permutations: int, seed: int, dev: str) -> tuple[float | None, Any]:
    """One-sided p-value ``(1 + #(null >= observed)) / (1 + n)`` and the null (None: none)."""
    if not permutations:
        return None, None
    from alignkit._kernels import compare as kcmp
    from alignkit._kernels.backends import backend

    # the observed value is recomputed by the null's own summation, so that
    # the identity permutation compares equal to it
    if compare in _CUDA_COMPARE:
        observed, _ = kcmp.permutation_null(A, B, 0, seed, method=compare)
        null = backend("rsa_permutation_null", dev)(A, B, a, b, permutations, seed, compare)
    else:
        observed, null = kcmp.permutation_null(a, b, permutations, seed, method=compare)
    if not np.isfinite(observed):
        return None, null
    return float((1 + np.count_nonzero(null >= observed)) / (1 + permutations)), null


def _bootstrap_interval(A: np.ndarray, B: np.ndarray, compare: str, bootstrap: int, seed: int,
                        ci_level: float) -> tuple[float | None, float | None, Any]:
    """Percentile interval of a bootstrap over stimuli, and the resampled values."""
    if not bootstrap:
        return None, None, None
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import compare as kcmp

    boots = kcmp.bootstrap_stimuli(A, B, bootstrap, seed, method=compare)
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
    subjects: Any = None,
    subject_bootstrap: int = 0,
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
        subjects: per-subject RDMs in the reference's row order (``s x n x n`` or ``s x
            n (n - 1) / 2``; see :func:`alignkit.data.rdm.load_subject_rdms`), for a
            bootstrap over subjects of ``subject_bootstrap`` resamples.
    """
    from alignkit.data import align_by_ids

    X = as_features(features)
    ids = np.asarray(ids).astype(str)
    if len(ids) != X.shape[0]:
        raise MismatchError(f"{len(ids)} ids for {X.shape[0]} feature rows")
    M, ref_ids, ref_info = _checked_reference(reference, reference_ids)
    idx_feat, idx_ref = align_by_ids(ids, ref_ids)
    tname = None
    if transform is not None:
        X = np.asarray(transform.apply(X), dtype=np.float64)
        tname = transform_name or "transform"
    D = model_rdm(X[idx_feat], rdm_method)
    H = M[np.ix_(idx_ref, idx_ref)]
    if subjects is not None:
        subjects = _select_subjects(subjects, M.shape[0], idx_ref)
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
        subjects=subjects,
        subject_bootstrap=subject_bootstrap,
        rdm_method=rdm_method,
        model=model,
        layer=layer,
        transform=tname,
        reference=ref_info.get("source"),
        provenance=prov,
    )


def _select_subjects(subjects: Any, n: int, idx: np.ndarray) -> np.ndarray:
    """Per-subject RDMs (square or condensed, reference order) restricted to rows ``idx``."""
    S = np.asarray(subjects, dtype=np.float64)
    if S.ndim == 2 and S.shape[1] == n * (n - 1) // 2:
        full = np.zeros((S.shape[0], n, n))
        iu = np.triu_indices(n, 1)
        full[:, iu[0], iu[1]] = S
        full[:, iu[1], iu[0]] = S
        S = full
    if S.ndim != 3 or S.shape[1:] != (n, n):
        raise MismatchError(f"the subjects' RDMs must be s x {n} x {n} or s x "
                            f"{n * (n - 1) // 2} (the reference's stimuli), got shape {S.shape}")
    return S[:, idx][:, :, idx]


@dataclass
class PairedRSAResult:
    """Two models compared with one reference RDM on the same resamples.

    Attributes:
        value_a, value_b: each model's comparison value; ``difference = value_a - value_b``.
        ci_low, ci_high: percentile interval of the difference over the resamples.
        p_value: two-sided bootstrap p-value of "no difference",
            ``min(1, 2 min((1 + #(d <= 0)), (1 + #(d >= 0))) / (1 + n))`` over the
            resampled differences ``d``: 1 when the models agree on every resample.
        resample: ``stimuli`` or ``subjects``.
    """

    value_a: float
    value_b: float
    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    compare: str
    rdm_method: str
    resample: str
    n_bootstrap: int
    n_stimuli: int
    ci_level: float = 0.95
    seed: int = 0
    model_a: str | None = None
    model_b: str | None = None
    reference: str | None = None
    differences: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("differences",)
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})

    def row(self) -> dict[str, Any]:
        return {
            "a": self.model_a, "b": self.model_b, "reference": self.reference,
            "compare": self.compare, "rsa_a": self.value_a, "rsa_b": self.value_b,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "p_value": self.p_value, "resample": self.resample,
        }


def compare_models_rsa(
    features_a: Any,
    features_b: Any,
    ids: Any,
    reference: Any,
    *,
    ids_b: Any = None,
    reference_ids: Any = None,
    rdm_method: str = "correlation",
    compare: str = "spearman",
    bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    subjects: Any = None,
    model_a: str | None = None,
    model_b: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> PairedRSAResult:
    """Paired comparison of two models' RSA with the same human RDM.

    Both model RDMs are compared with the reference on the same bootstrap resamples (of the
    stimuli, or of the subjects when ``subjects`` is given), and the difference
    ``rsa(a) - rsa(b)`` gets a percentile interval and a two-sided p-value
    (:func:`paired_pvalue`). Only stimuli present in both models and the reference are used.

    Args:
        features_a, features_b: ``(n, p)`` features; ``ids`` names the rows of both, or
            ``ids_b`` those of ``features_b``.
        reference: an :class:`alignkit.data.RDM` or a matrix with ``reference_ids``.
        subjects: per-subject RDMs in the reference's row order: resample subjects instead.

    Example:
        >>> import numpy as np
        >>> from alignkit.data import RDM
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(12, 4)); ids = [f"s{i}" for i in range(12)]
        >>> H = RDM(((X[:, None] - X[None]) ** 2).sum(-1), np.array(ids), "dissimilarity",
        ...         "<array>", "", "")
        >>> r = compare_models_rsa(X, X, ids, H, bootstrap=50)
        >>> r.difference, r.p_value
        (0.0, 1.0)
    """
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import compare as kcmp
    from alignkit._kernels import rank as krank
    from alignkit.data import align_by_ids
    from alignkit.measures import get_measure

    get_measure("rsa").options(rdm_method=rdm_method, compare=compare, bootstrap=bootstrap,
                               ci_level=ci_level, seed=seed)
    if bootstrap < 1:
        raise InputError(f"bootstrap must be >= 1 for a paired comparison, got {bootstrap}")
    Xa, Xb = as_features(features_a), as_features(features_b)
    ids_a = np.asarray(ids).astype(str)
    ids_b = ids_a if ids_b is None else np.asarray(ids_b).astype(str)
    for name, X, i in (("features_a", Xa, ids_a), ("features_b", Xb, ids_b)):
        if len(i) != X.shape[0]:
            raise MismatchError(f"{len(i)} ids for {X.shape[0]} rows of {name}")
    M, ref_ids, ref_info = _checked_reference(reference, reference_ids)
    ia, ir = align_by_ids(ids_a, ref_ids)
    common = np.asarray(ref_ids)[ir]
    ib, keep = align_by_ids(ids_b, common)
    ia, ir = ia[keep], ir[keep]
    if len(ir) < 3:
        raise DataError(f"only {len(ir)} stimuli are shared by both models and the reference")
    Da = check_rdm(model_rdm(Xa[ia], rdm_method), "model a's RDM")
    Db = check_rdm(model_rdm(Xb[ib], rdm_method), "model b's RDM")
    H = M[np.ix_(ir, ir)]
    a, b, h = krank.condensed(Da), krank.condensed(Db), krank.condensed(H)
    va, vb = kcmp.compare(a, h, compare), kcmp.compare(b, h, compare)
    if subjects is not None:
        stack = subject_stack(_select_subjects(subjects, M.shape[0], ir), len(ir))
        boots = kcmp.bootstrap_subjects(np.stack([a, b]), stack, bootstrap, seed, compare)
        resample = "subjects"
    else:
        boots = kcmp.paired_bootstrap_stimuli(a, b, h, bootstrap, seed, compare)
        resample = "stimuli"
    diffs = boots[:, 0] - boots[:, 1]
    finite = diffs[np.isfinite(diffs)]
    lo = hi = None
    if finite.size:
        lo, hi = (float(v) for v in kboot.percentile_ci(finite, ci_level))
    prov = base_provenance(
        features_a_checksum=sha256_array(Xa), features_b_checksum=sha256_array(Xb),
        reference=ref_info, compare=compare, rdm_method=rdm_method, bootstrap=bootstrap,
        resample=resample, seed=seed, ci_level=ci_level,
        protocol="paired RSA: both models on the same resamples; difference a - b",
    )
    if subjects is not None:
        prov["subjects_checksum"] = sha256_array(np.asarray(subjects, dtype=np.float64))
    prov.update(provenance or {})
    return PairedRSAResult(
        value_a=float(va), value_b=float(vb), difference=float(va - vb), ci_low=lo, ci_high=hi,
        p_value=paired_pvalue(diffs), compare=compare, rdm_method=rdm_method,
        resample=resample, n_bootstrap=bootstrap, n_stimuli=len(ir), ci_level=ci_level,
        seed=seed, model_a=model_a, model_b=model_b, reference=ref_info.get("source"),
        differences=diffs, provenance=prov,
    )
