"""Public human data sets, one command away: ``alignkit data fetch NAME``.

Each :class:`PublicDataset` names the files of one published data set
(:class:`~alignkit.data.remote.RemoteFile`: URL, size, sha256 when known), what
it holds (``kind``), the reader that reads it (``format``, a name shared with
:mod:`alignkit.data`'s readers), its convention in one line, licence, citation,
and whether a password is needed. :func:`fetch_dataset` downloads the files
into the cache (:mod:`alignkit.data.remote`: mirror, offline, checksums and
resumable downloads all apply) and unpacks archives.

Every sha256 in the registry was computed from the published bytes (a git blob
at a pinned commit, or a digest published in public code beside the URL); the
others are ``None`` and are recorded on first download and checked ever after.
Where a file's URL could not be confirmed from public sources the entry says
so (``url_confirmed=False``): such a file is never downloaded from a guessed
address (unless ``ALIGNKIT_DATA_MIRROR`` serves it); the message says where to
get it by hand and the path to put it at, and the next fetch records its digest.

A fetched name works wherever a bundled name does (``--triplets
things-2023-train``): :func:`resolve_public` gives the cached, verified file, or
refuses with ``not fetched: run alignkit data fetch NAME``.

Passwords (the THINGS image zip) are taken from ``--password`` or
``ALIGNKIT_THINGS_PASSWORD`` and only ever passed to the zip reader: they are
not written to sidecars, logs, provenance or messages.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.data.remote import (
    RemoteFile,
    cache_dir,
    cached_path,
    checksum_status,
    fetch,
    is_offline,
    part_path,
    redact_url,
    resolve_url,
)
from alignkit.errors import DownloadError, InputError

__all__ = [
    "PASSWORD_ENV",
    "PublicDataset",
    "dataset_state",
    "fetch_dataset",
    "get_public",
    "is_public_name",
    "public_datasets",
    "reader_defaults",
    "register_public",
    "resolve_public",
    "unpacked_dir",
    "unregister_public",
]

#: Environment variable holding the THINGS image zip's password.
PASSWORD_ENV = "ALIGNKIT_THINGS_PASSWORD"

#: Host of the URL of a file whose address is not known: never fetched.
UNKNOWN_HOST = "https://unknown.invalid"

KINDS = ("triplets", "embedding", "rdm", "images", "transform", "table", "archive")


@dataclass(frozen=True)
class PublicDataset:
    """One public data set and how to get and read it.

    Attributes:
        name: registry name (``things-2023-train``).
        description: one line saying what it is.
        files: its files; the first is the one a name resolves to.
        kind: ``triplets``, ``embedding``, ``rdm``, ``images``, ``transform``,
            ``table`` or ``archive``.
        format: the reader that reads it (``things-2023-split``, ``spose-text``, ...).
        convention: index base, object order, which column is the odd one out.
        licence, citation: terms and reference.
        password: the files are a password-protected zip.
        url_confirmed: the URLs were found in public sources; when False they
            are guesses (or unknown) and are never fetched automatically.
        page: where to find the files by hand.
        note: anything else a user should know.
        things: the indices or rows are the 1854 THINGS concepts in canonical order.
        unpack: archives are unpacked into this cache folder (relative).
        from_archive: the name of an archive data set holding these files;
            fetching this data set fetches and unpacks that one.
        alt_urls: other addresses of the first file, tried in order when the
            first cannot be reached.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    kind: str
    format: str
    convention: str
    licence: str
    citation: str
    password: bool = False
    url_confirmed: bool = True
    page: str | None = None
    note: str = ""
    things: bool = False
    unpack: str | None = None
    from_archive: str | None = None
    alt_urls: tuple[str, ...] = ()

    @property
    def size(self) -> int | None:
        """Total size in bytes, or None when any file's size is not known."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    def checksum_status(self) -> str:
        """``known``, ``recorded on first download``, ``not known (...)`` or ``mixed: ...``."""
        states = sorted({checksum_status(f) for f in self.files})
        return states[0] if len(states) == 1 else "mixed: " + "; ".join(states)

    def cache_paths(self) -> list[Path]:
        """Where the files live in the cache (whether or not they are there)."""
        return [cached_path(f) for f in self.files]


_REGISTRY: dict[str, PublicDataset] = {}


def register_public(ds: PublicDataset, *, replace: bool = False) -> PublicDataset:
    """Add a data set to the registry (``replace`` to redefine a name).

    Raises:
        InputError: the name is taken (without ``replace``) or a bundled name,
            has no files, or an unknown kind.
    """
    from alignkit.data.bundled import ALIASES, BUNDLED

    if not ds.name or ds.name in BUNDLED or ds.name in ALIASES:
        raise InputError(f"public data set {ds.name!r}: the name is empty or a bundled name")
    if ds.name in _REGISTRY and not replace:
        raise InputError(f"public data set {ds.name!r} is registered already")
    if not ds.files:
        raise InputError(f"public data set {ds.name!r}: no files")
    if ds.kind not in KINDS:
        raise InputError(f"public data set {ds.name!r}: kind {ds.kind!r} is not one of "
                         f"{', '.join(KINDS)}")
    _REGISTRY[ds.name] = ds
    return ds


def unregister_public(name: str) -> PublicDataset:
    """Remove a data set from the registry (and return it)."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise InputError(f"no public data set {name!r}") from None


def _glocal_entries() -> list[PublicDataset]:
    """The gLocal transforms, from :mod:`alignkit.probe.published` (not duplicated here)."""
    from alignkit.probe.published import published_probes

    out = []
    for p in published_probes():
        if not p.name.startswith("glocal:"):
            continue
        out.append(PublicDataset(
            name=p.name, description=f"gLocal transform for {p.spec} / {p.layer} "
                                     f"({p.p} x {p.p}; alignkit probe import STORE {p.name})",
            files=(p.remote(),), kind="transform", format="glocal-npz",
            convention="x' = ((x - mean) / std) @ weights + bias, x the model's features"
                       + ("" if p.has_bias else " (this file has no bias: bias = 0)"),
            licence=p.licence, citation=p.citation, page=f"{p.url.rsplit('/raw/', 1)[0]}",
            note=p.note))
    return out


def public_datasets() -> tuple[PublicDataset, ...]:
    """Every registered data set, then the gLocal transforms."""
    return (*_REGISTRY.values(), *_glocal_entries())


def is_public_name(name: Any) -> bool:
    """Whether ``name`` is a registered data set (or gLocal transform) name."""
    if not isinstance(name, str):
        return False
    return name in _REGISTRY or any(d.name == name for d in _glocal_entries())


def get_public(name: str) -> PublicDataset:
    """A registered data set by name.

    Raises:
        InputError: no such name (with the closest registered one).
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    for d in _glocal_entries():
        if d.name == name:
            return d
    import difflib

    names = [d.name for d in public_datasets()]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"no public data set {name!r}{hint} (alignkit data fetch --list lists them)")


# ---- state, fetch, unpack

def unpacked_dir(ds: PublicDataset) -> Path | None:
    """The folder an archive data set is unpacked into, or None."""
    return cache_dir().joinpath(*ds.unpack.split("/")) if ds.unpack else None


def _marker(ds: PublicDataset) -> Path:
    """The record of an unpacked archive, beside its (first) zip."""
    zip_path = cached_path(ds.files[0])
    return zip_path.with_name(zip_path.name + ".unpacked.json")


def dataset_state(ds: PublicDataset) -> str:
    """``cached``, ``partial`` (some files, or a download cut short), or ``not fetched``."""
    have = [p.is_file() for p in ds.cache_paths()]
    folder = unpacked_dir(ds)
    if all(have) and (folder is None or _marker(ds).is_file()):
        return "cached"
    if any(have) or any(part_path(f).is_file() for f in ds.files):
        return "partial"
    return "not fetched"


def _hand_message(ds: PublicDataset, rf: RemoteFile) -> str:
    where = f"from {ds.page}" if ds.page else "from the publishers (see its citation)"
    guess = "" if urlsplit_host(rf.url) == "unknown.invalid" else f" (best guess {rf.url})"
    return (f"{ds.name}: the URL of {rf.name.rsplit('/', 1)[-1]} is not confirmed{guess}; "
            f"download it by hand {where} and put it at {cached_path(rf)}, then run "
            f"'alignkit data fetch {ds.name}' again to record its sha256")


def urlsplit_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


def _fetch_file(ds: PublicDataset, rf: RemoteFile, *, offline: bool | None, force: bool,
                progress: bool | None, first: bool) -> Path:
    path = cached_path(rf)
    mirror = bool(os.environ.get("ALIGNKIT_DATA_MIRROR", "").strip())
    if not ds.url_confirmed and not mirror and not path.is_file():
        raise DownloadError(_hand_message(ds, rf))
    if not ds.url_confirmed and not mirror:
        force = False  # a hand-made copy: nothing to download again from
    try:
        return fetch(rf, offline=offline, progress=progress, force=force)
    except DownloadError:
        if not first or not ds.alt_urls or is_offline(offline) or mirror:
            raise
    last: DownloadError | None = None
    for url in ds.alt_urls:
        alt = RemoteFile(rf.name, url, rf.sha256, rf.size, rf.licence, rf.citation)
        try:
            return fetch(alt, offline=offline, progress=progress, force=force)
        except DownloadError as exc:
            last = exc
    assert last is not None
    raise last


def fetch_dataset(ds: PublicDataset | str, *, offline: bool | None = None, force: bool = False,
                  password: str | None = None, progress: bool | None = None) -> list[Path]:
    """Download (or take from the cache) every file of a data set, verified.

    Archives with ``unpack`` are unpacked into their cache folder (once; again
    with ``force``). A data set ``from_archive`` fetches that archive and takes
    its files from the unpacked folder.

    Args:
        ds: the data set or its name.
        offline: never touch the network [default: ``ALIGNKIT_OFFLINE``].
        force: download again even when cached (checked against the known or
            recorded digest) and unpack again.
        password: the zip's password for a password-protected data set
            [default: ``$ALIGNKIT_THINGS_PASSWORD``]; never stored.
        progress: show progress bars [default: when stderr is a terminal].

    Returns:
        The cached paths of its files (the unpacked folder for an unpacked archive).

    Raises:
        DownloadError: offline and not cached, a failed download, an unconfirmed
            URL (with what to do by hand), or a password-protected zip without
            a password.
        ChecksumError: a file is not the known or recorded one (set aside).
        InputError: a wrong password or a damaged archive.
    """
    if isinstance(ds, str):
        ds = get_public(ds)
    if ds.from_archive is not None:
        return _fetch_from_archive(ds, offline=offline, force=force, password=password,
                                   progress=progress)
    paths = [_fetch_file(ds, rf, offline=offline, force=force, progress=progress, first=i == 0)
             for i, rf in enumerate(ds.files)]
    folder = unpacked_dir(ds)
    if folder is None:
        return paths
    if _marker(ds).is_file() and folder.is_dir() and not force:
        return [folder]
    if ds.password and password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    if ds.password and not password:
        raise DownloadError(
            f"{ds.name}: downloaded to {paths[0]} but not unpacked: the zip is password-"
            f"protected; give --password PW or set {PASSWORD_ENV} (the password is published "
            f"with the data set{', see ' + ds.page if ds.page else ''})")
    _unpack(ds, paths, folder, password)
    return [folder]


def _fetch_from_archive(ds: PublicDataset, *, offline: bool | None, force: bool,
                        password: str | None, progress: bool | None) -> list[Path]:
    have = all(p.is_file() for p in ds.cache_paths())
    if not have or force:
        archive = get_public(ds.from_archive)  # type: ignore[arg-type]
        try:
            fetch_dataset(archive, offline=offline, force=force, password=password,
                          progress=progress)
        except DownloadError as exc:
            if not have:
                missing = [str(p) for p in ds.cache_paths() if not p.is_file()]
                raise DownloadError(
                    f"{ds.name}: not in the cache ({', '.join(missing)}) and its archive "
                    f"{archive.name} cannot be had: {exc}") from None
            raise
    out = []
    for rf in ds.files:
        path = cached_path(rf)
        if not path.is_file():
            raise DownloadError(f"{ds.name}: the archive {ds.from_archive} holds no "
                                f"{rf.name.rsplit('/', 1)[-1]} (looked for {path}); "
                                "the member names are not confirmed")
        out.append(fetch(rf, offline=True))  # verified, or its digest recorded
    return out


def _unpack(ds: PublicDataset, paths: list[Path], folder: Path, password: str | None) -> None:
    """Unpack zip files into ``folder`` (via a temporary folder beside it); what the
    archives hold replaces the same names in ``folder``, anything else stays."""
    import zipfile

    from alignkit.provenance import sha256_file

    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.unpacking")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    pwd = password.encode("utf-8") if password else None
    n = 0
    try:
        for path in paths:
            try:
                with zipfile.ZipFile(path) as zf:
                    for info in zf.infolist():
                        parts = info.filename.replace("\\", "/").split("/")
                        if parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
                            continue
                        if info.filename.startswith("/") or ".." in parts:
                            raise InputError(f"{ds.name}: {path.name} holds an unsafe member "
                                             f"name {info.filename!r}; not unpacked")
                        encrypted = bool(info.flag_bits & 0x1)
                        try:
                            zf.extract(info, tmp, pwd=pwd if encrypted else None)
                        except RuntimeError as exc:  # zipfile's bad or missing password
                            text = str(exc).lower()
                            if "password" in text:
                                what = "wrong password" if pwd else "a password is needed"
                                raise InputError(
                                    f"{ds.name}: {what} for {path.name} (give --password PW "
                                    f"or set {PASSWORD_ENV})") from None
                            raise InputError(f"{ds.name}: cannot unpack {path.name}: "
                                             f"{type(exc).__name__}") from None
                        except zipfile.BadZipFile:
                            if not encrypted:
                                raise
                            # a wrong password can pass zipfile's one-byte check, then fail the CRC
                            raise InputError(f"{ds.name}: wrong password for {path.name} (give "
                                             f"--password PW or set {PASSWORD_ENV})") from None
                        except NotImplementedError:
                            raise InputError(
                                f"{ds.name}: {path.name} uses a zip encryption Python's zipfile "
                                f"cannot read; unpack it by hand into {folder}") from None
                        if not info.is_dir():
                            n += 1
            except zipfile.BadZipFile as exc:
                raise InputError(f"{ds.name}: {path} is not a readable zip ({exc}); delete it "
                                 "and fetch again") from None
        folder.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():  # replace what the archive holds, keep anything else
            target = folder / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(item, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    rec = {"name": ds.name, "unpacked_from": [str(p) for p in paths],
           "sha256": [sha256_file(p) for p in paths], "n_files": n,
           "unpacked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _marker(ds).write_text(json.dumps(rec, indent=1) + "\n")


# ---- names as sources

def resolve_public(name: str) -> Path:
    """The cached, verified file of a fetched data set (its first file).

    Raises:
        DownloadError: not fetched (``not fetched: run alignkit data fetch NAME``).
        ChecksumError: the cached copy is not the known or recorded one.
    """
    ds = get_public(name)
    rf = ds.files[0]
    if not cached_path(rf).is_file():
        raise DownloadError(f"{name}: not fetched: run alignkit data fetch {name}")
    return fetch(rf, offline=True)


def reader_defaults(source: Any, kind: str) -> dict[str, Any]:
    """What a reader should assume for a public data set name: ``{}`` for anything else.

    For THINGS data sets, ``n_objects`` (1854) and ``object_ids`` (``"things"``);
    always ``format``, the registry's format name (readers use it when they know it).
    """
    if not is_public_name(source):
        return {}
    ds = get_public(source)
    if ds.kind != kind:
        raise InputError(f"public data set {ds.name!r} is not a {kind} set (it is {ds.kind})")
    out: dict[str, Any] = {"format": ds.format}
    if ds.things:
        out.update(n_objects=1854, object_ids="things")
    return out


def describe(ds: PublicDataset) -> dict[str, Any]:
    """A JSON-able description: what ``alignkit data info NAME`` shows."""
    files = []
    for rf in ds.files:
        path = cached_path(rf)
        files.append({"name": rf.name, "url": rf.url, "fetched_from": redact_url(resolve_url(rf.url)),
                      "size": rf.size, "sha256": rf.sha256, "checksum": checksum_status(rf),
                      "cache_path": str(path), "cached": path.is_file()})
    folder = unpacked_dir(ds)
    return {
        "name": ds.name, "source": "fetchable", "kind": ds.kind, "format": ds.format,
        "description": ds.description, "convention": ds.convention, "licence": ds.licence,
        "citation": ds.citation, "password": ds.password, "url_confirmed": ds.url_confirmed,
        "page": ds.page, "note": ds.note, "state": dataset_state(ds),
        "checksum": ds.checksum_status(), "size": ds.size, "files": files,
        **({"unpacked_into": str(folder)} if folder is not None else {}),
        **({"from_archive": ds.from_archive} if ds.from_archive else {}),
    }


# ---- the registry

_THINGS_2019 = (
    "Hebart, M. N. et al. (2019). THINGS: A database of 1,854 object concepts and more than "
    "26,000 naturalistic object images. PLOS ONE 14(10): e0223792."
)
_THINGS_2020 = (
    "Hebart, M. N., Zheng, C. Y., Pereira, F. & Baker, C. I. (2020). Revealing the "
    "multidimensional mental representations of natural objects underlying human similarity "
    "judgements. Nature Human Behaviour 4, 1173-1185 (OSF z2784)."
)
_THINGS_2023 = (
    "Hebart, M. N. et al. (2023). THINGS-data, a multimodal collection of large-scale datasets "
    "for investigating object representations in human brain and behavior. eLife 12: e82580 "
    "(OSF f5rn6)."
)
_VICE = (
    "Muttenthaler, L., Zheng, C. Y., McClure, P., Vandermeulen, R. A., Hebart, M. N. & "
    "Pereira, F. (2022). VICE: Variational Interpretable Concept Embeddings. NeurIPS 2022."
)
_THINGSPLUS = (
    "Stoinski, L. M., Perkuhn, J. & Hebart, M. N. (2023). THINGSplus: New norms and metadata "
    "for the THINGS database of 1854 object concepts and 26,107 natural object images. "
    "Behavior Research Methods."
)
_KRIEGESKORTE = (
    "Kriegeskorte, N. et al. (2008). Matching categorical object representations in inferior "
    "temporal cortex of man and monkey. Neuron 60(6), 1126-1141"
)
_MUR = (
    "Mur, M. et al. (2013). Human object-similarity judgments reflect and transcend the "
    "primate-IT object representation. Frontiers in Psychology 4: 128"
)
_CICHY = (
    "Cichy, R. M., Kriegeskorte, N., Jozwik, K. M., van den Bosch, J. J. F. & Charest, I. "
    "(2019). The spatiotemporal neural dynamics underlying perceived similarity for real-world "
    "objects. NeuroImage 194, 12-24."
)
_KING = (
    "King, M. L., Groen, I. I. A., Steel, A., Kravitz, D. J. & Baker, C. I. (2019). Similarity "
    "judgments and cortical visual responses reflect different properties of object and scene "
    "categories in naturalistic images. NeuroImage 197, 368-382."
)
_PETERSON = (
    "Peterson, J. C., Abbott, J. T. & Griffiths, T. L. (2016). Adapting deep network features "
    "to capture psychological representations. CogSci 2016; and (2018) Evaluating (and "
    "improving) the correspondence between deep neural networks and human representations. "
    "Cognitive Science 42(8), 2648-2669."
)
_ALIGNET = (
    "Muttenthaler, L., Greff, K., Born, F., Spitzer, B., Kornblith, S., Mozer, M. C., "
    "Mueller, K.-R., Unterthiner, T. & Lampinen, A. K. (2025). Aligning machine and human "
    "visual representations across abstraction levels. Nature 647, 349-355."
)
_THINGS_TERMS = "public research data; terms of the THINGS-data release (Hebart et al. 2023)"
_RSA_COMMIT = "f1f83cadb7243492a1aae7460466e0f0140b20ac"
_RSA = f"https://github.com/rsagroup/rsatoolbox/raw/{_RSA_COMMIT}/demos/92imageData"
_VICE_COMMIT = "5f80103ef4c9eb29477c4cadb1c9c54476d59e97"
_SPLIT_NOTE = (
    "the split files are published inside the triplet_dataset folder of OSF f5rn6 (fetched "
    "as the archive things-2023-triplet-dataset, osf.io/n9u4a); their own URLs and the "
    "member names inside the archive are not confirmed"
)


def _rf(name: str, url: str, sha256: str | None = None, size: int | None = None) -> RemoteFile:
    return RemoteFile(name=name, url=url, sha256=sha256, size=size)


def _unknown(name: str) -> RemoteFile:
    """A file whose URL is not known: its address is a reserved, unreachable host."""
    return RemoteFile(name=name, url=f"{UNKNOWN_HOST}/{name}")


_SPLITS = (
    ("train", "trainset.txt", "the training split (90% of the modelling triplets)"),
    ("validation", "validationset.txt", "the validation split (10% of the modelling triplets)"),
    ("test1", "testset1.txt", "noise-ceiling test set 1"),
    ("test2", "testset2.txt", "noise-ceiling test set 2"),
    ("test2-repeat", "testset2_repeat.txt",
     "test set 2 answered again (repeated triplets: the within-subject noise ceiling)"),
    ("test3", "testset3.txt", "noise-ceiling test set 3"),
)

for _ds in (
    # -- THINGS odd-one-out, 2023 (OSF f5rn6)
    PublicDataset(
        name="things-2023-raw",
        description="all 4,699,160 THINGS odd-one-out judgments of 12,340 workers, as published "
                    "(triplets_large_final_correctednc_correctedorder.csv)",
        files=(_rf("things/2023/triplets_large_final_correctednc_correctedorder.csv",
                   "https://osf.io/download/h2smy/"),),
        kind="triplets", format="things-2023-raw",
        convention="tab separated with a header (image1 image2 image3 choice RT noise_ceiling "
                   "subject_id HIT_nr trial_nr age gender date time dataset); image indices "
                   "1-based; choice = the odd one out as published (read by the things-2023-raw "
                   "reader, which says what it assumes)",
        licence=_THINGS_TERMS, citation=_THINGS_2023, things=True,
        page="https://osf.io/f5rn6/",
        note="OSF file h2smy, named in public download scripts for this file; a third-party "
             "script pins sha256 68f2bbc330b17537881f81b1aa806fc2179b7accecc3a44d54fb25ae3de7f3e5 "
             "for it (not used here: recorded on first download)"),
    PublicDataset(
        name="things-2023-triplet-dataset",
        description="the triplet_dataset folder of THINGS-data as one zip: the raw CSV and the "
                    "derived split files (trainset, validationset, testset1-3, testset2_repeat)",
        files=(_rf("things/2023/triplet_dataset.zip", "https://osf.io/download/n9u4a/"),),
        kind="archive", format="zip",
        convention="unpacked into things/2023/ (folder triplet_dataset/); each file as its "
                   "own entry says",
        licence=_THINGS_TERMS, citation=_THINGS_2023, page="https://osf.io/f5rn6/",
        unpack="things/2023", things=True,
        note="OSF file n9u4a, fetched as a zip of triplet_dataset/ by public download scripts"),
    *(PublicDataset(
        name=f"things-2023-{key}",
        description=f"THINGS odd-one-out 2023, {what} ({fname})",
        files=(_unknown(f"things/2023/triplet_dataset/{fname}"),),
        kind="triplets", format="things-2023-split",
        convention="space separated, 3 columns, 0-based indices of the 1854 THINGS concepts, "
                   "odd one out in column 3 (object order: THINGS canonical, as the project's "
                   "data notes state for the release; not checked against the release here)",
        licence=_THINGS_TERMS, citation=_THINGS_2023 + " Splits as used with " + _VICE,
        url_confirmed=False, page="https://osf.io/f5rn6/", things=True,
        from_archive="things-2023-triplet-dataset", note=_SPLIT_NOTE)
      for key, fname, what in _SPLITS),
    PublicDataset(
        name="brainscore-validation",
        description="Brain-Score's Hebart2023 odd-one-out set: validationset.csv, 453,642 rows",
        files=(_unknown("things/brainscore/validationset.csv"),),
        kind="triplets", format="brainscore-validation",
        convention="comma separated with the header img1,img2,ooo; 0-based canonical THINGS "
                   "indices; ooo (the odd one out) is placed last",
        licence=_THINGS_TERMS, citation=_THINGS_2023 + " Benchmark: Brain-Score Hebart2023.",
        url_confirmed=False, things=True,
        page="https://github.com/brain-score/vision/tree/master/brainscore_vision/data/hebart2023",
        note="Brain-Score packages this CSV into its own assembly assy_Hebart2023.nc (sha1 "
             "90f66d37c202dcd1c74d82854efd4a1e8c5fe82e) on its S3 bucket; the CSV itself is "
             "not published at a confirmed URL"),
    # -- THINGS odd-one-out, 2020 (OSF z2784)
    PublicDataset(
        name="things-2020-test10",
        description="the 2020 THINGS odd-one-out test set: data1854_batch5_test10.txt",
        files=(_rf("things/2020/data1854_batch5_test10.txt", "https://osf.io/download/sd3f7/",
                   "789fb927c87538d29e0cf294793280cf5a77d45dc5fdd87cf8c726993397adb8"),),
        kind="triplets", format="things-2020-batch",
        convention="space separated, 3 columns, 0-based indices in the SPoSE analysis order "
                   "(the published MATLAB code adds 1 and remaps with variables/sortind.mat); "
                   "odd one out in column 3 according to the SPoSE analysis code (cblearn's "
                   "loader reads column 1 as the odd one out: check before relying on it)",
        licence="CC-BY 4.0", citation=_THINGS_2020, page="https://osf.io/z2784/",
        note="URL and sha256 as published in cblearn's THINGS loader; its object order is "
             "not assumed to be the canonical one, so give --object-ids when scoring it"),
    PublicDataset(
        name="things-2020-items",
        description="the 1854 THINGS items of the 2020 release: items1854names.tsv",
        files=(_rf("things/2020/items1854names.tsv", "https://osf.io/download/sz2ux/",
                   "03dbe77972f9466ff8baa0da604d9f5104f677bf77cc602faebfa03a290fb51c"),),
        kind="table", format="tsv",
        convention="tab separated with a header; one row per concept (Word, WordNet synset "
                   "and id, ..., uniqueID)",
        licence="CC-BY 4.0", citation=_THINGS_2020, page="https://osf.io/z2784/",
        note="URL and sha256 as published in cblearn's THINGS loader"),
    PublicDataset(
        name="spose-49d-text",
        description="SPoSE 49-dimensional embedding as published: spose_embedding_49d_sorted.txt "
                    "(the bundled spose-49d holds the same values)",
        files=(_rf("things/2020/spose_embedding_49d_sorted.txt", "https://osf.io/download/4pgk8/"),),
        kind="embedding", format="spose-text",
        convention="1854 rows (THINGS canonical order) x 49 space-separated non-negative floats, "
                   "trailing space",
        licence="CC-BY 4.0", citation=_THINGS_2020, things=True, page="https://osf.io/z2784/"),
    PublicDataset(
        name="spose-66d",
        description="SPoSE 66-dimensional embedding of THINGS-data: spose_embedding_66d_sorted.txt",
        files=(_unknown("things/2023/spose_embedding_66d_sorted.txt"),),
        kind="embedding", format="spose-text",
        convention="1854 rows (THINGS canonical order) x 66 space-separated non-negative floats",
        licence=_THINGS_TERMS, citation=_THINGS_2023, things=True, url_confirmed=False,
        page="https://osf.io/f5rn6/",
        note="public analysis code says it is downloadable from OSF f5rn6; the file's URL is "
             "not confirmed"),
    PublicDataset(
        name="vice-things",
        description="VICE embedding of the THINGS triplets: embeddings/things/final_embedding.npy",
        files=(_rf("things/vice/final_embedding.npy",
                   f"https://github.com/LukasMut/VICE/raw/{_VICE_COMMIT}/embeddings/things/"
                   "final_embedding.npy",
                   "6c596ec9fe6e135e3fd32207d4d1d5eb004e3cef3810d5cb40474b1996d5392f", 311600),),
        kind="embedding", format="vice-npy",
        convention="float32 .npy, 1854 rows (THINGS canonical order) x 42 non-negative dimensions",
        licence="GPL-3.0 (github.com/LukasMut/VICE)", citation=_VICE, things=True,
        page="https://github.com/LukasMut/VICE",
        note=f"sha256 computed from the git blob at commit {_VICE_COMMIT[:7]}"),
    PublicDataset(
        name="rdm48-mat",
        description="human dissimilarities of 48 THINGS objects as published: RDM48_triplet.mat "
                    "(the bundled rdm48 is a byte-for-byte copy)",
        files=(_rf("things/2020/RDM48_triplet.mat", f"{UNKNOWN_HOST}/things/2020/RDM48_triplet.mat",
                   "c08e207821fdba8d85e2d1018d89ca9a79afd106cc7db20506a69678528f094b", 8294),),
        kind="rdm", format="rdm48-mat",
        convention="MATLAB, key RDM48_triplet, 48 x 48 dissimilarities, rows in rdm48-order",
        licence="CC-BY 4.0", citation=_THINGS_2020, url_confirmed=False,
        page="https://osf.io/z2784/",
        note="sha256 computed from the copy bundled with alignkit; the file's URL on OSF z2784 "
             "is not confirmed"),
    PublicDataset(
        name="rdm48-splithalf",
        description="split-half versions of the 48-object RDM: RDM48_triplet_splithalf.mat",
        files=(_unknown("things/2020/RDM48_triplet_splithalf.mat"),),
        kind="rdm", format="rdm48-splithalf-mat",
        convention="MATLAB, keys RDM48_triplet_split1 and RDM48_triplet_split2, 48 x 48 each, "
                   "rows in rdm48-order",
        licence="CC-BY 4.0", citation=_THINGS_2020, url_confirmed=False,
        page="https://osf.io/z2784/", note="the file's URL on OSF z2784 is not confirmed"),
    # -- images
    PublicDataset(
        name="thingsplus-images",
        description="THINGSplus CC0 images: one freely licensed photograph per THINGS concept",
        files=(_rf("images/thingsplus/images_THINGSplus-CC0.zip", "https://osf.io/download/wb36u/"),),
        kind="images", format="images-zip",
        convention="a zip of JPEG files by concept; unpacked into images/thingsplus/",
        licence="CC0 1.0", citation=_THINGSPLUS, page="https://osf.io/jum2f/",
        unpack="images/thingsplus",
        note="OSF file wb36u, named in public notes as the THINGSplus CC0 image set"),
    PublicDataset(
        name="things-images",
        description="the THINGS object images (26,107 photographs of the 1854 concepts), "
                    "password-protected zip",
        files=(_rf("images/things/images_THINGS.zip", "https://osf.io/download/rdxy2/"),),
        kind="images", format="images-zip",
        convention="a password-protected zip of JPEG folders by concept; unpacked into "
                   "images/things/ with --password or ALIGNKIT_THINGS_PASSWORD",
        licence="THINGS database terms: academic research use; see osf.io/jum2f",
        citation=_THINGS_2019, password=True, page="https://osf.io/jum2f/",
        unpack="images/things",
        alt_urls=("https://things-initiative.org/uploads/THINGS/images.zip",),
        note="OSF file rdxy2 (named in public download scripts as the THINGS images zip); the "
             "things-initiative.org address is tried when OSF cannot be reached. The password "
             "is never stored"),
    # -- the 92-image set (Kriegeskorte et al. 2008), as redistributed by rsatoolbox
    PublicDataset(
        name="rdm92-behaviour",
        description="human similarity-judgment RDMs of the 92-image set (16 participants): "
                    "92_behavRDMs.mat",
        files=(_rf("rdm92/92_behavRDMs.mat", f"{_RSA}/92_behavRDMs.mat",
                   "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f", 982719),),
        kind="rdm", format="mat-rdm",
        convention="MATLAB struct array rdms_behav_92 (1 x 16) with fields RDM (92 x 92 "
                   "dissimilarities), name, color; average over participants",
        licence="MIT (rsatoolbox copy); data of Mur et al. 2013",
        citation=_MUR + "; " + _KRIEGESKORTE + ".", page="https://github.com/rsagroup/rsatoolbox",
        note=f"sha256 computed from the git blob at rsatoolbox commit {_RSA_COMMIT[:7]}"),
    PublicDataset(
        name="rdm92-brain",
        description="human IT fMRI RDMs of the 92-image set (4 subjects x 2 sessions): "
                    "92_brainRDMs.mat",
        files=(_rf("rdm92/92_brainRDMs.mat", f"{_RSA}/92_brainRDMs.mat",
                   "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c", 224663),),
        kind="rdm", format="mat-rdm",
        convention="MATLAB struct array RDMs (1 x 4 x 2) with fields RDM (92 x 92), name, color",
        licence="MIT (rsatoolbox copy)", citation=_KRIEGESKORTE + ".",
        page="https://github.com/rsagroup/rsatoolbox",
        note=f"sha256 computed from the git blob at rsatoolbox commit {_RSA_COMMIT[:7]}"),
    PublicDataset(
        name="rdm92-models",
        description="8 model RDMs of the 92-image set (animacy, monkeyIT, EVA, HMAX, V1, ...): "
                    "92_modelRDMs.mat",
        files=(_rf("rdm92/92_modelRDMs.mat", f"{_RSA}/92_modelRDMs.mat",
                   "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a", 333004),),
        kind="rdm", format="mat-rdm",
        convention="MATLAB struct array Models (1 x 8) with fields RDM (92 x 92), name, color; "
                   "key=<name> picks one",
        licence="MIT (rsatoolbox copy)", citation=_KRIEGESKORTE + ".",
        page="https://github.com/rsagroup/rsatoolbox",
        note=f"sha256 computed from the git blob at rsatoolbox commit {_RSA_COMMIT[:7]}"),
    # -- other human similarity data
    PublicDataset(
        name="cichy2019",
        description="Cichy et al. 2019 multi-arrangement judgments of 118 images: "
                    "judgments_general.mat",
        files=(_unknown("cichy2019/judgments_general.mat"),),
        kind="rdm", format="cichy2019",
        convention="MATLAB, key judgments: participants x 118 x 118 dissimilarities, averaged "
                   "over participants; images sorted by file name",
        licence="see the publication's data statement", citation=_CICHY, url_confirmed=False,
        page="https://doi.org/10.1016/j.neuroimage.2019.03.031",
        note="no public URL of the file was found"),
    PublicDataset(
        name="king2019",
        description="King et al. 2019 free-arrangement judgments of two stimulus sets: "
                    "BEHAVIOR.mat",
        files=(_unknown("king2019/BEHAVIOR.mat"),),
        kind="rdm", format="king2019",
        convention="MATLAB, BEHAVIOR[set][0,0]['pairwisedistances'][0,0]: participants x "
                   "condensed (pdist order) dissimilarities per set (set1, set2), averaged",
        licence="see the publication's data statement", citation=_KING, url_confirmed=False,
        note="no public URL of the file was found"),
    PublicDataset(
        name="peterson2018",
        description="Peterson et al. 2016/2018 pairwise similarity ratings, six domains of 120 "
                    "images (animals, automobiles, fruits, furniture, various, vegetables)",
        files=tuple(_unknown(f"peterson/{d}.mat") for d in (
            "animals", "automobiles", "fruits", "furniture", "various", "vegetables")),
        kind="rdm", format="peterson-mat",
        convention="MATLAB, one file per domain; the variable whose name contains 'sim' holds "
                   "similarities (converted with max(S) - S); images sorted by file name",
        licence="see the publication's data statement", citation=_PETERSON,
        url_confirmed=False, note="no public URL of the files was found; the file names are "
                                  "the domain names, put each at the path shown"),
    PublicDataset(
        name="alignet-valid",
        description="AligNet validation split: 10,000 synthetic odd-one-out triplets of "
                    "ImageNet images (alignet_valid.npz)",
        files=(_rf("alignet/alignet_valid.npz",
                   "https://storage.googleapis.com/alignet/data/release_1.1/alignet_valid.npz"),),
        kind="triplets", format="alignet-npz",
        convention="npz with filenames (n x 3 ImageNet file names), similarities (n x 3: s01, "
                   "s02, s12) and indices (n x 3, tfds imagenet2012); the odd one out is last",
        licence="CC-BY 4.0", citation=_ALIGNET, url_confirmed=False,
        page="https://storage.googleapis.com/alignet/data/release_1.1/index.html",
        note="the release index page is published; the file's own address is inferred from it"),
    PublicDataset(
        name="levels",
        description="the Levels data set: human odd-one-out judgments at coarse, fine and "
                    "class-boundary levels of abstraction",
        files=(_unknown("levels/Dataset_Levels.zip"),),
        kind="triplets", format="levels",
        convention="as published in the Dataset_Levels repository (read by the levels reader)",
        licence="see gin.g-node.org/fborn/Dataset_Levels", citation=_ALIGNET,
        url_confirmed=False, page="https://gin.g-node.org/fborn/Dataset_Levels",
        note="the repository is published; a download address of its files is not confirmed"),
):
    register_public(_ds)
del _ds
