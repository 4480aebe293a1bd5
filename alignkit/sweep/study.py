"""Study files: the TOML description of a sweep, parsed and validated up front.

A study lists models (with weights and layers or presets), image sets, triplet
sets, RDM sets and probe settings. :func:`load_study` reads it with
:mod:`tomllib`, checks every key and value, resolves relative paths against
the study file's folder, and refuses anything wrong *before* any work starts,
with a message naming the file, the line and the key at fault::

    study.toml line 12: [[model]] #2 key 'layers': expected a non-empty list of strings, got 3

Layout (see ``docs/sweep.md``)::

    [sweep]                      # where and how
    store = "features.zarr"      # a folder or an fsspec URL (s3://bucket/features.zarr)
    results = "results.jsonl"    # optional; default: <store>/results.jsonl
    device = "cpu"               # auto | cpu | cuda | cuda:N
    seed = 0                     # seeds random-init and factory weights, bootstrap, probes
    batch_size = 32
    pool_maps = "avg"            # flatten | avg | max
    threads = 0                  # torch and numba threads per task (0: leave as is)

    [[model]]
    name = "resnet18"            # torchvision name, timm:NAME, pkg.mod:factory, file.py:factory
                                 # (relative to this file), a .pt file; factories and .pt files
                                 # are code that the sweep runs (docs/security.md)
    weights = "none"             # DEFAULT | none | IMAGENET1K_V1 | a weights file
    layers = ["layer4", "penultimate"]

    [[images]]
    name = "sample"
    path = "images/"             # a folder or a CSV file
    allow_outside_root = false   # a CSV may name files outside its folder

    [[triplets]]
    name = "things"
    source = "things-test20k"    # a bundled name or a file
    ids = "ids.txt"              # optional object ids (one a line)

    [[rdm]]
    name = "rdm48"
    source = "rdm48"

    [[embedding]]                # a representation with one row per stimulus
    name = "spose"
    source = "spose-49d"

    [probe]
    triplets = ["things"]
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomllib

from alignkit.errors import AlignkitError, FormatError, InputError
from alignkit.extract.sources import source_for
from alignkit.extract.specs import SEED_MAX

__all__ = [
    "Study",
    "SweepSettings",
    "ModelSpec",
    "ImageSetSpec",
    "DataSetSpec",
    "TripletSetSpec",
    "RDMSetSpec",
    "EmbeddingSetSpec",
    "ProbeSpec",
    "load_study",
    "parse_study",
    "is_url",
    "check_model_name",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def is_url(path: str) -> bool:
    """Whether a store location is an fsspec URL (``s3://...``) rather than a local path."""
    return "://" in path and not path.startswith("file://")


# --------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class SweepSettings:
    """The ``[sweep]`` table: where results go and how tasks run.

    Attributes:
        store: the embedding store, an absolute local path or an fsspec URL.
        results: the results table (a local ``.jsonl`` path), or None for the
            store's own ``results.jsonl``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds random-init weights, bootstrap resampling and probes.
        batch_size: images per forward pass.
        dtype: storage dtype of features (``float32`` or ``float16``).
        pool_maps: pooling of 4-D feature maps (``flatten``, ``avg``, ``max``).
        pool_tokens: pooling of token sequences (``cls``, ``mean``, ``flatten``).
        loader_workers: data-loader processes per extraction (0: in the task's process).
        threads: torch and numba threads per task (0: leave the default).
        offline: never download weights.
        exact: extract with a plain contiguous forward pass (features equal to plain
            torchvision bit for bit; the default uses channels-last for convolutional
            networks, about 1e-6 relative rounding differences).
    """

    store: str
    results: str | None = None
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 32
    dtype: str = "float32"
    pool_maps: str = "flatten"
    pool_tokens: str = "cls"
    loader_workers: int = 0
    threads: int = 0
    offline: bool = False
    exact: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One ``[[model]]``: a model, its weights and the layers to extract."""

    name: str
    weights: str
    layers: tuple[str, ...]
    label: str
    line: int = 0


@dataclass(frozen=True)
class ImageSetSpec:
    """One ``[[images]]``: a folder or CSV of images."""

    name: str
    path: str
    layout: str = "auto"
    line: int = 0
    allow_outside_root: bool = False


@dataclass(frozen=True)
class DataSetSpec:
    """One ``[[triplets]]``, ``[[rdm]]`` or ``[[embedding]]`` table: data and its measures.

    Attributes:
        name: the data set's name (records say it as their ``dataset``).
        source: a bundled name or an absolute path.
        ids: the ids of its objects or rows (an absolute path), or None.
        images: the image sets it is scored on (empty: all).
        measures: the registered measures run on it (``measures = [...]``; default the
            data kind's, ``ooo`` for triplets and ``rsa`` for RDMs).
        options: per measure name, its validated options (keys of the table that are
            options of the measure, the ``[sweep]`` seed where the measure takes one).
        keys: the data kind's own keys (``format`` of triplets, ``key`` of an RDM).
    """

    name: str
    source: str
    ids: str | None = None
    images: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    keys: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0
    kind: ClassVar[str] = ""

    def measure_options(self, measure: str) -> Any:
        """The options of one of the table's measures (its defaults when none were set)."""
        from alignkit.measures import get_measure

        return self.options.get(measure) or get_measure(measure).options()


@dataclass(frozen=True)
class TripletSetSpec(DataSetSpec):
    """One ``[[triplets]]``: human odd-one-out judgments and the measures run on them."""

    kind: ClassVar[str] = "triplets"

    @property
    def format(self) -> str:
        return self.keys.get("format") or "auto"

    @property
    def similarity(self) -> str:
        """The odd-one-out similarity (the preset's when the table sets none)."""
        from alignkit.score.presets import PRESETS

        o = self.measure_options("ooo")
        return o.similarity or PRESETS[o.preset or "paper2023"].similarity

    @property
    def ties(self) -> str:
        from alignkit.score.presets import PRESETS

        o = self.measure_options("ooo")
        return o.ties or PRESETS[o.preset or "paper2023"].ties

    @property
    def bootstrap(self) -> int:
        return int(self.measure_options("ooo").bootstrap)


@dataclass(frozen=True)
class RDMSetSpec(DataSetSpec):
    """One ``[[rdm]]``: a human RDM and the measures run on it."""

    kind: ClassVar[str] = "rdm"

    @property
    def key(self) -> str | None:
        return self.keys.get("key")

    @property
    def rdm_method(self) -> str:
        return str(self.measure_options("rsa").rdm_method)

    @property
    def compare(self) -> str:
        return str(self.measure_options("rsa").compare)

    @property
    def permutations(self) -> int:
        return int(self.measure_options("rsa").permutations)

    @property
    def bootstrap(self) -> int:
        return int(self.measure_options("rsa").bootstrap)


@dataclass(frozen=True)
class EmbeddingSetSpec(DataSetSpec):
    """One ``[[embedding]]``: a representation with one row per stimulus (a human concept
    embedding such as ``spose-49d``) and the measures run on it."""

    kind: ClassVar[str] = "embedding"

    @property
    def labels(self) -> str | None:
        return self.keys.get("labels")


@dataclass(frozen=True)
class ProbeSpec:
    """The ``[probe]`` table: linear probes fitted on some triplet sets."""

    triplets: tuple[str, ...]
    folds: int = 3
    lambdas: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
    objective: str = "paper"
    protocol: str = "nested"
    solver: str = "fast"


@dataclass(frozen=True)
class Study:
    """A validated study.

    Attributes:
        path: the study file (or ``<string>``).
        sweep: the ``[sweep]`` settings.
        models, images, triplets, rdms, embeddings: the tables, in file order.
        probe: the ``[probe]`` table, or None.
    """

    path: str
    sweep: SweepSettings
    models: tuple[ModelSpec, ...]
    images: tuple[ImageSetSpec, ...]
    triplets: tuple[TripletSetSpec, ...] = ()
    rdms: tuple[RDMSetSpec, ...] = ()
    probe: ProbeSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    embeddings: tuple[EmbeddingSetSpec, ...] = ()

    @property
    def data_sets(self) -> tuple[DataSetSpec, ...]:
        """Every human data table, triplets first, then RDMs, then embeddings."""
        return (*self.triplets, *self.rdms, *self.embeddings)


# --------------------------------------------------------------------------- line lookup
class _Lines:
    """Finds the line of a table or key in the raw TOML text (1-based)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")

    def __init__(self, text: str) -> None:
        self.headers: list[tuple[int, str, bool]] = []  # (line, name, is_array)
        self.keys: list[tuple[int, str]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            m = self._HEADER.match(line)
            if m:
                self.headers.append((number, m.group(2).strip().strip("\"'"), m.group(1) == "[["))
                continue
            k = self._KEY.match(line)
            if k:
                self.keys.append((number, k.group(1).strip("\"'")))

    def table(self, name: str, index: int | None = None) -> tuple[int, int]:
        """First and last line (exclusive) of ``[name]`` or the ``index``-th ``[[name]]``."""
        seen = -1
        for i, (line, hname, is_array) in enumerate(self.headers):
            if hname != name or is_array != (index is not None):
                continue
            seen += 1
            if index is None or seen == index:
                end = self.headers[i + 1][0] if i + 1 < len(self.headers) else 1 << 30
                return line, end
        return 0, 0

    def key(self, name: str, index: int | None, key: str | None) -> int:
        """Line of ``key`` in the table (the header's line if the key is absent), 0 if unknown."""
        first, end = self.table(name, index)
        if key is None or first == 0:
            return first
        for line, k in self.keys:
            if first < line < end and k == key:
                return line
        return first

    def top_key(self, key: str) -> int:
        """Line of a key or table at the top level."""
        first_header = self.headers[0][0] if self.headers else 1 << 30
        for line, k in self.keys:
            if line < first_header and k == key:
                return line
        for line, hname, _ in self.headers:
            if hname == key or hname.startswith(key + "."):
                return line
        return 0


# --------------------------------------------------------------------------- parsing
class _Parser:
    def __init__(self, text: str, where: str, base: Path,
                 check_model: Callable[[str, str], str | None] | None) -> None:
        self.where = where
        self.base = base
        self.lines = _Lines(text)
        self.check_model = check_model
        try:
            self.doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FormatError(f"{where}: not valid TOML ({exc})") from None

    # -- errors
    def fail(self, table: str, index: int | None, key: str | None, message: str) -> InputError:
        line = self.lines.key(table, index, key)
        head = f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]"
        at = f" line {line}" if line else ""
        what = f"{head} key {key!r}" if key else head
        return InputError(f"{self.where}{at}: {what}: {message}")

    # -- typed getters
    def _get(self, tbl: Mapping[str, Any], table: str, index: int | None, key: str,
             kind: type | tuple[type, ...], default: Any, what: str, required: bool = False) -> Any:
        if key not in tbl:
            if required:
                raise self.fail(table, index, None, f"missing required key {key!r} ({what})")
            return default
        value = tbl[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(table, index, key, f"expected {what}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(table, index, key, f"expected {what}, got {value!r}")
        return value

    def text(self, tbl: Mapping[str, Any], table: str, index: int | None, key: str,
             default: str | None = None, required: bool = False,
             choices: tuple[str, ...] | None = None) -> Any:
        value = self._get(tbl, table, index, key, str, default, "a string", required)
        if value is not None and not value.strip():
            raise self.fail(table, index, key, "must not be empty")
        if choices is not None and value is not None and value not in choices:
            raise self.fail(table, index, key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, tbl: Mapping[str, Any], table: str, index: int | None, key: str,
                default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(tbl, table, index, key, int, default, "an integer")
        if value < minimum:
            raise self.fail(table, index, key, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(table, index, key, f"must be at most {maximum}, got {value}")
        return int(value)

    def strings(self, tbl: Mapping[str, Any], table: str, index: int | None, key: str,
                required: bool = False) -> tuple[str, ...]:
        value = self._get(tbl, table, index, key, list, [], "a non-empty list of strings", required)
        if key in tbl and (not value or not all(isinstance(v, str) and v.strip() for v in value)):
            raise self.fail(table, index, key, f"expected a non-empty list of strings, got {value!r}")
        if len(set(value)) != len(value):
            dup = next(v for i, v in enumerate(value) if v in value[:i])
            raise self.fail(table, index, key, f"{dup!r} is listed twice")
        return tuple(value)

    def path(self, tbl: Mapping[str, Any], table: str, index: int | None, key: str,
             required: bool = False, must_exist: bool = True, bundled: bool = False) -> str | None:
        value = self.text(tbl, table, index, key, required=required)
        if value is None:
            return None
        if bundled:
            from alignkit.data import BUNDLED

            if value in BUNDLED:
                return value
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.base / p
        if must_exist and not p.exists():
            hint = " (nor a bundled name; see 'alignkit data ls')" if bundled else ""
            raise self.fail(table, index, key, f"no such file or folder {str(p)!r}{hint}")
        return os.path.abspath(p)

    def keys(self, tbl: Mapping[str, Any], table: str, index: int | None, allowed: tuple[str, ...]) -> None:
        for key in tbl:
            if key not in allowed:
                raise self.fail(table, index, key, f"unknown key (allowed: {', '.join(allowed)})")

    def name(self, tbl: Mapping[str, Any], table: str, index: int, key: str = "name",
             default: str | None = None) -> str:
        value = self.text(tbl, table, index, key, default=default, required=default is None)
        if not _NAME_RE.match(value):
            raise self.fail(table, index, key, f"{value!r}: use letters, digits and . _ + - only")
        return value

    def array(self, table: str) -> list[tuple[int, Mapping[str, Any]]]:
        value = self.doc.get(table, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            line = self.lines.top_key(table)
            raise InputError(f"{self.where}{f' line {line}' if line else ''}: {table!r} must be "
                             f"an array of tables, written [[{table}]]")
        return list(enumerate(value))

    def table(self, table: str, required: bool = False) -> Mapping[str, Any] | None:
        value = self.doc.get(table)
        if value is None:
            if required:
                raise InputError(f"{self.where}: missing the [{table}] table")
            return None
        if not isinstance(value, dict):
            line = self.lines.top_key(table)
            raise InputError(f"{self.where}{f' line {line}' if line else ''}: {table!r} must be "
                             f"a table, written [{table}]")
        return value

    # -- sections
    def sweep(self) -> SweepSettings:
        t = self.table("sweep", required=True) or {}
        allowed = ("store", "results", "device", "seed", "batch_size", "dtype", "pool_maps",
                   "pool_tokens", "loader_workers", "threads", "offline", "exact")
        self.keys(t, "sweep", None, allowed)
        store = self.text(t, "sweep", None, "store", required=True)
        if not is_url(store):
            if store.startswith("file://"):
                t = {**t, "store": store[len("file://"):]}
            store = self.path(t, "sweep", None, "store", required=True, must_exist=False)
        results = self.path(t, "sweep", None, "results", must_exist=False)
        device = self.text(t, "sweep", None, "device", default="cpu")
        if not _DEVICE_RE.match(device):
            raise self.fail("sweep", None, "device", f"{device!r}: expected auto, cpu, cuda or cuda:N")
        return SweepSettings(
            store=store,
            results=results,
            device=device,
            seed=self.integer(t, "sweep", None, "seed", 0, maximum=SEED_MAX),
            batch_size=self.integer(t, "sweep", None, "batch_size", 32, minimum=1),
            dtype=self.text(t, "sweep", None, "dtype", "float32", choices=("float32", "float16")),
            pool_maps=self.text(t, "sweep", None, "pool_maps", "flatten",
                                choices=("flatten", "avg", "max")),
            pool_tokens=self.text(t, "sweep", None, "pool_tokens", "cls",
                                  choices=("cls", "mean", "flatten")),
            loader_workers=self.integer(t, "sweep", None, "loader_workers", 0),
            threads=self.integer(t, "sweep", None, "threads", 0),
            offline=self._get(t, "sweep", None, "offline", bool, False, "true or false"),
            exact=self._get(t, "sweep", None, "exact", bool, False, "true or false"),
        )

    def models(self) -> tuple[ModelSpec, ...]:
        out: list[ModelSpec] = []
        rows = self.array("model")
        if not rows:
            raise InputError(f"{self.where}: no [[model]] table; list at least one model")
        for i, t in rows:
            self.keys(t, "model", i, ("name", "weights", "layers", "label"))
            name = self.text(t, "model", i, "name", required=True)
            name = _rebase_model(name, self.base)
            weights = self.text(t, "model", i, "weights", default="DEFAULT")
            layers = self.strings(t, "model", i, "layers", required=True)
            label = self.name(t, "model", i, "label", default=_default_label(name))
            if self.check_model is not None:
                problem = self.check_model(name, weights)
                if problem:
                    raise self.fail("model", i, "name", problem)
            wfile = Path(weights).expanduser()
            if wfile.suffix in (".pt", ".pth", ".bin", ".safetensors"):
                wfile = wfile if wfile.is_absolute() else self.base / wfile
                if not wfile.exists():
                    raise self.fail("model", i, "weights", f"no such weights file {str(wfile)!r}")
                weights = os.path.abspath(wfile)
            out.append(ModelSpec(name, weights, layers, label, self.lines.key("model", i, None)))
        _unique(self, "model", [m.label for m in out], "label")
        return tuple(out)

    def image_sets(self) -> tuple[ImageSetSpec, ...]:
        out: list[ImageSetSpec] = []
        rows = self.array("images")
        if not rows:
            raise InputError(f"{self.where}: no [[images]] table; list at least one image set")
        for i, t in rows:
            self.keys(t, "images", i, ("name", "path", "layout", "allow_outside_root"))
            out.append(ImageSetSpec(
                name=self.name(t, "images", i),
                path=self.path(t, "images", i, "path", required=True) or "",
                layout=self.text(t, "images", i, "layout", "auto",
                                 choices=("auto", "folder", "csv", "things", "things-full")),
                line=self.lines.key("images", i, None),
                allow_outside_root=self._get(t, "images", i, "allow_outside_root", bool, False,
                                             "true or false"),
            ))
        _unique(self, "images", [s.name for s in out], "name")
        return tuple(out)

    def _image_refs(self, t: Mapping[str, Any], table: str, i: int, known: set[str]) -> tuple[str, ...]:
        refs = self.strings(t, table, i, "images")
        for r in refs:
            if r not in known:
                raise self.fail(table, i, "images", f"no [[images]] named {r!r} "
                                f"(known: {', '.join(sorted(known))})")
        return refs

    def data_sets(self, cls: type[DataSetSpec], images: set[str], seed: int) -> tuple[Any, ...]:
        """The ``[[triplets]]`` or ``[[rdm]]`` tables; their keys come from the registry: the
        data kind's own keys, ``measures``, and the options of the measures listed."""
        from alignkit.measures import data_kind, measures

        kind = data_kind(cls.kind)
        table = kind.name
        fit = {m.name: m for m in measures() if m.data == kind.name}
        out: list[DataSetSpec] = []
        for i, t in self.array(table):
            listed = self._measures(t, table, i, fit, kind.default_measures)
            owners = self._option_owners([fit[n] for n in listed])
            others = {k for m in fit.values() for k in self._option_owners([m])}
            for key in t:
                if key in ("name", "source", "images", "measures", *kind.keys) or key in owners:
                    continue
                if key in others:
                    raise self.fail(table, i, key, "is an option of a measure this table does "
                                    f"not list in 'measures' ({', '.join(listed)})")
                allowed = ("name", "source", "images", "measures", *kind.keys, *owners)
                raise self.fail(table, i, key, f"unknown key (allowed: {', '.join(allowed)})")
            keys = {k: (self.path(t, table, i, k) if how == "path" else self.text(t, table, i, k))
                    for k, how in kind.keys.items()}
            out.append(cls(
                name=self.name(t, table, i),
                source=self.path(t, table, i, "source", required=True, bundled=True) or "",
                ids=keys.pop("ids", None),
                images=self._image_refs(t, table, i, images),
                measures=listed,
                options={n: self._options(fit[n], t, table, i, seed) for n in listed},
                keys=keys,
                line=self.lines.key(table, i, None),
            ))
        _unique(self, table, [s.name for s in out], "name")
        return tuple(out)

    def _measures(self, t: Mapping[str, Any], table: str, i: int, fit: Mapping[str, Any],
                  default: tuple[str, ...]) -> tuple[str, ...]:
        listed = self.strings(t, table, i, "measures") or default
        for name in listed:
            if name not in fit:
                raise self.fail(table, i, "measures", f"{name!r} is not a measure of "
                                f"{table} (registered: {', '.join(fit)})")
        return listed

    @staticmethod
    def _option_owners(ms: list[Any]) -> set[str]:
        from alignkit.measures import option_specs

        return {n for m in ms for n, spec, _ in option_specs(m.Options) if spec.study}

    def _options(self, measure: Any, t: Mapping[str, Any], table: str, i: int, seed: int) -> Any:
        """One measure's options from the table's keys (and the ``[sweep]`` seed)."""
        from alignkit.measures import check_option, option_specs

        values: dict[str, Any] = {}
        for name, spec, _ in option_specs(measure.Options):
            if spec.sweep == "seed":
                values[name] = seed
            if not spec.study or name not in t:
                continue
            value, problem = check_option(spec, t[name])
            if problem:
                raise self.fail(table, i, name, problem)
            values[name] = spec.canonical(value) if spec.canonical and value is not None else value
        return measure.options(values)

    def probe(self, triplets: set[str]) -> ProbeSpec | None:
        t = self.table("probe")
        if t is None:
            return None
        self.keys(t, "probe", None, ("triplets", "folds", "lambdas", "objective", "protocol", "solver"))
        names = self.strings(t, "probe", None, "triplets", required=True)
        for n in names:
            if n not in triplets:
                raise self.fail("probe", None, "triplets", f"no [[triplets]] named {n!r}")
        lambdas = self._get(t, "probe", None, "lambdas", list, None, "a list of positive numbers")
        if lambdas is not None and (not lambdas or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in lambdas)):
            raise self.fail("probe", None, "lambdas", f"expected a list of positive numbers, got {lambdas!r}")
        return ProbeSpec(
            triplets=names,
            folds=self.integer(t, "probe", None, "folds", 3, minimum=2),
            lambdas=tuple(float(v) for v in lambdas) if lambdas else ProbeSpec.lambdas,
            objective=self.text(t, "probe", None, "objective", "paper", choices=("paper", "glocal")),
            protocol=self.text(t, "probe", None, "protocol", "nested", choices=("nested", "paper")),
            solver=self.text(t, "probe", None, "solver", "fast", choices=("fast", "minibatch")),
        )

    def study(self) -> Study:
        known = ("sweep", "model", "images", "triplets", "rdm", "embedding", "probe")
        for key in self.doc:
            if key not in known:
                line = self.lines.top_key(key)
                raise InputError(f"{self.where}{f' line {line}' if line else ''}: unknown key or "
                                 f"table {key!r} (allowed: {', '.join(known)})")
        sweep = self.sweep()
        models = self.models()
        images = self.image_sets()
        names = {s.name for s in images}
        triplets = self.data_sets(TripletSetSpec, names, sweep.seed)
        rdms = self.data_sets(RDMSetSpec, names, sweep.seed)
        embeddings = self.data_sets(EmbeddingSetSpec, names, sweep.seed)
        probe = self.probe({s.name for s in triplets})
        if not triplets and not rdms and not embeddings:
            raise InputError(f"{self.where}: no [[triplets]], [[rdm]] or [[embedding]] table; "
                             "nothing to score")
        return Study(self.where, sweep, models, images, triplets, rdms, probe,
                     embeddings=embeddings)


def _default_label(name: str) -> str:
    from alignkit.zoo import label_of

    return label_of(Path(name).name if os.sep in name else name)


def _unique(parser: _Parser, table: str, values: list[str], key: str) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise parser.fail(table, i, key, f"{v!r} is used twice (also by [[{table}]] #{seen[v] + 1})")
        seen[v] = i


def _rebase_model(name: str, base: Path) -> str:
    """``name`` with its relative files resolved against the study's folder, by its source."""
    try:
        return source_for(name).rebase(name, base)
    except AlignkitError:
        return name  # check_model_name says what is wrong with it


def check_model_name(name: str, weights: str) -> str | None:
    """Why a model specification cannot be built, or None if it looks buildable.

    Asks the spec's model source (:mod:`alignkit.extract.sources`): torchvision
    names are checked against the installed torchvision; custom factories
    (``pkg.mod:factory``), ``timm:``/``open_clip:`` names and model files are
    checked for their form (or existence) only. No model code is imported.
    """
    if not name.strip():
        return "empty model name"
    try:
        source = source_for(name)
    except AlignkitError as exc:
        return str(exc)
    return source.check(name.strip(), weights)


def parse_study(text: str, *, where: str = "<study>", base: str | os.PathLike[str] = ".",
                check_models: bool = True) -> Study:
    """Parse and validate a study given as TOML text.

    Args:
        text: the TOML text.
        where: how messages name the file.
        base: folder that relative paths are resolved against.
        check_models: check model names against torchvision (imports torch).

    Returns:
        The :class:`Study`.

    Raises:
        FormatError: not valid TOML.
        InputError: an unknown key or table, a wrong type, a missing file, an
            unknown model or reference; the message names the line and key.
    """
    parser = _Parser(text, where, Path(base).resolve(), check_model_name if check_models else None)
    return parser.study()


def load_study(path: str | os.PathLike[str], *, check_models: bool = True) -> Study:
    """Read and validate a study file (see :func:`parse_study`).

    Raises:
        InputError: the file is missing or unreadable, or anything
            :func:`parse_study` refuses.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{p}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the study file ({exc})") from None
    return parse_study(text, where=str(p), base=p.resolve().parent, check_models=check_models)
