"""Reports over stored results: one HTML page and one Markdown file with figures.

:func:`write_report` reads a results table (a store's ``results.jsonl`` or any
``.jsonl`` file written by :class:`alignkit.results.ResultsTable`) and writes::

    <out>/report.html        tables and figures, inline CSS, images next to it
    <out>/report.md          the same in Markdown
    <out>/figures/*.png      every figure as PNG ...
    <out>/figures/*.svg      ... and as SVG

in the spirit of Muttenthaler et al. (ICLR 2023): zero-shot vs probing
odd-one-out accuracy per model with chance (1/3) and the noise ceiling (0.673),
RSA with and without the probe transform, accuracy per human concept dimension,
and accuracy against numeric model attributes (``model_attrs`` of the records,
e.g. ImageNet accuracy or parameter count). Repeated measurements (same kind,
model, layer, dataset, transform and scoring options) are reduced to the newest.
A section without data is kept as a one-line note, never an empty figure.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.errors import InputError
from alignkit.report.render import Figure, Report, Section, Table, render_html, render_markdown
from alignkit.results import DEFAULT_KEY, RESULTS_FILE, ResultsTable, latest, record_field

__all__ = [
    "CHANCE",
    "THINGS_CEILING",
    "ReportFiles",
    "load_records",
    "prepare_output",
    "build_report",
    "write_report",
]

#: Chance level of the odd-one-out task.
CHANCE = 1.0 / 3.0
#: Noise ceiling of THINGS odd-one-out accuracy used in the paper's figures.
THINGS_CEILING = 0.673

_DASH = "–"
#: Scoring options that make two records different measurements, per kind.
_OPTION_KEYS = {
    "ooo": ("result.similarity", "result.ties"),
    "rsa": ("result.rdm_method", "result.compare"),
    "probe": ("result.objective", "result.protocol"),
}


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote.

    Attributes:
        html, markdown: the two report files.
        figures: every PNG and SVG file written.
        sections: titles of the sections with content.
        omitted: titles of the sections reduced to a note for lack of data.
    """

    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- input
def load_records(source: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], Path]:
    """Read the records of a store folder or of a results file.

    Args:
        source: a store folder (its ``results.jsonl`` is read) or a ``.jsonl`` file.

    Returns:
        The records in file order and the path of the file read.

    Raises:
        InputError: the path does not exist, is neither a results file nor a
            store, or holds no records.
        DataError: a line is corrupt or from a newer format (see
            :meth:`ResultsTable.records`).
    """
    path = Path(source)
    if not path.exists():
        raise InputError(
            f"{path}: does not exist (expected a store folder or a results .jsonl file)"
        )
    if path.is_dir():
        table = ResultsTable(path / RESULTS_FILE)
        if not table.exists():
            from alignkit.errors import NotAStoreError
            from alignkit.store import EmbeddingStore

            try:
                EmbeddingStore(path, mode="r")
            except NotAStoreError as exc:
                raise InputError(
                    f"{path}: has no {RESULTS_FILE} and is not an alignkit store ({exc})"
                ) from None
            raise InputError(
                f"{path}: the store has no results yet ({RESULTS_FILE} not found); "
                "record some by scoring or probing its entries"
            )
    else:
        table = ResultsTable(path)
    records = table.records()
    if not records:
        raise InputError(f"{table.path}: holds no results records")
    return records, table.path


def prepare_output(out: str | os.PathLike[str]) -> Path:
    """Create the output folder (and ``figures/``) or say why it cannot be written.

    Raises:
        InputError: naming the folder, when it cannot be created or written.
    """
    path = Path(out)
    try:
        (path / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"--out {path}: cannot create the report folder ({reason})") from None
    if not os.access(path, os.W_OK | os.X_OK) or not os.access(path / "figures", os.W_OK | os.X_OK):
        raise InputError(f"--out {path}: the report folder is not writable")
    return path


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- values
def _num(value: Any) -> float | None:
    """A finite float, or None (for None, bools, strings, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _first(result: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if result.get(name) is not None:
            return result[name]
    return None


def _f(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return _DASH if v is None else f"{v:.{digits}f}"


def _p(value: Any) -> str:
    v = _num(value)
    if v is None:
        return _DASH
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.2e}"


def _ci(lo: Any, hi: Any) -> str:
    a, b = _num(lo), _num(hi)
    return _DASH if a is None or b is None else f"[{a:.4f}, {b:.4f}]"


def _s(value: Any) -> str:
    if value is None:
        return _DASH
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _attr(value: float) -> str:
    """A model attribute: integers in full (parameter counts), other values to 4 digits."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def _label(rec: Mapping[str, Any]) -> str:
    model, layer = rec.get("model") or "?", rec.get("layer")
    return f"{model} ({layer})" if layer else str(model)


def _latest_all(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    def key(rec: Mapping[str, Any]) -> tuple[Any, ...]:
        names = DEFAULT_KEY + _OPTION_KEYS.get(str(rec.get("kind")), ())
        return tuple(repr(record_field(rec, n)) for n in names)

    return latest(records, key)


def _sort_key(rec: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(rec.get(k) or "") for k in ("model", "layer", "dataset", "transform"))


def _probe_accuracy(res: Mapping[str, Any]) -> float | None:
    return _num(_first(res, "accuracy", "probing_accuracy", "accuracy_mean", "test_accuracy"))


def _probe_sd(res: Mapping[str, Any]) -> float | None:
    return _num(_first(res, "accuracy_sd", "accuracy_std", "probing_accuracy_sd"))


# --------------------------------------------------------------------------- sections
@dataclass
class _Best:
    """Per model, the best zero-shot and probing accuracy over layers."""

    zero_shot: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    probing: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def zs(self, model: str) -> float | None:
        rec = self.zero_shot.get(model)
        return None if rec is None else _num(rec["result"].get("accuracy"))

    def pr(self, model: str) -> float | None:
        rec = self.probing.get(model)
        if rec is None:
            return None
        res = rec["result"]
        return _probe_accuracy(res) if rec["kind"] == "probe" else _num(res.get("accuracy"))


def _best_per_model(
    records: list[dict[str, Any]], value: Callable[[Mapping[str, Any]], float | None]
) -> dict[str, dict[str, Any]]:
    """Per model, the record with the highest ``value`` (records without one are skipped)."""
    best: dict[str, dict[str, Any]] = {}
    for rec in records:
        v = value(rec)
        if v is None:
            continue
        model = str(rec.get("model") or "?")
        if model not in best or v > value(best[model]):
            best[model] = rec
    return best


def _accuracy_section(
    recs: list[dict[str, Any]], figdir: Path, files: ReportFiles
) -> tuple[Section, _Best]:
    sec = Section("accuracy", "Odd-one-out accuracy: zero-shot vs linear probe")
    ooo = sorted((r for r in recs if r["kind"] == "ooo"), key=_sort_key)
    probes = sorted((r for r in recs if r["kind"] == "probe"), key=_sort_key)
    best = _Best()
    if not ooo and not probes:
        sec.note = "No odd-one-out or probe results are recorded; this section is omitted."
        return sec, best
    raw = [r for r in ooo if r.get("transform") is None]
    transformed = [r for r in ooo if r.get("transform") is not None]
    datasets = Counter(r.get("dataset") for r in raw)
    main = min(datasets, key=lambda d: (-datasets[d], str(d))) if datasets else None
    main_raw = [r for r in raw if r.get("dataset") == main]
    best.zero_shot = _best_per_model(main_raw, lambda r: _num(r["result"].get("accuracy")))
    best.probing = _best_per_model(
        probes + transformed,
        lambda r: (
            _probe_accuracy(r["result"])
            if r["kind"] == "probe"
            else _num(r["result"].get("accuracy"))
        ),
    )
    ceilings = {_num(r["result"].get("ceiling")) for r in ooo} - {None}
    ceiling = ceilings.pop() if len(ceilings) == 1 else THINGS_CEILING
    models = sorted(
        set(best.zero_shot) | set(best.probing),
        key=lambda m: (-(best.zs(m) or best.pr(m) or 0.0), m),
    )
    sec.intro = (
        "Fraction of triplets whose odd one out the model picks as the humans did. Chance is 1/3; "
        f"the noise ceiling is {ceiling:.3f}. The figure keeps, per model, its best layer"
        + (f" (zero-shot on {main})" if main else "")
        + "; zero-shot bars carry their bootstrap interval, probe bars one standard deviation "
        "over cross-validation folds."
    )
    if models:
        from alignkit.report.figures import AccuracyBar, accuracy_figure

        bars = []
        for m in models:
            z = best.zero_shot.get(m)
            p = best.probing.get(m)
            zci = None
            if z is not None:
                lo, hi = _num(z["result"].get("ci_low")), _num(z["result"].get("ci_high"))
                zci = (lo, hi) if lo is not None and hi is not None else None
            sd = _probe_sd(p["result"]) if p is not None and p["kind"] == "probe" else None
            bars.append(AccuracyBar(m, best.zs(m), zci, best.pr(m), sd))
        png, svg = accuracy_figure(bars, figdir / "accuracy", chance=CHANCE, ceiling=ceiling)
        files.figures += [png, svg]
        sec.figures.append(
            Figure(
                png,
                svg,
                "Odd-one-out accuracy per model (best layer): zero-shot "
                "and with the linear probe; dashed: chance, dotted: noise ceiling.",
            )
        )
        sec.tables.append(
            Table(
                [
                    "model",
                    "zero-shot layer",
                    "zero-shot accuracy",
                    "95% CI",
                    "probe layer",
                    "probing accuracy",
                    "sd over folds",
                ],
                [
                    [
                        m,
                        _s(best.zero_shot[m].get("layer")) if m in best.zero_shot else _DASH,
                        _f(best.zs(m)),
                        _ci(
                            best.zero_shot[m]["result"].get("ci_low"),
                            best.zero_shot[m]["result"].get("ci_high"),
                        )
                        if m in best.zero_shot
                        else _DASH,
                        _s(best.probing[m].get("layer")) if m in best.probing else _DASH,
                        _f(best.pr(m)),
                        _f(_probe_sd(best.probing[m]["result"]))
                        if m in best.probing and best.probing[m]["kind"] == "probe"
                        else _DASH,
                    ]
                    for m in models
                ],
                [False, False, True, True, False, True, True],
                caption="Per model, best layer",
            )
        )
    if ooo:
        sec.tables.append(
            Table(
                [
                    "model",
                    "layer",
                    "dataset",
                    "transform",
                    "similarity",
                    "ties",
                    "triplets",
                    "accuracy",
                    "95% CI",
                    "normalised",
                    "tied triplets",
                ],
                [
                    [
                        _s(r.get("model")),
                        _s(r.get("layer")),
                        _s(r.get("dataset")),
                        _s(r.get("transform")),
                        _s(r["result"].get("similarity")),
                        _s(r["result"].get("ties")),
                        _s(r["result"].get("n_triplets")),
                        _f(r["result"].get("accuracy")),
                        _ci(r["result"].get("ci_low"), r["result"].get("ci_high")),
                        _f(r["result"].get("normalised")),
                        _s(r["result"].get("n_ties")),
                    ]
                    for r in ooo
                ],
                [False] * 6 + [True] * 5,
                caption="Odd-one-out accuracy, every recorded measurement",
            )
        )
    if probes:
        sec.tables.append(
            Table(
                [
                    "model",
                    "layer",
                    "dataset",
                    "objective",
                    "protocol",
                    "probing accuracy",
                    "sd over folds",
                    "folds",
                    "lambda",
                    "zero-shot accuracy",
                ],
                [
                    [
                        _s(r.get("model")),
                        _s(r.get("layer")),
                        _s(r.get("dataset")),
                        _s(r["result"].get("objective")),
                        _s(r["result"].get("protocol")),
                        _f(_probe_accuracy(r["result"])),
                        _f(_probe_sd(r["result"])),
                        _s(_first(r["result"], "k", "folds", "n_folds")),
                        _s(_first(r["result"], "lambda", "lam", "best_lambda", "chosen_lambda")),
                        _f(_first(r["result"], "zero_shot_accuracy", "zero_shot")),
                    ]
                    for r in probes
                ],
                [False] * 5 + [True] * 5,
                caption="Linear probes (accuracy on held-out objects, mean over folds)",
            )
        )
    if not models:
        sec.note = "No result carries an accuracy, so there is no figure."
    return sec, best


def _rsa_section(recs: list[dict[str, Any]], figdir: Path, files: ReportFiles) -> Section:
    sec = Section("rsa", "RSA with and without the probe transform")
    rsa = sorted((r for r in recs if r["kind"] == "rsa"), key=_sort_key)
    if not rsa:
        sec.note = "No RSA results are recorded; this section is omitted."
        return sec
    sec.intro = (
        "Correlation between the model's and the humans' dissimilarity matrices (upper triangles), "
        "from the raw features and after the THINGS-trained probe transform."
    )
    from alignkit.report.figures import RSABar, rsa_figure

    # one panel per (reference, comparison); one bar pair per (model, layer, RDM method)
    panels: dict[tuple[str, str], dict[tuple[str, str, str], list[Any]]] = {}
    for r in rsa:
        res = r["result"]
        panel = panels.setdefault((_s(r.get("dataset")), _s(res.get("compare"))), {})
        slot = panel.setdefault(
            (_s(r.get("model")), _s(r.get("layer")), _s(res.get("rdm_method"))), [None, None, None]
        )
        value = _num(res.get("value"))
        if r.get("transform") is None:
            slot[0] = value
        elif slot[2] is None or str(r.get("created")) >= slot[2]:
            slot[1], slot[2] = value, str(r.get("created"))
    fig_panels = []
    for (reference, compare), panel in sorted(panels.items()):
        methods = {k[2] for k in panel}
        bars = [
            RSABar(f"{m} ({layer})" + (f", {meth}" if len(methods) > 1 else ""), v[0], v[1])
            for (m, layer, meth), v in sorted(panel.items())
        ]
        if any(b.without is not None or b.with_transform is not None for b in bars):
            fig_panels.append((f"{reference} ({compare})", bars))
    if fig_panels:
        compares = {c for (_, c) in panels}
        ylabel = (
            f"RSA ({compares.pop()} correlation with the human RDM)"
            if len(compares) == 1
            else "RSA (correlation with the human RDM)"
        )
        png, svg = rsa_figure(fig_panels, figdir / "rsa", ylabel=ylabel)
        files.figures += [png, svg]
        sec.figures.append(
            Figure(png, svg, "RSA per human reference RDM, without and with the probe transform.")
        )
    sec.tables.append(
        Table(
            [
                "model",
                "layer",
                "reference",
                "transform",
                "RDM",
                "compare",
                "stimuli",
                "RSA",
                "95% CI",
                "p-value",
            ],
            [
                [
                    _s(r.get("model")),
                    _s(r.get("layer")),
                    _s(r.get("dataset")),
                    _s(r.get("transform")),
                    _s(r["result"].get("rdm_method")),
                    _s(r["result"].get("compare")),
                    _s(r["result"].get("n_stimuli")),
                    _f(r["result"].get("value")),
                    _ci(r["result"].get("ci_low"), r["result"].get("ci_high")),
                    _p(r["result"].get("p_value")),
                ]
                for r in rsa
            ],
            [False] * 6 + [True] * 4,
            caption="RSA, every recorded measurement",
        )
    )
    return sec


def _concept_section(
    recs: list[dict[str, Any]], figdir: Path, files: ReportFiles, taken: set[str]
) -> Section:
    sec = Section("concepts", "Accuracy per human concept dimension")
    newest: dict[str, dict[str, Any]] = {}
    for r in recs:
        pc = r["result"].get("per_concept") if r["kind"] == "ooo" else None
        if not isinstance(pc, Mapping) or not isinstance(pc.get("dimensions"), list):
            continue
        model = str(r.get("model") or "?")
        if model not in newest or str(r.get("created")) >= str(newest[model].get("created")):
            newest[model] = r
    if not newest:
        sec.note = (
            "No odd-one-out result carries a per-concept breakdown (score with a concept "
            "embedding to get one); this section is omitted."
        )
        return sec
    from alignkit.report.figures import concept_figure

    sec.intro = (
        "Each triplet is assigned to the human concept dimension that dominates its similar pair; "
        "bars show the model's accuracy on each dimension's triplets (newest breakdown per model), "
        "best first."
    )
    for model in sorted(newest):
        r = newest[model]
        pc = r["result"]["per_concept"]
        dims = [d for d in pc["dimensions"] if isinstance(d, Mapping)]
        scored = [d for d in dims if _num(d.get("accuracy")) is not None]
        scored.sort(key=lambda d: (-float(d["accuracy"]), str(d.get("label"))))
        what = f"{_label(r)}" + (f", transform {r['transform']}" if r.get("transform") else "")
        source = f" ({pc.get('source')})" if pc.get("source") else ""
        if scored:
            png, svg = concept_figure(
                [_s(d.get("label")) for d in scored],
                [float(d["accuracy"]) for d in scored],
                [int(d.get("triplets") or 0) for d in scored],
                figdir / f"concepts-{_slug(model, taken)}",
                title=f"Accuracy per concept dimension: {what}",
                overall=_num(r["result"].get("accuracy")),
                chance=CHANCE,
            )
            files.figures += [png, svg]
            empty = len(dims) - len(scored)
            sec.figures.append(
                Figure(
                    png,
                    svg,
                    f"{what}: accuracy per concept dimension{source}, sorted"
                    + (f"; {empty} dimensions without triplets are left out." if empty else "."),
                )
            )
        sec.tables.append(
            Table(
                ["rank", "dimension", "label", "triplets", "correct", "accuracy"],
                [
                    [
                        str(i + 1),
                        _s(d.get("dimension")),
                        _s(d.get("label")),
                        _s(d.get("triplets")),
                        _s(d.get("correct")),
                        _f(d.get("accuracy")),
                    ]
                    for i, d in enumerate(scored)
                ],
                [True, True, False, True, True, True],
                caption=f"Per-concept accuracy: {what}",
                collapsed=True,
            )
        )
    return sec


def _attribute_section(
    recs: list[dict[str, Any]], best: _Best, figdir: Path, files: ReportFiles, taken: set[str]
) -> Section:
    sec = Section("attributes", "Accuracy against model attributes")
    attrs: dict[str, dict[str, float]] = {}
    for r in sorted(recs, key=lambda r: str(r.get("created"))):
        for name, value in (r.get("model_attrs") or {}).items():
            v = _num(value)
            if v is not None:
                attrs.setdefault(str(r.get("model") or "?"), {})[str(name)] = v
    names = sorted({n for a in attrs.values() for n in a})
    if not names:
        sec.note = (
            "No record carries numeric model attributes (model_attrs such as imagenet_top1 or "
            "n_params); this section is omitted."
        )
        return sec
    from alignkit.report.figures import AttributePoint, attribute_figure

    models = sorted(attrs)
    sec.intro = "Best-layer odd-one-out accuracy of each model against its recorded attributes."
    skipped = []
    for name in names:
        pts = [
            AttributePoint(m, attrs[m][name], best.zs(m), best.pr(m))
            for m in models
            if name in attrs[m] and (best.zs(m) is not None or best.pr(m) is not None)
        ]
        if len(pts) < 2:
            skipped.append(name)
            continue
        xs = [p.x for p in pts]
        log_x = min(xs) > 0 and max(xs) / min(xs) >= 100
        png, svg = attribute_figure(
            pts,
            name,
            figdir / f"attribute-{_slug(name, taken)}",
            chance=CHANCE,
            ceiling=THINGS_CEILING,
            log_x=log_x,
        )
        files.figures += [png, svg]
        sec.figures.append(
            Figure(png, svg, f"Odd-one-out accuracy against {name} ({len(pts)} models).")
        )
    if skipped:
        sec.note = (
            "No figure for "
            + ", ".join(skipped)
            + ": fewer than two models with both the attribute and an accuracy."
        )
    sec.tables.append(
        Table(
            ["model", *names, "zero-shot accuracy", "probing accuracy"],
            [
                [
                    m,
                    *(_attr(attrs[m][n]) if n in attrs[m] else _DASH for n in names),
                    _f(best.zs(m)),
                    _f(best.pr(m)),
                ]
                for m in models
            ],
            [False] + [True] * (len(names) + 2),
            caption="Model attributes and best-layer accuracy",
        )
    )
    return sec


def _provenance_section(recs: list[dict[str, Any]]) -> Section:
    rows = []
    for r in sorted(recs, key=lambda r: (str(r["kind"]), *_sort_key(r))):
        prov = r.get("provenance") or {}
        versions = prov.get("versions") if isinstance(prov.get("versions"), Mapping) else {}
        checksum = prov.get("features_checksum") or prov.get("checksum")
        rows.append(
            [
                r["kind"],
                _s(r.get("model")),
                _s(r.get("layer")),
                _s(r.get("dataset")),
                _s(r.get("transform")),
                _s(r.get("created")),
                _s(versions.get("alignkit")),
                _s(checksum)[:23],
            ]
        )
    return Section(
        "provenance",
        "Provenance",
        intro="Where each number shown above comes from.",
        tables=[
            Table(
                [
                    "kind",
                    "model",
                    "layer",
                    "dataset",
                    "transform",
                    "created",
                    "alignkit",
                    "features checksum",
                ],
                rows,
                [False] * 8,
                caption="Records shown",
                collapsed=True,
            )
        ],
    )


# --------------------------------------------------------------------------- report
def build_report(
    records: Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    title: str = "Human alignment report",
    source: str = "",
    embed: bool = False,
) -> ReportFiles:
    """Write the report of ``records`` into the folder ``out``.

    Args:
        records: results records (see :mod:`alignkit.results`), in file order.
        out: the output folder (created if needed).
        title: the report's title.
        source: where the records came from, shown under the title.
        embed: embed the PNG images in the HTML as data URIs (the files are
            written as well).

    Returns:
        The files written.

    Raises:
        InputError: no records, or ``out`` cannot be written.
    """
    if not records:
        raise InputError("no results records to report on")
    root = prepare_output(out)
    figdir = root / "figures"
    recs = _latest_all(records)
    files = ReportFiles(root / "report.html", root / "report.md")
    taken: set[str] = set()
    accuracy, best = _accuracy_section(recs, figdir, files)
    sections = [
        _overview(records, recs, source),
        accuracy,
        _rsa_section(recs, figdir, files),
        _concept_section(recs, figdir, files, taken),
        _attribute_section(recs, best, figdir, files, taken),
        _provenance_section(recs),
    ]
    from alignkit._version import __version__

    report = Report(
        title,
        f"{len(records)} records from {source or 'memory'}; alignkit {__version__}.",
        sections,
    )
    _atomic_text(files.html, render_html(report, root, embed=embed))
    _atomic_text(files.markdown, render_markdown(report, root))
    files.sections = [s.title for s in sections if not s.note or s.figures or s.tables]
    files.omitted = [s.title for s in sections if s.note and not s.figures and not s.tables]
    return files


def _overview(
    records: Sequence[Mapping[str, Any]], recs: list[dict[str, Any]], source: str
) -> Section:
    kinds = {"ooo": "odd-one-out", "rsa": "RSA", "probe": "linear probe"}
    lines = Counter(str(r.get("kind")) for r in records)
    rows = [
        [
            kinds.get(k, k),
            str(lines[k]),
            str(sum(r["kind"] == k for r in recs)),
            str(len({r.get("model") for r in recs if r["kind"] == k})),
        ]
        for k in kinds
        if lines[k]
    ]
    return Section(
        "overview",
        "Overview",
        intro=(
            "Repeated measurements (same kind, model, layer, dataset, transform and scoring "
            "options) are reduced to the newest; every table below shows those."
        ),
        tables=[
            Table(
                ["kind", "records", "distinct measurements", "models"],
                rows,
                [False, True, True, True],
                caption=f"Records in {source or 'memory'}",
            )
        ],
    )


def write_report(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    embed: bool = False,
) -> ReportFiles:
    """Read the records of a store or results file and write their report.

    Args:
        source: a store folder (its ``results.jsonl``) or a results ``.jsonl`` file.
        out: the output folder.
        title: the report's title (default: "Human alignment report: <name>").
        embed: embed the images in the HTML page.

    Example:
        >>> write_report("features.zarr", "report")               # doctest: +SKIP
        ReportFiles(html=PosixPath('report/report.html'), ...)
    """
    records, path = load_records(source)
    name = Path(source).name or str(source)
    return build_report(
        records,
        out,
        title=title or f"Human alignment report: {name}",
        source=str(path),
        embed=embed,
    )
