"""``alignkit probe``: learn, apply, export and import linear probes.

``alignkit probe STORE ...`` runs the default action ``fit``; ``apply``,
``export`` and ``import`` are sub-actions. Heavy imports stay inside functions.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields
from typing import Any

import click

from alignkit.commands._options import SEED, FiniteFloat, OutputFile
from alignkit.errors import InputError


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, goes to ``fit``."""

    default_command = "fit"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _floats(value: str, option: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError as exc:
        raise InputError(f"{option}: expected comma-separated numbers, got {value!r}") from exc
    if not out:
        raise InputError(f"{option}: give at least one value")
    return out


def _open_entry(store: str, model: str, layer: str, mode: str = "r") -> Any:
    from alignkit.store import EmbeddingStore

    return EmbeddingStore(store, mode=mode).entry(model, layer)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def probe() -> None:
    """Learn a linear probe from human triplets (default action: fit).

    \b
    Examples:
      alignkit probe s.zarr --model resnet50 --layer avgpool --triplets things-test20k
      alignkit probe apply s.zarr --model resnet50 --layer avgpool --probe paper-nested
      alignkit probe export s.zarr out.npz --model resnet50 --layer avgpool --probe paper-nested
      alignkit probe import s.zarr --model resnet50 --layer avgpool glocal.npz --name glocal
      alignkit probe import s.zarr glocal:resnet50      (a published probe: probe published)
    """


def _matched_inputs(
    entry: Any, feats: Any, triplets_src: str, object_ids: str | None, by_position: bool
) -> tuple[Any, Any, str]:
    """The entry's features in the triplets' object order, matched by id (or by position)."""
    from alignkit.data import load_triplets
    from alignkit.errors import MismatchError
    from alignkit.score.align import align_triplets

    where = f"entry {entry.model}/{entry.layer}"
    if by_position:
        trip = load_triplets(triplets_src, n_objects=feats.shape[0])
        align_triplets(trip.array, feats.shape[0], by_position=True, where=where)
        return feats, trip, "by position (--by-position)"
    trip = load_triplets(triplets_src, **({"object_ids": object_ids} if object_ids else {}))
    al = align_triplets(trip.array, feats.shape[0], feature_ids=entry.ids,
                        object_ids=trip.object_ids, where=where)
    missing = int((al.rows < 0).sum())
    if missing:
        raise MismatchError(
            f"{where}: {missing} of the triplets' {len(al.rows)} objects have no features; a "
            "probe is fitted on every object of the triplet set"
        )
    return feats[al.rows], trip, "by id"


@dataclass(frozen=True)
class _FitJob:
    """What ``probe fit`` fits on and what it does with the result (the rest is CVOptions)."""

    store: str
    model: str
    layer: str
    triplets_src: str
    object_ids: str | None
    by_position: bool
    reference_layer: str | None
    reference_model: str | None
    name: str | None
    save: bool
    overwrite: bool
    fmt: str
    progress: bool | None
    record: bool
    control: str


def _cv_options(*, folds: str | None, lambdas: str, lrs: str, alphas: str, taus: str,
                optimizer: str, data_parallel: int | None, lr_schedule: str | None,
                **fields: Any) -> Any:
    """The command line's cross-validation flags as a :class:`~alignkit.probe.cv.CVOptions`."""
    from alignkit.probe.cv import CVOptions

    fold_list = None
    if folds is not None:
        ks = _floats(folds, "--folds")
        if any(k != int(k) for k in ks):
            raise InputError(f"--folds: expected integers, got {folds!r}")
        fold_list = tuple(int(k) for k in ks)
    sopts: dict[str, Any] = {"optimizer": optimizer}
    if data_parallel is not None:
        sopts["data_parallel"] = data_parallel
    if lr_schedule is not None:
        sopts["lr_schedule"] = lr_schedule
    return CVOptions(folds=fold_list, lambdas=_floats(lambdas, "--lambdas"),
                     lrs=_floats(lrs, "--lrs"), alphas=_floats(alphas, "--alphas"),
                     taus=_floats(taus, "--taus"), solver_options=sopts, **fields)


@probe.command("fit")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True, help="Model name in the store.")
@click.option("--layer", required=True, help="Layer whose features are probed.")
@click.option("--triplets", "triplets_src", required=True,
              help="Triplet file or bundled name (e.g. things-test20k).")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things' "
              "(THINGS releases carry them already); features are matched to them by id.")
@click.option("--by-position", is_flag=True,
              help="Pair object t of the triplets with feature row t instead (recorded).")
@click.option("--folds", default=None,
              help="Object folds k, one or comma-separated (searched with lambda in one grid) "
              "[default: 3,4 with --protocol paper, 3 with nested].")
@click.option("--lambdas", default="1e-1,1e-2,1e-3,1e-4,1e-5", show_default=True,
              help="Comma-separated regularisation strengths.")
@click.option("--lrs", default="1e-3", show_default=True,
              help="Comma-separated Adam learning rates (minibatch solver).")
@click.option("--objective", type=click.Choice(["paper", "glocal"]), default="paper",
              show_default=True)
@click.option("--protocol", type=click.Choice(["nested", "paper"]), default="nested",
              show_default=True, help="nested: no leakage, refit on all objects; "
              "paper: held-out fold for stopping, selection and score.")
@click.option("--solver", type=click.Choice(["fast", "minibatch"]), default="fast",
              show_default=True)
@click.option("--inner", type=click.Choice(["triplets", "objects"]), default="triplets",
              show_default=True, help="Nested validation split.")
@click.option("--val-fraction", default=0.1, show_default=True,
              help="Validation fraction (nested protocol and refit).")
@click.option("--accuracy-rule", type=click.Choice(["argmax", "paper"]), default="argmax",
              show_default=True, help="argmax: the human pair must be strictly most similar; "
              "paper: the published float32 softmax rule (wrong on equal or near-uniform "
              "probabilities).")
@click.option("--early-stopping", type=click.Choice(["shared", "per-fold"]), default=None,
              help="shared: one never-reset state for all folds (the published code) "
              "[default: shared with --protocol paper, per-fold with nested].")
@click.option("--warm-start", type=click.Choice(["none", "lambda"]), default=None,
              help="fast solver: start each lambda's fit from the next larger lambda's "
              "solution on the same fold and split (fewer iterations; with early stopping "
              "it can stop at a worse point) [default: none, the objective's "
              "initialisation for every fit].")
@click.option("--data-parallel", type=int, default=None,
              help="minibatch: batches averaged per step [default: 4 with --protocol paper "
              "(4 processes x 256 = 1024 per step, the published code), else 1].")
@click.option("--bias/--no-bias", default=False, show_default=True)
@click.option("--reference-layer", default=None,
              help="glocal: layer of the same model in STORE holding reference features.")
@click.option("--reference-model", default=None, help="glocal: model of the reference layer.")
@click.option("--alphas", default="0.25", show_default=True, help="glocal: local weights.")
@click.option("--taus", default="1.0", show_default=True, help="glocal: temperatures.")
@click.option("--sigma", default=1e-3, show_default=True, help="glocal: W = sigma * I at start.")
@click.option("--regulariser", type=click.Choice(["identity", "l2"]), default="identity",
              show_default=True, help="glocal: pull W to a scaled identity, or lambda * ||W||_F.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True, help="minibatch: Adam, or SGD with momentum 0.9.")
@click.option("--lr-schedule", type=click.Choice(["constant", "linear"]), default=None,
              help="minibatch: learning-rate schedule [default: linear for glocal "
              "(lr/3 rising to lr over the epochs), else constant].")
@click.option("--standardize-reference", is_flag=True,
              help="glocal: standardise the reference features with the probed features' "
              "mean and std (the published code uses them as they are).")
@click.option("--name", default=None, help="Probe name in the store [objective-protocol].")
@click.option("--save/--no-save", default=True, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a probe of the same name.")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="0 to 4294967295.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append the result, with provenance, to the store's results table.")
@click.option("--control", type=click.Choice(["none", "random"]), default="none",
              show_default=True,
              help="random: also cross-validate the same probe on seeded standard-normal "
                   "features of the same shape, and report their zero-shot and probed accuracy "
                   "beside the probe's (recorded with it), so that the probe's gain can be "
                   "judged.")
def fit_cmd(**params: Any) -> None:
    """Cross-validate a probe over objects and save the chosen transform.

    \b
    Example:
      alignkit probe s.zarr --model spose --layer 49d --triplets things-test20k \\
          --lambdas 1e-2,1e-3 --protocol nested --solver fast
    """
    job = _FitJob(**{f.name: params.pop(f.name) for f in fields(_FitJob)})
    _fit(job, params)


def _fit(job: _FitJob, cv_flags: dict[str, Any]) -> None:
    """``probe fit``: match the inputs, cross-validate, save, record and print."""
    from tqdm import tqdm

    from alignkit.probe.cv import cross_validate
    from alignkit.provenance import base_provenance
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(job.store, mode="a" if job.save else "r")
    entry = st.entry(job.model, job.layer)
    feats, trip, id_matching = _matched_inputs(entry, entry.features(), job.triplets_src,
                                               job.object_ids, job.by_position)
    objective, protocol = cv_flags["objective"], cv_flags["protocol"]
    reference = None
    if objective == "glocal":
        if job.reference_layer is None:
            raise InputError("--objective glocal needs --reference-layer")
        reference = st.entry(job.reference_model or job.model, job.reference_layer).features()
    name = job.name or f"{objective}-{protocol}"
    if job.save and not job.overwrite and name in entry.probes():
        raise InputError(f"--name: probe {name!r} exists on {job.model}/{job.layer}; "
                         "pass --overwrite")
    show = sys.stderr.isatty() if job.progress is None else job.progress
    bar = tqdm(total=None, desc="probe folds x configs", disable=not show, file=sys.stderr)

    def tick(d: dict[str, Any]) -> None:
        bar.total = d["total"]
        bar.update(d["done"] - bar.n)

    prov = base_provenance(
        store=str(job.store), model=job.model, layer=job.layer, features_checksum=entry.checksum,
        triplets=trip.source, triplets_checksum=trip.checksum, seed=cv_flags["seed"],
        id_matching=id_matching,
    )
    res = cross_validate(feats, trip, options=_cv_options(**cv_flags), reference=reference,
                         progress=tick, provenance=prov)
    bar.close()
    control = None
    if job.control == "random":
        control = _random_control(feats, trip, cv_flags, prov)
    if job.save:
        res.transform.save(entry, name, overwrite=job.overwrite)
    if job.record:
        from alignkit.results import ResultsTable, record_from_result

        # zero_shot_accuracy (in the summary) is the features' own accuracy on
        # the same held-out folds, with the same similarity and accuracy rule
        summary = res.summary(model=job.model, layer=job.layer, dataset=trip.source,
                              probe=name if job.save else None)
        if control is not None:
            summary["control"] = control
        table = ResultsTable.for_store(job.store)
        table.append(record_from_result("probe", summary, store=str(job.store)))
        click.echo(f"result recorded in {table.path}", err=True)
    _print_result(res, job.fmt, name if job.save else None, control)


def _random_control(feats: Any, trip: Any, cv_flags: dict[str, Any],
                    prov: dict[str, Any]) -> dict[str, Any]:
    """The same cross-validation on seeded random Gaussian features of the same shape."""
    from alignkit.probe.cv import cross_validate
    from alignkit.probe.recover import RANDOM_CONTROL, random_features

    if cv_flags["objective"] == "glocal":
        raise InputError("--control random applies to the paper objective only (gLocal's "
                         "reference features have no random counterpart)")
    seed = int(cv_flags["seed"])
    X = random_features(feats.shape[0], feats.shape[1], seed)
    out: dict[str, Any] = {"kind": "random", "features": RANDOM_CONTROL, "seed": seed,
                           "shape": [int(feats.shape[0]), int(feats.shape[1])]}
    try:
        res = cross_validate(X, trip, options=_cv_options(**cv_flags),
                             provenance={**prov, "features": "random control"})
    except InputError as exc:
        if "every configuration was discarded" not in str(exc):
            raise
        # nothing learnable: every fit stayed at chance (or diverged) and was discarded
        # by the same rules as the probe's; the zero-shot accuracy is then over all triplets
        from alignkit.score import odd_one_out

        zero = odd_one_out(X, trip.array, similarity="dot", ties="first")
        return {**out, "accuracy": None, "accuracy_sd": None,
                "zero_shot_accuracy": zero.accuracy, "zero_shot_on": "all triplets (dot)",
                "note": f"no probe: {exc}"}
    return {**out, "accuracy": res.probing_accuracy,
            "accuracy_sd": res.summaries[res.chosen].acc_sd,
            "zero_shot_accuracy": res.zero_shot_accuracy, "zero_shot_on": "the same folds",
            "lambda": res.summaries[res.chosen].config.lam, "k": res.folds}


def _print_result(res: Any, fmt: str, saved: str | None,
                  control: dict[str, Any] | None = None) -> None:
    if fmt == "json":
        d = res.to_dict()
        d["saved_as"] = saved
        d["control"] = control
        from alignkit.provenance import jsonable

        click.echo(json.dumps(jsonable(d, unknown="keep"), indent=2, allow_nan=False))
        return
    rows = [(("*" if s.chosen else "") + s.label, s.acc_mean, s.acc_sd, s.zero_shot_acc,
             s.test_nll, s.selection_nll, "yes" if s.eligible else f"no ({s.discarded})")
            for s in res.summaries]
    header = ("config", "acc_mean", "acc_sd", "zero_shot", "test_nll", "select_nll", "eligible")
    if fmt == "csv":
        click.echo(",".join(header))
        for r in rows:
            click.echo(",".join([r[0], *(f"{v:.6f}" for v in r[1:6]), r[6]]))
        if control is not None:
            cells = [control.get(k) for k in ("accuracy", "accuracy_sd", "zero_shot_accuracy")]
            click.echo("control:random," + ",".join(
                "" if v is None else f"{v:.6f}" for v in cells) + ",,,")
        return
    click.echo(f"protocol: {res.protocol}  objective: {res.objective}  solver: {res.solver}  "
               f"folds: {','.join(map(str, res.folds_grid))}  accuracy rule: "
               f"{res.accuracy_rule}  (* = chosen, lowest mean "
               f"{'test' if res.protocol == 'paper' else 'validation'} cross-entropy)")
    w = max(len(r[0]) for r in rows + [header])
    click.echo(f"{header[0]:<{w}}  " + "  ".join(f"{h:>10}" for h in header[1:]))
    for r in rows:
        click.echo(f"{r[0]:<{w}}  " + "  ".join(f"{v:>10.4f}" for v in r[1:6]) + f"  {r[6]:>10}")
    n_disc = sum(res.discarded.values())
    click.echo(f"probing accuracy: {res.probing_accuracy:.4f}  zero-shot on the same folds: "
               f"{res.zero_shot_accuracy:.4f}  (k = {res.folds})"
               + (f"  discarded: {n_disc} (" + ", ".join(
                   f"{v} {k}" for k, v in sorted(res.discarded.items())) + ")" if n_disc else "")
               + (f"  saved as probe {saved!r}" if saved else ""))
    if control is not None:
        click.echo(f"random-features control ({control['shape'][0]} x {control['shape'][1]} "
                   f"standard normal, seed {control['seed']}): probing accuracy "
                   + ("none (every configuration stayed at chance or diverged)"
                      if control["accuracy"] is None else f"{control['accuracy']:.4f}")
                   + f"  zero-shot {control['zero_shot_accuracy']:.4f} "
                   f"({control['zero_shot_on']})")


def _resolve_transform(entry: Any, probe_name: str, mean: float | None,
                       std: float | None) -> Any:
    """A stored probe by name, or a .npz/.npy file, validated against ``entry``."""
    from alignkit.score.stores import load_probe_transform

    try:
        return load_probe_transform(entry, probe_name, mean=mean, std=std)
    except InputError as exc:
        raise type(exc)(str(exc).replace("--transform", "--probe")) from exc


def _npy_mean_std(func: Any) -> Any:
    """``--mean`` / ``--std`` of a paper-layout ``.npy`` transform, which stores neither."""
    func = click.option(
        "--std", type=FiniteFloat(positive=True), default=None,
        help="For a .npy [W | b] transform: the scalar std it was fitted with "
        "[default: the layer's global feature std].")(func)
    return click.option(
        "--mean", type=FiniteFloat(), default=None,
        help="For a .npy [W | b] transform: the scalar mean it was fitted with "
        "[default: the layer's global feature mean].")(func)


@probe.command("apply")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True)
@click.option("--layer", required=True)
@click.option("--probe", "probe_name", required=True,
              help="Probe name on that layer, or a .npz / .npy transform file.")
@_npy_mean_std
@click.option("--out-layer", default=None, help="New layer name [LAYER+PROBE].")
@click.option("--overwrite", is_flag=True)
def apply_cmd(store: str, model: str, layer: str, probe_name: str, mean: float | None,
              std: float | None, out_layer: str | None, overwrite: bool) -> None:
    """Write transformed features ((x - mean) / std) @ W + b as a new layer.

    \b
    Example:
      alignkit probe apply s.zarr --model spose --layer 49d --probe paper-nested
      alignkit probe apply s.zarr --model vgg16 --layer classifier.3 --probe transform.npy
    """
    import os

    import numpy as np

    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store, mode="a")
    entry = st.entry(model, layer)
    tr = _resolve_transform(entry, probe_name, mean, std)
    z = tr.apply(entry.features()).astype(np.float32)
    is_file = probe_name.lower().endswith((".npz", ".npy"))
    label = os.path.splitext(os.path.basename(probe_name))[0] if is_file else probe_name
    out = out_layer or f"{layer}+{label}"
    scalar = np.ndim(tr.mean) == 0 and np.ndim(tr.std) == 0
    st.write(model, out, z, entry.ids, attrs={
        "probe": probe_name, "source_layer": layer, "probe_attrs": tr.attrs,
        "mean": float(tr.mean) if scalar else None, "std": float(tr.std) if scalar else None,
    }, overwrite=overwrite)
    click.echo(f"wrote {model}/{out}: {z.shape[0]} x {z.shape[1]}")


@probe.command("export")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=OutputFile((".npz",)))
@click.option("--model", required=True)
@click.option("--layer", required=True)
@click.option("--probe", "probe_name", required=True)
def export_cmd(store: str, out: str, model: str, layer: str, probe_name: str) -> None:
    """Export a probe as .npz (keys weights, bias, mean, std).

    \b
    Example:
      alignkit probe export s.zarr t.npz --model spose --layer 49d --probe paper-nested
    """
    from alignkit.probe.transform import load_transform

    load_transform(_open_entry(store, model, layer), probe_name).to_npz(out)
    click.echo(f"wrote {out}")


@probe.command("import")
@click.argument("store", required=False, type=click.Path(exists=True, file_okay=False))
@click.argument("source", required=False, metavar="FILE|NAME")
@click.option("--model", default=None,
              help="Model name in the store [a published probe: the store's entry of its model].")
@click.option("--layer", default=None,
              help="Layer name in the store [a published probe: the entry of its layer].")
@click.option("--name", default=None,
              help="Probe name to store it under [a published probe: its registry name].")
@_npy_mean_std
@click.option("--offline", is_flag=True,
              help="A published probe: never download, use the cache (also ALIGNKIT_OFFLINE=1).")
@click.option("--list", "list_", is_flag=True, help="List the published probes and exit.")
@click.option("--overwrite", is_flag=True)
def import_cmd(store: str | None, source: str | None, model: str | None, layer: str | None,
               name: str | None, mean: float | None, std: float | None, offline: bool,
               list_: bool, overwrite: bool) -> None:
    """Import a transform onto a layer: a published probe by name, a published .npz
    or the paper's .npy [W | b].

    \b
    Example:
      alignkit probe import s.zarr glocal:clip_RN50
      alignkit probe import s.zarr glocal:resnet18 --model resnet18 --layer avgpool
      alignkit probe import s.zarr glocal.npz --model clip --layer visual --name glocal
      alignkit probe import s.zarr transform.npy --model vgg16 --layer classifier.3 --name paper
      alignkit probe import --list
    """
    if list_:
        _list_published("table")
        return
    if store is None or source is None:
        raise InputError("probe import: give STORE and a transform file or a published probe's "
                         "name (alignkit probe import --list shows the names)")
    from alignkit.probe.published import is_published_name

    if is_published_name(source) and not source.lower().endswith((".npz", ".npy")):
        if mean is not None or std is not None:
            raise InputError(f"{source}: --mean/--std apply only to a .npy transform")
        _import_published(store, source, model, layer, name, offline, overwrite)
        return
    import os

    if not source.lower().endswith((".npz", ".npy")):
        raise InputError(f"{source}: a transform file must end in .npz or .npy (or give a "
                         "published probe's name: alignkit probe import --list)")
    if not os.path.isfile(source):
        raise InputError(f"{source}: no such file")
    missing = [f"--{k}" for k, v in (("model", model), ("layer", layer), ("name", name))
               if v is None]
    if missing:
        raise InputError(f"{source}: importing a file needs {', '.join(missing)}")
    assert model is not None and layer is not None and name is not None
    entry = _open_entry(store, model, layer, mode="a")
    tr = _resolve_transform(entry, source, mean, std)
    tr.save(entry, name, overwrite=overwrite)
    click.echo(f"imported {source} as probe {name!r} on {model}/{layer}")


def _entry_matches(st: Any, m: str, ly: str, pub: Any, model: str | None,
                   layer: str | None) -> bool:
    """Whether the store's ``m``/``ly`` holds the features ``pub`` applies to.

    ``--model`` / ``--layer``, where given, must equal the entry's names. Otherwise
    the model is named by the full spec (``open_clip:RN50:openai``), or by the spec
    without the weights tag (how ``alignkit extract`` names it) with those weights
    recorded in the entry's attrs; the layer by name, or by the requested layer
    (a preset such as ``embedding``) recorded in the attrs.
    """
    if (model is not None and m != model) or (layer is not None and ly != layer):
        return False
    if model is None and m not in (pub.spec, pub.model):
        return False
    need_weights = model is None and m != pub.spec and pub.weights is not None
    need_layer = layer is None and ly != pub.layer
    if not (need_weights or need_layer):
        return True
    from alignkit.errors import AlignkitError

    try:
        attrs = st.entry(m, ly).attrs
    except AlignkitError:  # a damaged or vanished entry matches nothing
        return False
    info = attrs.get("model") if isinstance(attrs.get("model"), dict) else {}
    if need_weights and info.get("weights") != pub.weights:
        return False
    return not need_layer or attrs.get("requested_layer") == pub.layer


def _published_entry(st: Any, pub: Any, model: str | None, layer: str | None) -> Any:
    """The entry a published probe goes on: as given, else the one matching its spec and layer."""
    if model is not None and layer is not None:
        return st.entry(model, layer)
    held = st.entries()
    found = [(m, ly) for m, ly in held if _entry_matches(st, m, ly, pub, model, layer)]
    want = f"model {model or pub.spec!r} layer {layer or pub.layer!r}"
    if not found:
        listed = ", ".join(f"{m}/{ly}" for m, ly in held) or "nothing"
        raise InputError(f"{pub.name}: the store has no entry for {want} (it holds: {listed}); "
                         "give --model and --layer")
    if len(found) > 1:
        listed = ", ".join(f"{m}/{ly}" for m, ly in found)
        raise InputError(f"{pub.name}: several entries hold {want} ({listed}); give --model "
                         "and --layer")
    return st.entry(*found[0])


def _import_published(store: str, source: str, model: str | None, layer: str | None,
                      name: str | None, offline: bool, overwrite: bool) -> None:
    """``probe import STORE NAME``: fetch (or take from the cache), check and store."""
    from alignkit.data.remote import cached_path, checksum_status, fetch, resolve_url
    from alignkit.errors import AlignkitError, MismatchError
    from alignkit.probe.published import get_published
    from alignkit.probe.transform import Transform
    from alignkit.provenance import sha256_file
    from alignkit.store import EmbeddingStore

    pub = get_published(source)
    st = EmbeddingStore(store, mode="a")
    entry = _published_entry(st, pub, model, layer)
    where = f"{entry.model}/{entry.layer}"
    if entry.p != pub.p:  # before any download
        raise MismatchError(f"{pub.name}: the transform takes {pub.p}-wide features but "
                            f"{where} holds {entry.p}-wide ones")
    label = pub.name if name is None else name
    if not overwrite and label in entry.probes():
        raise InputError(f"--name: probe {label!r} exists on {where}; pass --overwrite")
    if pub.same_as:
        click.echo(f"warning: {pub.name}: " + (pub.note or (
            f"the published file is byte-identical to {pub.same_as}'s; it cannot be told "
            "apart from that transform")), err=True)
    rf = pub.remote()
    downloaded_now = rf.sha256 is None and not cached_path(rf).exists()
    path = fetch(rf, offline=True if offline else None)
    try:
        tr = Transform.from_npz(path)
    except AlignkitError as exc:
        if not downloaded_now:
            raise
        # Trust on first use must not trust an error page or a broken download: forget it.
        for f in (path, path.with_name(path.name + ".json")):
            f.unlink(missing_ok=True)
        raise type(exc)(f"{exc}; removed it from the cache (its sha256 is not recorded)") from None
    if tr.p != entry.p or tr.p != pub.p:
        raise MismatchError(f"{pub.name}: the transform takes {tr.p}-wide features but "
                            f"{where} holds {entry.p}-wide ones (registered width {pub.p})")
    tr.attrs = {**tr.attrs, "imported_from": pub.name, "published": {
        "name": pub.name, "url": pub.url, "fetched_from": resolve_url(pub.url),
        "source_path": pub.source_path, "sha256": sha256_file(path),
        "checksum": checksum_status(rf), "model": pub.spec, "layer": pub.layer,
        "licence": pub.licence, "citation": pub.citation,
        **({"same_bytes_as": pub.same_as} if pub.same_as else {}),
        **({"note": pub.note} if pub.note else {})}}
    tr.save(entry, label, overwrite=overwrite)
    click.echo(f"imported {pub.name} ({checksum_status(rf)} sha256 verified) as probe "
               f"{label!r} on {where}")


def _list_published(fmt: str) -> None:
    from alignkit.probe.published import published_probes

    rows = [(p.name, p.spec, p.layer, str(p.p), p.checksum_status()) for p in published_probes()]
    if fmt == "json":
        out = [{"name": p.name, "model": p.spec, "layer": p.layer, "p": p.p,
                "checksum": p.checksum_status(), "sha256": p.sha256, "size": p.size,
                "url": p.url, "has_bias": p.has_bias, "same_as": p.same_as, "note": p.note,
                "licence": p.licence, "citation": p.citation} for p in published_probes()]
        click.echo(json.dumps(out, indent=2))
        return
    header = ("name", "model", "layer", "p", "checksum")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@probe.command("published")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def published_cmd(fmt: str) -> None:
    """List the published probes that ``probe import STORE NAME`` fetches by name.

    \b
    Example:
      alignkit probe published
    """
    _list_published(fmt)


@probe.command("recover")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--model", default=None, help="Only this model's entries as candidates.")
@click.option("--layer", default=None, help="Only this layer's entries as candidates.")
@click.option("--transform", default=None,
              help="Simulate from each candidate's features after its stored probe of this "
                   "name (default: the features themselves).")
@click.option("--objects", "n_objects", type=click.IntRange(min=12), default=None,
              help="Use only the first N objects the candidates share (default: all).")
@click.option("--triplets", "n_triplets", type=click.IntRange(min=20), default=4000,
              show_default=True, help="Simulated triplets per simulation.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Simulations per generating candidate.")
@click.option("--lambdas", default="1e-3", show_default=True,
              help="Comma-separated regularisation strengths (chosen per fit by validation NLL).")
@click.option("--temperature", type=click.FloatRange(0.0, min_open=True), default=1.0,
              show_default=True, help="Inverse temperature of the simulated choices.")
@click.option("--criterion", type=click.Choice(["nll", "accuracy"]), default="nll",
              show_default=True, help="What decides the winner on the held-out objects.")
@click.option("--max-iter", type=click.IntRange(min=1), default=200, show_default=True,
              help="Most L-BFGS iterations per fit (each fit also stops early).")
@click.option("--device", default="cpu", show_default=True, help="auto|cpu|cuda")
@click.option("--seed", type=SEED, default=0, show_default=True, help="0 to 4294967295.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
def recover_cmd(store: str, model: str | None, layer: str | None, transform: str | None,
                n_objects: int | None, n_triplets: int, repeats: int, lambdas: str,
                temperature: float, criterion: str, max_iter: int, device: str, seed: int,
                fmt: str) -> None:
    """Model recovery: can probes tell STORE's entries apart?

    Triplets are simulated from one candidate's features at a time; every
    candidate's probe is fitted on the training objects' triplets (fast
    solver) and the one that best predicts the held-out objects' triplets
    wins. Prints the confusion matrix (rows: generating candidate) and the
    recovery rate (chance: 1 / number of candidates).

    \b
    Example:
      alignkit probe recover s.zarr --objects 300 --repeats 5
    """
    from alignkit.commands._output import emit
    from alignkit.probe.recover import model_recovery
    from alignkit.score.stores import iter_entries, load_probe_transform
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(store, mode="r")
    entries = list(iter_entries(st, model, layer))
    if len(entries) < 2:
        raise InputError(f"store {store}: model recovery needs at least two entries, "
                         f"{len(entries)} match")
    common = [str(i) for i in entries[0].ids]
    for e in entries[1:]:
        have = {str(i) for i in e.ids}
        common = [i for i in common if i in have]
    if n_objects is not None:
        common = common[:n_objects]
    if len(common) < 12:
        raise InputError(f"store {store}: the entries share {len(common)} objects; model "
                         "recovery needs at least 12")
    feats, tfs = {}, {}
    for e in entries:
        row = {str(i): k for k, i in enumerate(e.ids)}
        name = f"{e.model}/{e.layer}"
        feats[name] = e.features()[[row[i] for i in common]]
        if transform is not None:
            tfs[name] = load_probe_transform(e, transform)
    res = model_recovery(feats, n_triplets=n_triplets, repeats=repeats,
                         lambdas=_floats(lambdas, "--lambdas"), temperature=temperature,
                         criterion=criterion, transforms=tfs, max_iter=max_iter, seed=seed,
                         device=device,
                         provenance={"store": str(store), "n_objects": len(common),
                                     "transform": transform})
    if fmt == "json":
        click.echo(json.dumps(res.to_dict(), indent=2, allow_nan=False))
        return
    emit(res.rows(), fmt)
    if fmt == "table":
        click.echo(f"recovery rate: {res.recovery_rate:.4f} [{res.ci_low:.4f}, {res.ci_high:.4f}] "
                   f"(95% Wilson; {res.n_simulations} simulations, chance {res.chance:.4f}, "
                   f"{len(common)} objects, criterion {criterion})")
