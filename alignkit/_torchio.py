"""torch helpers shared by extraction and probes.

* Reading ``torch.save`` files safely, with one-line reasons for the bad ones.
* :func:`resolve_device`: the one check of a ``device`` option.

torch is imported only when a file is actually read or a device resolved.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import AlignkitError, DeviceError, FormatError, InputError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "torch_load", "torch_load_reason"]

_ZIP = b"PK\x03\x04"
_PICKLE = b"\x80"


def torch_load_reason(exc: BaseException) -> str:
    """The useful part of a ``torch.load`` error, on one line.

    torch's safe unpickler explains its defaults over several lines before it
    names what it refused ("WeightsUnpickler error: Unsupported global ...");
    that last part is the reason kept.
    """
    text = str(exc)
    marker = "WeightsUnpickler error:"
    prefix = ""
    if marker in text:
        text, prefix = text.split(marker, 1)[1], "the safe loader refused it: "
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0].split(". ", 1)[0].rstrip(".")  # the advice that follows is for Python users
    return prefix + first


def torch_load(path: str | os.PathLike[str], where: str,
               error: type[AlignkitError] = FormatError) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, refusing bad files with ``error``.

    Args:
        path: the file.
        where: how messages name it (the path, or ``--weights PATH``).
        error: the exception class raised.

    Raises:
        error: the file is empty, is not a ``torch.save`` file, or holds objects
            the safe loader refuses; the message is one line.
    """
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise error(f"{where}: cannot read: empty file, not a torch.save file")
    if not (head.startswith(_ZIP) or head.startswith(_PICKLE)):
        raise error(f"{where}: cannot read: not a torch.save file (neither a zip archive nor a pickle)")
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sparse-invariant and format notices
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise error(f"{where}: cannot read as a torch.save file ({torch_load_reason(exc)})") from None


def resolve_device(device: Any, *, api: bool = False) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N`` as a ``torch.device``.

    Args:
        device: the option's value (case and surrounding spaces do not matter).
        api: word the errors for a Python argument (``device: ...``, a bad value
            an :class:`InputError`) instead of the command line's ``--device``.

    Raises:
        DeviceError: CUDA requested but not available (or not that many devices);
            on the command line also an unknown device.
        InputError: an unknown device given as a Python argument.
    """
    import torch

    def unknown() -> AlignkitError:
        if api:
            return InputError(f"device: unknown device {device!r} (auto|cpu|cuda)")
        return DeviceError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")

    if not isinstance(device, str):
        if api:
            raise InputError(f"device: expected auto, cpu or cuda, got {device!r}")
        raise unknown()
    d = device.strip().lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(d)
    except (RuntimeError, ValueError):
        raise unknown() from None
    where = f"device={device!r}" if api else f"--device {device}"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{where}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{where}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise unknown()
    return dev
