"""Choice probabilities and their calibration on human triplets.

For a triplet ``(i, j, k)`` (the human chose ``k`` as the odd one out) the model's choice
probabilities over the three pairs are ``softmax(T * [s_ij, s_ik, s_jk])`` with the
similarity of the odd-one-out measure (the preset's, cosine by default; the paper's code
computes them from dot products, ``similarity="dot"``). The temperature ``T`` changes
neither the odd-one-out choice nor its accuracy, only how confident the probabilities are,
so it is fitted on held-out triplets and serves calibration and entropy only.

Held-out by objects: the objects ``0..n-1`` are split into ``folds`` folds as
``KFold(folds, shuffle=True, random_state=split_seed)`` (the probe's rule,
:func:`alignkit.score._folds.kfold_objects`).
For each fold, T is fitted on the triplets whose three objects lie outside the fold and the
triplets whose three objects lie inside it are evaluated with that T; triplets mixing the two
are neither (so no object of an evaluated triplet is in the triplets its T was fitted on).
With 2 folds a quarter of the triplets are evaluated. The reported ``temperature`` is the
one fitted on all triplets (the value to use elsewhere); the figures are those of the
evaluated triplets.

Figures (natural logarithms throughout, so NLL, entropy, KL and JSD are in nats):

* ECE: equal-width bins over the maximum probability, ``[b / bins, (b + 1) / bins)`` with
  the last bin closed at 1 (10 bins, as the paper's code); ``sum_b (n_b / N) |acc_b - conf_b|``
  where ``acc_b`` is the share of the bin's triplets whose most similar pair is the human's.
* NLL: ``mean(-log p_human)``.
* accuracy: the odd-one-out accuracy of the evaluated triplets (most similar pair = human's,
  the first of a two-way tie, a three-way tie wrong: the ``paper`` tie rule).
* entropy-binned accuracy: the model's choice entropy binned by the paper's edges
  ``0, 0.1, ..., 1.1`` (``numpy.digitize(right=True)``: bins ``(e_b, e_{b+1}]``, the first
  holding 0 too), the accuracy per bin.
* repeated triplets (a triplet set where the same unordered triple was answered several
  times, as the THINGS repeat set): per unique triple answered at least ``min_repeats``
  times the human distribution of the odd one out, and ``KL(human || model)`` and the
  Jensen-Shannon divergence ``(KL(h || m) + KL(q || m)) / 2`` with ``m = (h + q) / 2``
  (nats; at most ln 2), averaged over the triples. ``scipy.spatial.distance.jensenshannon``
  returns the square root of this divergence.

Intervals are percentile bootstraps over the evaluated triplets (ECE, NLL, accuracy, the
entropy bins, with the same resamples) and over the repeated triples (KL, JSD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import DataError
from alignkit.provenance import base_provenance
from alignkit.score._common import jsonable

__all__ = ["CalibrationResult", "calibration", "entropy_bin_edges", "human_distributions",
           "ENTROPY_STEP", "PROTOCOL"]

PROTOCOL = ("choice probabilities softmax(T * [s_ij, s_ik, s_jk]), T fitted on held-out "
            "objects (Muttenthaler et al. 2023)")
#: Width of the paper's entropy bins (from 0 to ln 3).
ENTROPY_STEP = 0.1


def entropy_bin_edges() -> np.ndarray:
    """The paper's entropy bin edges: ``numpy.arange(0, ln 3 + 0.1, 0.1)`` (0 to 1.1)."""
    return np.arange(0.0, np.log(3.0) + ENTROPY_STEP, ENTROPY_STEP)


@dataclass
class CalibrationResult:
    """Calibration of one representation's choice probabilities (see the module docstring).

    Attributes:
        ece: expected calibration error of the evaluated triplets (``ci_low``/``ci_high``
            its interval).
        temperature: T fitted on all triplets; ``fold_temperatures`` the held-out fits.
        nll, accuracy, mean_entropy: of the evaluated triplets, with intervals.
        nll_unscaled: the NLL of the evaluated triplets at T = 1.
        reliability: one row per ECE bin (``lo``, ``hi``, ``count``, ``confidence``,
            ``accuracy``).
        entropy_bins: one row per entropy bin (``lo``, ``hi``, ``count``, ``accuracy``,
            ``ci_low``, ``ci_high``).
        jsd, kl: mean Jensen-Shannon divergence and ``KL(human || model)`` over the repeated
            triples (nats; None without repeats); ``human`` has their counts and intervals.
        probabilities, entropy, fold, temperatures: per-triplet arrays (only when asked for):
            the probabilities and entropy under the temperature used for the triplet (its
            fold's when evaluated, else the all-triplet T), the evaluating fold (-1: none).
    """

    ece: float
    temperature: float
    nll: float
    accuracy: float
    similarity: str
    n_triplets: int
    n_evaluated: int
    fit: str
    folds: int
    split_seed: int
    bins: int
    fold_temperatures: list[float | None]
    fold_counts: list[dict[str, int]]
    nll_unscaled: float
    mean_entropy: float
    reliability: list[dict[str, Any]]
    entropy_bins: list[dict[str, Any]]
    jsd: float | None = None
    kl: float | None = None
    human: dict[str, Any] | None = None
    preset: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    nll_ci: list[float] | None = None
    accuracy_ci: list[float] | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    seed: int | None = None
    notes: list[str] = field(default_factory=list)
    model: str | None = None
    layer: str | None = None
    probabilities: np.ndarray | None = field(default=None, repr=False)
    entropy: np.ndarray | None = field(default=None, repr=False)
    fold: np.ndarray | None = field(default=None, repr=False)
    temperatures: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    _ARRAYS = ("probabilities", "entropy", "fold", "temperatures")

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        out = jsonable({k: v for k, v in self.__dict__.items() if k not in self._ARRAYS})
        if include_arrays:
            for k in self._ARRAYS:
                v = getattr(self, k)
                out[k] = None if v is None else np.asarray(v).tolist()
        return out

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model, "layer": self.layer, "similarity": self.similarity,
            "T": self.temperature, "ECE": self.ece, "ci_low": self.ci_low,
            "ci_high": self.ci_high, "NLL": self.nll, "accuracy": self.accuracy,
            "evaluated": self.n_evaluated, "JSD": self.jsd,
        }


def _fit(sims: np.ndarray, rows: np.ndarray, how: str, bins: int) -> float:
    from alignkit._kernels import calibration as kc

    if how == "nll":
        return kc.fit_temperature(sims, rows)
    # the paper's search: the grid temperature of least ECE on the fitting triplets
    sub = sims[rows]
    best, best_t = np.inf, kc.PAPER_TEMPERATURES[0]
    for t in kc.PAPER_TEMPERATURES:
        probs, _, _, top = kc.choice_stats(sub, t)
        _, counts, cs, hs = kc.ece_tally(probs.max(axis=1), top == 0, bins)
        e = kc.ece_from_tally(counts, cs, hs)
        if e < best:
            best, best_t = e, t
    return float(best_t)


def human_distributions(T: np.ndarray, min_repeats: int = 2) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """Repeated triples and the human distribution of their odd one out.

    Args:
        T: ``(N, 3)`` triplets, odd one out last.
        min_repeats: the fewest responses a triple needs.

    Returns:
        ``(objects (G, 3) sorted ascending, counts (G, 3) of each object chosen as the odd one
        out, a representative row of T (G,))`` for the G triples answered at least
        ``min_repeats`` times.
    """
    T = np.asarray(T, dtype=np.int64)
    if len(T) == 0:
        return np.empty((0, 3), np.int64), np.empty((0, 3), np.int64), np.empty(0, np.int64)
    triple = np.sort(T, axis=1)
    uniq, first, group = np.unique(triple, axis=0, return_index=True, return_inverse=True)
    group = group.ravel()
    pos = np.argmax(triple == T[:, 2:3], axis=1)  # which sorted object is the odd one out
    counts = np.zeros((len(uniq), 3), dtype=np.int64)
    np.add.at(counts, (group, pos), 1)
    use = counts.sum(axis=1) >= min_repeats
    return uniq[use], counts[use], first[use].astype(np.int64)


def _model_odd_probs(T: np.ndarray, probs: np.ndarray, objects: np.ndarray,
                     rep: np.ndarray) -> np.ndarray:
    """Model probability of each sorted object being the odd one out, from a row's probs."""
    rows = T[rep]
    p = probs[rep]
    # row (i, j, k): odd k <- pair (i, j) = p0; odd j <- (i, k) = p1; odd i <- (j, k) = p2
    odd_p = np.stack([p[:, 2], p[:, 1], p[:, 0]], axis=1)  # for objects i, j, k
    out = np.empty_like(odd_p)
    for c in range(3):
        where = np.argmax(objects == rows[:, c : c + 1], axis=1)
        out[np.arange(len(rows)), where] = odd_p[:, c]
    return out


def _divergences(h: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``KL(h || q)`` and JSD(h, q) in nats (0 log 0 = 0)."""
    m = 0.5 * (h + q)
    tiny = np.finfo(np.float64).tiny

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * (np.log(np.maximum(a, tiny)) - np.log(np.maximum(b, tiny))),
                             0.0)
        return terms.sum(axis=1)

    return kl(h, q), 0.5 * kl(h, m) + 0.5 * kl(q, m)


def calibration(
    features: Any,
    triplets: Any,
    options: Any = None,
    *,
    ids: Any = None,
    object_ids: Any = None,
    by_position: bool = False,
    subset: str = "all",
    per_triplet: bool = False,
    model: str | None = None,
    layer: str | None = None,
    features_checksum: str | None = None,
    provenance: dict[str, Any] | None = None,
    **option_values: Any,
) -> CalibrationResult:
    """Calibration of the choice probabilities of ``features`` on human ``triplets``.

    Args:
        features: (n, p) feature rows.
        triplets: an :class:`alignkit.data.Triplets` or an (N, 3) integer array, odd one out
            last.
        options: :class:`alignkit.measures.calibration.CalibrationOptions` (or a mapping of its
            fields); keywords set single options.
        ids, object_ids, by_position, subset: how feature rows are matched to the triplets'
            objects, as :func:`alignkit.score.odd_one_out`.
        per_triplet: keep the per-triplet probabilities, entropy and folds.

    Raises:
        DataError: no fold has both fitting and evaluation triplets.
    """
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import calibration as kc
    from alignkit._kernels.ooo import triplet_sims
    from alignkit._kernels.similarity import triplet_sims_auto
    from alignkit.measures import get_measure
    from alignkit.score._folds import kfold_objects, split_triplets
    from alignkit.score.ooo import _aligned
    from alignkit.score.presets import PRESETS

    opts = get_measure("calibration").options(options, **option_values)
    similarity = opts.similarity or PRESETS[opts.preset or "paper2023"].similarity
    X, T, tinfo, _, al, checksum = _aligned(
        features, triplets, ids=ids, object_ids=object_ids, by_position=by_position,
        subset=subset, where=f"entry {model}/{layer}" if model is not None else "features",
        checksum=features_checksum)
    N, n_obj = len(T), X.shape[0]
    S, TT = triplet_sims_auto(X, T, similarity)
    sims = triplet_sims(S, TT) if TT is not None else S
    sims = np.ascontiguousarray(sims, dtype=np.float64)

    fold = np.full(N, -1, dtype=np.int8 if opts.folds < 128 else np.int32)
    fold_t: list[float | None] = []
    fold_counts = []
    temps = np.empty(N)
    t_all = _fit(sims, np.arange(N), opts.fit, opts.bins) if N else float("nan")
    temps[:] = t_all
    for f, held in enumerate(kfold_objects(n_obj, opts.folds, opts.split_seed)):
        fit_rows, eval_rows = split_triplets(T, held, n_obj)
        fold_counts.append({"fit": int(fit_rows.size), "evaluated": int(eval_rows.size)})
        if fit_rows.size == 0 or eval_rows.size == 0:
            fold_t.append(None)
            continue
        t = _fit(sims, fit_rows, opts.fit, opts.bins)
        fold_t.append(t)
        temps[eval_rows] = t
        fold[eval_rows] = f
    E = np.flatnonzero(fold >= 0)
    if E.size == 0:
        raise DataError(
            f"triplets {tinfo.get('source')}: no object fold of --folds {opts.folds} has both "
            "triplets to fit T on and triplets to evaluate (too few triplets or objects)")

    probs, ent, nll, top = kc.choice_stats(sims, temps)
    correct = (top[E] == 0)
    conf = probs[E].max(axis=1)
    bins_of, counts, conf_sum, hit_sum = kc.ece_tally(conf, correct, opts.bins)
    ece = kc.ece_from_tally(counts, conf_sum, hit_sum)
    reliability = [
        {"lo": b / opts.bins, "hi": (b + 1) / opts.bins, "count": int(counts[b]),
         "confidence": float(conf_sum[b] / counts[b]) if counts[b] else None,
         "accuracy": float(hit_sum[b] / counts[b]) if counts[b] else None}
        for b in range(opts.bins)
    ]
    mean_nll = float(nll[E].mean())
    acc = float(correct.mean())
    nll1 = kc.nll_grad_hess(sims, 1.0, E)[0]

    edges = entropy_bin_edges()
    n_ebins = len(edges) - 1
    ebin = np.maximum(np.digitize(ent[E], edges, right=True) - 1, 0).astype(np.int64)
    ecount = np.bincount(ebin, minlength=n_ebins)
    ehits = np.bincount(ebin, weights=correct.astype(np.float64), minlength=n_ebins)

    level, B = opts.ci_level, opts.bootstrap
    ci = nll_ci = acc_ci = None
    e_ci = np.full((n_ebins, 2), np.nan)
    if B > 0:
        b_ece, b_nll, b_acc = kc.bootstrap_ece_nll(bins_of, conf, correct, nll[E], opts.bins,
                                                   B, opts.seed)
        ci = list(kboot.percentile_ci(b_ece, level))
        nll_ci = list(kboot.percentile_ci(b_nll, level))
        acc_ci = list(kboot.percentile_ci(b_acc, level))
        per_bin = kboot.bootstrap_groups(correct.astype(np.uint8), ebin, n_ebins, B, opts.seed)
        for b in range(n_ebins):
            vals = per_bin[:, b][np.isfinite(per_bin[:, b])]
            if ecount[b] and vals.size:
                e_ci[b] = kboot.percentile_ci(vals, level)
    entropy_bins = [
        {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(ecount[b]),
         "accuracy": float(ehits[b] / ecount[b]) if ecount[b] else None,
         "ci_low": None if not np.isfinite(e_ci[b, 0]) else float(e_ci[b, 0]),
         "ci_high": None if not np.isfinite(e_ci[b, 1]) else float(e_ci[b, 1])}
        for b in range(n_ebins)
    ]

    notes: list[str] = []
    jsd = kl = None
    human = None
    objects, hcounts, rep = human_distributions(T, opts.min_repeats)
    n_rep_all = len(rep)
    keep = fold[rep] >= 0
    objects, hcounts, rep = objects[keep], hcounts[keep], rep[keep]
    if len(rep):
        h = hcounts / hcounts.sum(axis=1, keepdims=True)
        q = _model_odd_probs(T, probs, objects, rep)
        kls, jss = _divergences(h, q)
        jsd, kl = float(jss.mean()), float(kls.mean())
        human = {"n_unique": int(len(rep)), "n_responses": int(hcounts.sum()),
                 "n_repeated_all": int(n_rep_all), "min_repeats": opts.min_repeats,
                 "log_base": "e", "jsd": jsd, "kl": kl, "jsd_ci": None, "kl_ci": None}
        if B > 0:
            boot = kc.bootstrap_float_means(np.stack([jss, kls], axis=1), B, opts.seed)
            human["jsd_ci"] = list(kboot.percentile_ci(boot[:, 0], level))
            human["kl_ci"] = list(kboot.percentile_ci(boot[:, 1], level))
    elif n_rep_all:
        notes.append(f"{n_rep_all} repeated triples, none among the evaluated triplets: "
                     "no human distribution")
    else:
        notes.append(f"no triple answered at least {opts.min_repeats} times: no human "
                     "distribution (KL, JSD)")
    notes.append(f"{E.size} of {N} triplets evaluated (objects held out in {opts.folds} "
                 f"folds; triplets mixing fitting and held-out objects are neither)")

    prov = base_provenance(
        protocol=PROTOCOL, similarity=similarity, preset=opts.preset, options=opts.to_dict(),
        features_checksum=checksum, triplets=tinfo, seed=opts.seed if B else None,
        split="KFold over objects", **al.info)
    return CalibrationResult(
        ece=ece, temperature=float(t_all), nll=mean_nll, accuracy=acc, similarity=similarity,
        n_triplets=N, n_evaluated=int(E.size), fit=opts.fit, folds=opts.folds,
        split_seed=opts.split_seed, bins=opts.bins, fold_temperatures=fold_t,
        fold_counts=fold_counts, nll_unscaled=float(nll1), mean_entropy=float(ent[E].mean()),
        reliability=reliability, entropy_bins=entropy_bins, jsd=jsd, kl=kl, human=human,
        preset=opts.preset, ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1], nll_ci=nll_ci, accuracy_ci=acc_ci,
        ci_level=level, n_bootstrap=B, seed=opts.seed if B else None, notes=notes,
        model=model, layer=layer,
        probabilities=probs if per_triplet else None, entropy=ent if per_triplet else None,
        fold=fold if per_triplet else None, temperatures=temps if per_triplet else None,
        provenance={**prov, **(provenance or {})},
    )
