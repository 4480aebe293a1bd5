"""Reports over stored results: one HTML page and one Markdown file with figures.

:func:`write_report` reads a results table (a store's ``results.jsonl`` or any
``.jsonl`` file written by :class:`alignkit.results.ResultsTable`) and writes::

    <out>/report.html        tables and figures, inline CSS, images next to it
    <out>/report.md          the same in Markdown
    <out>/figures/*.png      every figure as PNG ...
    <out>/figures/*.svg      ... and as SVG

in the spirit of Muttenthaler et al. (ICLR 2023). The rules that keep numbers
from different conditions apart (see ``docs/report.md``):

* odd-one-out results get one section, table and figure per *condition*:
  triplet set, similarity, tie rule and preset. Zero-shot scores and scores
  after a probe transform of the same condition share it; scores of a probe on
  its own training triplets (``in_sample``) are a series of their own, labelled
  "in-sample" wherever they appear.
* linear probes get one section per (training triplets, objective, protocol),
  with the zero-shot accuracy recorded beside each probe.
* repeated measurements (same kind, model, layer, dataset, transform and
  scoring options) are reduced to the newest record. When the newest has no
  confidence interval and an earlier one has, the earlier interval is shown
  beside the newest value, labelled with the earlier record's time, if both
  records report the same value (same estimate, same count, same features);
  otherwise the earlier record is kept as a row of its own, labelled so.
* a noise ceiling (and a normalised score) is shown only where the record
  carries one; records of older alignkit versions, which applied the THINGS
  ceiling to any triplets, keep it only for THINGS triplets.

A section without data is kept as a one-line note, never an empty figure.
"""

from __future__ import annotations

import json
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
from alignkit.results import RESULTS_FILE, ResultsTable, latest

__all__ = [
    "CHANCE",
    "THINGS_CEILING",
    "DEFAULT_MIN_CONCEPT_TRIPLETS",
    "ReportFiles",
    "load_records",
    "prepare_output",
    "build_report",
    "write_report",
    "wilson_interval",
]

#: Chance level of the odd-one-out task.
CHANCE = 1.0 / 3.0
#: Noise ceiling of THINGS odd-one-out accuracy used in the paper's figures.
THINGS_CEILING = 0.673
#: Concept dimensions with fewer triplets than this are left out of the per-concept figures.
DEFAULT_MIN_CONCEPT_TRIPLETS = 30

_DASH = "–"
#: Options that make two probe records different measurements (a measure's come from its
#: options class: those declared with ``identity``).
_PROBE_KEYS = ("objective", "protocol")
_OTHER_KEYS = {"probe": _PROBE_KEYS, "failures": ("similarity", "ties", "min_fraction")}


def _measure_of(kind: Any) -> Any:
    """The registered measure of a record kind (None: ``probe``, or not registered)."""
    from alignkit.measures import get_measure

    if kind == "probe":
        return None
    try:
        return get_measure(str(kind))
    except InputError:
        return None


def _option_keys(kind: Any) -> tuple[str, ...]:
    """The result fields that make two records of one kind different measurements."""
    measure = _measure_of(kind)
    if measure is None:
        return (*_OTHER_KEYS.get(str(kind), ()), "in_sample")
    from alignkit.measures import option_specs

    names = tuple(n for n, spec, _ in option_specs(measure.Options) if spec.identity)
    return (*names, "in_sample")
#: Fields of the record itself that identify a measurement.
_RECORD_KEYS = ("kind", "model", "layer", "dataset", "transform")


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
        if path.suffix.lower() != ".jsonl":  # reading a table may set aside a partial last line
            raise InputError(
                f"{path}: not a results file (.jsonl) nor a store folder; refusing to read it "
                "as a results table"
            )
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


def _f(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return _DASH if v is None else f"{v:.{digits}f}"


def _p(value: Any) -> str:
    v = _num(value)
    if v is None:
        return _DASH
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.2e}"


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


def _sort_key(rec: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(rec.get(k) or "") for k in ("model", "layer", "dataset", "transform", "created")
    )


def _res(rec: Mapping[str, Any]) -> Mapping[str, Any]:
    res = rec.get("result")
    return res if isinstance(res, Mapping) else {}


#: The fields of a probe record the report reads, as ``ProbeCVResult.summary`` writes them.
PROBE_FIELDS = {"value": "accuracy", "sd": "accuracy_sd", "zero_shot": "zero_shot_accuracy",
                "folds": "k", "lambda": "lambda"}


def _probe_accuracy(res: Mapping[str, Any]) -> float | None:
    return _num(res.get(PROBE_FIELDS["value"]))


def _probe_sd(res: Mapping[str, Any]) -> float | None:
    return _num(res.get(PROBE_FIELDS["sd"]))


def _value(rec: Mapping[str, Any]) -> float | None:
    """The headline number of a record: its measure's ``value`` field (accuracy, RSA value,
    ...) or the probing accuracy."""
    res = _res(rec)
    if rec.get("kind") == "probe":
        return _probe_accuracy(res)
    measure = _measure_of(rec.get("kind"))
    return _num(res.get(measure.value if measure is not None else "value"))


def _count(rec: Mapping[str, Any]) -> Any:
    """How many items a record's estimate rests on (its measure's ``count`` field)."""
    if rec.get("kind") == "probe":
        return _res(rec).get(PROBE_FIELDS["folds"])
    measure = _measure_of(rec.get("kind"))
    return None if measure is None or measure.count is None else _res(rec).get(measure.count)


def _tie_rule(res: Mapping[str, Any]) -> str | None:
    """The tie rule under its current name (older records say ``wrong``)."""
    rule = res.get("ties")
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES

    return None if rule is None else DEPRECATED_TIE_RULES.get(str(rule), str(rule))


def _in_sample(rec: Mapping[str, Any]) -> bool | None:
    value = _res(rec).get("in_sample")
    return value if isinstance(value, bool) else None


def _evaluated_on(rec: Mapping[str, Any]) -> str | None:
    """What a probe record says it was scored on (``evaluated_on``), when it says."""
    value = _res(rec).get("evaluated_on")
    return str(value) if isinstance(value, str) and value.strip() else None


def _held_out_label(recs: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``evaluated_on`` every record shares, or None (the default, object-held-out CV)."""
    said = {_evaluated_on(r) for r in recs}
    return said.pop() if len(said) == 1 and None not in said else None


def _is_things(dataset: Any) -> bool:
    return dataset is not None and "things" in str(dataset).lower()


def _ceiling(rec: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The noise ceiling a record may be shown with, and where it comes from.

    A record with ``ceiling_source`` says itself (None: no ceiling). An older
    record (without that field) was given the THINGS ceiling whatever its
    triplets were, so its ceiling is kept for THINGS triplets only.
    """
    res = _res(rec)
    c = _num(res.get("ceiling"))
    if c is None:
        return None, None
    if "ceiling_source" in res:
        return c, str(res.get("ceiling_source") or "source not recorded")
    if _is_things(rec.get("dataset")):
        return c, "THINGS, as recorded"
    return None, None


def _normalised(rec: Mapping[str, Any]) -> float | None:
    return _num(_res(rec).get("normalised")) if _ceiling(rec)[0] is not None else None


def _ties_cells(res: Mapping[str, Any]) -> list[str]:
    """Total, two-way and three-way tie counts; older records have only the total."""
    total, two, three = res.get("n_ties"), res.get("n_ties2"), res.get("n_ties3")
    if two is None and three is None:
        split = "not recorded" if total is not None else _DASH
        return [_s(total), split, split]
    return [_s(total), _s(two), _s(three)]


def _preset_cell(res: Mapping[str, Any]) -> str:
    preset = res.get("preset")
    if preset is None:
        return _DASH
    overrides = [str(o) for o in res.get("overrides") or []]
    return str(preset) + (f" (set beside it: {', '.join(overrides)})" if overrides else "")


def _created(rec: Mapping[str, Any]) -> str:
    return str(rec.get("created") or "time not recorded")


def wilson_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``correct / n``.

    Example:
        >>> [round(v, 4) for v in wilson_interval(5, 10)]
        [0.2366, 0.7634]
    """
    if n <= 0:
        raise ValueError("a Wilson interval needs at least one trial")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# --------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class _Interval:
    """A confidence interval shown with a value; ``source`` names the earlier
    record it was taken from (None: the shown record's own)."""

    low: float
    high: float
    level: float | None
    n_bootstrap: int | None
    source: str | None = None

    @property
    def pair(self) -> tuple[float, float]:
        return self.low, self.high

    def cell(self) -> str:
        text = f"[{self.low:.4f}, {self.high:.4f}]"
        if self.level is None:
            text += " (level not recorded)"
        elif abs(self.level - 0.95) > 1e-9:
            text += f" ({self.level:.0%})"
        if self.source:
            text += f" (interval of the earlier record of {self.source})"
        return text

    def kind(self) -> str:
        level = "level not recorded" if self.level is None else f"{self.level:.0%}"
        if self.n_bootstrap:
            return f"{level} bootstrap, {self.n_bootstrap} resamples"
        return level


def _own_interval(rec: Mapping[str, Any]) -> _Interval | None:
    res = _res(rec)
    lo, hi = _num(res.get("ci_low")), _num(res.get("ci_high"))
    if lo is None or hi is None:
        return None
    n_boot = res.get("n_bootstrap")
    return _Interval(
        lo,
        hi,
        _num(res.get("ci_level")),
        int(n_boot) if isinstance(n_boot, int) and not isinstance(n_boot, bool) else None,
    )


def _interval(rec: Mapping[str, Any]) -> _Interval | None:
    """The interval shown with ``rec``: its own, or one carried over by :func:`_reduce`."""
    return rec.get("_interval") if "_interval" in rec else _own_interval(rec)


def _ci_cell(rec: Mapping[str, Any]) -> str:
    iv = _interval(rec)
    return _DASH if iv is None else iv.cell()


def _measure_key(rec: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes two records measurements of the same thing."""
    res = _res(rec)
    values: list[Any] = [rec.get(k) for k in _RECORD_KEYS]
    for name in _option_keys(rec.get("kind")):
        if name == "ties":
            values.append(_tie_rule(res))
        elif name == "in_sample":
            values.append(_in_sample(rec))
        else:
            values.append(res.get(name))
    return tuple(json.dumps(v, sort_keys=True, default=str) for v in values)


def _checksum(rec: Mapping[str, Any]) -> Any:
    prov = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else {}
    return prov.get("features_checksum") or prov.get("checksum")


def _same_estimate(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two records of one measurement report the same number from the same inputs."""
    va, vb = _value(a), _value(b)
    if va is None or vb is None or abs(va - vb) > 1e-12:
        return False
    if _count(a) != _count(b):
        return False
    ca, cb = _checksum(a), _checksum(b)
    return ca is None or cb is None or ca == cb


def _reduce(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The newest record per measurement, never losing an interval.

    Each record returned carries ``_interval`` (its own interval, an earlier
    record's interval when the newest has none but reports the same estimate,
    or None) and, when an earlier record with an interval reports a different
    value, ``_earlier``: that record, shown as a row of its own.
    """
    newest = latest(records, _measure_key)
    with_ci = {
        _measure_key(r): r for r in latest([r for r in records if _own_interval(r)], _measure_key)
    }
    out = []
    for rec in newest:
        rec = dict(rec)
        own = _own_interval(rec)
        rec["_interval"] = own
        earlier = with_ci.get(_measure_key(rec))
        if own is None and earlier is not None:
            ei = _own_interval(earlier)
            assert ei is not None
            if _same_estimate(rec, earlier):
                rec["_interval"] = _Interval(
                    ei.low, ei.high, ei.level, ei.n_bootstrap, source=_created(earlier)
                )
            else:
                rec["_earlier"] = dict(earlier, _interval=ei)
        out.append(rec)
    return out


def _interval_text(entries: Sequence[tuple[str, str, _Interval | None, Mapping | None]]) -> str:
    """Sentences saying exactly which error bars a figure draws.

    Args:
        entries: per bar (name, what its bar shows: "ci", "sd" or "none", the
            interval, an earlier record kept for its interval or None).
    """
    ci = [(n, iv) for n, k, iv, _ in entries if k == "ci" and iv is not None]
    sd = [n for n, k, _, _ in entries if k == "sd"]
    none = [(n, e) for n, k, _, e in entries if k == "none"]
    parts = []
    if ci:
        kinds = Counter(iv.kind() for _, iv in ci)
        what = "; ".join(
            f"{kind}"
            + (f" ({', '.join(n for n, iv in ci if iv.kind() == kind)})" if len(kinds) > 1 else "")
            for kind in sorted(kinds)
        )
        who = "" if not sd and not none else f" for {', '.join(n for n, _ in ci)}"
        parts.append(f"Error bars: the recorded confidence interval{who} ({what}).")
        for n, iv in ci:
            if iv.source:
                parts.append(
                    f"The interval of {n} is that of an earlier record of the same measurement "
                    f"({iv.source}), which reports the same value; the newest record has none."
                )
    if sd:
        parts.append(
            "Error bars: plus or minus one standard deviation over cross-validation folds for "
            + ", ".join(sd)
            + " (no confidence interval recorded)."
        )
    if none:
        parts.append("No interval is recorded for " + ", ".join(n for n, _ in none) + ".")
        later = [n for n, e in none if e is not None]
        if later:
            parts.append(
                "An earlier record of " + ", ".join(later) + " has an interval but a different "
                "value; the table shows it as a row of its own."
            )
    return " ".join(parts)


# --------------------------------------------------------------------------- measurement sets
@dataclass
class _Series:
    """One series of a measurement set: per model the record of its best layer."""

    name: str
    short: str
    best: dict[str, dict[str, Any]]
    value: Callable[[Mapping[str, Any]], float | None]
    bar: Callable[[Mapping[str, Any]], tuple[str, _Interval | None, tuple[float, float] | None]]
    hatch: str | None = None


@dataclass
class _Set:
    """Records measured under one condition: what one figure and one table show."""

    kind: str
    title: str
    slug: str
    stem: str
    records: list[dict[str, Any]]
    series: list[_Series]
    labels: list[str] = field(default_factory=list)
    ceiling: float | None = None
    ceiling_label: str | None = None
    ceiling_text: str = ""

    def entries(self) -> list[tuple[str, str, _Interval | None, Mapping | None]]:
        out = []
        for s in self.series:
            for m in self.labels:
                rec = s.best.get(m)
                if rec is None or s.value(rec) is None:
                    continue
                kind, iv, _ = s.bar(rec)
                earlier = rec.get("_earlier") if s.bar is not _zero_shot_bar else None
                out.append((f"{m} ({s.short})", kind, iv, earlier))
        return out


def _condition(dataset: Any, similarity: Any, ties: Any, preset: Any) -> str:
    text = (
        f"triplets {_s(dataset) if dataset is not None else 'not recorded'}, "
        f"similarity {similarity if similarity is not None else 'not recorded'}, "
        f"tie rule {ties if ties is not None else 'not recorded'}"
    )
    return text + (f", preset {preset}" if preset is not None else "")


def _best(
    records: Sequence[dict[str, Any]], value: Callable[[Mapping[str, Any]], float | None]
) -> dict[str, dict[str, Any]]:
    """Per model, the record with the highest ``value`` (records without one are skipped)."""
    best: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=_sort_key):
        v = value(rec)
        if v is None:
            continue
        model = str(rec.get("model") or "?")
        old = best.get(model)
        if old is None or v > (value(old) or -math.inf):
            best[model] = rec
    return best


def _ci_bar(rec: Mapping[str, Any]) -> tuple[str, _Interval | None, tuple[float, float] | None]:
    iv = _interval(rec)
    return ("ci", iv, iv.pair) if iv is not None else ("none", None, None)


def _probe_bar(rec: Mapping[str, Any]) -> tuple[str, _Interval | None, tuple[float, float] | None]:
    """A probe bar's error bar: its confidence interval, else one sd over folds."""
    iv = _interval(rec)
    if iv is not None:
        return "ci", iv, iv.pair
    acc, sd = _probe_accuracy(_res(rec)), _probe_sd(_res(rec))
    if acc is not None and sd is not None:
        return "sd", None, (acc - sd, acc + sd)
    return "none", None, None


def _zero_shot_bar(
    rec: Mapping[str, Any],
) -> tuple[str, _Interval | None, tuple[float, float] | None]:
    res = _res(rec)
    lo, hi = _num(res.get("zero_shot_ci_low")), _num(res.get("zero_shot_ci_high"))
    if lo is None or hi is None:
        return "none", None, None
    iv = _Interval(lo, hi, _num(res.get("zero_shot_ci_level")), None)
    return "ci", iv, iv.pair


def _zero_shot_of_probe(rec: Mapping[str, Any]) -> float | None:
    return _num(_res(rec).get(PROBE_FIELDS["zero_shot"]))


def _set_ceiling(st: _Set) -> None:
    found: dict[float, set[str]] = {}
    for r in st.records:
        c, src = _ceiling(r)
        if c is not None:
            found.setdefault(c, set()).add(src or "source not recorded")
    if not found:
        st.ceiling_text = (
            "No noise ceiling is recorded for these triplets, so none is drawn and no "
            "normalised score is shown."
        )
    elif len(found) == 1:
        ((c, sources),) = found.items()
        src = "; ".join(sorted(sources))
        st.ceiling, st.ceiling_label = c, f"noise ceiling ({c:.3f}, {src})"
        st.ceiling_text = f"Dotted line: the noise ceiling {c:.3f} ({src})."
    else:
        st.ceiling_text = (
            "The records carry different noise ceilings ("
            + ", ".join(f"{c:.4g}" for c in sorted(found))
            + "), so no ceiling line is drawn; the table gives each record's."
        )


def _order_labels(st: _Set) -> None:
    models = {m for s in st.series for m in s.best}

    def top(m: str) -> float:
        vals = [s.value(s.best[m]) for s in st.series if m in s.best]
        return max((v for v in vals if v is not None), default=0.0)

    st.labels = sorted(models, key=lambda m: (-top(m), m))


def _ooo_sets(recs: list[dict[str, Any]], anchors: set[str]) -> list[_Set]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in recs:
        if r["kind"] != "ooo":
            continue
        res = _res(r)
        key = (r.get("dataset"), res.get("similarity"), _tie_rule(res), res.get("preset"))
        groups.setdefault(key, []).append(r)
    acc = lambda r: _num(_res(r).get("accuracy"))  # noqa: E731
    out = []
    for key in sorted(groups, key=lambda k: (-len(groups[k]), json.dumps(k, default=str))):
        rows = sorted(groups[key], key=_sort_key)
        raw = [r for r in rows if r.get("transform") is None]
        held = [r for r in rows if r.get("transform") is not None and _in_sample(r) is not True]
        ins = [r for r in rows if r.get("transform") is not None and _in_sample(r) is True]
        series = [
            _Series("zero-shot (raw features)", "zero-shot", _best(raw, acc), acc, _ci_bar),
            _Series("with probe transform", "probe transform", _best(held, acc), acc, _ci_bar),
            _Series(
                "with probe transform, in-sample (scored on its training triplets)",
                "probe transform, in-sample",
                _best(ins, acc),
                acc,
                _ci_bar,
                hatch="//",
            ),
        ]
        title = _condition(*key)
        stem = "-".join(str(p) for p in key if p is not None) or "unnamed"
        st = _Set(
            "ooo", title, _slug("ooo-" + stem, anchors), stem, rows, [s for s in series if s.best]
        )
        _set_ceiling(st)
        _order_labels(st)
        out.append(st)
    return out


def _probe_sets(recs: list[dict[str, Any]], anchors: set[str]) -> list[_Set]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in recs:
        if r["kind"] == "probe":
            res = _res(r)
            groups.setdefault(
                (r.get("dataset"), res.get("objective"), res.get("protocol")), []
            ).append(r)
    acc = lambda r: _probe_accuracy(_res(r))  # noqa: E731
    out = []
    for key in sorted(groups, key=lambda k: (-len(groups[k]), json.dumps(k, default=str))):
        rows = sorted(groups[key], key=_sort_key)
        held = _best([r for r in rows if _in_sample(r) is not True], acc)
        ins = _best([r for r in rows if _in_sample(r) is True], acc)
        paired = {m: held.get(m) or ins[m] for m in set(held) | set(ins)}
        said = _held_out_label(list(held.values()))
        series = [
            _Series(f"linear probe ({said or 'held-out objects'})", "probe", held, acc, _probe_bar),
            _Series(
                "linear probe, in-sample (scored on its training triplets)",
                "probe, in-sample",
                ins,
                acc,
                _probe_bar,
                hatch="//",
            ),
            _Series(
                "zero-shot (raw features, same held-out folds)" if said is None
                else "zero-shot (raw features, same test triplets)",
                "zero-shot",
                {m: r for m, r in paired.items() if _zero_shot_of_probe(r) is not None},
                _zero_shot_of_probe,
                _zero_shot_bar,
            ),
        ]
        dataset, objective, protocol = key
        stem = "-".join(str(p) for p in key if p is not None) or "unnamed"
        title = (
            f"triplets {_s(dataset) if dataset is not None else 'not recorded'}, "
            f"objective {_s(objective)}, protocol {_s(protocol)}"
        )
        st = _Set(
            "probe",
            title,
            _slug("probe-" + stem, anchors),
            stem,
            rows,
            [s for s in series if s.best],
        )
        _set_ceiling(st)
        _order_labels(st)
        out.append(st)
    return out


def _set_figure(st: _Set, figdir: Path, files: ReportFiles, stem: str) -> Figure:
    from alignkit.report.figures import BarSeries, accuracy_figure

    bars = []
    for s in st.series:
        values, intervals = [], []
        for m in st.labels:
            rec = s.best.get(m)
            values.append(None if rec is None else s.value(rec))
            intervals.append(None if rec is None else s.bar(rec)[2])
        bars.append(BarSeries(s.name, values, intervals, hatch=s.hatch))
    what = (
        "Odd-one-out accuracy" if st.kind == "ooo" else "Linear probe accuracy on held-out objects"
    )
    png, svg = accuracy_figure(
        st.labels,
        bars,
        figdir / stem,
        chance=CHANCE,
        ceiling=st.ceiling,
        ceiling_label=st.ceiling_label,
        title=f"{what}\n{st.title}",
    )
    files.figures += [png, svg]
    caption = (
        f"{what} per model ({st.title}); per model and series its best layer, named in the "
        f"table below. {_interval_text(st.entries())} Dashed line: chance (1/3). {st.ceiling_text}"
    )
    if any("in-sample" in s.short for s in st.series):
        caption += (
            " Hatched bars are in-sample: scored on the triplets the probe was trained on, so "
            "they overstate held-out accuracy."
        )
    return Figure(png, svg, caption)


def _transform_cell(rec: Mapping[str, Any]) -> str:
    t = rec.get("transform")
    sample = _in_sample(rec)
    if t is None:
        return "none (raw features)" + (", in-sample" if sample else "")
    if sample is True:
        return f"{t} (in-sample: scored on its training triplets)"
    if sample is False:
        return f"{t} (held-out)"
    return f"{t} (in-sample or not: not recorded)"


def _record_cell(rec: Mapping[str, Any], earlier: bool = False) -> str:
    if earlier:
        return (
            f"{_created(rec)}: earlier record, kept for its interval (the newest record has "
            "none and a different value)"
        )
    return _created(rec)


def _with_earlier(rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    out = []
    for r in rows:
        out.append((r, False))
        if r.get("_earlier") is not None:
            out.append((r["_earlier"], True))
    return out


def _best_table(st: _Set) -> Table:
    rows = []
    for m in st.labels:
        for s in st.series:
            rec = s.best.get(m)
            if rec is None:
                continue
            kind, iv, pair = s.bar(rec)
            if kind == "ci" and iv is not None:
                shown = iv.cell()
            elif kind == "sd" and pair is not None:
                shown = f"none; error bar ± one sd over folds: [{pair[0]:.4f}, {pair[1]:.4f}]"
            else:
                shown = _DASH
            if rec.get("_earlier") is not None and s.bar is not _zero_shot_bar:
                shown += " (an earlier record with a different value has one: see below)"
            rows.append(
                [
                    m,
                    s.short,
                    _s(rec.get("layer")),
                    _transform_cell(rec) if st.kind == "ooo" else _s(rec.get("transform")),
                    _f(s.value(rec)),
                    shown,
                ]
            )
    return Table(
        ["model", "series", "layer", "transform", "accuracy", "CI (95% unless noted)"],
        rows,
        [False, False, False, False, True, True],
        caption=f"Per model, best layer ({st.title}), as in the figure",
    )


def _ooo_table(st: _Set) -> Table:
    rows = []
    for r, earlier in _with_earlier(st.records):
        res = _res(r)
        c, src = _ceiling(r)
        rows.append(
            [
                _s(r.get("model")),
                _s(r.get("layer")),
                _transform_cell(r),
                _s(res.get("n_triplets")),
                _f(res.get("accuracy")),
                _ci_cell(r),
                _f(_normalised(r)),
                "none" if c is None else f"{c:.4g} ({src})",
                *_ties_cells(res),
                _preset_cell(res),
                _record_cell(r, earlier),
            ]
        )
    return Table(
        [
            "model",
            "layer",
            "transform",
            "triplets",
            "accuracy",
            "CI (95% unless noted)",
            "normalised",
            "noise ceiling",
            "tied triplets",
            "two-way ties",
            "three-way ties",
            "preset",
            "record",
        ],
        rows,
        [False, False, False, True, True, True, True, False, True, True, True, False, False],
        caption=f"Odd-one-out accuracy, every measurement ({st.title})",
    )


def _probe_table(st: _Set) -> Table:
    rows = []
    for r, earlier in _with_earlier(st.records):
        res = _res(r)
        sample = _in_sample(r)
        rows.append(
            [
                _s(r.get("model")),
                _s(r.get("layer")),
                "in-sample (scored on its training triplets)"
                if sample
                else _evaluated_on(r) or (
                    "held-out objects" if sample is False else "held-out objects (cross-validated)"
                ),
                _f(_probe_accuracy(res)),
                _ci_cell(r),
                _f(_probe_sd(res)),
                _s(res.get(PROBE_FIELDS["folds"])),
                _s(res.get(PROBE_FIELDS["lambda"])),
                _f(_zero_shot_of_probe(r)),
                _control_cell(res),
                _record_cell(r, earlier),
            ]
        )
    return Table(
        [
            "model",
            "layer",
            "scored on",
            "probing accuracy",
            "CI (95% unless noted)",
            "sd over folds",
            "folds",
            "lambda",
            "zero-shot (raw features, same folds)",
            "random-features control: probed / zero-shot",
            "record",
        ],
        rows,
        [False, False, False, True, True, True, True, True, True, True, False],
        caption=f"Linear probes, every measurement ({st.title}); accuracy is the mean over folds",
    )


def _control_cell(res: Mapping[str, Any]) -> str:
    """A probe record's random-features control (``probe --control random``), when it has one."""
    c = res.get("control")
    if not isinstance(c, Mapping):
        return _DASH
    return f"{_f(c.get('accuracy'))} / {_f(c.get('zero_shot_accuracy'))}"


# --------------------------------------------------------------------------- sections
def _ooo_sections(
    sets: list[_Set], figdir: Path, files: ReportFiles, taken: set[str]
) -> list[Section]:
    if not sets:
        return [
            Section(
                "accuracy",
                "Odd-one-out accuracy",
                note="No odd-one-out results are recorded; this section is omitted.",
            )
        ]
    out = []
    for st in sets:
        sec = Section(
            st.slug,
            f"Odd-one-out accuracy: {st.title}",
            intro=(
                "Fraction of triplets whose odd one out the model picks as the humans did, on "
                f"{st.title}. Only records measured under exactly this condition are shown here; "
                "other triplet sets, similarities, tie rules and presets have their own sections."
            ),
        )
        if st.labels:
            sec.figures.append(_set_figure(st, figdir, files, _slug("accuracy-" + st.stem, taken)))
            sec.tables.append(_best_table(st))
        else:
            sec.note = "No result of this condition carries an accuracy, so there is no figure."
        sec.tables.append(_ooo_table(st))
        out.append(sec)
    return out


def _probe_sections(
    sets: list[_Set], figdir: Path, files: ReportFiles, taken: set[str]
) -> list[Section]:
    if not sets:
        return [
            Section(
                "probes",
                "Linear probes",
                note="No linear probe results are recorded; this section is omitted.",
            )
        ]
    out = []
    for st in sets:
        sec = Section(
            st.slug,
            f"Linear probe: {st.title}",
            intro=(
                "Cross-validated probing accuracy on held-out objects (mean over folds), beside "
                "the raw features' zero-shot accuracy on the same held-out folds where the record "
                "carries it."
                if _held_out_label(st.records) is None else
                f"Probing accuracy, scored on {_held_out_label(st.records)} (as the records say; "
                "not an object-held-out cross-validation), beside the raw features' zero-shot "
                "accuracy on the same test triplets where the record carries it."
            ),
        )
        if st.labels:
            sec.figures.append(_set_figure(st, figdir, files, _slug("probe-" + st.stem, taken)))
            sec.tables.append(_best_table(st))
        else:
            sec.note = "No probe of this kind carries an accuracy, so there is no figure."
        sec.tables.append(_probe_table(st))
        out.append(sec)
    return out


def _rsa_section(recs: list[dict[str, Any]], figdir: Path, files: ReportFiles) -> Section:
    sec = Section("rsa", "RSA: model against human dissimilarities")
    rsa = sorted((r for r in recs if r["kind"] == "rsa"), key=_sort_key)
    if not rsa:
        sec.note = "No RSA results are recorded; this section is omitted."
        return sec
    names = sorted({str(r["transform"]) for r in rsa if r.get("transform") is not None})
    sec.intro = _rsa_intro(rsa, names)
    figure = _rsa_section_figure(rsa, names, figdir, files)
    if figure is not None:
        sec.figures.append(figure)
    sec.tables.append(_table(_RSA_COLUMNS, rsa, "RSA, every measurement"))
    return sec


def _rsa_intro(rsa: list[dict[str, Any]], names: list[str]) -> str:
    raw = [r for r in rsa if r.get("transform") is None]
    transformed = [r for r in rsa if r.get("transform") is not None]
    listed = ", ".join(names)
    if not transformed:
        applied = "No probe transform was applied to any of them: every value is from the raw features."
    elif not raw:
        applied = (f"Every value was computed after applying a probe transform ({listed}); "
                   "none is from the raw features.")
    else:
        applied = (f"{len(raw)} of them are from the raw features (no transform applied) and "
                   f"{len(transformed)} were computed after applying a probe transform ({listed}).")
    return (
        "Correlation between the model's and the humans' dissimilarity matrices (upper "
        f"triangles); {len(rsa)} measurements. {applied} The transform column of the table says "
        "for each value whether a transform was applied."
    )


_Entry = tuple[str, str, "_Interval | None", "Mapping | None"]


def _rsa_panels(rsa: list[dict[str, Any]]) -> dict[tuple[str, str], dict]:
    """Per (reference, comparison), per (model, layer, RDM method): records by transform."""
    panels: dict[tuple[str, str], dict[tuple[str, str, str], dict[str | None, dict]]] = {}
    for r in rsa:
        res = _res(r)
        panel = panels.setdefault((_s(r.get("dataset")), _s(res.get("compare"))), {})
        slot = panel.setdefault(
            (_s(r.get("model")), _s(r.get("layer")), _s(res.get("rdm_method"))), {}
        )
        slot[r.get("transform")] = r
    return panels


def _rsa_bars(panel: dict, reference: str, names: list[str], entries: list[_Entry]) -> list[Any]:
    """One panel's bars (raw and with each transform), noting each bar's interval."""
    from alignkit.report.figures import RSABar

    methods = {k[2] for k in panel}
    bars = []
    for (m, layer, meth), slot in sorted(panel.items()):
        base = f"{m} ({layer})" + (f", {meth}" if len(methods) > 1 else "")
        plain = slot.get(None)
        tnames = sorted(t for t in slot if t is not None) or [None]
        for t in tnames:
            with_t = slot.get(t) if t is not None else None
            label = base + (f", {t}" if t is not None and len(names) > 1 else "")
            pv = _value(plain) if plain else None
            wv = _value(with_t) if with_t else None
            pi = _interval(plain) if plain else None
            wi = _interval(with_t) if with_t else None
            if pv is None and wv is None:
                continue
            bars.append(RSABar(label, pv, wv, pi.pair if pi else None, wi.pair if wi else None))
            for rec, v, iv, what in ((plain, pv, pi, "raw"), (with_t, wv, wi, f"with {t}")):
                if rec is not None and v is not None and not (what == "raw" and t != tnames[0]):
                    entries.append((f"{label} {what}, {reference}", "ci" if iv else "none", iv,
                                    rec.get("_earlier")))
    return bars


def _rsa_section_figure(rsa: list[dict[str, Any]], names: list[str], figdir: Path,
                        files: ReportFiles) -> Figure | None:
    from alignkit.report.figures import rsa_figure

    panels = _rsa_panels(rsa)
    entries: list[_Entry] = []
    fig_panels = []
    for (reference, compare), panel in sorted(panels.items()):
        bars = _rsa_bars(panel, reference, names, entries)
        if bars:
            fig_panels.append((f"{reference}\n{compare} correlation", bars))
    if not fig_panels:
        return None
    compares = {c for (_, c) in panels}
    ylabel = (
        f"RSA ({compares.pop()} correlation with the human RDM)"
        if len(compares) == 1
        else "RSA (correlation with the human RDM)"
    )
    with_label = f"with probe transform ({', '.join(names)})" if names else "with probe transform"
    png, svg = rsa_figure(fig_panels, figdir / "rsa", ylabel=ylabel, with_label=with_label)
    files.figures += [png, svg]
    bars_text = (
        "Blue: raw features, no transform applied; green: after the probe transform "
        + ", ".join(names) + "."
        if names
        else "All bars are from the raw features: no probe transform was applied."
    )
    return Figure(png, svg, "RSA per human reference RDM (panel titles name the reference and "
                  f"the comparison). {bars_text} {_interval_text(entries)}")


@dataclass(frozen=True)
class _Col:
    """A column of a report table: its header, its cell and whether it is a number."""

    header: str
    cell: Callable[[Mapping[str, Any]], str]
    numeric: bool = False


def _table(columns: Sequence[_Col], rows: Sequence[Mapping[str, Any]], caption: str, *,
           with_record: bool = True, collapsed: bool = False) -> Table:
    """A table of ``rows`` by column specs. Rows that are records come with the earlier
    records kept for their intervals, and a last column giving each record's time."""
    if not with_record:
        return Table([c.header for c in columns], [[c.cell(r) for c in columns] for r in rows],
                     [c.numeric for c in columns], caption=caption, collapsed=collapsed)
    cols = [*columns, _Col("record", lambda r: "")]
    body = [[c.cell(r) for c in columns] + [_record_cell(r, earlier)]
            for r, earlier in _with_earlier(rows)]
    return Table([c.header for c in cols], body, [c.numeric for c in cols], caption=caption,
                 collapsed=collapsed)


def _rsa_transform_cell(r: Mapping[str, Any]) -> str:
    if r.get("transform") is None:
        return "none (raw features)"
    return f"{r['transform']} (applied)" + (", in-sample" if _in_sample(r) else "")


_RSA_COLUMNS = (
    _Col("model", lambda r: _s(r.get("model"))),
    _Col("layer", lambda r: _s(r.get("layer"))),
    _Col("reference", lambda r: _s(r.get("dataset"))),
    _Col("transform", _rsa_transform_cell),
    _Col("RDM", lambda r: _s(_res(r).get("rdm_method"))),
    _Col("compare", lambda r: _s(_res(r).get("compare"))),
    _Col("stimuli", lambda r: _s(_res(r).get("n_stimuli")), True),
    _Col("RSA", lambda r: _f(_res(r).get("value")), True),
    _Col("CI (95% unless noted)", _ci_cell, True),
    _Col("p-value", lambda r: _p(_res(r).get("p_value")), True),
)


def _concept_section(
    sets: list[_Set],
    figdir: Path,
    files: ReportFiles,
    taken: set[str],
    min_triplets: int,
) -> Section:
    sec = Section("concepts", "Accuracy per human concept dimension")
    todo = [(st, r) for st in sets for r in st.records if _has_breakdown(r)]
    if not todo:
        sec.note = (
            "No odd-one-out result carries a per-concept breakdown (score with a concept "
            "embedding to get one); this section is omitted."
        )
        return sec
    sec.intro = (
        "Each triplet is assigned to the human concept dimension that dominates its similar pair; "
        "bars show the model's accuracy on each dimension's triplets, best first, with 95% Wilson "
        "score intervals computed from each dimension's counts (correct of triplets), or the "
        "record's own bootstrap intervals per dimension where it has them (scored with a "
        f"bootstrap). Dimensions with fewer than {min_triplets} triplets are left out."
    )
    notes = []
    for st, r in todo:
        pc = _res(r)["per_concept"]
        dims = [d for d in pc["dimensions"] if isinstance(d, Mapping)]
        kept = _kept_dimensions(dims, min_triplets)
        left = len(dims) - len(kept)
        empty = sum(1 for d in dims if not d.get("triplets"))
        left_text = (
            f"dimensions left out for having fewer than {min_triplets} triplets: {left} of "
            f"{len(dims)} ({empty} of them without any)"
            if left
            else f"no dimension has fewer than {min_triplets} triplets"
        )
        transform = (
            f", {_transform_cell(r)}" if r.get("transform") is not None else ", raw features"
        )
        what = f"{_label(r)}{transform}; {st.title}"
        if kept:
            sec.figures.append(_concept_section_figure(st, r, kept, transform, what, left_text,
                                                       figdir, files, taken))
        else:
            notes.append(f"{what}: {left_text}, so there is no figure.")
        sec.tables.append(_table(_CONCEPT_COLUMNS, [
            {"rank": i + 1, "d": d, "accuracy": acc, "iv": iv}
            for i, (d, acc, iv) in enumerate(kept)],
            f"Per-concept accuracy: {what}; {left_text}", with_record=False, collapsed=True))
    if notes:
        sec.note = " ".join(notes)
    return sec


def _has_breakdown(r: Mapping[str, Any]) -> bool:
    pc = _res(r).get("per_concept")
    return isinstance(pc, Mapping) and isinstance(pc.get("dimensions"), list)


def _kept_dimensions(dims: list[Mapping[str, Any]], min_triplets: int) -> list[tuple[Any, ...]]:
    """``(dimension, accuracy, Wilson interval)`` of the dimensions with enough (valid)
    counts, best first."""
    kept = []
    for d in dims:
        n, c = d.get("triplets"), d.get("correct")
        if not isinstance(n, int) or isinstance(n, bool) or n < max(min_triplets, 1):
            continue
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= n:
            continue
        kept.append((d, c / n, _bootstrap_pair(d) or wilson_interval(c, n)))
    kept.sort(key=lambda t: (-t[1], str(t[0].get("label"))))
    return kept


def _bootstrap_pair(d: Mapping[str, Any]) -> tuple[float, float] | None:
    """A dimension's own bootstrap interval (``ci_low``, ``ci_high``), when it has one."""
    lo, hi = _num(d.get("ci_low")), _num(d.get("ci_high"))
    return (lo, hi) if lo is not None and hi is not None and lo <= hi else None


def _concept_section_figure(st: _Set, r: Mapping[str, Any], kept: list[tuple[Any, ...]],
                            transform: str, what: str, left_text: str, figdir: Path,
                            files: ReportFiles, taken: set[str]) -> Figure:
    from alignkit.report.figures import concept_figure

    pc = _res(r)["per_concept"]
    parts = (r.get("model"), r.get("layer"), r.get("transform"), st.stem)
    name = "-".join(str(p) for p in parts if p is not None)
    png, svg = concept_figure(
        [_s(d.get("label")) for d, _, _ in kept],
        [a for _, a, _ in kept],
        [int(d["triplets"]) for d, _, _ in kept],
        figdir / f"concepts-{_slug(name, taken)}",
        title=f"Accuracy per concept dimension: {_label(r)}{transform}\n{st.title}",
        overall=_num(_res(r).get("accuracy")),
        chance=CHANCE,
        intervals=[iv for _, _, iv in kept],
    )
    files.figures += [png, svg]
    source = f" ({pc.get('source')})" if pc.get("source") else ""
    booted = any(_bootstrap_pair(d) for d, _, _ in kept)
    bars = (f"{_f(pc.get('ci_level'), 2)} bootstrap percentile intervals of the record "
            f"({pc.get('n_bootstrap')} resamples of the triplets)" if booted
            else "95% Wilson score intervals from the counts")
    return Figure(png, svg, f"{what}: accuracy per concept dimension{source}, best first; "
                  f"error bars: {bars}; {left_text}.")


_CONCEPT_COLUMNS = (
    _Col("rank", lambda x: str(x["rank"]), True),
    _Col("dimension", lambda x: _s(x["d"].get("dimension")), True),
    _Col("label", lambda x: _s(x["d"].get("label"))),
    _Col("triplets", lambda x: _s(x["d"].get("triplets")), True),
    _Col("correct", lambda x: _s(x["d"].get("correct")), True),
    _Col("accuracy", lambda x: _f(x["accuracy"]), True),
    _Col("95% Wilson interval", lambda x: f"[{x['iv'][0]:.4f}, {x['iv'][1]:.4f}]", True),
)


def _attribute_section(
    recs: list[dict[str, Any]],
    sets: list[_Set],
    figdir: Path,
    files: ReportFiles,
    taken: set[str],
) -> Section:
    sec = Section("attributes", "Accuracy against model attributes")
    attrs, cards, conflicts = _model_attrs(recs)
    names = sorted({n for a in attrs.values() for n in a})
    conflict_note = (
        " Not taken from the bundled model table, as the records' own attributes differ from "
        "the row of the same name: " + "; ".join(conflicts) + "." if conflicts else "")
    if not names and not cards:
        sec.note = (
            "No record carries numeric model attributes (model_attrs such as imagenet_top1 or "
            "n_params) and no model is in a bundled model table (alignkit models ls); this "
            "section is omitted."
        )
        return sec
    sec.intro = (
        "Best-layer accuracy of each model against its attributes, one figure per attribute and "
        "measurement condition (conditions are never mixed in one figure)."
        + _table_source_text(cards)
    )
    skipped = []
    for st in sets:
        models = [m for m in sorted(set(attrs) | set(cards)) if m in st.labels]
        for name in names:
            figure = _attribute_section_figure(st, name, models, attrs, figdir, files, taken)
            if figure is None:
                skipped.append(f"{name} on {st.title}")
            else:
                sec.figures.append(figure)
        family = _family_figure(st, models, cards, figdir, files, taken)
        if family is not None:
            sec.figures.append(family)
        elif cards:
            skipped.append(f"family on {st.title}")
        fam_cols = ["family", "training"] if cards else []
        sec.tables.append(
            Table(
                ["model", *fam_cols, *names, *(s.short for s in st.series)],
                [
                    [
                        m,
                        *((cards[m].family, cards[m].training) if m in cards else
                          (_DASH,) * len(fam_cols)),
                        *(_attr(attrs[m][n]) if n in attrs.get(m, {}) else _DASH for n in names),
                        *(_f(s.value(s.best[m])) if m in s.best else _DASH for s in st.series),
                    ]
                    for m in models
                ],
                [False] * (1 + len(fam_cols)) + [True] * (len(names) + len(st.series)),
                caption=f"Model attributes and best-layer accuracy ({st.title})",
            )
        )
    if skipped:
        sec.note = (
            "No figure for "
            + "; ".join(skipped)
            + ": fewer than two models with both the attribute and an accuracy."
        )
    if conflict_note:
        sec.note = ((sec.note or "") + conflict_note).strip()
    return sec


def _table_source_text(cards: dict[str, Any]) -> str:
    """Where the attributes of models found in a bundled model table come from."""
    if not cards:
        return ""
    tables = sorted({c.table for c in cards.values()})
    return (
        f" Family, training and, where a record gives none, ImageNet top-1 (%) and parameter "
        f"count of {len(cards)} model(s) come from the bundled model table "
        f"{', '.join(tables)} (alignkit models ls), i.e. the figures of the study's own table."
    )


def _model_attrs(
    recs: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, float]], dict[str, Any], list[str]]:
    """Per model its numeric attributes, its model-table row where it has one, and the
    models whose records contradict their table row.

    A record's own ``model_attrs`` (the newest record's value of each) come
    first; a model found in a bundled model table (by its name, or the store
    entry's model) gets the table's ImageNet accuracy and parameter count for
    the attributes its records lack. A model whose records give an attribute
    that differs from its table row's, or that was built with other weights
    (random initialisation, another named checkpoint), is another model of the
    same name: the row is not used for it (neither its family nor its attributes).
    """
    from alignkit.zoo import card_for

    attrs: dict[str, dict[str, float]] = {}
    cards: dict[str, Any] = {}
    built_with: dict[str, set[str]] = {}
    for r in sorted(recs, key=lambda r: str(r.get("created"))):
        model = str(r.get("model") or "?")
        w = (r.get("provenance") or {}).get("entry_weights")
        if isinstance(w, str):
            built_with.setdefault(model, set()).add(w)
        for name, value in (r.get("model_attrs") or {}).items():
            v = _num(value)
            if v is not None:
                attrs.setdefault(model, {})[str(name)] = v
        if model not in cards:
            card = card_for(model) or (card_for(str(r["entry_model"])) if r.get("entry_model")
                                       else None)
            if card is not None:
                cards[model] = card
    conflicts: list[str] = []
    for model, card in list(cards.items()):
        own = attrs.get(model, {})
        bad = [f"{n} {own[n]:g} (table: {v:g})" for n, v in card.attrs().items()
               if n in own and not math.isclose(own[n], v, rel_tol=5e-3)]
        named = card.weights if card.weights not in ("", "DEFAULT") else None
        bad += [f"weights {w} (table: {card.weights or 'DEFAULT'})"
                for w in sorted(built_with.get(model, ()))
                if w.lower() == "none" or (named and w not in (named, "DEFAULT")
                                           and not w.startswith(("file:", "folder:")))]
        if bad:  # the records describe another model than the table's row of that name
            del cards[model]
            conflicts.append(f"{model}: its records give {', '.join(bad)}")
            continue
        for name, v in card.attrs().items():
            attrs.setdefault(model, {}).setdefault(name, v)
    return attrs, cards, conflicts


def _family_figure(st: _Set, models: list[str], cards: dict[str, Any], figdir: Path,
                   files: ReportFiles, taken: set[str]) -> Figure | None:
    """Each series of a condition by model family (None: fewer than two models with a family)."""
    from alignkit.report.figures import family_figure

    fams = sorted({cards[m].family for m in models if m in cards})
    pts, entries = _model_points(st, {m: float(fams.index(cards[m].family))
                                      for m in models if m in cards})
    if len(pts) < 2:
        return None
    png, svg = family_figure(
        pts, fams, figdir / f"family-{_slug(f'{st.kind}-{st.stem}', taken)}",
        series=[s.name for s in st.series], chance=CHANCE, ceiling=st.ceiling,
        ceiling_label=st.ceiling_label, title=f"Accuracy by model family\n{st.title}",
    )
    files.figures += [png, svg]
    return Figure(png, svg, f"Accuracy by model family ({len(pts)} models; {st.title}; families "
                  f"from the bundled model table). {_interval_text(entries)} Dashed line: chance "
                  f"(1/3). {st.ceiling_text}")


def _model_points(st: _Set, xs: dict[str, float]) -> tuple[list[Any], list[_Entry]]:
    """One point per model with an accuracy in some series of ``st``, at ``xs[model]``."""
    from alignkit.report.figures import AttributePoint

    pts = []
    entries: list[_Entry] = []
    for m, x in xs.items():
        values, intervals = [], []
        for s in st.series:
            rec = s.best.get(m)
            v = None if rec is None else s.value(rec)
            values.append(v)
            bar = s.bar(rec) if rec is not None else ("none", None, None)
            intervals.append(bar[2])
            if v is not None:
                entries.append((f"{m} ({s.short})", bar[0], bar[1], None))
        if any(v is not None for v in values):
            pts.append(AttributePoint(m, x, tuple(values), tuple(intervals)))
    return pts, entries


def _attribute_section_figure(st: _Set, name: str, models: list[str],
                              attrs: dict[str, dict[str, float]], figdir: Path,
                              files: ReportFiles, taken: set[str]) -> Figure | None:
    """Each series of a condition against one attribute (None: fewer than two models)."""
    from alignkit.report.figures import attribute_figure

    pts, entries = _model_points(st, {m: attrs[m][name] for m in models
                                      if name in attrs.get(m, {})})
    if len(pts) < 2:
        return None
    xs = [p.x for p in pts]
    png, svg = attribute_figure(
        pts,
        name,
        figdir / f"attribute-{_slug(f'{name}-{st.kind}-{st.stem}', taken)}",
        series=[s.name for s in st.series],
        chance=CHANCE,
        ceiling=st.ceiling,
        ceiling_label=st.ceiling_label,
        title=f"Accuracy against {name}\n{st.title}",
        log_x=min(xs) > 0 and max(xs) / min(xs) >= 100,
    )
    files.figures += [png, svg]
    return Figure(png, svg, f"Accuracy against {name} ({len(pts)} models; {st.title}). "
                  f"{_interval_text(entries)} Dashed line: chance (1/3). {st.ceiling_text}")


def _provenance_section(recs: list[dict[str, Any]]) -> Section:
    rows = []
    shown = _with_earlier(sorted(recs, key=lambda r: (str(r["kind"]), *_sort_key(r))))
    for r, earlier in shown:
        prov = r.get("provenance") or {}
        versions = prov.get("versions") if isinstance(prov.get("versions"), Mapping) else {}
        checksum = _checksum(r)
        rows.append(
            [
                r["kind"],
                _s(r.get("model")),
                _s(r.get("layer")),
                _s(r.get("dataset")),
                _s(r.get("transform")),
                _record_cell(r, earlier),
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
@dataclass
class _Context:
    """What every section builder shares: where figures go and the sets built once."""

    figdir: Path
    files: ReportFiles
    taken: set[str]
    anchors: set[str]
    ooo_sets: list[_Set]
    probe_sets: list[_Set]


def _measure_sections(recs: list[dict[str, Any]], ctx: _Context) -> list[Section]:
    """One or more sections per registered measure, in registry order (the probe sections
    follow the odd-one-out ones they compare with). A measure names its own builder
    (``Measure.report``) or gets :func:`_generic_section`."""
    import importlib

    from alignkit.measures import measures

    out: list[Section] = []
    for measure in measures():
        if measure.report:
            module, _, attr = measure.report.partition(":")
            out += getattr(importlib.import_module(module), attr)(recs, ctx)
        else:
            out.append(_generic_section(measure, recs, ctx))
        if measure.name == "ooo":
            out += _probe_sections(ctx.probe_sets, ctx.figdir, ctx.files, ctx.taken)
    return out


def _ooo_measure_sections(recs: list[dict[str, Any]], ctx: _Context) -> list[Section]:
    from alignkit.report._groups import failure_sections, group_sections

    return [*_ooo_sections(ctx.ooo_sets, ctx.figdir, ctx.files, ctx.taken),
            *group_sections(recs, ctx), *failure_sections(recs, ctx)]


def _rsa_measure_sections(recs: list[dict[str, Any]], ctx: _Context) -> list[Section]:
    sec = _rsa_section(recs, ctx.figdir, ctx.files)
    if not sec.note:
        from alignkit.report._rdm_figures import rdm_figures

        figures, notes = rdm_figures(recs, ctx)
        sec.figures += figures
        sec.intro = " ".join([sec.intro, *notes])
    return [sec]


def _column_cell(rec: Mapping[str, Any], column: Any) -> str:
    value = _res(rec).get(column.field)
    return {"f": _f, "p": _p}.get(column.fmt, _s)(value)


def _generic_section(measure: Any, recs: list[dict[str, Any]], ctx: _Context) -> Section:
    """A measure's table (its columns, the value, its interval) and a bar figure."""
    anchor = _slug(measure.name, ctx.anchors)
    sec = Section(anchor, measure.title[:1].upper() + measure.title[1:])
    rows = sorted((r for r in recs if r["kind"] == measure.name), key=_sort_key)
    if not rows:
        sec.note = f"No {measure.title} results are recorded; this section is omitted."
        return sec
    sec.intro = f"{measure.summary} {len(rows)} measurements."
    figure = _generic_figure(measure, rows, ctx)
    if figure is not None:
        sec.figures.append(figure)
    columns = [
        _Col("model", lambda r: _s(r.get("model"))),
        _Col("layer", lambda r: _s(r.get("layer"))),
        _Col("dataset", lambda r: _s(r.get("dataset"))),
        _Col("transform", _transform_cell),
        *(_Col(c.header, lambda r, c=c: _column_cell(r, c), c.fmt in ("f", "p", "d"))
          for c in measure.columns),
        _Col(measure.value_label, lambda r: _f(_value(r)), True),
        _Col("CI (95% unless noted)", _ci_cell, True),
    ]
    sec.tables.append(_table(columns, rows, f"{measure.title}, every measurement"))
    return sec


def _generic_figure(measure: Any, rows: list[dict[str, Any]], ctx: _Context) -> Figure | None:
    """Bars per (model, layer), one panel per dataset: raw features and with a transform."""
    from alignkit.report.figures import RSABar, rsa_figure

    panels: dict[str, dict[tuple[str, str], dict[str | None, dict]]] = {}
    for r in rows:
        slot = panels.setdefault(_s(r.get("dataset")), {}).setdefault(
            (_s(r.get("model")), _s(r.get("layer"))), {})
        slot.setdefault(r.get("transform"), r)
    entries: list[tuple[str, str, _Interval | None, Mapping | None]] = []
    fig_panels = []
    for dataset, panel in sorted(panels.items()):
        bars = []
        for (m, layer), slot in sorted(panel.items()):
            plain = slot.get(None)
            other = next((slot[t] for t in sorted(k for k in slot if k is not None)), None)
            pv, wv = (_value(plain) if plain else None), (_value(other) if other else None)
            if pv is None and wv is None:
                continue
            pi, wi = (_interval(plain) if plain else None), (_interval(other) if other else None)
            bars.append(RSABar(f"{m} ({layer})", pv, wv, pi.pair if pi else None,
                               wi.pair if wi else None))
            for rec, iv, what in ((plain, pi, "raw"), (other, wi, "with transform")):
                if rec is not None:
                    entries.append((f"{m} ({layer}) {what}, {dataset}", "ci" if iv else "none",
                                    iv, rec.get("_earlier")))
        if bars:
            fig_panels.append((dataset, bars))
    if not fig_panels:
        return None
    stem = ctx.figdir / _slug(f"measure-{measure.name}", ctx.taken)
    png, svg = rsa_figure(fig_panels, stem, ylabel=measure.value_label, title=measure.title)
    ctx.files.figures += [png, svg]
    return Figure(png, svg, f"{measure.title} per dataset (panel titles). Blue: raw features; "
                  f"green: after a probe transform. {_interval_text(entries)}")


def build_report(
    records: Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    title: str = "Human alignment report",
    source: str = "",
    embed: bool = False,
    min_concept_triplets: int = DEFAULT_MIN_CONCEPT_TRIPLETS,
) -> ReportFiles:
    """Write the report of ``records`` into the folder ``out``.

    Args:
        records: results records (see :mod:`alignkit.results`), in file order.
        out: the output folder (created if needed).
        title: the report's title.
        source: where the records came from, shown under the title.
        embed: embed the PNG images in the HTML as data URIs (the files are
            written as well).
        min_concept_triplets: concept dimensions with fewer triplets are left
            out of the per-concept figures and tables (their number is stated).

    Returns:
        The files written.

    Raises:
        InputError: no records, a bad ``min_concept_triplets``, or ``out``
            cannot be written.
    """
    if not records:
        raise InputError("no results records to report on")
    if (
        isinstance(min_concept_triplets, bool)
        or not isinstance(min_concept_triplets, int)
        or min_concept_triplets < 1
    ):
        raise InputError(
            f"the minimum number of triplets per concept dimension must be an integer >= 1, "
            f"got {min_concept_triplets!r}"
        )
    root = prepare_output(out)
    figdir = root / "figures"
    recs = _reduce(records)
    files = ReportFiles(root / "report.html", root / "report.md")
    taken: set[str] = set()  # figure file names
    anchors = {"overview", "accuracy", "probes", "rsa", "concepts", "attributes", "provenance"}
    ooo_sets = _ooo_sets(recs, anchors)
    probe_sets = _probe_sets(recs, anchors)
    ctx = _Context(figdir, files, taken, anchors, ooo_sets, probe_sets)
    sections = [_overview(records, recs, source), *_measure_sections(recs, ctx),
                _concept_section(ooo_sets, figdir, files, taken, min_concept_triplets),
                _attribute_section(recs, ooo_sets + probe_sets, figdir, files, taken),
                _provenance_section(recs)]
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
    from alignkit.measures import measures

    kinds = {m.name: m.title for m in measures()}
    kinds["probe"] = "linear probe"
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
    carried = sum(1 for r in recs if (iv := r.get("_interval")) is not None and iv.source)
    kept = sum(1 for r in recs if r.get("_earlier") is not None)
    extra = ""
    if carried or kept:
        extra = (
            f" Here {carried} shown value(s) carry the interval of an earlier record of the same "
            f"value, and {kept} earlier record(s) with an interval and a different value are "
            "shown as rows of their own."
        )
    return Section(
        "overview",
        "Overview",
        intro=(
            "Repeated measurements (same kind, model, layer, dataset, transform and scoring "
            "options: similarity, tie rule, preset, in-sample or not, RDM method, comparison, "
            "probe objective and protocol) are reduced to the newest record. An interval is never "
            "dropped on the way: when the newest record has none but an earlier one has, the "
            "earlier interval is shown beside the newest value, labelled with the earlier "
            "record's time, if both report the same value from the same inputs; otherwise the "
            "earlier record is shown as a row of its own, labelled as such." + extra
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
    min_concept_triplets: int = DEFAULT_MIN_CONCEPT_TRIPLETS,
) -> ReportFiles:
    """Read the records of a store or results file and write their report.

    Args:
        source: a store folder (its ``results.jsonl``) or a results ``.jsonl`` file.
        out: the output folder.
        title: the report's title (default: "Human alignment report: <name>").
        embed: embed the images in the HTML page.
        min_concept_triplets: see :func:`build_report`.

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
        min_concept_triplets=min_concept_triplets,
    )
