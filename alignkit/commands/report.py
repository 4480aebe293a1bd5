"""``alignkit report``: an HTML and Markdown report of recorded results."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("source", metavar="STORE_OR_RESULTS", type=click.Path(exists=False))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for report.html, report.md and figures/ (created if needed).",
)
@click.option("--title", default=None, help="Title of the report (default: from the source name).")
@click.option(
    "--embed/--no-embed",
    default=False,
    show_default=True,
    help="Embed the PNG figures in report.html as data URIs (a single-file page).",
)
@click.option(
    "--min-concept-triplets",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Leave out of the per-concept figure the dimensions with fewer triplets (the caption "
    "says how many were left out).",
)
def report(
    source: str, out: str, title: str | None, embed: bool, min_concept_triplets: int
) -> None:
    """Write a report of the results recorded in a store or a results file.

    STORE_OR_RESULTS is a store folder (its results.jsonl is read) or a .jsonl
    results file. The report holds zero-shot vs probing odd-one-out accuracy per
    model (with chance and the noise ceiling), RSA with and without the probe
    transform, accuracy per human concept dimension and accuracy against model
    attributes, as tables and as PNG and SVG figures. The paths written are
    printed on stdout.

    \b
    Example:
      alignkit report features.zarr --out report/
      alignkit report runs.jsonl --out report/ --title "Layer sweep" --embed
      alignkit report features.zarr --out report/ --min-concept-triplets 100
    """
    from alignkit.report import write_report

    files = write_report(
        source, out, title=title, embed=embed, min_concept_triplets=min_concept_triplets
    )
    click.echo(str(files.html))
    click.echo(str(files.markdown))
    for path in files.figures:
        click.echo(str(path))
    for name in files.omitted:
        click.echo(f"alignkit: section omitted for lack of data: {name}", err=True)
