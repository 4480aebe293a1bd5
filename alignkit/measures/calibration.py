"""Calibration of odd-one-out choice probabilities as a registered measure (``calibration``).

The computation is :func:`alignkit.score.calibration.calibration` (definitions there): choice
probabilities ``softmax(T * [s_ij, s_ik, s_jk])``, T fitted on triplets of held-out objects,
ECE, NLL, the entropy-binned accuracy and, on repeated triplets, the KL and Jensen-Shannon
divergences to the human choice distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.measures import (
    Column,
    Measure,
    MeasureOptions,
    _ensure_builtin,
    option,
    register_measure,
)
from alignkit.measures.ooo import _preset_help, _preset_names, _similarity_names

__all__ = ["CalibrationOptions", "CalibrationMeasure"]


@dataclass(frozen=True)
class CalibrationOptions(MeasureOptions):
    """What decides a calibration result.

    Attributes:
        preset, similarity: as the odd-one-out measure (the similarity is the preset's,
            cosine by default; the paper's code computes probabilities from dot products).
        fit: ``nll`` (T minimising the NLL of the fitting triplets, exact) or ``ece-grid``
            (the paper's code: the temperature of least ECE among its grid 1 ... 1e-5).
        folds: object folds (KFold, shuffled with ``split_seed``).
        bins: equal-width ECE bins over the maximum probability.
        min_repeats: fewest responses of a triple for the human distribution.
        bootstrap, ci_level, seed: the percentile bootstrap over evaluated triplets.
    """

    preset: str | None = option(None, _preset_help, choices=_preset_names, optional=True)
    similarity: str | None = option(
        None, "Pair similarity of the choice probabilities (as ooo); default: the preset's "
              "(cosine). The paper's code uses dot products for its probabilities.",
        choices=_similarity_names, optional=True)
    fit: str = option("nll", "How T is fitted on the fitting triplets: nll (least negative "
                             "log-likelihood, exact) or ece-grid (the paper's code: least ECE "
                             "over its grid 1, 0.75, ..., 1e-5).", choices=("nll", "ece-grid"))
    folds: int = option(2, "Object folds: T is fitted on triplets of the other folds' objects "
                           "and evaluated on those of the fold's own (KFold, shuffled).",
                        minimum=2)
    split_seed: int = option(42, "random_state of the object folds (42 as the probe's CV).",
                             kind="seed")
    bins: int = option(10, "Equal-width ECE bins over the maximum probability (10 as the "
                           "paper's code).", minimum=1, maximum=1000)
    min_repeats: int = option(2, "Fewest responses of a triple for the human choice "
                                 "distribution (KL, JSD).", minimum=2)
    bootstrap: int = option(1000, "Bootstrap resamples of the evaluated triplets (0: none).",
                            minimum=0, identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap intervals.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "Seed of the bootstrap (0 to 4294967295).", kind="seed",
                       identity=False, sweep="seed")


class CalibrationMeasure(Measure):
    """Calibration (ECE) of temperature-scaled odd-one-out choice probabilities."""

    name = "calibration"
    title = "calibration of choice probabilities"
    summary = ("Choice probabilities softmax(T s), T fitted on held-out objects: ECE, NLL, "
               "entropy-binned accuracy, KL/JSD to repeated human choices.")
    data = "triplets"
    Options = CalibrationOptions
    value = "ece"
    value_label = "ECE"
    count = "n_evaluated"
    columns = (
        Column("similarity", "similarity"),
        Column("T", "temperature", "f"),
        Column("NLL", "nll", "f"),
        Column("accuracy", "accuracy", "f"),
        Column("evaluated", "n_evaluated", "d"),
        Column("JSD", "jsd", "f"),
    )
    command = "alignkit.commands.calibration:score_calibration"
    report = "alignkit.report._calibration:calibration_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        from alignkit.score.calibration import calibration

        for k in ("transform", "device"):
            context.pop(k, None)
        return calibration(features, data, self.options(options), **context)

    def score_store(self, store: Any, data: Any, options: Any, *, model: str | None = None,
                    layer: str | None = None, transform: str | None = None,
                    device: str = "auto", **kw: Any) -> list[Any]:
        from alignkit.score.calibration import calibration
        from alignkit.score.stores import _open, iter_entries, load_probe_transform

        st = _open(store)
        out = []
        for e in iter_entries(st, model, layer):
            X = e.features()
            if transform is not None:
                X = load_probe_transform(e, transform).apply(X)
            prov = {"store": str(st.path), "entry": f"{e.model}/{e.layer}",
                    "entry_checksum": e.checksum, "transform": transform}
            out.append(calibration(X, data, self.options(options), ids=e.ids, model=e.model,
                                   layer=e.layer, provenance=prov, **kw))
        return out


# the built-in measures first (registry order), also when this module is imported first
_ensure_builtin()
register_measure(CalibrationMeasure())
