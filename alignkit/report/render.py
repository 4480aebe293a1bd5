"""Rendering a report as one HTML page and one Markdown file.

A :class:`Report` is plain data: sections of pre-formatted tables and figure
files. :func:`render_html` writes a page with inline CSS whose images are the
PNG files next to it (``figures/*.png``, each linked to its SVG twin) or, with
``embed=True``, data URIs, so the page needs nothing but itself.
:func:`render_markdown` writes the same content as GitHub-flavoured Markdown.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Table", "Figure", "Section", "Report", "render_html", "render_markdown"]


@dataclass
class Table:
    """A table of already formatted cells.

    Attributes:
        columns: header cells.
        rows: body rows, one string per column.
        numeric: per column, whether it holds numbers (right-aligned).
        caption: a line shown above the table, or "".
        collapsed: whether HTML shows it folded (long tables).
    """

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    collapsed: bool = False


@dataclass
class Figure:
    """A figure saved as ``png`` and ``svg`` (paths inside the report folder)."""

    png: Path
    svg: Path
    caption: str


@dataclass
class Section:
    """One section; ``note`` replaces the content of a section without data."""

    anchor: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    """A whole report: a title, a line on where it came from, and sections."""

    title: str
    subtitle: str
    sections: list[Section]


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}.subtitle{color:#555;margin-top:0}
nav ul{columns:2;padding-left:1.2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92em}.note{background:#fff8e1;border-left:4px solid #e69f00;
padding:.5em .8em}
"""


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _html_table(t: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in t.columns)
    body = []
    for row in t.rows:
        cells = "".join(
            f'<td class="num">{esc(v)}</td>' if num else f"<td>{esc(v)}</td>"
            for v, num in zip(row, t.numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    caption = f"<caption>{esc(t.caption)}</caption>" if t.caption and not t.collapsed else ""
    table = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if t.collapsed:
        summary = esc(t.caption or "table") + f" ({len(t.rows)} rows)"
        return f"<details><summary>{summary}</summary>{table}</details>"
    return table


def _img_src(png: Path, root: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    return _rel(png, root)


def render_html(report: Report, root: Path, *, embed: bool = False) -> str:
    """The report as a standalone HTML5 page.

    Args:
        report: the content.
        root: the folder the page will be written to (image paths are relative to it).
        embed: embed the PNG images as data URIs instead of referencing the files.
    """
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="subtitle">{esc(report.subtitle)}</p>',
        "<nav><ul>",
        *(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in report.sections),
        "</ul></nav>",
    ]
    for s in report.sections:
        out.append(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>')
        if s.intro:
            out.append(f"<p>{esc(s.intro)}</p>")
        if s.note:
            out.append(f'<p class="note">{esc(s.note)}</p>')
        for f in s.figures:
            out.append(
                f'<figure><img src="{esc(_img_src(f.png, root, embed))}" alt="{esc(f.caption)}">'
                f"<figcaption>{esc(f.caption)} "
                f'(<a href="{esc(_rel(f.svg, root))}">SVG</a>)</figcaption></figure>'
            )
        out.extend(_html_table(t) for t in s.tables)
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_cell(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [f"**{_md_cell(t.caption)}**", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---:" if num else ":---" for num in t.numeric) + "|")
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in t.rows]
    return "\n".join(lines)


def render_markdown(report: Report, root: Path) -> str:
    """The report as GitHub-flavoured Markdown (images referenced relative to ``root``)."""
    out = [f"# {report.title}", "", report.subtitle, ""]
    out += [f"- [{s.title}](#{s.anchor})" for s in report.sections] + [""]
    for s in report.sections:
        out += [f'<a id="{s.anchor}"></a>', "", f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.note:
            out += [f"> {s.note}", ""]
        for f in s.figures:
            alt = f.caption.replace("[", "(").replace("]", ")")
            out += [
                f"![{alt}]({_rel(f.png, root)})",
                "",
                f"*{f.caption}* ([SVG]({_rel(f.svg, root)}))",
                "",
            ]
        for t in s.tables:
            out += [_md_table(t), ""]
    return "\n".join(out).rstrip("\n") + "\n"
