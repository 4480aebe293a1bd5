"""Model tables: the paper's model list as data, ``alignkit models ls``, the sweep preset and
the report's attributes read from the table.

The table is checked against data that does not come from it: the CSV read here
with the csv module, torchvision's own weights metadata (ImageNet accuracy and
parameter count of the weights the table names) and the model-source registry.
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.errors import InputError
from alignkit.zoo import NOT_PUBLIC, card_for, label_of, study_toml, table


def _csv_rows() -> list[dict[str, str]]:
    text = resources.files("alignkit.zoo").joinpath("paper2023.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_paper_table_rows_are_the_csv() -> None:
    rows = _csv_rows()
    cards = table("paper2023")
    assert [c.name for c in cards] == [r["name"] for r in rows]
    assert len(cards) == 87
    assert len({c.name for c in cards}) == len(cards) and len({c.label for c in cards}) == len(cards)
    for c, r in zip(cards, rows, strict=True):
        assert c.imagenet_top1 == (float(r["imagenet_top1"]) if r["imagenet_top1"] else None)
        assert c.n_params == (float(r["n_params_m"]) * 1e6 if r["n_params_m"] else None)
        assert c.public == (r["source"] != NOT_PUBLIC)
        assert c.public or c.note, f"{c.name}: not public without a note saying why"
        assert not c.public or c.layers, f"{c.name}: public without layers"
    # the families of the paper's figures are all there
    assert {"CLIP", "SSL", "ResNet", "VGG", "ViT", "ViT (timm)", "ALIGN", "BASIC"} <= {
        c.family for c in cards}
    with pytest.raises(InputError, match="unknown model table 'nope'"):
        table("nope")


def test_every_public_source_is_a_known_model_spec() -> None:
    from alignkit.extract.sources import source_for

    for c in table("paper2023"):
        if c.public:
            src = source_for(c.source)
            assert src.check(c.source, c.weights) is None, c.name
    kinds = {source_for(c.source).name for c in table("paper2023") if c.public}
    assert {"torchvision", "open_clip", "timm", "hub"} <= kinds


def test_torchvision_rows_match_torchvision_weights_metadata() -> None:
    """The weights the table names are the ones whose published accuracy the paper's table gives."""
    import torchvision.models as tvm

    names = set(tvm.list_models(module=tvm))
    checked = 0
    for c in table("paper2023"):
        if c.source not in names:
            continue
        member = tvm.get_model_weights(c.source)[c.weights]
        acc = member.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert abs(acc - c.imagenet_top1) <= 0.06, (c.name, acc, c.imagenet_top1)
        if c.n_params is not None:
            # the paper's table gives millions rounded to 2 decimals (AlexNet: 61)
            assert abs(member.meta["num_params"] - c.n_params) <= 0.11e6, c.name
        checked += 1
    assert checked == 28


def test_card_lookup_by_name_label_and_source() -> None:
    assert card_for("clip_ViT-B/32").source == "open_clip:ViT-B-32:openai"
    assert card_for("clip_ViT-B_32").name == "clip_ViT-B/32"  # the result label
    assert card_for("open_clip:ViT-B-32:openai").name == "clip_ViT-B/32"  # the source
    assert card_for("resnet50").weights == "IMAGENET1K_V2"
    assert card_for("my-own-net") is None
    assert label_of("clip_ViT-L/14") == "clip_ViT-L_14"


def test_models_ls_lists_every_model_with_its_source_or_not_public() -> None:
    res = CliRunner().invoke(cli, ["models", "ls", "--preset", "paper2023", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    want = {r["name"]: r["source"] for r in _csv_rows()}
    assert {r["name"]: r["source"] for r in rows} == want
    assert sum(r["source"] == "not public" for r in rows) == 42
    for r in rows:
        assert r["source"] == "not public" or r["layers"], r
    table_out = CliRunner().invoke(cli, ["models", "ls"])
    assert table_out.exit_code == 0
    for name in ("clip_ViT-L/14", "vit-G_14_224", "barlowtwins-rn50"):
        assert name in table_out.stdout
    public = CliRunner().invoke(cli, ["models", "ls", "--public", "--format", "csv"])
    assert "not public" not in public.stdout and public.stdout.count("\n") == 45 + 1
    bad = CliRunner().invoke(cli, ["models", "ls", "--preset", "paper2024"])
    assert bad.exit_code == 2 and "unknown model table 'paper2024'" in bad.output


def test_sweep_preset_writes_a_study_of_every_public_model(tmp_path: Path) -> None:
    images = tmp_path / "things"
    images.mkdir()
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        res = runner.invoke(cli, ["sweep", "--preset", "paper2023", "--images", str(images),
                                  "--dry-run", "--format", "json"])
        assert res.exit_code == 0, res.output
        assert "left out 3 torch hub models" in res.stderr and "--trust-code" in res.stderr
        tasks = json.loads(res.stdout)
        study = Path("paper2023.study.toml")
        assert study.is_file()
        public = [c for c in table("paper2023") if c.public]
        code = [c for c in public if c.source.startswith("hub:")]
        want = {(c.label, layer) for c in public if c not in code for layer in c.layers}
        got = {(t["model"], t["layer"]) for t in tasks if t["task"] == "ooo"}
        assert got == want
        assert {t["dataset"] for t in tasks if t["task"] == "ooo"} == {"things-test20k"}
        with_code = runner.invoke(cli, ["sweep", "--preset", "paper2023", "--images", str(images),
                                        "--dry-run", "--trust-code", "--format", "json"])
        assert with_code.exit_code == 0, with_code.output
        got = {(t["model"], t["layer"]) for t in json.loads(with_code.stdout)
               if t["task"] == "ooo"}
        assert got == want | {(c.label, layer) for c in code for layer in c.layers}
        both = runner.invoke(cli, ["sweep", str(study), "--preset", "paper2023"])
        assert both.exit_code == 2 and "not both" in both.output
        no_images = runner.invoke(cli, ["sweep", "--preset", "paper2023"])
        assert no_images.exit_code == 2 and "--images" in no_images.output


def test_study_toml_parses_and_names_the_preset(tmp_path: Path) -> None:
    from alignkit.sweep.study import parse_study

    (tmp_path / "things").mkdir()
    text, left = study_toml("paper2023", images=str(tmp_path / "things"),
                            store=str(tmp_path / "s.zarr"), include_code=True)
    assert left == []
    study = parse_study(text, base=tmp_path)
    assert len(study.models) == sum(c.public for c in table("paper2023"))
    assert {m.label for m in study.models} == {c.label for c in table("paper2023") if c.public}
    assert study.triplets[0].measure_options("ooo").preset == "paper2023"


def test_report_reads_attributes_and_family_from_the_table(tmp_path: Path) -> None:
    from alignkit.report import write_report
    from alignkit.results import ResultsTable, record_from_result

    table_path = tmp_path / "results.jsonl"
    t = ResultsTable(table_path)
    accs = {"resnet50": 0.52, "vgg16": 0.50, "clip_ViT-B_32": 0.57, "my-net": 0.45}
    for model, acc in accs.items():
        t.append(record_from_result("ooo", {
            "accuracy": acc, "n_triplets": 20000, "n_correct": round(acc * 20000), "n_ties": 0,
            "similarity": "cosine", "ties": "paper", "chance": 1 / 3, "model": model,
            "layer": "penultimate", "provenance": {"triplets": {"source": "things-test20k"}}}))
    out = write_report(table_path, tmp_path / "rep")
    html = Path(out.html if hasattr(out, "html") else out).read_text(encoding="utf-8")
    assert "bundled model table paper2023" in html
    figs = {p.name for p in (tmp_path / "rep" / "figures").iterdir()}
    assert any(n.startswith("family-") and n.endswith(".svg") for n in figs)
    assert any(n.startswith("attribute-imagenet_top1") for n in figs)
    # the table's figures, not made up: 80.86 for resnet50 (IMAGENET1K_V2), 76.1 for CLIP B/32
    assert "80.86" in html and "76.1" in html and "ResNet" in html and "image/text" in html


def test_timm_and_open_clip_rows_name_weights_their_libraries_publish() -> None:
    """Every tag the table names is in the library's own list of pretrained weights."""
    import open_clip
    import timm

    timm_tags = set(timm.list_pretrained())
    clip_tags = set(open_clip.list_pretrained())
    n = 0
    for c in table("paper2023"):
        if c.source.startswith("timm:"):
            assert c.source[len("timm:"):] in timm_tags, c.source
            n += 1
        elif c.source.startswith("open_clip:"):
            _, arch, tag = c.source.split(":")
            assert (arch, tag) in clip_tags, c.source
            n += 1
    assert n == 6 + 8
