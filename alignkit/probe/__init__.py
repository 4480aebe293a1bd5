"""Linear probes learned from human odd-one-out triplets.

* :class:`LinearProbe`: sklearn-style estimator (``fit``, ``transform``,
  ``predict``, ``score``) with the paper's objective or gLocal's.
* :func:`cross_validate`: the paper's cross-validation over objects, with the
  ``paper`` protocol or the leakage-free ``nested`` one (default).
* Two solvers of the same objective: ``fast`` (exact, full batch over objects,
  L-BFGS; :mod:`alignkit.probe.fast`) and ``minibatch`` (the paper's Adam loop;
  :mod:`alignkit.probe.minibatch`).
* :class:`Transform`: apply, save to a store, ``.npz`` import and export.

Names are imported lazily: ``from alignkit.probe.transform import Transform``
(what scoring code uses) loads neither torch nor Numba.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> defining module
_EXPORTS = {
    "LinearProbe": "estimator",
    "SolverOptions": "estimator",
    "NotFittedError": "estimator",
    "clone": "estimator",
    "ObjectiveSpec": "_common",
    "FitResult": "_common",
    "CVOptions": "cv",
    "CVResult": "cv",
    "PAPER_LAMBDAS": "cv",
    "cross_validate": "cv",
    "kfold_objects": "cv",
    "split_triplets": "cv",
    "fold_splits": "cv",
    "fit_fast": "fast",
    "fit_minibatch": "minibatch",
    "Transform": "transform",
    "load_transform": "transform",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"alignkit.probe.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'alignkit.probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
