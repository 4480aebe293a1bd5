"""``alignkit store``: import, inspect, list, verify and remove entries of an embedding store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["store", "store_summary"]


@click.group("store")
def store() -> None:
    """Manage an embedding store (a Zarr v3 directory of model features).

    \b
    Examples:
      alignkit store import emb.npy --ids things --store s.zarr --model spose --layer 49d
      alignkit store info s.zarr
      alignkit store ls s.zarr
      alignkit store verify s.zarr
      alignkit store rm s.zarr --model spose --layer 49d
    """


@store.command("import")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--ids", "ids_source", default=None, metavar="FILE|things",
              help="Stimulus ids, one a line, in the row order of FEATURES; "
                   "'things' for the 1854 THINGS uniqueIDs [default for a bundled or "
                   "fetched THINGS embedding name: things].")
@click.option("--store", "store_path", required=True, metavar="PATH",
              help="The store (created if missing).")
@click.option("--model", required=True, help="Model name, e.g. vgg16 or spose.")
@click.option("--layer", required=True, help="Layer name, e.g. classifier.3 or 49d.")
@click.option("--key", default=None,
              help="Array to take from a .npz file or a dict saved in a .pt file.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="Storage dtype (features are always read as float32).")
@click.option("--overwrite", is_flag=True, help="Replace an existing entry.")
def import_(
    features: str, ids_source: str, store_path: str, model: str, layer: str,
    key: str | None, dtype: str, overwrite: bool,
) -> None:
    """Import a feature matrix (FEATURES: .npy .npz .pt .pth .txt .tsv .csv) into a store.

    FEATURES may also be the name of a bundled or fetched embedding
    (``alignkit data ls``), e.g. spose-49d or vice-things; THINGS embeddings
    then take the THINGS ids without --ids. The entry records the file's
    sha256 and the ids source as provenance.

    \b
    Examples:
      alignkit store import spose_embedding_49d_sorted.txt --ids things \\
          --store s.zarr --model spose --layer 49d
      alignkit store import spose-49d --store s.zarr --model spose --layer 49d
    """
    from alignkit.data.features import load_features, load_ids
    from alignkit.errors import InputError
    from alignkit.provenance import sha256_file
    from alignkit.store import EmbeddingStore

    named, path, things = _named_embedding(features)
    if ids_source is None:
        if not things:
            raise InputError("--ids is required (a file with one id a line, or 'things')")
        ids_source = "things"
    x = load_features(path, key=key)
    ids = load_ids(ids_source, n=x.shape[0])
    provenance: dict[str, Any] = {
        **({"source_name": named} if named else {}),
        "source": str(Path(path).resolve()),
        "source_checksum": sha256_file(path),
        "key": key,
        "ids_source": ids_source if ids_source == "things" else str(Path(ids_source).resolve()),
        "ids_checksum": None if ids_source == "things" else sha256_file(ids_source),
        "command": "alignkit store import",
        "argv": list(sys.argv),
    }
    st = EmbeddingStore(store_path, mode="a")
    entry = st.write(model, layer, x, ids, attrs=provenance, overwrite=overwrite, dtype=dtype)
    click.echo(
        f"stored {entry.model}/{entry.layer}: {entry.n} x {entry.p} {entry.dtype} in "
        f"{store_path} ({entry.checksum})"
    )


def _named_embedding(features: str) -> tuple[str | None, str, bool]:
    """``(name, path, things)`` for a bundled or fetched embedding name, else ``(None, FEATURES, False)``.

    An existing file wins over a name. A public data set that is not fetched is
    refused with ``not fetched: run alignkit data fetch NAME``.
    """
    import os

    from alignkit.data.bundled import BUNDLED, resolve_source
    from alignkit.data.public import get_public, is_public_name
    from alignkit.errors import InputError

    if os.path.exists(features):
        return None, features, False
    if features in BUNDLED:
        if BUNDLED[features].kind != "embedding":
            raise InputError(f"bundled data set {features!r} is not an embedding "
                             f"(it is {BUNDLED[features].kind})")
        path, _ = resolve_source(features)
        return features, str(path), True
    if is_public_name(features):
        ds = get_public(features)
        if ds.kind != "embedding":
            raise InputError(f"public data set {features!r} is not an embedding (it is {ds.kind})")
        path, _ = resolve_source(features)
        return features, str(path), ds.things
    return None, features, False


def store_summary(store_path: str) -> dict[str, Any]:
    """A JSON-able description of a store: every entry's shape, state and provenance.

    Args:
        store_path: the store's path or URL.

    Returns:
        ``{"store": path, "entries": [{model, layer, n, p, dtype, chunk_rows,
        complete, rows_done, created, completed, features_checksum,
        provenance, versions, probes, damaged}, ...]}``; ``damaged`` is None,
        or what is wrong with an entry whose record cannot be read (its other
        values are then None).

    Raises:
        NotAStoreError: the path is not an alignkit store.
    """
    from alignkit.errors import CorruptEntryError
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store_path, mode="r")
    entries = []
    for model, layer in st.entries():
        try:
            e = st.entry(model, layer)
            probes = e.probes()
        except CorruptEntryError as exc:
            entries.append({
                "model": model, "layer": layer, "n": None, "p": None, "dtype": None,
                "chunk_rows": None, "complete": False, "rows_done": None, "created": None,
                "completed": None, "features_checksum": None, "provenance": {},
                "versions": {}, "probes": [], "damaged": exc.detail,
            })
            continue
        meta = e.meta
        entries.append({
            "model": e.model,
            "layer": e.layer,
            "n": e.n,
            "p": e.p,
            "dtype": e.dtype,
            "chunk_rows": e.chunk_rows,
            "complete": e.complete,
            "rows_done": e.rows_done,
            "created": e.created,
            "completed": e.completed,
            "features_checksum": e.checksum,
            "provenance": meta.get("provenance") or {},
            "versions": meta.get("versions") or {},
            "probes": probes,
            "damaged": None,
        })
    return {"store": store_path, "entries": entries}


_SUMMARY_KEYS = ("weights", "source", "ids_source", "preprocessing", "image_root")


def _provenance_line(prov: dict[str, Any]) -> str:
    parts = []
    for k in _SUMMARY_KEYS:
        v = prov.get(k)
        if v not in (None, ""):
            parts.append(f"{k}={v}")
    checksum = prov.get("source_checksum")
    if isinstance(checksum, str):
        parts.append(f"source_checksum={checksum[:19]}...")
    return ", ".join(parts) or "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@store.command("info")
@click.argument("store_path", metavar="STORE")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def info(store_path: str, fmt: str) -> None:
    """Describe every entry of STORE: shape, dtype, state, provenance and probes.

    An entry whose write was interrupted shows as INCOMPLETE with the rows
    written; rerun the extraction to resume it.

    \b
    Example:
      alignkit store info s.zarr --format json
    """
    summary = store_summary(store_path)
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    entries = summary["entries"]
    click.echo(f"store {store_path}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    if not entries:
        return
    rows = [["model", "layer", "n x p", "dtype", "state", "created", "probes"]]
    for e in entries:
        if e["damaged"]:
            rows.append([e["model"], e["layer"], "-", "-", "DAMAGED (alignkit store verify)",
                         "-", "-"])
            continue
        state = "complete" if e["complete"] else f"INCOMPLETE {e['rows_done']}/{e['n']} rows"
        rows.append([
            e["model"], e["layer"], f"{e['n']} x {e['p']}", e["dtype"], state,
            e["created"] or "-", ",".join(e["probes"]) or "-",
        ])
    click.echo(_table(rows))
    click.echo("provenance:")
    for e in entries:
        click.echo(f"  {e['model']}/{e['layer']}: {_provenance_line(e['provenance'])}")


@store.command("ls")
@click.argument("store_path", metavar="STORE")
def ls(store_path: str) -> None:
    """List the entries of STORE, one MODEL/LAYER a line.

    \b
    Example:
      alignkit store ls s.zarr
    """
    from alignkit.store import EmbeddingStore

    for model, layer in EmbeddingStore(store_path, mode="r").entries():
        click.echo(f"{model}/{layer}")


@store.command("verify")
@click.argument("store_path", metavar="STORE")
@click.option("--no-probes", is_flag=True, help="Check the entries only, not their probes.")
def verify(store_path: str, no_probes: bool) -> None:
    """Check every entry of STORE on disk: ids, every chunk, the features checksum, probes.

    Prints one line per entry (and per probe): ok, damaged (and what is
    wrong) or incomplete. Exits with status 2 if anything is damaged. Reads
    all the data: about the time of reading the store once.

    \b
    Example:
      alignkit store verify s.zarr
    """
    from alignkit.errors import CorruptEntryError
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store_path, mode="r")
    records = st.check(probes=not no_probes)
    for r in records:
        name = r["entry"] if r["probe"] is None else f"{r['entry']} probe {r['probe']}"
        status = {"ok": "ok", "damaged": "DAMAGED", "incomplete": "INCOMPLETE",
                  "changed": "CHANGED"}[r["status"]]
        click.echo(f"{name}: {status}" + (f": {r['detail']}" if r["detail"] else ""))
    bad = [r for r in records if r["status"] in ("damaged", "changed")]
    if bad:
        names = sorted({r["entry"] if r["probe"] is None else f"{r['entry']} probe {r['probe']}"
                        for r in bad})
        raise CorruptEntryError(
            f"{store_path}: {len(names)} damaged: {', '.join(names)}; rewrite them (--overwrite) "
            "or remove them (alignkit store rm)",
            store=store_path,
        )
    click.echo(f"{store_path}: {len(records)} checked, none damaged", err=True)


@store.command("rm")
@click.argument("store_path", metavar="STORE")
@click.option("--model", required=True, help="Model name of the entry.")
@click.option("--layer", required=True, help="Layer name of the entry.")
def rm(store_path: str, model: str, layer: str) -> None:
    """Remove one entry (features, ids and probes) from STORE.

    \b
    Example:
      alignkit store rm s.zarr --model vgg16 --layer classifier.3
    """
    from alignkit.store import EmbeddingStore

    EmbeddingStore(store_path, mode="r")  # a missing store is an error, not created
    EmbeddingStore(store_path, mode="a").delete(model, layer)
    click.echo(f"removed {model}/{layer} from {store_path}", err=True)
