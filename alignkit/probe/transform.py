"""Linear transforms learned by probes: apply, save, load, export, import.

A transform maps a feature row ``x`` to ``((x - mean) / std) @ weights + bias``
where ``mean`` and ``std`` are the scalar mean and standard deviation of the
features it was fitted on. The ``.npz`` format (keys ``weights``, ``bias``,
``mean``, ``std``) is the one the gLocal follow-up publishes its transforms in.
This module needs numpy only (no torch), so scoring code can apply transforms.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.errors import DataError, FormatError, InputError, MismatchError

__all__ = ["Transform", "load_transform"]

NPZ_KEYS = ("weights", "bias", "mean", "std")


@dataclass
class Transform:
    """A fitted linear transform and what it was fitted with.

    Attributes:
        weights: ``(p, q)`` matrix.
        bias: ``(q,)`` vector or None.
        mean: scalar (or ``(p,)``) subtracted from the features.
        std: positive scalar (or ``(p,)``) dividing the centred features.
        attrs: JSON-able configuration, protocol and metrics.
    """

    weights: np.ndarray
    bias: np.ndarray | None
    mean: float | np.ndarray
    std: float | np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.weights.ndim != 2:
            raise MismatchError(f"transform weights must be 2-D, got shape {self.weights.shape}")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
            if self.bias.shape != (self.weights.shape[1],):
                raise MismatchError(
                    f"transform bias has shape {self.bias.shape}, expected ({self.weights.shape[1]},)"
                )
        self.mean = _scalar_or_vector(self.mean, self.weights.shape[0], "mean")
        self.std = _scalar_or_vector(self.std, self.weights.shape[0], "std")
        if not np.all(np.asarray(self.std) > 0):
            raise DataError("transform std must be positive")
        for name in ("weights", "bias", "mean", "std"):
            v = getattr(self, name)
            if v is not None and not np.all(np.isfinite(v)):
                raise DataError(f"transform {name} holds NaN or infinity")

    @property
    def p(self) -> int:
        """Input dimension."""
        return int(self.weights.shape[0])

    @property
    def q(self) -> int:
        """Output dimension."""
        return int(self.weights.shape[1])

    def apply(self, x: np.ndarray, *, dtype: Any = np.float64) -> np.ndarray:
        """Map features: ``((x - mean) / std) @ weights + bias``.

        Args:
            x: ``(n, p)`` features (float16 storage is cast first).
            dtype: dtype of the arithmetic and the result.

        Raises:
            MismatchError: the feature dimension is not ``p``.
        """
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[1] != self.p:
            raise MismatchError(
                f"features have shape {a.shape}, the transform expects (n, {self.p})"
            )
        a = a.astype(dtype, copy=False)
        out = ((a - np.asarray(self.mean, dtype)) / np.asarray(self.std, dtype)) @ self.weights.astype(dtype)
        if self.bias is not None:
            out += self.bias.astype(dtype)
        return out

    # ---- .npz interop
    def to_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write the published ``.npz`` format (keys weights, bias, mean, std).

        A probe without bias is written with a zero bias, which the published
        formula applies unchanged. The configuration goes under ``attrs_json``.
        """
        out = Path(path)
        bias = self.bias if self.bias is not None else np.zeros(self.q)
        with open(out, "wb") as fh:
            np.savez(
                fh, weights=self.weights, bias=bias, mean=np.asarray(self.mean),
                std=np.asarray(self.std), attrs_json=np.asarray(json.dumps(self.attrs)),
            )
        return out

    @classmethod
    def from_npz(cls, path: str | os.PathLike[str]) -> Transform:
        """Read a transform from the published ``.npz`` format.

        Raises:
            FormatError: not a readable ``.npz`` or a key is missing.
            DataError / MismatchError: bad values or shapes.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        try:
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
                missing = [k for k in ("weights", "mean", "std") if k not in keys]
                if missing:
                    raise FormatError(
                        f"{p}: not a transform .npz: missing key(s) {', '.join(missing)} "
                        f"(has {', '.join(sorted(keys)) or 'none'})"
                    )
                data = {k: np.asarray(z[k]) for k in keys}
        except (OSError, ValueError) as exc:
            raise FormatError(f"{p}: cannot read as .npz ({exc})") from exc
        attrs: dict[str, Any] = {}
        if "attrs_json" in data:
            try:
                attrs = json.loads(str(data["attrs_json"]))
            except json.JSONDecodeError as exc:
                raise FormatError(f"{p}: key attrs_json is not JSON ({exc})") from exc
        attrs.setdefault("imported_from", str(p))
        bias = data.get("bias")
        try:
            return cls(
                weights=data["weights"], bias=bias, mean=_squeeze(data["mean"]),
                std=_squeeze(data["std"]), attrs=attrs,
            )
        except (MismatchError, DataError) as exc:
            raise type(exc)(f"{p}: {exc}") from exc

    # ---- store
    def save(self, entry: Any, name: str, *, overwrite: bool = False) -> None:
        """Save under an :class:`alignkit.store.Entry` (its ``probes/<name>``)."""
        entry.save_probe(
            name, weights=self.weights, bias=self.bias, mean=self.mean, std=self.std,
            attrs=self.attrs, overwrite=overwrite,
        )

    @classmethod
    def from_entry(cls, entry: Any, name: str) -> Transform:
        """Load a probe saved under an :class:`alignkit.store.Entry`."""
        d = entry.load_probe(name)
        return cls(weights=d["weights"], bias=d["bias"], mean=d["mean"], std=d["std"],
                   attrs=dict(d.get("attrs") or {}))


def load_transform(entry_or_path: Any, name: str | None = None) -> Transform:
    """Load a transform from a store entry (by probe name) or from a ``.npz`` file.

    Args:
        entry_or_path: an :class:`alignkit.store.Entry`, or a path to a ``.npz``.
        name: the probe name (needed with an entry; ignored for a path).

    Raises:
        InputError: an entry without a name; EntryNotFoundError: no such probe.
    """
    if isinstance(entry_or_path, (str, os.PathLike)):
        return Transform.from_npz(entry_or_path)
    if name is None:
        raise InputError("--transform: a probe name is needed to load from a store entry")
    return Transform.from_entry(entry_or_path, name)


def _squeeze(v: np.ndarray) -> float | np.ndarray:
    return float(v) if v.size == 1 else v


def _scalar_or_vector(v: Any, p: int, label: str) -> float | np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.size == 1:
        return float(a.reshape(()))
    if a.shape != (p,):
        raise MismatchError(f"transform {label} must be a scalar or a ({p},) vector, got {a.shape}")
    return a
