"""Rendering results on stdout as an aligned table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import click

FORMATS = ("table", "json", "csv")

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format on stdout.",
)


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def render_table(rows: Sequence[dict[str, Any]], digits: int = 5) -> str:
    """An aligned plain-text table; numbers right-aligned."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0].keys())
    cells = [[_cell(r.get(c), digits) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in cols]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def render_csv(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue().rstrip("\n")


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    *,
    payload: Any = None,
    digits: int = 5,
) -> None:
    """Print ``rows`` as a table or CSV, or ``payload`` (default: rows) as JSON."""
    if fmt == "json":
        click.echo(json.dumps(rows if payload is None else payload, indent=2, allow_nan=False))
    elif fmt == "csv":
        click.echo(render_csv(rows))
    else:
        click.echo(render_table(rows, digits=digits))


def atomic_write(path: str, writer: Callable[[str], None]) -> None:
    """Write a file through a temporary sibling and rename it into place.

    ``writer`` receives the temporary path; an interruption never leaves a
    half-written file at ``path``.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".alignkit-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
