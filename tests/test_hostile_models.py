"""Hostile inputs to the model tables, ``sweep --preset``, the model sources, the published
probes and the report's model attributes: each is a user mistake that must exit 2 with one
line naming what is wrong, never a traceback or a silently wrong result."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from alignkit.cli import cli


def _one_line_error(res) -> str:  # noqa: ANN001
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.startswith("alignkit: error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture()
def things(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "things"
    images.mkdir()
    return images


def _preset(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["sweep", "--preset", "paper2023", *args, "--dry-run",
                                    "--format", "json"])


def test_sweep_preset_store_under_a_file_is_a_user_error(things: Path) -> None:
    (things.parent / "afile").write_text("x")
    line = _one_line_error(_preset("--images", str(things), "--store", "afile/s.zarr"))
    assert "--store" in line and "afile" in line


def test_sweep_preset_missing_triplets_file_names_the_option(things: Path) -> None:
    line = _one_line_error(_preset("--images", str(things), "--triplets", "missing.csv"))
    assert "--triplets 'missing.csv'" in line
    assert not (things.parent / "paper2023.study.toml").exists()


@pytest.mark.parametrize("triplets", ["", "things"])
def test_sweep_preset_triplets_empty_or_a_folder_names_the_option(things: Path,
                                                                  triplets: str) -> None:
    line = _one_line_error(_preset("--images", str(things), "--triplets", triplets))
    assert f"--triplets {triplets!r}" in line
    assert not (things.parent / "paper2023.study.toml").exists()


@pytest.mark.parametrize("name", ["im\nnl", "im\x01c", 'im"q', "im\\b", "imü"])
def test_sweep_preset_odd_characters_in_paths_round_trip(things: Path, name: str) -> None:
    from alignkit.sweep import load_study

    images = things.parent / name
    images.mkdir()
    res = _preset("--images", str(images), "--store", f"s{name}.zarr")
    assert res.exit_code == 0, res.output
    study = load_study(str(things.parent / f"s{name}.study.toml"))
    assert study.images[0].path == str(images)
    assert study.sweep.store == str(things.parent / f"s{name}.zarr")


def test_sweep_preset_says_when_it_replaces_a_different_study(things: Path) -> None:
    study = things.parent / "paper2023.study.toml"
    assert _preset("--images", str(things)).exit_code == 0
    first = study.read_text()
    assert "rewrites this file" in first
    again = _preset("--images", str(things))
    assert again.exit_code == 0 and "kept the same study" in again.stderr
    study.write_text(first.replace("batch_size = 32", "batch_size = 8"))
    edited = _preset("--images", str(things))
    assert edited.exit_code == 0 and "replaced the different study file" in edited.stderr
    assert study.read_text() == first


def _images(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / f"im{i}.png")
    return root


HUBCONF_EXITS = """\
import sys
from torch import nn


def tiny(pretrained=False):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))


def exits(pretrained=False):
    sys.exit(3)
"""


@pytest.mark.parametrize("at_import", [False, True])
def test_hub_code_calling_sys_exit_is_a_model_error(tmp_path: Path, at_import: bool) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "hubconf.py").write_text(HUBCONF_EXITS + ("sys.exit(4)\n" if at_import else ""))
    images = _images(tmp_path / "imgs")
    entry = "tiny" if at_import else "exits"
    spec = f"hub:{folder}:{entry}"
    for extra in ([str(images), "--store", str(tmp_path / "s.zarr"), "--layer", "penultimate"],
                  ["--list-layers"]):
        res = CliRunner().invoke(cli, ["extract", spec, "--trust-code", *extra])
        line = _one_line_error(res)
        assert "SystemExit" in line and ("fails to import" in line) == at_import


@pytest.mark.parametrize("spec", ["open_clip::openai", "open_clip::"])
def test_open_clip_without_an_architecture(tmp_path: Path, spec: str) -> None:
    pytest.importorskip("open_clip")
    images = _images(tmp_path / "imgs")
    for extra in ([str(images), "--store", str(tmp_path / "s.zarr"), "--layer", "penultimate"],
                  ["--list-layers"]):
        res = CliRunner().invoke(cli, ["extract", spec, *extra])
        assert f"{spec!r}: no architecture after open_clip:" in _one_line_error(res)


def _report(tmp_path: Path, accs: dict, attrs: dict | None = None) -> str:
    from alignkit.report import write_report
    from alignkit.results import ResultsTable, record_from_result

    t = ResultsTable(tmp_path / "results.jsonl")
    for model, acc in accs.items():
        rec = record_from_result("ooo", {
            "accuracy": acc, "n_triplets": 20000, "n_correct": round(acc * 20000), "n_ties": 0,
            "similarity": "cosine", "ties": "paper", "chance": 1 / 3, "model": model,
            "layer": "penultimate", "provenance": {"triplets": {"source": "things-test20k"}}})
        if attrs and model in attrs:
            rec["model_attrs"] = attrs[model]
        t.append(rec)
    out = write_report(tmp_path / "results.jsonl", tmp_path / "rep")
    return Path(out.html if hasattr(out, "html") else out).read_text(encoding="utf-8")


def test_report_does_not_mix_a_record_with_a_table_row_it_contradicts(tmp_path: Path) -> None:
    # "resnet50" here is the user's own network: its records say 12% top-1 and 1M parameters
    html = _report(tmp_path, {"resnet50": 0.52, "vgg16": 0.50},
                   {"resnet50": {"imagenet_top1": 12.0}})
    assert html.count("80.86") == 1  # only in the note: the table row is not used for it
    assert "resnet50: its records give imagenet_top1 12 (table: 80.86)" in html
    # a record agreeing with the table (to its rounding) keeps the row
    html = _report(tmp_path / "same", {"resnet50": 0.52, "vgg16": 0.50},
                   {"resnet50": {"imagenet_top1": 80.858}})
    assert "its records give" not in html and "ResNet" in html


def test_report_with_a_single_table_model(tmp_path: Path) -> None:
    html = _report(tmp_path, {"resnet50": 0.52})
    assert "fewer than two models" in html


@pytest.mark.parametrize("spec", ["timm:resnet18", "open_clip:RN50"])
def test_an_unloadable_weights_file_is_named_as_such(tmp_path: Path, spec: str) -> None:
    pytest.importorskip(spec.split(":")[0])
    images = _images(tmp_path / "imgs")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"garbage")
    res = CliRunner().invoke(cli, ["extract", spec, str(images), "--store", str(tmp_path / "s.zarr"),
                                   "--layer", "penultimate", "--weights", str(bad), "--offline"])
    line = _one_line_error(res)
    assert f"--weights {bad}: {spec} cannot load it" in line and "not available" not in line


def test_report_does_not_give_a_random_init_model_the_tables_imagenet_figure(
        tmp_path: Path) -> None:
    import numpy as np

    from alignkit.report import write_report
    from alignkit.results import ResultsTable, record_from_result
    from alignkit.score.stores import score_store_ooo
    from alignkit.store import EmbeddingStore

    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    rng = np.random.default_rng(0)
    ids = [f"o{i}" for i in range(12)]
    for model, weights in (("resnet50", "none"), ("vgg16", "IMAGENET1K_V1"),
                           ("resnet18", "IMAGENET1K_V1")):
        st.write(model, "penultimate", rng.normal(size=(12, 4)).astype(np.float32), ids,
                 attrs={"model": {"name": model, "source": "torchvision", "weights": weights}})
    triplets = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]])
    t = ResultsTable(tmp_path / "results.jsonl")
    from alignkit.measures import get_measure

    ooo = get_measure("ooo")
    for res in score_store_ooo(st, triplets, ooo.options({}), object_ids=ids):
        assert res.provenance["entry_weights"] in ("none", "IMAGENET1K_V1")
        t.append(record_from_result("ooo", res))
    out = write_report(tmp_path / "results.jsonl", tmp_path / "rep")
    html = Path(out.html if hasattr(out, "html") else out).read_text(encoding="utf-8")
    assert "resnet50: its records give weights none (table: IMAGENET1K_V2)" in html
    assert "80.86" not in html  # the table's resnet50 accuracy is not resnet50's here
    assert "71.592" in html or "71.59" in html  # vgg16 keeps its row: the same weights


@pytest.mark.parametrize("deps, says", [("'torch'", None), ("['nonexistent_zz.sub']", "needs nonexistent_zz.sub"),
                                        ("[1]", "dependencies must be a list"),
                                        ("['']", "dependencies must be a list")])
def test_hubconf_dependencies_of_odd_shapes(tmp_path: Path, deps: str, says: str | None) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "hubconf.py").write_text(
        f"dependencies = {deps}\nfrom torch import nn\n\n\ndef tiny(pretrained=False):\n"
        "    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))\n")
    res = CliRunner().invoke(cli, ["extract", f"hub:{folder}:tiny", "--list-layers",
                                   "--trust-code"])
    if says is None:
        assert res.exit_code == 0, res.output
    else:
        assert says in _one_line_error(res)
