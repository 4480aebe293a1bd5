"""THINGS image sets: a folder, or the password-protected zip read in place.

:func:`read_images_folder` and :func:`read_images_zip` return an
:class:`ImageCollection`: one entry per image with its THINGS concept (the image's
folder when that is a concept uniqueID, else the file name's concept prefix:
``aardvark_01b.jpg`` -> ``aardvark``). Images in a zip are decoded straight from the
archive (``zipfile`` with the password; nothing is extracted). The password is taken
from ``password=`` or the environment variable named by ``password_env`` (default
``ALIGNKIT_THINGS_PASSWORD``); it is kept in memory only, never written to a result,
a convention, a log or a file.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from alignkit.errors import DataError, FormatError, InputError

__all__ = ["ImageCollection", "read_images_folder", "read_images_zip", "PASSWORD_ENV"]

#: Environment variable the THINGS zip password is read from by default.
PASSWORD_ENV = "ALIGNKIT_THINGS_PASSWORD"

_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageCollection:
    """Images with their THINGS concepts, from a folder or a zip archive.

    Attributes:
        source: the folder or zip file.
        layout: ``"folder"`` or ``"zip"``.
        names: the image paths (relative to the folder, or zip member names), sorted.
        concepts: the THINGS uniqueID of each image (None where no concept is named).
        convention: how the source was read.
    """

    source: str
    layout: str
    names: list[str]
    concepts: list[str | None]
    convention: str
    _password: bytes | None = field(default=None, repr=False)
    _zip: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def concept_ids(self) -> list[str]:
        """The THINGS concepts that have at least one image, in canonical order."""
        from alignkit.data.readers import _things_index

        index = _things_index()
        return sorted({c for c in self.concepts if c is not None}, key=index.__getitem__)

    def reference(self) -> tuple[list[str], list[int]]:
        """One image per concept: ``(concept ids in canonical order, positions in names)``.

        A concept's image is the first of its images by name (THINGS names its images
        ``<concept>_01b.jpg``, ``<concept>_02s.jpg``, ...).
        """
        first: dict[str, int] = {}
        for i, c in enumerate(self.concepts):
            if c is not None and c not in first:
                first[c] = i
        ids = self.concept_ids
        return ids, [first[c] for c in ids]

    def open(self, i: int) -> Any:
        """Image ``i`` decoded as 8-bit RGB (``PIL.Image``), read from the archive in place."""
        from PIL import Image

        name = self.names[i]
        try:
            if self.layout == "zip":
                data = self._archive().read(name, pwd=self._password)
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    return img.convert("RGB")
            with Image.open(Path(self.source) / name) as img:
                img.load()
                return img.convert("RGB")
        except RuntimeError as exc:  # zipfile: bad or missing password
            raise InputError(f"{self.source}: cannot decrypt {name}: {_no_secret(exc)}; "
                             f"give the password (environment variable {PASSWORD_ENV})") from None
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise DataError(f"{self.source}: cannot read image {name} ({_no_secret(exc)})") from None

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.source)
        return self._zip

    def dataset(self, positions: list[int] | None = None) -> Any:
        """A map-style ``torch`` dataset of PIL images (for ``extract_features``), in
        ``positions`` order."""
        import torch

        class _Images(_ImageItems, torch.utils.data.Dataset):
            pass

        return _Images(self, list(range(len(self))) if positions is None else list(positions))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (never the password)."""
        return {
            "kind": "images",
            "source": self.source,
            "layout": self.layout,
            "n_images": len(self),
            "n_concepts": len(self.concept_ids),
            "without_concept": sum(c is None for c in self.concepts),
            "first": self.names[:3],
            "convention": self.convention,
        }


class _ImageItems:
    """Images of a collection by position (a map-style dataset of PIL images)."""

    def __init__(self, coll: ImageCollection, positions: list[int]) -> None:
        self.coll, self.positions = coll, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> Any:
        return self.coll.open(self.positions[k])


def _no_secret(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _concept_of(name: str, index: dict[str, int]) -> str | None:
    from alignkit.data.readers import image_concept

    parts = PurePosixPath(name).parts
    if len(parts) >= 2 and parts[-2] in index:
        return parts[-2]
    return image_concept(parts[-1], index)


def read_images_folder(source: Any) -> ImageCollection:
    """A THINGS image folder: ``<concept>/<concept>_01b.jpg`` (one folder per concept, any
    depth above it) or images named by concept (``aardvark.jpg``, ``aardvark_01b.jpg``)."""
    from alignkit.data.readers import _things_index

    root = Path(source)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of THINGS images")
    index = _things_index()
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in _EXTS and not p.name.startswith("."))
    if not names:
        raise InputError(f"{root}: no image found")
    concepts = [_concept_of(n, index) for n in names]
    coll = ImageCollection(str(root), "folder", names, concepts, "")
    coll.convention = (
        f"THINGS image folder: {len(names)} images; concept = the image's folder when it is a "
        "THINGS uniqueID, else the file name's concept prefix (aardvark_01b.jpg -> aardvark); "
        f"{len(coll.concept_ids)} concepts"
    )
    return coll


def read_images_zip(source: Any, *, password: str | bytes | None = None,
                    password_env: str = PASSWORD_ENV) -> ImageCollection:
    """The THINGS image zip read in place (ZipCrypto or unencrypted; nothing is extracted).

    Args:
        source: the ``.zip`` file.
        password: the archive's password; default the environment variable ``password_env``.
            The password is checked on the first encrypted image and kept in memory only.

    Raises:
        FormatError: not a zip archive.
        InputError: the archive is encrypted and no (or a wrong) password was given.
    """
    from alignkit.data.readers import _things_index

    path = Path(source)
    if not path.is_file():
        raise InputError(f"{path}: no such zip file")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FormatError(f"{path}: not a zip archive ({exc})") from None
    infos = [i for i in zf.infolist() if not i.is_dir() and PurePosixPath(i.filename).suffix.lower() in _EXTS
             and not PurePosixPath(i.filename).name.startswith(".")
             and "__MACOSX" not in PurePosixPath(i.filename).parts]
    if not infos:
        raise InputError(f"{path}: no image in the archive")
    infos.sort(key=lambda i: i.filename)
    encrypted = any(i.flag_bits & 0x1 for i in infos)
    pwd = password if password is not None else os.environ.get(password_env)
    pwd_b = pwd.encode() if isinstance(pwd, str) else pwd
    if encrypted:
        if not pwd_b:
            raise InputError(f"{path}: the archive is password-protected; set the environment "
                             f"variable {password_env} (or pass password=)")
        first = min((i for i in infos if i.flag_bits & 0x1), key=lambda i: i.file_size)
        try:
            with zf.open(first, pwd=pwd_b) as fh:
                while fh.read(1 << 20):  # to the end: the CRC is checked there, as one header
                    pass  # byte lets about 1 wrong password in 256 through
        except RuntimeError:
            raise InputError(f"{path}: wrong password for the archive") from None
        except (zipfile.BadZipFile, zlib.error):
            raise InputError(f"{path}: wrong password for the archive (or the archive is "
                             f"damaged: {first.filename} does not decrypt to its checksum)") from None
        except NotImplementedError as exc:
            raise FormatError(f"{path}: unsupported zip encryption ({exc}); Python reads "
                              "ZipCrypto archives only") from None
    index = _things_index()
    names = [i.filename for i in infos]
    concepts = [_concept_of(n, index) for n in names]
    coll = ImageCollection(str(path), "zip", names, concepts, "", pwd_b if encrypted else None, zf)
    coll.convention = (
        f"THINGS image zip read in place ({'password-protected, ZipCrypto' if encrypted else 'unencrypted'}; "
        f"images decoded from the archive, nothing extracted): {len(names)} images; concept = the "
        "image's folder when it is a THINGS uniqueID, else the file name's concept prefix; "
        f"{len(coll.concept_ids)} concepts"
    )
    return coll
