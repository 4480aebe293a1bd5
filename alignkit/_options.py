"""Options dataclasses built from keyword arguments (stdlib only).

The long-running entry points (:func:`alignkit.extract.extract_features`,
:func:`alignkit.probe.cross_validate`) take one frozen options dataclass, and
keep accepting its fields as keyword arguments: :func:`options_from` merges
the two and reports an unknown keyword the way Python does for a function.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["options_from"]

T = TypeVar("T")


def options_from(cls: type[T], options: T | None, kwargs: dict[str, Any], where: str) -> T:
    """``options`` (or the defaults of ``cls``) with the fields in ``kwargs`` replaced.

    Raises:
        TypeError: a keyword that is no field of ``cls`` (named as ``where()``'s).
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = next((k for k in kwargs if k not in names), None)
    if unknown is not None:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown!r}")
    if options is None:
        return cls(**kwargs)
    if not isinstance(options, cls):
        raise TypeError(f"{where}(): options must be a {cls.__name__}, got {type(options).__name__}")
    return dataclasses.replace(options, **kwargs) if kwargs else options  # type: ignore[type-var]
