"""Helpers shared by the odd-one-out and RSA front ends."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any

import numpy as np

from alignkit.errors import DataError, InputError

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
    """Validate a 2-D finite feature matrix; float16 is widened to float32."""
    X = np.asarray(features)
    if X.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (stimuli x dimensions), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating) and not np.issubdtype(X.dtype, np.integer):
        raise InputError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.dtype == np.float16 or np.issubdtype(X.dtype, np.integer):
        X = X.astype(np.float32)
    if X.size and not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataError(f"{name} contain NaN or inf (first at row {row + 1})")
    return X


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
    """Convert dataclasses, numpy scalars and arrays into JSON-able Python objects."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


__all__ = [
    "CHANCE",
    "THINGS_CEILING",
    "resolve_ties",
    "as_features",
    "normalised_score",
    "check_choice",
    "jsonable",
    "asdict",
]
