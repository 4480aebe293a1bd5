"""torch hub, timm and OpenCLIP models: alignkit's features equal each library's own forward pass.

Only tiny random-initialised models are built (no network, no pretrained weights).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import timm
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision import transforms as T

from alignkit.cli import cli
from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract import extract_features
from alignkit.extract.models import load_model
from alignkit.extract.sources import source_for
from alignkit.extract.sources.hub import known_presets
from alignkit.extract.specs import runs_code
from alignkit.store import EmbeddingStore

HUBCONF = """\
dependencies = ['torch']

import torch
from torch import nn


def tiny(pretrained=False, **kw):
    torch.manual_seed(11)
    return nn.Sequential(nn.Conv2d(3, 8, 7, stride=8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))


def fixed():
    torch.manual_seed(12)
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 3))
"""


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(300, 260), (240, 320), (280, 280)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture
def hub_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my:hub"  # a ':' in the folder: the spec is split on its last one
    folder.mkdir()
    (folder / "hubconf.py").write_text(HUBCONF)
    return folder


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return home


def _pil(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


def _imagenet(img: Image.Image) -> torch.Tensor:
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return tf(img)


def _cli(*args: str) -> list[dict[str, object]]:
    res = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# --------------------------------------------------------------------------- torch hub


def test_hub_folder_features_equal_torch_hub_load(hub_folder: Path, images: Path,
                                                  tmp_path: Path) -> None:
    spec = f"hub:{hub_folder}:tiny"
    assert source_for(spec).name == "hub"
    assert runs_code(spec) == f"a torch hub folder ({hub_folder}/hubconf.py)"
    ref_model = torch.hub.load(str(hub_folder), "tiny", source="local").eval()
    x = torch.stack([_imagenet(im) for im in _pil(images)])
    pooled: dict[str, torch.Tensor] = {}
    ref_model[4].register_forward_hook(lambda _m, _i, out: pooled.setdefault("4", out))
    with torch.inference_mode():
        ref_logits = ref_model(x)
    ref_pen = pooled["4"].flatten(1)

    store = tmp_path / "s.zarr"
    rows = _cli("extract", spec, str(images), "--store", str(store), "--layer", "penultimate",
                "--layer", "logits", "--trust-code", "--name", "tiny", "--device", "cpu",
                "--workers", "0")
    assert [(r["layer"], r["requested"], r["p"]) for r in rows] == [("4", "penultimate", 16),
                                                                    ("6", "logits", 5)]
    entry = EmbeddingStore(store).entry("tiny", "4")
    assert np.abs(entry.features() - ref_pen.numpy()).max() <= 1e-5
    assert entry.attrs["model"]["source"] == "hub"
    assert entry.attrs["model"]["hub_entry"] == "tiny"
    logits = EmbeddingStore(store).entry("tiny", "6").features()
    assert np.abs(logits - ref_logits.numpy()).max() <= 1e-5

    res = extract_features(spec, _pil(images), ["penultimate", "output"], device="cpu",
                           num_workers=0)
    assert np.abs(res.features["4"] - ref_pen.numpy()).max() <= 1e-5
    assert np.abs(res.features["output"] - ref_logits.numpy()).max() <= 1e-5


def test_hub_presets_weights_and_trust(hub_folder: Path, tmp_path: Path) -> None:
    spec = f"hub:{hub_folder}:tiny"
    res = CliRunner().invoke(cli, ["extract", "--list-layers", spec])
    assert res.exit_code == 2 and "--trust-code" in res.stderr and "torch hub folder" in res.stderr
    rows = {r["layer"]: r["preset"] for r in _cli("extract", "--list-layers", spec, "--trust-code")}
    assert rows["4"] == "penultimate" and rows["6"] == "logits"

    lm = load_model(spec, weights="none", seed=1)
    assert (lm.source, lm.weights, lm.seed, lm.input_size) == ("hub", "none", 1, 224)
    assert lm.attrs["hub_folder"] == str(hub_folder.resolve())
    f = tmp_path / "w.pth"
    torch.save({k: v + 1 for k, v in lm.module.state_dict().items()}, f)
    from_file = load_model(spec, weights=str(f))
    assert from_file.weights == "file:w.pth" and from_file.seed is None
    assert torch.equal(from_file.module[6].bias, lm.module[6].bias + 1)
    # an entry without a pretrained argument: DEFAULT calls it as is, none is refused
    fixed = load_model(f"hub:{hub_folder}:fixed")
    assert fixed.weights == "DEFAULT" and fixed.presets == {}
    with pytest.raises(InputError, match="takes no pretrained argument"):
        load_model(f"hub:{hub_folder}:fixed", weights="none")
    with pytest.raises(ModelError, match=r"no entry point 'tinny' \(entries: fixed, tiny\)"):
        load_model(f"hub:{hub_folder}:tinny", weights="none")
    with pytest.raises(InputError, match="expected hub:OWNER/REPO"):
        load_model("hub:tiny", weights="none")
    # a study's relative folder is relative to the study file
    rel = source_for("hub:x").rebase("hub:./my:hub:tiny", tmp_path)
    assert rel == f"hub:{hub_folder}:tiny"
    (tmp_path / "clones" / "dino").mkdir(parents=True)  # OWNER/REPO-like, but a folder there
    assert source_for("hub:x").rebase("hub:clones/dino:tiny", tmp_path) == (
        f"hub:{tmp_path / 'clones' / 'dino'}:tiny")
    assert source_for("hub:x").rebase("hub:owner/repo:tiny", tmp_path) == "hub:owner/repo:tiny"


def test_hub_known_self_supervised_presets() -> None:
    vit = {"penultimate": "output", "logits": "output", "embedding": "output"}
    resnet = {"penultimate": "avgpool", "logits": "output", "embedding": "avgpool"}
    assert known_presets("facebookresearch/dino", "dino_vitb16") == vit
    assert known_presets("facebookresearch/dino@main", "dino_resnet50") == resnet
    assert known_presets("facebookresearch/dinov2", "dinov2_vitb14") == vit
    assert known_presets("facebookresearch/dinov2", "dinov2_vitg14_reg") == vit
    assert known_presets("facebookresearch/dinov2", "dinov2_vitb14_lc") == {}  # a classifier
    for repo in ("barlowtwins", "vicreg", "swav"):
        assert known_presets(f"facebookresearch/{repo}", "resnet50") == resnet
    assert known_presets("someone/repo", "resnet50") == {}
    assert known_presets("", "dinov2_vits14") == vit and known_presets("", "resnet50") == {}


def test_hub_repo_offline_from_the_cache_only(hub_folder: Path, torch_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = "hub:someone/repo:tiny"
    with pytest.raises(WeightsUnavailableError) as err:
        load_model(spec, weights="none", offline=True)
    msg = str(err.value)
    cache = torch_home / "hub" / "someone_repo_main"
    assert "\n" not in msg and "online" in msg and "hub:/path/to/repo:tiny" in msg
    assert str(cache) in msg and "TORCH_HOME" in msg and "--weights none" in msg
    monkeypatch.setenv("ALIGNKIT_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["extract", "--list-layers", "hub:someone/repo@v2:tiny",
                                   "--trust-code"])
    assert res.exit_code != 0 and "someone_repo_v2" in res.output
    monkeypatch.delenv("ALIGNKIT_OFFLINE")

    shutil.copytree(hub_folder, cache)
    lm = load_model(spec, weights="none", offline=True, seed=4)
    ref = torch.hub.load(str(hub_folder), "tiny", source="local")
    assert lm.attrs["hub_repo"] == "someone/repo" and lm.name == spec
    for (k, a), (_, b) in zip(lm.module.state_dict().items(), ref.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), k
    # a checkpoint download asked for while offline names the cache file
    (cache / "hubconf.py").write_text(HUBCONF + (
        "\n\ndef remote(pretrained=True):\n"
        "    m = tiny()\n"
        "    if pretrained:\n"
        "        m.load_state_dict(torch.hub.load_state_dict_from_url("
        "'https://example.invalid/w/tiny-123.pth'))\n"
        "    return m\n"))
    with pytest.raises(WeightsUnavailableError, match=r"tiny-123\.pth is not in the torch hub cache"):
        load_model("hub:someone/repo:remote", weights="DEFAULT", offline=True)
    assert load_model("hub:someone/repo:remote", weights="none", offline=True).weights == "none"


# --------------------------------------------------------------------------- timm


@pytest.mark.parametrize("name", ["resnet10t", "test_vit"])
def test_timm_features_equal_timm_forward(name: str, images: Path, tmp_path: Path,
                                          torch_home: Path) -> None:
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False).eval()
    lm = load_model(f"timm:{name}", weights="none", seed=0)
    ref.load_state_dict(lm.module.state_dict())  # same weights; the transform is timm's own
    tf = create_transform(**resolve_data_config({}, model=ref))
    x = torch.stack([tf(im) for im in _pil(images)])
    with torch.inference_mode():
        feats = ref.forward_features(x)
        pre = ref.forward_head(feats, pre_logits=True)
        logits = ref.forward_head(feats)
    res = extract_features(lm, images, ["penultimate", "logits"], device="cpu", num_workers=0)
    pen, lg = res.layers
    assert (pen, lg) == (("global_pool.pool", "fc") if name == "resnet10t" else ("norm", "head"))
    assert np.abs(res.features[pen] - pre.numpy()).max() <= 1e-5
    assert np.abs(res.features[lg] - logits.numpy()).max() <= 1e-5
    rows = {r["layer"]: r["preset"] for r in _cli("extract", "--list-layers", f"timm:{name}")}
    assert rows[pen] == "penultimate" and rows[lg] == "logits"


# --------------------------------------------------------------------------- OpenCLIP

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("clipcfg")
    (folder / "alignkit-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    assert "alignkit-tiny-clip" in open_clip.list_models()
    return "alignkit-tiny-clip"


def test_open_clip_features_equal_encode_image(tiny_clip: str, images: Path, tmp_path: Path,
                                               torch_home: Path) -> None:
    lm = load_model(f"open_clip:{tiny_clip}", weights="none", seed=5)
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip, pretrained=None)
    model.load_state_dict(lm.module.model.state_dict())
    model.eval()
    x = torch.stack([preprocess(im) for im in _pil(images)])
    with torch.inference_mode():
        ref = model.encode_image(x)
    assert lm.input_size == 32 and lm.presets["embedding"] == "output"
    res = extract_features(lm, images, ["embedding", "penultimate", "logits"], device="cpu",
                           num_workers=0)
    assert res.layers == ["output"]
    assert np.abs(res.features["output"] - ref.numpy()).max() <= 1e-5
    rows = {r["layer"]: r["preset"] for r in _cli("extract", "--list-layers",
                                                  f"open_clip:{tiny_clip}")}
    assert rows["output"] == "penultimate,logits,embedding"
    store = tmp_path / "c.zarr"
    _cli("extract", f"open_clip:{tiny_clip}", str(images), "--store", str(store), "--weights",
         "none", "--seed", "5", "-l", "embedding", "--name", "clip", "--device", "cpu",
         "--workers", "0")
    got = EmbeddingStore(store).entry("clip", "output").features()
    assert np.abs(got - ref.numpy()).max() <= 1e-5


def test_open_clip_tag_in_the_spec(tiny_clip: str, torch_home: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = source_for("open_clip:ViT-B-32:openai")
    assert src.name == "open_clip" and runs_code("open_clip:ViT-L-14:laion2b_s32b_b82k") is None
    from alignkit.extract.sources.open_clip import split_spec

    assert split_spec("ViT-L-14:laion2b_s32b_b82k") == ("ViT-L-14", "laion2b_s32b_b82k")
    assert split_spec("ViT-B-32") == ("ViT-B-32", None)
    assert split_spec("hf-hub:org/repo") == ("hf-hub:org/repo", None)
    resolved = src.resolve_weights("open_clip:ViT-B-32:openai", "DEFAULT", True)
    assert (resolved.id, resolved.handle) == ("openai", "openai")
    assert src.resolve_weights("open_clip:ViT-B-32:openai", "openai", True).id == "openai"
    with pytest.raises(InputError, match="names the weights 'openai' and --weights says 'laion"):
        src.resolve_weights("open_clip:ViT-B-32:openai", "laion2b_s34b_b79k", True)
    with pytest.raises(InputError, match="names the weights 'openai' and --weights says 'none'"):
        load_model("open_clip:ViT-B-32:openai", weights="none")
    with pytest.raises(InputError, match=r"no default weights.*tags of ViT-B-32: .*openai"):
        load_model("open_clip:ViT-B-32", weights="DEFAULT")
    res = CliRunner().invoke(cli, ["extract", "open_clip:ViT-B-32:openai", "x", "--store", "s",
                                   "--weights", "laion2b_s34b_b79k"])
    assert res.exit_code == 2 and "give the tag once" in res.stderr
    # the tagged spec names its weights; with none at hand it is refused offline
    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        load_model(f"open_clip:{tiny_clip}:openai", offline=True)
    # listing layers of a tagged spec builds a random-init copy, downloading nothing
    rows = _cli("extract", "--list-layers", f"open_clip:{tiny_clip}:openai", "--offline")
    assert {r["layer"]: r["preset"] for r in rows}["output"] == "penultimate,logits,embedding"


def test_a_study_naming_a_hub_folder(tmp_path: Path, images: Path) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "hubconf.py").write_text(HUBCONF)
    (tmp_path / "t.txt").write_text("0 1 2\n")
    study = tmp_path / "study.toml"
    study.write_text('[sweep]\nstore = "f.zarr"\n\n[[model]]\nname = "hub:nets:tiny"\n'
                     'weights = "none"\nlayers = ["penultimate"]\n\n[[images]]\nname = "a"\n'
                     'path = "imgs"\n\n[[triplets]]\nname = "t"\nsource = "t.txt"\n')
    res = CliRunner().invoke(cli, ["sweep", str(study), "--dry-run"])
    assert res.exit_code == 2 and "--trust-code" in res.stderr and "torch hub folder" in res.stderr
    res = CliRunner().invoke(cli, ["sweep", str(study), "--dry-run", "--trust-code", "--format",
                                   "json"])
    assert res.exit_code == 0, res.output
    assert [r["task"] for r in json.loads(res.stdout)] == ["extract", "ooo"]
