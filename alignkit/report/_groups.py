"""Report sections: accuracy per group of triplets, and the failure gallery.

* ``Accuracy per group``: odd-one-out records that carry ``per_group`` (``score ooo
  --group-by``; the Levels data's coarse, fine and boundary triplets) get one figure and
  one table per triplet set and grouping: bars per model and group, with the records'
  bootstrap intervals, or 95% Wilson intervals from the counts where a record has none
  (the caption says which).
* ``Failure gallery``: ``failures`` records (``score failures``) get a table of the
  triplets most entries get wrong, by concept word, and, when the entries' image set is
  recorded in the store and its files are still there, a figure of those triplets' images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alignkit.report.render import Figure, Section, Table

__all__ = ["group_sections", "failure_sections", "image_file"]

#: Failures shown per record in the gallery's table and figure.
GALLERY_ROWS = 20
GALLERY_IMAGES = 6
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG", ".bmp", ".webp")


def _res(rec: Mapping[str, Any]) -> Mapping[str, Any]:
    res = rec.get("result")
    return res if isinstance(res, Mapping) else {}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


def _f(v: Any) -> str:
    x = _num(v)
    return "–" if x is None else f"{x:.4f}"


def _pct(v: Any) -> str:
    x = _num(v)
    return "–" if x is None else f"{100 * x:g}%"


def _groups_of(rec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pg = _res(rec).get("per_group")
    rows = pg.get("groups") if isinstance(pg, Mapping) else None
    return [g for g in rows if isinstance(g, Mapping)] if isinstance(rows, list) else []


def _interval(g: Mapping[str, Any]) -> tuple[tuple[float, float] | None, str]:
    lo, hi = _num(g.get("ci_low")), _num(g.get("ci_high"))
    if lo is not None and hi is not None:
        return (lo, hi), "bootstrap"
    n, c = g.get("triplets"), g.get("correct")
    if isinstance(n, int) and isinstance(c, int) and n > 0 and 0 <= c <= n:
        from alignkit.report import wilson_interval

        return wilson_interval(c, n), "Wilson"
    return None, "none"


def group_sections(recs: list[dict[str, Any]], ctx: Any) -> list[Section]:
    """One section of per-group figures and tables (empty list: no record has groups)."""
    from alignkit.report import CHANCE, _label, _slug, _sort_key, _transform_cell
    from alignkit.report.figures import BarSeries, accuracy_figure

    todo = sorted((r for r in recs if r.get("kind") == "ooo" and _groups_of(r)), key=_sort_key)
    if not todo:
        return []
    sec = Section(_slug("groups", ctx.anchors), "Accuracy per group of triplets", intro=(
        "Odd-one-out accuracy on each group of triplets (for the Levels data: coarse = three "
        "classes, fine = one class, boundary = two classes), per model. Error bars are the "
        "records' percentile bootstrap intervals (the same resamples as the overall interval) "
        "where they carry one, else 95% Wilson intervals from the group's counts."))
    panels: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in todo:
        res = _res(r)
        source = str((res.get("per_group") or {}).get("source") or "")
        key = (str(r.get("dataset")), str(res.get("similarity")), str(res.get("ties")), source)
        panels.setdefault(key, []).append(r)
    for (dataset, sim, ties, source), rows in panels.items():
        names = list(dict.fromkeys(str(g.get("group")) for r in rows for g in _groups_of(r)))
        labels = [_label(r) + ("" if r.get("transform") is None else f" [{_transform_cell(r)}]")
                  for r in rows]
        kinds: set[str] = set()
        series = []
        for name in names:
            vals: list[float | None] = []
            ivs: list[tuple[float, float] | None] = []
            for r in rows:
                g = next((g for g in _groups_of(r) if str(g.get("group")) == name), None)
                vals.append(None if g is None else _num(g.get("accuracy")))
                iv, kind = _interval(g) if g is not None else (None, "none")
                ivs.append(iv)
                kinds.add(kind)
            series.append(BarSeries(name, vals, ivs))
        title = f"{dataset}; {sim} similarity, {ties} ties"
        stem = ctx.figdir / _slug(f"groups-{dataset}-{sim}-{ties}", ctx.taken)
        png, svg = accuracy_figure(labels, series, stem, chance=CHANCE, ceiling=None,
                                   title=f"Accuracy per group: {title}")
        ctx.files.figures += [png, svg]
        how = " and ".join(sorted(k for k in kinds if k != "none")) or "no"
        sec.figures.append(Figure(png, svg, f"Accuracy per group ({source}) on {title}; one "
                                  f"bar per group and model; error bars: {how} intervals "
                                  "(see the table)."))
        body = []
        for r, label in zip(rows, labels, strict=True):
            for g in _groups_of(r):
                iv, kind = _interval(g)
                body.append([label, str(g.get("group")), str(g.get("triplets")),
                             str(g.get("correct")), _f(g.get("accuracy")),
                             "–" if iv is None else f"[{iv[0]:.4f}, {iv[1]:.4f}]", kind])
        sec.tables.append(Table(["model", "group", "triplets", "correct", "accuracy",
                                 "interval", "interval kind"], body,
                                [False, False, True, True, True, True, False],
                                caption=f"Accuracy per group: {title} (groups: {source})"))
    return [sec]


def image_file(root: str | Path, stimulus: str) -> Path | None:
    """The image file of a stimulus id under an image root, when there is one.

    Ids are relative paths without extension (a folder of images) or concept ids (one
    folder per concept, THINGS): the first image of that folder, by name.
    """
    base = Path(root)
    if not base.is_dir():
        return None
    direct = base / stimulus
    if direct.is_file():
        return direct
    for ext in _IMAGE_EXT:
        p = base / f"{stimulus}{ext}"
        if p.is_file():
            return p
    if direct.is_dir():
        files = sorted(p for p in direct.iterdir() if p.suffix in _IMAGE_EXT)
        return files[0] if files else None
    return None


def _gallery_figure(failures: list[Mapping[str, Any]], root: str, stem: Path) -> Path | None:
    """A grid of the failures' images (one row per triplet); None when an image is missing."""
    rows = []
    for f in failures:
        ids = f.get("ids")
        if not isinstance(ids, list) or len(ids) != 3:
            return None
        paths = [image_file(root, str(i)) for i in ids]
        if any(p is None for p in paths):
            return None
        rows.append((f, paths))
    if not rows:
        return None
    from alignkit.report.figures import _pyplot, _save

    with _pyplot() as plt:
        from PIL import Image

        fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.3 * len(rows)), squeeze=False)
        for r, (f, paths) in enumerate(rows):
            words = [f.get("word_i"), f.get("word_j"), f.get("word_k")]
            for c in range(3):
                ax = axes[r][c]
                with Image.open(paths[c]) as im:
                    im.thumbnail((256, 256))
                    ax.imshow(im.convert("RGB"))
                ax.set_xticks([])
                ax.set_yticks([])
                odd = c == 2
                picked = str(words[c]) == str(f.get("model_odd"))
                tag = " (human odd)" if odd else (" (models' odd)" if picked else "")
                ax.set_title(f"{words[c]}{tag}", fontsize=8, color="#D55E00" if odd else "black")
            axes[r][0].set_ylabel(f"#{f.get('rank')}: {_f(f.get('fraction_wrong'))} wrong",
                                  fontsize=8)
        png, _ = _save(plt, fig, stem)
    return png


def failure_sections(recs: list[dict[str, Any]], ctx: Any) -> list[Section]:
    """The failure gallery (empty list: no failure analysis is recorded)."""
    from alignkit.report import _slug, _sort_key

    todo = sorted((r for r in recs if r.get("kind") == "failures"), key=_sort_key)
    if not todo:
        return []
    sec = Section(_slug("failures", ctx.anchors), "Failure gallery", intro=(
        "Triplets that all or most of the scored entries get wrong (the paper's failure "
        "analysis), ranked by the fraction of entries wrong; the human's odd one out is the "
        "third word. Every entry is scored with the similarity and tie rule named in each "
        "caption. Images are shown when the entries' image set is recorded and present."))
    notes = []
    for r in todo:
        res = _res(r)
        fails = [f for f in res.get("failures") or [] if isinstance(f, Mapping)]
        what = (f"{r.get('dataset')}: {res.get('n_entries')} entries, {res.get('similarity')} "
                f"similarity, {res.get('ties')} ties, at least "
                f"{_pct(res.get('min_fraction'))} of the entries wrong")
        counts = (f"{res.get('n_failures')} of {res.get('n_triplets')} triplets, "
                  f"{res.get('n_all_wrong')} wrong for every entry")
        if isinstance(res.get("n_listed"), int) and res.get("n_listed") != res.get("n_failures"):
            counts += f"; the first {res.get('n_listed')} were kept in the record"
        body = [[str(f.get("rank")), str(f.get("row")), str(f.get("word_i")),
                 str(f.get("word_j")), str(f.get("word_k")), str(f.get("model_odd")),
                 _f(f.get("fraction_wrong")), f"{f.get('n_wrong')}/{f.get('n_entries')}"]
                for f in fails[:GALLERY_ROWS]]
        sec.tables.append(Table(
            ["rank", "triplet row", "object 1", "object 2", "human odd one out",
             "models' odd one out", "fraction wrong", "entries wrong"], body,
            [True, True, False, False, False, False, True, True],
            caption=f"Failures: {what}; {counts}" + (
                f" (first {GALLERY_ROWS} shown)" if len(fails) > GALLERY_ROWS else "")))
        images = res.get("images") if isinstance(res.get("images"), Mapping) else None
        if images and images.get("root"):
            stem = ctx.figdir / _slug(f"failures-{r.get('dataset')}", ctx.taken)
            png = _gallery_figure(fails[:GALLERY_IMAGES], str(images["root"]), stem)
            if png is not None:
                ctx.files.figures += [png, png.with_suffix(".svg")]
                sec.figures.append(Figure(png, png.with_suffix(".svg"), (
                    f"The first {min(len(fails), GALLERY_IMAGES)} failures of {what}: each "
                    "row one triplet, the human's odd one out last (red title).")))
            else:
                notes.append(f"{what}: the image set {images['root']} is not available here "
                             "(or lacks an image), so words only.")
        else:
            notes.append(f"{what}: no image set is recorded for these entries, so words only.")
    if notes:
        sec.note = " ".join(notes)
    return [sec]
