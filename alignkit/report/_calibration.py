"""Report sections of the ``calibration`` and ``concept-ridge`` measures.

* calibration: a table (T, ECE with its interval, NLL, accuracy, JSD) and a reliability
  diagram per triplet set: the accuracy of each ECE bin against its mean confidence, one line
  per model/layer, the diagonal being perfect calibration.
* concept-ridge: a table (mean R² per model/layer) and bars of R² per concept dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["calibration_sections", "concept_ridge_sections", "reliability_figure",
           "r2_figure"]

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def reliability_figure(curves: list[tuple[str, list[Mapping[str, Any]]]], stem: Any,
                       title: str) -> tuple[Any, Any]:
    """Accuracy against mean confidence per non-empty bin, one line per curve."""
    from alignkit.report.figures import _pyplot, _save

    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="perfect calibration")
        ax.axhline(1 / 3, color="#cccccc", lw=1, ls=":")
        for n, (label, bins) in enumerate(curves):
            pts = [(b["confidence"], b["accuracy"], b["count"]) for b in bins
                   if b.get("count") and b.get("confidence") is not None]
            if not pts:
                continue
            xs, ys, cs = zip(*pts, strict=True)
            total = sum(cs)
            ax.plot(xs, ys, marker="o", lw=1.2, color=_COLOURS[n % len(_COLOURS)], label=label,
                    gid=f"curve-{n}")
            for x, y, c in pts:
                ax.scatter([x], [y], s=20 + 200 * c / total, color=_COLOURS[n % len(_COLOURS)],
                           alpha=0.3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean confidence (max probability) of the bin")
        ax.set_ylabel("accuracy of the bin")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        return _save(plt, fig, stem)


def r2_figure(bars: list[tuple[str, list[str], list[float | None]]], stem: Any,
              title: str) -> tuple[Any, Any]:
    """Bars of R² per dimension, one panel per model/layer."""
    from alignkit.report.figures import _pyplot, _save

    with _pyplot() as plt:
        n = len(bars)
        width = max(6.0, 0.18 * max(len(b[1]) for b in bars) + 1.5)
        fig, axes = plt.subplots(n, 1, figsize=(width, 2.6 * n), squeeze=False)
        for ax, (label, names, values) in zip(axes[:, 0], bars, strict=True):
            ys = [v if v is not None else 0.0 for v in values]
            ax.bar(range(len(ys)), ys, color="#1f77b4")
            ax.axhline(0, color="#444444", lw=0.8)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=90, fontsize=6)
            ax.set_ylabel("R²")
            ax.set_title(label, fontsize=9)
        fig.suptitle(title, fontsize=10)
        return _save(plt, fig, stem)


def calibration_sections(recs: list[dict[str, Any]], ctx: Any) -> list[Any]:
    from alignkit.report import Figure, Section, Table, _f, _res, _s, _slug, _sort_key

    rows = sorted((r for r in recs if r["kind"] == "calibration"), key=_sort_key)
    if not rows:  # no such records: no section (a report names only what it holds)
        return []
    sec = Section(_slug("calibration", ctx.anchors), "Calibration of choice probabilities")
    sec.intro = (
        "Choice probabilities softmax(T [s_ij, s_ik, s_jk]); T is fitted on the triplets of "
        "other objects (object folds) and the figures are those of the held-out triplets. "
        "ECE: equal-width bins over the maximum probability. NLL and JSD in nats.")
    table = []
    by_set: dict[str, list[tuple[str, list]]] = {}
    for r in rows:
        res = _res(r)
        ci = (f"[{_f(res.get('ci_low'))}, {_f(res.get('ci_high'))}]"
              if res.get("ci_low") is not None else "")
        table.append([_s(r.get("model")), _s(r.get("layer")), _s(r.get("dataset")),
                      _s(res.get("similarity")), _f(res.get("temperature")), _f(res.get("ece")),
                      ci, _f(res.get("nll")), _f(res.get("accuracy")),
                      _s(res.get("n_evaluated")), _f(res.get("jsd"))])
        by_set.setdefault(f"{_s(r.get('dataset'))}, {_s(res.get('similarity'))}", []).append(
            (f"{_s(r.get('model'))} ({_s(r.get('layer'))})", list(res.get("reliability") or [])))
    sec.tables.append(Table(
        ["model", "layer", "dataset", "similarity", "T", "ECE", "ECE CI", "NLL", "accuracy",
         "evaluated", "JSD"], table, [False] * 4 + [True] * 7,
        caption="calibration, every measurement"))
    for name, curves in sorted(by_set.items()):
        stem = ctx.figdir / _slug(f"reliability-{name}", ctx.taken)
        png, svg = reliability_figure(curves, stem, f"reliability: {name}")
        ctx.files.figures += [png, svg]
        sec.figures.append(Figure(png, svg, f"Reliability diagram ({name}): accuracy of each "
                                            "confidence bin against its mean confidence; "
                                            "marker area = share of triplets; dashed: "
                                            "perfect calibration, dotted: chance."))
    return [sec]


def concept_ridge_sections(recs: list[dict[str, Any]], ctx: Any) -> list[Any]:
    from alignkit.report import Figure, Section, Table, _f, _res, _s, _slug, _sort_key

    rows = sorted((r for r in recs if r["kind"] == "concept-ridge"), key=_sort_key)
    if not rows:  # no such records: no section (a report names only what it holds)
        return []
    sec = Section(_slug("concept-ridge", ctx.anchors), "Concept dimensions from features")
    sec.intro = ("Cross-validated ridge regression from features onto each dimension of a "
                 "human concept embedding (folds over objects); R² of the out-of-fold "
                 "predictions per dimension.")
    table, bars = [], []
    for r in rows:
        res = _res(r)
        ci = (f"[{_f(res.get('ci_low'))}, {_f(res.get('ci_high'))}]"
              if res.get("ci_low") is not None else "")
        table.append([_s(r.get("model")), _s(r.get("layer")), _s(r.get("dataset")),
                      _f(res.get("mean_r2")), ci, _s(res.get("n_objects")),
                      _s(res.get("folds"))])
        dims = res.get("dimensions") or []
        bars.append((f"{_s(r.get('model'))} ({_s(r.get('layer'))}), {_s(r.get('dataset'))}",
                     [_s(d.get("label")) for d in dims], [d.get("r2") for d in dims]))
    sec.tables.append(Table(["model", "layer", "embedding", "mean R²", "CI", "objects", "folds"],
                            table, [False] * 3 + [True] * 4,
                            caption="concept-ridge, every measurement"))
    bars = [b for b in bars if b[1]]
    if bars:
        stem = ctx.figdir / _slug("concept-ridge-r2", ctx.taken)
        png, svg = r2_figure(bars, stem, "R² per concept dimension")
        ctx.files.figures += [png, svg]
        sec.figures.append(Figure(png, svg, "Out-of-fold R² of each concept dimension, one "
                                            "panel per model/layer."))
    return [sec]
