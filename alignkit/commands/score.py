"""``alignkit score``: odd-one-out accuracy and RSA of stored features."""

from __future__ import annotations

import os
from typing import Any

import click

from alignkit.commands._options import SEED, OutputFile
from alignkit.commands._output import atomic_write, emit, format_option

SIMILARITIES = ("cosine", "dot", "euclidean", "correlation")


def _tie_choices() -> list[str]:
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES, TIE_RULES

    return [*TIE_RULES, *DEPRECATED_TIE_RULES]


def _tie_help() -> str:
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES, TIE_RULES

    rules = "; ".join(f"{r.name}: {r.summary} ({r.reference})" for r in TIE_RULES.values())
    old = ", ".join(f"{a} = {b}" for a, b in DEPRECATED_TIE_RULES.items())
    return f"Exact ties at the top. {rules}. Deprecated: {old}. Default: the preset's (paper)."


def _preset_names() -> list[str]:
    from alignkit.score.presets import PRESETS

    return list(PRESETS)


def _preset_help() -> str:
    from alignkit.score.presets import PRESETS

    return "Published protocol: " + "; ".join(
        f"{p.name} = {p.similarity} similarity, {p.ties} ties, THINGS ceiling "
        f"{p.things_ceiling}{', normalised score clipped to [0, 1]' if p.clip_normalised else ''}"
        f" ({p.reference})"
        for p in PRESETS.values()
    ) + ". Options given beside it override it and are recorded."


def _ceiling(value: str) -> Any:
    if value.lower() == "auto":
        return "auto"
    if value.lower() in ("none", "off"):
        return None
    try:
        return float(value)
    except ValueError:
        pass
    if not os.path.isfile(value):
        raise click.BadParameter(
            f"expected a number, 'auto', 'none' or a triplet file with repeats, got {value!r}"
        )
    from alignkit.data import load_triplets
    from alignkit.score.ceiling import ooo_noise_ceiling

    return ooo_noise_ceiling(load_triplets(value))


def _is_store(path: str) -> bool:
    from alignkit.errors import NotAStoreError
    from alignkit.store import EmbeddingStore

    try:
        EmbeddingStore(path, mode="r")
    except NotAStoreError:
        return False
    return True


@click.group()
def score() -> None:
    """Score stored features against human judgments (odd-one-out, RSA)."""


@score.command("ooo")
@click.argument("store", type=click.Path(exists=False))
@click.option("--triplets", "triplets_src", required=True, multiple=True,
              help="Triplet file (.npy, .txt, .csv, validationset.csv, raw format) or a bundled "
                   "name such as things-test20k; repeat it to score on the union (the paper's "
                   "zero-shot accuracy uses train_90 and test_10 together).")
@click.option("--model", default=None, help="Only this model (default: every model in the store).")
@click.option("--layer", default=None, help="Only this layer (default: every layer).")
@click.option("--preset", type=click.Choice(_preset_names()), default=None,
              help=_preset_help())
@click.option("--similarity", type=click.Choice(SIMILARITIES), default=None,
              help="Pair similarity; cosine is the paper code's default, dot is Brain-Score's "
                   "(default: the preset's, cosine).")
@click.option("--ties", type=click.Choice(_tie_choices()), default=None, help=_tie_help())
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamples of the triplets for a confidence interval.")
@click.option("--ci-level", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the bootstrap (0 to 4294967295).")
@click.option("--ceiling", default="auto", show_default=True,
              help="Noise ceiling for the normalised score: 'auto' (the preset's THINGS ceiling, "
                   "0.673 by default, for THINGS triplets only; none for other data), a number, "
                   "a triplet file with repeated triplets to compute it from (see 'alignkit "
                   "data ceiling'), or 'none'.")
@click.option("--per-triplet", "per_triplet_out", type=OutputFile((".npz", ".csv", ".tsv")),
              default=None,
              help="Write per-triplet choices (-1 tie, 0-2 position of the model's odd one out) "
                   "and correctness to a .npz or .csv file.")
@click.option("--per-concept", is_flag=True,
              help="Break accuracy down by the human concept dimension of each triplet.")
@click.option("--concepts", default=None,
              help="Concept embedding for --per-concept (file or bundled name; default spose-49d).")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things' for "
                   "the 1854 THINGS concepts in canonical order. THINGS releases (bundled names, "
                   "validationset.csv, the raw format) carry them already; features are always "
                   "matched to triplets by id.")
@click.option("--by-position", is_flag=True,
              help="Pair object t of the triplets with feature row t instead of matching ids "
                   "(recorded in the result).")
@click.option("--subset", type=click.Choice(["all", "covered"]), default="all", show_default=True,
              help="all: refuse when objects lack features; covered: score only the triplets "
                   "whose objects all have features (the count kept is reported).")
@click.option("--transform", default=None,
              help="Apply a probe transform stored under the entry (by name) or from a .npz first.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append each result, with provenance, to the store's results table "
                   "(results.jsonl; see 'alignkit report').")
@format_option
def score_ooo(store: str, triplets_src: tuple[str, ...], model: str | None, layer: str | None,
              preset: str | None, similarity: str | None, ties: str | None, bootstrap: int,
              ci_level: float, seed: int, ceiling: str, per_triplet_out: str | None,
              per_concept: bool, concepts: str | None, object_ids: str | None,
              by_position: bool, subset: str, transform: str | None,
              device: str, record: bool, fmt: str) -> None:
    """Zero-shot odd-one-out accuracy of every entry in STORE.

    For each triplet the model's odd one out is the item outside its most
    similar pair; accuracy is the fraction that agree with the human choice
    (chance 1/3). One row per model/layer.

    \b
    Examples:
      alignkit score ooo feats.zarr --triplets things-test20k
      alignkit score ooo feats.zarr --triplets things-test20k --preset brainscore
      alignkit score ooo feats.zarr --triplets train_90.npy --triplets test_10.npy --object-ids things
      alignkit score ooo feats.zarr --triplets mine.txt --object-ids mine_ids.txt --ceiling reps.txt
      alignkit score ooo feats.zarr --triplets things-test20k --per-concept --format json
    """
    import warnings

    from alignkit.data import concat_triplets, load_triplets
    from alignkit.score import score_store_ooo

    kw = {"object_ids": object_ids} if object_ids else {}
    trip = concat_triplets([load_triplets(src, **kw) for src in triplets_src])
    want_concepts = per_concept or concepts is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        results = score_store_ooo(
            store, trip, model=model, layer=layer, by_position=by_position, subset=subset,
            transform=transform, preset=preset, similarity=similarity, ties=ties,
            bootstrap=bootstrap, seed=seed, ci_level=ci_level, ceiling=_ceiling(ceiling),
            per_triplet=per_triplet_out is not None,
            concepts=(concepts or "spose-49d") if want_concepts else None, device=device,
        )
    for w in {str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)}:
        click.echo(f"warning: {w}", err=True)
    for r in results:
        for note in r.notes:
            click.echo(f"note: {r.model}/{r.layer}: {note}", err=True)
        if r.overrides:
            click.echo(f"note: --preset {r.preset} with {', '.join('--' + o for o in r.overrides)} "
                       "given explicitly (recorded)", err=True)
    if record:
        record_results(store, "ooo", results)
    if per_triplet_out:
        _write_per_triplet(per_triplet_out, trip.array, results)
        click.echo(f"per-triplet choices written to {per_triplet_out}", err=True)
    rows = [r.row() for r in results]
    if fmt == "json":
        emit(rows, fmt, payload=[r.to_dict() for r in results])
        return
    emit(rows, fmt)
    if want_concepts:
        for r in results:
            if r.per_concept is None:
                continue
            if fmt == "table":
                click.echo(f"\nper concept dimension: {r.model}/{r.layer}")
            crow = [{"model": r.model, "layer": r.layer, **c} for c in r.per_concept.rows()]
            if fmt == "table":
                crow = [{k: v for k, v in c.items() if k not in ("model", "layer")} for c in crow]
            emit(crow, fmt)


def record_results(store: str, kind: str, results: list[Any]) -> None:
    """Append results to the store's results table, with the entries' numeric attributes."""
    import numbers

    from alignkit.results import ResultsTable, record_from_result
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store, mode="r")
    table = ResultsTable.for_store(store)
    for r in results:
        attrs = st.entry(r.model, r.layer).attrs
        numeric = {k: v for k, v in attrs.items()
                   if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        table.append(record_from_result(kind, r, model_attrs=numeric or None, store=str(store)))
    click.echo(f"{len(results)} result(s) recorded in {table.path}", err=True)


def _write_per_triplet(path: str, triplets: Any, results: list[Any]) -> None:
    import numpy as np

    from alignkit.errors import InputError

    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        arrays = {"triplets": np.asarray(triplets)}
        for r in results:
            arrays[f"{r.model}/{r.layer}/choices"] = r.choices
            arrays[f"{r.model}/{r.layer}/correct"] = r.correct
        atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    elif ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"

        def write(tmp: str) -> None:
            T = np.asarray(triplets, dtype=np.int64)
            rows = np.arange(1, len(T) + 1, dtype=np.int64)[:, None]
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(sep.join(["model", "layer", "row", "i", "j", "k", "choice", "correct"]) + "\n")
                for r in results:
                    block = np.hstack([rows, T, r.choices[:, None].astype(np.int64),
                                       r.correct[:, None].astype(np.int64)])
                    prefix = f"{r.model}{sep}{r.layer}{sep}".replace("%", "%%")
                    np.savetxt(fh, block, fmt=prefix + sep.join(["%d"] * 6))

        atomic_write(path, write)
    else:
        raise InputError(f"--per-triplet {path}: use a .npz, .csv or .tsv file name")


@score.command("rsa")
@click.argument("source", type=click.Path(exists=True))
@click.option("--rdm", "rdm_src", required=True,
              help="Human RDM: .npy/.csv/.txt square or condensed, .mat (Cichy, King, Peterson, "
                   "generic with --rdm-key) or a bundled name such as rdm48.")
@click.option("--rdm-ids", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Stimulus ids of the human RDM's rows, one a line (when the file has none).")
@click.option("--rdm-key", default=None, help="Variable name inside a .mat file.")
@click.option("--rdm-kind", type=click.Choice(["dissimilarity", "similarity"]), default=None,
              help="What the human matrix holds (default: as the format says).")
@click.option("--source-ids", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ids of SOURCE's rows when SOURCE is an RDM file without ids.")
@click.option("--model", default=None, help="Only this model of the store.")
@click.option("--layer", default=None, help="Only this layer of the store.")
@click.option("--rdm-method", type=click.Choice(["correlation", "cosine", "euclidean", "dot"]),
              default="correlation", show_default=True,
              help="Model RDM: 1 - Pearson r (clipped, the paper's figures), 1 - cosine, euclidean "
                   "distance, or negative dot product.")
@click.option("--compare", type=click.Choice(["spearman", "pearson"]), default="spearman",
              show_default=True)
@click.option("--permutations", type=click.IntRange(min=0), default=0, show_default=True,
              help="Stimulus permutations for a one-sided p-value.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamples of the stimuli for a confidence interval.")
@click.option("--ci-level", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the permutations and the bootstrap (0 to 4294967295).")
@click.option("--transform", default=None,
              help="Apply a probe transform (name stored under the entry, or a .npz) first.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the permutation test runs.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append each result, with provenance, to the store's results table "
                   "(results.jsonl; see 'alignkit report').")
@format_option
def score_rsa(source: str, rdm_src: str, rdm_ids: str | None, rdm_key: str | None,
              rdm_kind: str | None, source_ids: str | None, model: str | None,
              layer: str | None, rdm_method: str, compare: str, permutations: int,
              bootstrap: int, ci_level: float, seed: int, transform: str | None,
              device: str, record: bool, fmt: str) -> None:
    """RSA between SOURCE and a human RDM, matched by stimulus id.

    SOURCE is an embedding store (every entry, or --model/--layer) or another
    RDM file (RDM-vs-RDM).

    \b
    Examples:
      alignkit score rsa feats.zarr --rdm rdm48 --permutations 10000
      alignkit score rsa feats.zarr --rdm peterson_animals.mat --rdm-ids animals.txt \\
          --transform things-probe --bootstrap 1000
      alignkit score rsa model_rdm.npy --source-ids ids.txt --rdm human.npy --rdm-ids ids.txt
    """
    from alignkit.data import align_by_ids, load_ids, load_rdm
    from alignkit.score import rsa, score_store_rsa

    human = load_rdm(rdm_src, key=rdm_key, ids=load_ids(rdm_ids) if rdm_ids else None,
                     kind=rdm_kind)
    common = dict(compare=compare, permutations=permutations, bootstrap=bootstrap, seed=seed,
                  ci_level=ci_level, device=device)
    if _is_store(source):
        results = score_store_rsa(source, human, model=model, layer=layer, transform=transform,
                                  rdm_method=rdm_method, **common)
        if record:
            record_results(source, "rsa", results)
    else:
        from alignkit.errors import InputError

        if transform or model or layer:
            raise InputError("--transform, --model and --layer apply only when SOURCE is a store")
        other = load_rdm(source, ids=load_ids(source_ids) if source_ids else None)
        ia, ib = align_by_ids(other.ids, human.ids)
        results = [rsa(other.matrix[ia][:, ia], human.matrix[ib][:, ib],
                       reference=str(rdm_src), model=os.path.basename(source),
                       provenance={"source": other.source, "source_checksum": other.checksum,
                                   "reference_checksum": human.checksum}, **common)]
    rows = [r.row() for r in results]
    emit(rows, fmt, payload=[r.to_dict() for r in results] if fmt == "json" else None)
