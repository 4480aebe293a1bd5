"""``alignkit data``: list the bundled human data and show how a file is read."""

from __future__ import annotations

import re
from typing import Any

import click

from alignkit.commands._output import emit, format_option

KINDS = ("auto", "triplets", "rdm", "embedding", "concepts")
_INT = re.compile(r"^[+-]?\d+$")


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


@click.group()
def data() -> None:
    """Human data: bundled samples, public data sets to fetch, and how files are read.

    \b
    Examples:
      alignkit data ls
      alignkit data fetch --list
      alignkit data fetch things-2020-test10
      alignkit data info things-test20k
      alignkit data info triplets.tsv --format json
    """


@data.command("ls")
@format_option
def data_ls(fmt: str) -> None:
    """List the data usable wherever a file is expected, with their paths.

    Three kinds of rows (column 'source'): bundled data sets (shipped with
    alignkit), fetchable public data sets ('alignkit data fetch NAME'; the path
    is where the cache holds them, and 'state' says whether they are there),
    and the sample images used by the demo.

    \b
    Example:
      alignkit data ls --format json
    """
    from alignkit.data.bundled import BUNDLED, SAMPLE_IMAGES, bundled_path
    from alignkit.data.public import dataset_state, public_datasets, unpacked_dir

    rows: list[dict[str, Any]] = []
    payload: list[dict[str, Any]] = []
    for name, item in BUNDLED.items():
        path = bundled_path(name)
        size = path.stat().st_size
        row = {"source": "bundled", "name": name, "kind": item.kind, "size": _human_size(size),
               "state": "bundled", "path": str(path), "description": item.description}
        rows.append(row)
        payload.append({**row, "bytes": size, "file": item.file, "citation": item.citation,
                        "licence": item.licence})
    for ds in public_datasets():
        folder = unpacked_dir(ds)
        where = folder if folder is not None else ds.cache_paths()[0]
        row = {"source": "fetchable", "name": ds.name, "kind": ds.kind,
               "size": _human_size(ds.size) if ds.size is not None else "?",
               "state": dataset_state(ds), "path": str(where), "description": ds.description}
        rows.append(row)
        payload.append({**row, "bytes": ds.size, "citation": ds.citation, "licence": ds.licence,
                        "url_confirmed": ds.url_confirmed, "checksum": ds.checksum_status()})
    for img in sorted(p for p in SAMPLE_IMAGES.iterdir() if p.is_file()):
        size = img.stat().st_size
        row = {"source": "sample image", "name": img.stem, "kind": "image",
               "size": _human_size(size), "state": "bundled", "path": str(img),
               "description": "sample photograph (scikit-image; see sample_data/README.md)"}
        rows.append(row)
        payload.append({**row, "bytes": size})
    emit(rows, fmt, payload=payload)


@data.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--list", "list_", is_flag=True,
              help="List the fetchable data sets: kind, size, licence, checksum, cached or not.")
@click.option("--offline", is_flag=True,
              help="Never touch the network (also ALIGNKIT_OFFLINE=1): only check the cache.")
@click.option("--password", default=None, metavar="PW",
              help="Password of a password-protected zip (the THINGS images); also "
                   "ALIGNKIT_THINGS_PASSWORD. Never stored.")
@click.option("--force", is_flag=True,
              help="Download again even when cached (checked against the known or recorded "
                   "sha256) and unpack again.")
@format_option
def data_fetch(names: tuple[str, ...], list_: bool, offline: bool, password: str | None,
               force: bool, fmt: str) -> None:
    """Download public data sets (NAMES) into the cache, verified and resumable.

    The cache is $ALIGNKIT_DATA (else the user cache folder);
    $ALIGNKIT_DATA_MIRROR replaces the scheme and host of every URL. A known
    sha256 is checked on every use; an unknown one is recorded on first
    download and checked ever after. A download cut short resumes where it
    stopped. A fetched name then works wherever a file is expected, e.g.
    'alignkit score ooo feats.zarr --triplets things-2023-train'. Entries whose
    URL is not confirmed are never downloaded from a guessed address: the
    message says where to get the file by hand and where to put it.

    \b
    Examples:
      alignkit data fetch --list
      alignkit data fetch things-2020-test10 vice-things
      alignkit data fetch things-images --password PW
      alignkit data fetch rdm92-models --offline
    """
    from alignkit.data.public import fetch_dataset, get_public, public_datasets

    if list_:
        rows, payload = [], []
        for ds in public_datasets():
            from alignkit.data.public import dataset_state

            rows.append({"name": ds.name, "kind": ds.kind,
                         "size": _human_size(ds.size) if ds.size is not None else "?",
                         "licence": ds.licence, "checksum": ds.checksum_status(),
                         "state": dataset_state(ds),
                         "url": "from public code" if ds.url_confirmed else "not confirmed",
                         "password": ds.password})
            payload.append({**rows[-1], "bytes": ds.size, "url_confirmed": ds.url_confirmed,
                            "format": ds.format, "description": ds.description})
        emit(rows, fmt, payload=payload)
        return
    if not names:
        raise click.UsageError("give one or more data set names, or --list")
    datasets = [get_public(n) for n in names]  # every name checked before any download
    done: list[dict[str, Any]] = []
    for ds in datasets:
        paths = fetch_dataset(ds, offline=True if offline else None, force=force,
                              password=password)
        for p in paths:
            done.append({"name": ds.name, "path": str(p), "checksum": ds.checksum_status()})
            if fmt == "table":
                click.echo(f"{ds.name}: {p} (sha256 {ds.checksum_status()}; verified)")
    if fmt != "table":
        emit(done, fmt)


def guess_kind(source: str) -> str:
    """Guess whether a file holds triplets, an RDM, an embedding or a concept table.

    Bundled names carry their kind; ``.mat`` files are RDMs; a ``.tsv`` whose
    header names a ``uniqueID`` column is a concept table; an integer table with
    3 or 5 columns is triplets; a square float table (or a 1-D vector) is an
    RDM; any other float table is an embedding.
    """
    import numpy as np

    from alignkit.data.bundled import BUNDLED, resolve_source
    from alignkit.errors import FormatError

    path, name = resolve_source(source)
    if name is not None:
        kind = BUNDLED[name].kind
        return kind if kind in KINDS else "list"
    ext = path.suffix.lower()
    if ext == ".mat":
        return "rdm"
    if ext in (".npy", ".npz"):
        if ext == ".npz":
            return "embedding"
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FormatError(f"{path}: not a plain numeric .npy array ({exc})") from None
        if arr.ndim == 2 and arr.shape[1] == 3 and arr.dtype.kind in "iu":
            return "triplets"
        if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == arr.shape[1]):
            return "rdm"
        return "embedding"
    return _guess_text_kind(path)


def _guess_text_kind(path: Any) -> str:
    """Kind of a text table from its first two data lines (and its line count for floats)."""
    head: list[str] = []
    n_lines = 0
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            n_lines += 1
            if len(head) < 2:
                head.append(content)
                if len(head) == 1 and "uniqueid" in re.split(r"[\t,]", content.lower()):
                    return "concepts"
                if len(head) == 2 and _is_triplet_row(head):
                    return "triplets"
    if not head:
        return "triplets"  # the triplet reader names the empty file
    toks = head[0].replace(",", " ").split()
    if not any(_is_number(t) for t in toks):  # a header line
        if {"img1", "img2", "ooo"} <= {t.lower() for t in toks}:
            return "triplets"
        n_lines -= 1
    elif _is_triplet_row(head[:1]):
        return "triplets"
    width = len(head[-1].replace(",", " ").split())
    return "rdm" if width == n_lines or n_lines == 1 or width == 1 else "embedding"


def _is_triplet_row(head: list[str]) -> bool:
    """The first data row (after an optional header) has 3 or 5 integers."""
    for content in head:
        toks = content.replace(",", " ").split()
        if toks and any(_is_number(t) for t in toks):
            return len(toks) in (3, 5) and all(_INT.match(t) for t in toks)
    return False


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _data_format_names() -> list[str]:
    from alignkit.data.formats import FORMATS

    return list(FORMATS)


@data.command("info")
@click.argument("source")
@click.option("--kind", type=click.Choice(KINDS), default="auto", show_default=True,
              help="What SOURCE holds; auto guesses from the name, extension and content.")
@click.option("--triplet-format", "triplet_format", default="auto", show_default=True,
              type=click.Choice(["auto", "npy", "text", "csv", "things-validation", "raw"]),
              help="Triplet file format (see docs/data-formats.md).")
@click.option("--data-format", "data_format", default=None,
              type=click.Choice(_data_format_names()),
              help="Read SOURCE as this published format (see docs/data-formats.md); "
                   "--format NAME does the same.")
@click.option("--n-objects", type=click.IntRange(min=3), default=None,
              help="Number of objects the triplet indices refer to.")
@click.option("--sortindex", default=None,
              help="Raw-to-canonical permutation for raw triplet files (default: THINGS).")
@click.option("--key", default=None, help="RDM: .mat variable, Meadows participant or model name.")
@click.option("--ids", "ids_file", default=None, help="RDM: stimulus ids, one a line.")
@click.option("--rdm-kind", type=click.Choice(["dissimilarity", "similarity"]), default=None,
              help="RDM: what the matrix holds (default: similarity for *sim* variables).")
@click.option("--set-name", default=None, help="RDM: King et al. 2019 stimulus set (set1, set2).")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "json", "csv", *_data_format_names()]),
              help="Output format on stdout (table, json, csv), or a published data format "
                   "name to read SOURCE with (output stays a table).")
def data_info(source: str, kind: str, triplet_format: str, data_format: str | None,
              n_objects: int | None, sortindex: str | None, key: str | None,
              ids_file: str | None, rdm_kind: str | None, set_name: str | None,
              fmt: str) -> None:
    """Show how SOURCE (a file or bundled name) is read: shape, objects, convention, checksum.

    \b
    Examples:
      alignkit data info things-test20k
      alignkit data info triplets_test20k_raw_vice_format.tsv
      alignkit data info triplets_large_final_correctednc_correctedorder.csv --format things-2023-raw
      alignkit data info BEHAVIOR.mat --set-name set1 --format json
      alignkit data info 92_modelRDMs.mat --key monkeyIT
    """
    import os

    from alignkit.data import load_concepts, load_embedding, load_rdm, load_triplets
    from alignkit.data.bundled import ALIASES, BUNDLED, bundled_path
    from alignkit.data.public import is_public_name

    if fmt not in ("table", "json", "csv"):
        if data_format is not None and data_format != fmt:
            raise click.UsageError(f"--format {fmt} and --data-format {data_format} disagree")
        data_format, fmt = fmt, "table"
    if not os.path.exists(source) and is_public_name(source):
        _public_info(source, fmt, triplet_format=triplet_format, key=key, set_name=set_name)
        return
    info: dict[str, Any]
    if data_format is None and kind == "auto":
        from alignkit.data.formats import guess_format

        data_format = guess_format(source)
    if data_format is not None:
        info = _format_info(source, data_format, sortindex=sortindex, key=key, ids=ids_file,
                            kind=rdm_kind, set_name=set_name)
        if fmt == "json":
            emit([], fmt, payload=info)
            return
        emit([{"field": k, "value": _flat(v)} for k, v in info.items()], fmt)
        return
    what = guess_kind(source) if kind == "auto" else kind
    if what == "triplets":
        info = load_triplets(source, format=triplet_format, n_objects=n_objects,
                             sortindex=sortindex).info()
    elif what == "rdm":
        info = load_rdm(source, key=key, ids=ids_file, kind=rdm_kind, set_name=set_name).info()
    elif what == "embedding":
        info = load_embedding(source).info()
    elif what == "list":
        info = _list_info(source)
    else:
        c = load_concepts(source)
        info = {
            "kind": "concepts",
            "source": c.source,
            "n_objects": len(c),
            "columns": c.columns,
            "ids": c.ids[:5].tolist() + (["..."] if len(c) > 5 else []),
            "checksum": c.checksum,
        }
    bundled = ALIASES.get(source, source)
    if not os.path.exists(source) and bundled in BUNDLED:
        item = BUNDLED[bundled]
        info.setdefault("description", item.description)
        info.update({"file": str(bundled_path(bundled)), "licence": item.licence,
                     "citation": item.citation, "bundled": True})
    if fmt == "json":
        emit([], fmt, payload=info)
        return
    rows = [{"field": k, "value": _flat(v)} for k, v in info.items()]
    emit(rows, fmt)


def _public_info(name: str, fmt: str, *, triplet_format: str, key: str | None,
                 set_name: str | None) -> None:
    """``data info NAME`` for a fetchable data set: the registry entry, the cache, and
    (when fetched) how its file reads."""
    from alignkit.data import load_embedding, load_rdm, load_triplets
    from alignkit.data.public import describe, get_public
    from alignkit.errors import AlignkitError

    ds = get_public(name)
    info = describe(ds)
    if info["state"] == "cached" and ds.kind in ("triplets", "rdm", "embedding"):
        try:
            if ds.kind == "triplets":
                read = load_triplets(name, format=triplet_format).info()
            elif ds.kind == "rdm":
                read = load_rdm(name, key=key, set_name=set_name).info()
            else:
                read = load_embedding(name).info()
            info["read_as"] = read
        except AlignkitError as exc:
            info["read_as"] = f"not readable with the current readers: {exc}"
    if fmt == "json":
        emit([], fmt, payload=info)
        return
    rows: list[dict[str, Any]] = []
    for k, v in info.items():
        if k == "files":
            for i, f in enumerate(v, 1):
                size = _human_size(f["size"]) if f["size"] is not None else "size ?"
                rows.append({"field": f"file {i}", "value": (
                    f"{f['name']} ({size}; sha256 {f['checksum']}"
                    + (f" {f['sha256']}" if f["sha256"] else "") + ")")})
                rows.append({"field": f"  url {i}", "value": f["url"] + (
                    "" if ds.url_confirmed else " (URL not confirmed)")})
                rows.append({"field": f"  cache path {i}", "value": f["cache_path"] + (
                    " (cached)" if f["cached"] else " (not fetched)")})
        elif k == "read_as" and isinstance(v, dict):
            for rk, rv in v.items():
                rows.append({"field": f"read: {rk}", "value": _flat(rv)})
        elif k == "size":
            rows.append({"field": k, "value": _human_size(v) if v is not None else "?"})
        elif v not in (None, ""):
            rows.append({"field": k, "value": _flat(v)})
    emit(rows, fmt)


def _format_info(source: str, name: str, **given: Any) -> dict[str, Any]:
    """Read SOURCE with a published format, passing the options its reader takes."""
    import inspect

    from alignkit.data.formats import FORMATS, describe, read_format

    params = inspect.signature(FORMATS[name].reader).parameters
    opts = {k: v for k, v in given.items() if v is not None and k in params}
    unused = sorted(k for k, v in given.items() if v is not None and k not in params)
    if unused:
        raise click.UsageError(f"--format {name}: option(s) {', '.join(unused)} do not apply")
    return describe(read_format(source, name, **opts), name)


def _list_info(name: str) -> dict[str, Any]:
    """Summary of a bundled one-entry-a-line file (ids, labels, sortindex, order table)."""
    from alignkit.data import BUNDLED, bundled_path, load_sortindex, read_lines
    from alignkit.provenance import sha256_file

    item = BUNDLED[name]
    lines = read_lines(bundled_path(name), item.kind)
    info: dict[str, Any] = {"kind": item.kind, "source": name}
    if item.kind == "table":
        info["columns"] = lines[0].split("\t")
        lines = [ln.replace("\t", " ") for ln in lines[1:]]
    if item.kind == "sortindex":
        load_sortindex(name)  # validates the permutation
    info["n_entries"] = len(lines)
    info["first"] = lines[:5] + (["..."] if len(lines) > 5 else [])
    info["description"] = item.description
    info["checksum"] = sha256_file(bundled_path(name))
    return info


def _flat(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if not all(isinstance(v, int) for v in value) else (
            " x ".join(str(v) for v in value)
        )
    return str(value)


__all__ = ["data", "guess_kind"]


@data.command("ceiling")
@click.argument("sources", nargs=-1, required=True)
@click.option("--min-repeats", type=click.IntRange(min=2), default=2, show_default=True,
              help="Fewest responses a triple needs to count.")
@click.option("--triplet-format", "triplet_format", default="auto", show_default=True,
              type=click.Choice(["auto", "npy", "text", "csv", "things-validation", "raw"]),
              help="Triplet file format (see docs/data-formats.md).")
@format_option
def data_ceiling(sources: tuple[str, ...], min_repeats: int, triplet_format: str,
                 fmt: str) -> None:
    """Odd-one-out noise ceiling of triplet files with repeated triplets.

    Responses are grouped by their unordered triple; a triple's agreement is
    the share of its responses that pick its majority odd one out, and the
    ceiling is the mean over triples answered at least --min-repeats times.
    Several SOURCES are read as one set (a triplet file and its repeat file).
    Use the figure with 'alignkit score ooo --ceiling FILE' or --ceiling VALUE.

    \b
    Examples:
      alignkit data ceiling testset2_repeat.txt
      alignkit data ceiling trainset.txt testset2_repeat.txt --format json
    """
    from alignkit.data import concat_triplets, load_triplets
    from alignkit.score.ceiling import ooo_noise_ceiling

    trip = concat_triplets([load_triplets(s, format=triplet_format) for s in sources])
    res = ooo_noise_ceiling(trip, min_repeats=min_repeats)
    if res.ceiling is None:
        click.echo(f"note: {trip.source}: no triple is answered {min_repeats} or more times, so "
                   "no ceiling can be computed from it", err=True)
    emit([res.row()], fmt, payload=res.to_dict() if fmt == "json" else None)


@data.command("rsa-ceiling")
@click.argument("source")
@click.option("--key", default=None,
              help=".mat variable holding a subjects x n x n (or subjects x n(n-1)/2) stack; "
                   "Meadows exports (rdmutv_*) are found without it.")
@click.option("--compare", type=click.Choice(["spearman", "pearson", "cosine"]),
              default="spearman", show_default=True, help="The RSA comparison the ceiling is for.")
@format_option
def data_rsa_ceiling(source: str, key: str | None, compare: str, fmt: str) -> None:
    """Lower and upper bound of the RSA noise ceiling from per-subject RDMs.

    As rsatoolbox defines them: the upper bound is the mean over subjects of
    the comparison of the subject's RDM with the pooled RDM of all subjects,
    the lower bound the same with the pooled RDM of the other subjects (leave
    one subject out). SOURCE is a .npy stack (subjects x n x n or subjects x
    n(n-1)/2) or a .mat file (--key, or a Meadows export).

    \b
    Examples:
      alignkit data rsa-ceiling subject_rdms.npy
      alignkit data rsa-ceiling judgments_general.mat --key judgments --compare pearson
    """
    from alignkit.data.rdm import load_subject_rdms
    from alignkit.score.ceiling import rsa_noise_ceiling

    stack, where = load_subject_rdms(source, key=key)
    res = rsa_noise_ceiling(stack, compare=compare, source=where)
    emit([res.row()], fmt, payload=res.to_dict() if fmt == "json" else None)
