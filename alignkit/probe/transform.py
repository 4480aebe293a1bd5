"""Linear transforms learned by probes: apply, save, load, export, import.

A transform maps a feature row ``x`` to ``((x - mean) / std) @ weights + bias``
where ``mean`` and ``std`` are the scalar mean and standard deviation of the
features it was fitted on. The ``.npz`` format (keys ``weights``, ``bias``,
``mean``, ``std``) is the one the gLocal follow-up publishes its transforms in;
the paper's own code saves one ``.npy`` array ``[W | b]`` of shape
``p x (p + 1)`` without mean and std, which must then be given or taken from the
features the transform is applied to (:meth:`Transform.from_npy`).

Every transform is validated when it is built (loaded, imported) and again
before it is applied: ``p x q`` weights with ``p, q >= 1``, a ``(q,)`` bias,
positive scalar (or ``(p,)``) std, every value finite and representable in
float32 (the store keeps float32), the features' width equal to ``p`` and the
transformed features' dot products finite in float32.
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
from alignkit.validate import as_features

__all__ = ["Transform", "load_transform"]

NPZ_KEYS = ("weights", "bias", "mean", "std")
#: Largest finite float32: stored features and transforms are float32.
F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Transform:
    """A fitted linear transform and what it was fitted with.

    Attributes:
        weights: ``(p, q)`` matrix.
        bias: ``(q,)`` vector or None.
        mean: scalar (or ``(p,)``) subtracted from the features.
        std: positive scalar (or ``(p,)``) dividing the centred features.
        attrs: JSON-able configuration, protocol and metrics.
        label: names the transform in error messages (a file, a probe).
    """

    weights: np.ndarray
    bias: np.ndarray | None
    mean: float | np.ndarray
    std: float | np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    label: str = field(default="transform", compare=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.dtype.kind not in "fiu":
            raise MismatchError(
                f"{self.label}: weights must be a real 2-D (p, q) matrix, got "
                f"{w.dtype} shape {w.shape}"
            )
        if w.shape[0] < 1 or w.shape[1] < 1:
            raise MismatchError(
                f"{self.label}: weights have shape {w.shape}; p and q must both be >= 1"
            )
        self.weights = w.astype(np.float64)
        if self.bias is not None:
            b = np.asarray(self.bias)
            if b.dtype.kind not in "fiu" or b.size != self.weights.shape[1]:
                raise MismatchError(
                    f"{self.label}: bias has shape {b.shape}, expected ({self.weights.shape[1]},)"
                )
            self.bias = b.astype(np.float64).reshape(-1)
        self.mean = _scalar_or_vector(self.mean, self.weights.shape[0], "mean", self.label)
        self.std = _scalar_or_vector(self.std, self.weights.shape[0], "std", self.label)
        for name in ("weights", "bias", "mean", "std"):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v)
            if not np.all(np.isfinite(a)):
                raise DataError(f"{self.label}: {name} holds NaN or infinity")
            big = float(np.abs(a).max())
            if big > F32_MAX:
                raise DataError(
                    f"{self.label}: {name} holds {big:.3g}, beyond float32 (max {F32_MAX:.3g})"
                )
        if not np.all(np.asarray(self.std) > 0):
            raise DataError(f"{self.label}: std must be > 0, got {np.asarray(self.std).min():g}")

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
            DataError: the features or the transformed features are not finite,
                or the transformed features' dot products overflow float32.
        """
        a = as_features(x, name=f"{self.label}: the features", dtype=dtype, p=self.p,
                        fits=np.dtype(dtype).name, error=MismatchError)
        out = ((a - np.asarray(self.mean, dtype)) / np.asarray(self.std, dtype)) @ self.weights.astype(dtype)
        if self.bias is not None:
            out += self.bias.astype(dtype)
        check_output(out, self.label)
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

        ``bias`` may be missing (one of the published gLocal files has none):
        the transform then has no bias (``bias = 0``) and its attrs record
        ``"bias_in_file": False``. ``mean`` and ``std`` are scalars (0-d
        arrays of any real dtype) or ``(p,)`` vectors.

        Raises:
            FormatError: not a readable ``.npz`` or a key is missing.
            DataError / MismatchError: bad values or shapes.
        """
        import zipfile

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        try:
            with open(p, "rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            raise FormatError(f"{p}: cannot read ({exc.strerror or exc})") from exc
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            raise FormatError(f"{p}: not a .npz archive (it starts with {head!r}: an error "
                              "page or another file served in its place?)")
        try:
            loaded = np.load(p, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise FormatError(f"{p}: not a .npz archive (a single array; read .npy files "
                                  "with Transform.from_npy)")
            with loaded as z:
                keys = set(z.files)
                missing = [k for k in ("weights", "mean", "std") if k not in keys]
                if missing:
                    raise FormatError(
                        f"{p}: not a transform .npz: missing key(s) {', '.join(missing)} "
                        f"(has {', '.join(sorted(keys)) or 'none'})"
                    )
                data = {k: np.asarray(z[k]) for k in keys}
        except FormatError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise FormatError(f"{p}: cannot read as .npz ({exc})") from exc
        attrs: dict[str, Any] = {}
        if "attrs_json" in data:
            try:
                attrs = json.loads(str(data["attrs_json"]))
            except json.JSONDecodeError as exc:
                raise FormatError(f"{p}: key attrs_json is not JSON ({exc})") from exc
        attrs.setdefault("imported_from", str(p))
        bias = data.get("bias")
        if bias is None:
            attrs["bias_in_file"] = False  # applied as bias = 0
        return cls(
            weights=data["weights"], bias=bias, mean=_squeeze(data["mean"], p, "mean"),
            std=_squeeze(data["std"], p, "std"), attrs=attrs, label=str(p),
        )

    @classmethod
    def from_npy(
        cls,
        path: str | os.PathLike[str],
        *,
        mean: float | None = None,
        std: float | None = None,
        features: np.ndarray | None = None,
    ) -> Transform:
        """Read the paper's saved layout: one ``.npy`` array ``[W | b]``, ``p x (p + 1)``.

        The paper's code saves ``concatenate((W, b[:, None]), axis=1)`` and no
        mean or std. These must be given, or computed from ``features`` (the
        features the transform will be applied to) as their global scalar mean
        and population std, the standardisation the paper's code applies.

        Args:
            path: the ``.npy`` file.
            mean, std: the scalars the features are standardised with.
            features: used for whichever of ``mean``/``std`` is not given.

        Raises:
            FormatError: not a readable ``.npy`` array, or not ``p x (p + 1)``.
            InputError: neither ``mean``/``std`` nor ``features`` given.
            DataError: NaN, infinity, values beyond float32, ``std <= 0``.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{p}: cannot read as .npy ({exc})") from exc
        if not isinstance(arr, np.ndarray):
            raise FormatError(f"{p}: not a single .npy array (a .npz archive? use from_npz)")
        if arr.ndim != 2 or arr.dtype.kind not in "fiu":
            raise FormatError(
                f"{p}: expected the paper's [W | b] layout, a real p x (p + 1) matrix; got "
                f"{arr.dtype} shape {arr.shape}"
            )
        rows, cols = arr.shape
        if rows < 1 or cols != rows + 1:
            raise FormatError(
                f"{p}: shape {arr.shape} is not the paper's [W | b] layout p x (p + 1)"
                + (f" (expected ({rows}, {rows + 1}))" if rows >= 1 else "")
            )
        how = "given"
        if mean is None or std is None:
            if features is None:
                raise InputError(
                    f"{p}: a .npy transform holds no mean and std: give mean and std, or the "
                    "features it is applied to"
                )
            fx = as_features(features, name=f"{p}: the features", dtype=np.float64, p=rows,
                             error=MismatchError)
            mean = float(fx.mean()) if mean is None else mean
            std = float(fx.std()) if std is None else std
            how = "global scalar mean/std of the features it is applied to"
        attrs = {"imported_from": str(p), "layout": "paper [W | b] .npy", "mean_std": how}
        return cls(weights=arr[:, :rows], bias=arr[:, rows], mean=_scalar(mean, p, "mean"),
                   std=_scalar(std, p, "std"), attrs=attrs, label=str(p))

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
        where = f"probe {name!r} on {getattr(entry, 'model', '?')}/{getattr(entry, 'layer', '?')}"
        return cls(weights=d["weights"], bias=d["bias"], mean=d["mean"], std=d["std"],
                   attrs=dict(d.get("attrs") or {}), label=where)


def load_transform(
    entry_or_path: Any,
    name: str | None = None,
    *,
    mean: float | None = None,
    std: float | None = None,
    features: np.ndarray | None = None,
) -> Transform:
    """Load a transform from a store entry (by probe name), a ``.npz`` or a ``.npy``.

    Args:
        entry_or_path: an :class:`alignkit.store.Entry`, or a path to a
            ``.npz`` (published format) or ``.npy`` (the paper's ``[W | b]``).
        name: the probe name (needed with an entry; ignored for a path).
        mean, std, features: for a ``.npy`` only (see :meth:`Transform.from_npy`).

    Raises:
        InputError: an entry without a name, or mean/std given for another format;
        EntryNotFoundError: no such probe; FormatError / DataError /
        MismatchError: a file that is not a valid transform.
    """
    if isinstance(entry_or_path, (str, os.PathLike)):
        path = Path(entry_or_path)
        if path.suffix.lower() == ".npy":
            return Transform.from_npy(path, mean=mean, std=std, features=features)
        if mean is not None or std is not None:
            raise InputError(f"{path}: mean and std are only taken for a .npy transform "
                             "(a .npz holds its own)")
        return Transform.from_npz(path)
    if name is None:
        raise InputError("--transform: a probe name is needed to load from a store entry")
    return Transform.from_entry(entry_or_path, name)


def check_output(z: np.ndarray, label: str) -> None:
    """Refuse transformed features that are not finite or whose dot products overflow float32."""
    if z.size == 0:
        return
    if not np.isfinite(z).all():
        raise DataError(f"{label}: the transformed features hold NaN or infinity")
    big = float(np.abs(z).max())
    if big * big * z.shape[1] > F32_MAX:
        raise DataError(
            f"{label}: the transformed features reach {big:.3g}; their dot products would "
            "overflow float32"
        )


def _squeeze(v: np.ndarray, where: Any, label: str) -> float | np.ndarray:
    if v.dtype.kind not in "fiu":
        raise FormatError(f"{where}: {label} must be a real number, got dtype {v.dtype}")
    return float(v.reshape(())) if v.size == 1 else v


def _scalar(v: Any, where: Any, label: str) -> float:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {label} must be a number, got {v!r}") from exc
    if a.size != 1:
        raise InputError(f"{where}: {label} must be a scalar, got shape {a.shape}")
    return float(a.reshape(()))


def _scalar_or_vector(v: Any, p: int, label: str, where: str) -> float | np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MismatchError(f"{where}: {label} must be a number, got {v!r}") from exc
    if a.size == 1:
        return float(a.reshape(()))
    if a.shape != (p,):
        raise MismatchError(f"{where}: {label} must be a scalar or a ({p},) vector, got {a.shape}")
    return a
