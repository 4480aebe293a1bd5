"""Named protocols: one option that sets every choice a published number depends on.

A preset fixes the similarity, the tie rule, the noise ceiling of THINGS triplets and how the
normalised score is formed, as the protocol it names does. An option given explicitly beside a
preset overrides it, and the result records both the preset and the overridden options.

* ``paper2023``: Muttenthaler et al. (ICLR 2023), as its published analysis code computes it:
  cosine similarity, the paper's tie rule, THINGS noise ceiling 0.673, normalised score
  ``max(0, (acc - 1/3) / (ceiling - 1/3))``.
* ``brainscore``: Brain-Score's ``Hebart2023`` odd-one-out benchmark: dot-product similarity,
  first maximum on ties, ceiling 0.6767 and a normalised score clipped to ``[0, 1]``,
  ``clip((acc - 1/3) / (ceiling - 1/3), 0, 1)``, as Brain-Score reports it.

A preset's ceiling belongs to the THINGS triplets it was measured on: on other triplet data no
ceiling is applied (give one with ``ceiling=``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Preset", "PRESETS", "THINGS_CEILING_SOURCE", "normalise"]

#: Where the default THINGS ceiling comes from.
THINGS_CEILING_SOURCE = "THINGS odd-one-out noise ceiling of Muttenthaler et al. 2023"


@dataclass(frozen=True)
class Preset:
    """A published protocol's choices for the zero-shot odd-one-out accuracy."""

    name: str
    similarity: str
    ties: str
    things_ceiling: float
    ceiling_source: str
    clip_normalised: bool
    reference: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper2023",
            similarity="cosine",
            ties="paper",
            things_ceiling=0.673,
            ceiling_source=THINGS_CEILING_SOURCE,
            clip_normalised=False,
            reference="Muttenthaler et al. (ICLR 2023), published analysis code",
        ),
        Preset(
            "brainscore",
            similarity="dot",
            ties="first",
            things_ceiling=0.6767,
            ceiling_source="Brain-Score Hebart2023 odd-one-out ceiling",
            clip_normalised=True,
            reference="Brain-Score, Hebart2023 odd-one-out benchmark",
        ),
    )
}


def normalise(accuracy: float, ceiling: float | None, *, clip: bool) -> float | None:
    """The noise-ceiling-normalised accuracy; None without a ceiling.

    ``max(0, (acc - 1/3) / (ceiling - 1/3))``, or with ``clip`` Brain-Score's
    ``clip((acc - 1/3) / (ceiling - 1/3), 0, 1)``.
    """
    if ceiling is None:
        return None
    from alignkit.score._common import normalised_score

    value = normalised_score(accuracy, ceiling)
    return min(1.0, value) if clip and value is not None else value
