"""The measure registry: a measure declared in a few lines here, and nowhere else, appears in
``alignkit score --help``, gets a command, is a study-file key, runs in a sweep, and has a
section in the report; the built-in measures derive their CLI options from the registry.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.errors import InputError
from alignkit.measures import (
    Column,
    Measure,
    MeasureOptions,
    MeasureResult,
    get_measure,
    measure_names,
    option,
    option_specs,
    register_measure,
    unregister_measure,
)

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


# ----------------------------------------------------------------------------- the toy measure
@dataclass(frozen=True)
class ToyOptions(MeasureOptions):
    scale: float = option(1.0, "Multiply the mean feature value by this.", minimum=0)


@dataclass
class ToyResult(MeasureResult):
    n_triplets: int = 0  # a field beyond MeasureResult's, shown as a column


class ToyMeasure(Measure):
    name, title, data, Options = "toy-mean", "toy mean feature", "triplets", ToyOptions
    summary = "Mean feature value times --scale (a toy)."
    columns = (Column("triplets", "n_triplets", "d"),)

    def compute(self, features, data, options, **context):
        return ToyResult(value=options.scale * float(np.mean(features, dtype=np.float64)),
                         model=context["model"], layer=context["layer"],
                         options=options.to_dict(), n_triplets=len(data))


@pytest.fixture()
def toy():
    measure = register_measure(ToyMeasure())
    yield measure
    unregister_measure("toy-mean")


# ----------------------------------------------------------------------------- registry rules
def test_builtin_measures_and_their_options() -> None:
    assert measure_names()[:2] == ("ooo", "rsa")
    ooo = get_measure("ooo")
    names = [n for n, _, _ in option_specs(ooo.Options)]
    assert names == ["preset", "similarity", "ties", "ceiling", "bootstrap", "ci_level", "seed",
                     "group_by"]
    # choices come from the registries they name
    from alignkit._kernels.similarity import SIMILARITIES
    from alignkit._kernels.ties import DEPRECATED_TIE_RULES, TIE_RULES

    spec = dict((n, s) for n, s, _ in option_specs(ooo.Options))
    assert spec["similarity"].allowed() == tuple(SIMILARITIES)
    assert spec["ties"].allowed() == (*TIE_RULES, *DEPRECATED_TIE_RULES)
    # identity options decide what counts as the same measurement; resampling does not
    assert ooo.options(bootstrap=10).identity() == {"preset": None, "similarity": None, "ties": None}


def test_register_rejects_malformed_measures(toy) -> None:
    with pytest.raises(InputError, match="registered already"):
        register_measure(ToyMeasure())
    bad = ToyMeasure()
    bad.name = "Bad Name"
    with pytest.raises(InputError, match="lower-case"):
        register_measure(bad)
    bad = ToyMeasure()
    bad.name, bad.data = "toy2", "images"
    with pytest.raises(InputError, match="data 'images' is not one of triplets, rdm"):
        register_measure(bad)
    with pytest.raises(InputError, match="takes a Measure instance"):
        register_measure(ToyMeasure)
    with pytest.raises(InputError, match=r"^scale must be at least 0, got -1"):
        toy.options(scale=-1)
    with pytest.raises(InputError, match="no measure named 'nope'"):
        get_measure("nope")


# ----------------------------------------------------------------------------- CLI
def test_toy_measure_in_score_help_and_as_a_command(toy, tmp_path: Path) -> None:
    from alignkit.data import load_embedding
    from alignkit.results import ResultsTable
    from alignkit.store import EmbeddingStore

    runner = CliRunner()
    top = runner.invoke(cli, ["score", "--help"])
    assert top.exit_code == 0, top.output
    assert "toy-mean" in top.output and "Mean feature value times --scale" in top.output
    sub = runner.invoke(cli, ["score", "toy-mean", "--help"])
    assert sub.exit_code == 0 and "--scale" in sub.output and "--triplets" in sub.output

    emb = load_embedding("spose-49d")
    store = tmp_path / "f.zarr"
    EmbeddingStore(store, mode="a").write("spose", "dims", emb.values.astype(np.float32), emb.ids)
    out = runner.invoke(cli, ["score", "toy-mean", str(store), "--triplets", "things-test20k",
                              "--scale", "2", "--format", "json"])
    assert out.exit_code == 0, out.output
    want = 2.0 * float(np.mean(emb.values.astype(np.float32), dtype=np.float64))
    (rec,) = ResultsTable.for_store(store).records("toy-mean")
    assert rec["result"]["value"] == pytest.approx(want, rel=1e-12)
    assert rec["result"]["n_triplets"] == 20000 and rec["model"] == "spose"
    bad = runner.invoke(cli, ["score", "toy-mean", str(store), "--triplets", "things-test20k",
                              "--scale", "-1"])
    assert bad.exit_code == 2 and "--scale" in bad.output


def test_builtin_commands_take_registry_options() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["score", "ooo", "--help"])
    for name, spec, _ in option_specs(get_measure("ooo").Options):
        assert (("--" + name.replace("_", "-")) in out.output) == spec.cli or name == "ceiling"
    out = runner.invoke(cli, ["score", "rsa", "--help"])
    for name, _, _ in option_specs(get_measure("rsa").Options):
        assert "--" + name.replace("_", "-") in out.output


# ----------------------------------------------------------------------------- study + sweep + report
def _inputs(folder: Path) -> None:
    stems = sorted(p.stem for p in IMAGES.iterdir() if p.is_file())
    (folder / "ids.txt").write_text("\n".join(stems) + "\n")
    T = np.array(list(itertools.combinations(range(len(stems)), 3)))
    np.savetxt(folder / "trip.txt", T, fmt="%d")


def _study(folder: Path, table: str) -> Path:
    path = folder / "study.toml"
    path.write_text(f"""\
[sweep]
store = "features.zarr"
seed = 3
pool_maps = "avg"
threads = 1

[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["penultimate"]

[[images]]
name = "sample"
path = "{IMAGES}"

[[triplets]]
name = "trip"
source = "trip.txt"
ids = "ids.txt"
{table}
""")
    return path


def test_toy_measure_in_study_file_errors(toy, tmp_path: Path) -> None:
    from alignkit.sweep import load_study

    _inputs(tmp_path)
    study = load_study(_study(tmp_path, 'measures = ["ooo", "toy-mean"]\nscale = 3.0\n'))
    (t,) = study.triplets
    assert t.measures == ("ooo", "toy-mean") and t.measure_options("toy-mean").scale == 3.0
    with pytest.raises(InputError, match=r"line 2\d: \[\[triplets\]\] #1 key 'scale': must be at "
                                         r"least 0, got -1"):
        load_study(_study(tmp_path, 'measures = ["toy-mean"]\nscale = -1\n'))
    with pytest.raises(InputError, match="'scale': is an option of a measure this table does "
                                         "not list in 'measures'"):
        load_study(_study(tmp_path, "scale = 2.0\n"))
    with pytest.raises(InputError, match="'nope' is not a measure of triplets"):
        load_study(_study(tmp_path, 'measures = ["nope"]\n'))


@pytest.mark.skipif(not IMAGES.is_dir(), reason=f"sample images {IMAGES} not present")
def test_toy_measure_in_sweep_and_report(toy, tmp_path: Path) -> None:
    from alignkit.report import write_report
    from alignkit.results import ResultsTable
    from alignkit.store import EmbeddingStore
    from alignkit.sweep import load_study, run_sweep

    _inputs(tmp_path)
    study = load_study(_study(tmp_path, 'measures = ["ooo", "toy-mean"]\nscale = 3.0\n'))
    report = run_sweep(study)
    assert report.complete and sorted(t.kind for t in report.ran) == ["extract", "ooo", "toy-mean"]
    store = tmp_path / "features.zarr"
    (rec,) = ResultsTable.for_store(store).records("toy-mean")
    entry = EmbeddingStore(store).entry("squeezenet1_0@sample", rec["module"])
    want = 3.0 * float(np.mean(entry.features(), dtype=np.float64))
    assert rec["result"]["value"] == pytest.approx(want, rel=1e-12)
    assert rec["result"]["n_triplets"] == 84 and rec["dataset"] == "trip"
    # a rerun skips it: its key is content-aware like every task's
    assert not run_sweep(load_study(tmp_path / "study.toml")).ran

    files = write_report(store, tmp_path / "report")
    html = files.html.read_text()
    assert "Toy mean feature" in html and f"{rec['result']['value']:.4f}" in html
    assert "toy mean feature, every measurement" in html
    assert any("measure-toy-mean" in f.name for f in files.figures)


# ------------------------------------------------------------- a measure on the embedding kind
class ToyMatchMeasure(Measure):
    """Mean over stimuli of <feature row, embedding row> (rows matched by id)."""

    name, title, data, Options = "toy-match", "toy matched product", "embedding", ToyOptions
    summary = "Mean inner product of matched feature and embedding rows (a toy)."
    count = "n_stimuli"
    columns = (Column("stimuli", "n_stimuli", "d"),)

    def compute(self, features, data, options, **context):
        from alignkit.data import align_by_ids

        i, j = align_by_ids(context["ids"], data.ids, require_all=False)
        prod = np.einsum("ij,ij->i", np.asarray(features, np.float64)[i], data.values[j])
        return ToyMatchResult(value=options.scale * float(prod.mean()), n_stimuli=len(i),
                              model=context["model"], layer=context["layer"])


@dataclass
class ToyMatchResult(MeasureResult):
    n_stimuli: int = 0


@pytest.fixture()
def toy_match():
    measure = register_measure(ToyMatchMeasure())
    yield measure
    unregister_measure("toy-match")


def test_embedding_data_kind_command_and_study(toy_match, tmp_path: Path) -> None:
    from alignkit.data import load_embedding
    from alignkit.results import ResultsTable
    from alignkit.store import EmbeddingStore
    from alignkit.sweep import load_study

    emb = load_embedding("spose-49d")
    rows = np.arange(0, 1854, 7)[::-1]  # a subset, in another order: matched by id
    store = tmp_path / "f.zarr"
    feats = emb.values[rows].astype(np.float32) * 2
    EmbeddingStore(store, mode="a").write("spose2", "dims", feats, emb.ids[rows])
    runner = CliRunner()
    sub = runner.invoke(cli, ["score", "toy-match", "--help"])
    assert sub.exit_code == 0 and "--embedding" in sub.output and "spose-49d" in sub.output
    out = runner.invoke(cli, ["score", "toy-match", str(store), "--embedding", "spose-49d"])
    assert out.exit_code == 0, out.output
    (rec,) = ResultsTable.for_store(store).records("toy-match")
    want = float(np.mean(np.sum(feats.astype(np.float64) * emb.values[rows], axis=1)))
    assert rec["result"]["value"] == pytest.approx(want, rel=1e-12)
    assert rec["result"]["n_stimuli"] == rows.size

    # the embedding's rows named by a file of ids
    vals = tmp_path / "e.npy"
    np.save(vals, emb.values[:20])
    ids = tmp_path / "e_ids.txt"
    ids.write_text("\n".join(emb.ids[:20]) + "\n")
    out = runner.invoke(cli, ["score", "toy-match", str(store), "--embedding", str(vals),
                              "--embedding-ids", str(ids), "--no-record", "--format", "json"])
    assert out.exit_code == 0, out.output
    both = np.intersect1d(emb.ids[:20], emb.ids[rows])
    assert f'"n_stimuli": {both.size}' in out.output

    study = tmp_path / "study.toml"
    study.write_text(f"""
[sweep]
store = "features.zarr"

[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["penultimate"]

[[images]]
name = "sample"
path = "{IMAGES}"

[[embedding]]
name = "spose"
source = "spose-49d"
measures = ["toy-match"]
scale = 0.5
""")
    st = load_study(study)
    (e,) = st.embeddings
    assert e.kind == "embedding" and e.measure_options("toy-match").scale == 0.5
    from alignkit.sweep.tasks import expand

    kinds = sorted(t.kind for t in expand(st))
    assert kinds == ["extract", "toy-match"]
