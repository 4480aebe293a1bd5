"""The zero-shot odd-one-out accuracy as a registered measure (``ooo``).

Its options (:class:`OddOneOutOptions`) are those of
:func:`alignkit.score.odd_one_out` that decide the number: the preset, the
similarity, the tie rule, the ceiling and the bootstrap. The computation itself
is :func:`alignkit.score.odd_one_out`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.measures import Column, Measure, MeasureOptions, option, register_measure

__all__ = ["OddOneOutOptions", "OddOneOutMeasure"]


def _preset_names() -> tuple[str, ...]:
    from alignkit.score.presets import PRESETS

    return tuple(PRESETS)


def _preset_help() -> str:
    from alignkit.score.presets import PRESETS

    return "Published protocol: " + "; ".join(
        f"{p.name} = {p.similarity} similarity, {p.ties} ties, THINGS ceiling "
        f"{p.things_ceiling}{', normalised score clipped to [0, 1]' if p.clip_normalised else ''}"
        f" ({p.reference})"
        for p in PRESETS.values()
    ) + ". Options given beside it override it and are recorded."


def _similarity_names() -> tuple[str, ...]:
    from alignkit._kernels.similarity import SIMILARITIES

    return tuple(SIMILARITIES)


def _similarity_help() -> str:
    from alignkit._kernels.similarity import SIMILARITIES

    items = getattr(SIMILARITIES, "values", None)
    if callable(items):  # a registry with one-line summaries
        listed = "; ".join(f"{s.name}: {s.summary}" for s in SIMILARITIES.values())
    else:
        listed = ", ".join(SIMILARITIES)
    return (f"Pair similarity ({listed}); cosine is the paper code's default, dot is "
            "Brain-Score's. Default: the preset's (cosine).")


def _tie_names() -> tuple[str, ...]:
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES, TIE_RULES

    return (*TIE_RULES, *DEPRECATED_TIE_RULES)


def _tie_help() -> str:
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES, TIE_RULES

    rules = "; ".join(f"{r.name}: {r.summary} ({r.reference})" for r in TIE_RULES.values())
    old = ", ".join(f"{a} = {b}" for a, b in DEPRECATED_TIE_RULES.items())
    return f"Exact ties at the top. {rules}. Deprecated: {old}. Default: the preset's (paper)."


def _canonical_ties(name: str) -> str:
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES

    return DEPRECATED_TIE_RULES.get(name, name)


@dataclass(frozen=True)
class OddOneOutOptions(MeasureOptions):
    """What decides an odd-one-out accuracy (see :func:`alignkit.score.odd_one_out`).

    Attributes:
        preset: a named protocol of :data:`alignkit.score.presets.PRESETS` (``paper2023``,
            ``brainscore``) setting similarity, ties and the THINGS ceiling; options given
            beside it override it and are recorded in the result's ``overrides``.
        similarity: ``cosine`` (the paper code's default), ``dot`` (Brain-Score),
            ``euclidean`` (negative distance) or ``correlation``
            (:data:`alignkit._kernels.similarity.SIMILARITIES`); None: the preset's.
        ties: ``paper`` (default), ``first`` or ``any-tie-wrong`` (``wrong`` is a deprecated
            alias of the last; :mod:`alignkit._kernels.ties`); None: the preset's.
        ceiling: ``"auto"`` (the preset's THINGS ceiling when the triplets' object ids are
            THINGS concepts, else none), a number, an
            :class:`alignkit.score.ceiling.OddOneOutCeiling` computed from repeated triplets,
            or None (no normalised score). Library only.
        bootstrap: resamples of the triplets for a percentile interval (0: none).
        ci_level: the interval's coverage.
        seed: seed of the bootstrap's counter-based generator.
        group_by: a grouping for the per-group breakdown (``per_group``): a column the
            triplets carry (``level``) or a label file; the study key of the same name.
            ``odd_one_out(groups=...)`` given explicitly takes precedence.
    """

    preset: str | None = option(None, _preset_help, choices=_preset_names, optional=True)
    similarity: str | None = option(None, _similarity_help, choices=_similarity_names,
                                    optional=True)
    ties: str | None = option(None, _tie_help, choices=_tie_names, optional=True,
                              canonical=_canonical_ties)
    ceiling: Any = option("auto", "Noise ceiling: 'auto', a number, an OddOneOutCeiling or None.",
                          kind="any", cli=False, study=False, optional=True, identity=False)
    bootstrap: int = option(0, "Bootstrap resamples of the triplets for a confidence interval.",
                            minimum=0, identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap interval.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "Seed of the bootstrap (0 to 4294967295).", kind="seed",
                       identity=False, sweep="seed")
    group_by: str | None = option(
        None, "Accuracy per group of triplets, with counts and (with --bootstrap) intervals: a "
        "per-judgment column of the triplets ('level' of the Levels data: coarse, fine, "
        "boundary) or a label file with one label per triplet (one a line, or a CSV/TSV "
        "column as FILE:COLUMN).", optional=True, identity=False)


class OddOneOutMeasure(Measure):
    """Zero-shot odd-one-out accuracy: how often the model's odd one out is the human's."""

    name = "ooo"
    title = "odd-one-out accuracy"
    summary = "Zero-shot odd-one-out accuracy on human triplets (chance 1/3)."
    data = "triplets"
    Options = OddOneOutOptions
    value = "accuracy"
    value_label = "accuracy"
    count = "n_triplets"
    columns = (
        Column("similarity", "similarity"),
        Column("ties", "ties"),
        Column("triplets", "n_triplets", "d"),
        Column("normalised", "normalised", "f"),
    )
    command = "alignkit.commands.score:score_ooo"
    report = "alignkit.report:_ooo_measure_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        from alignkit.score.ooo import odd_one_out

        context.pop("transform", None)
        return odd_one_out(features, data, self.options(options), **context)

    def score_store(self, store: Any, data: Any, options: Any, *, model: str | None = None,
                    layer: str | None = None, transform: str | None = None,
                    device: str = "auto", **kw: Any) -> list[Any]:
        from alignkit.score.stores import score_store_ooo

        return score_store_ooo(store, data, model=model, layer=layer, transform=transform,
                               options=self.options(options), device=device, **kw)


register_measure(OddOneOutMeasure())
