"""The CKA and shape report sections: the measures' tables and figures, and the
model-by-model CKA matrix (nothing at all for a measure without records).

The matrix is computed from the store the CKA records name in their provenance (linear
CKA between every pair of the entries those records scored, rows matched by id); a store
that is no longer readable gets a note instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Entries beyond which the cells are not annotated with their values.
_ANNOTATE_MAX = 12


def draw_matrix(sim: Any, out: str | os.PathLike[str]) -> list[Path]:
    """Draw a :class:`alignkit.score.cka.SimilarityMatrix` as a heat map.

    ``out``: a file (``.png``, ``.svg``, ``.pdf``) or a stem without suffix (then a PNG and
    an SVG are written). Returns the files written.
    """
    import numpy as np

    from alignkit.report.figures import _pyplot, _save

    out = Path(out)
    m = len(sim.labels)
    V = np.asarray(sim.values, dtype=float)
    cka = sim.measure == "cka"
    with _pyplot() as plt:
        size = max(4.0, 0.55 * m + 2.5)
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
        vmin, vmax = (0.0, 1.0) if cka else (0.0, float(np.nanmax(V)) if np.isfinite(V).any() else 1.0)
        im = ax.imshow(V, vmin=vmin, vmax=vmax or 1.0, cmap="viridis" if cka else "magma_r")
        ax.set_xticks(range(m), sim.labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(m), sim.labels, fontsize=8)
        if m <= _ANNOTATE_MAX:
            for i in range(m):
                for j in range(m):
                    if np.isfinite(V[i, j]):
                        mid = (vmin + (vmax or 1.0)) / 2
                        light = V[i, j] < mid if cka else V[i, j] > mid
                        ax.text(j, i, f"{V[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if light else "black")
        what = "linear CKA" if cka and sim.options.get("kernel", "linear") == "linear" else (
            "RBF CKA" if cka else f"{sim.options.get('metric', 'angular')} shape distance")
        if cka and sim.options.get("debiased"):
            what = "debiased " + what
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=what)
        ax.set_title(f"{what} between entries")
        if out.suffix:
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                fig.savefig(out, bbox_inches="tight")
            finally:
                plt.close(fig)
            return [out]
        return list(_save(plt, fig, out))


def cka_sections(records: list[dict[str, Any]], ctx: Any) -> list[Any]:
    """The generic CKA section, then one model-by-model matrix per store of the records."""
    from alignkit.measures import get_measure
    from alignkit.report import _generic_section, _slug
    from alignkit.report.render import Figure, Section

    rows = [r for r in records if r.get("kind") == "cka"]
    if not rows:  # a report without CKA records says nothing about CKA
        return []
    out = [_generic_section(get_measure("cka"), records, ctx)]
    stores: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        store = (r.get("provenance") or {}).get("store")
        if store and r.get("model") is not None and r.get("layer") is not None:
            stores.setdefault(str(store), set()).add((str(r["model"]), str(r["layer"])))
    if not stores:
        return out
    sec = Section(_slug("cka-matrix", ctx.anchors), "Model-by-model CKA")
    sec.intro = ("Linear CKA between the representations themselves (every pair of the "
                 "entries scored above, on the stimuli both hold), from the store's features.")
    notes = []
    for store, wanted in sorted(stores.items()):
        if len(wanted) < 2:
            continue
        try:
            sim = _store_matrix(store, wanted)
        except Exception as exc:  # the store moved or changed: say so, keep the report
            notes.append(f"{store}: not readable ({type(exc).__name__}: {exc})")
            continue
        stem = ctx.figdir / _slug("cka-matrix", ctx.taken)
        png, svg = draw_matrix(sim, stem)
        ctx.files.figures += [png, svg]
        n = sim.n_stimuli[~(sim.n_stimuli == 0)]
        counts = f"{int(n.min())}" if n.size and n.min() == n.max() else (
            f"{int(n.min())} to {int(n.max())}" if n.size else "no")
        sec.figures.append(Figure(png, svg, f"Linear CKA between the {len(sim.labels)} entries "
                                  f"of {store} ({counts} shared stimuli per pair). Blank: "
                                  "fewer than 4 shared stimuli."))
    if notes:
        sec.intro += " " + "; ".join(notes) + "."
    if not sec.figures and not notes:
        return out
    if not sec.figures:
        sec.note = "No model-by-model matrix: " + "; ".join(notes)
    out.append(sec)
    return out


def shape_sections(records: list[dict[str, Any]], ctx: Any) -> list[Any]:
    """The generic shape-distance section, only when there are shape records."""
    from alignkit.measures import get_measure
    from alignkit.report import _generic_section

    if not any(r.get("kind") == "shape" for r in records):
        return []
    return [_generic_section(get_measure("shape"), records, ctx)]


def _store_matrix(store: str, wanted: set[tuple[str, str]]) -> Any:
    from alignkit.score.cka import similarity_matrix
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store, mode="r")

    class _Subset:
        path = st.path

        def entries(self) -> list[tuple[str, str]]:
            return [tuple(e) for e in st.entries() if tuple(e) in wanted]

        def entry(self, model: str, layer: str) -> Any:
            return st.entry(model, layer)

    return similarity_matrix(_Subset(), "cka")
