"""Paired comparison of two models' odd-one-out accuracy on the same triplets.

Both models are scored on the same triplets under the same protocol (similarity, tie
rule), and the difference of their accuracies ``acc(a) - acc(b)`` gets

* a percentile interval over bootstrap resamples of the triplets, **the same resamples for
  both models** (the kernel draws triplet ``i`` of resample ``b`` from the stream
  ``stream_key(seed, b)`` whatever the correctness vector, so the two models' resampled
  counts are taken over identical draws);
* a two-sided bootstrap p-value of "no difference",
  ``min(1, 2 min((1 + #(d <= 0)), (1 + #(d >= 0))) / (1 + n))`` over the resampled
  differences ``d`` (as for the paired RSA comparison);
* the exact McNemar test: under the null that the two models are exchangeable on every
  triplet, the number of triplets that ``a`` gets right and ``b`` wrong, among the
  discordant ones, is Binomial(discordant, 1/2) (two-sided, ``scipy.stats.binomtest``;
  the exact form of the permutation test that swaps the two models' answers per triplet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import InputError
from alignkit.score._common import jsonable, paired_pvalue

__all__ = ["PairedOddOneOutResult", "compare_models_ooo"]


@dataclass
class PairedOddOneOutResult:
    """Two models' odd-one-out accuracies on the same triplets, and their difference.

    Attributes:
        accuracy_a, accuracy_b: each model's accuracy; ``difference = accuracy_a -
            accuracy_b``.
        ci_low, ci_high: percentile interval of the difference over paired resamples.
        p_value: two-sided bootstrap p-value (1 when the models agree on every resample).
        p_mcnemar: exact two-sided McNemar p-value (1 without discordant triplets).
        a_only, b_only: triplets only ``a`` (only ``b``) gets right.
    """

    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_mcnemar: float
    a_only: int
    b_only: int
    n_triplets: int
    similarity: str
    ties: str
    preset: str | None
    n_bootstrap: int
    ci_level: float = 0.95
    seed: int = 0
    model_a: str | None = None
    model_b: str | None = None
    dataset: str | None = None
    differences: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        skip = () if include_arrays else ("differences",)
        return jsonable({k: v for k, v in self.__dict__.items() if k not in skip})

    def row(self) -> dict[str, Any]:
        return {
            "a": self.model_a, "b": self.model_b, "triplets": self.n_triplets,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "p_value": self.p_value, "p_mcnemar": self.p_mcnemar,
            "a_only": self.a_only, "b_only": self.b_only,
        }


def compare_models_ooo(
    features_a: Any,
    features_b: Any,
    triplets: Any,
    options: Any = None,
    *,
    ids: Any = None,
    ids_b: Any = None,
    object_ids: Any = None,
    bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    device: str = "auto",
    model_a: str | None = None,
    model_b: str | None = None,
    provenance: dict[str, Any] | None = None,
    **option_values: Any,
) -> PairedOddOneOutResult:
    """Paired comparison of two models' zero-shot odd-one-out accuracy.

    Args:
        features_a, features_b: ``(n, p)`` features of each model; ``ids`` names the rows
            of ``features_a`` (and of ``features_b`` unless ``ids_b`` is given), matched by
            id to the triplets' objects as in :func:`alignkit.score.odd_one_out`.
        triplets: an :class:`alignkit.data.Triplets` or an ``(N, 3)`` array.
        options: odd-one-out options (``preset``, ``similarity``, ``ties``), or keywords.
        bootstrap: paired resamples of the triplets (at least 1).
        seed: seed of the resamples.

    Returns:
        A :class:`PairedOddOneOutResult`.

    Example:
        >>> from alignkit.data import load_embedding, load_triplets
        >>> e = load_embedding("spose-49d").values
        >>> r = compare_models_ooo(e, e, load_triplets("things-test20k"), bootstrap=100,
        ...                        similarity="dot")
        >>> r.difference, r.p_value, r.p_mcnemar
        (0.0, 1.0, 1.0)
    """
    import scipy.stats

    from alignkit._kernels import bootstrap as kboot
    from alignkit.provenance import base_provenance
    from alignkit.score.ooo import odd_one_out

    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
        raise InputError(f"bootstrap must be an integer >= 1 for a paired comparison, got "
                         f"{bootstrap!r}")
    if not 0.0 < float(ci_level) < 1.0:
        raise InputError(f"ci_level must be between 0 and 1, got {ci_level}")
    common = dict(object_ids=object_ids, per_triplet=True, device=device, bootstrap=0)
    ra = odd_one_out(features_a, triplets, options, ids=ids, model=model_a, **common,
                     **option_values)
    rb = odd_one_out(features_b, triplets, options, ids=ids if ids_b is None else ids_b,
                     model=model_b, **common, **option_values)
    ca = np.asarray(ra.correct, dtype=np.uint8)
    cb = np.asarray(rb.correct, dtype=np.uint8)
    N = int(ca.shape[0])
    if N == 0:
        raise InputError("no triplets to compare the models on")
    # the same seed draws the same triplets for both vectors: paired resamples
    diffs = (kboot.bootstrap_counts(ca, bootstrap, seed)
             - kboot.bootstrap_counts(cb, bootstrap, seed)) / N
    lo, hi = (float(v) for v in kboot.percentile_ci(diffs, ci_level))
    a_only = int(np.count_nonzero(ca > cb))
    b_only = int(np.count_nonzero(cb > ca))
    disc = a_only + b_only
    p_exact = 1.0 if disc == 0 else float(scipy.stats.binomtest(a_only, disc, 0.5).pvalue)
    prov = base_provenance(
        protocol="paired odd-one-out comparison: the same bootstrap resamples of the triplets "
                 "for both models; exact McNemar test",
        similarity=ra.similarity, ties=ra.ties, preset=ra.preset, bootstrap=bootstrap,
        seed=seed, features_a_checksum=ra.provenance.get("features_checksum"),
        features_b_checksum=rb.provenance.get("features_checksum"),
        triplets=ra.provenance.get("triplets"),
    )
    prov.update(provenance or {})
    return PairedOddOneOutResult(
        accuracy_a=ra.accuracy, accuracy_b=rb.accuracy,
        difference=float(ra.n_correct - rb.n_correct) / N, ci_low=lo, ci_high=hi,
        p_value=paired_pvalue(diffs), p_mcnemar=min(1.0, p_exact), a_only=a_only,
        b_only=b_only, n_triplets=N, similarity=ra.similarity, ties=ra.ties, preset=ra.preset,
        n_bootstrap=bootstrap, ci_level=float(ci_level), seed=seed, model_a=model_a,
        model_b=model_b, dataset=(ra.provenance.get("triplets") or {}).get("source"),
        differences=diffs, provenance=prov,
    )
