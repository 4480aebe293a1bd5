"""The model-source registry: every source complete, and a new one known everywhere at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.errors import InputError, ModelError
from alignkit.extract.layer_presets import LAYER_PRESETS
from alignkit.extract.sources import (
    ModelSource,
    ResolvedWeights,
    register_source,
    source_for,
    source_problems,
    sources,
    spec_forms,
    unregister_source,
)
from alignkit.extract.specs import require_trust, runs_code, seed_applies

DOCS = Path(__file__).resolve().parents[1] / "docs"


class Toy(ModelSource):
    """``toy:WIDTH``: a tiny network whose embedding layer is WIDTH wide."""

    name = "toy"
    prefix = "toy"
    forms = ("toy:WIDTH",)
    help = "a tiny test network"
    layer_presets = {"embedding": "3"}

    def check(self, spec: str, weights: str) -> str | None:
        return None if self.rest(spec).isdigit() else f"{spec!r}: WIDTH must be a whole number"

    def build(self, spec: str, weights: ResolvedWeights):  # type: ignore[no-untyped-def]
        from torch import nn

        from alignkit.extract.models import LoadedModel

        width = int(self.rest(spec))
        net = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 8),
                            nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))
        return LoadedModel(net.eval(), spec, self.name, weights.id)


@pytest.fixture
def toy() -> Iterator[Toy]:
    source = register_source(Toy())
    try:
        yield source
    finally:
        unregister_source("toy")


# --------------------------------------------------------------------------- every source


@pytest.mark.parametrize("source", sources(), ids=lambda s: s.name)
def test_every_source_declares_every_field(source: ModelSource) -> None:
    assert source_problems(source) == []
    assert isinstance(source.runs_code, bool)
    assert set(source.layer_presets) <= set(LAYER_PRESETS)
    assert source.forms and all(isinstance(f, str) for f in source.forms)
    assert source.help.strip() and "\n" not in source.help
    if source.prefix is not None:
        assert all(f.startswith(f"{source.prefix}:") for f in source.forms)
        assert source_for(f"{source.prefix}:x") is source
    assert type(source).build is not ModelSource.build


def test_docs_table_lists_every_source_as_declared() -> None:
    rows = {}
    for line in (DOCS / "extract.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`") and cells[2] in ("yes", "no"):
            rows[cells[1].strip("`")] = cells
    security_md = (DOCS / "security.md").read_text()
    assert set(rows) == {s.name for s in sources()}
    for source in sources():
        forms, _, code, what = rows[source.name]
        assert all(f in forms for f in source.forms), (source.name, forms)
        assert code == ("yes" if source.runs_code else "no") and what == source.help
        for form in source.forms if source.runs_code else ():
            assert form.removeprefix("a ") in security_md, form


def test_each_existing_spec_goes_to_its_source(tmp_path: Path) -> None:
    existing = tmp_path / "model"  # any existing file given as MODEL is TorchScript
    existing.write_bytes(b"")
    expected = {
        "resnet18": ("torchvision", None),
        "json:loads": ("custom", "a Python factory (module json)"),
        "nets.py:build": ("custom", "a Python factory (nets.py)"),
        "model.pt": ("torchscript", "a TorchScript file"),
        "weights/model.torchscript": ("torchscript", "a TorchScript file"),
        str(existing): ("torchscript", "a TorchScript file"),
        "timm:resnet18": ("timm", None),
        "open_clip:ViT-B-32": ("open_clip", None),
        "open_clip:ViT-B-32:openai": ("open_clip", None),
        "hub:facebookresearch/dino:dino_vitb16": (
            "hub", "a torch hub repository (facebookresearch/dino, its hubconf.py)"),
        "hub:/models/my:hub:tiny": ("hub", "a torch hub folder (/models/my:hub/hubconf.py)"),
    }
    for spec, (name, kind) in expected.items():
        assert source_for(spec).name == name, spec
        assert runs_code(spec) == kind, spec
    assert seed_applies("nets.py:build", "DEFAULT") and not seed_applies("model.pt", "none")
    assert seed_applies("resnet18", "none") and not seed_applies("resnet18", "DEFAULT")
    with pytest.raises(InputError, match="empty model name"):
        source_for("  ")
    from alignkit.sweep.study import check_model_name

    assert check_model_name("timm:", "none") == "'timm:': no name after timm: (expected timm:NAME)"
    assert check_model_name("1x:y", "none").startswith("'1x:y': not a torchvision model name, ")
    assert check_model_name("json:loads", "none") is None
    assert check_model_name("absent.jit", "none") == "no such model file 'absent.jit'"


def test_the_registry_needs_no_torch() -> None:
    code = ("import sys\n"
            "import alignkit.extract.sources, alignkit.extract.specs, alignkit.sweep.study\n"
            "from alignkit.extract.specs import runs_code\n"
            "runs_code('nets.py:build'), runs_code('timm:resnet18')\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'open_clip') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_malformed_or_clashing_sources_are_refused(toy: Toy) -> None:
    class Bad(Toy):
        name = "bad"
        prefix = "bad"
        forms = ("bad:X",)
        runs_code = "yes"  # type: ignore[assignment]
        layer_presets = {"pooled": "3"}

    with pytest.raises(InputError, match=r"runs_code must be True or False.*unknown preset.*'pooled'"):
        register_source(Bad())
    with pytest.raises(InputError, match="'toy' is already registered"):
        register_source(Toy())

    class Other(Toy):
        name = "other"

    with pytest.raises(InputError, match="prefix 'toy' is taken by 'toy'"):
        register_source(Other())

    class NoBuild(ModelSource):
        name = "nobuild"
        prefix = "nobuild"
        forms = ("nobuild:X",)
        help = "x"

    assert source_problems(NoBuild()) == ["build is not implemented"]
    assert "bad" not in {s.name for s in sources()} and "nobuild" not in {s.name for s in sources()}


def test_sources_without_prefix_are_asked_newest_first() -> None:
    class Urls(ModelSource):
        name = "urls"
        forms = ("zoo://REPO",)
        help = "models named by a URL"

        def matches(self, spec: str) -> bool:
            return spec.startswith("zoo://")

        def build(self, spec, weights):  # type: ignore[no-untyped-def]
            raise ModelError("not here")

    assert source_for("zoo://x/y").name == "custom"  # 'zoo' reads as a module name
    register_source(Urls())
    try:
        assert source_for("zoo://x/y").name == "urls"
        assert source_for("json:loads").name == "custom" and source_for("resnet18").name == "torchvision"
        assert "zoo://REPO" in spec_forms()
    finally:
        unregister_source("urls")
    assert "zoo://REPO" not in spec_forms()


# --------------------------------------------------------------------------- a new source


def test_a_registered_source_is_known_everywhere(toy: Toy) -> None:
    assert source_for("toy:4") is toy
    assert spec_forms().endswith("hf:NAME_OR_FOLDER or toy:WIDTH")
    assert runs_code("toy:4") is None
    help_text = CliRunner().invoke(cli, ["extract", "--help"]).output
    assert "toy:WIDTH" in help_text


def test_load_model_builds_a_registered_source(toy: Toy) -> None:
    torch = pytest.importorskip("torch")
    from alignkit.extract.models import load_model

    a, b, c = (load_model("toy:5", weights="none", seed=s) for s in (1, 1, 2))
    assert a.source == "toy" and a.name == "toy:5" and a.weights == "none"
    assert a.presets == {"embedding": "3"}
    assert a.seed == 1 and a.describe()["state_checksum"] == b.describe()["state_checksum"]
    assert a.describe()["state_checksum"] != c.describe()["state_checksum"]
    assert a.module(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
    with pytest.raises(InputError, match="toy models take none or DEFAULT"):
        load_model("toy:5", weights="IMAGENET1K_V1")


def test_list_layers_of_a_registered_source(toy: Toy) -> None:
    pytest.importorskip("torch")
    res = CliRunner().invoke(cli, ["extract", "--list-layers", "toy:6", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["layer"]: r for r in json.loads(res.stdout)}
    assert rows["3"]["p"] == 6 and rows["3"]["preset"] == "penultimate,embedding"
    assert rows["5"]["preset"] == "logits"


def test_code_running_sources_need_trust(toy: Toy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Toy, "runs_code", True)
    assert runs_code("toy:3") == "a toy model"
    with pytest.raises(InputError, match=r"'toy:3' is a toy model: --list-layers .*--trust-code"):
        require_trust("toy:3", False, "--list-layers")
    res = CliRunner().invoke(cli, ["extract", "--list-layers", "toy:3"])
    assert res.exit_code == 2 and "--trust-code" in res.stderr


def _images(folder: Path, n: int = 3) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (20, 20), (40 * i, 80, 200 - 40 * i)).save(folder / f"img{i}.png")
    return folder


def test_extraction_of_a_registered_source_into_a_store(toy: Toy, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from alignkit.store import EmbeddingStore

    images = _images(tmp_path / "imgs")
    store = tmp_path / "s.zarr"
    args = ["extract", "toy:4", str(images), "--store", str(store), "-l", "embedding", "-l",
            "logits", "--weights", "none", "--seed", "3", "--device", "cpu", "--workers", "0",
            "--resize", "16", "--crop", "16", "--format", "json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["layer"], r["requested"], r["p"]) for r in rows] == [("3", "embedding", 4),
                                                                    ("5", "logits", 3)]
    st = EmbeddingStore(store)
    entry = st.entry("toy:4", "3")
    assert entry.complete and entry.n == 3 and entry.p == 4
    model = entry.attrs["model"]
    assert model["source"] == "toy" and model["seed"] == 3 and model["weights"] == "none"
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and {r["status"] for r in json.loads(again.stdout)} == {"complete"}


_STUDY = """\
[sweep]
store = "features.zarr"

[[model]]
name = "{model}"
weights = "none"
layers = ["embedding"]

[[images]]
name = "a"
path = "imgs"

[[triplets]]
name = "t"
source = "t.txt"
"""


def test_a_study_naming_a_registered_source(toy: Toy, tmp_path: Path) -> None:
    from alignkit.sweep.study import check_model_name, parse_study

    _images(tmp_path / "imgs")
    (tmp_path / "t.txt").write_text("0 1 2\n")
    path = tmp_path / "study.toml"
    path.write_text(_STUDY.format(model="toy:4"))
    study = parse_study(path.read_text(), base=tmp_path, check_models=True)
    assert [m.name for m in study.models] == ["toy:4"]
    res = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["task"], r["model"], r["layer"]) for r in rows] == [
        ("extract", "toy_4", None), ("ooo", "toy_4", "embedding")]
    assert not (tmp_path / "features.zarr").exists()
    # the source's own check refuses a bad spec before any work, naming the line
    assert check_model_name("toy:wide", "none") == "'toy:wide': WIDTH must be a whole number"
    path.write_text(_STUDY.format(model="toy:wide"))
    res = CliRunner().invoke(cli, ["sweep", str(path), "--dry-run"])
    assert res.exit_code == 2
    assert "line 5: [[model]] #1 key 'name': 'toy:wide': WIDTH must be a whole number" in res.stderr


def test_embedding_preset_exists_only_where_a_source_declares_it() -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    from alignkit.extract.layers import probe_layers, resolve_layers

    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    infos, order = probe_layers(net, torch.zeros(1, 3, 2, 2))
    assert resolve_layers(net, ["penultimate", "logits"], infos, order) == ["1", "3"]
    with pytest.raises(ModelError, match=r"'embedding'.*models that have one: open_clip:ARCH"):
        resolve_layers(net, ["embedding"], infos, order)
    assert resolve_layers(net, ["embedding"], infos, order, {"embedding": "1"}) == ["1"]


def _fake_zoo(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    import types

    mod = types.ModuleType(name)
    subs: dict[str, types.ModuleType] = {}  # fresh ones: never alter the installed library
    for key, value in attrs.items():
        if "." in key:
            head = key.split(".")[0]
            sub = subs.setdefault(head, types.ModuleType(f"{name}.{head}"))
            setattr(sub, key.split(".")[1], value)
            monkeypatch.setitem(sys.modules, sub.__name__, sub)
            setattr(mod, key.split(".")[0], sub)
        else:
            setattr(mod, key, value)
    monkeypatch.setitem(sys.modules, name, mod)


def test_timm_source_wiring_with_a_stand_in_library(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What the timm source asks of timm and records, without timm installed."""
    pytest.importorskip("torch")
    from torch import nn

    from alignkit.errors import WeightsUnavailableError
    from alignkit.extract.models import load_model

    calls: list[tuple[str, bool, dict[str, object]]] = []

    def create_model(name: str, pretrained: bool, **kw: object) -> nn.Module:
        if pretrained and "pretrained_cfg_overlay" not in kw:
            raise RuntimeError("offline")
        calls.append((name, pretrained, kw))
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 2))

    _fake_zoo(monkeypatch, "timm", __version__="0.0-test", list_models=lambda: ["tiny"],
              create_model=create_model,
              **{"data.resolve_data_config": lambda _cfg, model: {"input_size": (3, 96, 96)},
                 "data.create_transform": lambda **cfg: ("transform", cfg["input_size"])})
    lm = load_model("timm:tiny", weights="none", seed=2)
    assert (lm.name, lm.source, lm.weights, lm.seed, lm.input_size) == ("timm:tiny", "timm", "none",
                                                                        2, 96)
    assert lm.transform == ("transform", (3, 96, 96)) and lm.attrs["timm_version"] == "0.0-test"
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    lm = load_model("timm:tiny", weights=str(f))
    assert lm.weights == "file:w.pth" and lm.weights_file == str(f.resolve()) and lm.seed is None
    assert calls[-1] == ("tiny", True, {"pretrained_cfg_overlay": {"file": str(f)}})
    with pytest.raises(WeightsUnavailableError, match="timm:tiny: weights not available"):
        load_model("timm:tiny", weights="DEFAULT", offline=True)
    with pytest.raises(ModelError, match="unknown timm model"):
        load_model("timm:tin", weights="none")
    with pytest.raises(InputError, match="file does not exist"):
        load_model("timm:tiny", weights=str(tmp_path / "absent.pth"))


def test_open_clip_source_wiring_with_a_stand_in_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image encoder, its presets and the weights tag, without open_clip installed."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from alignkit.extract.models import load_model

    class Clip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = nn.Linear(12, 4)
            self.visual.image_size = (64, 64)  # type: ignore[assignment]

        def encode_image(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x.flatten(1))

    tags: list[object] = []

    def create(arch: str, pretrained: object) -> tuple[nn.Module, None, str]:
        tags.append(pretrained)
        return Clip(), None, "preprocess"

    _fake_zoo(monkeypatch, "open_clip", list_models=lambda: ["RN-tiny"],
              create_model_and_transforms=create)
    lm = load_model("open_clip:RN-tiny", weights="none")
    assert (lm.source, lm.weights, lm.input_size, lm.transform) == ("open_clip", "none", 64,
                                                                    "preprocess")
    assert lm.presets == {"penultimate": "output", "logits": "output", "embedding": "output"}
    x = torch.randn(2, 3, 2, 2)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), lm.module.model.encode_image(x))
    assert load_model("open_clip:RN-tiny", weights="openai").weights == "openai"
    assert tags == [None, "openai"]
