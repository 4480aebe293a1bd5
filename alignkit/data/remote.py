"""Files fetched from the web into a per-user cache, verified by sha256.

A :class:`RemoteFile` names one file: where it lives in the cache (``name``),
where it is published (``url``), its sha256 when that is known, its size,
licence and citation. :func:`fetch` returns the path of a verified copy:

* the cache is ``$ALIGNKIT_DATA`` when set, else ``pooch.os_cache("alignkit")``
  (the platform's user cache folder, e.g. ``~/.cache/alignkit`` on Linux);
* ``$ALIGNKIT_DATA_MIRROR`` (a base URL) replaces the scheme and host of every
  URL, keeping its path: ``https://github.com/a/b/raw/c/f.npz`` is fetched from
  ``$ALIGNKIT_DATA_MIRROR/a/b/raw/c/f.npz``;
* offline (``offline=True`` or ``ALIGNKIT_OFFLINE=1``) the network is never
  touched: a file not in the cache is a :class:`~alignkit.errors.DownloadError`
  whose one line names the URL to download by hand and the path to put it at;
* a known sha256 is checked on every use; a file that does not match is moved
  aside as ``<name>.corrupt`` and refused (:class:`~alignkit.errors.ChecksumError`);
* an unknown sha256 is recorded on first download (trust on first use) in the
  sidecar ``<name>.json`` and every later copy is checked against it.

The sidecar also records the URL, the size, whether the digest was published
or recorded, and when the file was fetched. The download itself is pooch's
``HTTPDownloader`` (with a progress bar on stderr when it is a terminal).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alignkit.errors import ChecksumError, DownloadError, InputError

__all__ = [
    "RemoteFile",
    "cache_dir",
    "cached_path",
    "checksum_status",
    "fetch",
    "is_offline",
    "resolve_url",
]

#: Wording of the two kinds of digest, in sidecars, listings and stored attrs.
PUBLISHED = "known"  # given in the registry: published by the source, or computed from its file
RECORDED = "recorded on first download"


@dataclass(frozen=True)
class RemoteFile:
    """One file on the web and what is known about it.

    Attributes:
        name: its relative path in the cache (``/``-separated, no ``..``).
        url: where it is published.
        sha256: its lowercase hex sha256, or None when not known (then recorded
            on first download and checked ever after).
        size: its size in bytes, or None.
        licence: the terms it is published under.
        citation: what to cite when using it.
    """

    name: str
    url: str
    sha256: str | None = None
    size: int | None = None
    licence: str | None = None
    citation: str | None = None

    def __post_init__(self) -> None:
        parts = self.name.split("/")
        if not self.name or self.name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(f"remote file name {self.name!r}: must be a relative path without "
                             "'.' or '..' parts")
        if urlsplit(self.url).scheme not in ("http", "https", "file"):
            raise InputError(f"{self.name}: url {self.url!r} is not an http(s) or file URL")
        if self.sha256 is not None:
            d = self.sha256.lower()
            if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
                raise InputError(f"{self.name}: sha256 {self.sha256!r} is not 64 hex digits")
            object.__setattr__(self, "sha256", d)


def cache_dir() -> Path:
    """The cache folder: ``$ALIGNKIT_DATA``, else pooch's ``os_cache("alignkit")``."""
    env = os.environ.get("ALIGNKIT_DATA", "").strip()
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("alignkit"))


def cached_path(rf: RemoteFile) -> Path:
    """Where ``rf`` lives in the cache (whether or not it is there)."""
    return cache_dir().joinpath(*rf.name.split("/"))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``ALIGNKIT_OFFLINE`` is set (and not ``0``)."""
    if offline is not None:
        return bool(offline)
    return os.environ.get("ALIGNKIT_OFFLINE", "").strip() not in ("", "0")


def resolve_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$ALIGNKIT_DATA_MIRROR`` when set."""
    mirror = os.environ.get("ALIGNKIT_DATA_MIRROR", "").strip()
    if not mirror:
        return url
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return mirror.rstrip("/") + "/" + rest.lstrip("/")


def _recorded(path: Path) -> dict[str, Any] | None:
    side = _sidecar(path)
    if not side.is_file():
        return None
    try:
        rec = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ChecksumError(f"{side}: unreadable record of the file's sha256 ({exc}); "
                            "delete it to record the digest again") from exc
    if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
        raise ChecksumError(f"{side}: no sha256 in the record; delete it to record the digest "
                            "again")
    return rec


def checksum_status(rf: RemoteFile) -> str:
    """``published`` (a known digest), ``recorded on first download`` (an unknown one,
    recorded in this cache), or ``not known (recorded on first download)``."""
    if rf.sha256 is not None:
        return PUBLISHED
    try:
        rec = _recorded(cached_path(rf))
    except ChecksumError:
        rec = None
    return RECORDED if rec is not None else f"not known ({RECORDED})"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _set_aside(path: Path) -> Path:
    bad = path.with_name(path.name + ".corrupt")
    os.replace(path, bad)
    return bad


def _verify(rf: RemoteFile, path: Path, url: str) -> tuple[str, str]:
    """Check ``path`` against the known or recorded digest; ``(sha256, how)``.

    With neither, the digest is returned as one to record. A mismatch moves the
    file aside and raises :class:`ChecksumError`.
    """
    got = _sha256(path)
    rec = None if rf.sha256 is not None else _recorded(cached_path(rf))
    want, how = (rf.sha256, PUBLISHED) if rf.sha256 is not None else (
        (rec["sha256"], RECORDED) if rec is not None else (None, RECORDED))
    if want is not None and got != want:
        final = cached_path(rf)
        if path != final:  # a fresh download: it takes the cached copy's place as the bad one
            os.replace(path, final)
        bad = _set_aside(final)
        size = bad.stat().st_size
        raise ChecksumError(
            f"{rf.name}: sha256 {got} ({size} bytes) is not the {how} {want}"
            + (f" ({rf.size} bytes)" if rf.size is not None else "")
            + f"; moved aside to {bad} (from {url})"
        )
    return got, how


def fetch(rf: RemoteFile, *, offline: bool | None = None, progress: bool | None = None,
          timeout: float = 60.0) -> Path:
    """A verified copy of ``rf`` in the cache: taken from it, else downloaded.

    Args:
        rf: the file.
        offline: never touch the network [default: ``ALIGNKIT_OFFLINE``].
        progress: show a progress bar on stderr [default: when stderr is a terminal].
        timeout: seconds to wait for the server to answer.

    Returns:
        The path of the cached file.

    Raises:
        DownloadError: offline and not cached, or the download failed (the
            message names the URL and the path to put a hand-made copy at).
        ChecksumError: the file's sha256 is not the published or recorded one
            (the file is moved aside as ``<name>.corrupt``).
    """
    path = cached_path(rf)
    url = resolve_url(rf.url)
    if path.is_file():
        digest, how = _verify(rf, path, url)
        if rf.sha256 is None and _recorded(path) is None:  # put there by hand: trust on first use
            _write_sidecar(rf, path, url, digest, how)
        return path
    if is_offline(offline):
        raise DownloadError(
            f"{rf.name}: not in the cache and offline (--offline or ALIGNKIT_OFFLINE=1); "
            f"download {url} by hand and put it at {path}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        _download(url, part, progress, timeout, rf, path)
        digest, how = _verify(rf, part, url)
        os.replace(part, path)
    finally:
        if part.exists():
            part.unlink()
    _write_sidecar(rf, path, url, digest, how)
    return path


def _download(url: str, part: Path, progress: bool | None, timeout: float, rf: RemoteFile,
              path: Path) -> None:
    import pooch
    import requests

    show = sys.stderr.isatty() if progress is None else bool(progress)
    where = f"download {url} by hand and put it at {path}"
    if urlsplit(url).scheme == "file":
        import shutil
        from urllib.request import url2pathname

        try:
            shutil.copyfile(url2pathname(urlsplit(url).path), part)
        except OSError as exc:
            raise DownloadError(f"{rf.name}: cannot copy {url} ({exc}); {where}") from exc
        return
    try:
        pooch.HTTPDownloader(progressbar=show, timeout=timeout)(url, str(part), None)
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"{rf.name}: {url} answered HTTP {code}; {where}") from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DownloadError(f"{rf.name}: cannot download {url} "
                            f"({type(exc).__name__}); {where}") from exc


def _write_sidecar(rf: RemoteFile, path: Path, url: str, digest: str, how: str) -> None:
    rec = {"name": rf.name, "url": rf.url, "fetched_from": url, "sha256": digest,
           "checksum": how, "size": path.stat().st_size,
           "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    side = _sidecar(path)
    tmp = side.with_name(f"{side.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, side)
