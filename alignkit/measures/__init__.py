"""The measure registry: every way alignkit compares features with human data.

A measure declares once its name, the human data it needs (a :class:`DataKind`:
``triplets`` or ``rdm``), an options dataclass (:class:`MeasureOptions` with
:func:`option` fields), its compute function (numpy in, a result dataclass
out) and how a result becomes a results record. Everything else derives from
the registry:

* ``alignkit score --help`` lists the measures, and ``alignkit score NAME``
  takes the measure's options (a measure without a command of its own gets a
  generated one);
* a study's ``[[triplets]]`` / ``[[rdm]]`` table names its measures
  (``measures = ["ooo"]``) and takes their options as keys;
* a sweep makes one task per (entry, data set, measure);
* the results table accepts the measure's name as a record ``kind``, and the
  report gives it a section (its own, or a generated table and figure).

Adding a measure is one module and one :func:`register_measure` call (a public module of
this package is found and imported by name; a measure elsewhere is registered when its
module is imported)::

    from dataclasses import dataclass
    from alignkit.measures import Measure, MeasureOptions, option, register_measure

    @dataclass(frozen=True)
    class MeanOptions(MeasureOptions):
        scale: float = option(1.0, "Multiply the mean by this.", minimum=0)

    class MeanMeasure(Measure):
        name, title, data, Options = "mean", "mean feature", "triplets", MeanOptions
        summary = "The mean feature value (a toy)."

        def compute(self, features, data, options, **context):
            return MeasureResult(value=float(features.mean()) * options.scale, **context)

    register_measure(MeanMeasure())

Importing this module imports neither numpy nor numba.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from alignkit.errors import InputError
from alignkit.measures._base import (
    SEED_MAX,
    Column,
    DataKind,
    MeasureOptions,
    OptionSpec,
    check_option,
    option,
    option_specs,
)

__all__ = [
    "Measure",
    "MeasureResult",
    "MeasureOptions",
    "OptionSpec",
    "Column",
    "DataKind",
    "option",
    "option_specs",
    "check_option",
    "SEED_MAX",
    "DATA_KINDS",
    "register_measure",
    "unregister_measure",
    "get_measure",
    "measures",
    "measure_names",
    "record_kinds",
    "data_kind",
]

#: The human data measures compare features with.
DATA_KINDS: dict[str, DataKind] = {
    "triplets": DataKind(
        "triplets",
        "--triplets",
        "Triplet file (.npy, .txt, .csv, validationset.csv, raw format) or a bundled name "
        "such as things-test20k.",
        {"ids": "path", "format": "text"},
        ("ooo",),
        "alignkit.measures._data:load_triplet_set",
    ),
    "rdm": DataKind(
        "rdm",
        "--rdm",
        "Human RDM: .npy/.csv/.txt square or condensed, .mat, or a bundled name such as rdm48.",
        {"ids": "path", "key": "text"},
        ("rsa",),
        "alignkit.measures._data:load_rdm_set",
    ),
    "embedding": DataKind(
        "embedding",
        "--embedding",
        "A representation to compare with, one row per stimulus (a human concept embedding "
        "such as the bundled spose-49d, or any n x d .txt/.npy/.npz); rows are matched to the "
        "features by id.",
        {"ids": "path", "labels": "path"},
        ("cka",),
        "alignkit.measures._data:load_embedding_set",
    ),
}

#: Record kinds that are not measures (a probe is fitted, not a comparison; a failure
#: analysis spans the entries of a store).
OTHER_KINDS = ("probe", "failures")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass
class MeasureResult:
    """A plain result for measures that need nothing more: a value and its interval.

    A measure's own result dataclass needs at least ``value`` (or the field its
    measure names as ``value``), ``model``, ``layer`` and ``provenance``, and a
    ``to_dict()`` (or is a dataclass).
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    n_bootstrap: int = 0
    model: str | None = None
    layer: str | None = None
    transform: str | None = None
    dataset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        from alignkit.score._common import jsonable

        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})


class Measure:
    """One measure. Subclasses set the class attributes and implement :meth:`compute`.

    Attributes:
        name: the registry key, the ``alignkit score`` sub-command and the record kind
            (lower case letters, digits and ``-``).
        title: what it measures, for headings ("odd-one-out accuracy").
        summary: one line for ``alignkit score --help``.
        data: the :data:`DATA_KINDS` name of the human data it takes.
        Options: its options dataclass (a :class:`MeasureOptions` subclass).
        value: the result field holding the headline number; ``value_label`` its column
            header; ``count`` the field saying how many items it rests on (None: none).
        columns: further result fields shown in tables (:class:`Column`).
        command: ``"module:attr"`` of a hand-written click command (None: generated).
        report: ``"module:attr"`` of a hand-written report section builder (None: a
            generated table and figure), called as ``builder(records, context)``.
    """

    name: str = ""
    title: str = ""
    summary: str = ""
    data: str = "triplets"
    Options: type[MeasureOptions] = MeasureOptions
    value: str = "value"
    value_label: str = "value"
    count: str | None = None
    columns: tuple[Column, ...] = ()
    command: str | None = None
    report: str | None = None

    # -- options
    def options(self, values: Mapping[str, Any] | MeasureOptions | None = None, **kw: Any) -> Any:
        """This measure's options from a mapping and/or keywords (validated)."""
        if isinstance(values, MeasureOptions):
            if not isinstance(values, self.Options):
                raise InputError(
                    f"options for {self.name} must be {self.Options.__name__}, got "
                    f"{type(values).__name__}"
                )
            if not kw:
                return values
            values = values.to_dict()
        return self.Options.from_mapping({**dict(values or {}), **kw})

    # -- computing
    def compute(self, features: Any, data: Any, options: Any, **context: Any) -> Any:
        """The measure of ``features`` (n, p) against ``data``.

        ``context`` holds ``ids`` (the stimulus ids of the rows), ``model``, ``layer``,
        ``transform`` (its name, when one was applied), ``device`` and ``provenance``
        (a dict to merge into the result's).
        """
        raise NotImplementedError(f"measure {self.name!r} does not implement compute()")

    def score_entry(self, entry: Any, data: Any, options: Any, *, transform: str | None = None,
                    device: str = "auto", store: str | None = None) -> Any:
        """The measure of one store entry (its features, after a probe transform if named)."""
        X = entry.features()
        if transform is not None:
            from alignkit.score.stores import load_probe_transform

            X = load_probe_transform(entry, transform).apply(X)
        prov = {"store": store,
                "entry": f"{entry.model}/{entry.layer}", "entry_checksum": entry.checksum,
                "transform": transform}
        return self.compute(X, data, options, ids=entry.ids, model=entry.model,
                            layer=entry.layer, transform=transform, device=device,
                            provenance=prov)

    def score_store(self, store: Any, data: Any, options: Any, *, model: str | None = None,
                    layer: str | None = None, transform: str | None = None,
                    device: str = "auto") -> list[Any]:
        """:meth:`score_entry` for every (matching) entry of a store."""
        from alignkit.score.stores import _open, iter_entries

        st = _open(store)
        return [self.score_entry(e, data, options, transform=transform, device=device,
                                 store=str(st.path))
                for e in iter_entries(st, model, layer)]

    # -- records and rows
    def record(self, result: Any) -> dict[str, Any]:
        """The ``result`` object of a results record."""
        if isinstance(result, Mapping):
            return dict(result)
        to_dict = getattr(result, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        if is_dataclass(result):
            from alignkit.score._common import jsonable

            return jsonable(result)
        raise InputError(f"a {self.name} result must be a dict, a dataclass or have to_dict()")

    def row(self, result: Any) -> dict[str, Any]:
        """One flat row for ``--format table|csv``."""
        row_fn = getattr(result, "row", None)
        if callable(row_fn):
            return row_fn()
        body = self.record(result)
        return {
            "model": body.get("model"), "layer": body.get("layer"),
            **{c.header: body.get(c.field) for c in self.columns},
            self.value_label: body.get(self.value),
            "ci_low": body.get("ci_low"), "ci_high": body.get("ci_high"),
        }

    def describe(self) -> str:
        return f"{self.name}: {self.summary}"


_MEASURES: dict[str, Measure] = {}
#: Built-in measures listed first, in this order; every other public module of this
#: package is a measure too and is imported after them, by name.
_FIRST = ("ooo", "rsa")
_loaded = False


def _builtin_modules() -> list[str]:
    """The package's measure modules: ``_FIRST``, then the other public modules by name."""
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if not m.name.startswith("_") and m.name not in _FIRST)
    return [f"{__name__}.{n}" for n in (*_FIRST, *names)]


def _ensure_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in _builtin_modules():
        importlib.import_module(module)


def _problems(measure: Measure) -> list[str]:
    out = []
    if not isinstance(measure.name, str) or not _NAME_RE.match(measure.name):
        out.append(f"name {measure.name!r}: use lower-case letters, digits and '-'")
    if measure.name in OTHER_KINDS or measure.name == "extract":
        out.append(f"name {measure.name!r} is taken by alignkit itself")
    if measure.data not in DATA_KINDS:
        out.append(f"data {measure.data!r} is not one of {', '.join(DATA_KINDS)}")
    if not (isinstance(measure.Options, type) and issubclass(measure.Options, MeasureOptions)
            and is_dataclass(measure.Options)):
        out.append("Options must be a dataclass subclass of MeasureOptions")
    else:
        try:
            measure.Options()
        except Exception as exc:  # the defaults must be valid
            out.append(f"the default options are invalid: {exc}")
    for attr in ("title", "summary"):
        if not isinstance(getattr(measure, attr), str) or not getattr(measure, attr).strip():
            out.append(f"{attr} must be a non-empty string")
    return out


def register_measure(measure: Measure, *, replace: bool = False) -> Measure:
    """Add a measure to the registry (an instance of a :class:`Measure` subclass).

    Raises:
        InputError: the measure is malformed, or its name is taken and not ``replace``.
    """
    if isinstance(measure, type):
        raise InputError("register_measure takes a Measure instance, not the class")
    problems = _problems(measure)
    if problems:
        raise InputError(f"measure {getattr(measure, 'name', '?')!r}: " + "; ".join(problems))
    if measure.name in _MEASURES and not replace:
        raise InputError(f"a measure named {measure.name!r} is registered already")
    _MEASURES[measure.name] = measure
    return measure


def unregister_measure(name: str) -> None:
    """Remove a measure (no error if it is not registered)."""
    _MEASURES.pop(name, None)


def measures() -> list[Measure]:
    """Every registered measure, built-in ones first, then in registration order."""
    _ensure_builtin()
    return list(_MEASURES.values())


def measure_names() -> tuple[str, ...]:
    return tuple(m.name for m in measures())


def get_measure(name: str) -> Measure:
    """The measure registered as ``name``.

    Raises:
        InputError: no such measure (the message lists the registered ones).
    """
    _ensure_builtin()
    try:
        return _MEASURES[name]
    except KeyError:
        raise InputError(
            f"no measure named {name!r} (registered: {', '.join(_MEASURES)})"
        ) from None


def record_kinds() -> tuple[str, ...]:
    """The ``kind`` of results records alignkit reads: the measures' names and ``probe``."""
    return (*measure_names(), *OTHER_KINDS)


def data_kind(name: str) -> DataKind:
    try:
        return DATA_KINDS[name]
    except KeyError:
        raise InputError(f"no data kind {name!r} (known: {', '.join(DATA_KINDS)})") from None
