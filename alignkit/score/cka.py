"""CKA and shape metrics between features and a representation, with inference.

* :func:`cka_features`: centred kernel alignment (linear or RBF, biased or debiased) of a
  model's features with a representation that has one row per stimulus (a human concept
  embedding such as SPoSE 49d), rows matched by id.
* :func:`shape_features`: the angular shape metric or the Procrustes distance (Williams et
  al. 2021) with optional centring and partial whitening ``alpha``.
* Both give a bootstrap interval over stimuli (rows resampled with replacement on the
  counter-based streams of :mod:`alignkit._kernels._rng`) and a permutation p-value
  (the rows of the representation permuted).
* :func:`compare_models`: two models against the same representation on the same
  resamples: the difference, its interval and a two-sided p-value.
* :func:`similarity_matrix`: CKA or a shape metric between every pair of store entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array
from alignkit.score._common import as_features, check_choice, jsonable, paired_pvalue

__all__ = [
    "CKAResult",
    "ShapeResult",
    "PairedComparison",
    "SimilarityMatrix",
    "KERNELS",
    "SHAPE_METRICS",
    "RBF_FRACTION",
    "cka_features",
    "shape_features",
    "compare_models",
    "similarity_matrix",
    "Evaluator",
]

KERNELS = ("linear", "rbf")
SHAPE_METRICS = ("angular", "procrustes")
#: Bandwidth of the RBF kernel as a fraction of the median distance (the paper's code: 1).
RBF_FRACTION = 1.0
#: Largest number of stimuli whose bootstrap uses n x n Gram matrices (features wider than n).
_GRAM_BOOTSTRAP_MAX = 8000
#: Permuted copies multiplied in one product.
_PERM_BATCH = 16


# ----------------------------------------------------------------------------- results
@dataclass
class CKAResult:
    """CKA of features with a representation.

    Attributes:
        value: CKA in [0, 1] (debiased: may dip below 0).
        ci_low, ci_high: percentile interval of the bootstrap over stimuli.
        p_value: one-sided permutation p-value ``(1 + #(null >= value)) / (1 + n)``.
        sigma_x, sigma_y: the RBF bandwidths (None for the linear kernel).
    """

    value: float
    kernel: str
    debiased: bool
    n_stimuli: int
    rbf_fraction: float | None = None
    sigma_x: float | None = None
    sigma_y: float | None = None
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
    dataset: str | None = None
    bootstrap_values: np.ndarray | None = field(default=None, repr=False)
    null: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("null", "bootstrap_values")
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})


@dataclass
class ShapeResult:
    """A shape distance (angular: radians in [0, pi/2]; Procrustes: >= 0).

    Attributes:
        value: the distance (smaller is more similar).
        p_value: one-sided permutation p-value ``(1 + #(null <= value)) / (1 + n)``.
    """

    value: float
    metric: str
    alpha: float
    centre: bool
    normalise: bool
    n_stimuli: int
    width: int
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
    dataset: str | None = None
    bootstrap_values: np.ndarray | None = field(default=None, repr=False)
    null: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("null", "bootstrap_values")
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})


@dataclass
class PairedComparison:
    """Model A minus model B, both against the same representation on the same resamples.

    Attributes:
        difference: ``value_a - value_b`` on all common stimuli.
        ci_low, ci_high: percentile interval of the bootstrap differences.
        p_value: two-sided bootstrap p-value
            ``min(1, 2 min((1 + #(d_b <= 0)), (1 + #(d_b >= 0))) / (1 + B))``.
    """

    measure: str
    value_a: float
    value_b: float
    difference: float
    n_stimuli: int
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    ci_level: float
    n_bootstrap: int
    seed: int
    model_a: str | None = None
    model_b: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    differences: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("differences",)
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})


@dataclass
class SimilarityMatrix:
    """A measure between every pair of entries (``labels`` name the rows and columns).

    ``values[i, j]`` is the measure of entry ``i`` (as X) with entry ``j`` (as Y), on the
    stimuli the two share (``n_stimuli[i, j]``).
    """

    measure: str
    labels: list[str]
    values: np.ndarray
    n_stimuli: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


# ----------------------------------------------------------------------------- matching
def _embedding_parts(embedding: Any, ids: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if hasattr(embedding, "values") and hasattr(embedding, "ids"):
        Y = np.asarray(embedding.values)
        info = {"source": getattr(embedding, "source", None),
                "checksum": getattr(embedding, "checksum", None) or sha256_array(Y)}
        return Y, np.asarray(embedding.ids).astype(str), info
    Y = np.asarray(embedding)
    if ids is None:
        raise InputError("the representation has no row ids: give embedding_ids to match by")
    return Y, np.asarray(ids).astype(str), {"source": "<array>", "checksum": sha256_array(Y)}


def match_rows(features: Any, ids: Any, embedding: Any, embedding_ids: Any = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """``(X, Y, ids)`` restricted to the stimuli both name, in the representation's order.

    Raises:
        MismatchError: fewer ids than rows, or fewer than 4 stimuli in common.
    """
    from alignkit.data import align_by_ids

    X = as_features(features)
    ids = np.asarray(ids).astype(str)
    if X.ndim != 2:
        raise DataError(f"features must be a 2-d matrix, got shape {X.shape}")
    if len(ids) != X.shape[0]:
        raise MismatchError(f"{len(ids)} ids for {X.shape[0]} feature rows")
    Y, yids, info = _embedding_parts(embedding, embedding_ids)
    if Y.ndim != 2 or len(yids) != Y.shape[0]:
        raise MismatchError(f"{len(yids)} ids for a representation of shape {Y.shape}")
    ia, ib = align_by_ids(ids, yids, require_all=False)
    if ia.size < 4:
        raise MismatchError(f"only {ia.size} stimuli are shared with the representation "
                            f"{info.get('source')}; at least 4 are needed")
    return X[ia], np.asarray(Y[ib], dtype=np.float64), yids[ib], info


# ----------------------------------------------------------------------------- evaluators
class Evaluator:
    """The value of one measure for one aligned pair ``X`` (n, p), ``Y`` (n, q): on all
    rows, on a bootstrap resample (row weights) and with the rows of ``Y`` permuted."""

    similarity = True

    def value(self, w: np.ndarray | None = None) -> float:
        raise NotImplementedError

    def permuted(self, perms: list[np.ndarray]) -> np.ndarray:
        return np.array([self.value_perm(p) for p in perms])

    def value_perm(self, perm: np.ndarray) -> float:
        raise NotImplementedError


def _xt_blocks(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``X^T B`` in float64 by row blocks (X may be float32 and large)."""
    from alignkit._kernels.cka import BLOCK_ROWS

    out = np.zeros((X.shape[1], B.shape[1]))
    for s in range(0, X.shape[0], BLOCK_ROWS):
        out += np.asarray(X[s:s + BLOCK_ROWS], dtype=np.float64).T @ B[s:s + BLOCK_ROWS]
    return out


class GramCKA(Evaluator):
    """CKA from two n x n kernel matrices (the RBF kernel, or linear Gram matrices when
    the features are wider than the stimuli are many)."""

    def __init__(self, K: np.ndarray, L: np.ndarray, debiased: bool) -> None:
        from alignkit._kernels import cka as k

        self.k = k
        self.K, self.L = K, L
        self.debiased = debiased
        self._h = k.hsic_unbiased if debiased else k.hsic_biased
        self._den: float | None = None

    def value(self, w: np.ndarray | None = None) -> float:
        return self.k.weighted_gram_cka(self.K, self.L, w, debiased=self.debiased,
                                        drop_copies=True)

    def value_perm(self, perm: np.ndarray) -> float:
        if self._den is None:
            self._den = self._h(self.K, self.K) * self._h(self.L, self.L)
        Lp = self.L[np.ix_(perm, perm)]
        return float(self._h(self.K, Lp) / np.sqrt(self._den)) if self._den > 0 else np.nan


class LinearCKA(Evaluator):
    """Linear CKA from feature-space cross-products; resamples leave out the pairs of a
    stimulus with its own copy."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, debiased: bool = False) -> None:
        from alignkit._kernels import cka as k

        self.k = k
        self.X = k.reduce_width(X) if X.shape[1] > X.shape[0] else X
        self.Y = k.reduce_width(Y) if Y.shape[1] > Y.shape[0] else np.asarray(Y, np.float64)
        self.debiased = debiased
        self._base: tuple | None = None

    def value(self, w: np.ndarray | None = None) -> float:
        return self.k.linear_cka(self.X, self.Y, w, debiased=self.debiased, drop_copies=True)

    def _prepare(self) -> tuple:
        if self._base is None:
            k = self.k
            cp = k.cross_products(self.X, self.Y, rows=self.debiased)
            Yc = self.Y - self.Y.mean(axis=0)
            if not self.debiased:
                self._base = (cp, Yc, float(np.linalg.norm(cp.xx) * np.linalg.norm(cp.yy)))
            else:
                n = cp.n
                # with centred rows the column sums vanish: 1^T K~ 1 = -sum(r), (K~ 1)_i = -r_i
                def hu(S, ra, rb):
                    return (float(np.sum(S * S)) - float(ra @ rb)
                            + ra.sum() * rb.sum() / ((n - 1) * (n - 2)) - 2.0 * float(ra @ rb) / (n - 2))
                hxx = hu(cp.xx, cp.rx, cp.rx)
                hyy = hu(cp.yy, cp.ry, cp.ry)
                self._base = (cp, Yc, hxx * hyy, n)
        return self._base

    def permuted(self, perms: list[np.ndarray]) -> np.ndarray:
        base = self._prepare()
        cp, Yc = base[0], base[1]
        q = Yc.shape[1]
        out = []
        for s in range(0, len(perms), _PERM_BATCH):
            chunk = perms[s:s + _PERM_BATCH]
            B = np.concatenate([Yc[p] for p in chunk], axis=1)
            S = _xt_blocks(self.X, B)  # the columns of Yc sum to zero: no mean term
            for t, p in enumerate(chunk):
                Sxy = S[:, t * q:(t + 1) * q]
                if not self.debiased:
                    den = base[2]
                    out.append(float(np.sum(Sxy * Sxy)) / den if den > 0 else np.nan)
                else:
                    n = base[3]
                    rx, ry = cp.rx, cp.ry[p]
                    h = (float(np.sum(Sxy * Sxy)) - float(rx @ ry)
                         + rx.sum() * ry.sum() / ((n - 1) * (n - 2)) - 2.0 * float(rx @ ry) / (n - 2))
                    out.append(h / np.sqrt(base[2]) if base[2] > 0 else np.nan)
        return np.asarray(out)


def _centred_gram(X: np.ndarray, block: int = 2048) -> np.ndarray:
    """``Xc Xc^T`` (n x n, float64) by blocks of columns (X may be float32 and wide)."""
    mean = np.asarray(X, dtype=np.float64).mean(axis=0) if X.shape[1] <= block else \
        np.concatenate([np.asarray(X[:, s:s + block], np.float64).mean(axis=0)
                        for s in range(0, X.shape[1], block)])
    G = np.zeros((X.shape[0], X.shape[0]))
    for s in range(0, X.shape[1], block):
        B = np.asarray(X[:, s:s + block], dtype=np.float64) - mean[s:s + block]
        G += B @ B.T
    return G


class KernelCKA(GramCKA):
    def __init__(self, X: np.ndarray, Y: np.ndarray, fraction: float, debiased: bool) -> None:
        from alignkit._kernels import cka as k

        n = X.shape[0]
        if n > 20000:
            raise InputError(f"the RBF kernel needs n x n matrices; {n} stimuli are too many "
                             "(use kernel = linear, or fewer stimuli)")
        self.sigma_x = k.median_sigma(X, fraction)
        self.sigma_y = k.median_sigma(Y, fraction)
        super().__init__(k.rbf_gram(X, self.sigma_x), k.rbf_gram(Y, self.sigma_y), debiased)


class Shape(Evaluator):
    similarity = False

    def __init__(self, X: np.ndarray, Y: np.ndarray, metric: str, alpha: float, centre: bool,
                 normalise: bool) -> None:
        from alignkit._kernels import cka as k

        self.k = k
        self.width = max(X.shape[1], Y.shape[1])
        self.X = k.reduce_width(X) if X.shape[1] > X.shape[0] else X
        self.Y = k.reduce_width(Y) if Y.shape[1] > Y.shape[0] else np.asarray(Y, np.float64)
        self.metric, self.alpha, self.centre, self.normalise = metric, alpha, centre, normalise
        self._base: tuple | None = None

    def value(self, w: np.ndarray | None = None) -> float:
        return self.k.shape_distance(self.X, self.Y, w, metric=self.metric, alpha=self.alpha,
                                     centre=self.centre, normalise=self.normalise,
                                     width=self.width)

    def permuted(self, perms: list[np.ndarray]) -> np.ndarray:
        k = self.k
        need = self.alpha <= 1 - k.EIGVAL_TOL
        if self._base is None:
            cp = k.cross_products(self.X, self.Y, xx=need, yy=need, centre=self.centre)
            Yc = self.Y - self.Y.mean(axis=0) if self.centre else self.Y
            self._base = (cp, Yc)
        cp, Yc = self._base
        q = Yc.shape[1]
        out = []
        for s in range(0, len(perms), _PERM_BATCH):
            chunk = perms[s:s + _PERM_BATCH]
            B = np.concatenate([Yc[p] for p in chunk], axis=1)
            S = _xt_blocks(self.X, B)  # centred: the columns of Yc sum to zero
            for t in range(len(chunk)):
                cpp = k.CrossProducts(n=cp.n, xy=S[:, t * q:(t + 1) * q], xx=cp.xx, yy=cp.yy,
                                      tx=cp.tx, ty=cp.ty)
                out.append(k.shape_from(cpp, metric=self.metric, alpha=self.alpha,
                                        width=self.width, normalise=self.normalise))
        return np.asarray(out)


def evaluator(measure: str, X: np.ndarray, Y: np.ndarray, options: Any) -> Evaluator:
    """The :class:`Evaluator` of ``measure`` (``cka`` or ``shape``) with its options."""
    if measure == "cka":
        if options.kernel == "linear":
            if X.shape[1] > X.shape[0] and X.shape[0] <= _GRAM_BOOTSTRAP_MAX:
                # wider than the stimuli are many: the n x n Gram matrices are the smaller
                # problem, and a resample costs O(n^2) instead of O(n p^2)
                return GramCKA(_centred_gram(X), _centred_gram(Y), options.debiased)
            return LinearCKA(X, Y, options.debiased)
        return KernelCKA(X, Y, options.rbf_fraction, options.debiased)
    if measure == "shape":
        return Shape(X, Y, options.metric, options.alpha, options.centre, options.normalise)
    raise InputError(f"measure must be cka or shape, got {measure!r}")


# ----------------------------------------------------------------------------- inference
def _bootstrap(ev: Evaluator, n: int, bootstrap: int, seed: int) -> np.ndarray:
    from alignkit._kernels.cka import resample_counts

    return np.array([ev.value(resample_counts(n, b, seed)) for b in range(bootstrap)])


def _interval(values: np.ndarray | None, level: float) -> tuple[float | None, float | None]:
    from alignkit._kernels.bootstrap import percentile_ci

    if values is None:
        return None, None
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None
    return percentile_ci(finite, level)


def _permutation(ev: Evaluator, n: int, permutations: int, seed: int, observed: float,
                 ) -> tuple[float | None, np.ndarray | None]:
    if not permutations:
        return None, None
    from alignkit._kernels.cka import permutation_index

    # stream indices after the bootstrap's, so the two never share a stream
    perms = [permutation_index(n, 2**31 + p, seed) for p in range(permutations)]
    null = ev.permuted(perms)
    tol = 1e-12 * max(1.0, abs(observed))
    hits = np.count_nonzero(null >= observed - tol) if ev.similarity else \
        np.count_nonzero(null <= observed + tol)
    return float((1 + hits) / (1 + permutations)), null


def _run(measure: str, features: Any, ids: Any, embedding: Any, options: Any, *,
         embedding_ids: Any, model: str | None, layer: str | None, transform: Any,
         transform_name: str | None, dataset: str | None, provenance: dict[str, Any] | None,
         ) -> Any:
    X = np.asarray(features)
    if transform is not None:
        X = np.asarray(transform.apply(X), dtype=np.float64)
    X, Y, _, info = match_rows(X, ids, embedding, embedding_ids)
    n = X.shape[0]
    if not np.isfinite(X).all():
        raise DataError("features contain NaN or inf")
    ev = evaluator(measure, X, Y, options)
    value = ev.value()
    boots = _bootstrap(ev, n, options.bootstrap, options.seed) if options.bootstrap else None
    lo, hi = _interval(boots, options.ci_level)
    p, null = _permutation(ev, n, options.permutations, options.seed, value)
    used_seed = options.seed if (options.bootstrap or options.permutations) else None
    prov = base_provenance(
        features_checksum=sha256_array(np.ascontiguousarray(X)),
        embedding=info, options=options.to_dict(), seed=used_seed, n_stimuli=n,
        protocol=("bootstrap: rows resampled with replacement on stream_key(seed, b); "
                  "permutations: rows of the representation, streams 2**31 + p"),
    )
    prov.update(provenance or {})
    common = dict(n_stimuli=n, p_value=p, n_permutations=options.permutations, ci_low=lo,
                  ci_high=hi, ci_level=options.ci_level, n_bootstrap=options.bootstrap,
                  seed=used_seed, model=model, layer=layer, transform=transform_name,
                  dataset=dataset or info.get("source"), bootstrap_values=boots, null=null,
                  provenance=prov)
    if measure == "cka":
        rbf = options.kernel == "rbf"
        return CKAResult(value=float(value), kernel=options.kernel, debiased=options.debiased,
                         rbf_fraction=options.rbf_fraction if rbf else None,
                         sigma_x=getattr(ev, "sigma_x", None), sigma_y=getattr(ev, "sigma_y", None),
                         **common)
    return ShapeResult(value=float(value), metric=options.metric, alpha=options.alpha,
                       centre=options.centre, normalise=options.normalise,
                       width=max(X.shape[1], Y.shape[1]), **common)


def _options(measure: str, options: Any, kw: dict[str, Any]) -> Any:
    from alignkit.measures import get_measure

    return get_measure(measure).options(options, **kw)


def cka_features(features: Any, ids: Any, embedding: Any, options: Any = None, *,
                 embedding_ids: Any = None, model: str | None = None, layer: str | None = None,
                 transform: Any = None, transform_name: str | None = None,
                 dataset: str | None = None, provenance: dict[str, Any] | None = None,
                 **kw: Any) -> CKAResult:
    """CKA of ``features`` (n, p; rows named by ``ids``) with ``embedding``.

    Args:
        embedding: a :class:`alignkit.data.ConceptEmbedding` (values and ids) or an
            (m, d) array with ``embedding_ids``.
        options / kw: :class:`alignkit.measures.cka.CKAOptions` (``kernel``,
            ``rbf_fraction``, ``debiased``, ``bootstrap``, ``permutations``, ``ci_level``,
            ``seed``).

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(30, 5))
        >>> ids = [str(i) for i in range(30)]
        >>> round(cka_features(X, ids, 2 * X, embedding_ids=ids).value, 6)
        1.0
    """
    opts = _options("cka", options, kw)
    return _run("cka", features, ids, embedding, opts, embedding_ids=embedding_ids, model=model,
                layer=layer, transform=transform, transform_name=transform_name,
                dataset=dataset, provenance=provenance)


def shape_features(features: Any, ids: Any, embedding: Any, options: Any = None, *,
                   embedding_ids: Any = None, model: str | None = None, layer: str | None = None,
                   transform: Any = None, transform_name: str | None = None,
                   dataset: str | None = None, provenance: dict[str, Any] | None = None,
                   **kw: Any) -> ShapeResult:
    """Shape distance of ``features`` with ``embedding`` (see :func:`cka_features`); options
    of :class:`alignkit.measures.shape.ShapeOptions` (``metric``, ``alpha``, ``centre``,
    ``normalise``, ``bootstrap``, ``permutations``, ``ci_level``, ``seed``)."""
    opts = _options("shape", options, kw)
    return _run("shape", features, ids, embedding, opts, embedding_ids=embedding_ids,
                model=model, layer=layer, transform=transform, transform_name=transform_name,
                dataset=dataset, provenance=provenance)


def compare_models(features_a: Any, ids_a: Any, features_b: Any, ids_b: Any, embedding: Any,
                   measure: str = "cka", options: Any = None, *, embedding_ids: Any = None,
                   model_a: str | None = None, model_b: str | None = None,
                   **kw: Any) -> PairedComparison:
    """Model A against model B on the same representation, paired over stimuli.

    Both are scored on the stimuli all three share; bootstrap resample ``b`` (the same
    rows for both) gives ``d_b = value_a(b) - value_b(b)``. ``options.bootstrap``
    (default 1000 here when 0 is given) sets the number of resamples.

    Raises:
        MismatchError: fewer than 4 stimuli shared by both models and the representation.
    """
    from alignkit.data import align_by_ids

    check_choice(measure, ("cka", "shape"), "measure")
    opts = _options(measure, options, kw)
    B = opts.bootstrap or 1000
    Y, yids, info = _embedding_parts(embedding, embedding_ids)
    ia = np.asarray(ids_a).astype(str)
    ib = np.asarray(ids_b).astype(str)
    common = np.intersect1d(ia, ib)
    keep = np.isin(yids, common)
    if keep.sum() < 4:
        raise MismatchError(f"only {int(keep.sum())} stimuli are shared by both models and the "
                            "representation; at least 4 are needed")
    sub_ids = yids[keep]
    Ysub = np.asarray(Y, np.float64)[keep]
    XA, XB = np.asarray(features_a), np.asarray(features_b)
    if len(ia) != XA.shape[0] or len(ib) != XB.shape[0]:
        raise MismatchError("the number of ids differs from the number of feature rows")
    pa, _ = align_by_ids(ia, sub_ids)
    pb, _ = align_by_ids(ib, sub_ids)
    ev_a = evaluator(measure, XA[pa], Ysub, opts)
    ev_b = evaluator(measure, XB[pb], Ysub, opts)
    n = len(sub_ids)
    va, vb = ev_a.value(), ev_b.value()
    from alignkit._kernels.cka import resample_counts

    d = np.empty(B)
    for b in range(B):
        w = resample_counts(n, b, opts.seed)
        d[b] = ev_a.value(w) - ev_b.value(w)
    lo, hi = _interval(d, opts.ci_level)
    p = paired_pvalue(d)
    prov = base_provenance(
        features_a_checksum=sha256_array(np.ascontiguousarray(XA)),
        features_b_checksum=sha256_array(np.ascontiguousarray(XB)), embedding=info,
        options=opts.to_dict(), seed=opts.seed, n_bootstrap=B,
        protocol="paired bootstrap over stimuli: the same resamples for both models",
    )
    return PairedComparison(measure=measure, value_a=float(va), value_b=float(vb),
                            difference=float(va - vb), n_stimuli=n, ci_low=lo, ci_high=hi,
                            p_value=p, ci_level=opts.ci_level, n_bootstrap=B, seed=opts.seed,
                            model_a=model_a, model_b=model_b, options=opts.to_dict(),
                            differences=d, provenance=prov)


def similarity_matrix(store: Any, measure: str = "cka", options: Any = None, *,
                      model: str | None = None, layer: str | None = None,
                      **kw: Any) -> SimilarityMatrix:
    """``measure`` (``cka`` or ``shape``) between every pair of entries of ``store``.

    Pairs are matched by stimulus id (the ids both entries hold). No resampling: the
    options' ``bootstrap`` and ``permutations`` are not used here.

    Example:
        >>> sim = similarity_matrix("feats.zarr", "cka")  # doctest: +SKIP
        >>> sim.labels, sim.values.shape  # doctest: +SKIP
    """
    from alignkit.data import align_by_ids
    from alignkit.score.stores import _open, iter_entries

    check_choice(measure, ("cka", "shape"), "measure")
    opts = _options(measure, options, kw)
    st = _open(store)
    entries = list(iter_entries(st, model, layer))
    labels = [f"{e.model}/{e.layer}" for e in entries]
    feats = [(np.asarray(e.features()), np.asarray(e.ids).astype(str)) for e in entries]
    m = len(entries)
    V = np.full((m, m), np.nan)
    N = np.zeros((m, m), np.int64)
    for i in range(m):
        for j in range(m):
            if j < i:  # CKA and the shape metrics are symmetric
                V[i, j], N[i, j] = V[j, i], N[j, i]
                continue
            (Xi, ii), (Xj, ij) = feats[i], feats[j]
            try:
                a, b = align_by_ids(ii, ij, require_all=False)
            except MismatchError:
                continue
            if a.size < 4:
                continue
            V[i, j] = evaluator(measure, Xi[a], np.asarray(Xj[b], np.float64), opts).value()
            N[i, j] = a.size
    prov = base_provenance(store=str(getattr(st, "path", store)), options=opts.to_dict(),
                           entries={lab: e.checksum for lab, e in zip(labels, entries, strict=True)})
    return SimilarityMatrix(measure=measure, labels=labels, values=V, n_stimuli=N,
                            options=opts.identity(), provenance=prov)
