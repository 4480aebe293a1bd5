"""Matplotlib figures of a report, each saved as PNG and SVG.

Every function takes plain data (already reduced from results records), draws
one figure with labelled axes, a title and a legend, writes
``<stem>.png`` and ``<stem>.svg`` and returns their paths. matplotlib is
imported inside the functions with the Agg backend, so importing this module
costs nothing and no display is ever needed. Output is deterministic (no
timestamps, fixed SVG ids) so that reports can be diffed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AccuracyBar",
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


@dataclass
class AccuracyBar:
    """One model in the zero-shot vs probing figure.

    Attributes:
        label: the model (and layer) shown on the axis.
        zero_shot: zero-shot odd-one-out accuracy, or None.
        zero_shot_ci: (low, high) confidence interval of ``zero_shot``, or None.
        probing: probing accuracy (mean over folds), or None.
        probing_sd: its standard deviation over folds, or None.
    """

    label: str
    zero_shot: float | None
    zero_shot_ci: tuple[float, float] | None = None
    probing: float | None = None
    probing_sd: float | None = None


@dataclass
class RSABar:
    """One representation in the RSA figure: without and with the probe transform."""

    label: str
    without: float | None
    with_transform: float | None


@dataclass
class AttributePoint:
    """One model in an accuracy-against-attribute figure."""

    label: str
    x: float
    zero_shot: float | None
    probing: float | None


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


def _reference_lines(ax: Any, chance: float, ceiling: float | None, vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    line(chance, color=_GREY, linestyle="--", linewidth=1.2, label=f"chance ({chance:.3f})")
    if ceiling is not None:
        line(
            ceiling,
            color=_RED,
            linestyle=":",
            linewidth=1.5,
            label=f"noise ceiling ({ceiling:.3f})",
        )


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def accuracy_figure(
    bars: Sequence[AccuracyBar],
    stem: Path,
    *,
    chance: float,
    ceiling: float | None,
    title: str = "Odd-one-out accuracy: zero-shot vs linear probe",
) -> tuple[Path, Path]:
    """Grouped horizontal bars per model, with chance and the noise ceiling.

    Zero-shot bars carry their confidence interval, probing bars +- one
    standard deviation over folds.
    """
    with _pyplot() as plt:
        n = len(bars)
        height = 0.38
        fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.55 * n))
        ys = list(range(n))
        series = (
            (
                "zero-shot",
                _BLUE,
                -height / 2,
                [b.zero_shot for b in bars],
                [b.zero_shot_ci if _finite(b.zero_shot) else None for b in bars],
            ),
            (
                "linear probe",
                _ORANGE,
                height / 2,
                [b.probing for b in bars],
                [
                    (b.probing - b.probing_sd, b.probing + b.probing_sd)
                    if _finite(b.probing) and _finite(b.probing_sd)
                    else None
                    for b in bars
                ],
            ),
        )
        for name, colour, offset, values, intervals in series:
            idx = [i for i, v in enumerate(values) if _finite(v)]
            if not idx:
                continue
            vals = [float(values[i]) for i in idx]  # type: ignore[arg-type]
            ax.barh([ys[i] + offset for i in idx], vals, height=height, color=colour, label=name)
            err = [(i, intervals[i]) for i in idx if intervals[i] is not None]
            if err:
                lo = [float(values[i]) - iv[0] for i, iv in err]  # type: ignore[index,operator]
                hi = [iv[1] - float(values[i]) for i, iv in err]  # type: ignore[index,operator]
                ax.errorbar(
                    [float(values[i]) for i, _ in err],
                    [ys[i] + offset for i, _ in err],
                    xerr=[lo, hi],
                    fmt="none",
                    ecolor="black",
                    elinewidth=1,
                    capsize=3,
                )
        _reference_lines(ax, chance, ceiling, vertical=True)
        ax.set_yticks(ys, [b.label for b in bars])
        ax.invert_yaxis()
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("odd-one-out accuracy (fraction of triplets agreeing with humans)")
        ax.set_ylabel("model")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)


def rsa_figure(
    panels: Sequence[tuple[str, Sequence[RSABar]]],
    stem: Path,
    *,
    ylabel: str = "RSA (Spearman correlation with the human RDM)",
    title: str = "RSA with and without the probe transform",
) -> tuple[Path, Path]:
    """One panel per human reference RDM; grouped bars per representation."""
    with _pyplot() as plt:
        k = len(panels)
        widest = max(len(bars) for _, bars in panels)
        fig, axes = plt.subplots(
            1, k, figsize=(max(4.5, 0.9 * widest + 2.0) * k, 4.8), squeeze=False
        )
        width = 0.38
        for ax, (reference, bars) in zip(axes[0], panels, strict=True):
            xs = list(range(len(bars)))
            for name, colour, offset, attr in (
                ("without transform", _BLUE, -width / 2, "without"),
                ("with probe transform", _GREEN, width / 2, "with_transform"),
            ):
                idx = [i for i, b in enumerate(bars) if _finite(getattr(b, attr))]
                if idx:
                    ax.bar(
                        [xs[i] + offset for i in idx],
                        [getattr(bars[i], attr) for i in idx],
                        width=width,
                        color=colour,
                        label=name,
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
) -> tuple[Path, Path]:
    """Accuracy per human concept dimension, one horizontal bar each, best first.

    The bars are drawn in the order given (sort before calling); each label
    carries the number of triplets assigned to the dimension.
    """
    with _pyplot() as plt:
        n = len(labels)
        fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.24 * n))
        ys = list(range(n))
        ax.barh(ys, list(accuracy), height=0.75, color=_BLUE)
        _reference_lines(ax, chance, None, vertical=True)
        if overall is not None and math.isfinite(overall):
            ax.axvline(overall, color=_ORANGE, linewidth=1.5, label=f"all triplets ({overall:.3f})")
        ax.set_yticks(
            ys, [f"{lab} (n={c})" for lab, c in zip(labels, counts, strict=True)], fontsize=8
        )
        ax.invert_yaxis()
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("odd-one-out accuracy on the triplets of the dimension")
        ax.set_ylabel("human concept dimension (triplets)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)


def attribute_figure(
    points: Sequence[AttributePoint],
    attribute: str,
    stem: Path,
    *,
    chance: float,
    ceiling: float | None,
    log_x: bool = False,
) -> tuple[Path, Path]:
    """Accuracy (zero-shot and probing) of each model against a numeric attribute."""
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(7.0, 4.8))
        for name, colour, marker, attr in (
            ("zero-shot", _BLUE, "o", "zero_shot"),
            ("linear probe", _ORANGE, "s", "probing"),
        ):
            pts = [p for p in points if _finite(getattr(p, attr))]
            if pts:
                ax.scatter(
                    [p.x for p in pts],
                    [getattr(p, attr) for p in pts],
                    color=colour,
                    marker=marker,
                    s=40,
                    label=name,
                    zorder=3,
                )
        for p in points:
            y = p.zero_shot if _finite(p.zero_shot) else p.probing
            if y is None or not math.isfinite(y):
                continue
            ax.annotate(p.label, (p.x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        _reference_lines(ax, chance, ceiling, vertical=False)
        if log_x:
            ax.set_xscale("log")
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(attribute + (" (log scale)" if log_x else ""))
        ax.set_ylabel("odd-one-out accuracy")
        ax.set_title(f"Odd-one-out accuracy against {attribute}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(plt, fig, stem)
