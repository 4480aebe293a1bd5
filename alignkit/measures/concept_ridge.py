"""How well features predict each dimension of a concept embedding (``concept-ridge``).

Cross-validated ridge regression from the features onto every dimension of a representation
with one row per stimulus (the bundled SPoSE 49d embedding, VICE, any n x d file), rows
matched to the features by id:

* outer folds over objects: ``KFold(folds, shuffle=True, random_state=seed)`` (scikit-learn's
  rule, reproduced by :func:`alignkit.score._folds.kfold_objects`);
* on each training fold, for each dimension, the penalty among ``alphas`` of least exact
  leave-one-out squared error (an intercept fitted, not penalised): the same fit as
  scikit-learn's ``RidgeCV(alphas=alphas, alpha_per_target=True)`` on that fold
  (:mod:`alignkit._kernels.ridge`; the n x n Gram or the p x p covariance, whichever is
  smaller, is decomposed once per fold);
* R² per dimension of the pooled out-of-fold predictions,
  ``1 - sum((y - yhat)^2) / sum((y - mean y)^2)`` over all objects, and their mean, with
  percentile bootstrap intervals over objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alignkit.measures import (
    Column,
    Measure,
    MeasureOptions,
    _ensure_builtin,
    option,
    register_measure,
)

__all__ = ["ConceptRidgeOptions", "ConceptRidgeMeasure", "ConceptRidgeResult", "concept_ridge",
           "DEFAULT_ALPHAS", "parse_alphas"]

#: Default penalties: 10^-2 ... 10^6.
DEFAULT_ALPHAS = "0.01,0.1,1,10,100,1000,10000,100000,1000000"


def parse_alphas(text: str) -> tuple[float, ...]:
    """The penalties of a comma-separated list (each a finite number > 0).

    Raises:
        InputError: an empty list, a value that is not a number, or one not above 0.
    """
    import math

    from alignkit.errors import InputError

    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise InputError(f"alphas: {part!r} is not a number (give e.g. '0.1,1,10')") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"alphas: every penalty must be a finite number > 0, got {part!r}")
        out.append(value)
    if not out:
        raise InputError("alphas: give at least one penalty")
    return tuple(out)


@dataclass(frozen=True)
class ConceptRidgeOptions(MeasureOptions):
    """What decides a concept-ridge result.

    Attributes:
        alphas: comma-separated ridge penalties; each dimension takes the one of least
            leave-one-out error on the training fold.
        folds: outer folds over objects (KFold, shuffled with ``seed``).
        bootstrap, ci_level: percentile bootstrap over objects of the out-of-fold R².
        seed: random_state of the folds and seed of the bootstrap.
    """

    alphas: str = option(DEFAULT_ALPHAS, "Ridge penalties, comma separated; each dimension "
                                         "takes the one of least leave-one-out error on the "
                                         "training fold (as RidgeCV, alpha_per_target).")
    folds: int = option(5, "Outer folds over objects (KFold, shuffled with --seed).", minimum=2)
    bootstrap: int = option(1000, "Bootstrap resamples of the objects for the R² intervals "
                                  "(0: none).", minimum=0, identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap intervals.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "random_state of the object folds and seed of the bootstrap.",
                       kind="seed", sweep="seed")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_alphas(self.alphas)


@dataclass
class ConceptRidgeResult:
    """R² of each concept dimension predicted from features (out-of-fold).

    Attributes:
        mean_r2: the mean over dimensions of the per-dimension R² (``ci_low``/``ci_high``:
            its bootstrap interval over objects).
        dimensions: one row per dimension: ``dimension`` (1-based), ``label``, ``r2``,
            ``ci_low``, ``ci_high``, ``alphas`` (the penalty chosen on each fold).
        method: ``gram`` (n x n) or ``covariance`` (p x p) decomposition.
    """

    mean_r2: float
    dimensions: list[dict[str, Any]]
    n_objects: int
    n_features: int
    n_dimensions: int
    folds: int
    seed: int
    alphas: list[float]
    method: str
    embedding: str
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    notes: list[str] = field(default_factory=list)
    model: str | None = None
    layer: str | None = None
    dataset: str | None = None
    predictions: Any = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        from alignkit.score._common import jsonable

        return jsonable({k: v for k, v in self.__dict__.items() if k != "predictions"})

    def row(self) -> dict[str, Any]:
        return {"model": self.model, "layer": self.layer, "embedding": self.embedding,
                "objects": self.n_objects, "dimensions": self.n_dimensions,
                "mean_R2": self.mean_r2, "ci_low": self.ci_low, "ci_high": self.ci_high}


def concept_ridge(features: Any, embedding: Any, options: Any = None, *, ids: Any = None,
                  model: str | None = None, layer: str | None = None,
                  provenance: dict[str, Any] | None = None, keep_predictions: bool = False,
                  **option_values: Any) -> ConceptRidgeResult:
    """Cross-validated ridge R² of every dimension of ``embedding`` from ``features``.

    Args:
        features: ``(n, p)`` feature rows.
        embedding: a :class:`alignkit.data.ConceptEmbedding` (rows matched to ``ids``), a
            bundled name or file, or an ``(n, d)`` array in the features' row order.
        options: :class:`ConceptRidgeOptions` or a mapping; keywords set single options.
        ids: the stimulus ids of the feature rows (needed to match an embedding by id).
        keep_predictions: keep the out-of-fold predictions (objects in the embedding's order).

    Raises:
        MismatchError: no shared ids, or an array of another number of rows.
        DataError: fewer objects than twice the folds.
    """
    import numpy as np

    from alignkit._kernels import ridge as kr
    from alignkit._kernels.bootstrap import percentile_ci
    from alignkit.errors import DataError, MismatchError
    from alignkit.measures import get_measure
    from alignkit.provenance import base_provenance, features_checksum, sha256_array
    from alignkit.score._common import as_features
    from alignkit.score._folds import kfold_objects

    opts = get_measure("concept-ridge").options(options, **option_values)
    alphas = np.array(parse_alphas(opts.alphas))
    X = as_features(features)
    if isinstance(embedding, str):
        from alignkit.data import load_embedding

        embedding = load_embedding(embedding)
    notes: list[str] = []
    if hasattr(embedding, "values") and hasattr(embedding, "ids"):
        E = np.asarray(embedding.values, dtype=np.float64)
        labels = [str(v) for v in embedding.labels]
        source = str(getattr(embedding, "source", "<embedding>"))
        echeck = getattr(embedding, "checksum", None) or sha256_array(E)
        if ids is None:
            if X.shape[0] != E.shape[0]:
                raise MismatchError(f"features have {X.shape[0]} rows, the embedding {source} "
                                    f"{E.shape[0]}: give the features' ids to match by")
            rows_x = rows_e = np.arange(E.shape[0])
        else:
            from alignkit.data import align_by_ids

            rows_x, rows_e = align_by_ids(np.asarray(ids).astype(str),
                                          np.asarray(embedding.ids).astype(str),
                                          require_all=False)
            if len(rows_e) < E.shape[0]:
                notes.append(f"{len(rows_e)} of the embedding's {E.shape[0]} rows have features")
    else:
        E = np.asarray(embedding, dtype=np.float64)
        if E.ndim != 2 or E.shape[0] != X.shape[0]:
            raise MismatchError(f"the embedding array must be (n, d) with n = {X.shape[0]} "
                                f"feature rows, got {E.shape}")
        labels = [f"dim{d + 1}" for d in range(E.shape[1])]
        source, echeck = "<array>", sha256_array(E)
        rows_x = rows_e = np.arange(E.shape[0])
    Xm = np.asarray(X[rows_x], dtype=np.float64)
    Y = E[rows_e]
    n, p = Xm.shape
    d = Y.shape[1]
    if n < 2 * opts.folds:
        raise DataError(f"concept-ridge: {n} objects shared by the features and {source}; "
                        f"--folds {opts.folds} needs at least {2 * opts.folds}")
    Xm = Xm - Xm.mean(axis=0)  # a common shift changes no fold's fit; the Gram loses less
    folds = kfold_objects(n, opts.folds, opts.seed)
    n_train_max = n - min(len(f) for f in folds)
    method = "gram" if n_train_max <= p else "covariance"
    G = Xm @ Xm.T if method == "gram" else None
    P = np.empty_like(Y)
    chosen = np.empty((opts.folds, d), dtype=np.int64)
    for f, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n), test)
        if G is not None:
            pred, which = kr.ridge_loo_fit_predict(None, Y[train], None, alphas,
                                                   gram=kr.centred_gram_blocks(G, train, test))
        else:
            pred, which = kr.ridge_loo_fit_predict(Xm[train], Y[train], Xm[test], alphas)
        P[test] = pred
        chosen[f] = which
    r2 = kr.r2_columns(Y, P)
    finite = np.isfinite(r2)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} constant dimension(s): no R², left out of the mean")
    mean_r2 = float(r2[finite].mean()) if finite.any() else float("nan")
    ci = (None, None)
    dim_ci = np.full((d, 2), np.nan)
    if opts.bootstrap > 0:
        boot = kr.bootstrap_r2(Y, P, opts.bootstrap, opts.seed)
        means = boot[:, finite].mean(axis=1)
        means = means[np.isfinite(means)]
        if means.size:
            ci = percentile_ci(means, opts.ci_level)
        for j in np.flatnonzero(finite):
            vals = boot[:, j][np.isfinite(boot[:, j])]
            if vals.size:
                dim_ci[j] = percentile_ci(vals, opts.ci_level)
    dims = [{"dimension": j + 1, "label": labels[j],
             "r2": float(r2[j]) if finite[j] else None,
             "ci_low": float(dim_ci[j, 0]) if np.isfinite(dim_ci[j, 0]) else None,
             "ci_high": float(dim_ci[j, 1]) if np.isfinite(dim_ci[j, 1]) else None,
             "alphas": [float(alphas[k]) for k in chosen[:, j]]} for j in range(d)]
    prov = base_provenance(
        protocol="cross-validated ridge (RidgeCV, alpha_per_target) onto concept dimensions",
        options=opts.to_dict(), features_checksum=features_checksum(X), embedding=source,
        embedding_checksum=echeck, split="KFold over objects", method=method,
        seed=opts.seed)
    return ConceptRidgeResult(
        mean_r2=mean_r2, dimensions=dims, n_objects=n, n_features=p, n_dimensions=d,
        folds=opts.folds, seed=opts.seed, alphas=[float(a) for a in alphas], method=method,
        embedding=source, ci_low=None if ci[0] is None else float(ci[0]),
        ci_high=None if ci[1] is None else float(ci[1]), ci_level=opts.ci_level,
        n_bootstrap=opts.bootstrap, notes=notes, model=model, layer=layer, dataset=source,
        predictions=P if keep_predictions else None,
        provenance={**prov, **(provenance or {})})


class ConceptRidgeMeasure(Measure):
    """Cross-validated ridge R² of each concept dimension from the features."""

    name = "concept-ridge"
    title = "concept dimensions predicted from features"
    summary = ("Cross-validated ridge (RidgeCV per dimension, folds over objects): R² of each "
               "concept-embedding dimension and their mean.")
    data = "embedding"
    Options = ConceptRidgeOptions
    value = "mean_r2"
    value_label = "mean R²"
    count = "n_objects"
    columns = (
        Column("objects", "n_objects", "d"),
        Column("dimensions", "n_dimensions", "d"),
        Column("folds", "folds", "d"),
    )
    report = "alignkit.report._calibration:concept_ridge_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        for k in ("transform", "device"):
            context.pop(k, None)
        return concept_ridge(features, data, self.options(options), **context)


# the built-in measures first (registry order), also when this module is imported first
_ensure_builtin()
register_measure(ConceptRidgeMeasure())
