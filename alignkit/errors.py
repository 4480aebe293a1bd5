"""The single exception hierarchy of alignkit.

Every error a user can cause (a bad file, row, option, id or store) is an
:class:`AlignkitError`. The command line prints such an error as one line and
exits with status 2; any other exception is a bug and exits with status 1.

Subclasses also derive from the matching built-in exception where one exists,
so ``except ValueError`` and ``except FileNotFoundError`` keep working for
callers who do not know alignkit's own classes.
"""

from __future__ import annotations

__all__ = [
    "AlignkitError",
    "InputError",
    "FormatError",
    "DataError",
    "MismatchError",
    "StoreError",
    "NotAStoreError",
    "EntryNotFoundError",
    "EntryExistsError",
    "IncompleteEntryError",
    "CorruptEntryError",
    "EntryReplacedError",
    "StoreInUseError",
    "ModelError",
    "WeightsUnavailableError",
    "DeviceError",
    "DownloadError",
    "ChecksumError",
]


class AlignkitError(Exception):
    """Base class of every error caused by user input or the environment.

    Attributes:
        exit_code: the status the command line exits with (2: bad input).
    """

    exit_code = 2


class InputError(AlignkitError, ValueError):
    """An argument, option or value is invalid."""


class FormatError(InputError):
    """A file's format is unknown or its content does not follow it."""


class DataError(InputError):
    """A file parses but its content is wrong (out-of-range index, NaN, repeat)."""


class MismatchError(InputError):
    """Two inputs do not fit together (ids, shapes, object counts)."""


class StoreError(AlignkitError):
    """A problem with an embedding store."""


class NotAStoreError(StoreError, FileNotFoundError):
    """The path is missing or is not an alignkit embedding store."""


class EntryNotFoundError(StoreError, KeyError):
    """The store has no entry for the requested model and layer."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class EntryExistsError(StoreError):
    """An entry already exists and overwriting was not requested."""


class IncompleteEntryError(StoreError):
    """An entry was never finished (an interrupted write)."""


class CorruptEntryError(StoreError):
    """An entry's data or metadata on disk is damaged: a checksum mismatch, an
    undecodable chunk, an unreadable ``zarr.json``, missing or repeated ids.

    Attributes:
        store: the store's path or URL.
        entry: ``"model/layer"`` (``"model/layer probe NAME"`` for a probe), or None.
        detail: what is wrong, without the store and entry names.
    """

    def __init__(self, message: str, *, store: str | None = None, entry: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.store = store
        self.entry = entry
        self.detail = detail if detail is not None else message


class EntryReplacedError(StoreError):
    """An entry was replaced or removed by another writer while it was being read."""


class StoreInUseError(StoreError):
    """Another process is writing the same entry (or creating the same store)."""


class ModelError(AlignkitError):
    """A model or layer cannot be found or built."""


class WeightsUnavailableError(ModelError):
    """Pretrained weights cannot be had (offline and not cached or given)."""


class DeviceError(AlignkitError):
    """The requested compute device is not available."""


class DownloadError(AlignkitError):
    """A remote file cannot be had: offline and not in the cache, or the download failed."""


class ChecksumError(DataError):
    """A downloaded or cached file's sha256 is not the published or recorded one."""
