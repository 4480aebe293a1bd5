"""Centred kernel alignment with a representation as a registered measure (``cka``).

The computation is :func:`alignkit.score.cka.cka_features`: the features' rows matched by
id to the representation's (the ``embedding`` data kind, e.g. SPoSE 49d), then linear or
RBF CKA, biased or debiased, with a bootstrap interval and a permutation p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.measures import Column, Measure, MeasureOptions, option, register_measure

__all__ = ["CKAOptions", "CKAMeasure"]


@dataclass(frozen=True)
class CKAOptions(MeasureOptions):
    """What decides a CKA value (see :func:`alignkit.score.cka.cka_features`)."""

    kernel: str = option("linear", "Kernel: linear (feature space, any n) or rbf (n x n).",
                         choices=("linear", "rbf"))
    rbf_fraction: float = option(
        1.0, "RBF bandwidth as a fraction of the median distance between rows (the paper's "
        "code: 1).", minimum=0.0, open=True)
    debiased: bool = option(False, "Use the unbiased HSIC estimator (Song et al. 2012).")
    bootstrap: int = option(0, "Bootstrap resamples of the stimuli for a confidence interval.",
                            minimum=0, identity=False)
    permutations: int = option(0, "Permutations of the representation's rows for a one-sided "
                               "p-value.", minimum=0, identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap interval.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "Seed of the bootstrap and the permutations (0 to 4294967295).",
                       kind="seed", identity=False, sweep="seed")


class CKAMeasure(Measure):
    """CKA of a model's features with a representation (one row per stimulus)."""

    name = "cka"
    title = "CKA"
    summary = "CKA with a representation such as spose-49d, rows matched by id (bootstrap CI, permutation p)."
    data = "embedding"
    Options = CKAOptions
    value = "value"
    value_label = "cka"
    count = "n_stimuli"
    columns = (
        Column("kernel", "kernel"),
        Column("debiased", "debiased"),
        Column("stimuli", "n_stimuli", "d"),
        Column("p-value", "p_value", "p"),
    )
    report = "alignkit.report._similarity:cka_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        from alignkit.score.cka import cka_features

        context.pop("device", None)
        ids = context.pop("ids")
        transform = context.pop("transform", None)
        return cka_features(features, ids, data, self.options(options),
                            transform_name=transform, **context)


register_measure(CKAMeasure())
