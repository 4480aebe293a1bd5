"""Files fetched from the web into a per-user cache, verified by sha256.

A :class:`RemoteFile` names one file: where it lives in the cache (``name``),
where it is published (``url``), its sha256 when that is known, its size,
licence and citation. :func:`fetch` returns the path of a verified copy:

* the cache is ``$ALIGNKIT_DATA`` when set, else ``pooch.os_cache("alignkit")``
  (the platform's user cache folder, e.g. ``~/.cache/alignkit`` on Linux);
* ``$ALIGNKIT_DATA_MIRROR`` (a base URL) replaces the scheme and host of every
  URL, keeping its path: ``https://github.com/a/b/raw/c/f.npz`` is fetched from
  ``$ALIGNKIT_DATA_MIRROR/a/b/raw/c/f.npz``; a ``user:password@`` in it is sent as
  HTTP basic authentication and shown as ``user:***@`` in messages and sidecars;
* offline (``offline=True`` or ``ALIGNKIT_OFFLINE=1``) the network is never
  touched: a file not in the cache is a :class:`~alignkit.errors.DownloadError`
  whose one line names the URL to download by hand and the path to put it at;
* a known sha256 is checked on every use; a file that does not match is moved
  aside as ``<name>.corrupt`` and refused (:class:`~alignkit.errors.ChecksumError`);
* an unknown sha256 is recorded on first download (trust on first use) in the
  sidecar ``<name>.json`` and every later copy is checked against it.

The sidecar also records the URL, the size, whether the digest was published
or recorded, and when the file was fetched.

Downloads are resumable: bytes go to ``<name>.part`` beside the final path; a
transfer cut short is retried (and a later run resumes it) with an HTTP
``Range: bytes=N-`` header, appending when the server answers ``206 Partial
Content`` and starting over when it answers ``200`` (or with a range that does not
start where the file was cut). A ``.part`` is resumed only from the address it was
downloaded from (kept in ``<name>.part.url``). Only a complete, verified
file is renamed into place. The ``.part`` file is locked while one process
writes it, so two downloads of the same file do not interleave. A progress bar
(tqdm) goes to stderr when it is a terminal.
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
    "part_path",
    "redact_url",
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


def redact_url(url: str) -> str:
    """``url`` without the password of a ``user:password@`` part (shown as ``***``).

    What is shown in messages and written to sidecars; the password is only ever sent to
    the server (as HTTP basic authentication).
    """
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{user}:***@{host}" if user else host).geturl()


def _credentials(url: str) -> tuple[str, str | None]:
    """``(url without its user:password@ part, the Authorization header for it or None)``."""
    import base64
    from urllib.parse import unquote

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rsplit("@", 1)[-1]
    token = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    return (parts._replace(netloc=host).geturl(),
            "Basic " + base64.b64encode(token).decode("ascii"))


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
        if path != final:  # a fresh download: set aside; a verified cached copy stays in place
            bad = final.with_name(final.name + ".corrupt")
            os.replace(path, bad)
        else:
            bad = _set_aside(final)
        size = bad.stat().st_size
        raise ChecksumError(
            f"{rf.name}: sha256 {got} ({size} bytes) is not the {how} {want}"
            + (f" ({rf.size} bytes)" if rf.size is not None else "")
            + f"; moved aside to {bad} (from {url})"
        )
    return got, how


def fetch(rf: RemoteFile, *, offline: bool | None = None, progress: bool | None = None,
          timeout: float = 60.0, force: bool = False, retries: int = 3) -> Path:
    """A verified copy of ``rf`` in the cache: taken from it, else downloaded.

    Args:
        rf: the file.
        offline: never touch the network [default: ``ALIGNKIT_OFFLINE``].
        progress: show a progress bar on stderr [default: when stderr is a terminal].
        timeout: seconds to wait for the server to answer.
        force: download again even when a cached copy exists (the new copy is
            checked against the known or recorded digest before it replaces it).
        retries: how many times a transfer cut short is resumed before giving up.

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
    shown = redact_url(url)  # what messages and sidecars say: never a password
    if path.is_file() and not (force and not is_offline(offline)):
        digest, how = _verify(rf, path, shown)
        if rf.sha256 is None and _recorded(path) is None:  # put there by hand: trust on first use
            _write_sidecar(rf, path, shown, digest, how)
        return path
    if is_offline(offline):
        raise DownloadError(
            f"{rf.name}: not in the cache and offline (--offline or ALIGNKIT_OFFLINE=1); "
            f"download {shown} by hand and put it at {path}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(rf)
    try:
        _download(url, part, progress, timeout, rf, path, retries)
    except DownloadError:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()  # nothing to resume from
            _part_origin(part).unlink(missing_ok=True)
        raise
    _part_origin(part).unlink(missing_ok=True)
    digest, how = _verify(rf, part, shown)
    os.replace(part, path)
    _write_sidecar(rf, path, shown, digest, how)
    return path


def part_path(rf: RemoteFile) -> Path:
    """Where a download of ``rf`` in progress (or cut short) is kept: ``<name>.part``."""
    path = cached_path(rf)
    return path.with_name(path.name + ".part")


def _download(url: str, part: Path, progress: bool | None, timeout: float, rf: RemoteFile,
              path: Path, retries: int = 3) -> None:
    shown = redact_url(url)
    where = f"download {shown} by hand and put it at {path}"
    if urlsplit(url).scheme == "file":
        import shutil
        from urllib.request import url2pathname

        try:
            shutil.copyfile(url2pathname(urlsplit(url).path), part)
        except OSError as exc:
            raise DownloadError(f"{rf.name}: cannot copy {shown} ({exc}); {where}") from exc
        return
    show = sys.stderr.isatty() if progress is None else bool(progress)
    origin = _part_origin(part)
    with open(part, "ab") as fh:
        _lock(fh, rf, part)
        try:
            came_from = origin.read_text().strip() if origin.is_file() else None
        except OSError:
            came_from = ""
        if came_from is not None and came_from != shown:
            fh.truncate(0)  # bytes from another address: another copy, not to be joined to this one
        origin.write_text(shown + "\n")
        _http_to(fh, url, part, show, timeout, rf, where, retries)


def _part_origin(part: Path) -> Path:
    """Where the address a ``.part`` file was downloaded from is kept: ``<name>.part.url``."""
    return part.with_name(part.name + ".url")


def _lock(fh: Any, rf: RemoteFile, part: Path) -> None:
    """Hold an exclusive lock on the ``.part`` file (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(f"{rf.name}: another process is downloading it into {part}; "
                            "wait for it to finish") from None


def _total_from_range(value: str | None) -> int | None:
    """The full length in a ``Content-Range: bytes a-b/N`` (or ``bytes */N``) header."""
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def _start_from_range(value: str | None) -> int | None:
    """The first byte in a ``Content-Range: bytes a-b/N`` header, or None."""
    if not value:
        return None
    unit, _, rest = value.strip().partition(" ")
    head = rest.split("/", 1)[0].split("-", 1)[0].strip()
    return int(head) if unit.lower() == "bytes" and head.isdigit() else None


def _http_to(fh: Any, url: str, part: Path, show: bool, timeout: float, rf: RemoteFile,
             where: str, retries: int) -> None:
    """Fill ``fh`` (the locked ``.part``) from ``url``, resuming with ``Range`` when cut short."""
    import http.client
    import urllib.error
    import urllib.request

    from alignkit import __version__

    shown = redact_url(url)
    url, auth = _credentials(url)
    cuts = 0
    restarted = False
    while True:
        fh.seek(0, os.SEEK_END)
        have = fh.tell()
        headers = {"User-Agent": f"alignkit/{__version__}", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        req = urllib.request.Request(url, headers=headers)
        if auth is not None:  # not passed on to where a redirect points
            req.add_unredirected_header("Authorization", auth)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to send: complete, or not this file
                total = _total_from_range(exc.headers.get("Content-Range"))
                if total == have:
                    return
                if not restarted:
                    fh.truncate(0)
                    restarted = True
                    continue
            raise DownloadError(f"{rf.name}: {shown} answered HTTP {exc.code}; {where}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"{rf.name}: cannot download {shown} ({type(exc).__name__}: "
                                f"{reason}; no network?); {where}") from None
        with resp:
            first = (_start_from_range(resp.headers.get("Content-Range"))
                     if resp.status == 206 else None)
            if have and resp.status == 206 and first == have:
                start = have
                total = _total_from_range(resp.headers.get("Content-Range"))
            elif resp.status == 206 and first != 0:
                # a part that does not start where the file was cut (or says not where it
                # starts): appending it would corrupt the file; start over without Range
                if restarted:
                    raise DownloadError(f"{rf.name}: {shown} answered a Range request with bytes "
                                        f"that do not start at {have}; {where}")
                fh.truncate(0)
                restarted = True
                continue
            elif resp.status == 206:  # the part starts at byte 0: the file from its start
                fh.truncate(0)
                start = 0
                total = _total_from_range(resp.headers.get("Content-Range"))
            else:  # 200: the server sends the whole file; start over
                fh.truncate(0)
                start = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            got = start
            try:
                from tqdm import tqdm

                with tqdm(total=total, initial=start, unit="B", unit_scale=True,
                          unit_divisor=1024, desc=rf.name, disable=not show, file=sys.stderr,
                          leave=False) as bar:
                    while True:
                        block = resp.read(1 << 16)
                        if not block:
                            break
                        fh.write(block)
                        got += len(block)
                        bar.update(len(block))
                fh.flush()
                if total is not None and got < total:
                    raise http.client.IncompleteRead(b"", total - got)
            except (http.client.HTTPException, OSError) as exc:
                fh.flush()
                cuts += 1
                if cuts > retries:
                    raise DownloadError(
                        f"{rf.name}: the download of {shown} was cut short {cuts} times "
                        f"({type(exc).__name__}; {got} of {total if total is not None else '?'} "
                        f"bytes in {part}); run the command again to resume, or {where}"
                    ) from None
                time.sleep(min(0.2 * cuts, 2.0))
                continue
        return


def _write_sidecar(rf: RemoteFile, path: Path, url: str, digest: str, how: str) -> None:
    rec = {"name": rf.name, "url": rf.url, "fetched_from": url, "sha256": digest,
           "checksum": how, "size": path.stat().st_size,
           "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    side = _sidecar(path)
    tmp = side.with_name(f"{side.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, side)
