"""``alignkit score failures``: the triplets that all or most entries of a store get wrong."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from alignkit.commands._options import OutputFile
from alignkit.commands._output import atomic_write, emit, format_option, render_csv


def _scoring_options(fn: Any) -> Any:
    """The options of ``score ooo`` that decide per-triplet correctness (no bootstrap)."""
    from alignkit.commands.score import _click_type
    from alignkit.measures import get_measure, option_specs

    for name, spec, default in reversed(option_specs(get_measure("ooo").Options)):
        if not spec.cli or not spec.identity:
            continue
        fn = click.option("--" + name.replace("_", "-"), name, type=_click_type(spec),
                          default=default, help=spec.help_text())(fn)
    return fn


@click.command("failures", short_help="Triplets that all or most entries of a store get wrong.")
@click.argument("store", type=click.Path(exists=False))
@click.option("--triplets", "triplets_src", required=True, multiple=True,
              help="Triplet file or bundled name (as for 'score ooo'); repeat it for the union.")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things'.")
@click.option("--model", default=None, help="Only this model's entries.")
@click.option("--layer", default=None, help="Only this layer's entries.")
@click.option("--transform", default=None,
              help="Apply a probe transform stored under each entry (by name) first.")
@_scoring_options
@click.option("--min-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0,
              show_default=True,
              help="List a triplet when at least this fraction of the entries gets it wrong "
                   "(1: all of them, the paper's failures).")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Keep only the first N failures (default: all).")
@click.option("--concepts", default=None,
              help="Concept table naming the objects (default: THINGS words for THINGS ids).")
@click.option("--out", "out", type=OutputFile((".csv", ".tsv", ".json")), default=None,
              help="Also write the failures to a .csv, .tsv or .json file.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append the analysis to the store's results table (the report shows it as a "
                   "failure gallery).")
@format_option
def score_failures(store: str, triplets_src: tuple[str, ...], object_ids: str | None,
                   model: str | None, layer: str | None, transform: str | None,
                   min_fraction: float, top: int | None, concepts: str | None, out: str | None,
                   device: str, record: bool, fmt: str, **scoring: Any) -> None:
    """Triplets that all (or at least --min-fraction) of STORE's entries get wrong.

    Every entry (model/layer) is scored on the triplets as 'score ooo' scores
    it (same similarity, same tie rule); the triplets most entries get wrong
    are listed, ranked by the fraction of entries wrong, with the concept
    words and the odd one out most of the wrong entries pick.

    \b
    Examples:
      alignkit score failures feats.zarr --triplets things-test20k
      alignkit score failures feats.zarr --triplets things-test20k --min-fraction 0.8 \\
          --out failures.csv
    """
    from alignkit.commands.score import _triplet_union
    from alignkit.score.failures import consistent_failures

    trip = _triplet_union(triplets_src, object_ids)
    res = consistent_failures(store, trip, None, min_fraction=min_fraction, model=model,
                              layer=layer, transform=transform, concepts=concepts,
                              device=device, top=top, **scoring)
    listed = "" if len(res.failures) == res.n_matching else f" (first {len(res.failures)} listed)"
    click.echo(f"{res.n_matching} triplet(s) of {res.n_triplets}{listed} wrong for at least "
               f"{min_fraction:.0%} of the {len(res.entries)} entries ({res.n_all_wrong} wrong "
               f"for all; "
               f"{res.similarity} similarity, {res.ties} ties)", err=True)
    if record:
        from alignkit.results import ResultsTable, record_from_result

        table = ResultsTable.for_store(store)
        table.append(record_from_result("failures", res.to_dict(), store=str(store)))
        click.echo(f"1 result recorded in {table.path}", err=True)
    if out:
        _write(out, res)
        click.echo(f"failures written to {out}", err=True)
    emit(res.rows(), fmt, payload=res.to_dict() if fmt == "json" else None)


def _write(path: str, res: Any) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        text = json.dumps(res.to_dict(), indent=2, allow_nan=False) + "\n"
    else:
        text = render_csv(res.rows())
        if ext == ".tsv":
            import csv
            import io

            buf = io.StringIO()
            w = csv.writer(buf, delimiter="\t", lineterminator="\n")
            rows = res.rows()
            cols = list(rows[0]) if rows else list(_columns())
            w.writerow(cols)
            for r in rows:
                w.writerow([r[c] for c in cols])
            text = buf.getvalue()
        elif not res.rows():
            text = ",".join(_columns()) + "\n"
        else:
            text = text if text.endswith("\n") else text + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


def _columns() -> tuple[str, ...]:
    from alignkit.score.failures import FAILURE_COLUMNS

    return FAILURE_COLUMNS
