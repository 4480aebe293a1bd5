"""Shape metrics with a representation as a registered measure (``shape``).

The computation is :func:`alignkit.score.cka.shape_features` (Williams et al. 2021, as in
netrep): the angle between the optimally rotated representations or their Procrustes
distance, after optional centring and partial whitening (``alpha`` 1: Procrustes, 0: CCA).
Smaller is more similar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.measures import Column, Measure, MeasureOptions, option, register_measure

__all__ = ["ShapeOptions", "ShapeMeasure"]


@dataclass(frozen=True)
class ShapeOptions(MeasureOptions):
    """What decides a shape distance (see :func:`alignkit.score.cka.shape_features`)."""

    metric: str = option("angular", "angular (radians, arccos of the normalised nuclear norm) "
                         "or procrustes (min over rotations of the Frobenius distance).",
                         choices=("angular", "procrustes"))
    alpha: float = option(1.0, "Partial whitening: 1 none (Procrustes), 0 full (CCA).",
                          minimum=0.0, maximum=1.0)
    centre: bool = option(True, "Subtract each column's mean first.")
    normalise: bool = option(True, "procrustes: scale both to unit Frobenius norm first "
                             "(invariant to isotropic scaling); off: the data's units.")
    bootstrap: int = option(0, "Bootstrap resamples of the stimuli for a confidence interval.",
                            minimum=0, identity=False)
    permutations: int = option(0, "Permutations of the representation's rows for a one-sided "
                               "p-value (small distances are significant).", minimum=0,
                               identity=False)
    ci_level: float = option(0.95, "Coverage of the bootstrap interval.", minimum=0.0,
                             maximum=1.0, open=True, identity=False)
    seed: int = option(0, "Seed of the bootstrap and the permutations (0 to 4294967295).",
                       kind="seed", identity=False, sweep="seed")


class ShapeMeasure(Measure):
    """Angular shape metric or Procrustes distance to a representation."""

    name = "shape"
    title = "shape distance"
    summary = "Angular or Procrustes shape distance to a representation such as spose-49d (smaller: more alike)."
    data = "embedding"
    Options = ShapeOptions
    value = "value"
    value_label = "distance"
    count = "n_stimuli"
    columns = (
        Column("metric", "metric"),
        Column("alpha", "alpha", "f"),
        Column("stimuli", "n_stimuli", "d"),
        Column("p-value", "p_value", "p"),
    )
    report = "alignkit.report._similarity:shape_sections"

    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        from alignkit.score.cka import shape_features

        context.pop("device", None)
        ids = context.pop("ids")
        transform = context.pop("transform", None)
        return shape_features(features, ids, data, self.options(options),
                              transform_name=transform, **context)


register_measure(ShapeMeasure())
