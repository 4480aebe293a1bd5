"""Helpers shared by the scoring front ends (odd-one-out, RSA, CKA and shape metrics)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from alignkit import provenance, validate
from alignkit.errors import InputError

CHANCE = 1.0 / 3.0
#: Noise ceiling of THINGS odd-one-out accuracy used for the paper's figures.
THINGS_CEILING = 0.673


def resolve_ties(name: str, option: str = "--ties") -> str:
    """The canonical tie rule for a user's name (``wrong`` warns: it is ``any-tie-wrong``)."""
    from alignkit._kernels.ties import resolve_tie_rule

    try:
        return resolve_tie_rule(name, option=option)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def as_features(features: Any, *, name: str = "features") -> np.ndarray:
    """Validate a 2-D finite feature matrix; float16 and integers are widened to float32."""
    return validate.as_features(features, name=name)


def normalised_score(accuracy: float, ceiling: float | None) -> float | None:
    """``max(0, (acc - 1/3) / (ceiling - 1/3))``, the noise-ceiling-normalised accuracy."""
    if ceiling is None:
        return None
    if not CHANCE < ceiling <= 1.0:
        raise InputError(f"--ceiling must lie in (1/3, 1], got {ceiling}")
    return max(0.0, (accuracy - CHANCE) / (ceiling - CHANCE))


def check_choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    """``value`` if it is one of ``allowed``; the message names the argument ``option``."""
    if value not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def jsonable(obj: Any) -> Any:
    """Dataclasses, numpy scalars and arrays as JSON-able Python objects; NaN and infinity
    become None, values of other types are left as they are."""
    return provenance.jsonable(obj, nonfinite="null", unknown="keep")


__all__ = [
    "CHANCE",
    "THINGS_CEILING",
    "resolve_ties",
    "as_features",
    "normalised_score",
    "check_choice",
    "jsonable",
    "asdict",
    "paired_pvalue",
]


def paired_pvalue(differences: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of a zero difference (None: no finite resample).

    Over resampled differences ``d`` of two models on the same resamples:
    ``min(1, 2 min((1 + #(d <= 0)), (1 + #(d >= 0))) / (1 + n))``, the finite ``d`` only; 1
    when the models agree on every resample.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not d.size:
        return None
    n = d.shape[0]
    lower = (1 + np.count_nonzero(d <= 0.0)) / (1 + n)
    upper = (1 + np.count_nonzero(d >= 0.0)) / (1 + n)
    return float(min(1.0, 2.0 * min(lower, upper)))
