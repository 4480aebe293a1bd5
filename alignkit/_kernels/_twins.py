"""One plain-Python definition, compiled for the CPU (``njit``) and for CUDA (``cuda.jit``).

The scalar helpers of the kernels (the counter-based RNG, the tie rules, the per-triplet
tally, the similarities) are written once in plain Python. A helper that calls another one
does so by a module-global name; on the CPU that name is bound to the ``njit`` dispatcher, and
for CUDA :func:`retarget` makes a copy of the function whose globals bind the same names to the
CUDA device functions instead, since a call from a device function needs its callee compiled
for that target. Nothing here imports :mod:`numba.cuda` until :func:`device_function` runs.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["plain", "retarget", "device_function", "device_functions", "specialise"]


def plain(fn: Any) -> Callable[..., Any]:
    """The Python function behind a Numba dispatcher (``fn`` itself when it is plain)."""
    return getattr(fn, "py_func", fn)


def retarget(fn: Callable[..., Any], **names: Any) -> Callable[..., Any]:
    """A copy of ``fn`` whose global names in ``names`` resolve to the given objects.

    The copy shares the code, defaults, closure, name and qualified name of ``fn``; only the
    lookup of the named globals differs (the rest of its module's globals are a snapshot).
    """
    fn = plain(fn)
    if not names:
        return fn
    scope = dict(fn.__globals__)
    scope.update(names)
    new = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__qualname__ = fn.__qualname__
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    new.__kwdefaults__ = fn.__kwdefaults__
    return new


def device_function(fn: Callable[..., Any], **callees: Any) -> Any:
    """``numba.cuda.jit(device=True)`` of the plain source of ``fn``, its named global callees
    replaced by their CUDA device functions."""
    from numba import cuda

    return cuda.jit(device=True)(retarget(fn, **callees))


def device_functions(fns: Iterable[Callable[..., Any]], **callees: Any) -> dict[str, Any]:
    """Device functions of ``fns`` (in dependency order) by name: each one's calls to the
    earlier ones (by their global names) and to ``callees`` go to device functions."""
    out: dict[str, Any] = {}
    for fn in fns:
        py = plain(fn)
        out[py.__name__] = device_function(py, **callees, **out)
    return out


def specialise(template: Callable[..., Any], suffix: str, **names: Any) -> Callable[..., Any]:
    """A copy of the kernel ``template`` with the named globals bound, renamed
    ``<name>_<suffix>``: each specialisation is a function of its own for Numba's on-disk
    cache (which files compiled code by qualified name and source line), so specialisations
    of one template never share a cache entry."""
    new = retarget(template, **names)
    if new is plain(template):  # nothing bound: still give it its own name
        new = types.FunctionType(
            new.__code__, new.__globals__, new.__name__, new.__defaults__, new.__closure__
        )
        new.__module__ = template.__module__
        new.__doc__ = template.__doc__
    new.__name__ = f"{plain(template).__name__}_{suffix}"
    new.__qualname__ = f"{plain(template).__qualname__}_{suffix}"
    return new
