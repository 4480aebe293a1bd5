"""Results as data: an append-only JSON Lines table of scores and probes.

Every ``score`` and ``probe`` run can append its result, with provenance, to a
results table so that many runs over many models and layers can be compared
later (``alignkit report``) without re-running anything. The table is a JSON
Lines file, one record a line::

    {"format_version": 1, "kind": "ooo", "model": "vgg16", "layer": "classifier.3",
     "dataset": "things-test20k", "transform": null, "created": "2026-01-01T00:00:00+00:00",
     "result": {...}, "provenance": {...}, "model_attrs": {"imagenet_top1": 0.716}}

``kind`` is the name of a registered measure (:mod:`alignkit.measures`: ``"ooo"``,
odd-one-out accuracy, the result of ``OddOneOutResult.to_dict()``; ``"rsa"``,
``RSAResult.to_dict()``; and any measure registered since) or ``"probe"`` (a
linear probe's cross-validated summary). ``transform`` names the
probe transform applied to the features before scoring (None: the raw
features). ``model_attrs`` holds optional numeric facts about the model
(ImageNet accuracy, parameter count) that reports plot accuracy against.

The table of an embedding store is ``<store>/results.jsonl``, inside the store's
root folder, where Zarr ignores it. Appends are safe for concurrent writers on a
local filesystem: each record is one ``write`` of one line to a file opened with
``O_APPEND`` (under an advisory lock where the platform has one), then flushed
to disk.

A writer killed in the middle of an append (or a full disk) can leave a
partial last line. Such a line (the last line, not decodable as JSON) is never
read as a record and never glued to the next one: the next append or read
moves it into ``results.jsonl.corrupt`` beside the table (under the same lock
as appends) and says so in one warning on stderr; every whole record stays.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.errors import DataError, InputError
from alignkit.provenance import now_utc

__all__ = [
    "FORMAT_VERSION",
    "RESULTS_FILE",
    "CORRUPT_SUFFIX",
    "known_kinds",
    "DEFAULT_KEY",
    "ResultsTable",
    "record_from_result",
    "validate_record",
    "latest",
    "record_field",
]

#: Version of the record layout written by this module.
FORMAT_VERSION = 1
#: Name of the results table inside a store's root folder.
RESULTS_FILE = "results.jsonl"
#: Suffix of the side file that partial lines are moved into (``results.jsonl.corrupt``).
CORRUPT_SUFFIX = ".corrupt"
#: Kinds of record: odd-one-out accuracy, RSA, linear probe.
def known_kinds() -> tuple[str, ...]:
    """Record kinds: the names of the registered measures (:mod:`alignkit.measures`) and
    ``probe``."""
    from alignkit.measures import record_kinds

    return record_kinds()
#: Fields that identify "the same measurement" for :func:`latest`.
DEFAULT_KEY: tuple[str, ...] = ("kind", "model", "layer", "dataset", "transform")

_SCALAR_FIELDS = ("model", "layer", "dataset", "transform")


# --------------------------------------------------------------------------- JSON
def _plain(obj: Any) -> Any:
    """A strictly JSON-able copy: numpy scalars and arrays unwrapped, NaN and inf -> None."""
    from alignkit.provenance import jsonable

    return jsonable(obj, nonfinite="null", unknown="error", what="results record")


def _parse_time(value: Any) -> _dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.timezone.utc)


# --------------------------------------------------------------------------- records
def validate_record(
    record: Any, where: str = "record", *, error: type[InputError] = DataError
) -> dict:
    """Check one record's layout; return it unchanged.

    Args:
        record: the decoded record.
        where: how messages name it (``"results.jsonl line 3"``).
        error: the exception class raised (``DataError`` for files,
            ``InputError`` for records handed to :meth:`ResultsTable.append`).

    Raises:
        DataError: (or ``error``) the record is not an object, was written by a
            newer alignkit, has an unknown kind or a field of the wrong type.
    """
    if not isinstance(record, dict):
        raise error(f"{where}: a results record must be a JSON object, got {type(record).__name__}")
    version = record.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise error(f"{where}: 'format_version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise error(
            f"{where} was written by a newer alignkit (format {version}); this alignkit reads "
            f"format {FORMAT_VERSION}; upgrade alignkit"
        )
    kind = record.get("kind")
    kinds = known_kinds()
    if kind not in kinds:
        raise error(f"{where}: 'kind' must be one of {', '.join(kinds)} (the registered "
                    f"measures and probe); got {kind!r}")
    for name in _SCALAR_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise error(f"{where}: {name!r} must be a string or null, got {value!r}")
    if not isinstance(record.get("result"), dict):
        raise error(f"{where}: 'result' must be a JSON object")
    for name in ("provenance", "model_attrs"):
        if record.get(name) is not None and not isinstance(record[name], dict):
            raise error(f"{where}: {name!r} must be a JSON object or null")
    if _parse_time(record.get("created")) is None:
        raise error(f"{where}: 'created' must be an ISO 8601 time, got {record.get('created')!r}")
    return record


def _dataset_of(kind: str, result: Mapping[str, Any]) -> str | None:
    if result.get("dataset") is not None:
        return str(result["dataset"])
    if kind == "rsa" and result.get("reference") is not None:
        return str(result["reference"])
    prov = result.get("provenance")
    triplets = prov.get("triplets") if isinstance(prov, Mapping) else None
    if isinstance(triplets, Mapping) and triplets.get("source") is not None:
        return str(triplets["source"])
    if isinstance(result.get("triplets"), str):
        return str(result["triplets"])
    return None


def _transform_of(result: Mapping[str, Any]) -> str | None:
    value = result.get("transform")
    if value is None:
        prov = result.get("provenance")
        value = prov.get("transform") if isinstance(prov, Mapping) else None
    if isinstance(value, Mapping):  # a transform described by a dict: keep its name
        value = value.get("name") or value.get("probe")
    return None if value is None else str(value)


def record_from_result(kind: str, result: Any, **extra: Any) -> dict[str, Any]:
    """Build a results record from a result dict (or an object with ``to_dict()``).

    ``model``, ``layer``, ``dataset`` and ``transform`` default to the result's
    own fields (the dataset of an odd-one-out result is its triplets' source,
    that of an RSA result its reference); the result's ``provenance`` becomes
    the record's. Keyword arguments override these or add fields, e.g.
    ``model_attrs={"n_params": 138e6}`` or ``store="features.zarr"``.

    Args:
        kind: ``"ooo"``, ``"rsa"`` or ``"probe"``.
        result: the result as a dict, or an object with a ``to_dict()`` method.
        **extra: record fields to set (``model``, ``layer``, ``dataset``,
            ``transform``, ``created``, ``provenance``, ``model_attrs``, ...).

    Returns:
        A validated record, ready for :meth:`ResultsTable.append`.

    Example:
        >>> rec = record_from_result("probe", {"model": "vgg16", "layer": "classifier.3",
        ...                                   "accuracy": 0.61, "accuracy_sd": 0.004})
        >>> rec["kind"], rec["model"], rec["result"]["accuracy"]
        ('probe', 'vgg16', 0.61)
    """
    if kind not in known_kinds():
        raise InputError(f"record kind must be one of {', '.join(known_kinds())}; got {kind!r}")
    if not isinstance(result, Mapping):
        to_dict = getattr(result, "to_dict", None)
        if not callable(to_dict):
            raise InputError(
                f"a {kind} result must be a dict or have to_dict(), got {type(result).__name__}"
            )
        result = to_dict()
    body = _plain(result)
    prov = body.pop("provenance", None)
    provenance: dict[str, Any] = dict(prov) if isinstance(prov, dict) else {}
    extra_prov = extra.pop("provenance", None)
    if extra_prov:
        provenance.update(_plain(extra_prov))
    source = dict(result)
    record: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model": extra.pop("model", body.get("model")),
        "layer": extra.pop("layer", body.get("layer")),
        "dataset": extra.pop("dataset", _dataset_of(kind, source)),
        "transform": extra.pop("transform", _transform_of(source)),
        "created": extra.pop("created", None) or provenance.get("created") or now_utc(),
        "result": body,
        "provenance": provenance,
    }
    attrs = extra.pop("model_attrs", None)
    if attrs:
        record["model_attrs"] = _plain(attrs)
    record.update(_plain(extra))
    for name in _SCALAR_FIELDS:
        if record[name] is not None:
            record[name] = str(record[name])
    return validate_record(record, f"{kind} record", error=InputError)


def record_field(record: Mapping[str, Any], name: str) -> Any:
    """A record's field by name; dotted names reach into nested objects.

    ``record_field(rec, "result.similarity")`` is ``rec["result"]["similarity"]``; a
    missing field is None.
    """
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def latest(
    records: Iterable[Mapping[str, Any]],
    key: Sequence[str] | Callable[[Mapping[str, Any]], Any] = DEFAULT_KEY,
) -> list[dict[str, Any]]:
    """Keep the newest record per key.

    Args:
        records: records in file order.
        key: field names (dotted names reach into ``result`` and ``provenance``,
            see :func:`record_field`) or a function of a record returning a hashable key.

    Returns:
        One record per key, the one with the latest ``created`` time (the later
        line on equal times), in the order each key first appeared.
    """
    keyfunc: Callable[[Mapping[str, Any]], Any]
    if callable(key):
        keyfunc = key
    else:
        names = tuple(key)

        def keyfunc(rec: Mapping[str, Any]) -> Any:
            return tuple(json.dumps(record_field(rec, n), sort_keys=True) for n in names)

    best: dict[Any, tuple[_dt.datetime | None, Mapping[str, Any]]] = {}
    for rec in records:
        k = keyfunc(rec)
        t = _parse_time(rec.get("created"))
        old = best.get(k)
        if old is None or old[0] is None or t is None or t >= old[0]:
            best[k] = (t, rec)
    return [dict(rec) for _, rec in best.values()]


# --------------------------------------------------------------------------- table
def _local_store_path(store: Any) -> Path | None:
    """The local folder of a store given as a path, URL, EmbeddingStore or zarr store."""
    path = store
    if not isinstance(path, (str, os.PathLike)):
        path = getattr(path, "path", path)  # an EmbeddingStore
    if not isinstance(path, (str, os.PathLike)):
        root = getattr(path, "root", None)  # a zarr LocalStore
        if isinstance(root, (str, os.PathLike)):
            path = root
    if isinstance(path, os.PathLike):
        return Path(os.fspath(path))
    if isinstance(path, str):
        if path.startswith("file://"):
            return Path(path[len("file://") :])
        if "://" not in path:
            return Path(path)
    return None


class ResultsTable:
    """An append-only JSON Lines file of results records.

    Args:
        path: the ``.jsonl`` file (created on the first append).

    Example:
        >>> table = ResultsTable.for_store("features.zarr")            # doctest: +SKIP
        >>> table.append(record_from_result("ooo", result))            # doctest: +SKIP
        >>> [r["result"]["accuracy"] for r in table.records("ooo")]    # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: Partial lines set aside by the last :meth:`append` or :meth:`records`.
        self.set_aside = 0

    @property
    def corrupt_path(self) -> Path:
        """The side file partial lines are moved into (``<table>.corrupt``)."""
        return self.path.with_name(self.path.name + CORRUPT_SUFFIX)

    @classmethod
    def for_store(
        cls, store: Any, *, fallback_dir: str | os.PathLike[str] | None = None
    ) -> ResultsTable:
        """The results table of an embedding store.

        Args:
            store: a store path, ``file://`` URL, :class:`~alignkit.store.EmbeddingStore`
                or zarr ``LocalStore``.
            fallback_dir: for stores that are not local folders (``s3://...``,
                in-memory stores), where the table is kept instead, as
                ``<name>.results.jsonl``, since appends to object storage are not
                atomic (default: the current directory).

        Returns:
            ``<store>/results.jsonl`` for a local store.
        """
        local = _local_store_path(store)
        if local is not None:
            if local.exists() and not local.is_dir():
                raise InputError(f"{local}: is a file, not a store folder")
            return cls(local / RESULTS_FILE)
        url = store if isinstance(store, str) else getattr(store, "path", store)
        tail = str(url).rstrip("/").rsplit("/", 1)[-1] or "store"
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", tail)
        return cls(
            Path(fallback_dir if fallback_dir is not None else ".") / f"{name}.{RESULTS_FILE}"
        )

    def __repr__(self) -> str:
        return f"ResultsTable({os.fspath(self.path)!r})"

    def exists(self) -> bool:
        """Whether the file exists (a table without a file holds no records)."""
        return self.path.is_file()

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record as one line.

        ``format_version`` and ``created`` are filled in when missing. The line
        is written with a single ``write`` call on a descriptor opened with
        ``O_APPEND`` (and an exclusive ``flock`` where available), then
        ``fsync``-ed, so concurrent appenders never interleave or lose lines.

        Args:
            record: a record, e.g. from :func:`record_from_result`.

        Returns:
            The record as written.

        Raises:
            InputError: the record is invalid, or the file cannot be written.
        """
        rec = _plain(dict(record))
        rec.setdefault("format_version", FORMAT_VERSION)
        if not rec.get("created"):
            rec["created"] = now_utc()
        validate_record(rec, f"record for {self.path}", error=InputError)
        if rec["format_version"] != FORMAT_VERSION:
            raise InputError(
                f"record for {self.path}: this alignkit writes format {FORMAT_VERSION}, "
                f"not {rec['format_version']}"
            )
        line = (
            json.dumps(rec, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        ).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot open the results table for appending ({exc.strerror or exc})"
            ) from None
        try:
            _lock(fd)
            # A partial line left by a killed writer is set aside, never glued to this one;
            # a whole last record without its newline (edited by hand) gets one.
            self.set_aside, newline = self._repair_tail(fd)
            if newline:
                line = b"\n" + line
            try:
                written = os.write(fd, line)
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                written = -1
            if written != len(line):  # only on a full disk: say so rather than leave half a line
                raise InputError(
                    f"{self.path}: disk full, the result was not recorded (a partial line is set "
                    "aside on the next append); free some space and rerun the command"
                )
        finally:
            os.close(fd)  # closing releases the lock
        return rec

    def extend(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append several records (one line each); return how many."""
        n = 0
        for rec in records:
            self.append(rec)
            n += 1
        return n

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All records in file order, optionally only those of one ``kind``.

        A missing file holds no records. Blank lines are allowed. A partial last
        line (a writer killed mid-append: not decodable as JSON) is not a record:
        it is moved into :attr:`corrupt_path` (when the table is writable) and
        counted in one warning on stderr. Nothing else is skipped: any other line
        that is not valid JSON, not a valid record, or from a newer format raises.

        Raises:
            DataError: naming the file and the 1-based line number at fault.
            InputError: ``kind`` is unknown.
        """
        if kind is not None and kind not in known_kinds():
            raise InputError(f"kind must be one of {', '.join(known_kinds())}; got {kind!r}")
        self.set_aside = 0
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except IsADirectoryError:
            raise InputError(f"{self.path}: is a folder, not a results file") from None
        start, _ = _last_line(raw)
        if start is not None and _fragment(raw[start:]):
            raw = self._set_aside_on_read(raw, start)
        out: list[dict[str, Any]] = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            where = f"{self.path} line {number}"
            try:
                rec = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise DataError(f"{where}: not a valid JSON record ({msg})") from None
            validate_record(rec, where)
            if kind is None or rec["kind"] == kind:
                out.append(rec)
        return out

    def _set_aside_on_read(self, raw: bytes, start: int) -> bytes:
        """Move the partial last line out of the table (under the append lock); return the rest."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError:  # a read-only table: read around the fragment, leave the file as it is
            self.set_aside = 1
            _warn(f"{self.path}: its last line is a partial record (a write that did not "
                  "finish); read without it, the file is not writable so it stays")
            return raw[:start]
        try:
            _lock(fd)  # an append in progress finishes first; its line is then whole
            try:
                self.set_aside, _ = self._repair_tail(fd)
            except InputError as exc:  # no room for the side file: read around the fragment
                self.set_aside = 1
                _warn(f"{exc}; read without it")
            data = _read_at(fd, 0, os.fstat(fd).st_size)
            start, last = _last_line(data)
            return data[:start] if start is not None and _fragment(last) else data
        finally:
            os.close(fd)

    def _repair_tail(self, fd: int) -> tuple[int, bool]:
        """Under the lock: set a partial last line aside. Returns (lines set aside, needs newline).

        The fragment is appended to the side file and synced before the table is
        truncated, so a crash in between leaves it in both places, never in neither.
        """
        size = os.fstat(fd).st_size
        end = size
        start = 0
        tail = b""
        while end > 0:  # the last non-blank line
            stop = end - 1 if _read_at(fd, end - 1, 1) == b"\n" else end
            start = _line_start(fd, stop)
            tail = _read_at(fd, start, end - start)
            if tail.strip():
                break
            end = start
        if not tail.strip():
            return 0, False
        if not _fragment(tail):
            return 0, _read_at(fd, size - 1, 1) != b"\n"  # a whole record without its newline
        side = self.corrupt_path
        try:
            sfd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(
                f"{self.path}: its last line is a partial record and cannot be set aside "
                f"into {side} ({exc.strerror or exc})"
            ) from None
        try:
            piece = tail if tail.endswith(b"\n") else tail + b"\n"
            if os.write(sfd, piece) != len(piece):
                raise InputError(f"{side}: short write; disk full?")
            os.fsync(sfd)
        finally:
            os.close(sfd)
        os.ftruncate(fd, start)
        os.fsync(fd)
        _warn(f"{self.path}: set aside 1 partial record line ({len(tail.rstrip())} bytes, a "
              f"write that did not finish) into {side}")
        return 1, False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())


def _warn(message: str) -> None:
    sys.stderr.write(f"alignkit: warning: {message}\n")
    sys.stderr.flush()


def _fragment(line: bytes) -> bool:
    """Whether a (last) line is a partial record: not blank and not decodable as JSON."""
    if not line.strip():
        return False
    try:
        json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return True
    return False


def _last_line(raw: bytes) -> tuple[int | None, bytes]:
    """Start offset and bytes of the last non-blank line of ``raw`` (None if there is none)."""
    end = len(raw)
    while end > 0:
        stop = end - 1 if raw[end - 1:end] == b"\n" else end
        start = raw.rfind(b"\n", 0, stop) + 1
        if raw[start:end].strip():
            return start, raw[start:end]
        end = start
    return None, b""


def _read_at(fd: int, offset: int, length: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        piece = os.pread(fd, length - len(out), offset + len(out))
        if not piece:
            break
        out += piece
    return bytes(out)


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 if none)."""
    pos = end
    while pos > 0:
        lo = max(0, pos - 65536)
        block = _read_at(fd, lo, pos - lo)
        i = block.rfind(b"\n")
        if i >= 0:
            return lo + i + 1
        pos = lo
    return 0


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: O_APPEND alone
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # pragma: no cover - filesystems without flock
        pass
