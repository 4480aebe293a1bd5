"""``alignkit models``: the bundled model tables (the paper's model list, as data)."""

from __future__ import annotations

import click

from alignkit.commands._output import emit, format_option


@click.group("models")
def models() -> None:
    """The model tables: which models a study evaluated and how to build them.

    \b
    Examples:
      alignkit models ls --preset paper2023
      alignkit models ls --preset paper2023 --public --format csv
    """


@models.command("ls")
@click.option("--preset", "preset", default="paper2023", show_default=True,
              help="The model table to list (alignkit models tables lists them).")
@click.option("--public", "public_only", is_flag=True,
              help="Only the models that a model source builds by name.")
@click.option("--notes/--no-notes", default=None,
              help="Show the note column (default: with --format json or csv).")
@format_option
def ls(preset: str, public_only: bool, notes: bool | None, fmt: str) -> None:
    """List the models of a table: family, training, ImageNet top-1, parameters, source.

    SOURCE is the alignkit model specification that builds the model (with
    WEIGHTS and the paper's LAYERS), or "not public" where no model source can
    build the checkpoint the study used (the note says why). ImageNet figures
    and parameter counts are those of the study's own table.

    \b
    Examples:
      alignkit models ls --preset paper2023
      alignkit models ls --preset paper2023 --public
    """
    from alignkit.zoo import table

    cards = [c for c in table(preset) if c.public or not public_only]
    show_notes = fmt != "table" if notes is None else notes
    rows = []
    for c in cards:
        row = {k: (None if c.n_params is None else round(c.n_params / 1e6, 2))
               if k == "n_params" else v for k, v in c.row().items()}
        row = {("n_params_m" if k == "n_params" else k): v for k, v in row.items()}
        if not show_notes:
            row.pop("note")
        if fmt == "table":
            for k in ("data", "objective"):
                row.pop(k)
        rows.append(row)
    emit(rows, fmt, digits=3)
    n_public = sum(c.public for c in cards)
    click.echo(f"{len(cards)} models ({n_public} public) in {preset}", err=True)


@models.command("tables")
@format_option
def tables(fmt: str) -> None:
    """List the bundled model tables."""
    from alignkit.zoo import TABLES, table

    emit([{"name": n, "models": len(table(n)), "public": sum(c.public for c in table(n)),
           "about": TABLES[n][1]} for n in TABLES], fmt)
