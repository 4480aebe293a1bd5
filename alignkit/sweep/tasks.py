"""Expansion of a study into tasks, content-aware task keys, and running one task.

A study expands into one ``extract`` task per (model, image set), which fills
every listed layer in one pass, and, per layer, one task per (data set, measure):
each ``[[triplets]]`` or ``[[rdm]]`` table names the registered measures it runs
(:mod:`alignkit.measures`; by default ``ooo`` for triplets and ``rsa`` for an
RDM), and one ``probe`` task per probed triplet set (each depends on its
extraction).

Every task has a *key*: the SHA-256 of everything that decides its numbers
(model, weights and the checksum of a weights file, the seed of random-init and factory
weights, layer, pooling and dtype, the image set's file checksums, the human
data's checksums, the scoring options, and the alignkit version). A finished
task leaves a marker named by its key in the sweep ledger (``<store>.sweep/``),
so a rerun skips exactly the tasks whose inputs are unchanged.

:func:`execute_task` runs one task in any process (the local process, a pool
worker or a Dask worker). It writes features and probes into the store, each
task into its own group, and returns the results records for the driver to
append; it never raises: a failure comes back as an outcome with its error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit._version import __version__
from alignkit.extract.specs import seed_applies
from alignkit.sweep.study import ImageSetSpec, ModelSpec, Study, is_url

__all__ = [
    "Task",
    "TaskOutcome",
    "expand",
    "entry_model",
    "images_checksum",
    "data_checksum",
    "execute_task",
]



@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        kind: ``extract``, ``probe`` or the name of a registered measure (``ooo``, ``rsa``, ...).
        key: content-aware key (``sha256:...``).
        name: a readable name, e.g. ``ooo resnet18/layer4 @sample ~ things``.
        model: the model's label; layer: the layer (None for ``extract``).
        images: the image set's name; dataset: the triplet set or RDM (None for ``extract``).
        deps: keys of the tasks this one needs.
        spec: everything needed to run it (JSON-able).
    """

    kind: str
    key: str
    name: str
    model: str
    layer: str | None
    images: str
    dataset: str | None
    deps: tuple[str, ...]
    spec: dict[str, Any] = field(hash=False, compare=False)


@dataclass
class TaskOutcome:
    """What running a task gave: records for the results table, or an error."""

    key: str
    ok: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    detail: str | None = None


# --------------------------------------------------------------------------- checksums
def _sha(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def images_checksum(spec: ImageSetSpec) -> str:
    """Checksum of an image set: every file under its folder (path and bytes).

    For a CSV image set, the folder holding the CSV file is covered (the CSV
    names images relative to it).
    """
    from alignkit.provenance import sha256_file

    root = Path(spec.path)
    folder = root if root.is_dir() else root.parent
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(sha256_file(p).encode() + b"\n")
    if root.is_file():
        h.update(b"csv:" + root.name.encode())
        if spec.allow_outside_root:  # files named outside the folder count too
            from alignkit.extract.images import from_csv

            for path in from_csv(root, allow_outside_root=True).paths:
                real = path.resolve()
                if real.parent != folder.resolve() and folder.resolve() not in real.parents:
                    h.update(str(real).encode() + b"\0" + sha256_file(real).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def data_checksum(source: str | None) -> str | None:
    """Checksum of a human-data file or a bundled name (None stays None)."""
    if source is None:
        return None
    from alignkit.provenance import sha256_file

    p = Path(source)
    if not p.is_absolute():
        from alignkit.data import bundled_path

        p = bundled_path(source)
    return sha256_file(p)


def _weights_id(model: ModelSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"weights": model.weights}
    if os.path.isabs(model.weights) and os.path.isfile(model.weights):
        from alignkit.provenance import sha256_file

        out["weights_checksum"] = sha256_file(model.weights)
    if model.name.endswith((".pt", ".pth", ".ts", ".torchscript")) and os.path.isfile(model.name):
        from alignkit.provenance import sha256_file

        out["model_checksum"] = sha256_file(model.name)
    return out


def entry_model(model: ModelSpec, images: ImageSetSpec) -> str:
    """The model name of a (model, image set) entry in the store: ``label@images``."""
    return f"{model.label}@{images.name}"


def _ledger(store: str) -> str:
    return store.rstrip("/") + ".sweep"


# --------------------------------------------------------------------------- expansion
def expand(study: Study) -> list[Task]:
    """All tasks of a study, extraction tasks first, in a stable order.

    Per (model, image set): one extraction; per layer, one task per (data set, measure)
    (the measures a ``[[triplets]]`` or ``[[rdm]]`` table lists; see
    :mod:`alignkit.measures`) and one probe task per probed triplet set. Checksums of the
    image sets and human data are computed here (once).
    """
    sw = study.sweep
    img_sums = {s.name: images_checksum(s) for s in study.images}
    data_sets = study.data_sets
    data_sums = {(d.kind, d.name): (data_checksum(d.source), data_checksum(d.ids))
                 for d in data_sets}
    common = {"store": sw.store, "device": sw.device, "threads": sw.threads}
    # A dataset scored on several image sets is recorded as "name@images", so that
    # records stay distinct under the results table's (kind, model, layer, dataset) key.
    n_sets = {d.name: len(d.images or study.images) for d in data_sets}

    def recorded(dataset: str, images: str) -> str:
        return dataset if n_sets[dataset] == 1 else f"{dataset}@{images}"

    extracts: list[Task] = []
    scores: list[Task] = []
    for m in study.models:
        for s in study.images:
            ex = _extract_task(m, s, sw, img_sums[s.name], common)
            extracts.append(ex)
            for layer in m.layers:
                base = {**common, "entry_model": ex.spec["entry_model"], "layer": layer,
                        "label": m.label, "images": s.name, "seed": sw.seed}
                for d in data_sets:
                    if d.images and s.name not in d.images:
                        continue
                    for name in d.measures:
                        scores.append(_measure_task(name, d, ex, layer, recorded(d.name, s.name),
                                                    data_sums[(d.kind, d.name)], base))
                if study.probe is not None:
                    scores += _probe_tasks(study, ex, layer, s.name, recorded, data_sums, base)
    tasks = extracts + scores
    if len({t.key for t in tasks}) != len(tasks):  # names are unique, so keys are too
        raise AssertionError("two sweep tasks share a key")
    return tasks


def _extract_task(m: ModelSpec, s: ImageSetSpec, sw: Any, img_sum: str,
                  common: dict[str, Any]) -> Task:
    """The extraction of every listed layer of one model over one image set."""
    content = {
        "kind": "extract", "entry": entry_model(m, s), "model": m.name, **_weights_id(m),
        "seed": sw.seed if seed_applies(m.name, m.weights) else None,
        "layers": list(m.layers), "images": img_sum, "layout": s.layout,
        "dtype": sw.dtype, "pool_maps": sw.pool_maps, "pool_tokens": sw.pool_tokens,
        "alignkit": __version__, **({"exact": True} if sw.exact else {}),
    }
    return Task("extract", _sha(content), f"extract {m.label} @{s.name}", m.label, None, s.name,
                None, (),
                {**common, "entry_model": content["entry"], "model_spec": m.name,
                 "weights": m.weights, "layers": list(m.layers), "image_path": s.path,
                 "layout": s.layout, "allow_outside_root": s.allow_outside_root,
                 "seed": sw.seed, "batch_size": sw.batch_size,
                 "dtype": sw.dtype, "pool_maps": sw.pool_maps, "pool_tokens": sw.pool_tokens,
                 "loader_workers": sw.loader_workers, "offline": sw.offline,
                 "exact": sw.exact})


def _measure_task(name: str, d: Any, ex: Task, layer: str, dataset: str,
                  sums: tuple[str | None, str | None], base: dict[str, Any]) -> Task:
    """One registered measure of one layer against one data set."""
    from alignkit.measures import get_measure

    options = d.measure_options(name).to_dict()
    key = _sha({"kind": name, "extract": ex.key, "layer": layer, "dataset": dataset,
                "data": {"kind": d.kind, "checksums": sums, **d.keys}, "options": options})
    return Task(name, key, f"{name} {base['label']}/{layer} @{base['images']} ~ {d.name}",
                base["label"], layer, base["images"], d.name, (ex.key,),
                {**base, "dataset": dataset, "data_kind": d.kind, "source": d.source,
                 "ids": d.ids, "data_keys": dict(d.keys), "options": options,
                 # imported by a worker process where the measure is not registered yet
                 "measure_module": type(get_measure(name)).__module__})


def _probe_tasks(study: Study, ex: Task, layer: str, images: str, recorded: Any,
                 data_sums: dict[tuple[str, str], Any], base: dict[str, Any]) -> list[Task]:
    """The probes of one layer, one per probed triplet set."""
    p = study.probe
    assert p is not None
    out = []
    for tname in p.triplets:
        t = next(x for x in study.triplets if x.name == tname)
        if t.images and images not in t.images:
            continue
        opts = {"folds": p.folds, "lambdas": list(p.lambdas), "objective": p.objective,
                "protocol": p.protocol, "solver": p.solver, "seed": base["seed"]}
        key = _sha({"kind": "probe", "extract": ex.key, "layer": layer,
                    "dataset": recorded(t.name, images),
                    "triplets": data_sums[("triplets", t.name)], "format": t.format, **opts})
        out.append(Task(
            "probe", key, f"probe {base['label']}/{layer} @{images} ~ {t.name}", base["label"],
            layer, images, t.name, (ex.key,),
            {**base, "dataset": recorded(t.name, images), "source": t.source, "ids": t.ids,
             "format": t.format, "probe_name": f"sweep-{t.name}", **opts}))
    return out


# --------------------------------------------------------------------------- execution
def _set_threads(n: int) -> None:
    if n <= 0:
        return
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def _device(spec: dict[str, Any]) -> str:
    return "cpu" if spec["device"] == "cpu" else ("cuda" if spec["device"].startswith("cuda") else "auto")


def _run_extract(task: Task) -> TaskOutcome:
    from alignkit.errors import EntryExistsError
    from alignkit.extract import extract_features, load_model

    s = task.spec
    # seeded right before the build: random-init and factory weights are the same in every process
    lm = load_model(s["model_spec"], s["weights"], s["offline"], int(s["seed"]))
    options = dict(
        store=s["store"], model_name=s["entry_model"], batch_size=s["batch_size"],
        device=s["device"], num_workers=s["loader_workers"], dtype=s["dtype"],
        pool_maps=s["pool_maps"], pool_tokens=s["pool_tokens"], layout=s["layout"],
        progress=False, offline=s["offline"], exact=bool(s.get("exact", False)),
        allow_outside_root=bool(s.get("allow_outside_root", False)),
    )
    try:  # resumes an interrupted entry of the same extraction
        res = extract_features(lm, s["image_path"], s["layers"], **options)
    except EntryExistsError:
        # The sweep owns "label@images" entries; one made from other inputs (the
        # images, weights or options changed since) is replaced.
        res = extract_features(lm, s["image_path"], s["layers"], overwrite=True, **options)
    detail = ", ".join(f"{ln}: {st}" for ln, st in res.status.items())
    return TaskOutcome(task.key, True, detail=f"{len(res.ids)} images; {detail}")


def _record_extra(task: Task) -> dict[str, Any]:
    s = task.spec
    return {"model": task.model, "layer": task.layer, "dataset": s["dataset"],
            "images": task.images, "store": s["store"], "entry_model": s["entry_model"],
            "sweep": {"key": task.key, "task": task.kind}}


def _entry_layer(task: Task) -> tuple[Any, str]:
    """The store and the module name stored for the task's layer (presets resolved)."""
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(task.spec["store"], "r")
    model, layer = task.spec["entry_model"], task.spec["layer"]
    if st.has(model, layer):
        return st, layer
    for m, ln in st.entries():  # a preset ("penultimate") stored under its module's name
        if m == model and st.entry(m, ln).attrs.get("requested_layer") == layer:
            return st, ln
    from alignkit.errors import EntryNotFoundError

    raise EntryNotFoundError(f"{st.name}: no entry for {model}/{layer}; run its extraction first")


def _measure(name: str, module: str | None) -> Any:
    """A registered measure; in a fresh worker process, after importing the module that
    registers it."""
    from alignkit.errors import InputError
    from alignkit.measures import get_measure

    try:
        return get_measure(name)
    except InputError:
        if not module:
            raise
    import importlib

    importlib.import_module(module)
    return get_measure(name)


def _run_measure(task: Task) -> TaskOutcome:
    """A registered measure of one entry against one data set."""
    from alignkit.measures import data_kind
    from alignkit.results import record_from_result

    s = task.spec
    measure = _measure(task.kind, s.get("measure_module"))
    data = data_kind(s["data_kind"]).load(s["source"], ids=s["ids"], **s["data_keys"])
    st, layer = _entry_layer(task)
    res = measure.score_store(st, data, measure.options(s["options"]), model=s["entry_model"],
                              layer=layer, device=_device(s))[0]
    body = measure.record(res)
    rec = record_from_result(task.kind, body, **_record_extra(task), module=layer)
    value = body.get(measure.value)
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    return TaskOutcome(task.key, True, [rec], detail=f"{measure.value_label} {shown}")


def _run_probe(task: Task) -> TaskOutcome:
    import numpy as np

    from alignkit.data import load_ids, load_triplets
    from alignkit.errors import MismatchError
    from alignkit.probe import cross_validate
    from alignkit.results import record_from_result
    from alignkit.score import triplet_rows_for_entry
    from alignkit.store import EmbeddingStore

    s = task.spec
    trip = load_triplets(s["source"], format=s["format"])
    ids = load_ids(s["ids"]) if s["ids"] else None
    _, layer = _entry_layer(task)
    entry = EmbeddingStore(s["store"], "a").entry(s["entry_model"], layer)
    X = entry.features()
    if ids is None and trip.object_ids is None:
        raise MismatchError(f"{s['dataset']}: the triplets do not say which stimuli their "
                            "objects are; give their ids in the study (ids = \"file.txt\", one "
                            "id a line)")
    rows = triplet_rows_for_entry(entry.ids, trip, ids)
    if (rows < 0).any():
        raise MismatchError(f"{s['dataset']}: {int((rows < 0).sum())} of the triplets' "
                            f"{len(rows)} objects have no features in {s['entry_model']}/{layer}; "
                            "a probe is fitted on every object of the triplet set")
    X = X[rows].astype(np.float32)
    res = cross_validate(X, trip, folds=s["folds"], lambdas=s["lambdas"], objective=s["objective"],
                         protocol=s["protocol"], solver=s["solver"], seed=s["seed"],
                         device=_device(s))
    res.transform.save(entry, s["probe_name"], overwrite=True)
    # the same summary as 'alignkit probe fit' records (the fields the report reads)
    body = res.summary(probe=s["probe_name"])
    rec = record_from_result("probe", body, **_record_extra(task), module=layer)
    return TaskOutcome(task.key, True, [rec], detail=f"probing accuracy {res.probing_accuracy:.4f}")


_RUNNERS = {"extract": _run_extract, "probe": _run_probe}


def execute_task(task: Task) -> TaskOutcome:
    """Run one task; never raises (a failure is returned with its error).

    Features and probes are written into the store by the task itself; the
    results records are returned, for the driver to append to the results table.
    """
    t0 = time.perf_counter()
    try:
        _set_threads(int(task.spec.get("threads", 0)))
        out = _RUNNERS.get(task.kind, _run_measure)(task)
    except Exception as exc:  # reported per task; the sweep goes on
        from alignkit.errors import AlignkitError

        tb = None if isinstance(exc, AlignkitError) else traceback.format_exc(limit=8)
        out = TaskOutcome(task.key, False, error=str(exc) or type(exc).__name__,
                          error_type=type(exc).__name__, detail=tb)
    out.seconds = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- ledger
class Ledger:
    """Markers of finished tasks, one small JSON file per task key.

    Kept beside the store (``<store>.sweep/``, a folder or an fsspec URL), never
    inside it, so Zarr readers see only the store's own groups. Each marker is
    written once, by the driver, after the task's records were appended.
    """

    def __init__(self, store: str) -> None:
        self.root = _ledger(store)
        self.remote = is_url(store)

    def _name(self, key: str) -> str:
        return key.replace("sha256:", "") + ".json"

    def _fs(self) -> tuple[Any, str]:
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path

    def done(self) -> set[str]:
        """Keys of all finished tasks."""
        if self.remote:
            fs, path = self._fs()
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
        else:
            root = Path(self.root)
            names = [p.name for p in root.glob("*.json")] if root.is_dir() else []
        return {"sha256:" + n[:-5] for n in names if n.endswith(".json")}

    def mark(self, task: Task, outcome: TaskOutcome) -> None:
        """Record a finished task (atomically: written under a temporary name, then renamed)."""
        from alignkit.provenance import now_utc

        body = json.dumps({"key": task.key, "task": task.name, "kind": task.kind,
                           "finished": now_utc(), "seconds": round(outcome.seconds, 3),
                           "records": len(outcome.records),
                           "alignkit": __version__}, sort_keys=True).encode()
        if self.remote:
            fs, path = self._fs()
            fs.pipe_file(f"{path}/{self._name(task.key)}", body)
            return
        root = Path(self.root)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{self._name(task.key)}.{os.getpid()}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, root / self._name(task.key))

    def forget(self, key: str) -> None:
        """Drop a marker (its outputs are gone)."""
        if self.remote:
            fs, path = self._fs()
            target = f"{path}/{self._name(key)}"
            if fs.exists(target):
                fs.rm(target)
            return
        (Path(self.root) / self._name(key)).unlink(missing_ok=True)
