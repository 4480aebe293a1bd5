"""Compute-device selection for ``--device auto|cpu|cuda``.

``"cpu"`` never touches CUDA. ``"auto"`` picks ``"cuda"`` only when ``numba.cuda`` finds a
real GPU; under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) it stays on the CPU unless
``allow_simulator=True`` (the simulator is a testing tool, thousands of times slower).
``"cuda"`` demands a GPU (or the simulator, which the user switched on explicitly) and raises
:class:`alignkit.errors.DeviceError` otherwise. ``numba.cuda`` is imported only here, inside
the functions, and only when CUDA is asked about.
"""

from __future__ import annotations

import os

from alignkit.errors import DeviceError, InputError

__all__ = ["DEVICES", "simulator_enabled", "gpu_available", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def simulator_enabled() -> bool:
    """Whether Numba's CUDA simulator is switched on (``NUMBA_ENABLE_CUDASIM``)."""
    try:
        from numba import config
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    return bool(config.ENABLE_CUDASIM) or os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in (
        "",
        "0",
    )


def gpu_available() -> bool:
    """Whether ``numba.cuda`` can run kernels (a GPU and driver, or the simulator)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a missing or broken driver means "no GPU"
        return False


def resolve_device(device: str = "auto", *, allow_simulator: bool = False) -> str:
    """Turn a ``--device`` value into the device the kernels run on.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (case-insensitive).
        allow_simulator: let ``"auto"`` choose the CUDA simulator when it is enabled.

    Returns:
        ``"cpu"`` or ``"cuda"``.

    Raises:
        InputError: ``device`` is not one of :data:`DEVICES`.
        DeviceError: ``"cuda"`` was asked for and no CUDA GPU is available.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    name = str(device).strip().lower()
    if name not in DEVICES:
        raise InputError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    sim = simulator_enabled()
    available = gpu_available()
    if name == "cuda":
        if not available:
            raise DeviceError(
                "--device cuda: no CUDA GPU is available (numba.cuda.detect() found none); "
                "use --device cpu or auto"
            )
        return "cuda"
    if available and (not sim or allow_simulator):
        return "cuda"
    return "cpu"
