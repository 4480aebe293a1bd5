"""RDM figures of the RSA section: a human/model RDM heatmap pair and a measure-vs-measure
scatter.

The heatmaps need the RDMs themselves, which records do not hold: the model RDM is
recomputed from the store entry a record names (the report context's ``store`` when it
has one, else the record's ``provenance.store`` when that folder exists) with the record's
RDM method, and the human RDM is read again from the record's reference. Rows are ordered
by THINGS category when every stimulus is a THINGS uniqueID, else kept in the human RDM's
order. When a store or reference cannot be read the figure is skipped and the returned note
says why.

The scatter is generic over two record kinds: one point per (model, layer, transform)
holding a record of both, at (value of kind x, value of kind y).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["category_order", "rdm_heatmap_figure", "measure_scatter_figure", "rdm_figures"]

_CATEGORY_COLUMNS = ("Top-down Category (manual selection)", "Top-down Category (WordNet)",
                     "Bottom-up Category (Human Raters)")


def category_order(ids: Sequence[str]) -> tuple[np.ndarray, list[str] | None]:
    """Row order grouping THINGS ids by category (then by id), and the category per row.

    Returns ``(arange(n), None)`` when some id is not a THINGS uniqueID.
    """
    from alignkit.data import load_concepts

    ids = [str(i) for i in ids]
    concepts = load_concepts()
    lookup = {v: k for k, v in enumerate(concepts.ids.tolist())}
    if not all(i in lookup for i in ids):
        return np.arange(len(ids)), None
    cats = []
    for i in ids:
        row = lookup[i]
        cat = next((concepts.table[c][row].split(",")[0].strip() for c in _CATEGORY_COLUMNS
                    if c in concepts.table and concepts.table[c][row].strip()), "")
        cats.append(cat or "uncategorised")
    order = np.array(sorted(range(len(ids)), key=lambda k: (cats[k] == "uncategorised",
                                                            cats[k], ids[k])), dtype=np.int64)
    return order, [cats[k] for k in order]


def rdm_heatmap_figure(human: np.ndarray, model: np.ndarray, stem: Path, *, title: str,
                       categories: Sequence[str] | None = None,
                       labels: tuple[str, str] = ("human", "model")) -> tuple[Path, Path]:
    """Two heatmaps side by side (rows already ordered), each in rank-percentile colour
    (the RDMs' scales differ; ranks are what a rank comparison sees)."""
    from scipy.stats import rankdata

    from alignkit.report.figures import _pyplot, _save

    def percentile(M: np.ndarray) -> np.ndarray:
        n = M.shape[0]
        iu = np.triu_indices(n, 1)
        out = np.zeros_like(M, dtype=np.float64)
        r = (rankdata(M[iu]) - 0.5) / len(iu[0]) * 100.0
        out[iu] = r
        out[(iu[1], iu[0])] = r
        return out

    with _pyplot() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 5.0))
        im = None
        for side, (ax, M, name) in enumerate(zip(axes, (human, model), labels, strict=True)):
            im = ax.imshow(percentile(M), cmap="viridis", vmin=0, vmax=100,
                           interpolation="nearest")
            ax.set_title(name)
            ax.set_xlabel("stimulus")
            if side == 0:
                ax.set_ylabel("stimulus")
            if categories is not None:
                bounds = [k for k in range(1, len(categories)) if categories[k] != categories[k - 1]]
                for k in bounds:
                    ax.axhline(k - 0.5, color="white", lw=0.6)
                    ax.axvline(k - 0.5, color="white", lw=0.6)
                starts = [0, *bounds]
                ends = [*bounds, len(categories)]
                ax.set_xticks([])
                if len(starts) <= 20 and side == 0:
                    ax.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)])
                    ax.set_yticklabels([categories[s] for s in starts], fontsize=6)
                else:
                    ax.set_yticks([])
        cbar = fig.colorbar(im, ax=list(axes), shrink=0.8)
        cbar.set_label("dissimilarity (percentile of the pairs)")
        fig.suptitle(title)
        return _save(plt, fig, stem)


def measure_scatter_figure(points: Sequence[tuple[str, float, float]], stem: Path, *,
                           xlabel: str, ylabel: str, title: str) -> tuple[Path, Path]:
    """One labelled point per (label, x, y), with the Pearson r of the points in the title."""
    from alignkit.report.figures import _pyplot, _save

    xs = np.array([p[1] for p in points])
    ys = np.array([p[2] for p in points])
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(6.5, 5.0))
        ax.scatter(xs, ys, s=28, color="#1f77b4", zorder=3, gid="measure-points")
        for label, x, y in points:
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(points) >= 3 and xs.std() > 0 and ys.std() > 0:
            title = f"{title} (Pearson r = {np.corrcoef(xs, ys)[0, 1]:.2f}, {len(points)} points)"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        return _save(plt, fig, stem)


def _store_of(rec: Mapping[str, Any], ctx: Any) -> str | None:
    store = getattr(ctx, "store", None)
    if store is not None:
        return str(getattr(store, "path", store))
    prov = rec.get("provenance")
    path = prov.get("store") if isinstance(prov, Mapping) else None
    return str(path) if path and os.path.isdir(str(path)) else None


def _heatmap(rec: Mapping[str, Any], ctx: Any, stem: Path) -> tuple[Any, str]:
    """``(figure or None, note)`` for one RSA record."""
    from alignkit.errors import AlignkitError
    from alignkit.report.render import Figure
    from alignkit.score.rsa import model_rdm

    res = rec.get("result") if isinstance(rec.get("result"), Mapping) else {}
    prov = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else {}
    label = f"{rec.get('model')} ({rec.get('layer')})"
    store = _store_of(rec, ctx)
    if store is None:
        return None, (f"The RDM heatmaps of {label} are skipped: the embedding store it was "
                      "scored from is not available to the report.")
    if rec.get("transform") is not None:
        return None, f"The RDM heatmaps of {label} are skipped: it was scored after a transform."
    ref = prov.get("reference") if isinstance(prov.get("reference"), Mapping) else {}
    source = ref.get("source") or res.get("reference")
    try:
        from alignkit.data import align_by_ids, load_rdm
        from alignkit.store import EmbeddingStore

        human = load_rdm(str(source))
        entry = EmbeddingStore(store, mode="r").entry(str(rec.get("model")), str(rec.get("layer")))
        ia, ib = align_by_ids(entry.ids, human.ids)
        D = model_rdm(np.asarray(entry.features())[ia], str(res.get("rdm_method") or "correlation"))
        H = human.matrix[np.ix_(ib, ib)]
        ids = np.asarray(human.ids)[ib]
    except (AlignkitError, OSError, ValueError) as exc:
        return None, f"The RDM heatmaps of {label} are skipped: {exc}"
    order, cats = category_order(ids)
    D, H = D[np.ix_(order, order)], H[np.ix_(order, order)]
    how = "rows grouped by THINGS category" if cats is not None else "rows in the human RDM's order"
    png, svg = rdm_heatmap_figure(
        H, D, stem, title=f"{source}: human vs {label}, {res.get('rdm_method')} RDM",
        categories=cats, labels=(f"human ({source})", label))
    ctx.files.figures += [png, svg]
    value = res.get("value")
    value_text = f"{float(value):.4f}" if isinstance(value, (int, float)) else "not recorded"
    caption = (f"Human RDM ({source}) and the RDM of {label} ({res.get('rdm_method')}), "
               f"{len(ids)} stimuli, {how}; colour is the rank percentile of each pair's "
               f"dissimilarity. Their {res.get('compare')} comparison is {value_text}.")
    return Figure(png, svg, caption), ""


def _axis_label(kind: str) -> str:
    from alignkit.errors import InputError
    from alignkit.measures import get_measure

    try:
        measure = get_measure(kind)
    except InputError:
        return kind
    return f"{measure.title} ({measure.value_label})"


def _condition(r: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes two records of one kind different measurements, as far as a scatter cares:
    the data set and the comparison / RDM / similarity options."""
    res = r.get("result") if isinstance(r.get("result"), Mapping) else {}
    return tuple(str(v) for v in (r.get("dataset"), res.get("compare"), res.get("rdm_method"),
                                  res.get("similarity")) if v is not None)


def _scatter(recs: Sequence[Mapping[str, Any]], kind_x: str, kind_y: str, ctx: Any) -> Any:
    """The scatter of two kinds, each taken in its most frequent condition (one record per
    model, layer and transform)."""
    from collections import Counter

    from alignkit.report import _slug, _value
    from alignkit.report.render import Figure

    def key(r: Mapping[str, Any]) -> tuple[str, str, str]:
        return (str(r.get("model")), str(r.get("layer")), str(r.get("transform")))

    values: dict[str, dict[tuple[str, str, str], float]] = {}
    chosen: dict[str, tuple[str, ...]] = {}
    for kind in (kind_x, kind_y):
        rows = [r for r in recs if r.get("kind") == kind and _value(r) is not None]
        if not rows:
            return None
        counts = Counter(_condition(r) for r in rows)
        chosen[kind] = min(counts, key=lambda c: (-counts[c], c))
        values[kind] = {}
        for r in rows:
            if _condition(r) == chosen[kind]:
                values[kind].setdefault(key(r), _value(r))
    xs, ys = values[kind_x], values[kind_y]
    common = sorted(set(xs) & set(ys))
    if len(common) < 2:
        return None
    points = [(f"{m} ({lay})" + ("" if t == "None" else f" +{t}"), xs[k], ys[k])
              for k in common for (m, lay, t) in [k]]
    stem = ctx.figdir / _slug(f"scatter-{kind_x}-{kind_y}", ctx.taken)
    png, svg = measure_scatter_figure(points, stem, xlabel=_axis_label(kind_x),
                                      ylabel=_axis_label(kind_y),
                                      title=f"{kind_y} against {kind_x}")
    ctx.files.figures += [png, svg]
    return Figure(png, svg, f"Each model/layer's {kind_y} value ({', '.join(chosen[kind_y])}) "
                            f"against its {kind_x} value ({', '.join(chosen[kind_x])}); "
                            f"{len(points)} entries have both.")


def rdm_figures(recs: Sequence[Mapping[str, Any]], ctx: Any, *,
                max_heatmaps: int = 3) -> tuple[list[Any], list[str]]:
    """The RSA section's extra figures and notes.

    Heatmaps: per reference, the raw-feature record with the highest value (at most
    ``max_heatmaps``). Scatters: RSA against each other kind recorded for the same entries.
    """
    from alignkit.report import _slug, _value

    figures: list[Any] = []
    notes: list[str] = []
    rsa = [r for r in recs if r.get("kind") == "rsa" and _value(r) is not None]
    best: dict[str, Mapping[str, Any]] = {}
    for r in rsa:
        ref = str(r.get("dataset"))
        if r.get("transform") is None and (ref not in best or _value(r) > _value(best[ref])):
            best[ref] = r
    for ref in sorted(best)[:max_heatmaps]:
        stem = ctx.figdir / _slug(f"rdm-{ref}", ctx.taken)
        fig, note = _heatmap(best[ref], ctx, stem)
        if fig is not None:
            figures.append(fig)
        elif note:
            notes.append(note)
    for kind in sorted({str(r.get("kind")) for r in recs} - {"rsa"}):
        fig = _scatter(recs, kind, "rsa", ctx)
        if fig is not None:
            figures.append(fig)
    return figures, notes
