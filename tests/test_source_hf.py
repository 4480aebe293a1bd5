"""The ``hf:`` model source: tiny random transformers models saved to folders, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from alignkit.cli import cli  # noqa: E402
from alignkit.errors import ModelError, WeightsUnavailableError  # noqa: E402
from alignkit.extract import extract_features  # noqa: E402
from alignkit.extract.models import load_model  # noqa: E402
from alignkit.extract.sources import source_for  # noqa: E402
from alignkit.store import EmbeddingStore  # noqa: E402

T = transformers
VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _images(root: Path) -> list[Path]:
    """Four small RGB images of different sizes, written as PNGs."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(40, 40), (48, 36), (33, 57), (64, 64)]):
        p = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _clip_vision() -> Any:
    cfg = T.CLIPVisionConfig(**VIT, image_size=32, patch_size=8, projection_dim=16)
    return T.CLIPVisionModelWithProjection(cfg), T.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _clip_full() -> Any:
    cfg = T.CLIPConfig(
        vision_config=dict(**VIT, image_size=32, patch_size=8),
        text_config=dict(**VIT, vocab_size=99, max_position_embeddings=16), projection_dim=16)
    return T.CLIPModel(cfg), T.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _siglip_vision() -> Any:
    cfg = T.SiglipVisionConfig(**VIT, image_size=32, patch_size=8)
    return T.SiglipVisionModel(cfg), T.SiglipImageProcessor(size={"height": 32, "width": 32})


def _siglip_full() -> Any:
    cfg = T.SiglipConfig(vision_config=dict(**VIT, image_size=32, patch_size=8),
                         text_config=dict(**VIT, vocab_size=99, max_position_embeddings=16))
    return T.SiglipModel(cfg), T.SiglipImageProcessor(size={"height": 32, "width": 32})


def _dinov2() -> Any:
    cfg = T.Dinov2Config(**VIT, image_size=32, patch_size=8)
    return T.Dinov2Model(cfg), T.BitImageProcessor(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def _vit_classifier() -> Any:
    cfg = T.ViTConfig(**VIT, image_size=32, patch_size=8, num_labels=5)
    return T.ViTForImageClassification(cfg), T.ViTImageProcessor(size={"height": 32, "width": 32})


def _convnext() -> Any:
    cfg = T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
    return T.ConvNextModel(cfg), T.ConvNextImageProcessor(size={"shortest_edge": 32})


def _features(out: Any) -> Any:
    """``get_image_features`` returns a tensor (transformers 4) or an output with ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _beit() -> Any:
    cfg = T.BeitConfig(**VIT, image_size=32, patch_size=8)
    return T.BeitModel(cfg), T.BeitImageProcessor(size={"height": 32, "width": 32},
                                                   do_center_crop=False)


def _siglip2_vision() -> Any:
    cfg = T.Siglip2VisionConfig(**VIT, num_patches=16, patch_size=8)
    return T.Siglip2VisionModel(cfg), T.Siglip2ImageProcessor(max_num_patches=16, patch_size=8)


# family -> (make model and processor, the embedding by a direct forward pass on the
# processor's output)
FAMILIES = {
    "clip_vision": (_clip_vision, lambda m, inp: m(**inp).image_embeds),
    "clip": (_clip_full, lambda m, inp: _features(m.get_image_features(**inp))),
    "siglip_vision": (_siglip_vision, lambda m, inp: m(**inp).pooler_output),
    "siglip": (_siglip_full, lambda m, inp: _features(m.get_image_features(**inp))),
    "siglip2_vision": (_siglip2_vision, lambda m, inp: m(**inp).pooler_output),
    "dinov2": (_dinov2, lambda m, inp: m(**inp).last_hidden_state[:, 0]),
    "vit_classifier": (_vit_classifier, lambda m, inp: m(**inp).logits),
    "convnext": (_convnext, lambda m, inp: m(**inp).pooler_output),
    # BEiT's own pooler: the layer-normed mean of the patch tokens
    "beit": (_beit, lambda m, inp: m(**inp).pooler_output),
}


def _saved(tmp_path: Path, family: str) -> tuple[Path, Any, Any]:
    torch.manual_seed(1)
    model, processor = FAMILIES[family][0]()
    folder = tmp_path / family
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("imgs")
    return root, _images(root)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_embedding_equals_a_direct_forward_pass(family: str, tmp_path: Path,
                                                images: tuple[Path, list[Path]]) -> None:
    root, paths = images
    folder, model, processor = _saved(tmp_path, family)
    res = extract_features(f"hf:{folder}", root, ["embedding", "output"], device="cpu",
                           num_workers=0, batch_size=3, offline=True)
    pils = [Image.open(p).convert("RGB") for p in paths]
    with torch.no_grad():
        ref = FAMILIES[family][1](model, dict(processor(images=pils, return_tensors="pt")))
    head = family == "vit_classifier"
    assert res.layers == (["head_input", "output"] if head else ["output"])
    got = res.features["output"]
    assert got.shape == tuple(ref.shape)
    assert np.abs(got - ref.numpy()).max() <= 1e-5
    model_attrs = res.attrs["model"]
    assert model_attrs["source"] == "hf" and model_attrs["weights"] == "DEFAULT"
    assert model_attrs["transformers_version"] == transformers.__version__
    assert model_attrs["weights_file"].endswith("model.safetensors")
    proc = model_attrs["hf_processor"]
    assert proc["class"] == type(processor).__name__
    assert proc["image_mean"] == list(processor.image_mean) and "resample" in proc
    json.dumps(proc)
    if head:  # the features the head reads: the class token of the final layer norm
        with torch.no_grad():
            x = processor(images=pils, return_tensors="pt")["pixel_values"]
            cls = model.vit(pixel_values=x).last_hidden_state[:, 0]
        assert np.abs(res.features["head_input"] - cls.numpy()).max() <= 1e-5


def test_presets_pick_the_documented_layer(tmp_path: Path) -> None:
    emb = load_model(f"hf:{_saved(tmp_path, 'dinov2')[0]}", offline=True)
    assert emb.presets == {"embedding": "output", "penultimate": "output"}
    assert emb.input_size == 32
    clf = load_model(f"hf:{_saved(tmp_path, 'vit_classifier')[0]}", offline=True)
    assert clf.presets == {"logits": "output", "penultimate": "head_input",
                           "embedding": "head_input"}
    rows = _list_layers(tmp_path / "vit_classifier")
    marks = {r["layer"]: r["preset"] for r in rows if r["preset"]}
    assert marks == {"output": "logits", "head_input": "penultimate,embedding"}
    names = [r["layer"] for r in rows]
    assert {"model.vit.layernorm", "model.classifier"} <= set(names)


def _list_layers(folder: Path) -> list[dict[str, Any]]:
    res = CliRunner().invoke(cli, ["extract", "--list-layers", f"hf:{folder}", "--offline",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_random_init_is_decided_by_the_seed(tmp_path: Path) -> None:
    folder = _saved(tmp_path, "vit_classifier")[0]
    a, b, c = (load_model(f"hf:{folder}", "none", True, seed) for seed in (3, 3, 4))
    assert a.weights == "none" and a.seed == 3
    assert a.attrs["state_checksum"] == b.attrs["state_checksum"] != c.attrs["state_checksum"]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.module(x), b.module(x))
    saved = load_model(f"hf:{folder}", offline=True)
    assert "state_checksum" not in saved.attrs
    by_file = load_model(f"hf:{folder}", str(folder / "model.safetensors"), True, 3)
    assert by_file.weights == "file:model.safetensors"
    with torch.no_grad():
        assert torch.equal(by_file.module(x), saved.module(x))
    other = _saved(tmp_path, "convnext")[0] / "model.safetensors"
    with pytest.raises(ModelError, match="does not fit the model"):
        load_model(f"hf:{folder}", str(other), True)


def test_offline_without_the_model_in_the_cache(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsUnavailableError) as err:
        load_model("hf:alignkit-test/absent-model", offline=True)
    msg = str(err.value)
    assert "\n" not in msg
    for way in ("hub", "hf:/path/to/folder", "save_pretrained", "HF_HOME", "--weights none"):
        assert way in msg, way


def test_check_is_cheap_and_refuses_an_empty_name() -> None:
    source = source_for("hf:x")
    assert source.name == "hf"
    assert source.check("hf:", "DEFAULT") == (
        "'hf:': no name after hf: (expected hf:NAME or hf:/path/to/folder)")
    assert source.check("hf:facebook/dinov2-base", "DEFAULT") is None


def test_cli_extracts_into_a_store_and_refuses_a_bad_name(
        tmp_path: Path, images: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    root, paths = images
    folder = _saved(tmp_path, "siglip_vision")[0]
    store = tmp_path / "s.zarr"
    res = CliRunner().invoke(cli, ["extract", f"hf:{folder}", str(root), "--store", str(store),
                                   "--layer", "embedding", "--device", "cpu", "--workers", "0",
                                   "--offline", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["layer"], r["requested"], r["n"], r["p"]) for r in rows] == [
        ("output", "embedding", len(paths), 32)]
    e = EmbeddingStore(store).entry(f"hf:{folder}", "output")
    assert e.complete and e.attrs["model"]["hf_processor"]["class"] == "SiglipImageProcessor"

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    for bad in ("hf:alignkit-test/absent-model", "hf:"):
        res = CliRunner().invoke(cli, ["extract", bad, str(root), "--store", str(store),
                                       "--offline"])
        assert res.exit_code == 2, (bad, res.output)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_folder_without_preprocessor_config_uses_imagenet_steps_at_the_model_size(
        tmp_path: Path, images: tuple[Path, list[Path]]) -> None:
    from alignkit.extract.images import Preprocess

    root, paths = images
    folder, model, _ = _saved(tmp_path, "clip_vision")
    (folder / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no image processor.*image size 32"):
        lm = load_model(f"hf:{folder}", "DEFAULT", offline=True)
    assert lm.transform == Preprocess(resize=37, crop=32) and lm.input_size == 32
    store = tmp_path / "s.zarr"
    res = CliRunner().invoke(cli, ["extract", f"hf:{folder}", str(root), "--store", str(store),
                                   "--layer", "embedding", "--device", "cpu", "--workers", "0",
                                   "--offline"])
    assert res.exit_code == 0, res.output
    got = EmbeddingStore(store).entry(f"hf:{folder}", "output").features()
    pre = Preprocess(resize=37, crop=32)
    with torch.no_grad():
        pixels = torch.stack([pre.pixels(Image.open(p).convert("RGB")) for p in paths])
        want = model(pixel_values=pre.normalize(pixels)).image_embeds
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-4, atol=1e-5)


def test_a_file_named_as_the_model_is_not_reported_missing(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="is a file, not a folder"):
        load_model(f"hf:{tmp_path / 'model.safetensors'}", "DEFAULT", offline=True)
