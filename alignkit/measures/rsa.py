"""Representational similarity analysis against a human RDM as a registered measure (``rsa``).

The computation is :func:`alignkit.score.rsa_features`: the model RDM of the
features (matched to the human RDM's stimuli by id) compared with the human RDM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.measures import Column, Measure, MeasureOptions, option, register_measure

__all__ = ["RSAOptions", "RSAMeasure"]


def _rdm_methods() -> tuple[str, ...]:
    from alignkit.score.rsa import RDM_METHODS

    return RDM_METHODS


def _compares() -> tuple[str, ...]:
    from alignkit.score.rsa import COMPARE

    return COMPARE


@dataclass(frozen=True)
class RSAOptions(MeasureOptions):
    """What decides an RSA value (see :func:`alignkit.score.rsa`)."""

    rdm_method: str = option(
        "correlation",
        "Model RDM: 1 - Pearson r (clipped, the paper's figures), 1 - cosine, euclidean "
        "(the Euclidean distance), sqeuclidean-mean (rsatoolbox's euclidean: squared "
        "distance / channels), or negative dot product.",
        choices=_rdm_methods,
    )
    compare: str = option(
        "spearman",
        "Comparison of the two RDMs' upper triangles, as rsatoolbox defines it: spearman, "
        "pearson, kendall-tau-b, tau-a and rho-a (no tie correction), cosine, "
        "whitened-cosine and whitened-pearson (i.i.d. pattern noise).",
        choices=_compares)
    permutations: int = option(0, "Stimulus permutations for a one-sided p-value.",
                               minimum=0, identity=False)
    bootstrap: int = option(0, "Bootstrap resamples of the stimuli for a confidence interval.",
                            minimum=0, identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap interval.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "Seed of the permutations and the bootstrap (0 to 4294967295).",
                       kind="seed", identity=False, sweep="seed")


class RSAMeasure(Measure):
    """RSA: the correlation of the model's and the humans' dissimilarity matrices."""

    name = "rsa"
    title = "RSA"
    summary = "RSA against a human RDM, matched by stimulus id (permutation p, bootstrap CI)."
    data = "rdm"
    Options = RSAOptions
    value = "value"
    value_label = "rsa"
    count = "n_stimuli"
    columns = (
        Column("RDM", "rdm_method"),
        Column("compare", "compare"),
        Column("stimuli", "n_stimuli", "d"),
        Column("p-value", "p_value", "p"),
    )
    command = "alignkit.commands.score:score_rsa"
    report = "alignkit.report:_rsa_measure_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        from alignkit.score.rsa import rsa_features

        ids = context.pop("ids")
        transform = context.pop("transform", None)
        return rsa_features(features, ids, data, transform_name=transform,
                            **self.options(options).to_dict(), **context)

    def score_store(self, store: Any, data: Any, options: Any, *, model: str | None = None,
                    layer: str | None = None, transform: str | None = None,
                    device: str = "auto") -> list[Any]:
        from alignkit.score.stores import score_store_rsa

        return score_store_rsa(store, data, model=model, layer=layer, transform=transform,
                               device=device, **self.options(options).to_dict())


register_measure(RSAMeasure())
