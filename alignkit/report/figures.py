"""Matplotlib figures of a report, each saved as PNG and SVG.

Every function takes plain data (already reduced from results records), draws
one figure with labelled axes, a title and a legend, writes
``<stem>.png`` and ``<stem>.svg`` and returns their paths. matplotlib is
imported inside the functions with the Agg backend, so importing this module
costs nothing and no display is ever needed. Output is deterministic (no
timestamps, fixed SVG ids) so that reports can be diffed.

Every error bar drawn is its own SVG group with the id
``interval-<series>-<bar>`` (series and bar numbered from 0 in the order
given; its two caps are ``interval-<series>-<bar>-cap0`` and ``-cap1``), and
the chance, noise-ceiling and overall-accuracy lines are ``chance-line``,
``ceiling-line`` and ``overall-line``, so
that a reader of the SVG (or a test) can tell which bars carry an interval, and
where it lies, without looking at pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BarSeries",
    "RSABar",
    "AttributePoint",
    "accuracy_figure",
    "rsa_figure",
    "concept_figure",
    "attribute_figure",
    "PNG_DPI",
]

#: Resolution of the PNG files.
PNG_DPI = 150
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
_BLUE, _ORANGE, _GREEN, _GREY, _RED = "#0072B2", "#E69F00", "#009E73", "#7F7F7F", "#D55E00"
_PURPLE = "#CC79A7"
_PALETTE = (_BLUE, _ORANGE, _PURPLE, _GREEN)
_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "alignkit",
    "svg.fonttype": "none",
}

Interval = tuple[float, float]


@dataclass
class BarSeries:
    """One series of bars (one bar per label) in :func:`accuracy_figure`.

    Attributes:
        name: the legend entry.
        values: one value per label, None where the series has none.
        intervals: one (low, high) per label, None where no error bar is drawn.
        hatch: matplotlib hatch pattern (e.g. ``"//"`` for in-sample scores).
    """

    name: str
    values: list[float | None]
    intervals: list[Interval | None] = field(default_factory=list)
    hatch: str | None = None


@dataclass
class RSABar:
    """One representation in the RSA figure: without and with the probe transform."""

    label: str
    without: float | None
    with_transform: float | None
    without_ci: Interval | None = None
    with_ci: Interval | None = None


@dataclass
class AttributePoint:
    """One model in an accuracy-against-attribute figure: one value per series."""

    label: str
    x: float
    values: tuple[float | None, ...]
    intervals: tuple[Interval | None, ...] = ()


@contextmanager
def _pyplot() -> Iterator[Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(_RC):
        yield plt


def _save(plt: Any, fig: Any, stem: Path) -> tuple[Path, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    try:
        fig.savefig(png, dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(fig)
    return png, svg


def _reference_lines(
    ax: Any, chance: float, ceiling: float | None, vertical: bool, ceiling_label: str | None = None
) -> None:
    line = ax.axvline if vertical else ax.axhline
    line(
        chance,
        color=_GREY,
        linestyle="--",
        linewidth=1.2,
        label=f"chance ({chance:.3f})",
        gid="chance-line",
    )
    if ceiling is not None:
        line(
            ceiling,
            color=_RED,
            linestyle=":",
            linewidth=1.5,
            label=ceiling_label or f"noise ceiling ({ceiling:.3f})",
            gid="ceiling-line",
        )


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _interval_at(intervals: Sequence[Interval | None], i: int) -> Interval | None:
    iv = intervals[i] if i < len(intervals) else None
    if iv is None or not (_finite(iv[0]) and _finite(iv[1])):
        return None
    return iv


def _error_bar(ax: Any, x: float, y: float, iv: Interval, gid: str, horizontal: bool) -> None:
    """One error bar spanning ``iv`` exactly, at the bar at (x, y), as one SVG group ``gid``.

    The interval is drawn as given (around its midpoint), so a value outside
    its own interval is never made to look as if it were inside.
    """
    mid, half = (iv[0] + iv[1]) / 2, (iv[1] - iv[0]) / 2
    if horizontal:
        container = ax.errorbar(
            [mid],
            [y],
            xerr=[[half], [half]],
            fmt="none",
            ecolor="black",
            elinewidth=1,
            capsize=3,
            zorder=4,
        )
    else:
        container = ax.errorbar(
            [x],
            [mid],
            yerr=[[half], [half]],
            fmt="none",
            ecolor="black",
            elinewidth=1,
            capsize=3,
            zorder=4,
        )
    _, caps, bars = container.lines
    for artist in bars:
        artist.set_gid(gid)
    for j, cap in enumerate(caps):
        cap.set_gid(f"{gid}-cap{j}")


def accuracy_figure(
    labels: Sequence[str],
    series: Sequence[BarSeries],
    stem: Path,
    *,
    chance: float,
    ceiling: float | None,
    title: str,
    ceiling_label: str | None = None,
    xlabel: str = "odd-one-out accuracy (fraction of triplets agreeing with humans)",
) -> tuple[Path, Path]:
    """Grouped horizontal bars, one group per label, with chance and the noise ceiling.

    Each series' error bars are drawn from its ``intervals`` exactly as given.
    """
    with _pyplot() as plt:
        n, k = len(labels), max(len(series), 1)
        height = 0.8 / k
        fig, ax = plt.subplots(figsize=(7.5, 1.4 + (0.25 + 0.22 * k) * n))
        ys = list(range(n))
        for si, s in enumerate(series):
            offset = (si - (k - 1) / 2) * height
            idx = [i for i, v in enumerate(s.values) if _finite(v)]
            if not idx:
                continue
            colour = _PALETTE[si % len(_PALETTE)]
            ax.barh(
                [ys[i] + offset for i in idx],
                [float(s.values[i]) for i in idx],  # type: ignore[arg-type]
                height=height,
                color=colour,
                hatch=s.hatch,
                edgecolor="white" if s.hatch else None,
                label=s.name,
            )
            for i in idx:
                iv = _interval_at(s.intervals, i)
                if iv is not None:
                    _error_bar(
                        ax,
                        float(s.values[i]),
                        ys[i] + offset,
                        iv,  # type: ignore[arg-type]
                        f"interval-{si}-{i}",
                        horizontal=True,
                    )
        _reference_lines(ax, chance, ceiling, vertical=True, ceiling_label=ceiling_label)
        ax.set_yticks(ys, list(labels))
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("model")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)


def rsa_figure(
    panels: Sequence[tuple[str, Sequence[RSABar]]],
    stem: Path,
    *,
    ylabel: str = "RSA (Spearman correlation with the human RDM)",
    title: str = "RSA with the human RDMs",
    with_label: str = "with probe transform",
) -> tuple[Path, Path]:
    """One panel per human reference RDM; grouped bars per representation.

    Error bars (where a bar has an interval) are SVG groups
    ``interval-<panel>-<0 without | 1 with>-<bar>``.
    """
    with _pyplot() as plt:
        k = len(panels)
        widest = max(len(bars) for _, bars in panels)
        fig, axes = plt.subplots(
            1, k, figsize=(max(4.5, 0.9 * widest + 2.0) * k, 4.8), squeeze=False
        )
        width = 0.38
        for pi, (ax, (reference, bars)) in enumerate(zip(axes[0], panels, strict=True)):
            xs = list(range(len(bars)))
            for si, (name, colour, offset, attr, ci) in enumerate(
                (
                    (
                        "without transform (raw features)",
                        _BLUE,
                        -width / 2,
                        "without",
                        "without_ci",
                    ),
                    (with_label, _GREEN, width / 2, "with_transform", "with_ci"),
                )
            ):
                idx = [i for i, b in enumerate(bars) if _finite(getattr(b, attr))]
                if not idx:
                    continue
                ax.bar(
                    [xs[i] + offset for i in idx],
                    [getattr(bars[i], attr) for i in idx],
                    width=width,
                    color=colour,
                    label=name,
                )
                for i in idx:
                    iv = getattr(bars[i], ci)
                    if iv is not None and _finite(iv[0]) and _finite(iv[1]):
                        _error_bar(
                            ax,
                            xs[i] + offset,
                            getattr(bars[i], attr),
                            iv,
                            f"interval-{pi}-{si}-{i}",
                            horizontal=False,
                        )
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xticks(xs, [b.label for b in bars], rotation=30, ha="right")
            ax.set_xlabel("model (layer)")
            ax.set_ylabel(ylabel)
            ax.set_title(reference)
        fig.suptitle(title)
        fig.tight_layout()
        legend: dict[str, Any] = {}  # one legend for all panels, right of them
        for ax in axes[0]:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                legend.setdefault(name, handle)
        fig.legend(
            list(legend.values()),
            list(legend),
            loc="upper left",
            bbox_to_anchor=(1.0, 0.88),
            frameon=False,
        )
        return _save(plt, fig, stem)


def concept_figure(
    labels: Sequence[str],
    accuracy: Sequence[float],
    counts: Sequence[int],
    stem: Path,
    *,
    title: str,
    overall: float | None,
    chance: float,
    intervals: Sequence[Interval | None] = (),
) -> tuple[Path, Path]:
    """Accuracy per human concept dimension, one horizontal bar each.

    The bars are drawn in the order given (sort before calling); each label
    carries the number of triplets assigned to the dimension; ``intervals``
    are drawn as error bars (SVG groups ``interval-0-<bar>``).
    """
    with _pyplot() as plt:
        n = len(labels)
        fig, ax = plt.subplots(figsize=(7.5, 1.6 + 0.24 * n))
        ys = list(range(n))
        ax.barh(ys, list(accuracy), height=0.75, color=_BLUE, label="accuracy")
        for i in ys:
            iv = _interval_at(intervals, i)
            if iv is not None:
                _error_bar(ax, float(accuracy[i]), i, iv, f"interval-0-{i}", horizontal=True)
        _reference_lines(ax, chance, None, vertical=True)
        if overall is not None and math.isfinite(overall):
            ax.axvline(
                overall,
                color=_ORANGE,
                linewidth=1.5,
                label=f"all triplets ({overall:.3f})",
                gid="overall-line",
            )
        ax.set_yticks(
            ys, [f"{lab} (n={c})" for lab, c in zip(labels, counts, strict=True)], fontsize=8
        )
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("odd-one-out accuracy on the triplets of the dimension")
        ax.set_ylabel("human concept dimension (triplets)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)


def _series_scatter(ax: Any, points: Sequence[AttributePoint], series: Sequence[str],
                    width: float) -> None:
    """One marker per point and series (series ``width`` apart), with its error bar."""
    markers = ("o", "s", "^", "D")
    for si, name in enumerate(series):
        idx = [i for i, p in enumerate(points) if si < len(p.values) and _finite(p.values[si])]
        if not idx:
            continue
        off = (si - (len(series) - 1) / 2) * width
        ax.scatter([points[i].x + off for i in idx], [points[i].values[si] for i in idx],
                   color=_PALETTE[si % len(_PALETTE)], marker=markers[si % len(markers)],
                   s=40, label=name, zorder=3)
        for i in idx:
            iv = _interval_at(points[i].intervals, si)
            if iv is not None:
                _error_bar(ax, points[i].x + off, points[i].values[si], iv,  # type: ignore[arg-type]
                           f"interval-{si}-{i}", horizontal=False)


def family_figure(
    points: Sequence[AttributePoint],
    families: Sequence[str],
    stem: Path,
    *,
    series: Sequence[str],
    chance: float,
    ceiling: float | None,
    title: str,
    ceiling_label: str | None = None,
) -> tuple[Path, Path]:
    """Accuracy of each model by family: one column per family (``x`` is its index).

    Series are offset within a column; error bars (SVG groups
    ``interval-<series>-<point>``) where a point has an interval.
    """
    width = 0.6 / max(len(series), 1)
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(families) + 2.5), 4.8))
        _series_scatter(ax, points, series, width)
        _reference_lines(ax, chance, ceiling, vertical=False, ceiling_label=ceiling_label)
        ax.set_xticks(range(len(families)))
        ax.set_xticklabels(families, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(families) - 0.4)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("model family")
        ax.set_ylabel("odd-one-out accuracy")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)


def attribute_figure(
    points: Sequence[AttributePoint],
    attribute: str,
    stem: Path,
    *,
    series: Sequence[str],
    chance: float,
    ceiling: float | None,
    title: str,
    ceiling_label: str | None = None,
    log_x: bool = False,
) -> tuple[Path, Path]:
    """Accuracy of each model (one marker per series) against a numeric attribute.

    Error bars (SVG groups ``interval-<series>-<point>``) where a point has an interval.
    """
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(7.0, 4.8))
        _series_scatter(ax, points, series, 0.0)
        for p in points:
            y = next((v for v in p.values if _finite(v)), None)
            if y is None:
                continue
            ax.annotate(p.label, (p.x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        _reference_lines(ax, chance, ceiling, vertical=False, ceiling_label=ceiling_label)
        if log_x:
            ax.set_xscale("log")
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(attribute + (" (log scale)" if log_x else ""))
        ax.set_ylabel("odd-one-out accuracy")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)
