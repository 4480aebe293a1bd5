"""``alignkit compare``: two entries against one representation, or every entry with every other."""

from __future__ import annotations

from typing import Any

import click

from alignkit.commands._output import emit, format_option
from alignkit.errors import InputError


class _CompareGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["ooo", "rsa", "cka", "shape", "matrix"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in ("cka", "shape"):
            return _paired_command(cmd_name)
        if cmd_name == "rsa":
            from alignkit.commands.score import score_rsa_compare

            return score_rsa_compare
        return super().get_command(ctx, cmd_name)


@click.group(cls=_CompareGroup)
def compare() -> None:
    """Compare models with each other: two entries against the same human data on the same
    bootstrap resamples (ooo, rsa, cka, shape), or a measure between every pair of entries
    (matrix).

    \b
    Examples:
      alignkit compare ooo feats.zarr --triplets things-test20k --a vgg16/fc7 --b resnet50/avgpool
      alignkit compare rsa feats.zarr --rdm rdm48 --a vgg16/fc7 --b resnet50/avgpool
      alignkit compare cka feats.zarr --embedding spose-49d --a vgg16/fc7 --b resnet50/avgpool
      alignkit compare matrix feats.zarr --measure cka --figure cka.png
    """


def _entry(store: Any, spec: str, option: str) -> Any:
    from alignkit.score.stores import iter_entries

    model, _, layer = spec.partition("/")
    entries = list(iter_entries(store, model or None, layer or None))
    if len(entries) != 1:
        raise InputError(f"{option} {spec!r} names {len(entries)} entries of {store.path}; "
                         "give MODEL/LAYER")
    return entries[0]


def _paired_command(name: str) -> click.Command:
    from alignkit.commands.score import _data_options, _load_data, _take_options, measure_options
    from alignkit.measures import data_kind, get_measure

    measure = get_measure(name)
    kind = data_kind(measure.data)

    def run(store: str, a: str, b: str, fmt: str, **kw: Any) -> None:
        from alignkit.score.cka import compare_models
        from alignkit.score.stores import _open

        data = _load_data(kind, kw)
        options = _take_options(name, kw)
        st = _open(store)
        ea, eb = _entry(st, a, "--a"), _entry(st, b, "--b")
        res = compare_models(ea.features(), ea.ids, eb.features(), eb.ids, data, name, options,
                             model_a=f"{ea.model}/{ea.layer}", model_b=f"{eb.model}/{eb.layer}")
        row = {"a": res.model_a, "b": res.model_b, f"{name} a": res.value_a,
               f"{name} b": res.value_b, "a - b": res.difference, "ci_low": res.ci_low,
               "ci_high": res.ci_high, "p_value": res.p_value, "stimuli": res.n_stimuli,
               "resamples": res.n_bootstrap}
        emit([row], fmt, payload=res.to_dict() if fmt == "json" else None)

    decorators = [
        click.argument("store", type=click.Path(exists=True)),
        *_data_options(kind),
        click.option("--a", "a", required=True, help="First entry: MODEL or MODEL/LAYER."),
        click.option("--b", "b", required=True, help="Second entry: MODEL or MODEL/LAYER."),
        measure_options(name),
        format_option,
    ]
    for deco in reversed(decorators):
        run = deco(run)
    doc = (f"Entry A minus entry B in {measure.title} with the same representation, paired over "
           "the stimuli all three share: the difference, a percentile interval and a two-sided "
           "p-value from the same bootstrap resamples for both (--bootstrap, 1000 when 0)."
           f"\n\n\b\nExample:\n  alignkit compare {name} feats.zarr --embedding spose-49d "
           "--a vgg16/fc7 --b resnet50/avgpool --bootstrap 2000 --seed 1")
    return click.command(name, help=doc, short_help=f"Two entries' {measure.title} with one "
                         "representation, paired.")(run)


def _ooo_choices(name: str) -> list[str]:
    from alignkit.measures import get_measure, option_specs

    spec = next(sp for n, sp, _ in option_specs(get_measure("ooo").Options) if n == name)
    return list(spec.allowed() or ())


@compare.command("ooo", short_help="Two entries' odd-one-out accuracy on the same triplets, "
                 "paired.")
@click.argument("store", type=click.Path(exists=True))
@click.option("--triplets", "triplets_src", required=True, multiple=True,
              help="Triplets (as for 'alignkit score ooo': a file or a bundled name); repeat "
                   "it for the union.")
@click.option("--object-ids", default=None,
              help="Ids of the triplets' objects 0..n-1: a file, one id a line, or 'things'.")
@click.option("--a", "a", required=True, help="First entry: MODEL or MODEL/LAYER.")
@click.option("--b", "b", required=True, help="Second entry (the difference is a - b).")
@click.option("--preset", type=click.Choice(_ooo_choices("preset")), default=None,
              help="Published protocol (default paper2023).")
@click.option("--similarity", type=click.Choice(_ooo_choices("similarity")), default=None,
              help="Pair similarity (default: the preset's).")
@click.option("--ties", default=None, help="Tie rule: paper, first, any-tie-wrong (default: the "
                                           "preset's).")
@click.option("--bootstrap", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Paired resamples of the triplets (the same for both entries).")
@click.option("--ci-level", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.95, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@format_option
def compare_ooo(store: str, triplets_src: tuple[str, ...], object_ids: str | None, a: str,
                b: str, preset: str | None, similarity: str | None, ties: str | None,
                bootstrap: int, ci_level: float, seed: int, fmt: str) -> None:
    """Does entry A agree with the humans' odd-one-out choices more often than entry B?

    Both entries are scored on the same triplets under one protocol; the difference of
    their accuracies a - b gets a percentile interval over the same bootstrap resamples of
    the triplets for both, a two-sided bootstrap p-value and the exact McNemar test (the
    triplets only one of the two gets right).

    \b
    Example:
      alignkit compare ooo feats.zarr --triplets things-test20k --a spose/49d --b vit/head \\
          --bootstrap 2000 --seed 1
    """
    from alignkit.commands.score import _triplet_union
    from alignkit.score import compare_models_ooo
    from alignkit.score.stores import _open, _weights_of

    trip = _triplet_union(triplets_src, object_ids)
    st = _open(store)
    ea, eb = _entry(st, a, "--a"), _entry(st, b, "--b")
    opts = {k: v for k, v in (("preset", preset), ("similarity", similarity), ("ties", ties))
            if v is not None}
    res = compare_models_ooo(
        ea.features(), eb.features(), trip, ids=ea.ids, ids_b=eb.ids, bootstrap=bootstrap,
        seed=seed, ci_level=ci_level, model_a=f"{ea.model}/{ea.layer}",
        model_b=f"{eb.model}/{eb.layer}", **opts,
        provenance={"store": str(st.path),
                    "entries": [{"entry": f"{e.model}/{e.layer}", "checksum": e.checksum,
                                 "weights": _weights_of(e)} for e in (ea, eb)]})
    emit([res.row()], fmt, payload=res.to_dict() if fmt == "json" else None)


@compare.command("matrix")
@click.argument("store", type=click.Path(exists=True))
@click.option("--measure", type=click.Choice(["cka", "shape"]), default="cka", show_default=True)
@click.option("--kernel", type=click.Choice(["linear", "rbf"]), default="linear",
              show_default=True, help="cka: the kernel.")
@click.option("--debiased", is_flag=True, help="cka: the unbiased HSIC estimator.")
@click.option("--metric", type=click.Choice(["angular", "procrustes"]), default="angular",
              show_default=True, help="shape: the metric.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="shape: partial whitening (1 none, 0 CCA).")
@click.option("--model", default=None, help="Only this model's entries.")
@click.option("--layer", default=None, help="Only this layer's entries.")
@click.option("--figure", type=click.Path(dir_okay=False), default=None,
              help="Also draw the matrix to this image (.png, .svg, .pdf).")
@format_option
def matrix(store: str, measure: str, kernel: str, debiased: bool, metric: str, alpha: float,
           model: str | None, layer: str | None, figure: str | None, fmt: str) -> None:
    """CKA or a shape distance between every pair of entries of STORE (rows matched by id).

    \b
    Example:
      alignkit compare matrix feats.zarr --measure shape --metric procrustes --figure p.png
    """
    from alignkit.score.cka import similarity_matrix

    kw = ({"kernel": kernel, "debiased": debiased} if measure == "cka"
          else {"metric": metric, "alpha": alpha})
    sim = similarity_matrix(store, measure, model=model, layer=layer, **kw)
    if figure:
        from alignkit.report._similarity import draw_matrix

        draw_matrix(sim, figure)
    rows = [{"entry": lab, **{other: float(v) for other, v in zip(sim.labels, vals, strict=True)}}
            for lab, vals in zip(sim.labels, sim.values, strict=True)]
    emit(rows, fmt, payload=sim.to_dict() if fmt == "json" else None)
