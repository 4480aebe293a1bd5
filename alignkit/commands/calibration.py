"""``alignkit score calibration``: calibration of odd-one-out choice probabilities."""

from __future__ import annotations

import os
from typing import Any

import click

from alignkit.commands._options import OutputFile
from alignkit.commands._output import atomic_write, emit, format_option
from alignkit.commands.score import _take_options, _triplet_union, measure_options, record_results


@click.command("calibration",
               short_help="Calibration (ECE) of choice probabilities softmax(T s) on triplets.")
@click.argument("store", type=click.Path(exists=False))
@click.option("--triplets", "triplets_src", required=True, multiple=True,
              help="Triplet file (.npy, .txt, .csv, validationset.csv, raw format) or a bundled "
                   "name such as things-test20k; repeat it to use the union. Repeated triples "
                   "give the human choice distribution (KL, JSD).")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things'.")
@click.option("--model", default=None, help="Only this model (default: every model).")
@click.option("--layer", default=None, help="Only this layer (default: every layer).")
@measure_options("calibration")
@click.option("--per-triplet", "per_triplet_out", type=OutputFile((".npz", ".csv", ".tsv")),
              default=None,
              help="Write per-triplet choice probabilities (p_ij, p_ik, p_jk), entropy (nats), "
                   "evaluating fold (-1: none) and temperature to a .npz or .csv file.")
@click.option("--by-position", is_flag=True,
              help="Pair object t of the triplets with feature row t instead of matching ids.")
@click.option("--subset", type=click.Choice(["all", "covered"]), default="all", show_default=True,
              help="all: refuse when objects lack features; covered: use only the triplets "
                   "whose objects all have features.")
@click.option("--transform", default=None,
              help="Apply a probe transform stored under the entry (by name) or from a .npz first.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Accepted for uniformity; calibration runs on the CPU.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append each result, with provenance, to the store's results table.")
@format_option
def score_calibration(store: str, triplets_src: tuple[str, ...], object_ids: str | None,
                      model: str | None, layer: str | None, per_triplet_out: str | None,
                      by_position: bool, subset: str, transform: str | None, device: str,
                      record: bool, fmt: str, **measure_kw: Any) -> None:
    """Calibration of every entry's odd-one-out choice probabilities.

    Probabilities are softmax(T * [s_ij, s_ik, s_jk]); T is fitted on the triplets of
    other objects (object folds) and the ECE, NLL, accuracy and entropy-binned accuracy are
    those of the held-out triplets. One row per model/layer.

    \b
    Examples:
      alignkit score calibration feats.zarr --triplets things-test20k
      alignkit score calibration feats.zarr --triplets things-test20k --similarity dot --fit ece-grid
      alignkit score calibration feats.zarr --triplets reps.txt --object-ids ids.txt --per-triplet p.csv
    """
    from alignkit.measures import get_measure

    measure = get_measure("calibration")
    trip = _triplet_union(triplets_src, object_ids)
    options = _take_options("calibration", measure_kw)
    results = measure.score_store(store, trip, options, model=model, layer=layer,
                                  transform=transform, device=device,
                                  per_triplet=per_triplet_out is not None,
                                  by_position=by_position, subset=subset)
    for r in results:
        for note in r.notes:
            click.echo(f"note: {r.model}/{r.layer}: {note}", err=True)
    if record:
        record_results(store, "calibration", results)
    if per_triplet_out:
        write_per_triplet(per_triplet_out, trip.array, results)
        click.echo(f"per-triplet probabilities written to {per_triplet_out}", err=True)
    rows = [r.row() for r in results]
    emit(rows, fmt, payload=[r.to_dict() for r in results] if fmt == "json" else None)


def write_per_triplet(path: str, triplets: Any, results: list[Any]) -> None:
    """Per-triplet probabilities of each result, laid out as ``score ooo --per-triplet``."""
    import numpy as np

    from alignkit.errors import InputError

    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        arrays = {"triplets": np.asarray(triplets)}
        for r in results:
            for name in ("probabilities", "entropy", "fold", "temperatures"):
                arrays[f"{r.model}/{r.layer}/{name}"] = getattr(r, name)
        atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    elif ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"

        def write(tmp: str) -> None:
            T = np.asarray(triplets, dtype=np.int64)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(sep.join(["model", "layer", "row", "i", "j", "k", "p_ij", "p_ik",
                                   "p_jk", "entropy", "fold", "temperature"]) + "\n")
                rows = np.arange(1, len(T) + 1, dtype=np.int64)[:, None]
                fmt = sep.join(["%d"] * 4 + ["%.17g"] * 4 + ["%d", "%.17g"])
                for r in results:
                    block = np.hstack([rows, T, r.probabilities, r.entropy[:, None],
                                       r.fold[:, None].astype(np.float64),
                                       r.temperatures[:, None]])
                    prefix = f"{r.model}{sep}{r.layer}{sep}".replace("%", "%%")
                    np.savetxt(fh, block, fmt=prefix + fmt)

        atomic_write(path, write)
    else:
        raise InputError(f"--per-triplet {path}: use a .npz, .csv or .tsv file name")
