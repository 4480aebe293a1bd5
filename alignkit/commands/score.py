"""``alignkit score``: odd-one-out accuracy and RSA of stored features."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from alignkit.commands._options import SEED, FiniteFloat, OutputFile
from alignkit.commands._output import atomic_write, emit, format_option


def _ceiling(value: str) -> Any:
    if value.lower() == "auto":
        return "auto"
    if value.lower() in ("none", "off"):
        return None
    try:
        return float(value)
    except ValueError:
        pass
    if not os.path.isfile(value):
        raise click.BadParameter(
            f"expected a number, 'auto', 'none' or a triplet file with repeats, got {value!r}"
        )
    from alignkit.data import load_triplets
    from alignkit.score.ceiling import ooo_noise_ceiling

    return ooo_noise_ceiling(load_triplets(value))


def _is_store(path: str) -> bool:
    from alignkit.errors import NotAStoreError
    from alignkit.store import EmbeddingStore

    try:
        EmbeddingStore(path, mode="r")
    except NotAStoreError:
        return False
    return True


def measure_options(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every command-line option of the measure ``name``'s options class.

    Choices and help come from the options' declarations (and so from the registries they
    name: similarities, tie rules, presets); the values reach the command as keywords
    under the field names.
    """
    from alignkit.measures import get_measure, option_specs

    specs = [(n, s, d) for n, s, d in option_specs(get_measure(name).Options) if s.cli]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for field_name, spec, default in reversed(specs):
            flag = "--" + field_name.replace("_", "-")
            if spec.kind == "bool" and default is True:  # a flag on by default can be turned off
                flag = f"{flag}/--no-{flag[2:]}"
            fn = click.option(
                flag, field_name, type=_click_type(spec),
                default=default, show_default=default is not None and spec.kind != "bool",
                is_flag=spec.kind == "bool", help=spec.help_text(),
            )(fn)
        return fn

    return decorate


def _click_type(spec: Any) -> Any:
    allowed = spec.allowed()
    if allowed is not None:
        return click.Choice(list(allowed))
    if spec.kind == "seed":
        return SEED
    if spec.kind == "int":
        return click.IntRange(min=spec.minimum, max=spec.maximum)
    if spec.kind == "float":
        if spec.open or spec.minimum is not None or spec.maximum is not None:
            return click.FloatRange(spec.minimum, spec.maximum, min_open=spec.open,
                                    max_open=spec.open)
        return FiniteFloat()
    if spec.kind == "bool":
        return bool
    return str


def _take_options(name: str, kw: dict[str, Any]) -> Any:
    """The measure's options from a command's keywords (removed from ``kw``)."""
    from alignkit.measures import get_measure, option_specs

    measure = get_measure(name)
    names = [n for n, _, _ in option_specs(measure.Options)]
    return measure.options({n: kw.pop(n) for n in names if n in kw})


class _MeasureGroup(click.Group):
    """``alignkit score``: one sub-command per registered measure.

    A measure names its own command (``Measure.command``) or gets one generated from its
    data kind and options (:func:`generated_command`).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from alignkit.measures import measure_names

        names = measure_names()
        return [*names, *sorted(n for n in super().list_commands(ctx) if n not in names)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from alignkit.errors import InputError
        from alignkit.measures import get_measure

        fixed = super().get_command(ctx, cmd_name)
        if fixed is not None:
            return fixed
        try:
            measure = get_measure(cmd_name)
        except InputError:
            return None
        if measure.command:
            import importlib

            module, _, attr = measure.command.partition(":")
            return getattr(importlib.import_module(module), attr)
        return generated_command(measure)


@click.group(cls=_MeasureGroup)
def score() -> None:
    """Score stored features against human judgments, one command per measure.

    \b
    Examples:
      alignkit score ooo feats.zarr --triplets things-test20k
      alignkit score rsa feats.zarr --rdm rdm48
    """


@click.command("ooo", short_help="Zero-shot odd-one-out accuracy on human triplets (chance 1/3).")
@click.argument("store", type=click.Path(exists=False))
@click.option("--triplets", "triplets_src", required=True, multiple=True,
              help="Triplet file (.npy, .txt, .csv, validationset.csv, raw format) or a bundled "
                   "name such as things-test20k; repeat it to score on the union (the paper's "
                   "zero-shot accuracy uses train_90 and test_10 together).")
@click.option("--model", default=None, help="Only this model (default: every model in the store).")
@click.option("--layer", default=None, help="Only this layer (default: every layer).")
@measure_options("ooo")
@click.option("--ceiling", default="auto", show_default=True,
              help="Noise ceiling for the normalised score: 'auto' (the preset's THINGS ceiling, "
                   "0.673 by default, for THINGS triplets only; none for other data), a number, "
                   "a triplet file with repeated triplets to compute it from (see 'alignkit "
                   "data ceiling'), or 'none'.")
@click.option("--per-triplet", "per_triplet_out", type=OutputFile((".npz", ".csv", ".tsv")),
              default=None,
              help="Write per-triplet choices (-1 tie, 0-2 position of the model's odd one out) "
                   "and correctness to a .npz or .csv file.")
@click.option("--per-concept", is_flag=True,
              help="Break accuracy down by the human concept dimension of each triplet.")
@click.option("--concepts", default=None,
              help="Concept embedding for --per-concept (file or bundled name; default spose-49d).")
@click.option("--min-count", "concept_min_count", type=click.IntRange(min=1), default=1,
              show_default=True,
              help="--per-concept: dimensions with fewer triplets get no accuracy (counts kept). "
                   "With --bootstrap each dimension gets an interval from the same resamples.")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things' for "
                   "the 1854 THINGS concepts in canonical order. THINGS releases (bundled names, "
                   "validationset.csv, the raw format) carry them already; features are always "
                   "matched to triplets by id.")
@click.option("--by-position", is_flag=True,
              help="Pair object t of the triplets with feature row t instead of matching ids "
                   "(recorded in the result).")
@click.option("--subset", type=click.Choice(["all", "covered"]), default="all", show_default=True,
              help="all: refuse when objects lack features; covered: score only the triplets "
                   "whose objects all have features (the count kept is reported).")
@click.option("--transform", default=None,
              help="Apply a probe transform stored under the entry (by name) or from a .npz first.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append each result, with provenance, to the store's results table "
                   "(results.jsonl; see 'alignkit report').")
@format_option
def score_ooo(store: str, triplets_src: tuple[str, ...], model: str | None, layer: str | None,
              ceiling: str, per_triplet_out: str | None, per_concept: bool,
              concepts: str | None, concept_min_count: int, object_ids: str | None,
              by_position: bool, subset: str,
              transform: str | None, device: str, record: bool, fmt: str,
              **measure_kw: Any) -> None:
    """Zero-shot odd-one-out accuracy of every entry in STORE.

    For each triplet the model's odd one out is the item outside its most
    similar pair; accuracy is the fraction that agree with the human choice
    (chance 1/3). One row per model/layer.

    \b
    Examples:
      alignkit score ooo feats.zarr --triplets things-test20k
      alignkit score ooo feats.zarr --triplets things-test20k --preset brainscore
      alignkit score ooo feats.zarr --triplets train_90.npy --triplets test_10.npy --object-ids things
      alignkit score ooo feats.zarr --triplets mine.txt --object-ids mine_ids.txt --ceiling reps.txt
      alignkit score ooo feats.zarr --triplets things-test20k --per-concept --format json
      alignkit score ooo feats.zarr --triplets levels/ --group-by level --bootstrap 1000
    """
    import warnings

    from alignkit.score import score_store_ooo

    trip = _triplet_union(triplets_src, object_ids)
    want_concepts = per_concept or concepts is not None
    options = _take_options("ooo", {**measure_kw, "ceiling": _ceiling(ceiling)})
    groups = None
    if options.group_by is not None:
        from alignkit.score.groups import group_labels

        groups = group_labels(options.group_by, trip)  # fails before any entry is scored
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        results = score_store_ooo(
            store, trip, options, model=model, layer=layer, by_position=by_position,
            subset=subset, transform=transform, per_triplet=per_triplet_out is not None,
            concepts=(concepts or "spose-49d") if want_concepts else None, device=device,
            concept_min_count=concept_min_count, groups=groups,
        )
    for w in {str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)}:
        click.echo(f"warning: {w}", err=True)
    for r in results:
        for note in r.notes:
            click.echo(f"note: {r.model}/{r.layer}: {note}", err=True)
        if r.overrides:
            click.echo(f"note: --preset {r.preset} with {', '.join('--' + o for o in r.overrides)} "
                       "given explicitly (recorded)", err=True)
    if record:
        record_results(store, "ooo", results)
    if per_triplet_out:
        _write_per_triplet(per_triplet_out, trip.array, results)
        click.echo(f"per-triplet choices written to {per_triplet_out}", err=True)
    rows = [r.row() for r in results]
    if fmt == "json":
        emit(rows, fmt, payload=[r.to_dict() for r in results])
        return
    emit(rows, fmt)
    if want_concepts:
        for r in results:
            if r.per_concept is None:
                continue
            if fmt == "table":
                click.echo(f"\nper concept dimension: {r.model}/{r.layer}")
            crow = [{"model": r.model, "layer": r.layer, **c} for c in r.per_concept.rows()]
            if fmt == "table":
                crow = [{k: v for k, v in c.items() if k not in ("model", "layer")} for c in crow]
            emit(crow, fmt)
    if groups is not None:
        for r in results:
            if r.per_group is None:
                continue
            if fmt == "table":
                click.echo(f"\nper group ({r.per_group.source}): {r.model}/{r.layer}")
                emit(r.per_group.rows(), fmt)
            else:
                emit([{"model": r.model, "layer": r.layer, **g} for g in r.per_group.rows()], fmt)


def record_results(store: str, kind: str, results: list[Any]) -> None:
    """Append results to the store's results table, with the entries' numeric attributes.

    ``kind`` is the measure's name; the measure says how a result becomes a record.
    """
    import numbers

    from alignkit.measures import get_measure
    from alignkit.results import ResultsTable, record_from_result
    from alignkit.store import EmbeddingStore

    measure = get_measure(kind)
    st = EmbeddingStore(store, mode="r")
    table = ResultsTable.for_store(store)
    for r in results:
        body = measure.record(r)
        attrs = st.entry(body["model"], body["layer"]).attrs
        numeric = {k: v for k, v in attrs.items()
                   if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        table.append(record_from_result(kind, body, model_attrs=numeric or None, store=str(store)))
    click.echo(f"{len(results)} result(s) recorded in {table.path}", err=True)


def _write_per_triplet(path: str, triplets: Any, results: list[Any]) -> None:
    import numpy as np

    from alignkit.errors import InputError

    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        arrays = {"triplets": np.asarray(triplets)}
        for r in results:
            arrays[f"{r.model}/{r.layer}/choices"] = r.choices
            arrays[f"{r.model}/{r.layer}/correct"] = r.correct
        atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    elif ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"

        def write(tmp: str) -> None:
            T = np.asarray(triplets, dtype=np.int64)
            rows = np.arange(1, len(T) + 1, dtype=np.int64)[:, None]
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(sep.join(["model", "layer", "row", "i", "j", "k", "choice", "correct"]) + "\n")
                for r in results:
                    block = np.hstack([rows, T, r.choices[:, None].astype(np.int64),
                                       r.correct[:, None].astype(np.int64)])
                    prefix = f"{r.model}{sep}{r.layer}{sep}".replace("%", "%%")
                    np.savetxt(fh, block, fmt=prefix + sep.join(["%d"] * 6))

        atomic_write(path, write)
    else:
        raise InputError(f"--per-triplet {path}: use a .npz, .csv or .tsv file name")


@click.command("rsa", short_help="RSA against a human RDM, matched by stimulus id.")
@click.argument("source", type=click.Path(exists=True))
@click.option("--rdm", "rdm_src", required=True,
              help="Human RDM: .npy/.csv/.txt square or condensed, .mat (Cichy, King, Peterson, "
                   "generic with --rdm-key) or a bundled name such as rdm48.")
@click.option("--rdm-ids", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Stimulus ids of the human RDM's rows, one a line (when the file has none).")
@click.option("--rdm-key", default=None, help="Variable name inside a .mat file.")
@click.option("--rdm-kind", type=click.Choice(["dissimilarity", "similarity"]), default=None,
              help="What the human matrix holds (default: as the format says).")
@click.option("--source-ids", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ids of SOURCE's rows when SOURCE is an RDM file without ids.")
@click.option("--model", default=None, help="Only this model of the store.")
@click.option("--layer", default=None, help="Only this layer of the store.")
@click.option("--subjects", "subjects_src", type=click.Path(exists=True, dir_okay=False),
              default=None,
              help="Per-subject RDMs whose mean is --rdm (.npy subjects x n x n or subjects x "
                   "n(n-1)/2 in --rdm's row order, or a .mat: a Meadows export, or the stack "
                   "under --subjects-key), for --subject-bootstrap.")
@click.option("--subjects-key", "subjects_var", default=None,
              help="Variable of the --subjects .mat file.")
@click.option("--subject-bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamples of the subjects (needs --subjects) for a second interval.")
@measure_options("rsa")
@click.option("--transform", default=None,
              help="Apply a probe transform (name stored under the entry, or a .npz) first.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the permutation test runs.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append each result, with provenance, to the store's results table "
                   "(results.jsonl; see 'alignkit report').")
@format_option
def score_rsa(source: str, rdm_src: str, rdm_ids: str | None, rdm_key: str | None,
              rdm_kind: str | None, source_ids: str | None, model: str | None,
              layer: str | None, subjects_src: str | None, subjects_var: str | None,
              subject_bootstrap: int, transform: str | None, device: str, record: bool,
              fmt: str, **measure_kw: Any) -> None:
    """RSA between SOURCE and a human RDM, matched by stimulus id.

    SOURCE is an embedding store (every entry, or --model/--layer) or another
    RDM file (RDM-vs-RDM).

    \b
    Examples:
      alignkit score rsa feats.zarr --rdm rdm48 --permutations 10000
      alignkit score rsa feats.zarr --rdm peterson_animals.mat --rdm-ids animals.txt \\
          --transform things-probe --bootstrap 1000
      alignkit score rsa model_rdm.npy --source-ids ids.txt --rdm human.npy --rdm-ids ids.txt
      alignkit score rsa feats.zarr --rdm meadows.mat --subjects meadows.mat \
          --subject-bootstrap 1000 --compare whitened-pearson

    --compare takes rsatoolbox's comparison methods; --rdm-method euclidean is
    the Euclidean distance, sqeuclidean-mean rsatoolbox's "euclidean" (squared
    distance over the number of channels).
    """
    from alignkit.data import align_by_ids, load_ids, load_rdm
    from alignkit.score import rsa, score_store_rsa

    human = load_rdm(rdm_src, key=rdm_key, ids=load_ids(rdm_ids) if rdm_ids else None,
                     kind=rdm_kind)
    options = _take_options("rsa", measure_kw).to_dict()
    rdm_method = options.pop("rdm_method")
    common = dict(options, device=device)
    subjects = _subjects(subjects_src, subjects_var, subject_bootstrap, human)
    if subjects is not None:
        common.update(subjects=subjects, subject_bootstrap=subject_bootstrap)
    if _is_store(source):
        results = score_store_rsa(source, human, model=model, layer=layer, transform=transform,
                                  rdm_method=rdm_method, **common)
        if record:
            record_results(source, "rsa", results)
    else:
        from alignkit.errors import InputError

        if transform or model or layer:
            raise InputError("--transform, --model and --layer apply only when SOURCE is a store")
        other = load_rdm(source, ids=load_ids(source_ids) if source_ids else None)
        ia, ib = align_by_ids(other.ids, human.ids)
        if subjects is not None:
            subjects = subjects[:, ib][:, :, ib]
            common["subjects"] = subjects
        results = [rsa(other.matrix[ia][:, ia], human.matrix[ib][:, ib],
                       reference=str(rdm_src), model=os.path.basename(source),
                       provenance={"source": other.source, "source_checksum": other.checksum,
                                   "reference_checksum": human.checksum}, **common)]
    rows = [r.row() for r in results]
    emit(rows, fmt, payload=[r.to_dict() for r in results] if fmt == "json" else None)


def _subjects(src: str | None, key: str | None, n_boot: int, human: Any) -> Any:
    """The per-subject RDMs as a square stack in the human RDM's row order (None: none)."""
    from alignkit.errors import InputError

    if src is None:
        if n_boot:
            raise InputError("--subject-bootstrap needs --subjects (the per-subject RDMs)")
        return None
    if not n_boot:
        raise InputError("--subjects is used by --subject-bootstrap N: give N > 0")
    import numpy as np

    from alignkit.data.rdm import load_subject_rdms
    from alignkit.errors import MismatchError

    stack, where = load_subject_rdms(src, key=key)
    n = human.n
    if stack.ndim == 2:
        if stack.shape[1] != n * (n - 1) // 2:
            raise MismatchError(f"--subjects {where}: {stack.shape[1]} pairs per subject, the "
                                f"human RDM has {n} stimuli ({n * (n - 1) // 2} pairs)")
        full = np.zeros((stack.shape[0], n, n))
        iu = np.triu_indices(n, 1)
        full[:, iu[0], iu[1]] = stack
        full[:, iu[1], iu[0]] = stack
        stack = full
    if stack.shape[1:] != (n, n):
        raise MismatchError(f"--subjects {where}: {stack.shape[1]} x {stack.shape[2]} RDMs, the "
                            f"human RDM is {n} x {n}")
    return stack


def _rsa_choices(name: str) -> tuple[str, ...]:
    """The choices of an option of the ``rsa`` measure (its declaration is the one list)."""
    from alignkit.measures import get_measure, option_specs

    spec = next(s for n, s, _ in option_specs(get_measure("rsa").Options) if n == name)
    return spec.allowed() or ()


@click.command("rsa-compare",
               short_help="Paired RSA comparison of two store entries against one human RDM.")
@click.argument("store", type=click.Path(exists=True))
@click.option("--rdm", "rdm_src", required=True,
              help="Human RDM (as for 'alignkit score rsa': a file or a bundled name).")
@click.option("--rdm-ids", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Stimulus ids of the human RDM's rows, one a line (when the file has none).")
@click.option("--rdm-key", default=None, help="Variable name inside a .mat file.")
@click.option("--a", "entry_a", required=True, metavar="MODEL/LAYER",
              help="The first entry of STORE.")
@click.option("--b", "entry_b", required=True, metavar="MODEL/LAYER",
              help="The second entry of STORE (the difference is a - b).")
@click.option("--rdm-method", type=click.Choice(list(_rsa_choices("rdm_method"))),
              default="correlation", show_default=True,
              help="Model RDM (euclidean: the distance; sqeuclidean-mean: rsatoolbox's "
                   "euclidean, squared distance over the number of channels).")
@click.option("--compare", type=click.Choice(list(_rsa_choices("compare"))),
              default="spearman", show_default=True, help="Comparison of the RDMs.")
@click.option("--bootstrap", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Paired resamples (the same for both entries).")
@click.option("--subjects", "subjects_src", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Per-subject RDMs (as for 'score rsa'): resample subjects "
                                 "instead of stimuli.")
@click.option("--subjects-key", "subjects_var", default=None,
              help="Variable of the --subjects .mat file.")
@click.option("--ci-level", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.95, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@format_option
def score_rsa_compare(store: str, rdm_src: str, rdm_ids: str | None, rdm_key: str | None,
                      entry_a: str, entry_b: str, rdm_method: str, compare: str, bootstrap: int,
                      subjects_src: str | None, subjects_var: str | None, ci_level: float,
                      seed: int, fmt: str) -> None:
    """Is entry A closer to the human RDM than entry B? A paired bootstrap.

    Both entries' RDMs are compared with the human RDM on the same resamples
    of the stimuli (or of the subjects, with --subjects); prints both values,
    their difference a - b, its interval and a two-sided p-value.

    \b
    Example:
      alignkit score rsa-compare feats.zarr --rdm rdm48 --a spose/49d --b vit/blocks.11 \\
          --rdm-method dot --compare kendall-tau-b --bootstrap 2000
    """
    from alignkit.data import load_ids, load_rdm
    from alignkit.score import compare_models_rsa
    from alignkit.score.stores import _open, _weights_of

    human = load_rdm(rdm_src, key=rdm_key, ids=load_ids(rdm_ids) if rdm_ids else None)
    st = _open(store)
    entries = [st.entry(*_split_entry(e, opt)) for e, opt in ((entry_a, "--a"), (entry_b, "--b"))]
    subjects = _subjects(subjects_src, subjects_var, 1 if subjects_src else 0, human)
    result = compare_models_rsa(
        entries[0].features(), entries[1].features(), entries[0].ids, human,
        ids_b=entries[1].ids, rdm_method=rdm_method, compare=compare, bootstrap=bootstrap,
        seed=seed, ci_level=ci_level, subjects=subjects, model_a=entry_a, model_b=entry_b,
        provenance={"store": str(st.path),
                    "entries": [{"entry": f"{e.model}/{e.layer}", "checksum": e.checksum,
                                 "weights": _weights_of(e)} for e in entries]},
    )
    emit([result.row()], fmt, payload=[result.to_dict()] if fmt == "json" else None)


def _split_entry(text: str, opt: str) -> tuple[str, str]:
    from alignkit.errors import InputError

    model, sep, layer = text.rpartition("/")
    if not sep or not model or not layer:
        raise InputError(f"{opt} {text!r}: give MODEL/LAYER, e.g. spose/49d")
    return model, layer


score.add_command(score_rsa_compare)


# --------------------------------------------------------------------------- generated commands
def _data_options(kind: Any) -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """The command-line options naming a data kind's human data and its ids."""
    if kind.name == "triplets":
        return [
            click.option("--triplets", "data_src", required=True, multiple=True,
                         help=kind.help + " Repeat it to score on the union."),
            click.option("--object-ids", "data_ids", default=None,
                         help="Ids of the triplets' objects 0..n-1: a file, one id a line, or "
                              "'things' (THINGS releases carry them already)."),
        ]
    if kind.name == "embedding":
        return [
            click.option("--embedding", "data_src", required=True, help=kind.help),
            click.option("--embedding-ids", "data_ids", default=None,
                         help="Ids of the embedding's rows, one a line, or 'things' (default: "
                              "THINGS uniqueIDs for 1854 rows, else none to match by)."),
            click.option("--embedding-labels", "data_labels",
                         type=click.Path(exists=True, dir_okay=False), default=None,
                         help="Labels of its dimensions, one a line."),
        ]
    return [
        click.option("--rdm", "data_src", required=True, help=kind.help),
        click.option("--rdm-ids", "data_ids", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="Stimulus ids of the RDM's rows, one a line."),
        click.option("--rdm-key", "data_key", default=None,
                     help="Variable name inside a .mat file."),
    ]


def _load_data(kind: Any, kw: dict[str, Any]) -> Any:
    src, ids = kw.pop("data_src"), kw.pop("data_ids", None)
    if kind.name == "triplets":
        return _triplet_union(src, ids)
    if kind.name == "embedding":
        return kind.load(src, ids=ids, labels=kw.pop("data_labels", None))
    return kind.load(src, ids=ids, key=kw.pop("data_key", None))


def _triplet_union(sources: tuple[str, ...], object_ids: str | None) -> Any:
    """The triplets of every ``--triplets`` source together, with ``--object-ids`` when given."""
    from alignkit.data import concat_triplets

    return concat_triplets([_load_triplets(src, object_ids) for src in sources])


def _load_triplets(source: str, object_ids: str | None) -> Any:
    """One ``--triplets`` source; a local Levels file or folder is read by its reader."""
    from alignkit.data import load_triplets
    from alignkit.data.formats import guess_format, read_format

    if os.path.exists(source) and guess_format(source) == "levels":
        t = read_format(source, "levels")
        return t if object_ids is None else t.with_object_ids(object_ids)
    return load_triplets(source, **({"object_ids": object_ids} if object_ids else {}))


def generated_command(measure: Any) -> click.Command:
    """``alignkit score NAME`` for a measure without a command of its own.

    It takes the measure's data (``--triplets`` or ``--rdm``), the entries to score, a
    probe transform, the measure's own options and the output options, scores every
    matching entry of STORE and records the results.
    """
    from alignkit.measures import data_kind

    kind = data_kind(measure.data)

    def run(store: str, model: str | None, layer: str | None, transform: str | None,
            device: str, record: bool, fmt: str, **kw: Any) -> None:
        data = _load_data(kind, kw)
        options = _take_options(measure.name, kw)
        results = measure.score_store(store, data, options, model=model, layer=layer,
                                      transform=transform, device=device)
        if record:
            record_results(store, measure.name, results)
        rows = [measure.row(r) for r in results]
        emit(rows, fmt, payload=[measure.record(r) for r in results] if fmt == "json" else None)

    decorators = [
        click.argument("store", type=click.Path(exists=False)),
        *_data_options(kind),
        click.option("--model", default=None, help="Only this model (default: every model)."),
        click.option("--layer", default=None, help="Only this layer (default: every layer)."),
        click.option("--transform", default=None,
                     help="Apply a probe transform stored under the entry (by name) first."),
        measure_options(measure.name),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True),
        click.option("--record/--no-record", default=True, show_default=True,
                     help="Append each result, with provenance, to the store's results table."),
        format_option,
    ]
    for deco in reversed(decorators):
        run = deco(run)
    example = f"alignkit score {measure.name} feats.zarr {kind.option} " + {
        "triplets": "things-test20k", "embedding": "spose-49d"}.get(kind.name, "rdm48")
    doc = (f"{measure.summary}\n\nScores every entry of STORE ({measure.title}; one row per "
           f"model/layer).\n\n\b\nExample:\n  {example}")
    return click.command(measure.name, help=doc, short_help=measure.summary)(run)


# --------------------------------------------------------------------------- across entries
from alignkit.commands.failures import score_failures  # noqa: E402  (uses the helpers above)

score.add_command(score_failures)
