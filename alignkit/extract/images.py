"""Image sets and preprocessing for feature extraction.

An :class:`ImageSet` is an ordered list of stimulus ids and image paths. It is
built from a folder (recursive; ids are the relative paths without extension,
sorted), from the THINGS layouts (one reference image per concept in canonical
order, or the full image set with a concept per image), or from a CSV of
``id,path`` rows.

Preprocessing is split in two stages so that the expensive part runs in the
data-loader workers on 8-bit pixels and only a cheap, vectorised step runs on
the batch: :class:`Preprocess` resizes and crops a PIL image into a ``uint8``
tensor (exactly as torchvision's ``ImageClassification`` transform does), and
:meth:`Preprocess.normalize` converts a ``uint8`` batch to normalised floats
with the same arithmetic as ``convert_image_dtype`` followed by ``normalize``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from alignkit.errors import DataError, FormatError, InputError, MismatchError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "Preprocess",
    "ImageDataset",
    "load_rgb",
    "from_folder",
    "from_csv",
    "from_things",
    "open_images",
    "verify_images",
]

#: File name extensions (lower case) recognised as images in a folder.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


# --------------------------------------------------------------------------- image sets


@dataclass(frozen=True)
class ImageSet:
    """An ordered set of images with stimulus ids.

    Attributes:
        ids: stimulus ids, one per image, unique.
        paths: image files, in the order of ``ids``.
        root: the folder (or CSV file) the set was read from.
        layout: ``"folder"``, ``"csv"``, ``"things-reference"`` or ``"things-full"``.
        concepts: for ``"things-full"``, the 0-based canonical THINGS concept index
            of each image; otherwise ``None``.
        skipped: images left out because they could not be read, as
            ``{"id": ..., "path": ..., "error": ...}`` records.
        rows: for ``"csv"``, the 1-based row of each image in the CSV file
            (named in messages about the image); otherwise ``None``.
    """

    ids: list[str]
    paths: list[Path]
    root: Path
    layout: str
    concepts: np.ndarray | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: list[int] | None = None

    def where(self) -> list[str]:
        """The prefix that messages about each image start with ("" or "list.csv, row 3: ")."""
        if self.rows is None:
            return [""] * len(self.ids)
        return [f"{self.root}, row {r}: " for r in self.rows]

    def __len__(self) -> int:
        return len(self.ids)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.paths):
            raise MismatchError(f"{len(self.ids)} ids for {len(self.paths)} image paths")

    def checksum(self) -> str:
        """``sha256:`` of the ids and each file's relative path and size.

        Cheap (no image is read) yet changes whenever the set, its order or a
        file's size changes; used to recognise the same input on resume.
        """
        h = hashlib.sha256()
        for i, p in zip(self.ids, self.paths, strict=True):
            try:
                size = p.stat().st_size
            except OSError:
                size = -1
            h.update(f"{i}\0{_rel(p, self.root)}\0{size}\n".encode())
        return "sha256:" + h.hexdigest()

    def subset(self, keep: Sequence[int], skipped: list[dict[str, str]]) -> ImageSet:
        """The images at positions ``keep``, recording ``skipped`` ones."""
        idx = list(keep)
        return ImageSet(
            ids=[self.ids[i] for i in idx],
            paths=[self.paths[i] for i in idx],
            root=self.root,
            layout=self.layout,
            concepts=None if self.concepts is None else self.concepts[idx],
            skipped=list(self.skipped) + list(skipped),
            rows=None if self.rows is None else [self.rows[i] for i in idx],
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the store's attributes."""
        out: dict[str, Any] = {
            "root": str(self.root),
            "layout": self.layout,
            "n": len(self),
            "checksum": self.checksum(),
        }
        if self.concepts is not None:
            out["concepts"] = [int(c) for c in self.concepts]
        if self.skipped:
            out["skipped"] = list(self.skipped)
        return out


def _rel(path: Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _require_dir(root: Path, what: str) -> None:
    if not root.exists():
        raise InputError(f"{root}: {what} does not exist")
    if not root.is_dir():
        raise InputError(f"{root}: {what} is not a folder")


def _walk_images(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def from_folder(root: str | os.PathLike[str]) -> ImageSet:
    """All images under a folder, recursively.

    Ids are the paths relative to ``root`` without the extension, with ``/``
    separators, sorted. Hidden files and folders are ignored.

    Raises:
        InputError: the folder is missing, not a folder, or holds no image.
        DataError: two files share an id (``a.jpg`` and ``a.png``).
    """
    root = Path(root)
    _require_dir(root, "image folder")
    by_id: dict[str, Path] = {}
    for path in _walk_images(root):
        rel = path.relative_to(root)
        key = rel.with_suffix("").as_posix()
        if key in by_id:
            raise DataError(
                f"{root}: two images share the id {key!r}: {by_id[key].name} and {path.name}"
            )
        by_id[key] = path
    if not by_id:
        raise InputError(
            f"{root}: no image found (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    ids = sorted(by_id)
    return ImageSet(ids=ids, paths=[by_id[i] for i in ids], root=root, layout="folder")


def from_csv(path: str | os.PathLike[str], *, allow_outside_root: bool = False) -> ImageSet:
    """Images listed in a CSV file of ``id,path`` rows, in file order.

    A header row ``id,path`` is optional. Relative paths are taken relative to
    the CSV file's folder, the image root. A path that leaves the root (``..``,
    an absolute path elsewhere, or a symbolic link pointing out of it) is
    refused unless ``allow_outside_root`` (``--allow-outside-root``): a CSV from
    elsewhere cannot make alignkit read files outside the folder it came with.

    Raises:
        InputError: the file is missing.
        FormatError: a row does not have two fields.
        DataError: an id repeats, is empty, its image file does not exist, or
            its path leaves the image root.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image list does not exist")
    root = path.resolve().parent
    ids: list[str] = []
    paths: list[Path] = []
    seen: dict[str, int] = {}
    rows: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row_no, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise FormatError(f"{path}, row {row_no}: expected 2 fields 'id,path', got {len(row)}")
            sid, rel = row[0].strip(), row[1].strip()
            if row_no == 1 and sid.lower() == "id" and rel.lower() == "path":
                continue
            if not sid:
                raise DataError(f"{path}, row {row_no}: empty id")
            if sid in seen:
                raise DataError(f"{path}, row {row_no}: id {sid!r} repeats row {seen[sid]}")
            img = Path(rel)
            if not img.is_absolute():
                img = path.parent / img
            if not img.is_file():
                raise DataError(f"{path}, row {row_no}: image {img} does not exist")
            if not allow_outside_root:
                real = img.resolve()
                if real != root and root not in real.parents:
                    how = "a link to " if img.is_symlink() or real != img.absolute() else ""
                    raise DataError(
                        f"{path}, row {row_no}: image path {rel!r} leads outside the image root "
                        f"{root} (to {how}{real}); pass --allow-outside-root if that is intended"
                    )
            seen[sid] = row_no
            ids.append(sid)
            paths.append(img)
            rows.append(row_no)
    if not ids:
        raise InputError(f"{path}: no image listed")
    return ImageSet(ids=ids, paths=paths, root=path, layout="csv", rows=rows)


def _things_ids() -> list[str]:
    from alignkit.data import load_ids

    return [str(x) for x in load_ids("things")]


def from_things(
    root: str | os.PathLike[str], kind: str = "reference", concept_ids: Sequence[str] | None = None
) -> ImageSet:
    """Images in one of the THINGS layouts, in canonical concept order.

    ``kind="reference"``: one image per concept named ``<uniqueID>.<ext>``
    directly in ``root`` (or below it); ids are the uniqueIDs, in canonical
    order, and every concept must be present.

    ``kind="full"``: the full image set, ``root/<uniqueID>/<file>``; ids are
    ``<uniqueID>/<file stem>``, ordered by canonical concept then file name,
    and :attr:`ImageSet.concepts` gives each image's concept index.

    Args:
        root: the image folder.
        kind: ``"reference"`` or ``"full"``.
        concept_ids: the canonical concept order (defaults to the 1854 THINGS
            uniqueIDs bundled with alignkit).

    Raises:
        InputError: missing folder or unknown ``kind``.
        DataError: a concept has no image (reference), an unknown concept
            folder (full), or a repeated image id.
    """
    root = Path(root)
    _require_dir(root, "THINGS image folder")
    order = list(concept_ids) if concept_ids is not None else _things_ids()
    index = {c: i for i, c in enumerate(order)}
    if kind == "reference":
        by_id: dict[str, Path] = {}
        for path in _walk_images(root):
            stem = path.stem
            if stem in index:
                if stem in by_id:
                    raise DataError(
                        f"{root}: two reference images for concept {stem!r}: "
                        f"{_rel(by_id[stem], root)} and {_rel(path, root)}"
                    )
                by_id[stem] = path
        missing = [c for c in order if c not in by_id]
        if missing:
            raise DataError(
                f"{root}: {len(missing)} of {len(order)} THINGS concepts have no reference image "
                f"(<uniqueID>.jpg), first: {', '.join(missing[:5])}"
            )
        return ImageSet(ids=order, paths=[by_id[c] for c in order], root=root, layout="things-reference")
    if kind == "full":
        entries: list[tuple[int, str, Path]] = []
        seen: set[str] = set()
        for path in _walk_images(root):
            rel = path.relative_to(root)
            if len(rel.parts) < 2:
                continue  # stray file at the top level
            concept = rel.parts[0]
            if concept not in index:
                raise DataError(f"{root / concept}: folder is not a THINGS concept uniqueID")
            sid = f"{concept}/{rel.with_suffix('').relative_to(concept).as_posix()}"
            if sid in seen:
                raise DataError(f"{root}: two images share the id {sid!r}")
            seen.add(sid)
            entries.append((index[concept], sid, path))
        if not entries:
            raise InputError(f"{root}: no image found in <uniqueID>/ sub-folders")
        entries.sort(key=lambda e: (e[0], e[1]))
        return ImageSet(
            ids=[e[1] for e in entries],
            paths=[e[2] for e in entries],
            root=root,
            layout="things-full",
            concepts=np.array([e[0] for e in entries], dtype=np.int32),
        )
    raise InputError(f"THINGS layout {kind!r}: expected 'reference' or 'full'")


def open_images(source: str | os.PathLike[str], layout: str = "auto", *,
                allow_outside_root: bool = False) -> ImageSet:
    """An image set from a folder or CSV file.

    Args:
        source: a folder or a ``.csv`` file.
        layout: ``auto`` (CSV for a ``.csv`` file, else folder), ``folder``,
            ``csv``, ``things`` (reference images) or ``things-full``.
        allow_outside_root: a CSV may name images outside its own folder
            (see :func:`from_csv`).
    """
    path = Path(source)
    if layout == "auto":
        layout = "csv" if path.suffix.lower() == ".csv" and not path.is_dir() else "folder"
    if layout == "folder":
        return from_folder(path)
    if layout == "csv":
        return from_csv(path, allow_outside_root=allow_outside_root)
    if layout in ("things", "things-reference"):
        return from_things(path, "reference")
    if layout == "things-full":
        return from_things(path, "full")
    raise InputError(f"--layout {layout!r}: expected auto, folder, csv, things or things-full")


# --------------------------------------------------------------------------- decoding


def load_rgb(path: str | os.PathLike[str], draft: int | None = None) -> Image.Image:
    """Read an image fully and return it as 8-bit RGB.

    Greyscale, 16-bit and float greyscale, RGBA (alpha dropped, as
    ``Image.convert("RGB")`` does), palette (with or without transparency),
    CMYK, YCbCr and LAB images are converted.

    Args:
        path: the image file.
        draft: if given, let the JPEG decoder scale the image down while
            decoding so that both sides stay at least this size (fast, used to
            verify files; not used for features).

    Raises:
        DataError: the file is missing, is not an image, is corrupt/truncated,
            or declares a size beyond PIL's decompression-bomb limit
            (``Image.MAX_IMAGE_PIXELS``).
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse both
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if draft is not None and img.format == "JPEG":
                    img.draft("RGB", (draft, draft))
                img.load()
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path}: image too large to decode safely ({_short(exc).split(', could be')[0]}; "
            "a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({_short(exc)})") from None
    except Exception as exc:  # decoders of corrupt files raise other kinds too
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {_short(exc)})") from None


def _short(exc: BaseException) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg.replace(str(Path.cwd()) + os.sep, "")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        arr = np.clip(arr >> 8 if arr.max(initial=0) > 255 else arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocess:
    """Resize, centre crop and normalise, as torchvision's classification presets do.

    The defaults are the ImageNet presets used by the paper (resize 256,
    bilinear with antialiasing, centre crop 224, ImageNet mean and std).

    Attributes:
        resize: length of the shorter side after resizing, or ``None`` to keep the size.
        crop: side of the centre crop, or ``None`` for no crop.
        interpolation: ``nearest``, ``bilinear``, ``bicubic``, ``lanczos``, ``box`` or ``hamming``.
        mean: per-channel mean subtracted after scaling pixels to ``[0, 1]``.
        std: per-channel standard deviation divided by.
    """

    resize: int | None = 256
    crop: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise InputError(
                f"interpolation {self.interpolation!r}: expected one of {', '.join(_INTERPOLATIONS)}"
            )
        for name in ("resize", "crop"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise InputError(f"--{name} {v!r}: expected a positive integer")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InputError("--mean and --std take three comma-separated numbers")
        if any(s <= 0 for s in self.std):
            raise InputError(f"--std {self.std}: every value must be positive")

    @classmethod
    def from_transform(cls, transform: Any) -> Preprocess | None:
        """The equivalent :class:`Preprocess` of a torchvision ``ImageClassification`` preset.

        Returns ``None`` for any other transform (it is then applied as is).
        """
        from torchvision.transforms._presets import ImageClassification

        if not isinstance(transform, ImageClassification) or transform.antialias is False:
            return None
        return cls(
            resize=int(transform.resize_size[0]),
            crop=int(transform.crop_size[0]),
            interpolation=str(transform.interpolation.value),
            mean=tuple(float(x) for x in transform.mean),  # type: ignore[arg-type]
            std=tuple(float(x) for x in transform.std),  # type: ignore[arg-type]
        )

    def replace(self, **changes: Any) -> Preprocess:
        """A copy with the given fields changed (``None`` values are ignored)."""
        from dataclasses import replace

        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def output_size(self) -> int | None:
        """The side of the square output, when it is fixed."""
        return self.crop

    def to_attrs(self) -> dict[str, Any]:
        """A JSON-able record of the preprocessing."""
        return {
            "kind": "resize-crop-normalize",
            "resize": self.resize,
            "crop": self.crop,
            "interpolation": self.interpolation,
            "antialias": True,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def pixels(self, img: Image.Image) -> torch.Tensor:
        """Resize and crop an RGB PIL image into a ``(3, H, W)`` ``uint8`` tensor."""
        import torchvision.transforms.functional as F
        from torchvision.transforms import InterpolationMode

        if self.resize is not None:
            img = F.resize(img, [self.resize], interpolation=InterpolationMode(self.interpolation),
                           antialias=True)
        if self.crop is not None:
            img = F.center_crop(img, [self.crop])
        return F.pil_to_tensor(img)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Scale a ``uint8`` batch to ``[0, 1]`` and normalise it, in float32.

        The arithmetic is that of torchvision's ``convert_image_dtype`` then
        ``normalize``, so results equal the reference transform bit for bit.
        """
        x = batch.to(torch.float32).div(255.0)  # a new tensor: the input is never modified
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return x.sub_(mean).div_(std)


# --------------------------------------------------------------------------- dataset


class ImageDataset(torch.utils.data.Dataset):
    """Decoded, preprocessed images for a data loader.

    Each item is ``(position, tensor, error)``. With a :class:`Preprocess` the
    tensor is ``uint8`` (normalised later, on the whole batch); with any other
    callable it is whatever the callable returns for the RGB PIL image. A file
    that cannot be read gives an all-zero tensor and the error message, so
    that the caller can stop with the path named (a worker's exception would
    arrive wrapped in a traceback).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Preprocess | Callable[[Image.Image], torch.Tensor],
        offset: int = 0,
        where: Sequence[str] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.where = list(where) if where is not None else [""] * len(self.paths)
        self.transform = transform
        self.offset = offset
        self._shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.paths) - self.offset

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        pos = i + self.offset
        try:
            img = load_rgb(self.paths[pos])
            if isinstance(self.transform, Preprocess):
                t = self.transform.pixels(img)
            else:
                t = self.transform(img)
                if not isinstance(t, torch.Tensor):
                    raise DataError(
                        f"{self.paths[pos]}: the transform returned {type(t).__name__}, not a tensor"
                    )
            self._shape = tuple(t.shape)
            return pos, t, ""
        except DataError as exc:
            return pos, self._blank(), self.where[pos] + str(exc)

    def _blank(self) -> torch.Tensor:
        if isinstance(self.transform, Preprocess) and self.transform.crop is not None:
            c = self.transform.crop
            return torch.zeros((3, c, c), dtype=torch.uint8)
        if self._shape is not None:
            return torch.zeros(self._shape)
        return torch.zeros((0,))


def collate(items: list[tuple[int, torch.Tensor, str]]) -> tuple[list[int], torch.Tensor | None, list[str]]:
    """Stack a batch; ``None`` for the tensor when an item failed and shapes differ."""
    positions = [it[0] for it in items]
    errors = [it[2] for it in items]
    tensors = [it[1] for it in items]
    if any(errors):
        shapes = {t.shape for t, e in zip(tensors, errors, strict=True) if not e}
        if len(shapes) == 1:
            shape = next(iter(shapes))
            dt = next(t.dtype for t, e in zip(tensors, errors, strict=True) if not e)
            tensors = [t if not e else torch.zeros(shape, dtype=dt) for t, e in zip(tensors, errors, strict=True)]
        else:
            return positions, None, errors
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise DataError(
            f"images of different sizes after preprocessing ({sorted(map(tuple, shapes))}); "
            "set --crop (or a transform with a fixed output size)"
        )
    return positions, torch.stack(tensors), errors


def _verify_one(path: Path, where: str = "") -> str:
    try:
        load_rgb(path, draft=64)
        return ""
    except DataError as exc:
        return where + str(exc)


def verify_images(images: ImageSet, workers: int = 0) -> ImageSet:
    """Decode every image once (JPEGs at reduced scale) and drop unreadable ones.

    Used by ``--skip-bad``: the ids of the store must be known before any
    feature is written, so bad files are found first. The returned set records
    them in :attr:`ImageSet.skipped`.

    Raises:
        InputError: no image could be read.
    """
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            errors = list(ex.map(_verify_one, images.paths, images.where()))
    else:
        errors = [_verify_one(p, w) for p, w in zip(images.paths, images.where(), strict=True)]
    keep = [i for i, e in enumerate(errors) if not e]
    skipped = [
        {"id": images.ids[i], "path": str(images.paths[i]), "error": e}
        for i, e in enumerate(errors) if e
    ]
    if not keep:
        raise InputError(f"{images.root}: none of the {len(images)} images could be read")
    return images.subset(keep, skipped) if skipped else images
